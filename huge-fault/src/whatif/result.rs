//! One VMA's what-if, as the report gives it.

use hf_range::Level;
use serde::Serialize;

/// Faults and entries per size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub faults: u64,
    pub pte: u64,
    pub pmd: u64,
    pub pud: u64,
    pub bytes: u64,
}

impl Counts {
    pub(super) fn new(faults: u64, e: [u64; 4]) -> Self {
        Counts {
            faults,
            pte: e[1],
            pmd: e[2],
            pud: e[3],
            bytes: e[1] * Level::Pte.size() + e[2] * Level::Pmd.size() + e[3] * Level::Pud.size(),
        }
    }

    /// `3 faults: PUD 1, PMD 2, PTE 14`.
    pub fn describe(&self) -> String {
        format!(
            "{} fault{}: PUD {}, PMD {}, PTE {}",
            self.faults,
            if self.faults == 1 { "" } else { "s" },
            self.pud,
            self.pmd,
            self.pte
        )
    }
}

/// The contiguous run handed to the helper.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Run {
    pub start: String,
    pub pages: u64,
    pub pfn: String,
}

/// One VMA's what-if.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VmaWhatIf {
    /// Why it was not computed.
    pub skipped: Option<String>,
    pub run: Option<Run>,
    /// Levels the kernel asked this VMA's driver for, as observed.
    pub asks: Vec<&'static str>,
    /// What really happened: faults and entries.
    pub observed: Option<Counts>,
    /// A range insert by a module's helper (no page-table allocation), like the lab driver's.
    pub module_helper: Option<Counts>,
    /// A range insert by a core-mm helper that may allocate page-table levels.
    pub core_helper: Option<Counts>,
}

impl VmaWhatIf {
    pub(super) fn skipped(reason: String) -> Self {
        VmaWhatIf {
            skipped: Some(reason),
            run: None,
            asks: Vec::new(),
            observed: None,
            module_helper: None,
            core_helper: None,
        }
    }
}
