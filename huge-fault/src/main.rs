use std::process::ExitCode;

use clap::Parser as _;
use huge_fault::{cli::Args, live};

fn main() -> ExitCode {
    let args = Args::parse();
    match live::run(&args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        // 1 is a failed threshold; the tool's own failure is 2, like a usage error.
        Err(e) => {
            eprintln!("huge-fault: error: {e}");
            ExitCode::from(2)
        }
    }
}
