//! Builds the eBPF object with the pinned toolchain and embeds it (see `EBPF_OBJECT` in
//! src/loader/mod.rs). `AYA_BUILD_SKIP=1` skips it and embeds an empty object (the binary
//! then refuses to trace; the fuzzers build the library that way).
use std::process::Command;

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn pinned(manifest: &str, key: &str) -> anyhow::Result<String> {
    manifest
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .ok_or_else(|| anyhow!("huge-fault-ebpf/Cargo.toml has no `{key}` pin"))
}

fn main() -> anyhow::Result<()> {
    let manifest_path = "../huge-fault-ebpf/Cargo.toml";
    println!("cargo:rerun-if-changed={manifest_path}");
    let manifest = std::fs::read_to_string(manifest_path).context("reading the eBPF manifest")?;
    let toolchain = pinned(&manifest, "ebpf-toolchain")?;
    let skip =
        std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if !skip {
        let have = Command::new("rustup")
            .args(["run", &toolchain, "rustc", "-V"])
            .output()
            .is_ok_and(|o| o.status.success());
        let linker = which::which("bpf-linker").is_ok();
        if !have || !linker {
            return Err(anyhow!(
                "the eBPF programs need the {toolchain} toolchain with rust-src and bpf-linker; \
                 run `cargo xtask setup` once (see README)"
            ));
        }
    }
    if skip {
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?);
        for name in ["huge-fault-ebpf", "huge-fault-ebpf-hash"] {
            let object = out.join(name);
            if !object.exists() {
                std::fs::write(&object, []).context("writing the empty eBPF object")?;
            }
        }
    }
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "huge-fault-ebpf")
        .ok_or_else(|| anyhow!("huge-fault-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .expect("manifest has a parent")
        .as_str();
    // The nested cargo's progress lines would reach the user as build-script warnings.
    // SAFETY: build scripts are single-threaded here.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
}
