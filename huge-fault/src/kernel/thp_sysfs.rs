//! The anonymous THP settings words made from sysfs, for kernels whose /proc/kallsyms does
//! not list the kernel's own (built without `CONFIG_KALLSYMS_ALL`): the programs then read
//! the tool's copy ([`ThpNow`]), made at start and every 200 ms while tracing.

use std::path::Path;

use huge_fault_common::{ThpNow, kabi};

use super::gate::{pmd_kib, selected};

/// Which bits the words carry: the kernel's `TRANSPARENT_HUGEPAGE_FLAG` and
/// `TRANSPARENT_HUGEPAGE_REQ_MADV_FLAG` bit numbers (from its BTF), and whether it has
/// per-size settings (6.8+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThpBits {
    pub flag_bit: u32,
    pub req_madv_bit: u32,
    pub per_size: bool,
}

/// The words as the kernel would hold them, from the THP sysfs directory `thp`: the
/// top-level `enabled` (always, madvise, never) and, with per-size settings, the PMD
/// size's own `hugepages-<N>kB/enabled` (always, madvise, inherit, never). `None` where
/// `enabled` cannot be read or says none of them, or the PMD size's file is missing on a
/// kernel that has per-size settings (nothing is guessed).
pub fn thp_words(thp: &Path, bits: ThpBits) -> Option<ThpNow> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let top = read(&thp.join("enabled"))?;
    let flags = match selected(&top)? {
        "always" => 1u64 << (bits.flag_bit & 63),
        "madvise" => 1u64 << (bits.req_madv_bit & 63),
        "never" => 0,
        _ => return None,
    };
    let mut now = ThpNow {
        flags,
        ..Default::default()
    };
    if bits.per_size {
        let own = read(&thp.join(format!("hugepages-{}kB/enabled", pmd_kib(thp))))?;
        let bit = 1u64 << kabi::PMD_ORDER;
        match selected(&own)? {
            "always" => now.orders[0] = bit,
            "madvise" => now.orders[1] = bit,
            "inherit" => now.orders[2] = bit,
            "never" => {}
            _ => return None,
        }
        now.per_size = 1;
    }
    Some(now)
}

/// The words in words, for a line when they change: `enabled always, hugepages-2048kB inherit`.
pub fn describe(now: &ThpNow, bits: ThpBits) -> String {
    let top = if now.flags >> (bits.flag_bit & 63) & 1 != 0 {
        "always"
    } else if now.flags >> (bits.req_madv_bit & 63) & 1 != 0 {
        "madvise"
    } else {
        "never"
    };
    if now.per_size == 0 {
        return format!("enabled {top}");
    }
    let own = ["always", "madvise", "inherit"]
        .iter()
        .zip(now.orders)
        .find(|(_, w)| w >> kabi::PMD_ORDER & 1 != 0)
        .map_or("never", |(n, _)| *n);
    format!("enabled {top}, PMD size {own}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::gate::tests::{Tree, tree};

    const BITS: ThpBits = ThpBits {
        flag_bit: 1,
        req_madv_bit: 2,
        per_size: true,
    };

    /// A THP sysfs directory with the top-level setting and, if given, the PMD size's.
    fn dir(top: &str, pmd: Option<&str>) -> Tree {
        tree(
            top,
            &pmd.map(|p| ("2048kB", p)).into_iter().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn the_words_say_what_sysfs_says_as_the_kernel_keeps_them() {
        let d = dir(
            "always [madvise] never\n",
            Some("always [inherit] madvise never\n"),
        );
        let w = thp_words(d.path(), BITS).unwrap();
        assert_eq!(w.flags, 1 << 2);
        assert_eq!(w.orders, [0, 0, 1 << 9]);
        assert_eq!(w.per_size, 1);
        assert_eq!(describe(&w, BITS), "enabled madvise, PMD size inherit");

        let d = dir(
            "[always] madvise never\n",
            Some("always inherit madvise [never]\n"),
        );
        let w = thp_words(d.path(), BITS).unwrap();
        assert_eq!((w.flags, w.orders), (1 << 1, [0; 3]));
        assert_eq!(describe(&w, BITS), "enabled always, PMD size never");

        let d = dir(
            "always madvise [never]\n",
            Some("[always] inherit madvise never\n"),
        );
        let w = thp_words(d.path(), BITS).unwrap();
        assert_eq!((w.flags, w.orders), (0, [1 << 9, 0, 0]));
    }

    #[test]
    fn before_per_size_settings_only_the_top_level_counts_and_nothing_is_guessed() {
        let old = ThpBits {
            per_size: false,
            ..BITS
        };
        let d = dir("[always] madvise never\n", None);
        let w = thp_words(d.path(), old).unwrap();
        assert_eq!((w.flags, w.orders, w.per_size), (1 << 1, [0; 3], 0));
        assert_eq!(describe(&w, old), "enabled always");
        // A per-size kernel without the PMD size's file, an unreadable or odd setting.
        assert_eq!(thp_words(d.path(), BITS), None);
        assert_eq!(thp_words(&d.path().join("absent"), old), None);
        let odd = dir("always madvise never\n", None);
        assert_eq!(thp_words(odd.path(), old), None);
        let odd = dir("[sometimes]\n", None);
        assert_eq!(thp_words(odd.path(), old), None);
    }
}
