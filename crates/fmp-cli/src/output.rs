//! Lines to standard output, as results: a reader that went away
//! (`fmp status | head -1`) ends the command through its error path, and
//! `main` ends it quietly with status 0, as other command-line tools do
//! (`println!` would panic, exit status 101).

use std::io::Write;

/// Standard output could not be written (its reader went away, a full disk).
#[derive(Debug)]
pub struct StdoutError(pub std::io::Error);

impl StdoutError {
    /// True if the reader of standard output went away.
    pub fn closed(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes one line to standard output.
pub fn line(args: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    writeln!(std::io::stdout().lock(), "{args}").map_err(StdoutError)
}

/// `println!` that returns a [`StdoutError`] instead of panicking.
macro_rules! out {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use out;
