//! The structure member offsets the programs read, from the running kernel's BTF.

use huge_fault_common::{KernelOffsets, PageWalk};

use crate::btf::Btf;

/// A structure member the programs read that the kernel's BTF does not have.
#[derive(Debug)]
pub struct MissingMember {
    /// `struct.member`
    pub member: String,
    pub why: String,
}

/// Resolves the member offsets the programs read, from the kernel's BTF.
pub fn resolve_offsets(btf: &Btf) -> Result<KernelOffsets, MissingMember> {
    let m = |s: &str, f: &str| {
        btf.member_offset(s, f).map_err(|e| MissingMember {
            member: format!("{s}.{f}"),
            why: e.to_string(),
        })
    };
    let vma = [
        m("vm_area_struct", "vm_start")?,
        m("vm_area_struct", "vm_end")?,
        m("vm_area_struct", "vm_flags")?,
        m("vm_area_struct", "vm_pgoff")?,
        m("vm_area_struct", "vm_file")?,
        m("vm_area_struct", "vm_mm")?,
    ];
    Ok(KernelOffsets {
        valid: 1,
        vma_start: vma[0],
        vma_end: vma[1],
        vma_flags: vma[2],
        vma_pgoff: vma[3],
        vma_file: vma[4],
        vma_mm: vma[5],
        vma_span: huge_fault_common::config::vma_span(&vma),
        file_inode: m("file", "f_inode")?,
        inode_ino: m("inode", "i_ino")?,
        inode_sb: m("inode", "i_sb")?,
        sb_dev: m("super_block", "s_dev")?,
        // `enum page_entry_size` is gone since 6.6, when huge_fault took an order.
        huge_fault_order: u32::from(
            btf.find(crate::btf::kind::ENUM, "page_entry_size")
                .is_none(),
        ),
        vmf_address: btf.member_offset("vm_fault", "address").unwrap_or(0),
        folio_flags_1: btf
            .enum_value("pageflags", "PG_head")
            .and(btf.member_offset("folio", "_flags_1").ok())
            .unwrap_or(0),
        pg_head: btf.enum_value("pageflags", "PG_head").unwrap_or(0),
        task_mm: btf
            .member_offset("mm_struct", "mm_lock_seq")
            .and(btf.member_offset("task_struct", "mm"))
            .unwrap_or(0),
        mm_lock_seq: btf
            .member_offset("task_struct", "mm")
            .and(btf.member_offset("mm_struct", "mm_lock_seq"))
            .unwrap_or(0),
        ..hugetlb_offsets(btf)
    })
}

/// The direct map's base on x86-64 kernels without `CONFIG_DYNAMIC_MEMORY_LAYOUT` (4-level,
/// not randomized), which have no `page_offset_base` variable.
const PAGE_OFFSET_L4: u64 = 0xffff_8880_0000_0000;

/// How the insert probes read the page tables before an insert ([`PageWalk`]): the
/// `vm_mm` and `pgd` offsets from the BTF, the direct map's base from /proc/kallsyms.
/// `Err` says why a re-insert over a present entry cannot be told from a new one.
pub fn resolve_walk(btf: &Btf, kallsyms: &str) -> Result<PageWalk, String> {
    if !cfg!(target_arch = "x86_64") {
        return Err("the page-table read knows x86-64 page tables only".into());
    }
    let m = |s: &str, f: &str| {
        btf.member_offset(s, f)
            .map_err(|e| format!("{s}.{f} is not in the kernel's BTF: {e}"))
    };
    let (vma_mm, mm_pgd) = (m("vm_area_struct", "vm_mm")?, m("mm_struct", "pgd")?);
    let [base] = super::data_symbols(kallsyms, ["page_offset_base"]);
    // Without addresses (not root, kptr_restrict) nothing says which layout the kernel has.
    let listed = kallsyms.lines().any(|l| {
        l.split_whitespace().nth(2) == Some("_stext") && !l.starts_with("0000000000000000")
    });
    let (page_offset_base_addr, page_offset) = match base {
        Some(a) => (a, 0),
        None if listed => (0, PAGE_OFFSET_L4),
        None => return Err("/proc/kallsyms shows no addresses".into()),
    };
    Ok(PageWalk {
        valid: 1,
        vma_mm,
        mm_pgd,
        _pad: 0,
        page_offset_base_addr,
        page_offset,
    })
}

/// Offsets to a hugetlb VMA's page size (`file → inode → super_block → hugetlbfs_sb_info →
/// hstate → order`); all zero, with `hstate_valid` 0, when the kernel lacks one of them.
fn hugetlb_offsets(btf: &Btf) -> KernelOffsets {
    let m = |s: &str, f: &str| btf.member_offset(s, f).ok();
    match (
        m("super_block", "s_fs_info"),
        m("hugetlbfs_sb_info", "hstate"),
        m("hstate", "order"),
    ) {
        (Some(sb_fs_info), Some(hugetlbfs_hstate), Some(hstate_order)) => KernelOffsets {
            hstate_valid: 1,
            sb_fs_info,
            hugetlbfs_hstate,
            hstate_order,
            ..Default::default()
        },
        _ => KernelOffsets::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_resolve_through_the_btf_of_this_machine() {
        // Every kernel huge-fault supports has these members; the host's BTF must resolve.
        let Ok(raw) = Btf::from_sys_fs() else {
            eprintln!("skipped: no /sys/kernel/btf/vmlinux on this machine");
            return;
        };
        let btf = Btf::parse(&raw).expect("vmlinux BTF parses");
        let o = resolve_offsets(&btf).expect("offsets resolve");
        assert_eq!((o.vma_start, o.vma_end), (0, 8));
        // One read covers the VMA's members on this kernel (6.18: vm_file at 88).
        assert_eq!(o.vma_span, o.vma_file.max(o.vma_pgoff).max(o.vma_mm) + 8);
        assert!(o.vma_pgoff > o.vma_end && o.vma_file > o.vma_end);
        assert_eq!(o.hstate_valid, 1, "hugetlb offsets resolve on this kernel");
        // The host runs 6.18: huge_fault takes an order.
        assert_eq!(o.huge_fault_order, 1);
        // The page-table read: vm_mm and pgd from the BTF, the direct map's base from
        // kallsyms, fixed where the kernel has no page_offset_base, refused without
        // addresses.
        let listed = "ffffffff81000000 T _stext\nffffffff82a11a48 D page_offset_base\n";
        let w = resolve_walk(&btf, listed).expect("walk resolves");
        assert_eq!(
            (w.valid, w.page_offset_base_addr, w.page_offset),
            (1, 0xffffffff82a11a48, 0)
        );
        assert!(w.vma_mm > 0 && w.mm_pgd > 0);
        let fixed = resolve_walk(&btf, "ffffffff81000000 T _stext\n").unwrap();
        assert_eq!(
            (fixed.page_offset_base_addr, fixed.page_offset),
            (0, PAGE_OFFSET_L4)
        );
        let hidden = resolve_walk(&btf, "0000000000000000 T _stext\n");
        assert_eq!(hidden.unwrap_err(), "/proc/kallsyms shows no addresses");
    }
}
