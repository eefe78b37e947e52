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
//! 4. `thp-disabled`: an anonymous VMA with `MADV_NOHUGEPAGE`, or, for a PMD never asked,
//!    THP off by the settings the closing program read ([`thp`]: sysfs `enabled` and the
//!    PMD size's `hugepages-2048kB/enabled`, `madvise` mode without `MADV_HUGEPAGE`,
//!    `PR_SET_THP_DISABLE`);
//! 5. `alloc-failed` / `charge-failed`: an anonymous THP attempt that fell back because no
//!    2 MiB folio could be allocated, or the memory cgroup refused to charge it (its
//!    counters at the attempt's return, [`thp::ALLOC_FAILED`] and [`thp::CHARGE_FAILED`]);
//! 6. `kernel-policy`: the kernel never asks this VMA kind (PFNMAP and MIXEDMAP before
//!    [`kabi::HUGE_PFNMAP_SINCE`]);
//! 7. `populated`: not asked, and an earlier fault of the run mapped smaller entries in
//!    the block;
//! 8. `no-huge-fault`: not asked, a PFNMAP or MIXEDMAP VMA on a kernel that asks those,
//!    and the fault asked no `huge_fault` handler at all: the mapping has none (TTM since
//!    5.16; GEM shmem before 7.0);
//! 9. `driver`: a device or file mapping's handler answered FALLBACK for none of these;
//! 10. `unknown`: none of the above.
//!
//! Faults never asked at PMD are explained on VMAs made for huge entries (device and DAX
//! mappings) and on anonymous VMAs whose record carries the THP settings.

use std::collections::HashSet;

use huge_fault_common::{FaultRecord, Level, NO_PFN, kabi, level, thp};

use super::chain::{Mapped, Step};

/// A reason a level got no huge entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    VmaRange,
    PfnMisaligned,
    PgoffMisaligned,
    ThpDisabled,
    AllocFailed,
    ChargeFailed,
    KernelPolicy,
    Populated,
    NoHugeFault,
    Driver,
    Unknown,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::VmaRange,
        Reason::PfnMisaligned,
        Reason::PgoffMisaligned,
        Reason::ThpDisabled,
        Reason::AllocFailed,
        Reason::ChargeFailed,
        Reason::KernelPolicy,
        Reason::Populated,
        Reason::NoHugeFault,
        Reason::Driver,
        Reason::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::VmaRange => "vma-range",
            Reason::PfnMisaligned => "pfn-misaligned",
            Reason::PgoffMisaligned => "pgoff-misaligned",
            Reason::ThpDisabled => "thp-disabled",
            Reason::AllocFailed => "alloc-failed",
            Reason::ChargeFailed => "charge-failed",
            Reason::KernelPolicy => "kernel-policy",
            Reason::Populated => "populated",
            Reason::NoHugeFault => "no-huge-fault",
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
            Reason::ThpDisabled => {
                "THP is off for this VMA (MADV_NOHUGEPAGE, sysfs enabled=never, madvise mode without MADV_HUGEPAGE, or PR_SET_THP_DISABLE): madvise(MADV_HUGEPAGE) the buffer or enable THP"
            }
            Reason::AllocFailed => {
                "no free 2 MiB block for the THP (memory short or fragmented): see /proc/buddyinfo, the THP defrag setting, or compact memory"
            }
            Reason::ChargeFailed => {
                "the memory cgroup's limit (memory.max) left no room for a 2 MiB THP: raise the limit, or expect 4 KiB pages near it"
            }
            Reason::KernelPolicy => {
                "this kernel never asks PFNMAP/MIXEDMAP VMAs for huge entries (huge pfnmaps from 6.12)"
            }
            Reason::Populated => {
                "the block already holds smaller entries from an earlier fault: touch or insert the whole block first"
            }
            Reason::NoHugeFault => {
                "the mapping has no huge_fault handler (TTM since 5.16, GEM shmem before 7.0): its driver maps PTEs only"
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
    /// a file mapping with `VM_HUGEPAGE` (DAX sets it), or (at PMD) anonymous memory
    /// whose fault carries the THP settings or that is `MADV_NOHUGEPAGE` (no setting
    /// needed); at least one entry big.
    fn wants(&self, l: Level, thp_byte: u8) -> bool {
        (self.special()
            || self.inode != 0 && self.flags & kabi::VM_HUGEPAGE != 0
            || l == Level::Pmd
                && self.anon()
                && (thp_byte & thp::VALID != 0 || self.flags & kabi::VM_NOHUGEPAGE != 0))
            && self.end.saturating_sub(self.start) >= l.size()
    }

    /// Whether the THP settings in a fault's [`thp`] byte rule out a PMD-size THP here.
    fn thp_off(&self, thp_byte: u8) -> bool {
        let advised = self.flags & kabi::VM_HUGEPAGE != 0;
        thp_byte & thp::VALID != 0
            && (thp_byte & thp::PROCESS_OFF != 0
                || thp_byte & thp::PROCESS_OFF_EXCEPT_ADVISED != 0 && !advised
                || thp_byte & thp::MODE == thp::NEVER
                || thp_byte & thp::MODE == thp::MADVISE && !advised)
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
                && vma.wants(l, r.mapping.thp);
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
        if vma.anon()
            && (vma.flags & kabi::VM_NOHUGEPAGE != 0 || !asked && vma.thp_off(r.mapping.thp))
        {
            return found(Reason::ThpDisabled, None);
        }
        if asked && vma.anon() && l == Level::Pmd {
            if r.mapping.thp & thp::CHARGE_FAILED != 0 {
                return found(Reason::ChargeFailed, None);
            }
            if r.mapping.thp & thp::ALLOC_FAILED != 0 {
                return found(Reason::AllocFailed, None);
            }
        }
        if !asked && vma.special() && self.kernel.is_some_and(|k| k < kabi::HUGE_PFNMAP_SINCE) {
            return found(Reason::KernelPolicy, None);
        }
        if !asked && self.populated.contains(&(r.tgid, l as u8, block)) {
            return found(Reason::Populated, None);
        }
        if !asked
            && vma.special()
            && m.handler == 0
            && self.kernel.is_some_and(|k| k >= kabi::HUGE_PFNMAP_SINCE)
        {
            return found(Reason::NoHugeFault, None);
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
#[path = "reason_tests.rs"]
mod tests;
