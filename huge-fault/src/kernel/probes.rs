//! The probe table: every program of the object, where it attaches, in which mode, on which
//! kernels, and what it contributes.

use super::{
    EXCEPTION_FIELDS, Mode,
    extras::CALL_MODE_EXTRAS,
    spec::{ProbeSpec, ProgKind, Target},
};

const HMF: &str = "handle_mm_fault";

/// The fault lifecycle per mode, required for the mode to work, plus the optional
/// tracepoint-only extras. Order matters: it is the attach order.
pub(super) const LIFECYCLE: &[ProbeSpec] = &[
    ProbeSpec {
        program: "hf_fentry_handle_mm_fault",
        kind: ProgKind::FEntry,
        target: Target::Function(HMF),
        mode: Mode::Fentry,
        required: true,
        role: "fault entry",
        since: None,
        until: None,
        gate: None,
    },
    ProbeSpec {
        program: "hf_fexit_handle_mm_fault",
        kind: ProgKind::FExit,
        target: Target::Function(HMF),
        mode: Mode::Fentry,
        required: true,
        role: "fault return",
        since: None,
        until: None,
        gate: None,
    },
    ProbeSpec {
        program: "hf_kprobe_handle_mm_fault",
        kind: ProgKind::KProbe,
        target: Target::Function(HMF),
        mode: Mode::Kprobe,
        required: true,
        role: "fault entry",
        since: None,
        until: None,
        gate: None,
    },
    ProbeSpec {
        program: "hf_kretprobe_handle_mm_fault",
        kind: ProgKind::KRetProbe,
        target: Target::Function(HMF),
        mode: Mode::Kprobe,
        required: true,
        role: "fault return",
        since: None,
        until: None,
        gate: None,
    },
    ProbeSpec {
        program: "hf_tp_page_fault_user",
        kind: ProgKind::TracePoint,
        target: Target::Tracepoint("exceptions", "page_fault_user", EXCEPTION_FIELDS),
        mode: Mode::TracepointOnly,
        required: true,
        role: "fault entry (user mode)",
        since: None,
        until: None,
        gate: None,
    },
    ProbeSpec {
        program: "hf_perf_minor_fault",
        kind: ProgKind::PerfEvent,
        target: Target::SoftwareEvent("minor-faults"),
        mode: Mode::TracepointOnly,
        required: true,
        role: "completed minor faults",
        since: None,
        until: None,
        gate: None,
    },
    ProbeSpec {
        program: "hf_perf_major_fault",
        kind: ProgKind::PerfEvent,
        target: Target::SoftwareEvent("major-faults"),
        mode: Mode::TracepointOnly,
        required: true,
        role: "completed major faults",
        since: None,
        until: None,
        gate: None,
    },
    ProbeSpec {
        program: "hf_tp_page_fault_kernel",
        kind: ProgKind::TracePoint,
        target: Target::Tracepoint("exceptions", "page_fault_kernel", EXCEPTION_FIELDS),
        mode: Mode::TracepointOnly,
        required: false,
        role: "fault entry (kernel mode, e.g. copy_to_user)",
        since: None,
        until: None,
        gate: None,
    },
];

/// The generic huge-page paths whose probes must all be attached for the report to claim
/// levels and sizes (the driver paths add to them where a kernel has them).
pub const GENERIC_SIZE_FUNCTIONS: [&str; 3] =
    ["do_huge_pmd_anonymous_page", "do_set_pmd", "hugetlb_fault"];

/// Every probe of one mode, in attach order.
pub fn probes(mode: Mode) -> Vec<ProbeSpec> {
    let mut v: Vec<ProbeSpec> = LIFECYCLE
        .iter()
        .filter(|p| p.mode == mode)
        .copied()
        .collect();
    if mode != Mode::TracepointOnly {
        v.extend(CALL_MODE_EXTRAS.iter().map(|p| ProbeSpec { mode, ..*p }));
    }
    v
}

/// The names of every program the tool loads in some mode or for `run`.
pub fn all_programs() -> std::collections::BTreeSet<&'static str> {
    LIFECYCLE
        .iter()
        .chain(CALL_MODE_EXTRAS)
        .chain([&FOLLOW_PROBE])
        .map(|p| p.program)
        .collect()
}

/// Follows the processes `huge-fault run` starts: used in every mode, only for `run`.
pub const FOLLOW_PROBE: ProbeSpec = ProbeSpec {
    program: "hf_tp_sched_process_fork",
    kind: ProgKind::TracePoint,
    target: Target::Tracepoint("sched", "sched_process_fork", &[]),
    mode: Mode::TracepointOnly,
    required: true,
    role: "follows the traced command's children",
    since: None,
    until: None,
    gate: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_has_its_required_lifecycle_probes() {
        for mode in [Mode::Fentry, Mode::Kprobe, Mode::TracepointOnly] {
            let required = probes(mode)
                .iter()
                .filter(|p| p.mode == mode && p.required)
                .count();
            assert!(required >= 2, "{mode:?} has {required} required probes");
        }
    }

    #[test]
    fn roles_name_the_kernels_that_have_their_target() {
        let role = |program: &str, f: &'static str| {
            probes(Mode::Kprobe)
                .into_iter()
                .find(|p| p.program == program && p.target == Target::Function(f))
                .map(|p| p.role_text())
        };
        assert_eq!(
            role("hf_kret_insert_pmd", "vmf_insert_pfn_pmd_prot").as_deref(),
            Some("driver/DAX PMD insert (5.15 ... 6.3)")
        );
        assert_eq!(
            role("hf_kret_insert_pmd", "vmf_insert_folio_pmd").as_deref(),
            Some("DAX PMD folio insert (6.15+)")
        );
        assert_eq!(
            role("hf_kret_insert_pte", "vmf_insert_mixed_mkwrite").as_deref(),
            Some("DAX write PTE insert (result) (up to 6.14)")
        );
        // The exception tracepoints say which fields the programs read.
        for p in probes(Mode::TracepointOnly) {
            if let Target::Tracepoint("exceptions", _, fields) = p.target {
                assert_eq!(fields, EXCEPTION_FIELDS);
            }
        }
    }

    #[test]
    fn the_generic_size_paths_are_probed_in_both_call_modes() {
        for mode in [Mode::Fentry, Mode::Kprobe] {
            for f in GENERIC_SIZE_FUNCTIONS {
                assert!(
                    probes(mode).iter().any(|p| p.target == Target::Function(f)),
                    "{mode:?} lacks {f}"
                );
            }
        }
    }

    #[test]
    fn gated_probes_are_optional_kprobes_on_a_function() {
        // Session::update_gates attaches and detaches exactly that kind.
        let mut gated = 0;
        for mode in Mode::ALL {
            for p in probes(mode).iter().filter(|p| p.gate.is_some()) {
                gated += 1;
                assert!(!p.required, "{}", p.program);
                assert_eq!(p.kind, ProgKind::KProbe, "{}", p.program);
                assert!(matches!(p.target, Target::Function(_)), "{}", p.program);
            }
        }
        // The multi-size THP probe, in fentry and kprobe mode.
        assert_eq!(gated, 2);
    }
}
