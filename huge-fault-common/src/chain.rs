//! What one fault mapped, as the nested probes record it: the chain of levels tried with
//! their results, and the entries inserted per level. The step logic runs in the programs
//! and is tested here on the host.

/// Most chain steps kept per fault; further steps are counted in [`Mapping::overflow`].
/// The longest the kernel makes is six (`PUD:FALLBACK PMD:FALLBACK RETRY PUD:FALLBACK
/// PMD:FALLBACK PTE:OK`, a 1 GiB-aligned fault retried after the per-VMA lock); repeats
/// of one step count in [`Mapping::repeat`], not here. A power of two: the programs mask
/// the index of the last step with `MAX_CHAIN - 1`, the bound older verifiers need.
pub const MAX_CHAIN: usize = 8;

/// Set in a chain step's result when the level's answer came from a range-insert helper
/// (above every `vm_fault_t` bit, inside the 24 bits a step keeps).
pub const STEP_VIA_RANGE: u32 = 1 << 23;

/// Set in a [`level::RETRY`] step's result when the retried call ran under the per-VMA lock
/// (`FAULT_FLAG_VMA_LOCK`).
pub const STEP_VMA_LOCK: u32 = 1 << 22;

/// Set in a chain step's result when the insert found its entry already present (a
/// re-insert: TTM's prefault over PTEs an earlier fault made): it answered success and
/// mapped nothing, so it counts no entry.
pub const STEP_PRESENT: u32 = 1 << 21;

/// A chain step: `level << 24 | result` (24 bits of `vm_fault_t` and the `STEP_*` marks).
#[inline(always)]
pub const fn step(level: u8, ret: u32) -> u32 {
    ((level as u32) << 24) | (ret & 0x00ff_ffff)
}

/// A pfn the probes could not read (a folio insert, or a path that maps without a pfn
/// argument: anonymous THP, `do_set_pmd`, hugetlb).
pub const NO_PFN: u64 = u64::MAX;

/// Mask of the page frame number in a `pfn_t` (up to 6.16 its top 12 bits are `PFN_*` flags);
/// a plain `unsigned long` pfn passes it unchanged.
pub const PFN_MASK: u64 = (1 << 52) - 1;

/// What one fault mapped, as the nested probes saw it: the levels tried with their results,
/// and the entries inserted per level with the first and last address and pfn of each level.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Entries inserted, indexed by [`level`] (index 0 unused).
    pub entries: [u32; 4],
    /// Steps ([`step`]), in the order they returned; a step equal to the one before it is
    /// not added again but counted in `repeat`.
    pub chain: [u32; MAX_CHAIN],
    /// How many more times each step came right after itself (a driver's batch of PTE
    /// inserts in one call is one step), saturating.
    pub repeat: [u16; MAX_CHAIN],
    pub chain_len: u16,
    pub _pad_chain: u16,
    /// Steps or entries that did not fit.
    pub overflow: u32,
    /// Bit `level` set when an entry of that level had no readable pfn.
    pub pfn_missing: u32,
    /// [`crate::thp`]: the anonymous THP settings the fault was decided under, filled in
    /// when it closes (anonymous faults that mapped no PMD or PUD; 0 elsewhere and in
    /// older recordings).
    pub thp: u8,
    /// The `huge_fault` handler asked last in this fault: its index + 1 in the tool's
    /// handler table (the `HANDLERS` map, by the handler's address); 0: none asked, or a
    /// handler the table does not hold (and in older recordings).
    pub handler: u8,
    pub _pad: [u8; 2],
    /// First and last mapped virtual address per level (aligned to the entry's size).
    pub first_addr: [u64; 4],
    pub last_addr: [u64; 4],
    /// Pfn of the first and last entry per level, [`NO_PFN`] where unknown.
    pub first_pfn: [u64; 4],
    pub last_pfn: [u64; 4],
}

impl Mapping {
    /// `(level, vm_fault_t)` of step `i`.
    pub fn step(&self, i: usize) -> Option<(u8, u32)> {
        (i < (self.chain_len as usize).min(MAX_CHAIN))
            .then(|| ((self.chain[i] >> 24) as u8, self.chain[i] & 0x00ff_ffff))
    }

    /// How many times step `i` happened in a row (1 for a step that did not repeat).
    pub fn times(&self, i: usize) -> u32 {
        self.repeat.get(i).map_or(1, |r| u32::from(*r) + 1)
    }

    /// Counts one entry of `level` mapped at `addr` (the first and last of each level keep
    /// their address and pfn, [`NO_PFN`] when unknown).
    #[inline(always)]
    pub fn note_entry(&mut self, level: u8, addr: u64, pfn: u64) {
        let l = level as usize;
        if l >= self.entries.len() {
            return;
        }
        // The first entry of its level: the addresses and pfns may hold an earlier
        // fault's (see `clear_unused`).
        if self.entries[l] == 0 {
            self.first_addr[l] = addr;
            self.first_pfn[l] = pfn;
        }
        self.entries[l] += 1;
        self.last_addr[l] = addr;
        self.last_pfn[l] = pfn;
        if pfn == NO_PFN {
            self.pfn_missing |= 1 << l;
        }
    }

    /// Adds a step at the end of the chain, or counts it as a repeat of the last one.
    /// `n` entries of `level` mapped in one call (`remap_pfn_range`): the first at `addr`
    /// with `pfn`, the next ones 4 KiB (one pfn) further each.
    #[inline(always)]
    pub fn note_run(&mut self, level: u8, n: u32, addr: u64, pfn: u64) {
        let l = level as usize;
        if l >= self.entries.len() || n == 0 {
            return;
        }
        if self.entries[l] == 0 {
            self.first_addr[l] = addr;
            self.first_pfn[l] = pfn;
        }
        self.entries[l] = self.entries[l].saturating_add(n);
        let last = u64::from(n - 1);
        self.last_addr[l] = addr + (last << 12);
        self.last_pfn[l] = if pfn == NO_PFN { NO_PFN } else { pfn + last };
        if pfn == NO_PFN {
            self.pfn_missing |= 1 << l;
        }
    }

    /// Zeroes the first and last address and pfn of every level without entries. The
    /// programs start a fault by zeroing everything but these four arrays (16 stores
    /// fewer per fault), so they may hold an earlier fault's values where no entry was
    /// mapped; user space clears them when it decodes a record.
    pub fn clear_unused(&mut self) {
        for l in 0..self.entries.len() {
            if self.entries[l] == 0 {
                self.first_addr[l] = 0;
                self.last_addr[l] = 0;
                self.first_pfn[l] = 0;
                self.last_pfn[l] = 0;
            }
        }
    }

    #[inline(always)]
    pub fn push_step(&mut self, step: u32) {
        // `chain_len` never exceeds MAX_CHAIN: the masks are no-ops that show the BPF
        // verifier a bound for the index arithmetic (older ones lose it across `n - 1`).
        let n = usize::from(self.chain_len & 0xf);
        if n > 0 {
            let i = (n - 1) & (MAX_CHAIN - 1);
            if self.chain[i] == step {
                self.repeat[i] = self.repeat[i].saturating_add(1);
                return;
            }
        }
        if n < MAX_CHAIN {
            self.chain[n] = step;
            self.chain_len = n as u16 + 1;
        } else {
            self.overflow += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level;

    #[test]
    fn a_remapped_run_counts_every_entry_with_its_first_and_last_address_and_pfn() {
        let mut m = Mapping::default();
        // 1 GiB of PTEs from one remap_pfn_range inside a fault.
        m.note_run(level::PTE, 262_144, 0x7f00_0000_0000, 0x10_0000);
        let l = level::PTE as usize;
        assert_eq!(m.entries[l], 262_144);
        assert_eq!(m.first_addr[l], 0x7f00_0000_0000);
        assert_eq!(m.last_addr[l], 0x7f00_3fff_f000);
        assert_eq!((m.first_pfn[l], m.last_pfn[l]), (0x10_0000, 0x13_ffff));
        assert_eq!(m.pfn_missing, 0);
        // A later single entry extends the level; nothing is counted for an empty run.
        m.note_run(level::PTE, 0, 0x1000, 1);
        m.note_entry(level::PTE, 0x7f00_4000_0000, NO_PFN);
        assert_eq!(m.entries[l], 262_145);
        assert_eq!(m.first_addr[l], 0x7f00_0000_0000);
        assert_eq!(m.pfn_missing, 1 << l);
    }

    #[test]
    fn a_levels_first_entry_overwrites_what_an_earlier_fault_left() {
        // The programs do not zero the address and pfn arrays at a fault's start.
        let mut m = Mapping {
            first_addr: [9; 4],
            last_addr: [9; 4],
            first_pfn: [9; 4],
            last_pfn: [9; 4],
            ..Mapping::default()
        };
        let (pte, pmd) = (level::PTE as usize, level::PMD as usize);
        m.note_entry(level::PTE, 0x1000, 7);
        m.note_entry(level::PTE, 0x2000, 8);
        assert_eq!((m.first_addr[pte], m.first_pfn[pte]), (0x1000, 7));
        assert_eq!((m.last_addr[pte], m.last_pfn[pte]), (0x2000, 8));
        m.note_run(level::PMD, 2, 0x20_0000, 512);
        assert_eq!((m.first_addr[pmd], m.first_pfn[pmd]), (0x20_0000, 512));
        m.clear_unused();
        assert_eq!(
            (m.first_addr[pte], m.last_pfn[pmd]),
            (0x1000, 513),
            "kept where mapped"
        );
        let pud = level::PUD as usize;
        assert_eq!(
            (
                m.first_addr[pud],
                m.last_addr[pud],
                m.first_pfn[pud],
                m.last_pfn[pud]
            ),
            (0, 0, 0, 0),
            "cleared where nothing was mapped"
        );
    }

    #[test]
    fn entries_keep_their_first_and_last_address_and_pfn() {
        let mut m = Mapping::default();
        m.note_entry(level::PTE, 0x1000, 0x500);
        m.note_entry(level::PTE, 0x2000, 0x501);
        m.note_entry(level::PMD, 0x20_0000, NO_PFN);
        m.note_entry(level::RETRY, 0x3000, 0x9);
        assert_eq!(m.entries, [0, 2, 1, 0]);
        assert_eq!((m.first_addr[1], m.last_addr[1]), (0x1000, 0x2000));
        assert_eq!((m.first_pfn[1], m.last_pfn[1]), (0x500, 0x501));
        assert_eq!(m.pfn_missing, 1 << level::PMD);
    }

    #[test]
    fn a_step_after_itself_counts_as_a_repeat() {
        let mut m = Mapping::default();
        for s in [step(level::PMD, 0x800), step(level::PTE, 0x100)] {
            m.push_step(s);
        }
        for _ in 0..15 {
            m.push_step(step(level::PTE, 0x100));
        }
        m.push_step(step(level::RETRY, 0x400));
        assert_eq!(m.chain_len, 3);
        assert_eq!((m.times(0), m.times(1), m.times(2)), (1, 16, 1));
        assert_eq!(m.step(1), Some((level::PTE, 0x100)));
        for i in 0..20u32 {
            m.push_step(step(level::PTE, i));
        }
        assert_eq!(m.chain_len as usize, MAX_CHAIN);
        assert_eq!(m.overflow, 20 - (MAX_CHAIN as u32 - 3));
        let mut r = Mapping::default();
        r.repeat[0] = u16::MAX;
        r.chain_len = 1;
        r.chain[0] = step(level::PTE, 0);
        r.push_step(step(level::PTE, 0));
        assert_eq!(r.times(0), 65536, "a repeat count saturates");
    }
}
