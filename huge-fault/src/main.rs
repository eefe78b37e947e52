use std::process::ExitCode;

use clap::Parser as _;
use huge_fault::{app, cli::Args, trace};

fn main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw.get(1).is_some_and(|a| a == trace::HOLD_ARG) {
        // A `huge-fault run` command, held until tracing is attached.
        return ExitCode::from(trace::hold_then_exec(&raw[2..]) as u8);
    }
    let args = Args::parse();
    match app::run(&args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        // 1 is a failed threshold; the tool's own failure is 2, like a usage error.
        Err(e) => {
            eprintln!("huge-fault: error: {}", e.one_line());
            ExitCode::from(2)
        }
    }
}
