//! Where the programs read the anonymous THP settings (system and per process), from the
//! kernel's BTF, its symbol table and its release.

use huge_fault_common::{ThpSettings, kabi};

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

/// The programs' [`ThpSettings`], or why the settings cannot be read (then they are not,
/// and faults the kernel never asked for a PMD on anonymous memory get no reason).
pub fn resolve_thp(
    btf: &Btf,
    kallsyms: &str,
    kernel: Option<(u32, u32)>,
) -> Result<ThpSettings, String> {
    let [flags, always, madvise, inherit, per_cpu_offset, vm_events] = data_symbols(
        kallsyms,
        [
            "transparent_hugepage_flags",
            "huge_anon_orders_always",
            "huge_anon_orders_madvise",
            "huge_anon_orders_inherit",
            "__per_cpu_offset",
            "vm_event_states",
        ],
    );
    let flags_addr = flags.ok_or(
        "transparent_hugepage_flags is not in /proc/kallsyms (a kernel without THP or CONFIG_KALLSYMS_ALL)",
    )?;
    let bit = |m: &str| {
        btf.enum_value("transparent_hugepage_flag", m)
            .ok_or(format!(
                "enum transparent_hugepage_flag has no {m} in the kernel's BTF"
            ))
    };
    let per_size = kernel.is_some_and(|k| k >= kabi::HUGE_ANON_ORDERS_SINCE);
    let orders_addr = match (always, madvise, inherit) {
        (Some(a), Some(m), Some(i)) => [a, m, i],
        _ if per_size => {
            return Err(
                "huge_anon_orders_{always,madvise,inherit} are not in /proc/kallsyms".into(),
            );
        }
        _ => [0; 3],
    };
    // The process's own switch is optional: without it, PR_SET_THP_DISABLE goes unseen.
    let (vma_mm, mm_flags) = match (
        btf.member_offset("vm_area_struct", "vm_mm"),
        btf.member_offset("mm_struct", "flags"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        _ => (0, 0),
    };
    // Why an attempt fell back is optional too: without the event counters it is not told.
    let events = match (
        per_cpu_offset,
        vm_events,
        btf.enum_value("vm_event_item", "THP_FAULT_FALLBACK"),
        btf.enum_value("vm_event_item", "THP_FAULT_FALLBACK_CHARGE"),
    ) {
        (Some(p), Some(v), Some(f), Some(c)) => (p, v, f, c),
        _ => (0, 0, 0, 0),
    };
    Ok(ThpSettings {
        valid: 1,
        flag_bit: bit("TRANSPARENT_HUGEPAGE_FLAG")?,
        req_madv_bit: bit("TRANSPARENT_HUGEPAGE_REQ_MADV_FLAG")?,
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
        ev_fallback: events.2,
        ev_charge: events.3,
        _pad: 0,
        flags_addr,
        orders_addr,
        per_cpu_offset: events.0,
        vm_events: events.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{build::BtfBuilder, kind};

    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff82a1c0e8 D transparent_hugepage_flags
ffffffff83301a40 B huge_anon_orders_always
ffffffff83301a48 B huge_anon_orders_madvise
ffffffff83301a50 b huge_anon_orders_inherit
ffffffffc0a01000 d transparent_hugepage_flags\t[some_module]
ffffffff82b3c9a0 D __per_cpu_offset
000000000002d0c0 D vm_event_states
";

    fn btf() -> Vec<u8> {
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
        b.enumeration(
            "vm_event_item",
            &[
                ("PGPGIN", 0),
                ("THP_FAULT_ALLOC", 60),
                ("THP_FAULT_FALLBACK", 61),
                ("THP_FAULT_FALLBACK_CHARGE", 62),
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
    fn per_size_settings_from_6_8_and_the_process_bits_by_release() {
        let raw = btf();
        let btf = Btf::parse(&raw).unwrap();
        let t = resolve_thp(&btf, KALLSYMS, Some((6, 12))).unwrap();
        assert_eq!((t.flag_bit, t.req_madv_bit), (1, 2));
        assert_eq!(t.orders_addr[2], 0xffffffff83301a50);
        assert_eq!((t.vma_mm, t.mm_flags), (16, 8));
        assert_eq!((t.mmf_disable, t.mmf_except_advised), (24, 64));
        assert_eq!((t.ev_fallback, t.ev_charge), (61, 62));
        assert_eq!(
            (t.per_cpu_offset, t.vm_events),
            (0xffffffff82b3c9a0, 0x2d0c0),
            "a per-CPU symbol's address is its offset"
        );
        let t = resolve_thp(&btf, KALLSYMS, Some((7, 2))).unwrap();
        assert_eq!(t.mmf_except_advised, 23);
        // 6.1 has no per-size settings: the global flags decide.
        let old = "ffffffff82a1c0e8 D transparent_hugepage_flags\n";
        let t = resolve_thp(&btf, old, Some((6, 1))).unwrap();
        assert_eq!(t.orders_addr, [0; 3]);
        assert_eq!(
            (t.per_cpu_offset, t.vm_events),
            (0, 0),
            "no counters: causes not told"
        );
        // A 6.12 kernel that lists them not is not read half-way.
        assert!(resolve_thp(&btf, old, Some((6, 12))).is_err());
        assert!(
            resolve_thp(&btf, "", Some((6, 1)))
                .unwrap_err()
                .contains("kallsyms")
        );
    }
}
