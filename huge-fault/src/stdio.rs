//! Writing to stdout and stderr without panicking. A closed stdout (a pipe into `head`)
//! is [`Error::BrokenPipe`], which ends the run quietly with status 141 as coreutils do; a
//! closed stderr loses the message and nothing else.

use std::io::Write as _;

use crate::error::{Error, Result};

/// Writes `s` to stdout and flushes it.
pub fn out(s: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes())
        .and_then(|()| o.flush())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Error::BrokenPipe
            } else {
                Error::io("cannot write to stdout", e)
            }
        })
}

/// Writes `s` to stderr, best effort: there is nowhere left to report a failure.
pub fn err(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(s.as_bytes()).and_then(|()| e.flush());
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {
        $crate::stdio::err(&format!("{}\n", format_args!($($t)*)))
    };
}
