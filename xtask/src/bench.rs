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
        })?;
    }
    progress(&format!("bench: results in {}", out.display()));
    Ok(())
}
