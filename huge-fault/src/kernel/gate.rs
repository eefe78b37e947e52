//! When a gated probe is worth attaching: read from sysfs at start and while tracing.

use std::path::Path;

use super::spec::Gate;

/// Where the anonymous THP settings live.
pub const THP_SYSFS: &str = "/sys/kernel/mm/transparent_hugepage";

impl Gate {
    /// What opens the gate now (`Some("hugepages-64kB always")`), or `None` while it is
    /// closed. `thp` is the THP sysfs directory ([`THP_SYSFS`]).
    pub fn open(&self, thp: &Path) -> Option<String> {
        match self {
            Gate::MultiSizeThp => {
                let sizes = mthp_enabled(thp);
                (!sizes.is_empty()).then(|| sizes.join(", "))
            }
        }
    }

    /// The gate while closed, in words, for the attach report.
    pub fn closed(&self) -> &'static str {
        match self {
            Gate::MultiSizeThp => {
                "no multi-size THP size is enabled (hugepages-*kB/enabled): attached while one is"
            }
        }
    }
}

/// The bracketed choice of a sysfs setting: `always [madvise] never` → `madvise`.
pub(super) fn selected(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
}

/// The PMD size in KiB, as the THP sysfs directory `thp` says (`hpage_pmd_size`), else 2048.
pub(super) fn pmd_kib(thp: &Path) -> u64 {
    std::fs::read_to_string(thp.join("hpage_pmd_size"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(2048, |b| b >> 10)
}

/// The multi-size THP sizes enabled under `thp`, as `hugepages-64kB always`: every
/// `hugepages-NkB` smaller than the PMD size whose `enabled` is `always` or `madvise`, or
/// `inherit` while the top-level `enabled` is not `never`. Empty where the kernel has no
/// multi-size THP (no such directories) or none is enabled.
pub fn mthp_enabled(thp: &Path) -> Vec<String> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let pmd_kib = pmd_kib(thp);
    let top = read(&thp.join("enabled"));
    let top = top.as_deref().and_then(selected).unwrap_or("never");
    let mut out: Vec<(u64, String)> = std::fs::read_dir(thp)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let kib: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            if kib >= pmd_kib {
                return None;
            }
            let text = read(&e.path().join("enabled"))?;
            let on = match selected(&text)? {
                "always" | "madvise" => true,
                "inherit" => top != "never",
                _ => false,
            };
            let how = if selected(&text)? == "inherit" {
                format!("inherit {top}")
            } else {
                selected(&text)?.to_string()
            };
            on.then(|| (kib, format!("{name} {how}")))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A THP sysfs directory of its own for each test (the THP settings' tests use it too).
    pub(in crate::kernel) struct Tree(std::path::PathBuf);

    impl Tree {
        pub(in crate::kernel) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(in crate::kernel) fn tree(top: &str, sizes: &[(&str, &str)]) -> Tree {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("hf-gate-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("enabled"), top).unwrap();
        std::fs::write(d.join("hpage_pmd_size"), "2097152\n").unwrap();
        for (size, v) in sizes {
            let dir = d.join(format!("hugepages-{size}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("enabled"), v).unwrap();
        }
        Tree(d)
    }

    #[test]
    fn only_sizes_below_the_pmd_that_are_on_open_the_gate() {
        let off = "always inherit madvise [never]\n";
        // Debian's defaults: every size "never", the PMD size "inherit".
        let d = tree(
            "[always] madvise never\n",
            &[
                ("16kB", off),
                ("64kB", off),
                ("2048kB", "always [inherit] madvise never\n"),
            ],
        );
        assert!(mthp_enabled(d.path()).is_empty());
        assert_eq!(Gate::MultiSizeThp.open(d.path()), None);
        std::fs::write(
            d.path().join("hugepages-64kB/enabled"),
            "[always] inherit madvise never\n",
        )
        .unwrap();
        assert_eq!(mthp_enabled(d.path()), ["hugepages-64kB always"]);
        std::fs::write(
            d.path().join("hugepages-16kB/enabled"),
            "always [inherit] madvise never\n",
        )
        .unwrap();
        assert_eq!(
            Gate::MultiSizeThp.open(d.path()).as_deref(),
            Some("hugepages-16kB inherit always, hugepages-64kB always")
        );
    }

    #[test]
    fn inherit_follows_the_top_level_setting() {
        let d = tree(
            "always madvise [never]\n",
            &[("64kB", "always [inherit] madvise never\n")],
        );
        assert!(mthp_enabled(d.path()).is_empty());
        std::fs::write(d.path().join("enabled"), "always [madvise] never\n").unwrap();
        assert_eq!(mthp_enabled(d.path()), ["hugepages-64kB inherit madvise"]);
    }

    #[test]
    fn a_kernel_without_multi_size_thp_keeps_the_gate_closed() {
        let d = tree("[always] madvise never\n", &[]);
        assert!(mthp_enabled(d.path()).is_empty());
        assert!(mthp_enabled(Path::new("/nonexistent")).is_empty());
    }
}
