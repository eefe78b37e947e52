//! Where the kernel's /proc/kallsyms does not list its THP settings words (no
//! `CONFIG_KALLSYMS_ALL`: the lab's 7.2), huge-fault reads its own copy of sysfs, made every
//! 200 ms while tracing: a setting a scenario changes is seen up to 200 ms late. The lab
//! then waits for the copy before the workload runs (and after the setting is restored), as
//! a user who changes the setting while tracing must.

use std::time::Duration;

/// Longer than two of the tool's 200 ms looks at sysfs.
const SETTLE: Duration = Duration::from_millis(450);

/// Whether writing `pairs` over the `old` values changed an anonymous THP `enabled`
/// setting (the top level or a size's).
pub fn changes_thp_enabled(pairs: &[(&str, &str)], old: &[(String, String)]) -> bool {
    pairs.iter().zip(old).any(|((path, new), (_, was))| {
        path.starts_with("/sys/kernel/mm/transparent_hugepage/")
            && path.ends_with("/enabled")
            && new != was
    })
}

/// Waits for the tool's copy when a THP setting changed on a kernel whose words it cannot
/// read.
pub fn settle(changed: bool) {
    if changed && !lists_thp_words(&std::fs::read_to_string("/proc/kallsyms").unwrap_or_default()) {
        std::thread::sleep(SETTLE);
    }
}

/// Whether a /proc/kallsyms text lists `transparent_hugepage_flags` at an address.
fn lists_thp_words(kallsyms: &str) -> bool {
    kallsyms.lines().any(|l| {
        let mut it = l.split_whitespace();
        matches!((it.next(), it.next(), it.next()), (Some(a), Some(_), Some("transparent_hugepage_flags")) if !a.trim_start_matches('0').is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_changed_thp_enabled_setting_counts() {
        let top = "/sys/kernel/mm/transparent_hugepage/enabled";
        let defrag = "/sys/kernel/mm/transparent_hugepage/defrag";
        let old = |v: &[&str]| -> Vec<(String, String)> {
            v.iter().map(|s| (String::new(), s.to_string())).collect()
        };
        assert!(changes_thp_enabled(&[(top, "never")], &old(&["madvise"])));
        assert!(!changes_thp_enabled(
            &[(top, "madvise")],
            &old(&["madvise"])
        ));
        assert!(!changes_thp_enabled(
            &[(defrag, "never")],
            &old(&["madvise"])
        ));
        assert!(lists_thp_words(
            "ffffffff82a1c0e8 D transparent_hugepage_flags\n"
        ));
        assert!(!lists_thp_words(
            "0000000000000000 D transparent_hugepage_flags\n"
        ));
        assert!(!lists_thp_words("ffffffff81000000 T _stext\n"));
    }
}
