use std::process::ExitCode;

use clap::Parser as _;
use huge_fault::{app, cli, cli::Args, error::Error, say, trace};

fn main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw.get(1).is_some_and(|a| a == trace::HOLD_ARG) {
        // A `huge-fault run` command, held until tracing is attached.
        return ExitCode::from(trace::hold_then_exec(&raw[2..]) as u8);
    }
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => return cli::usage_error(&e),
    };
    match app::run(&args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        // A closed stdout ends quietly, as coreutils do.
        Err(Error::BrokenPipe) => ExitCode::from(Error::BrokenPipe.exit_code()),
        // 1 is a failed threshold; the tool's own failure is 2, like a usage error.
        Err(e) => {
            say!("huge-fault: error: {}", e.one_line());
            ExitCode::from(e.exit_code())
        }
    }
}
