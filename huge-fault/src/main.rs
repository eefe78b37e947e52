use std::process::ExitCode;

use clap::Parser as _;
use huge_fault::{cli::Args, live};

fn main() -> ExitCode {
    let args = Args::parse();
    match live::run(&args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("huge-fault: error: {e}");
            ExitCode::FAILURE
        }
    }
}
