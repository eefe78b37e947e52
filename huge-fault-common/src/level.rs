//! Page-table levels: one encoding for the programs, the tool and the range insert. A
//! level's number is the one records and chain steps carry.

/// A page-table level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    Pte = 1,
    Pmd = 2,
    Pud = 3,
}

/// log2 of the base page size.
pub const PAGE_SHIFT: u32 = 12;

impl Level {
    /// The levels, smallest first.
    pub const ALL: [Level; 3] = [Level::Pte, Level::Pmd, Level::Pud];

    pub const fn shift(self) -> u32 {
        match self {
            Level::Pte => 12,
            Level::Pmd => 21,
            Level::Pud => 30,
        }
    }
    /// Bytes one entry of this level maps.
    pub const fn size(self) -> u64 {
        1 << self.shift()
    }
    /// Base pages one entry maps.
    pub const fn pages(self) -> u64 {
        1 << (self.shift() - PAGE_SHIFT)
    }
    /// The page order a `huge_fault` handler is asked for at this level (6.6+).
    pub const fn order(self) -> u32 {
        self.shift() - PAGE_SHIFT
    }
    pub const fn from_u8(v: u8) -> Option<Level> {
        match v {
            1 => Some(Level::Pte),
            2 => Some(Level::Pmd),
            3 => Some(Level::Pud),
            _ => None,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Level::Pte => "PTE",
            Level::Pmd => "PMD",
            Level::Pud => "PUD",
        }
    }
    /// The level a `huge_fault` handler's second argument asks for: a page order from 6.6
    /// (`by_order`), `enum page_entry_size` before (PTE 0, PMD 1, PUD 2); `None` for
    /// another value.
    #[inline(always)]
    pub const fn from_huge_fault_arg(arg: u32, by_order: bool) -> Option<Level> {
        match (arg, by_order) {
            (0, _) => Some(Level::Pte),
            (9, true) | (1, false) => Some(Level::Pmd),
            (18, true) | (2, false) => Some(Level::Pud),
            _ => None,
        }
    }

    /// Index into per-level arrays (`Mapping::entries`), the level's number.
    pub const fn index(self) -> usize {
        self as usize
    }
}

// The levels as the numbers records and chain steps carry.
pub const PTE: u8 = Level::Pte as u8;
pub const PMD: u8 = Level::Pmd as u8;
pub const PUD: u8 = Level::Pud as u8;
/// Not a level: the chain step of a call that returned VM_FAULT_RETRY, between the
/// steps of that call and those of the next call of the same fault.
pub const RETRY: u8 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_orders_and_numbers() {
        assert_eq!(Level::ALL.map(Level::size), [4 << 10, 2 << 20, 1 << 30]);
        assert_eq!(Level::ALL.map(Level::order), [0, 9, 18]);
        assert_eq!(Level::Pmd.pages(), 512);
        for l in Level::ALL {
            assert_eq!(Level::from_u8(l as u8), Some(l));
        }
        assert_eq!(Level::from_u8(RETRY), None);
        for l in Level::ALL {
            assert_eq!(Level::from_huge_fault_arg(l.order(), true), Some(l));
        }
        assert_eq!(Level::from_huge_fault_arg(2, false), Some(Level::Pud));
        assert_eq!(Level::from_huge_fault_arg(1, false), Some(Level::Pmd));
        assert_eq!(Level::from_huge_fault_arg(1, true), None);
        assert_eq!(Level::from_huge_fault_arg(3, false), None);
        assert_eq!((PTE, PMD, PUD), (1, 2, 3));
    }
}
