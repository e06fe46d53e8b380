//! The README's example commands run as written, in a fresh directory,
//! with `fmp` from the build: the CLI block (from a copy of `examples/`, as
//! a clone has it), and the hub section on loopback, its certificate step,
//! its codes and its certificate renewal included.
//!
//! A small interpreter reads each block line by line: words split as a
//! shell does (quotes, a trailing `# comment`, a trailing `&` runs it in
//! the background until it prints `listening on`), `a|b|c` outside quotes
//! means `a`, `kill %N` stops the N-th background command, `mv` renames.
//! The only words replaced are the ones a reader replaces too: `ID` by the
//! id `fmp record` printed, `hq.example` and `10.0.0.2` by `127.0.0.1`, the
//! ports 8443 and 8080 by free ones, and a code (`XXXXX-XXXXX`) by the
//! latest code `fmp enroll-code` printed that no earlier word took. A
//! command is expected to succeed unless its comment says `refused`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod support;
use support::fmp_bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The ```sh blocks of a Markdown file.
fn sh_blocks(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match &mut cur {
            None if line.trim_start() == "```sh" => cur = Some(String::new()),
            Some(b) if line.trim_start() == "```" => {
                blocks.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The block of `file` whose first line is `first`.
fn block(file: &str, first: &str) -> String {
    sh_blocks(file)
        .into_iter()
        .find(|b| b.lines().next() == Some(first))
        .unwrap_or_else(|| panic!("{file} has no block beginning {first:?}"))
}

/// One command line: its words (quotes removed), whether it runs in the
/// background, its comment.
#[derive(Debug)]
struct Line {
    words: Vec<String>,
    background: bool,
    comment: String,
}

fn parse(line: &str) -> Option<Line> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut comment = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#') if !in_word => {
                comment = chars.collect::<String>().trim().to_string();
                break;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unclosed quote in {line:?}");
    if in_word {
        words.push(word);
    }
    let background = words.last().is_some_and(|w| w == "&");
    if background {
        words.pop();
    }
    (!words.is_empty()).then_some(Line {
        words,
        background,
        comment,
    })
}

/// What a command printed.
#[derive(Debug, Clone)]
struct Ran {
    line: String,
    stdout: String,
    stderr: String,
}

/// The shell the blocks run in: a directory, background commands, the
/// words replaced, and what each command printed.
struct Shell {
    dir: PathBuf,
    jobs: Vec<Option<Child>>,
    replace: HashMap<String, String>,
    codes: Vec<String>,
    bound: HashMap<String, String>,
    ran: Vec<Ran>,
}

impl Drop for Shell {
    fn drop(&mut self) {
        for mut c in self.jobs.drain(..).flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn is_code(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() == 11
        && b[5] == b'-'
        && w.chars()
            .enumerate()
            .all(|(i, c)| i == 5 || c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Shell {
    fn new(dir: &Path) -> Shell {
        Shell {
            dir: dir.to_path_buf(),
            jobs: Vec::new(),
            replace: HashMap::new(),
            codes: Vec::new(),
            bound: HashMap::new(),
            ran: Vec::new(),
        }
    }

    fn word(&mut self, w: &str) -> String {
        if is_code(w) {
            if let Some(c) = self.bound.get(w) {
                return c.clone();
            }
            let taken: Vec<&String> = self.bound.values().collect();
            let code = self
                .codes
                .iter()
                .rev()
                .find(|c| !taken.contains(c))
                .unwrap_or_else(|| panic!("no code printed for {w}"))
                .clone();
            self.bound.insert(w.to_string(), code.clone());
            return code;
        }
        let mut w = w.to_string();
        if !w.contains('"') && w.contains('|') {
            w = w.split('|').next().unwrap().to_string();
        }
        for (from, to) in &self.replace {
            w = w.replace(from.as_str(), to);
        }
        w
    }

    /// Runs every line of `block`.
    fn run(&mut self, block: &str) {
        for raw in block.lines() {
            let Some(line) = parse(raw) else { continue };
            let words: Vec<String> = line.words.iter().map(|w| self.word(w)).collect();
            let shown = words.join(" ");
            match words[0].as_str() {
                "kill" => {
                    let n: usize = words[1].trim_start_matches('%').parse().unwrap();
                    let mut child = self.jobs[n - 1].take().expect("a running job");
                    let _ = Command::new("kill")
                        .args(["-TERM", &child.id().to_string()])
                        .status();
                    assert!(child.wait().unwrap().success(), "{shown}: a clean stop");
                }
                "mv" => std::fs::rename(self.dir.join(&words[1]), self.dir.join(&words[2]))
                    .unwrap_or_else(|e| panic!("{shown}: {e}")),
                "fmp" if line.background => self.background(&words[1..], shown),
                "fmp" => self.foreground(&words[1..], shown, &line.comment),
                other => panic!("the interpreter does not run {other:?}: {raw}"),
            }
        }
    }

    fn foreground(&mut self, args: &[String], shown: String, comment: &str) {
        let out = Command::new(fmp_bin())
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        let ran = Ran {
            line: shown,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let refused = comment.contains("refused");
        assert_eq!(
            out.status.success(),
            !refused,
            "{}\nstdout: {}\nstderr: {}",
            ran.line,
            ran.stdout,
            ran.stderr
        );
        match args[0].as_str() {
            "enroll-code" => self.codes.push(ran.stdout.trim().to_string()),
            "record" if !self.replace.contains_key("ID") => {
                let id = ran.stdout.lines().next().expect("an id").trim().to_string();
                self.replace.insert("ID".into(), id);
            }
            _ => {}
        }
        self.ran.push(ran);
    }

    fn background(&mut self, args: &[String], shown: String) {
        let err = self.dir.join(format!("job{}.stderr", self.jobs.len() + 1));
        let mut child = Command::new(fmp_bin())
            .args(args)
            .current_dir(&self.dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let stderr = std::fs::read_to_string(&err).unwrap();
        assert!(
            first.starts_with("listening on "),
            "{shown}: {first:?}\n{stderr}"
        );
        self.jobs.push(Some(child));
        self.ran.push(Ran {
            line: shown,
            stdout: first,
            stderr,
        });
    }
}

/// The words of a Ran's line start with `args` (after `fmp`).
fn ran_of<'a>(sh: &'a Shell, args: &str) -> Vec<&'a Ran> {
    sh.ran
        .iter()
        .filter(|r| r.line.starts_with(&format!("fmp {args}")))
        .collect()
}

/// The fingerprint in a line `… SHA-256 fingerprint XX:…` or `… SHA-256 XX:…`.
fn fingerprint(text: &str) -> String {
    let at = text
        .find("SHA-256 ")
        .unwrap_or_else(|| panic!("no fingerprint in {text}"));
    text[at + "SHA-256 ".len()..]
        .trim_start_matches("fingerprint ")
        .split(|c: char| !(c.is_ascii_hexdigit() || c == ':'))
        .next()
        .unwrap()
        .trim_end_matches(':')
        .to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn the_readme_cli_block_runs_as_written_in_a_fresh_directory() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples"), &tmp.path().join("examples"));
    let mut sh = Shell::new(tmp.path());
    sh.run(&block(
        "README.md",
        "fmp init   --store phone --name gogui-phone-1        # new store + device key (Ed25519)",
    ));
    let id = sh.replace["ID"].clone();
    let show = &ran_of(&sh, "show")[0].stdout;
    assert!(
        show.contains("bus from Kayes") && show.contains("approved"),
        "{show}"
    );
    assert!(ran_of(&sh, "list")[0].stdout.contains(&id[..8]), "listed");
    let history = &ran_of(&sh, "history")[0].stdout;
    assert!(history.contains("gogui-phone-1"), "{history}");
    assert!(tmp.path().join("fmp-demo").is_dir(), "the demo's directory");
}

#[test]
fn the_readme_hub_section_followed_literally_on_loopback() {
    let hub_block = block("README.md", "# HQ, once");
    assert_eq!(
        block("crates/fmp-hub/README.md", "# HQ, once"),
        hub_block,
        "the hub README's copy is the README's"
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("examples/gogui-week.jsonl"),
        tmp.path().join("obs.jsonl"),
    )
    .unwrap();
    let mut sh = Shell::new(tmp.path());
    for (from, to) in [
        ("hq.example", "127.0.0.1".to_string()),
        ("10.0.0.2", "127.0.0.1".to_string()),
        (":8443", format!(":{}", free_port())),
        (":8080", format!(":{}", free_port())),
    ] {
        sh.replace.insert(from.into(), to);
    }
    sh.run(&hub_block);

    // The certificate step: made on first start, its fingerprint printed
    // by serve, pinned and shown by join and status.
    assert!(tmp.path().join("hq.crt").is_file() && tmp.path().join("hq.key").is_file());
    let serves = ran_of(&sh, "serve");
    assert!(
        serves[0]
            .stderr
            .contains("made a self-signed TLS certificate hq.crt"),
        "{}",
        serves[0].stderr
    );
    let hq_fp = fingerprint(&serves[0].stderr);
    let kayes_fp = fingerprint(&serves[1].stderr);
    assert_ne!(hq_fp, kayes_fp);
    let joins = ran_of(&sh, "join");
    assert_eq!(fingerprint(&joins[0].stdout), hq_fp, "kayes pinned HQ's");
    assert_eq!(
        fingerprint(&joins[1].stdout),
        kayes_fp,
        "the phone pinned kayes'"
    );
    let status = &ran_of(&sh, "status --store phone")[0].stdout;
    assert_eq!(fingerprint(status), kayes_fp, "{status}");
    assert!(
        status.contains("peer kayes-hub ("),
        "names, not ids: {status}"
    );
    // Listening on every interface: the addresses phones can use (or that
    // there are none but loopback), never http(s)://0.0.0.0 alone.
    // (Printed just after `listening on`: read when the commands below ran.)
    let kayes_err = std::fs::read_to_string(tmp.path().join("job2.stderr")).unwrap();
    assert!(
        kayes_err.contains("phones can reach this hub at https://")
            || kayes_err.contains("no network address other than loopback"),
        "{kayes_err}"
    );
    assert!(!kayes_err.contains("https://0.0.0.0"), "{kayes_err}");
    // A code is printed with its FMPs, its expiry and the join line.
    let kayes_code = &ran_of(&sh, "enroll-code --store kayes")[0];
    let line = &kayes_code.stderr;
    assert!(
        line.contains(kayes_code.stdout.trim())
            && line.contains("ML-GOG")
            && line.contains("(until ")
            && line.contains("fmp join --store DIR --hub "),
        "{line}"
    );
    // `fmp devices` points at the unused code (listed before it was cancelled).
    let devices = &ran_of(&sh, "devices --store kayes")[0].stdout;
    assert!(devices.contains("gogui-phone-1"), "{devices}");
    assert!(
        !devices.contains("not used yet"),
        "no unused code then: {devices}"
    );
    let now = support::fmp(&[
        "enroll-code",
        "--store",
        support::s(&tmp.path().join("kayes")),
        "--fmp",
        "ML-GOG",
    ]);
    let devices = support::fmp(&["devices", "--store", support::s(&tmp.path().join("kayes"))]);
    assert!(
        devices.contains("1 enrollment code(s) not used yet: `fmp codes"),
        "{devices}"
    );
    support::fmp(&[
        "codes",
        "--store",
        support::s(&tmp.path().join("kayes")),
        "--cancel",
        now.trim(),
    ]);
    // The region reached HQ.
    let hq = support::fmp(&[
        "list",
        "--store",
        support::s(&tmp.path().join("hq")),
        "--format",
        "jsonl",
    ]);
    assert_eq!(hq.lines().count(), 3, "the week of Gogui at HQ");
    // The unused code was listed, then cancelled: a phone joining with it is refused.
    let codes = ran_of(&sh, "codes --store kayes");
    assert!(codes[0].stdout.contains("ML-GOG"), "{}", codes[0].stdout);
    assert_eq!(
        codes[0].stdout.lines().count(),
        2,
        "a head and one code: {}",
        codes[0].stdout
    );
    assert!(
        codes[1].stdout.starts_with("cancelled code"),
        "{}",
        codes[1].stdout
    );
    let listed = support::fmp(&["codes", "--store", support::s(&tmp.path().join("kayes"))]);
    assert_eq!(listed.trim(), "no unused enrollment code");
    let cancelled = sh.bound["8MKP3-RT2VW"].clone();
    let late = tmp.path().join("late");
    support::fmp(&[
        "init",
        "--store",
        support::s(&late),
        "--name",
        "gogui-phone-2",
    ]);
    let url = sh.word("https://10.0.0.2:8080");
    let out = support::fmp_in(
        &[
            "join",
            "--store",
            support::s(&late),
            "--hub",
            &url,
            "--code",
            &cancelled,
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_code"));

    // Renewing HQ's certificate, as the README says.
    let renew = sh_blocks("README.md")
        .into_iter()
        .find(|b| b.starts_with("# HQ renews its certificate"))
        .expect("the renewal block");
    sh.run(&renew);
    let serves = ran_of(&sh, "serve --store hq");
    let new_fp = fingerprint(&serves[1].stderr);
    assert_ne!(new_fp, hq_fp, "a new certificate");
    let syncs = ran_of(&sh, "sync --store kayes");
    let refused = &syncs[1].stderr;
    assert!(
        refused.contains(&hq_fp) && refused.contains(&new_fp) && refused.contains("fmp join"),
        "{refused}"
    );
    assert!(
        !refused.contains("retry"),
        "not retried as an outage: {refused}"
    );
    let joins = ran_of(&sh, "join --store kayes");
    assert_eq!(fingerprint(&joins[1].stdout), new_fp);
    let hq = support::fmp(&[
        "list",
        "--store",
        support::s(&tmp.path().join("hq")),
        "--format",
        "jsonl",
    ]);
    assert_eq!(hq.lines().count(), 3, "nothing twice after the renewal");
}

#[test]
fn the_documented_openssl_certificate_is_served_with_the_fingerprint_openssl_prints() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: openssl is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lines: Vec<String> = sh_blocks("README.md")
        .into_iter()
        .find(|b| b.starts_with("openssl req"))
        .expect("the openssl block")
        .lines()
        .map(str::to_string)
        .collect();
    let mut printed = String::new();
    for l in &lines {
        let line = parse(l).unwrap();
        let out = Command::new(&line.words[0])
            .args(&line.words[1..])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{l}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    // openssl prints `sha256 Fingerprint=AB:CD:…`.
    let theirs = printed.trim().rsplit('=').next().unwrap().to_string();
    let hq = tmp.path().join("hq");
    support::fmp(&["init", "--store", support::s(&hq), "--name", "hq"]);
    let served = support::Served::start(
        &hq,
        &[
            "--tls-cert",
            support::s(&tmp.path().join("hq.crt")),
            "--tls-key",
            support::s(&tmp.path().join("hq.key")),
        ],
    );
    assert!(served.url.starts_with("https://"));
    let phone = tmp.path().join("phone");
    support::fmp(&["init", "--store", support::s(&phone), "--name", "p"]);
    let joined = support::enroll(&hq, &phone, &served.url, &["ML-GOG"], &[]);
    assert_eq!(fingerprint(&joined), theirs, "{joined}");
}
