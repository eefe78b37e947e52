//! The guest's initramfs: the static binaries, kernel modules and host tools it runs.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::{progress, root, status};

/// Builds the guest's binaries statically.
pub fn build_guest_binaries() -> Result<PathBuf> {
    progress("lab: building static guest binaries (huge-fault, hf-workload, hf-lab-init)");
    let target_dir = root().join("target/lab");
    status(
        crate::cargo()
            .args(["build", "--release", "--package", "huge-fault"])
            .args(["--package", "hf-lab", "--bins"])
            .args(["--target", "x86_64-unknown-linux-gnu", "--target-dir"])
            .arg(&target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;
    Ok(target_dir.join("x86_64-unknown-linux-gnu/release"))
}

/// A minimal `newc` cpio writer for the initramfs.
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Self {
        Self {
            out: Vec::new(),
            ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.ino += 1;
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
        self.out.extend_from_slice(data);
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    fn file(&mut self, name: &str, data: &[u8]) {
        self.entry(name, 0o100755, data);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

pub fn build_initramfs(
    bins: &Path,
    modules: &[PathBuf],
    extra_bins: &[(String, PathBuf)],
    out: &Path,
) -> Result<()> {
    let mut c = Cpio::new();
    for d in ["bin", "dev", "proc", "sys", "tmp", "mnt", "modules"] {
        c.dir(d);
    }
    // Loaded by the init in name order: the index keeps the dependency order.
    for (i, m) in modules.iter().enumerate() {
        let name = m
            .file_name()
            .and_then(|n| n.to_str())
            .context("module name")?;
        c.file(&format!("modules/{i:02}-{name}"), &std::fs::read(m)?);
    }
    let read = |n: &str| std::fs::read(bins.join(n)).with_context(|| format!("reading {n}"));
    c.file("init", &read("hf-lab-init")?);
    // mkfs.ext4 from this machine, with the shared libraries ldd names, at the same paths.
    let mkfs = which_path("mkfs.ext4").context("mkfs.ext4 not found (install e2fsprogs)")?;
    let mut files = vec![mkfs.clone()];
    let ldd = Command::new("ldd").arg(&mkfs).output().context("ldd")?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(PathBuf::from(p));
        }
    }
    let mut dirs = std::collections::BTreeSet::new();
    for f in &files {
        let mut acc = PathBuf::new();
        for comp in f.parent().into_iter().flat_map(|p| p.components()).skip(1) {
            acc.push(comp);
            dirs.insert(acc.clone());
        }
    }
    for d in &dirs {
        let d = d.to_string_lossy();
        if !["bin", "dev", "proc", "sys", "tmp", "mnt", "modules"].contains(&d.as_ref()) {
            c.dir(&d);
        }
    }
    for f in &files {
        // Resolve symlinks: the initramfs gets the file's content under the linked name.
        let data = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        c.file(f.to_string_lossy().trim_start_matches('/'), &data);
    }
    c.file("bin/huge-fault", &read("huge-fault")?);
    c.file("bin/hf-workload", &read("hf-workload")?);
    // What the initramfs holds already, so that extra libraries are added once.
    let mut made: std::collections::BTreeSet<String> = dirs
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .chain(
            files
                .iter()
                .map(|f| f.to_string_lossy().trim_start_matches('/').to_string()),
        )
        .chain(
            ["bin", "dev", "proc", "sys", "tmp", "mnt", "modules"]
                .iter()
                .map(|d| d.to_string()),
        )
        .collect();
    for (name, path) in extra_bins {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        match name.strip_prefix('/') {
            // A library at its own path (its directories first).
            Some(at) => {
                let mut acc = String::new();
                for comp in Path::new(at).parent().into_iter().flat_map(|p| p.iter()) {
                    if !acc.is_empty() {
                        acc.push('/');
                    }
                    acc.push_str(&comp.to_string_lossy());
                    if !made.contains(&acc) {
                        c.dir(&acc);
                        made.insert(acc.clone());
                    }
                }
                if !made.contains(at) {
                    c.file(at, &data);
                    made.insert(at.to_string());
                }
            }
            None => c.file(&format!("bin/{name}"), &data),
        }
    }
    std::fs::write(out, c.finish())?;
    Ok(())
}

/// A program of this machine for the guest: itself as `bin/NAME`, and every shared
/// library `ldd` names at its own path.
pub fn host_program_with_libs(name: &str) -> Result<Vec<(String, PathBuf)>> {
    let exe = which_path(name).with_context(|| format!("{name} not found"))?;
    let mut v = vec![(name.to_string(), exe.clone())];
    let ldd = Command::new("ldd").arg(&exe).output().context("ldd")?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
            v.push((format!("/{}", p.trim_start_matches('/')), PathBuf::from(p)));
        }
    }
    Ok(v)
}

pub fn which_path(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}
