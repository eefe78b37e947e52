//! `cargo xtask test`: every stage in order, each one's time printed.

use std::{process::Command, time::Instant};

use anyhow::{Context as _, Result};

use crate::{cargo, debian, lab, output, pinned, progress, root, setup::setup, status};

struct Stage {
    name: &'static str,
    run: fn() -> Result<()>,
}

pub fn test(only: Option<&str>) -> Result<()> {
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
                // `symbols` on a real kernel's Rust symbols (no privileges needed); every input the
                // fuzzers once crashed the tool with.
                status(cargo().args([
                    "test",
                    "--package",
                    "huge-fault",
                    "--test",
                    "recording_fixture",
                    "--test",
                    "symbols",
                    "--test",
                    "fuzz_finds",
                ]))
            },
        },
        Stage {
            name: "fuzz",
            run: crate::fuzz::fuzz,
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
                // The exporter is scraped by a real Prometheus and its exposition parsed by
                // an independent OpenMetrics parser.
                if output(Command::new("prometheus").arg("--version")).is_none()
                    || output(
                        Command::new("/usr/bin/python3").args(["-c", "import prometheus_client"]),
                    )
                    .is_none()
                {
                    debian::apt_install("prometheus", "about 30 s")?;
                    debian::apt_install("python3-prometheus-client", "about 5 s")?;
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
                    baseline: None,
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
