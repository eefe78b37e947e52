//! `cargo xtask setup`: what the eBPF build needs and a fresh machine lacks, installed
//! once: the pinned nightly toolchain with `rust-src` and `clippy`, and `bpf-linker`.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};

use crate::{output, pinned, progress, status};

pub fn setup() -> Result<()> {
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
