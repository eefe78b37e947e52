//! Kernel knowledge, as data: return codes, fault flags, the probes and the member offsets
//! the programs need. Everything version-dependent about the kernel lives here.

mod extras;
mod features;
mod gate;
mod mode;
mod offsets;
mod probes;
mod spec;
mod thp;
mod thp_sysfs;
mod tracefs;
mod vma_lock;

/// The ABI values (`vm_fault_t`, fault flags, x86 error code, `vm_flags`) shared with the
/// programs.
pub use huge_fault_common::kabi::*;

pub use features::{
    config_lookup, fentry_refusal, functions_with_suffix, kallsyms_functions, kernel_config_value,
    kprobes_unavailable,
};
pub use gate::{THP_SYSFS, mthp_enabled};
pub use mode::{Mode, Visibility};
pub use offsets::{MissingMember, resolve_offsets, resolve_walk};
pub use probes::{FOLLOW_PROBE, GENERIC_SIZE_FUNCTIONS, all_programs, probes};
pub use spec::{DEFAULT_RANGE_HELPER, Gate, NAMED_HANDLERS, ProbeSpec, ProgKind, Target};
pub use thp::{ThpSource, data_symbols, resolve_thp};
pub use thp_sysfs::{ThpBits, describe as describe_thp_words, thp_words};
pub use tracefs::{EXCEPTION_FIELDS, check_tracepoint_format, tracepoint_field_offset};
pub use vma_lock::{VMA_LOCK_RETRIES, VmaLockRetry};

/// `A|B|C` names of the set bits of `value`; unknown bits as hex.
pub fn bit_names(value: u32, table: &[(u32, &str)]) -> String {
    let mut parts = Vec::new();
    let mut rest = value;
    for &(bit, name) in table {
        if value & bit != 0 {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_names_lists_known_and_unknown_bits() {
        assert_eq!(bit_names(0x0104, VM_FAULT_BITS), "MAJOR|NOPAGE");
        assert_eq!(bit_names(0x0400 | 0x8000, VM_FAULT_BITS), "RETRY|0x8000");
        assert_eq!(bit_names(0, VM_FAULT_BITS), "0");
        assert_eq!(
            bit_names(FAULT_FLAG_WRITE | FAULT_FLAG_TRIED, FAULT_FLAG_BITS),
            "WRITE|TRIED"
        );
    }
}
