//! A fault's chain, typed: the levels its calls tried with each answer, `RETRY` between
//! calls, and what it mapped. Rendered as text (`PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK`)
//! only at the edge.

use huge_fault_common::{FaultRecord, Level, STEP_PRESENT, STEP_VIA_RANGE, level, rflags};

use crate::kernel::{self, NOT_MAPPED, VM_FAULT_BITS};

/// What a level answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Answer {
    /// It mapped its entry.
    Ok,
    /// A range-insert helper answered for it.
    Range,
    /// The entry was there already: a write-protect or COW fault, or an insert over a
    /// present entry (TTM's prefault re-inserts those). Nothing inserted.
    Present,
    /// It mapped nothing: these `vm_fault_t` bits (FALLBACK, RETRY, an error).
    Failed(u32),
}

impl Answer {
    /// The answer a step's `vm_fault_t` (and marks) give.
    pub fn of(ret: u32) -> Self {
        if ret & NOT_MAPPED != 0 {
            Answer::Failed(ret & NOT_MAPPED)
        } else if ret & STEP_PRESENT != 0 {
            Answer::Present
        } else if ret & STEP_VIA_RANGE != 0 {
            Answer::Range
        } else {
            Answer::Ok
        }
    }

    pub fn is_fallback(self) -> bool {
        matches!(self, Answer::Failed(b) if b & kernel::VM_FAULT_FALLBACK != 0)
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Ok => f.write_str("OK"),
            Answer::Range => f.write_str("RANGE"),
            Answer::Present => f.write_str("PRESENT"),
            Answer::Failed(bits) => f.write_str(&kernel::bit_names(*bits, VM_FAULT_BITS)),
        }
    }
}

/// One step of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// A level tried: its number as the record carries it (0 is a hugetlb entry of a size
    /// that is neither PMD nor PUD), and its answer.
    Level { level: u8, answer: Answer },
    /// The call returned VM_FAULT_RETRY; the next steps are the next call's.
    Retry,
    /// This many more steps that did not fit in the record.
    Overflow(u32),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Retry => f.write_str("RETRY"),
            Step::Overflow(n) => write!(f, "+{n}"),
            Step::Level { level, answer } => {
                let name = match Level::from_u8(*level) {
                    Some(l) => l.name(),
                    None if *level == 0 => "HUGE?",
                    None => "?",
                };
                write!(f, "{name}:{answer}")
            }
        }
    }
}

/// A chain: steps, each with how many times it came in a row.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Chain {
    pub steps: Vec<(Step, u32)>,
}

impl Chain {
    fn push(&mut self, step: Step) {
        self.steps.push((step, 1));
    }

    /// FALLBACK answers in the chain.
    pub fn fallback_steps(&self) -> u32 {
        self.steps
            .iter()
            .filter(|(s, _)| matches!(s, Step::Level { answer, .. } if answer.is_fallback()))
            .map(|(_, n)| n)
            .sum()
    }

    /// The last step, when it is a level's (not a retry).
    fn last_level(&self) -> Option<(u8, Answer)> {
        match self
            .steps
            .iter()
            .rev()
            .find(|(s, _)| !matches!(s, Step::Overflow(_)))
        {
            Some((Step::Level { level, answer }, _)) => Some((*level, *answer)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (step, times)) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{step}")?;
            if *times > 1 {
                write!(f, "×{times}")?;
            }
        }
        Ok(())
    }
}

/// Bytes of one entry per level, by the level's number (0: unknown size).
pub const LEVEL_BYTES: [u64; 4] = [0, 4 << 10, 2 << 20, 1 << 30];

/// What one fault mapped, interpreted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapped {
    pub chain: Chain,
    pub entries: [u32; 4],
    /// Inserts over an entry already present (steps marked [`STEP_PRESENT`]), by level.
    pub reinserts: [u32; 4],
    pub bytes: u64,
    /// FALLBACK steps in the chain.
    pub fallback_steps: u32,
    /// The `huge_fault` handler asked last, by index + 1 in the run's handler table (0:
    /// none asked).
    pub handler: u8,
}

/// The chain and entries of a completed fault from its record: the nested probes' steps
/// (of every call, a VM_FAULT_RETRY between calls as `RETRY`; a step repeated in a row as
/// `STEP×N`), then the PTE path when the probes saw no entry mapped and the fault
/// succeeded. A PTE fault on a present entry (x86 PROT bit: write-protect, COW) inserts
/// nothing.
pub fn mapped(r: &FaultRecord) -> Mapped {
    let m = &r.mapping;
    let mut chain = Chain {
        steps: (0..huge_fault_common::MAX_CHAIN)
            .map_while(|i| {
                let (lvl, ret) = m.step(i)?;
                let step = if lvl == level::RETRY {
                    Step::Retry
                } else {
                    Step::Level {
                        level: lvl,
                        answer: Answer::of(ret),
                    }
                };
                Some((step, m.times(i)))
            })
            .collect(),
    };
    if m.overflow > 0 {
        chain.push(Step::Overflow(m.overflow));
    }
    let mut reinserts = [0u32; 4];
    for i in 0..huge_fault_common::MAX_CHAIN {
        match m.step(i) {
            Some((lvl, ret)) if ret & STEP_PRESENT != 0 && usize::from(lvl) < 4 => {
                reinserts[usize::from(lvl)] += m.times(i);
            }
            Some(_) => {}
            None => break,
        }
    }
    let mut entries = m.entries;
    // Huge entries, or PTEs seen by the PTE-insert probes (drivers, range helpers): the
    // record has the entries, nothing is inferred.
    let seen = entries.iter().any(|&n| n > 0);
    let final_answer = Answer::of(r.ret);
    // A huge_fault handler asked for a PTE (DAX, drivers) already made the PTE step in the
    // last call (a RETRY step ends the calls before it).
    let last = chain.last_level().filter(|(l, _)| *l == level::PTE);
    if !seen {
        let pte = |answer| Step::Level {
            level: level::PTE,
            answer,
        };
        match (last, final_answer) {
            (Some((_, Answer::Ok)), Answer::Ok) => entries[1] += 1,
            (Some(_), _) => {}
            (None, Answer::Failed(_)) => chain.push(pte(final_answer)),
            (None, _)
                if r.has(rflags::HAS_EXCEPTION) && r.error_code & kernel::X86_PF_PROT != 0 =>
            {
                chain.push(pte(Answer::Present));
            }
            (None, _) => {
                chain.push(pte(Answer::Ok));
                entries[1] += 1;
            }
        }
    }
    let bytes = entries
        .iter()
        .zip(LEVEL_BYTES)
        .map(|(n, b)| u64::from(*n) * b)
        .fold(0u64, u64::saturating_add);
    Mapped {
        fallback_steps: chain.fallback_steps(),
        chain,
        entries,
        reinserts,
        bytes,
        handler: m.handler,
    }
}
