//! Project tasks: `cargo xtask setup | build | run | test`.
//!
//! `setup` installs, once, what the eBPF build needs and a fresh machine lacks: the pinned
//! nightly toolchain with `rust-src` and `bpf-linker`. Every other task runs it first.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

mod debian;
mod driver;
mod lab;
#[cfg(test)]
mod layout;
mod selftests;
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup(),
        Task::Build => setup().and_then(|()| build_release()),
        Task::Run { args } => setup()
            .and_then(|()| build_release())
            .and_then(|()| run(&args)),
        Task::Test { only } => test(only.as_deref()),
        Task::Lab {
            kernel,
            scenario,
            mode,
            keep,
            timeout,
            save_recording,
        } => setup().and_then(|()| {
            lab::lab(&lab::LabArgs {
                kernels: kernel,
                scenarios: scenario,
                modes: mode,
                keep,
                timeout: std::time::Duration::from_secs(timeout),
                bench: None,
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
        } => setup().and_then(|()| {
            bench(
                &kernel,
                &size,
                reps,
                soak,
                !lab_only,
                !host_only,
                std::time::Duration::from_secs(timeout),
            )
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

/// `cargo xtask bench`: the host's storms (tracepoint-only, the mode this machine allows),
/// the replay cost and an optional soak, then the lab guests' storms.
fn bench(
    kernels: &[String],
    size: &str,
    reps: u32,
    soak: u64,
    host: bool,
    guests: bool,
    timeout: std::time::Duration,
) -> Result<()> {
    let out = root().join("target/bench-out");
    std::fs::create_dir_all(&out)?;
    if host {
        build_release()?;
        status(cargo().args(["build", "--release", "--package", "hf-lab", "--bins"]))?;
        progress(&format!("bench: host, {size} storms, {reps} repetitions"));
        let bin = root().join("target/release/hf-bench");
        let o = Command::new(&bin)
            .args(["--size", size, "--reps", &reps.to_string(), "--soak"])
            .arg(soak.to_string())
            .arg("--json")
            .arg(out.join("host.json"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        let text = String::from_utf8_lossy(&o.stdout);
        print!("{text}");
        std::fs::write(out.join("host.md"), text.as_bytes())?;
        if !o.status.success() {
            bail!("hf-bench failed on this host ({})", o.status);
        }
    }
    if guests {
        lab::lab(&lab::LabArgs {
            kernels: kernels.to_vec(),
            scenarios: vec![],
            modes: vec![],
            keep: false,
            timeout,
            bench: Some(format!("{size},{reps}")),
            save_recording: false,
        })?;
    }
    progress(&format!("bench: results in {}", out.display()));
    Ok(())
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

fn setup() -> Result<()> {
    let toolchain = pinned("ebpf-toolchain")?;
    let linker_version = pinned("bpf-linker")?;
    if output(Command::new("rustup").arg("--version")).is_none() {
        bail!(
            "rustup is not installed; the eBPF programs need the {toolchain} toolchain with \
             rust-src (see README, \"Requirements\")"
        );
    }
    let have_toolchain =
        output(Command::new("rustup").args(["run", &toolchain, "rustc", "-V"])).is_some();
    let sysroot =
        output(Command::new("rustup").args(["run", &toolchain, "rustc", "--print", "sysroot"]));
    let have_src = sysroot
        .as_deref()
        .map(|s| {
            Path::new(s.trim())
                .join("lib/rustlib/src/rust/library/core")
                .is_dir()
        })
        .unwrap_or(false);
    if !have_toolchain || !have_src {
        let t = Instant::now();
        progress(&format!(
            "installing {toolchain} with rust-src (once; about 20 s)"
        ));
        status(Command::new("rustup").args([
            "toolchain",
            "install",
            &toolchain,
            "--profile",
            "minimal",
            "--component",
            "rust-src,clippy",
            "--no-self-update",
        ]))
        .with_context(|| format!("installing the {toolchain} toolchain"))?;
        progress(&format!("{toolchain} installed in {:.0?}", t.elapsed()));
    }
    // clippy for the eBPF crate (the test suite lints it on its own target).
    if output(Command::new("rustup").args(["run", &toolchain, "cargo", "clippy", "--version"]))
        .is_none()
    {
        progress(&format!("adding clippy to {toolchain}"));
        status(Command::new("rustup").args([
            "component",
            "add",
            "--toolchain",
            &toolchain,
            "clippy",
        ]))
        .with_context(|| format!("adding clippy to {toolchain}"))?;
    }
    let current = output(Command::new("bpf-linker").arg("--version"));
    let ok = current
        .as_deref()
        .is_some_and(|v| v.split_whitespace().any(|w| w == linker_version));
    if !ok {
        let t = Instant::now();
        match current {
            Some(v) => progress(&format!(
                "found {}, need bpf-linker {linker_version}: installing (once; about 1-2 min)",
                v.trim()
            )),
            None => progress(&format!(
                "installing bpf-linker {linker_version} (once; about 1-2 min)"
            )),
        }
        status(Command::new("cargo").args([
            &format!("+{toolchain}"),
            "install",
            "bpf-linker",
            "--version",
            &linker_version,
            "--locked",
            "--quiet",
        ]))
        .context("installing bpf-linker")?;
        progress(&format!(
            "bpf-linker {linker_version} installed in {:.0?}",
            t.elapsed()
        ));
        if output(Command::new("bpf-linker").arg("--version")).is_none() {
            bail!(
                "bpf-linker was installed but is not on PATH; add cargo's bin directory \
                 (usually ~/.cargo/bin) to PATH"
            );
        }
    }
    Ok(())
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn build_release() -> Result<()> {
    progress("building huge-fault (release)");
    status(cargo().args(["build", "--release", "--package", "huge-fault"]))
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

struct Stage {
    name: &'static str,
    run: fn() -> Result<()>,
}

fn test(only: Option<&str>) -> Result<()> {
    let stages = [
        Stage {
            name: "setup",
            run: setup,
        },
        Stage {
            name: "fmt",
            run: || status(cargo().args(["fmt", "--all", "--check"])),
        },
        Stage {
            name: "clippy",
            run: || {
                status(cargo().args([
                    "clippy",
                    "--workspace",
                    "--exclude",
                    "huge-fault-ebpf",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))?;
                // The range insert's kernel glue (the lab driver's), checked on the host.
                status(cargo().args([
                    "clippy",
                    "--package",
                    "hf-range",
                    "--features",
                    "kernel",
                    "--",
                    "-D",
                    "warnings",
                ]))?;
                clippy_ebpf()
            },
        },
        Stage {
            name: "unit",
            run: || {
                status(cargo().args([
                    "test",
                    "--workspace",
                    "--exclude",
                    "huge-fault-ebpf",
                    "--lib",
                    "--bins",
                ]))?;
                // A lab recording kept from an earlier huge-fault must replay to its JSON;
                // `symbols` on a real kernel's Rust symbols (no privileges needed).
                status(cargo().args([
                    "test",
                    "--package",
                    "huge-fault",
                    "--test",
                    "recording_fixture",
                    "--test",
                    "symbols",
                ]))
            },
        },
        Stage {
            name: "verifier",
            run: || {
                status(
                    cargo()
                        .args(["test", "--package", "huge-fault", "--test", "verifier"])
                        .args(["--", "--nocapture"])
                        .env("HUGE_FAULT_REQUIRE_VERIFIER", "1"),
                )
            },
        },
        Stage {
            name: "live",
            run: || {
                // The live table is checked in a real terminal (tmux capture-pane).
                if output(Command::new("tmux").arg("-V")).is_none() {
                    debian::apt_install("tmux", "about 5 s")?;
                }
                // The live tests run the tool as a built artefact of its own package.
                status(cargo().args(["build", "--package", "huge-fault"]))?;
                status(
                    cargo()
                        .args(["test", "--package", "hf-lab", "--test", "live"])
                        .args(["--", "--nocapture", "--test-threads", "1"])
                        .env("HUGE_FAULT_REQUIRE_ROOT", "1"),
                )
            },
        },
        Stage {
            name: "lab",
            run: || {
                lab::lab(&lab::LabArgs {
                    kernels: vec![],
                    scenarios: vec![],
                    modes: vec![],
                    keep: false,
                    timeout: std::time::Duration::from_secs(900),
                    bench: None,
                    save_recording: false,
                })
            },
        },
    ];
    let total = Instant::now();
    let mut times = Vec::new();
    for stage in stages
        .iter()
        .filter(|s| s.name == "setup" || only.is_none_or(|o| s.name.contains(o)))
    {
        progress(&format!("stage {} ...", stage.name));
        let t = Instant::now();
        let result = (stage.run)();
        let took = t.elapsed();
        progress(&format!(
            "stage {} {} in {:.1}s",
            stage.name,
            if result.is_ok() { "passed" } else { "FAILED" },
            took.as_secs_f64()
        ));
        times.push((stage.name, took, result.is_ok()));
        result.with_context(|| format!("stage {}", stage.name))?;
    }
    progress("stage times:");
    for (name, took, _) in &times {
        progress(&format!("  {name:<10} {:>7.1}s", took.as_secs_f64()));
    }
    progress(&format!(
        "  {:<10} {:>7.1}s",
        "total",
        total.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Clippy for the eBPF crate itself, on its real target with the pinned toolchain.
fn clippy_ebpf() -> Result<()> {
    let toolchain = pinned("ebpf-toolchain")?;
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root())
        .args([
            "run",
            &toolchain,
            "cargo",
            "clippy",
            "--package",
            "huge-fault-ebpf",
            "--bins",
        ])
        .args([
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .args(["--target-dir", "target/ebpf-clippy", "--", "-D", "warnings"])
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "--cfg=bpf_target_arch=\"x86_64\"",
        )
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO");
    status(&mut cmd)
}
