//! The kernels the lab boots: which Debian package each is, fetched and unpacked once, and
//! the DAX modules the guest loads.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    debian::{Suite, apt_opts, apt_update, cache, download_unpack},
    output,
};
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

pub struct Kernel {
    pub package: String,
    pub vmlinuz: PathBuf,
    pub root: PathBuf,
}

/// Downloads and unpacks a kernel package, and its modules package where they are split
/// (cached under lab-cache/kernels/).
pub fn fetch_kernel(spec: &KernelSpec) -> Result<Kernel> {
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

/// The kernel modules the DAX and vfio scenarios need, with their dependencies, in load order.
/// Dependencies come from each module's `.modinfo` (`depends=`), read with `xz -dc` for
/// compressed modules.
pub fn guest_modules(kernel_root: &Path) -> Result<Vec<PathBuf>> {
    const WANTED: &[&str] = &[
        "nfit",
        "nd_pmem",
        "dax_pmem",
        "device_dax",
        "ext4",
        "vfio_iommu_type1",
        "vfio_pci",
        // DRM: bochs (the standard VGA; TTM through the VRAM helper up to 6.12, GEM shmem
        // since 6.13), qxl (TTM), vgem (GEM shmem, no device).
        "bochs",
        "qxl",
        "vgem",
    ];
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
