//! The THP settings words the programs read where the kernel's own cannot be found: made
//! from sysfs at start and every 200 ms while tracing, written to the programs' `THP_WORDS` when
//! they change.

use std::{path::Path, time::Duration};

use aya::maps::Array;
use huge_fault_common::ThpNow;

use super::Session;
use crate::kernel::{self, ThpBits};

/// What the session keeps of the copy: the kernel's bit numbers and the words last written.
pub struct ThpCopy {
    bits: ThpBits,
    last: Option<ThpNow>,
    /// sysfs could not be read while tracing, and that was said (once until it can again).
    unreadable_said: bool,
}

impl ThpCopy {
    pub fn new(bits: ThpBits) -> Self {
        ThpCopy {
            bits,
            last: None,
            unreadable_said: false,
        }
    }
}

impl Session {
    /// Whether the event loop must look at sysfs while tracing: a gated probe, or the THP
    /// settings copy.
    pub fn polls_sysfs(&self) -> bool {
        self.has_gates() || self.thp_words.is_some()
    }

    /// Makes the THP settings words from sysfs under `thp` and writes them to the
    /// programs' copy when they changed; `at` is the time since tracing began (`None` at
    /// start). Returns a line when a setting changed while tracing, or when the copy could
    /// not be written or sysfs not read (then the last words stay).
    pub fn update_thp_words(&mut self, thp: &Path, at: Option<Duration>) -> Option<String> {
        let copy = self.thp_words.as_mut()?;
        let Some(now) = kernel::thp_words(thp, copy.bits) else {
            let say = !copy.unreadable_said;
            copy.unreadable_said = true;
            return say.then(|| {
                format!(
                    "huge-fault: warning: {} cannot be read: the THP settings stay as last read",
                    thp.display()
                )
            });
        };
        copy.unreadable_said = false;
        if copy.last == Some(now) {
            return None;
        }
        let written = self
            .ebpf
            .map_mut(".bss")
            .ok_or_else(|| "the object has no .bss map (THP_WORDS)".to_string())
            .and_then(|m| Array::<_, ThpNow>::try_from(m).map_err(|e| e.to_string()))
            .and_then(|mut a| a.set(0, now, 0).map_err(|e| e.to_string()));
        if let Err(e) = written {
            return Some(format!(
                "huge-fault: warning: the THP settings copy was not written: {e}"
            ));
        }
        let had = copy.last.replace(now).is_some();
        let at = at.filter(|_| had)?;
        Some(format!(
            "huge-fault: THP settings now {} (from sysfs, {:.1} s in)",
            kernel::describe_thp_words(&now, copy.bits),
            at.as_secs_f64()
        ))
    }
}
