//! The lab driver `hfgpu` (lab-driver/): its Rust range-insert object and one module build
//! per lab kernel, against that kernel's own Debian headers.
//!
//! The Rust part is the `hf-range` crate built as a static library for
//! `x86_64-unknown-none` with the kernel's code model; the crate's object is taken out of
//! the archive and linked into the module by kbuild. Bookworm's kernels (6.1, 6.12) were
//! built with gcc 12, like this machine's, so their modules build here. Newer kernels come
//! from unstable, built with a newer gcc whose flags gcc 12 rejects: those build in a
//! debootstrap'd unstable chroot under lab-cache/, made once.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    debian::{Suite, apt_install, apt_opts, download_unpack},
    output, pinned, progress, root, status,
};

/// Builds the hf-range crate for the kernel and returns its object file.
pub fn rust_object() -> Result<PathBuf> {
    let toolchain = pinned("ebpf-toolchain")?;
    let target_dir = root().join("target/kernel-rs");
    progress("lab: building the hf_range object for the kernel (x86_64-unknown-none)");
    status(
        Command::new("rustup")
            .args(["run", &toolchain, "cargo", "rustc"])
            .args(["--package", "hf-range", "--lib", "--release"])
            .args(["--no-default-features", "--features", "kernel"])
            .args(["--target", "x86_64-unknown-none", "-Z", "build-std=core"])
            .args(["--crate-type", "staticlib", "--target-dir"])
            .arg(&target_dir)
            .current_dir(root())
            // The kernel's code model and no red zone; returns through the kernel's return
            // thunk (retbleed/SRSO mitigations); v0 names for the demangler.
            .env(
                "RUSTFLAGS",
                "-C code-model=kernel -C relocation-model=static -C no-redzone=yes \
                 -C symbol-mangling-version=v0 -Z function-return=thunk-extern",
            )
            .env("CARGO_PROFILE_RELEASE_LTO", "true")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
            .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"),
    )
    .context("building hf-range for the kernel")?;
    let archive = target_dir.join("x86_64-unknown-none/release/libhf_range.a");
    let list = output(Command::new("ar").arg("t").arg(&archive)).context("ar t libhf_range.a")?;
    let member = list
        .lines()
        .find(|m| m.starts_with("hf_range-"))
        .context("no hf_range object in libhf_range.a")?
        .to_string();
    let dir = target_dir.join("object");
    std::fs::create_dir_all(&dir)?;
    status(
        Command::new("ar")
            .arg("x")
            .arg(&archive)
            .arg(&member)
            .current_dir(&dir),
    )?;
    let obj = dir.join("hf_range_rs.o");
    std::fs::rename(dir.join(&member), &obj)?;
    Ok(obj)
}

/// Where a kernel's module is built.
#[derive(Clone, Copy, Debug)]
pub enum Builder {
    /// This machine, with the headers unpacked under lab-cache/headers.
    Host,
    /// A Debian unstable chroot under lab-cache/ (gcc of unstable).
    SidChroot,
}

/// Copies the driver sources and the Rust object into `dir`, with the `.cmd` file kbuild
/// (modpost) expects next to every object.
fn stage(dir: &Path, rust_obj: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    for f in ["hfgpu_main.c", "hfgpu.h", "Kbuild"] {
        std::fs::copy(root().join("lab-driver").join(f), dir.join(f))
            .with_context(|| format!("lab-driver/{f}"))?;
    }
    std::fs::copy(rust_obj, dir.join("hf_range_rs.o"))?;
    std::fs::write(
        dir.join(".hf_range_rs.o.cmd"),
        "savedcmd_hf_range_rs.o := true\ncmd_hf_range_rs.o := true\n",
    )?;
    Ok(())
}

/// kbuild's target and overrides. No pahole here: the module goes without BTF (huge-fault
/// finds its functions in /proc/kallsyms, and kprobes need no BTF).
const MAKE_ARGS: [&str; 2] = ["CONFIG_DEBUG_INFO_BTF_MODULES=", "modules"];

/// Fails with the command's output when it did not succeed.
fn succeeded(out: std::process::Output, what: &str) -> Result<()> {
    if !out.status.success() {
        bail!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Builds hfgpu.ko for the kernel of `image_package` (a `linux-image-*` or
/// `linux-binary-unsigned-*` package) and returns its path.
pub fn build(
    suite: Suite,
    image_package: &str,
    builder: Builder,
    rust_obj: &Path,
) -> Result<PathBuf> {
    let t = Instant::now();
    // linux-image-6.1.0-56-amd64, linux-image-6.12.117+deb12-amd64-unsigned,
    // linux-binary-unsigned-7.2.13+deb14-amd64 → linux-headers-<abi>-<flavour>.
    let abi = image_package
        .trim_start_matches("linux-image-")
        .trim_start_matches("linux-binary-unsigned-")
        .trim_end_matches("-unsigned");
    let headers = format!("linux-headers-{abi}");
    let ko = match builder {
        Builder::Host => build_on_host(suite, &headers, rust_obj)?,
        Builder::SidChroot => build_in_chroot(&headers, rust_obj)?,
    };
    progress(&format!(
        "lab: hfgpu.ko built for {abi} in {:.0?}",
        t.elapsed()
    ));
    Ok(ko)
}

fn build_on_host(suite: Suite, headers: &str, rust_obj: &Path) -> Result<PathBuf> {
    let cache = root().join("lab-cache/headers").join(headers);
    let unpacked = cache.join("root");
    if !cache.join("complete").exists() {
        let _ = std::fs::remove_dir_all(&unpacked);
        // The flavour's headers, the common headers and kbuild tools they depend on.
        let deps = output(
            Command::new("apt-cache")
                .args(apt_opts(suite))
                .args(["depends", headers]),
        )
        .with_context(|| format!("apt-cache depends {headers}"))?;
        let mut packages = vec![headers.to_string()];
        packages.extend(
            deps.lines()
                .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends: "))
                .filter(|p| p.starts_with("linux-headers-") || p.starts_with("linux-kbuild-"))
                .map(str::to_string),
        );
        for p in &packages {
            download_unpack(suite, p, &cache, &unpacked)?;
        }
        std::fs::write(cache.join("complete"), "")?;
    }
    let src = unpacked.join("usr/src").join(headers);
    let common = std::fs::read_dir(unpacked.join("usr/src"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("-common"))
        })
        .context("no linux-headers-*-common in the headers packages")?;
    // The flavour's Makefile includes the common one by its installed (absolute) path.
    std::fs::write(
        src.join("Makefile"),
        format!("include {}/Makefile\n", common.display()),
    )?;
    let dir = root().join("target/lab/hfgpu").join(headers);
    stage(&dir, rust_obj)?;
    let out = Command::new("make")
        .arg("-C")
        .arg(&src)
        .arg(format!("M={}", dir.display()))
        .args(MAKE_ARGS)
        .output()
        .context("make (kbuild)")?;
    succeeded(out, &format!("building hfgpu.ko against {headers}"))?;
    Ok(dir.join("hfgpu.ko"))
}

const DEBIAN: &str = "http://deb.debian.org/debian";
const APT_NO_EXPIRY: [&str; 4] = [
    "-o",
    "Acquire::Check-Valid-Until=false",
    "-o",
    "Acquire::Check-Date=false",
];

fn ensure_debootstrap() -> Result<()> {
    if output(Command::new("debootstrap").arg("--version")).is_some() {
        return Ok(());
    }
    apt_install("debootstrap", "a few seconds")
}

/// Runs `sh -c script` in the chroot with /proc mounted.
fn in_chroot(chroot: &Path, script: &str) -> Result<std::process::Output> {
    let proc_dir = chroot.join("proc");
    let mounted = Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(&proc_dir)
        .status()
        .is_ok_and(|s| s.success());
    let out = Command::new("chroot")
        .arg(chroot)
        .args(["sh", "-c", script])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output();
    if mounted {
        let _ = Command::new("umount").arg(&proc_dir).status();
    }
    out.context("chroot")
}

fn build_in_chroot(headers: &str, rust_obj: &Path) -> Result<PathBuf> {
    let chroot = root().join("lab-cache/sid-build");
    if !chroot.join("complete").exists() {
        ensure_debootstrap()?;
        let t = Instant::now();
        progress("lab: debootstrap of a Debian unstable build chroot (once; about 40 s)");
        // A half-made chroot may still have /proc mounted: never delete through it.
        let _ = Command::new("umount")
            .arg(chroot.join("proc"))
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&chroot);
        status(
            Command::new("debootstrap")
                .args([
                    "--variant=minbase",
                    // The headers package pulls in the gcc its kernel was built with.
                    "--include=make,libc6-dev,libelf-dev,bc,flex,bison,kmod",
                    "sid",
                ])
                .arg(&chroot)
                .arg(DEBIAN)
                .stdout(std::process::Stdio::null()),
        )
        .context("debootstrap sid")?;
        std::fs::write(chroot.join("complete"), "")?;
        progress(&format!("lab: build chroot ready in {:.0?}", t.elapsed()));
    }
    if !chroot.join("usr/src").join(headers).exists() {
        progress(&format!("lab: installing {headers} in the build chroot"));
        let opts = APT_NO_EXPIRY.join(" ");
        let out = in_chroot(
            &chroot,
            &format!(
                "apt-get {opts} update -qq && apt-get {opts} install -y -qq \
                 --no-install-recommends {headers}"
            ),
        )?;
        succeeded(out, &format!("installing {headers} in the build chroot"))?;
    }
    let inside = format!("/build/{headers}");
    let dir = chroot.join(inside.trim_start_matches('/'));
    stage(&dir, rust_obj)?;
    let out = in_chroot(
        &chroot,
        &format!(
            "make -C /usr/src/{headers} M={inside} {}",
            MAKE_ARGS.join(" ")
        ),
    )?;
    succeeded(
        out,
        &format!("building hfgpu.ko against {headers} in the chroot"),
    )?;
    Ok(dir.join("hfgpu.ko"))
}
