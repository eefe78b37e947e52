use super::*;
use crate::model::ModelTables;

const K: u64 = 1 << 10;
const M: u64 = 1 << 20;
const G: u64 = 1 << 30;

/// xorshift64*: a fixed-seed generator, so a failing case is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random (addr, pfn, pages): starts aligned to a random power of two and shifted by
/// random page counts, lengths up to a bit over 2 GiB, so every level and edge shows up.
fn case(r: &mut Rng) -> (u64, u64, u64) {
    let align = [PAGE_SIZE, 64 * K, 2 * M, G][r.below(4) as usize];
    let addr = (r.below(1 << 20) + 1) * G + align * r.below(3) + PAGE_SIZE * r.below(3);
    let pa = (r.below(64) + 4) * G
        + if r.below(2) == 0 {
            addr % G
        } else {
            (align * r.below(3)) + PAGE_SIZE * r.below(3)
        };
    let len_kind = r.below(4);
    let pages = match len_kind {
        0 => r.below(64) + 1,
        1 => r.below(4096) + 1,
        2 => (r.below(3) * G + r.below(8) * 2 * M) / PAGE_SIZE + r.below(4) + 1,
        _ => G / PAGE_SIZE + r.below(1024),
    };
    // Where nothing huge can fit, keep it short: every page is an entry.
    let pages = if !addr.wrapping_sub(pa).is_multiple_of(2 * M) {
        pages % 8192 + 1
    } else {
        pages
    };
    (addr, pa >> PAGE_SHIFT, pages)
}

/// Every page of the range is covered exactly once, with the right pfn, by entries aligned
/// in both address spaces.
fn check_cover(entries: &[Entry], addr: u64, pfn: u64, pages: u64) {
    let mut e = entries.to_vec();
    e.sort_by_key(|e| e.addr);
    let mut next = addr;
    for x in &e {
        assert_eq!(x.addr, next, "gap or overlap at {:#x}", x.addr);
        assert_eq!(x.pfn, pfn + ((x.addr - addr) >> PAGE_SHIFT), "pfn of {x:?}");
        let mask = x.level.size() - 1;
        assert_eq!(x.addr & mask, 0, "virtual alignment of {x:?}");
        assert_eq!(
            (x.pfn << PAGE_SHIFT) & mask,
            0,
            "physical alignment of {x:?}"
        );
        next += x.level.size();
    }
    assert_eq!(next, addr + pages * PAGE_SIZE, "range end");
}

/// No entry is smaller than one that would fit around it: the block of the next level up
/// that contains it is not inside the range with both addresses aligned.
fn check_maximal(entries: &[Entry], addr: u64, pfn: u64, pages: u64) {
    let end = addr + pages * PAGE_SIZE;
    let pa = pfn << PAGE_SHIFT;
    for x in entries {
        let up = match x.level {
            Level::Pte => Level::Pmd,
            Level::Pmd => Level::Pud,
            Level::Pud => continue,
        };
        let start = x.addr & !(up.size() - 1);
        let inside = start >= addr && start + up.size() <= end;
        let congruent = (addr.wrapping_sub(pa)) & (up.size() - 1) == 0;
        assert!(
            !(inside && congruent),
            "{x:?} is inside a {} that fits at {start:#x}",
            up.name()
        );
    }
}

fn planned(addr: u64, pfn: u64, pages: u64) -> Vec<Entry> {
    let mut v = vec![];
    plan(addr, pfn, pages, |e| v.push(e));
    v
}

#[test]
fn plan_covers_exactly_aligned_and_maximal() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let (a, p, n) = case(&mut r);
        let v = planned(a, p, n);
        check_cover(&v, a, p, n);
        check_maximal(&v, a, p, n);
    }
}

#[test]
fn insert_with_allocation_equals_the_plan() {
    let mut r = Rng(7);
    for _ in 0..300 {
        let (a, p, n) = case(&mut r);
        let mut t = ModelTables::new(true);
        let s = insert_range(&mut t, a, p, n);
        assert_eq!(s.error, 0);
        assert_eq!(s.present, 0);
        assert_eq!(
            t.inserted,
            planned(a, p, n),
            "at {a:#x} pfn {p:#x} pages {n}"
        );
    }
}

#[test]
fn module_insert_covers_exactly_from_any_fault() {
    let mut r = Rng(42);
    for _ in 0..300 {
        let (a, p, n) = case(&mut r);
        let fault = a + r.below(n) * PAGE_SIZE;
        let mut t = ModelTables::new(false);
        t.pmd_table_exists(fault);
        let s = insert_range(&mut t, a, p, n);
        assert_eq!(s.error, 0);
        check_cover(&t.inserted, a, p, n);
        let by_level: u64 = s.entries.iter().sum();
        assert_eq!(by_level, t.inserted.len() as u64);
        assert_eq!(s.bytes(), n * PAGE_SIZE);
    }
}

/// Counts per level of a summary: (PUD, PMD, PTE).
fn counts(s: &Summary) -> (u64, u64, u64) {
    (
        s.count(Level::Pud),
        s.count(Level::Pmd),
        s.count(Level::Pte),
    )
}

#[test]
fn misaligned_start_maps_huge_entries_in_the_middle_and_ptes_at_the_edges() {
    // Virtual ≡ physical modulo 1 GiB, starting 2 MiB + 8 KiB before a 1 GiB boundary and
    // ending 2 MiB + 12 KiB after the next one.
    let base = 64 * G;
    let addr = base - 2 * M - 8 * K;
    let pfn = (4 * G - 2 * M - 8 * K) >> PAGE_SHIFT;
    let pages = (G + 4 * M + 20 * K) / PAGE_SIZE;
    // The fault came at the first page: its PMD table exists, the tail's does not.
    let mut t = ModelTables::new(false);
    t.pmd_table_exists(addr);
    let s = insert_range(&mut t, addr, pfn, pages);
    // The tail PTEs allocate the tail's PMD table, so the second pass places its PMD.
    assert_eq!(counts(&s), (1, 2, 5));
    assert_eq!(s.second_pass, 1);
    // The same without a second pass to be had: a tail that is one PMD only.
    let mut t = ModelTables::new(false);
    t.pmd_table_exists(addr);
    let s = insert_range(&mut t, addr, pfn, pages - 3);
    assert_eq!(counts(&s), (1, 1, 2 + 512));
    assert_eq!(s.second_pass, 512);
    // An in-kernel helper that may allocate tables gets the pure plan.
    let mut t = ModelTables::new(true);
    assert_eq!(
        counts(&insert_range(&mut t, addr, pfn, pages - 3)),
        (1, 2, 2)
    );
}

#[test]
fn misaligned_modulo_2m_maps_only_ptes() {
    let addr = 64 * G + 64 * K;
    let pfn = (4 * G) >> PAGE_SHIFT;
    let mut t = ModelTables::new(false);
    t.pmd_table_exists(addr);
    let s = insert_range(&mut t, addr, pfn, 2048);
    assert_eq!(counts(&s), (0, 0, 2048));
}

#[test]
fn partly_populated_range_degrades_to_ptes() {
    // Every 64th page mapped already (by PTEs): every 2 MiB holds a PTE table, so no PMD
    // can go anywhere, and the mapped pages are left alone.
    let addr = 64 * G;
    let pfn = (4 * G) >> PAGE_SHIFT;
    let mut t = ModelTables::new(false);
    for i in (0..2048).step_by(64) {
        t.map(Entry {
            addr: addr + i * PAGE_SIZE,
            pfn: pfn + i,
            level: Level::Pte,
        });
    }
    let s = insert_range(&mut t, addr, pfn, 2048);
    assert_eq!(counts(&s), (0, 0, 2048 - 32));
    assert_eq!(s.present, 32);
    // A second call finds everything mapped.
    let s = insert_range(&mut t, addr, pfn, 2048);
    assert_eq!(counts(&s), (0, 0, 0));
    assert_eq!(s.present, 2048);
}

#[test]
fn an_insert_error_stops_and_keeps_the_count() {
    struct FailAfter(ModelTables, usize);
    impl Tables for FailAfter {
        fn slot(&mut self, addr: u64, level: Level) -> Slot {
            self.0.slot(addr, level)
        }
        fn insert(&mut self, e: Entry) -> Result<(), u32> {
            if self.0.inserted.len() == self.1 {
                return Err(0x1);
            }
            self.0.insert(e)
        }
    }
    let mut t = FailAfter(ModelTables::new(true), 3);
    let s = insert_range(&mut t, 64 * G + PAGE_SIZE, 1, 100);
    assert_eq!(s.error, 0x1);
    assert_eq!(counts(&s), (0, 0, 3));
}

#[test]
fn aligned_gigabyte_maps_one_pud() {
    let mut t = ModelTables::new(false);
    let s = insert_range(
        &mut t,
        64 * G,
        (4 * G) >> PAGE_SHIFT,
        (G + 2 * M + 8 * K) / PAGE_SIZE,
    );
    // The 2 MiB after the PUD has no PMD table until the tail PTEs allocate it.
    assert_eq!(counts(&s), (1, 1, 2));
    assert_eq!(t.inserted[0].level, Level::Pud);
}
