//! What the programs need to know the anonymous THP settings (system and per process) and
//! why a THP attempt failed: the kernel's symbol table, its BTF and its release.

use std::path::Path;

use huge_fault_common::{ThpSettings, kabi};

use super::thp_sysfs::{ThpBits, thp_words};
use crate::btf::Btf;

/// The addresses of the data symbols `names` in a /proc/kallsyms listing (core kernel
/// only), `None` for each one absent or listed at address 0 (hidden from this user, or a
/// kernel without `CONFIG_KALLSYMS_ALL`).
pub fn data_symbols<const N: usize>(kallsyms: &str, names: [&str; N]) -> [Option<u64>; N] {
    let mut out = [None; N];
    for line in kallsyms.lines() {
        let mut it = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        if !matches!(kind, "d" | "D" | "b" | "B" | "r" | "R") {
            continue;
        }
        if let Some(i) = names.iter().position(|n| *n == name) {
            out[i] = u64::from_str_radix(addr, 16).ok().filter(|a| *a != 0);
        }
    }
    out
}

/// Where the programs read the THP settings words from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThpSource {
    /// The kernel's own words, at their /proc/kallsyms addresses.
    Kernel,
    /// The tool's copy of what sysfs says, kept in the programs' `THP_WORDS` global at start and every
    /// 200 ms while tracing ([`super::thp_sysfs`]), because the kernel's words cannot be
    /// found (`why`): a setting changed while tracing is seen up to 200 ms late.
    Sysfs { bits: ThpBits, why: String },
}

/// The programs' [`ThpSettings`]. `Err` says why the THP settings cannot be read (then
/// they are not, and faults the kernel never asked for a PMD on anonymous memory get no
/// reason); the settings it carries still tell why an attempt failed where they can.
/// Where /proc/kallsyms does not list the kernel's words, they are made from sysfs under
/// `thp` ([`ThpSource::Sysfs`]) if it can be read.
pub fn resolve_thp(
    btf: &Btf,
    kallsyms: &str,
    kernel: Option<(u32, u32)>,
    thp: &Path,
) -> (ThpSettings, Result<ThpSource, String>) {
    let m = |s: &str, f: &str| btf.member_offset(s, f).ok();
    // The process's own switch is optional: without it, PR_SET_THP_DISABLE goes unseen.
    let (vma_mm, mm_flags) = match (m("vm_area_struct", "vm_mm"), m("mm_struct", "flags")) {
        (Some(a), Some(b)) => (a, b),
        _ => (0, 0),
    };
    // Why an attempt fell back: from the memory cgroup's counters, where the BTF has them.
    let memcg = (|| {
        Some([
            m("task_struct", "cgroups")?,
            m("css_set", "subsys")?,
            btf.enum_value("cgroup_subsys_id", "memory_cgrp_id")?,
            m("mem_cgroup", "memory")?,
            m("page_counter", "usage")?,
            m("page_counter", "max")?,
            m("page_counter", "parent")?,
        ])
    })();
    let c = memcg.unwrap_or_default();
    let mut t = ThpSettings {
        vma_mm,
        mm_flags,
        mmf_disable: kabi::MMF_DISABLE_THP,
        mmf_except_advised: if kernel
            .is_some_and(|k| k >= kabi::MMF_DISABLE_THP_EXCEPT_ADVISED_SINCE)
        {
            kabi::MMF_DISABLE_THP_EXCEPT_ADVISED
        } else {
            64
        },
        memcg_valid: u32::from(memcg.is_some()),
        task_cgroups: c[0],
        css_set_subsys: c[1],
        memory_cgrp_id: c[2],
        memcg_memory: c[3],
        counter_usage: c[4],
        counter_max: c[5],
        counter_parent: c[6],
        ..Default::default()
    };
    let bit = |m: &str| {
        btf.enum_value("transparent_hugepage_flag", m)
            .ok_or(format!(
                "enum transparent_hugepage_flag has no {m} in the kernel's BTF"
            ))
    };
    let bits = match (
        bit("TRANSPARENT_HUGEPAGE_FLAG"),
        bit("TRANSPARENT_HUGEPAGE_REQ_MADV_FLAG"),
    ) {
        (Ok(flag_bit), Ok(req_madv_bit)) => ThpBits {
            flag_bit,
            req_madv_bit,
            per_size: kernel.is_some_and(|k| k >= kabi::HUGE_ANON_ORDERS_SINCE),
        },
        (Err(why), _) | (_, Err(why)) => return (t, Err(why)),
    };
    t.flag_bit = bits.flag_bit;
    t.req_madv_bit = bits.req_madv_bit;
    let addresses = (|| {
        let [flags, always, madvise, inherit] = data_symbols(
            kallsyms,
            [
                "transparent_hugepage_flags",
                "huge_anon_orders_always",
                "huge_anon_orders_madvise",
                "huge_anon_orders_inherit",
            ],
        );
        let flags_addr = flags.ok_or(
            "transparent_hugepage_flags is not in /proc/kallsyms (a kernel without THP or CONFIG_KALLSYMS_ALL)",
        )?;
        let orders_addr = match (always, madvise, inherit) {
            (Some(a), Some(m), Some(i)) => [a, m, i],
            _ if bits.per_size => {
                return Err("huge_anon_orders_{always,madvise,inherit} are not in /proc/kallsyms");
            }
            _ => [0; 3],
        };
        Ok((flags_addr, orders_addr))
    })();
    match addresses {
        Ok((flags_addr, orders_addr)) => {
            t.valid = 1;
            t.flags_addr = flags_addr;
            t.orders_addr = orders_addr;
            let [a, m, i] = orders_addr;
            t.orders_contiguous = u32::from(a != 0 && m == a + 8 && i == a + 16);
            (t, Ok(ThpSource::Kernel))
        }
        Err(why) if thp_words(thp, bits).is_some() => {
            t.valid = 1;
            t.from_sysfs = 1;
            let why = why.to_string();
            (t, Ok(ThpSource::Sysfs { bits, why }))
        }
        Err(why) => (
            t,
            Err(format!("{why}, and {} cannot be read", thp.display())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{build::BtfBuilder, kind};

    /// A THP sysfs directory that does not exist.
    const NO_SYSFS_DIR: &str = "/nonexistent/transparent_hugepage";

    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff82a1c0e8 D transparent_hugepage_flags
ffffffff83301a40 B huge_anon_orders_always
ffffffff83301a48 B huge_anon_orders_madvise
ffffffff83301a50 b huge_anon_orders_inherit
ffffffffc0a01000 d transparent_hugepage_flags\t[some_module]
";

    fn blob(memcg: bool) -> Vec<u8> {
        let mut b = BtfBuilder::new();
        let ul = b.int("unsigned long", 8);
        b.enumeration(
            "transparent_hugepage_flag",
            &[
                ("TRANSPARENT_HUGEPAGE_UNSUPPORTED", 0),
                ("TRANSPARENT_HUGEPAGE_FLAG", 1),
                ("TRANSPARENT_HUGEPAGE_REQ_MADV_FLAG", 2),
            ],
        );
        let mm = b.composite(
            kind::STRUCT,
            "mm_struct",
            16,
            &[("pgd", ul, 0, 0), ("flags", ul, 64, 0)],
        );
        let pmm = b.ptr(mm);
        b.composite(
            kind::STRUCT,
            "vm_area_struct",
            24,
            &[("vm_start", ul, 0, 0), ("vm_mm", pmm, 128, 0)],
        );
        if memcg {
            b.composite(kind::STRUCT, "task_struct", 16, &[("cgroups", ul, 64, 0)]);
            b.composite(kind::STRUCT, "css_set", 16, &[("subsys", ul, 0, 0)]);
            b.enumeration(
                "cgroup_subsys_id",
                &[("cpuset_cgrp_id", 0), ("memory_cgrp_id", 4)],
            );
            b.composite(kind::STRUCT, "mem_cgroup", 16, &[("memory", ul, 1536, 0)]);
            b.composite(
                kind::STRUCT,
                "page_counter",
                16,
                &[
                    ("usage", ul, 0, 0),
                    ("max", ul, 256, 0),
                    ("parent", ul, 512, 0),
                ],
            );
        }
        b.finish()
    }

    #[test]
    fn finds_core_data_symbols_not_modules_or_hidden_ones() {
        let [f, a, x] = data_symbols(
            KALLSYMS,
            [
                "transparent_hugepage_flags",
                "huge_anon_orders_always",
                "_stext",
            ],
        );
        assert_eq!(f, Some(0xffffffff82a1c0e8));
        assert_eq!(a, Some(0xffffffff83301a40));
        assert_eq!(x, None, "a text symbol is not data");
        let hidden = "0000000000000000 D transparent_hugepage_flags\n";
        assert_eq!(data_symbols(hidden, ["transparent_hugepage_flags"]), [None]);
    }

    #[test]
    fn per_size_settings_from_6_8_the_process_bits_by_release_and_the_memcg_offsets() {
        let raw = blob(true);
        let btf = Btf::parse(&raw).unwrap();
        let (t, ok) = resolve_thp(&btf, KALLSYMS, Some((6, 12)), Path::new(NO_SYSFS_DIR));
        assert_eq!((ok, t.valid), (Ok(ThpSource::Kernel), 1));
        assert_eq!((t.flag_bit, t.req_madv_bit), (1, 2));
        assert_eq!(t.orders_addr[2], 0xffffffff83301a50);
        assert_eq!(
            t.orders_contiguous, 1,
            "declared one after the other, one read"
        );
        assert_eq!((t.vma_mm, t.mm_flags), (16, 8));
        assert_eq!((t.mmf_disable, t.mmf_except_advised), (24, 64));
        assert_eq!(t.memcg_valid, 1);
        assert_eq!(
            [
                t.task_cgroups,
                t.css_set_subsys,
                t.memory_cgrp_id,
                t.memcg_memory
            ],
            [8, 0, 4, 192]
        );
        assert_eq!(
            [t.counter_usage, t.counter_max, t.counter_parent],
            [0, 32, 64]
        );
        assert_eq!(
            resolve_thp(&btf, KALLSYMS, Some((7, 2)), Path::new(NO_SYSFS_DIR))
                .0
                .mmf_except_advised,
            23
        );
        // 6.1 has no per-size settings: the global flags decide.
        let old = "ffffffff82a1c0e8 D transparent_hugepage_flags\n";
        let (t, ok) = resolve_thp(&btf, old, Some((6, 1)), Path::new(NO_SYSFS_DIR));
        assert_eq!((ok, t.orders_addr), (Ok(ThpSource::Kernel), [0; 3]));
        // A 6.12 kernel that does not list them is not read half-way.
        assert!(
            resolve_thp(&btf, old, Some((6, 12)), Path::new(NO_SYSFS_DIR))
                .1
                .is_err()
        );
        // Without data symbols (no CONFIG_KALLSYMS_ALL) the settings are not read, but
        // why an attempt failed still is.
        let (t, ok) = resolve_thp(&btf, "", Some((7, 2)), Path::new(NO_SYSFS_DIR));
        assert!(ok.unwrap_err().contains("kallsyms"));
        assert_eq!((t.valid, t.memcg_valid), (0, 1));
        let raw = blob(false);
        let bare = Btf::parse(&raw).unwrap();
        assert_eq!(
            resolve_thp(&bare, KALLSYMS, Some((6, 1)), Path::new(NO_SYSFS_DIR))
                .0
                .memcg_valid,
            0
        );
    }

    #[test]
    fn without_the_kernels_words_the_programs_read_the_tools_copy_of_sysfs() {
        let raw = blob(true);
        let btf = Btf::parse(&raw).unwrap();
        let d = crate::kernel::gate::tests::tree(
            "always [madvise] never\n",
            &[("2048kB", "[inherit] never\n")],
        );
        let (t, src) = resolve_thp(&btf, "", Some((7, 2)), d.path());
        let Ok(ThpSource::Sysfs { bits, why }) = src else {
            panic!("{src:?}")
        };
        assert!(why.contains("CONFIG_KALLSYMS_ALL"), "{why}");
        assert_eq!(
            (bits.flag_bit, bits.req_madv_bit, bits.per_size),
            (1, 2, true)
        );
        assert_eq!((t.valid, t.from_sysfs, t.flags_addr), (1, 1, 0));
        assert_eq!((t.flag_bit, t.req_madv_bit, t.memcg_valid), (1, 2, 1));
        // With the kernel's words listed, those are read, not sysfs.
        let (t, src) = resolve_thp(&btf, KALLSYMS, Some((7, 2)), d.path());
        assert_eq!((src, t.from_sysfs), (Ok(ThpSource::Kernel), 0));
    }
}
