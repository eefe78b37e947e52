//! Why a fault got no huge entry at a level: for every FALLBACK a level answered, and for
//! faults on VMAs made for huge entries (device and DAX mappings) that the kernel never
//! asked at PMD.
//!
//! Classified in user space from each fault's record (address, VMA, the entries and pfns
//! it mapped) and what the run saw before it (which blocks already hold smaller entries).
//! The aggregate pass keeps no address or pfn per fault: its fallbacks are counted as
//! unattributed, never given a reason.
//!
//! The rules, in order; the first that holds is the reason. A rule that holds for every
//! fault of the block whatever its page table holds comes before `populated`, which is what
//! follows from an earlier fault of the block:
//! 1. `vma-range`: the level's aligned block at the address does not fit in the VMA;
//! 2. `pfn-misaligned`: (device and file mappings) the pfn this fault mapped and its
//!    virtual address differ modulo the level's size; needs the insert's pfn;
//! 3. `pgoff-misaligned`: (file and DAX mappings, not PFNMAP, whose offset is the driver's
//!    cookie) the file offset and the virtual address differ modulo the level's size;
//! 4. `thp-disabled`: an anonymous VMA with `MADV_NOHUGEPAGE`;
//! 5. `kernel-policy`: the kernel never asks this VMA kind (PFNMAP and MIXEDMAP before
//!    [`kabi::HUGE_PFNMAP_SINCE`]);
//! 6. `populated`: not asked, and an earlier fault of the run mapped smaller entries in
//!    the block;
//! 7. `driver`: a device or file mapping's handler answered FALLBACK for none of these;
//! 8. `unknown`: none of the above (an anonymous THP allocation or memcg charge that
//!    failed is among them: no probe tells those yet).

use std::collections::HashSet;

use huge_fault_common::{FaultRecord, Level, NO_PFN, kabi, level};

use super::chain::{Mapped, Step};

/// A reason a level got no huge entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    VmaRange,
    PfnMisaligned,
    PgoffMisaligned,
    ThpDisabled,
    KernelPolicy,
    Populated,
    Driver,
    Unknown,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::VmaRange,
        Reason::PfnMisaligned,
        Reason::PgoffMisaligned,
        Reason::ThpDisabled,
        Reason::KernelPolicy,
        Reason::Populated,
        Reason::Driver,
        Reason::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::VmaRange => "vma-range",
            Reason::PfnMisaligned => "pfn-misaligned",
            Reason::PgoffMisaligned => "pgoff-misaligned",
            Reason::ThpDisabled => "thp-disabled",
            Reason::KernelPolicy => "kernel-policy",
            Reason::Populated => "populated",
            Reason::Driver => "driver",
            Reason::Unknown => "unknown",
        }
    }

    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == name)
    }

    /// What a person can do about it, in one line.
    pub fn hint(self) -> &'static str {
        match self {
            Reason::VmaRange => {
                "the aligned block does not fit in the VMA: map the buffer at an address aligned to the entry size, and size it in whole entries"
            }
            Reason::PfnMisaligned => {
                "virtual and physical addresses disagree within the entry size: align the virtual address to the physical one (mmap hint or driver's get_unmapped_area)"
            }
            Reason::PgoffMisaligned => {
                "the file offset and the virtual address disagree within the entry size: mmap at an offset and address aligned alike"
            }
            Reason::ThpDisabled => "MADV_NOHUGEPAGE on the VMA rules huge pages out",
            Reason::KernelPolicy => {
                "this kernel never asks PFNMAP/MIXEDMAP VMAs for huge entries (huge pfnmaps from 6.12)"
            }
            Reason::Populated => {
                "the block already holds smaller entries from an earlier fault: touch or insert the whole block first"
            }
            Reason::Driver => "the driver's handler answered FALLBACK on an aligned block",
            Reason::Unknown => "no rule explains it",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The VMA as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct VmaView {
    pub start: u64,
    pub end: u64,
    pub flags: u64,
    pub pgoff: u64,
    pub inode: u64,
}

impl VmaView {
    fn anon(&self) -> bool {
        self.inode == 0 && self.flags & kabi::VM_SPECIAL_MAP == 0
    }
    fn special(&self) -> bool {
        self.flags & kabi::VM_SPECIAL_MAP != 0
    }
    /// A VMA made for huge entries, whose PTE faults are worth a reason: a device mapping,
    /// or a file mapping with `VM_HUGEPAGE` (DAX sets it), at least one entry big.
    fn wants(&self, l: Level) -> bool {
        (self.special() || self.inode != 0 && self.flags & kabi::VM_HUGEPAGE != 0)
            && self.end.saturating_sub(self.start) >= l.size()
    }
}

/// One level of one fault, explained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub level: Level,
    pub reason: Reason,
    /// The kernel asked the level (it answered FALLBACK); `false`: it never asked.
    pub asked: bool,
    /// For `pfn-misaligned`: how far the virtual address is past the pfn's alignment.
    pub offset: Option<u64>,
}

/// Most blocks remembered as populated (a hostile recording cannot grow it without bound).
const MAX_BLOCKS: usize = 1 << 20;
/// Most blocks one fault marks (a range insert over many blocks).
const MAX_MARKS: u64 = 1 << 12;

/// What the rules know that no single record says.
#[derive(Debug, Default)]
pub struct Context {
    /// The traced kernel's (major, minor), from its release, when known.
    pub kernel: Option<(u32, u32)>,
    /// (tgid, level, block start) of blocks that hold smaller entries mapped in the run.
    populated: HashSet<(u32, u8, u64)>,
}

/// `(major, minor)` of a release such as `6.12.117+deb12-amd64`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

impl Context {
    pub fn new(kernel_release: &str) -> Self {
        Context {
            kernel: kernel_version(kernel_release),
            populated: HashSet::new(),
        }
    }

    /// The reasons of one completed fault (at most one per level), then what it mapped is
    /// remembered for the faults after it.
    pub fn explain(&mut self, r: &FaultRecord, m: &Mapped, vma: &VmaView) -> Vec<Found> {
        let mut out = vec![];
        for l in [Level::Pud, Level::Pmd] {
            let asked_fallback = m.chain.steps.iter().any(|(s, _)| {
                matches!(s, Step::Level { level, answer } if *level == l as u8 && answer.is_fallback())
            });
            let asked = m
                .chain
                .steps
                .iter()
                .any(|(s, _)| matches!(s, Step::Level { level, .. } if *level == l as u8));
            let not_asked = l == Level::Pmd
                && !asked
                && m.entries[level::PTE as usize] > 0
                && m.entries[level::PMD as usize] == 0
                && m.entries[level::PUD as usize] == 0
                && vma.wants(l);
            if asked_fallback || not_asked {
                out.push(self.rule(r, m, vma, l, asked_fallback));
            }
        }
        self.remember(r, m);
        out
    }

    fn rule(&self, r: &FaultRecord, m: &Mapped, vma: &VmaView, l: Level, asked: bool) -> Found {
        let size = l.size();
        let block = r.address & !(size - 1);
        let found = |reason, offset| Found {
            level: l,
            reason,
            asked,
            offset,
        };
        if block < vma.start || block.saturating_add(size) > vma.end {
            return found(Reason::VmaRange, None);
        }
        if !vma.anon()
            && let Some((va, pfn)) = evidence(r, m, l)
        {
            let off = va.wrapping_sub(pfn << huge_fault_common::level::PAGE_SHIFT) & (size - 1);
            if off != 0 {
                return found(Reason::PfnMisaligned, Some(off));
            }
        }
        if vma.inode != 0
            && !vma.special()
            && vma
                .start
                .wrapping_sub(vma.pgoff << huge_fault_common::level::PAGE_SHIFT)
                & (size - 1)
                != 0
        {
            return found(Reason::PgoffMisaligned, None);
        }
        if vma.anon() && vma.flags & kabi::VM_NOHUGEPAGE != 0 {
            return found(Reason::ThpDisabled, None);
        }
        if !asked && vma.special() && self.kernel.is_some_and(|k| k < kabi::HUGE_PFNMAP_SINCE) {
            return found(Reason::KernelPolicy, None);
        }
        if !asked && self.populated.contains(&(r.tgid, l as u8, block)) {
            return found(Reason::Populated, None);
        }
        if asked && !vma.anon() {
            return found(Reason::Driver, None);
        }
        found(Reason::Unknown, None)
    }

    /// Marks the blocks above the smaller entries this fault mapped as populated.
    fn remember(&mut self, r: &FaultRecord, m: &Mapped) {
        let mp = &r.mapping;
        for (lower, upper) in [(Level::Pte, Level::Pmd), (Level::Pmd, Level::Pud)] {
            let li = lower as usize;
            if m.entries[li] == 0 {
                continue;
            }
            let size = upper.size();
            // Entries the probes placed; a PTE the core made without a probe is at the
            // fault's address.
            let (first, last) = if mp.entries[li] > 0 {
                (mp.first_addr[li], mp.last_addr[li].max(mp.first_addr[li]))
            } else {
                (r.address, r.address)
            };
            let (first, last) = (first & !(size - 1), last & !(size - 1));
            let blocks = ((last - first) >> upper.shift()).min(MAX_MARKS);
            for i in 0..=blocks {
                if self.populated.len() >= MAX_BLOCKS {
                    return;
                }
                self.populated
                    .insert((r.tgid, upper as u8, first + (i << upper.shift())));
            }
        }
    }
}

/// The virtual address and pfn of an entry smaller than `l` that this fault mapped at the
/// fault's address (the first of the next level down that has a pfn, else of the PTEs).
fn evidence(r: &FaultRecord, m: &Mapped, l: Level) -> Option<(u64, u64)> {
    let mp = &r.mapping;
    let below: &[Level] = match l {
        Level::Pud => &[Level::Pmd, Level::Pte],
        _ => &[Level::Pte],
    };
    below.iter().find_map(|b| {
        let i = *b as usize;
        (m.entries[i] > 0 && mp.entries[i] > 0 && mp.first_pfn[i] != NO_PFN)
            .then(|| (mp.first_addr[i], mp.first_pfn[i]))
    })
}

#[cfg(test)]
mod tests {
    use huge_fault_common::{AggKey, kabi::VM_FAULT_FALLBACK, level, rflags, source, step};

    use super::*;
    use crate::{analysis::Analyzer, vma::NoResolver};

    const G: u64 = 0x7f00_4000_0000;
    const M2: u64 = 2 << 20;

    /// A completed fault at `va` of a VMA: a PMD FALLBACK step first when `asked`, then a
    /// PTE the driver inserted with `pfn`.
    fn fault(va: u64, vma: (u64, u64, u64, u64, u64), asked: bool, pfn: u64) -> FaultRecord {
        let mut r = FaultRecord {
            source: source::KRETPROBE,
            tgid: 7,
            tid: 7,
            address: va,
            vma_start: vma.0,
            vma_end: vma.1,
            vma_flags: vma.2,
            vma_pgoff: vma.3,
            inode: vma.4,
            flags: rflags::HAS_VMA | rflags::HAS_RET | rflags::HAS_MAPPING,
            ..Default::default()
        };
        if asked {
            r.mapping.push_step(step(level::PMD, VM_FAULT_FALLBACK));
        }
        r.mapping.push_step(step(level::PTE, 0x100));
        r.mapping.note_entry(level::PTE, va, pfn);
        r
    }

    fn touch(a: &mut Analyzer, vma: (u64, u64, u64, u64, u64), pfn0: u64, asks: bool) {
        let mut asked_blocks = HashSet::new();
        for va in (vma.0..vma.1).step_by(4096) {
            let asked = asks && asked_blocks.insert(va & !(M2 - 1));
            let pfn = pfn0 + ((va - vma.0) >> 12);
            a.ingest(&fault(va, vma, asked, pfn), &mut NoResolver);
        }
    }

    fn reasons(a: &Analyzer) -> Vec<(&'static str, &'static str, u64)> {
        a.totals
            .reasons
            .iter()
            .map(|((l, r), n)| (l.name(), r.name(), *n))
            .collect()
    }

    #[test]
    fn a_misaligned_device_buffer_is_out_of_range_at_its_ends_and_pfn_misaligned_inside() {
        // 8 MiB 64 KiB past a 1 GiB boundary, physically at one: drv-misaligned-2m.
        let vma = (
            G + (64 << 10),
            G + (8 << 20) + (64 << 10),
            kabi::VM_PFNMAP,
            0,
            5,
        );
        let mut a = Analyzer::new(16);
        a.reasons = Context::new("6.12.117+deb12-amd64");
        touch(&mut a, vma, 0x10_0000, true);
        assert_eq!(
            reasons(&a),
            [("PMD", "vma-range", 512), ("PMD", "pfn-misaligned", 1536)]
        );
        assert_eq!(a.totals.not_asked, 2048 - 5);
        assert_eq!(a.totals.pfn_offset, Some((Level::Pmd, 64 << 10)));
        let top = a.totals.top_reason().unwrap();
        assert_eq!((top.1, top.2, top.3), (Reason::PfnMisaligned, 1536, 2048));
    }

    #[test]
    fn an_aligned_driver_that_refuses_is_the_driver_then_populated_and_never_asked_on_6_1() {
        let vma = (G, G + (8 << 20), kabi::VM_PFNMAP, 0, 5);
        let mut a = Analyzer::new(16);
        a.reasons = Context::new("6.12.117+deb12-amd64");
        touch(&mut a, vma, 0x10_0000, true);
        assert_eq!(
            reasons(&a),
            [("PMD", "populated", 2044), ("PMD", "driver", 4)]
        );
        let mut old = Analyzer::new(16);
        old.reasons = Context::new("6.1.0-57-amd64");
        touch(&mut old, vma, 0x10_0000, false);
        assert_eq!(reasons(&old), [("PMD", "kernel-policy", 2048)]);
        // Without the kernel's release the policy is not assumed.
        let mut unknown = Analyzer::new(16);
        touch(&mut unknown, vma, 0x10_0000, false);
        assert_eq!(
            reasons(&unknown),
            [("PMD", "populated", 2044), ("PMD", "unknown", 4)]
        );
    }

    #[test]
    fn file_offsets_thp_advice_and_what_no_rule_explains() {
        // A DAX file (VM_HUGEPAGE) mapped at an aligned address from a 64 KiB offset, its
        // inserts without pfns (folio inserts): the offset is the reason.
        let dax = (G, G + (4 << 20), kabi::VM_SHARED | kabi::VM_HUGEPAGE, 16, 9);
        let mut c = Context::default();
        let r = fault(G + 4096, dax, true, NO_PFN);
        let m = crate::analysis::mapped(&r);
        let view = |v: (u64, u64, u64, u64, u64)| VmaView {
            start: v.0,
            end: v.1,
            flags: v.2,
            pgoff: v.3,
            inode: v.4,
        };
        assert_eq!(
            c.explain(&r, &m, &view(dax))[0].reason,
            Reason::PgoffMisaligned
        );
        // Anonymous memory that fell back: MADV_NOHUGEPAGE, else unknown (an allocation or
        // charge failure is not told apart yet); never asked: not counted.
        let anon = (G, G + (4 << 20), kabi::VM_NOHUGEPAGE, G >> 12, 0);
        let r = fault(G, anon, true, NO_PFN);
        let m = crate::analysis::mapped(&r);
        assert_eq!(
            c.explain(&r, &m, &view(anon))[0].reason,
            Reason::ThpDisabled
        );
        let anon = (G, G + (4 << 20), 0, G >> 12, 0);
        let r = fault(G + M2, anon, true, NO_PFN);
        let m = crate::analysis::mapped(&r);
        assert_eq!(c.explain(&r, &m, &view(anon))[0].reason, Reason::Unknown);
        let r = fault(G + 4096, anon, false, NO_PFN);
        let m = crate::analysis::mapped(&r);
        assert!(c.explain(&r, &m, &view(anon)).is_empty());
    }

    #[test]
    fn a_range_insert_populates_every_block_it_covers() {
        let vma = (G, G + (8 << 20), kabi::VM_PFNMAP, 0, 5);
        let mut c = Context::new("6.12.1");
        let mut r = fault(G + (3 << 20), vma, false, 0x10_0300);
        // One call mapped PTEs from 3 MiB to 4 MiB + 4 KiB (two PMD blocks).
        r.mapping
            .note_entry(level::PTE, G + (4 << 20) + 4096, 0x10_0401);
        let m = crate::analysis::mapped(&r);
        let view = VmaView {
            start: vma.0,
            end: vma.1,
            flags: vma.2,
            pgoff: vma.3,
            inode: vma.4,
        };
        assert_eq!(c.explain(&r, &m, &view)[0].reason, Reason::Unknown);
        for (va, want) in [
            (G + (3 << 20) + 4096, Reason::Populated),
            (G + (4 << 20) + 8192, Reason::Populated),
            (G + (7 << 20), Reason::Unknown),
        ] {
            let r = fault(va, vma, false, 0x10_0000 + ((va - G) >> 12));
            let m = crate::analysis::mapped(&r);
            assert_eq!(c.explain(&r, &m, &view)[0].reason, want, "{va:#x}");
        }
    }

    #[test]
    fn classes_counted_in_the_kernel_are_unattributed() {
        let mut a = Analyzer::new(16);
        let mut k = AggKey {
            vma_start: G,
            vma_end: G + (8 << 20),
            vma_flags: kabi::VM_PFNMAP,
            source: source::KRETPROBE,
            flags: rflags::HAS_VMA | rflags::HAS_RET | rflags::HAS_MAPPING,
            ..Default::default()
        };
        k.chain[0] = step(level::PMD, VM_FAULT_FALLBACK);
        k.chain[1] = step(level::PTE, 0x100);
        k.chain_len = 2;
        k.entries[1] = 1;
        a.ingest_aggregate(&k, 5, &mut NoResolver);
        assert_eq!((a.totals.unattributed, a.totals.reasons.len()), (5, 0));
    }

    #[test]
    fn releases_give_their_version_and_reasons_their_names() {
        assert_eq!(kernel_version("6.12.117+deb12-amd64"), Some((6, 12)));
        assert_eq!(kernel_version("7.2.0-rc1"), Some((7, 2)));
        assert_eq!(kernel_version(""), None);
        for r in Reason::ALL {
            assert_eq!(Reason::from_name(r.name()), Some(r));
        }
    }
}
