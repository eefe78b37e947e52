//! What the running kernel offers: kprobes, its build configuration, its functions
//! (/proc/kallsyms), and why fentry was refused.

use std::path::Path;

use super::{extras::CALL_MODE_EXTRAS, probes::LIFECYCLE, spec::Target};

/// The functions of /proc/kallsyms a suffix target names, sorted, without duplicates.
pub fn functions_with_suffix<'a>(
    functions: &'a std::collections::HashSet<String>,
    suffix: &str,
) -> Vec<&'a str> {
    let mut v: Vec<&str> = functions
        .iter()
        .map(String::as_str)
        // `__pfx_*` padding symbols are already left out by the kallsyms parser.
        .filter(|f| f.ends_with(suffix) && f.len() > suffix.len() && !f.contains('.'))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The kernel's build configuration, where the kernel exposes it.
pub fn kernel_config_value(key: &str) -> Option<String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let path = format!("/boot/config-{}", release.trim());
    let text = std::fs::read_to_string(path).ok()?;
    config_lookup(&text, key)
}

/// `y`, `m`, a value, or `n` for "is not set"; `None` when the key is absent.
pub fn config_lookup(config: &str, key: &str) -> Option<String> {
    for line in config.lines() {
        if let Some(v) = line.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
        if line.strip_prefix("# ").and_then(|r| r.strip_prefix(key)) == Some(" is not set") {
            return Some("n".into());
        }
    }
    None
}

/// Why kprobes cannot be used on this kernel, or `None` when they look available.
pub fn kprobes_unavailable(sysfs: &Path, tracefs: Option<&Path>) -> Option<String> {
    if sysfs.join("bus/event_source/devices/kprobe").exists() {
        return None;
    }
    if tracefs.is_some_and(|t| t.join("kprobe_events").exists()) {
        return None;
    }
    let why = match kernel_config_value("CONFIG_KPROBES").as_deref() {
        Some("n") => "kernel built without CONFIG_KPROBES",
        Some(_) => "kernel has CONFIG_KPROBES but exposes neither the kprobe PMU nor kprobe_events",
        None => "kernel built without CONFIG_KPROBES (no kprobe PMU, no kprobe_events)",
    };
    Some(format!("kprobes unavailable: {why}"))
}

/// The functions of a /proc/kallsyms listing (text symbols, modules included) that a probe
/// may target: to tell a probe on a function this kernel does not have from one that
/// failed, and to expand suffix targets. Only those are kept (a kernel has 100,000 text
/// symbols; the tool's memory peaks at start-up).
pub fn kallsyms_functions(text: &str) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    let mut suffixes = Vec::new();
    for p in LIFECYCLE.iter().chain(CALL_MODE_EXTRAS) {
        match p.target {
            Target::Function(f) => {
                names.insert(f);
            }
            Target::Suffix(s) => {
                suffixes.push(s);
                names.extend(super::spec::NAMED_HANDLERS);
            }
            _ => {}
        }
    }
    crate::symbols::text_symbols(text)
        .map(|(name, _)| name)
        .filter(|n| names.contains(n) || suffixes.iter().any(|s| n.ends_with(s)))
        .map(str::to_string)
        .collect()
}

/// Explains a failure to load an fentry/fexit program, from the errno.
pub fn fentry_refusal(errno: Option<i32>) -> String {
    match errno {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "fentry refused: the kernel denied loading a tracing program (EPERM): no BPF \
             trampoline support (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS) or ftrace disabled"
                .into()
        }
        Some(libc::ENOTSUPP_KERNEL) | Some(libc::EOPNOTSUPP) => {
            "fentry unsupported by this kernel (no BPF trampoline)".into()
        }
        Some(libc::ENOENT) | Some(libc::ESRCH) => {
            "fentry target has no BTF in this kernel (handle_mm_fault missing from vmlinux BTF)"
                .into()
        }
        Some(e) => format!(
            "fentry unavailable: {}",
            std::io::Error::from_raw_os_error(e)
        ),
        None => "fentry unavailable".into(),
    }
}

/// Linux's internal ENOTSUPP (524), which the BPF syscall returns for missing trampolines.
mod libc {
    pub use ::libc::*;
    pub const ENOTSUPP_KERNEL: i32 = 524;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_lists_text_symbols_only() {
        let text = "0000000000000000 T vmf_insert_pfn_pmd_prot\n\
                    0000000000000000 t do_set_pmd\n\
                    0000000000000000 D some_data\n\
                    0000000000000000 t dev_dax_huge_fault\t[device_dax]\n\
                    0000000000000000 t drm_gem_shmem_any_fault\t[drm_shmem_helper]\n";
        let f = kallsyms_functions(&format!("{text}0000000000000000 T printk\n"));
        assert!(f.contains("vmf_insert_pfn_pmd_prot") && f.contains("do_set_pmd"));
        assert!(f.contains("dev_dax_huge_fault"));
        // A huge_fault handler known by another name is kept for the handler probes.
        assert!(f.contains("drm_gem_shmem_any_fault"));
        assert!(!f.contains("some_data"));
        // Functions no probe targets are not kept.
        assert!(!f.contains("printk"));
    }

    #[test]
    fn suffix_targets_expand_from_kallsyms() {
        let f = kallsyms_functions(
            "0 t dev_dax_huge_fault\t[device_dax]\n0 t ext4_dax_huge_fault\t[ext4]\n\
             0 T handle_mm_fault\n0 t foo_huge_fault.cold\n0 t _huge_fault\n\
             0 t __pfx_dev_dax_huge_fault\n",
        );
        assert_eq!(
            functions_with_suffix(&f, "_huge_fault"),
            ["dev_dax_huge_fault", "ext4_dax_huge_fault"]
        );
    }

    #[test]
    fn config_lookup_reads_set_and_unset_keys() {
        let cfg = "CONFIG_KPROBES=y\n# CONFIG_FTRACE is not set\nCONFIG_HZ=250\n";
        assert_eq!(config_lookup(cfg, "CONFIG_KPROBES").as_deref(), Some("y"));
        assert_eq!(config_lookup(cfg, "CONFIG_FTRACE").as_deref(), Some("n"));
        assert_eq!(config_lookup(cfg, "CONFIG_HZ").as_deref(), Some("250"));
        assert_eq!(config_lookup(cfg, "CONFIG_KPROBE"), None);
    }

    #[test]
    fn kprobe_detection_looks_for_the_pmu_or_kprobe_events() {
        let dir = std::env::temp_dir().join(format!("hf-kp-{}", std::process::id()));
        let sys = dir.join("sys");
        let tr = dir.join("tracing");
        std::fs::create_dir_all(sys.join("bus/event_source/devices")).unwrap();
        std::fs::create_dir_all(&tr).unwrap();
        let why = kprobes_unavailable(&sys, Some(&tr)).expect("nothing there");
        assert!(why.starts_with("kprobes unavailable: "), "{why}");
        std::fs::write(tr.join("kprobe_events"), "").unwrap();
        assert_eq!(kprobes_unavailable(&sys, Some(&tr)), None);
        std::fs::remove_file(tr.join("kprobe_events")).unwrap();
        std::fs::create_dir_all(sys.join("bus/event_source/devices/kprobe")).unwrap();
        assert_eq!(kprobes_unavailable(&sys, None), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
