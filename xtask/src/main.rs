//! Project tasks: `cargo xtask setup | build | run | test`.
//!
//! `setup` installs, once, what the eBPF build needs and a fresh machine lacks: the pinned
//! nightly toolchain with `rust-src` and `bpf-linker`. Every other task runs it first.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};

mod bench;
mod debian;
mod driver;
mod fuzz;
mod lab;
#[cfg(test)]
mod layout;
mod release;
mod selftests;
mod setup;
mod test;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "huge-fault project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the pinned eBPF toolchain (nightly + rust-src) and bpf-linker if missing.
    Setup,
    /// Build the huge-fault binary (release), with its eBPF object embedded.
    Build,
    /// Build, then run `huge-fault` on this machine (as root) with the given arguments.
    Run {
        /// Arguments for huge-fault, e.g. `-- --duration 10`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The full test suite: format check, clippy -D warnings, unit tests, the verifier test,
    /// and live tests against this machine's kernel.
    Test {
        /// Only the stages whose name contains this string (fmt, clippy, unit, verifier, live, lab).
        #[arg(long)]
        only: Option<String>,
    },
    /// Boot Debian kernels in QEMU and run the lab scenarios inside each with huge-fault.
    Lab {
        /// Kernels to boot (comma-separated): 6.1, 6.12, 7.2. Default: all.
        #[arg(long, value_delimiter = ',')]
        kernel: Vec<String>,
        /// Only these scenarios (comma-separated names from hf-lab/src/scenarios/).
        #[arg(long, value_delimiter = ',')]
        scenario: Vec<String>,
        /// Only these passes (fentry, kprobe, tracepoint-only, kprobe-aggregate). Default: all four.
        #[arg(long, value_delimiter = ',')]
        mode: Vec<String>,
        /// Keep the guest artifacts (initramfs, serial logs) in target/lab-out.
        #[arg(long)]
        keep: bool,
        /// Per-boot time limit in seconds.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// Bring the kprobe pass's recording back (target/lab-out/RELEASE-lab-kprobe.hfrec).
        #[arg(long)]
        save_recording: bool,
    },
    /// Benchmarks: fault storms untraced and under each tracer, interleaved, on this host
    /// (tracepoint-only) and in the lab guests (fentry, kprobe, tracepoint-only, bpftrace).
    /// Writes target/bench-out/.
    Bench {
        /// Kernels to boot (comma-separated). Default: all.
        #[arg(long, value_delimiter = ',')]
        kernel: Vec<String>,
        /// Storm size (each storm maps and touches this much).
        #[arg(long, default_value = "1G")]
        size: String,
        /// Repetitions of every storm under every configuration.
        #[arg(long, default_value_t = 3)]
        reps: u32,
        /// On the host, also sample huge-fault's memory over a storm this long (seconds).
        #[arg(long, default_value_t = 0)]
        soak: u64,
        /// Only the host, or only the lab guests.
        #[arg(long, conflicts_with = "lab_only")]
        host_only: bool,
        #[arg(long)]
        lab_only: bool,
        /// Per-boot time limit in seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// Lab guests: only these configurations besides untraced (fentry, kprobe, tracepoint-only,
        /// fentry-aggregate, kprobe-aggregate, tracepoint-aggregate, bpftrace). Default: all.
        #[arg(long, value_delimiter = ',')]
        configs: Vec<String>,
        /// Lab guests: only these storms (pte, pmd, pte-2-threads, bar-pmd-only, bar-pud, ...). Default: all.
        #[arg(long, value_delimiter = ',')]
        storms: Vec<String>,
        /// Lab guests: also run huge-fault as built at this git revision (baseline-fentry,
        /// baseline-kprobe, baseline-tracepoint-only), interleaved with today's in the same
        /// boot: a change's effect in one run.
        #[arg(long, value_name = "REV")]
        baseline: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::setup(),
        Task::Build => setup::setup().and_then(|()| release::build()),
        Task::Run { args } => setup::setup()
            .and_then(|()| release::build())
            .and_then(|()| run(&args)),
        Task::Test { only } => test::test(only.as_deref()),
        Task::Lab {
            kernel,
            scenario,
            mode,
            keep,
            timeout,
            save_recording,
        } => setup::setup().and_then(|()| {
            lab::lab(&lab::LabArgs {
                kernels: kernel,
                scenarios: scenario,
                modes: mode,
                keep,
                timeout: std::time::Duration::from_secs(timeout),
                bench: None,
                baseline: None,
                save_recording,
            })
        }),
        Task::Bench {
            kernel,
            size,
            reps,
            soak,
            host_only,
            lab_only,
            timeout,
            configs,
            storms,
            baseline,
        } => setup::setup().and_then(|()| {
            bench::bench(&bench::BenchArgs {
                kernels: kernel,
                size,
                reps,
                soak,
                configs,
                storms,
                baseline,
                host: !lab_only,
                guests: !host_only,
                timeout: std::time::Duration::from_secs(timeout),
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .into()
}

/// A `key = "value"` line from `[package.metadata.huge-fault]` of the eBPF crate's manifest.
pub(crate) fn pinned(key: &str) -> Result<String> {
    let manifest = root().join("huge-fault-ebpf/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .with_context(|| format!("{} has no `{key}` pin", manifest.display()))
}

pub(crate) fn progress(msg: &str) {
    eprintln!("[xtask] {msg}");
}

pub(crate) fn status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !st.success() {
        bail!("{shown} failed ({st})");
    }
    Ok(())
}

pub(crate) fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(args: &[String]) -> Result<()> {
    let bin = root().join("target/release/huge-fault");
    let st = Command::new(&bin)
        .args(args)
        .status()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    if !st.success() {
        std::process::exit(st.code().unwrap_or(1));
    }
    Ok(())
}
