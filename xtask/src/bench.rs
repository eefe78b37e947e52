//! `cargo xtask bench`: fault storms untraced and under each tracer, on this host and in
//! the lab guests.

use anyhow::{Context as _, Result, bail};
use std::process::Command;

use crate::{cargo, lab, progress, root, status};

/// What `cargo xtask bench` runs.
pub struct BenchArgs {
    pub kernels: Vec<String>,
    pub size: String,
    pub reps: u32,
    pub soak: u64,
    /// The lab guests' configurations and storms (empty: all).
    pub configs: Vec<String>,
    pub storms: Vec<String>,
    /// A git revision whose huge-fault the guests also run (`baseline-*` configurations).
    pub baseline: Option<String>,
    pub host: bool,
    pub guests: bool,
    pub timeout: std::time::Duration,
}

/// `cargo xtask bench`: the host's storms (tracepoint-only, the mode this machine allows),
/// the replay cost and an optional soak, then the lab guests' storms.
pub fn bench(args: &BenchArgs) -> Result<()> {
    let BenchArgs {
        kernels,
        size,
        reps,
        soak,
        configs,
        storms,
        baseline,
        host,
        guests,
        timeout,
    } = args;
    let (reps, soak, timeout) = (*reps, *soak, *timeout);
    let out = root().join("target/bench-out");
    std::fs::create_dir_all(&out)?;
    if *host {
        crate::release::build()?;
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
    if *guests {
        let baseline = baseline.as_deref().map(build_baseline).transpose()?;
        lab::lab(&lab::LabArgs {
            kernels: kernels.to_vec(),
            scenarios: vec![],
            modes: vec![],
            keep: false,
            timeout,
            bench: Some(format!(
                "{size},{reps},{},{}",
                configs.join("+"),
                storms.join("+")
            )),
            save_recording: false,
            baseline,
        })?;
    }
    progress(&format!("bench: results in {}", out.display()));
    Ok(())
}

/// Builds huge-fault as it was at `rev`, statically as the guests need it, in a git
/// worktree of its own under target/bench-baseline/ (kept: a second bench of the same
/// revision builds nothing). Returns the binary.
fn build_baseline(rev: &str) -> Result<std::path::PathBuf> {
    let base = root().join("target/bench-baseline");
    let commit = git_out(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
        .with_context(|| format!("{rev} is not a revision of this repository"))?;
    let tree = base.join(&commit[..12]);
    if !tree.join("Cargo.toml").exists() {
        std::fs::create_dir_all(&base)?;
        let _ = std::fs::remove_dir_all(&tree);
        status(
            Command::new("git")
                .args(["worktree", "add", "--detach", "--force"])
                .arg(&tree)
                .arg(&commit),
        )?;
    }
    progress(&format!(
        "bench: building the baseline huge-fault at {rev} ({})",
        &commit[..12]
    ));
    status(
        cargo()
            .current_dir(&tree)
            .args(["build", "--release", "--package", "huge-fault"])
            .args(["--target", "x86_64-unknown-linux-gnu"])
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;
    Ok(tree.join("target/x86_64-unknown-linux-gnu/release/huge-fault"))
}

fn git_out(args: &[&str]) -> Result<String> {
    let o = Command::new("git")
        .args(args)
        .current_dir(root())
        .output()?;
    if !o.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}
