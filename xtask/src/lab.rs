//! `cargo xtask lab`: boots Debian kernels in QEMU and runs every lab scenario inside each,
//! with `huge-fault` attached, then prints a scenario × kernel matrix (and writes it as JSON).
//!
//! Host side only: fetching kernels (apt, with its own state under `lab-cache/`, never the
//! system's), building static guest binaries, the initramfs, QEMU, and the serial log. The
//! scenarios and their expectations live in `huge-fault/src/lab.rs`, run by the guest.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{output, progress, root, status};

/// A kernel the lab knows how to fetch.
#[derive(Clone, Copy, Debug)]
pub struct KernelSpec {
    /// Short name used on the command line and in the matrix.
    pub name: &'static str,
    /// Debian suite whose package lists are used.
    pub suite: Suite,
    /// How to find the package: see [`resolve`].
    pub how: Resolve,
    /// Not enabled yet: the matrix shows the column as pending with this reason.
    pub pending: Option<&'static str>,
    /// Modules ship in their own package: (prefix of the kernel package, prefix of the
    /// modules package) to derive its name from the kernel package's.
    pub modules_package: Option<(&'static str, &'static str)>,
    /// Where the lab driver is built for this kernel.
    pub driver_builder: crate::driver::Builder,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    Bookworm,
    Sid,
}

#[derive(Clone, Copy, Debug)]
pub enum Resolve {
    /// The package `linux-image-amd64` depends on (signed, modules included).
    Meta,
    /// The newest `linux-image-<prefix>*<suffix>` package.
    Newest(&'static str, &'static str),
}

pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        name: "6.1",
        suite: Suite::Bookworm,
        how: Resolve::Meta,
        pending: None,
        modules_package: None,
        driver_builder: crate::driver::Builder::Host,
    },
    KernelSpec {
        name: "6.12",
        suite: Suite::Bookworm,
        how: Resolve::Newest("linux-image-6.12.", "+deb12-amd64-unsigned"),
        pending: None,
        modules_package: None,
        driver_builder: crate::driver::Builder::Host,
    },
    KernelSpec {
        name: "7.2",
        suite: Suite::Sid,
        how: Resolve::Newest("linux-binary-unsigned-", "-amd64"),
        pending: None,
        modules_package: Some(("linux-binary-unsigned-", "linux-modules-")),
        driver_builder: crate::driver::Builder::SidChroot,
    },
];

/// NVDIMM backing files and sizes: a 4 GiB one for 1 GiB-aligned devdax, a 2 GiB one for
/// 2 MiB-aligned devdax (the guest tells them apart by size).
/// Two 1 GiB ones carry fsdax ext4 filesystems (one plain mkfs, one with 2 MiB stripe
/// alignment).
const NVDIMMS: &[(&str, u64)] = &[
    ("nvdimm-4g.img", 4 << 30),
    ("nvdimm-2g.img", 2 << 30),
    ("nvdimm-1g-a.img", 1 << 30),
    ("nvdimm-1g-b.img", 1 << 30),
];

pub struct LabArgs {
    pub kernels: Vec<String>,
    pub scenarios: Vec<String>,
    pub modes: Vec<String>,
    pub keep: bool,
    pub timeout: Duration,
    /// A benchmark boot instead of the scenarios: `SIZE,REPS` (with bpftrace in the guest).
    pub bench: Option<String>,
    /// Bring the kprobe pass's recording back to target/lab-out/RELEASE-lab-kprobe.hfrec.
    pub save_recording: bool,
}

fn cache() -> PathBuf {
    root().join("lab-cache")
}

pub(crate) fn apt_opts(suite: Suite) -> Vec<String> {
    let dir = cache().join(match suite {
        Suite::Bookworm => "apt-bookworm",
        Suite::Sid => "apt-sid",
    });
    vec![
        format!(
            "-oDir::Etc::SourceList={}",
            dir.join("sources.list").display()
        ),
        "-oDir::Etc::SourceParts=/dev/null".into(),
        format!("-oDir::State::Lists={}", dir.join("lists").display()),
        format!("-oDir::Cache={}", dir.join("cache").display()),
        "-oDebug::NoLocking=1".into(),
        "-oAPT::Sandbox::User=root".into(),
        "-qq".into(),
    ]
}

/// Package lists for one suite, refreshed when older than a day.
pub(crate) fn apt_update(suite: Suite) -> Result<()> {
    let dir = cache().join(match suite {
        Suite::Bookworm => "apt-bookworm",
        Suite::Sid => "apt-sid",
    });
    std::fs::create_dir_all(dir.join("lists/partial"))?;
    std::fs::create_dir_all(dir.join("cache/archives/partial"))?;
    let sources = match suite {
        Suite::Bookworm => {
            "deb http://deb.debian.org/debian bookworm main\n\
             deb http://deb.debian.org/debian-security bookworm-security main\n"
        }
        Suite::Sid => "deb http://deb.debian.org/debian sid main\n",
    };
    std::fs::write(dir.join("sources.list"), sources)?;
    let stamp = dir.join("updated");
    let fresh = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(86400));
    if !fresh {
        progress(&format!("lab: fetching Debian {suite:?} package lists"));
        status(Command::new("apt-get").args(apt_opts(suite)).arg("update"))
            .context("apt-get update (lab package lists)")?;
        std::fs::write(&stamp, "")?;
    }
    Ok(())
}

/// Compares Debian-ish version strings by their numeric runs.
fn version_key(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// The package name of a kernel spec.
fn resolve(spec: &KernelSpec) -> Result<String> {
    let opts = apt_opts(spec.suite);
    match spec.how {
        Resolve::Meta => {
            let out = output(
                Command::new("apt-cache")
                    .args(&opts)
                    .args(["depends", "linux-image-amd64"]),
            )
            .context("apt-cache depends linux-image-amd64")?;
            out.lines()
                .filter_map(|l| l.trim().strip_prefix("Depends: "))
                .find(|p| p.starts_with("linux-image-"))
                .map(str::to_string)
                .context("linux-image-amd64 has no kernel dependency")
        }
        Resolve::Newest(prefix, suffix) => {
            let out = output(
                Command::new("apt-cache")
                    .args(&opts)
                    .args(["pkgnames", prefix]),
            )
            .context("apt-cache pkgnames")?;
            out.lines()
                .filter(|p| p.starts_with(prefix) && p.ends_with(suffix))
                .max_by_key(|p| version_key(p))
                .map(str::to_string)
                .with_context(|| format!("no {prefix}*{suffix} package in Debian {:?}", spec.suite))
        }
    }
}

struct Kernel {
    package: String,
    vmlinuz: PathBuf,
    root: PathBuf,
}

pub(crate) fn download_unpack(suite: Suite, package: &str, dir: &Path, into: &Path) -> Result<()> {
    let t = Instant::now();
    progress(&format!("lab: downloading {package}"));
    std::fs::create_dir_all(dir)?;
    status(
        Command::new("apt-get")
            .args(apt_opts(suite))
            .args(["download", package])
            .current_dir(dir),
    )
    .with_context(|| format!("apt-get download {package}"))?;
    let deb = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("downloaded .deb not found")?;
    status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(into)).context("dpkg-deb -x")?;
    std::fs::remove_file(&deb)?;
    progress(&format!("lab: {package} unpacked in {:.0?}", t.elapsed()));
    Ok(())
}

/// Downloads and unpacks a kernel package, and its modules package where they are split
/// (cached under lab-cache/kernels/).
fn fetch_kernel(spec: &KernelSpec) -> Result<Kernel> {
    apt_update(spec.suite)?;
    let package = resolve(spec)?;
    let dir = cache().join("kernels").join(&package);
    let unpacked = dir.join("root");
    // The stamp says the image and (where split) the modules are both there.
    let stamp = dir.join("complete-v2");
    if !stamp.exists() {
        let _ = std::fs::remove_dir_all(&unpacked);
        let tmp = dir.join("root.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        download_unpack(spec.suite, &package, &dir, &tmp)?;
        if let Some((from, to)) = spec.modules_package {
            let modules = package.replacen(from, to, 1);
            download_unpack(spec.suite, &modules, &dir, &tmp)?;
        }
        std::fs::rename(&tmp, &unpacked)?;
        std::fs::write(&stamp, "")?;
    }
    let vmlinuz = find_vmlinuz(&unpacked).context("no vmlinuz in the kernel package")?;
    Ok(Kernel {
        package,
        vmlinuz,
        root: unpacked,
    })
}

/// The kernel modules the DAX scenarios need, with their dependencies, in load order.
/// Dependencies come from each module's `.modinfo` (`depends=`), read with `xz -dc` for
/// compressed modules.
fn dax_modules(kernel_root: &Path) -> Result<Vec<PathBuf>> {
    const WANTED: &[&str] = &["nfit", "nd_pmem", "dax_pmem", "device_dax", "ext4"];
    // ext4 needs a crc32c implementation; where it is a module, load the generic one.
    const OPTIONAL: &[&str] = &["crc32c_generic"];
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut stack = vec![];
    for base in [
        kernel_root.join("lib/modules"),
        kernel_root.join("usr/lib/modules"),
    ] {
        if base.is_dir() {
            stack.push(base);
        }
    }
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(n) = p.file_name().and_then(|n| n.to_str())
                && let Some(stem) = n.strip_suffix(".ko").or_else(|| n.strip_suffix(".ko.xz"))
            {
                by_name.insert(stem.replace('-', "_"), p.clone());
            }
        }
    }
    let depends = |p: &Path| -> Result<Vec<String>> {
        let bytes = if p.extension().is_some_and(|e| e == "xz") {
            let out = Command::new("xz")
                .arg("-dc")
                .arg(p)
                .output()
                .context("xz -dc")?;
            out.stdout
        } else {
            std::fs::read(p)?
        };
        let key = b"depends=";
        let Some(i) = bytes.windows(key.len()).position(|w| w == key) else {
            return Ok(vec![]);
        };
        let rest = &bytes[i + key.len()..];
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        Ok(String::from_utf8_lossy(&rest[..end])
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.replace('-', "_"))
            .collect())
    };
    let mut order: Vec<String> = Vec::new();
    fn visit(
        name: &str,
        by_name: &BTreeMap<String, PathBuf>,
        depends: &dyn Fn(&Path) -> Result<Vec<String>>,
        order: &mut Vec<String>,
    ) -> Result<()> {
        if order.iter().any(|o| o == name) {
            return Ok(());
        }
        // Built-in (not a module): nothing to load.
        let Some(path) = by_name.get(name) else {
            return Ok(());
        };
        for dep in depends(path)? {
            visit(&dep, by_name, depends, order)?;
        }
        order.push(name.to_string());
        Ok(())
    }
    for w in WANTED {
        if !by_name.contains_key(*w) {
            bail!("module {w} not found in the kernel package");
        }
        visit(w, &by_name, &depends, &mut order)?;
    }
    for o in OPTIONAL {
        visit(o, &by_name, &depends, &mut order)?;
    }
    // crc32c first: ext4 asks for it at mount time, not at load.
    order.sort_by_key(|n| !OPTIONAL.contains(&n.as_str()));
    Ok(order.iter().map(|n| by_name[n].clone()).collect())
}

/// `boot/vmlinuz-*` (bookworm packages) or `usr/lib/modules/*/vmlinuz*` (the split
/// `linux-binary-*` packages of Debian 14).
fn find_vmlinuz(root: &Path) -> Option<PathBuf> {
    let entries = |d: PathBuf| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let is_vmlinuz = |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
    };
    entries(root.join("boot"))
        .into_iter()
        .find(is_vmlinuz)
        .or_else(|| {
            entries(root.join("usr/lib/modules"))
                .into_iter()
                .flat_map(entries)
                .find(is_vmlinuz)
        })
}

fn ensure_qemu() -> Result<()> {
    if output(Command::new("qemu-system-x86_64").arg("--version")).is_some() {
        return Ok(());
    }
    apt_install("qemu-system-x86", "about 15 s")
}

/// Installs a Debian package on this machine, once (refreshing the system's package lists
/// if the first try fails), with progress lines.
pub(crate) fn apt_install(package: &str, takes: &str) -> Result<()> {
    let t = Instant::now();
    progress(&format!("lab: installing {package} (once; {takes})"));
    let install = || {
        status(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends", package])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if install().is_err() {
        status(Command::new("apt-get").args(["update", "-qq"]))?;
        install()
            .with_context(|| format!("installing {package} (needs root and Debian's archive)"))?;
    }
    progress(&format!("lab: {package} installed in {:.0?}", t.elapsed()));
    Ok(())
}

/// Builds the guest's binaries statically.
fn build_guest_binaries() -> Result<PathBuf> {
    progress("lab: building static guest binaries (huge-fault, hf-workload, hf-lab-init)");
    let target_dir = root().join("target/lab");
    status(
        crate::cargo()
            .args(["build", "--release", "--package", "huge-fault", "--bins"])
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

fn build_initramfs(
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
fn host_program_with_libs(name: &str) -> Result<Vec<(String, PathBuf)>> {
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

fn which_path(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// One guest boot's results.
struct Boot {
    release: Option<String>,
    results: Vec<Value>,
    times: Vec<(String, f64)>,
    /// Why the boot did not end with the done marker.
    failure: Option<String>,
    wall: Duration,
    /// Benchmark boots: the summary table's lines and the raw samples (JSON lines).
    bench_table: Vec<String>,
    bench_samples: Vec<String>,
}

fn boot(kernel: &Kernel, initramfs: &Path, args: &LabArgs, log: &Path) -> Result<Boot> {
    let mut append = String::from(
        "console=ttyS0 rdinit=/init panic=-1 oops=panic quiet loglevel=4 \
         transparent_hugepage=madvise hugepagesz=2M hugepages=4 hugepagesz=1G hugepages=1",
    );
    if !args.scenarios.is_empty() {
        append.push_str(&format!(" hf.only={}", args.scenarios.join(",")));
    }
    if !args.modes.is_empty() {
        append.push_str(&format!(" hf.modes={}", args.modes.join(",")));
    }
    if let Some(b) = &args.bench {
        append.push_str(&format!(" hf.bench={b}"));
    }
    if args.save_recording {
        append.push_str(" hf.save-recording");
    }
    // Emulated NVDIMMs, label-less: each is one region with one raw namespace that the guest
    // turns into a devdax device. Sparse files, fresh per boot.
    let mut nv = Vec::new();
    for (i, (file, size)) in NVDIMMS.iter().enumerate() {
        let path = initramfs.with_file_name(file);
        let f = std::fs::File::create(&path)?;
        f.set_len(*size)?;
        nv.push("-object".to_string());
        nv.push(format!(
            "memory-backend-file,id=nv{i},share=on,mem-path={},size={size}",
            path.display()
        ));
        nv.push("-device".to_string());
        nv.push(format!("nvdimm,memdev=nv{i},id=nvdimm{i}"));
    }
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2"])
        .args(["-machine", "pc,nvdimm=on", "-m", "3G,slots=4,maxmem=12G"])
        .args(&nv)
        // The GPU-like device: a 4 GiB BAR of host RAM (only what is touched is allocated).
        .args([
            "-object",
            "memory-backend-ram,id=vram,size=4G",
            "-device",
            "ivshmem-plain,memdev=vram",
        ])
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut logf = std::fs::File::create(log)?;
    let mut b = Boot {
        release: None,
        results: vec![],
        times: vec![],
        failure: None,
        wall: Duration::ZERO,
        bench_table: vec![],
        bench_samples: vec![],
    };
    let mut done = false;
    let deadline = started + args.timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_secs(5))) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                writeln!(logf, "{line}")?;
                if let Some(r) = line.strip_prefix("HF-LAB-KERNEL ") {
                    b.release = Some(r.trim().to_string());
                    progress(&format!("lab: guest is up: {}", r.trim()));
                } else if let Some(r) = line.strip_prefix("HF-LAB-RESULT ") {
                    match serde_json::from_str::<Value>(r) {
                        Ok(v) => b.results.push(v),
                        Err(e) => b.failure = Some(format!("unreadable result line ({e}): {r}")),
                    }
                } else if let Some(t) = line.strip_prefix("HF-LAB-TIME ") {
                    let mut it = t.split_whitespace();
                    if let (Some(m), Some(s)) = (it.next(), it.next().and_then(|s| s.parse().ok()))
                    {
                        progress(&format!("lab: {} mode: all scenarios in {s:.1}s", m));
                        b.times.push((m.to_string(), s));
                    }
                } else if let Some(t) = line.strip_prefix("HF-LAB-FILE ") {
                    // A file from the guest, hex, appended piece by piece.
                    if let Some((name, hex)) = t.split_once(' ')
                        && !name.contains('/')
                    {
                        let bytes: Option<Vec<u8>> = (0..hex.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                            .collect();
                        let path = log.with_file_name(format!(
                            "{}-{name}",
                            b.release.as_deref().unwrap_or("guest")
                        ));
                        match bytes {
                            Some(bytes) => {
                                let mut f = std::fs::OpenOptions::new()
                                    .create(true)
                                    .append(true)
                                    .open(&path)?;
                                f.write_all(&bytes)?;
                            }
                            None => b.failure = Some(format!("bad file line for {name}")),
                        }
                    }
                } else if let Some(t) = line.strip_prefix("HF-BENCH-TABLE ") {
                    b.bench_table.push(t.to_string());
                } else if let Some(t) = line.strip_prefix("HF-BENCH-SAMPLE ") {
                    b.bench_samples.push(t.to_string());
                } else if line.starts_with("HF-LAB-DONE") {
                    done = true;
                } else if line.contains("Kernel panic") {
                    b.failure = Some(format!("kernel panic: {line}"));
                } else if line.starts_with("init: failure") {
                    b.failure = Some(line.clone());
                }
                if b.failure
                    .as_deref()
                    .is_some_and(|f| f.starts_with("kernel panic"))
                {
                    // Give the panic message a moment to reach the log, then stop.
                    std::thread::sleep(Duration::from_secs(2));
                    while let Ok(l) = rx.try_recv() {
                        writeln!(logf, "{l}")?;
                    }
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    b.failure = Some(format!("timeout after {:.0?}", args.timeout));
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    let st = child.wait()?;
    b.wall = started.elapsed();
    if !done && b.failure.is_none() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut err);
        }
        b.failure = Some(format!(
            "guest stopped before finishing ({st}) {}",
            err.trim()
        ));
    }
    Ok(b)
}

/// The matrix cell of one scenario on one kernel, from its per-mode results.
fn cell(results: &[&Value]) -> (String, bool) {
    if results.is_empty() {
        return ("MISSING".into(), false);
    }
    let status = |r: &Value| r["status"].as_str().unwrap_or("?").to_string();
    if let [one] = results
        && one["mode"] == "-"
    {
        let s = status(one);
        let reason = one["reason"].as_str().unwrap_or("");
        return (format!("{s}: {reason}"), s != "fail");
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| status(r) != "pass")
        .map(|r| format!("{}({})", r["mode"].as_str().unwrap_or("?"), status(r)))
        .collect();
    let pending: usize = results
        .iter()
        .map(|r| {
            r["checks"].as_array().map_or(0, |c| {
                c.iter().filter(|c| c["outcome"] == "pending").count()
            })
        })
        .max()
        .unwrap_or(0);
    if failed.is_empty() {
        let modes: Vec<&str> = results.iter().filter_map(|r| r["mode"].as_str()).collect();
        let mut s = format!("pass [{}]", modes.join(","));
        if pending > 0 {
            s.push_str(&format!(" +{pending} pending"));
        }
        (s, true)
    } else {
        (format!("FAIL {}", failed.join(" ")), false)
    }
}

pub fn lab(args: &LabArgs) -> Result<()> {
    let total = Instant::now();
    let mut stage_times: Vec<(String, Duration)> = Vec::new();
    let specs: Vec<&KernelSpec> = KERNELS
        .iter()
        .filter(|k| args.kernels.is_empty() || args.kernels.iter().any(|n| n == k.name))
        .collect();
    if specs.is_empty() {
        let known: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
        bail!(
            "unknown kernel {:?}; the lab knows {}",
            args.kernels,
            known.join(", ")
        );
    }
    let t = Instant::now();
    ensure_qemu()?;
    stage_times.push(("qemu".into(), t.elapsed()));
    let t = Instant::now();
    let bins = build_guest_binaries()?;
    let rust_obj = crate::driver::rust_object()?;
    let mut selftests = crate::selftests::build(&cache())?;
    if args.bench.is_some() {
        // bpftrace for the guest, with its libraries, from this machine's package.
        if which_path("bpftrace").is_none() {
            apt_install("bpftrace", "about 20 s")?;
        }
        selftests.extend(host_program_with_libs("bpftrace")?);
    }
    let out_dir = root().join("target/lab-out");
    std::fs::create_dir_all(&out_dir)?;
    stage_times.push(("build".into(), t.elapsed()));

    let mut columns: Vec<(String, Option<String>)> = Vec::new(); // (kernel label, pending reason)
    let mut all: Vec<Value> = Vec::new();
    let mut boot_failures: Vec<String> = Vec::new();
    for spec in &specs {
        if let Some(why) = spec.pending {
            columns.push((spec.name.to_string(), Some(why.to_string())));
            continue;
        }
        let t = Instant::now();
        let kernel = fetch_kernel(spec).with_context(|| format!("kernel {}", spec.name))?;
        let mut modules = dax_modules(&kernel.root)
            .with_context(|| format!("DAX modules of kernel {}", spec.name))?;
        // The lab's GPU-like driver, built against this kernel's headers, loaded last.
        modules.push(
            crate::driver::build(spec.suite, &kernel.package, spec.driver_builder, &rust_obj)
                .with_context(|| format!("lab driver for kernel {}", spec.name))?,
        );
        let initramfs = out_dir.join(format!("initramfs-{}.cpio", spec.name));
        build_initramfs(&bins, &modules, &selftests, &initramfs)?;
        stage_times.push((format!("fetch {}", spec.name), t.elapsed()));
        progress(&format!("lab: booting {} ({})", spec.name, kernel.package));
        let log = out_dir.join(format!("serial-{}.log", spec.name));
        let mut b = boot(&kernel, &initramfs, args, &log)?;
        if b.release.is_none()
            && let Some(f) = b
                .failure
                .as_deref()
                .filter(|f| f.starts_with("kernel panic"))
        {
            // The kernel died before the lab's init ran (nothing of ours was loaded yet;
            // seen once on 7.2 under TCG: an int3 oops while patching kernel text during
            // boot). Boot once more; the first log stays beside the second.
            progress(&format!(
                "lab: {} panicked before the lab's init started ({f}); booting it again, once",
                spec.name
            ));
            stage_times.push((format!("boot {} (panicked early)", spec.name), b.wall));
            std::fs::rename(&log, log.with_extension("first-boot.log"))?;
            b = boot(&kernel, &initramfs, args, &log)?;
        }
        stage_times.push((format!("boot {}", spec.name), b.wall));
        for (m, s) in &b.times {
            progress(&format!("lab:   {} {m}: {s:.1}s", spec.name));
        }
        let label = format!(
            "{} ({})",
            spec.name,
            b.release.clone().unwrap_or_else(|| kernel.package.clone())
        );
        if let Some(f) = &b.failure {
            boot_failures.push(format!("{label}: {f} (log: {})", log.display()));
        }
        if args.bench.is_some() {
            let dir = root().join("target/bench-out");
            std::fs::create_dir_all(&dir)?;
            let md = format!("### {label}\n\n{}\n", b.bench_table.join("\n"));
            println!("\n{md}");
            std::fs::write(dir.join(format!("guest-{}.md", spec.name)), md)?;
            std::fs::write(
                dir.join(format!("guest-{}.jsonl", spec.name)),
                b.bench_samples.join("\n"),
            )?;
        }
        for mut r in b.results {
            r["kernel_column"] = Value::from(label.clone());
            all.push(r);
        }
        columns.push((label, None));
        if !args.keep {
            // The downloads stay cached in lab-cache/; the serial logs and the matrix stay
            // for reading; the initramfs and the NVDIMM images go.
            let _ = std::fs::remove_file(&initramfs);
            for n in NVDIMMS {
                let _ = std::fs::remove_file(out_dir.join(n.0));
            }
        }
    }

    // The matrix.
    let scenario_names: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for r in &all {
            if let Some(s) = r["scenario"].as_str()
                && !v.iter().any(|x| x == s)
            {
                v.push(s.to_string());
            }
        }
        v
    };
    let mut ok = boot_failures.is_empty();
    let mut matrix: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut table = vec![{
        let mut h = vec!["scenario".to_string()];
        h.extend(columns.iter().map(|(c, _)| c.clone()));
        h
    }];
    for s in &scenario_names {
        let mut row = vec![s.clone()];
        for (col, pending) in &columns {
            let text = match pending {
                Some(why) => format!("pending: {why}"),
                None => {
                    let rs: Vec<&Value> = all
                        .iter()
                        .filter(|r| {
                            r["scenario"] == s.as_str() && r["kernel_column"] == col.as_str()
                        })
                        .collect();
                    let (text, good) = cell(&rs);
                    ok &= good;
                    text
                }
            };
            matrix
                .entry(s.clone())
                .or_default()
                .insert(col.clone(), text.clone());
            row.push(text);
        }
        table.push(row);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count().min(60))
                .max()
                .unwrap_or(0)
        })
        .collect();
    println!();
    for (n, row) in table.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let c: String = c.chars().take(60).collect();
                format!("{c:<w$}")
            })
            .collect();
        println!("{}", cells.join(" | "));
        if n == 0 {
            println!(
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("-+-")
            );
        }
    }
    for r in &all {
        if r["status"] == "fail" {
            println!(
                "FAIL {} on {} [{}]: {}",
                r["scenario"].as_str().unwrap_or("?"),
                r["kernel_column"].as_str().unwrap_or("?"),
                r["mode"].as_str().unwrap_or("?"),
                r["reason"].as_str().unwrap_or("")
            );
        }
    }
    for f in &boot_failures {
        println!("BOOT FAILED {f}");
    }
    let json = serde_json::json!({
        "schema": "huge-fault.lab-matrix",
        "version": 1,
        "kernels": columns.iter().map(|(c, p)| serde_json::json!({"kernel": c, "pending": p})).collect::<Vec<_>>(),
        "matrix": matrix,
        "results": all,
        "boot_failures": boot_failures,
        "stage_times_s": stage_times.iter().map(|(n, d)| (n.clone(), d.as_secs_f64())).collect::<BTreeMap<_, _>>(),
    });
    let json_path = out_dir.join("matrix.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)?;
    println!("\nmatrix written to {}", json_path.display());
    progress("lab stage times:");
    for (n, d) in &stage_times {
        progress(&format!("  {n:<14} {:>7.1}s", d.as_secs_f64()));
    }
    progress(&format!(
        "  {:<14} {:>7.1}s",
        "total",
        total.elapsed().as_secs_f64()
    ));
    if !ok {
        bail!(
            "the lab failed (see the matrix and the serial logs in {})",
            out_dir.display()
        );
    }
    Ok(())
}
