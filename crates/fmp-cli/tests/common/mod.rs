//! What the CLI's test files share: the `fmp` binary run with arguments
//! (and standard input), its output as text, a sample submission.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// One valid submission (Heremakono, June 2020), as one JSON line.
pub const SAMPLE: &str = r#"{"form":"dtm-fmp-flow","form_version":1,"fmp":"ML-HER","observed_at":"2020-06-14T09:30:00Z","direction":"incoming","transport":"bus","departure":{"country":"BFA","place":"Bobo-Dioulasso"},"next_destination":{"country":"MLI","place":"Sikasso"},"final_destination":{"country":"MLI"},"movement_type":"seasonal","people":{"adult_male":30,"adult_female":2,"minor_male":1,"minor_female":0},"vulnerable":{"under5":0,"elderly":0,"disability":0,"pregnant":0},"nationalities":{"BFA":31,"MLI":2},"notes":""}"#;

/// Runs the `fmp` binary built for these tests.
pub fn fmp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fmp"))
        .args(args)
        .output()
        .expect("run fmp")
}

/// Runs `fmp` with `input` on its standard input.
pub fn fmp_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fmp"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fmp");
    let mut stdin = child.stdin.take().expect("stdin");
    // The child may refuse and exit before reading everything: ignore EPIPE.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().expect("wait fmp")
}

/// Bytes of output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
