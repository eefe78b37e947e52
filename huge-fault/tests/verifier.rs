//! Loads every program of the embedded object into the running kernel, so that a program the
//! verifier rejects fails the tests. Programs the kernel refuses to load for reasons other
//! than the verifier (fentry without BPF trampolines) are skipped with the reason printed.
//!
//! Needs root. Without it the test says so and passes, unless HUGE_FAULT_REQUIRE_VERIFIER=1
//! (set by `cargo xtask test`), where not being able to run it is a failure.

use std::collections::BTreeSet;

use aya::{
    EbpfLoader, Endianness,
    programs::{Program, ProgramError},
};
use huge_fault::{
    btf::Btf,
    kernel,
    loader::{EBPF_OBJECT, EBPF_OBJECT_HASH},
};
use huge_fault_common::{Filter, KernelOffsets};

fn required() -> bool {
    std::env::var("HUGE_FAULT_REQUIRE_VERIFIER").is_ok_and(|v| v == "1")
}

fn skip_or_fail(why: &str) {
    if required() {
        panic!("verifier test cannot run: {why}");
    }
    eprintln!("verifier test skipped: {why}");
}

#[test]
fn every_program_passes_the_verifier() {
    if huge_fault::host::check_privileges().is_err() {
        return skip_or_fail("not root (needs CAP_BPF and CAP_PERFMON)");
    }
    let raw = match std::fs::read("/sys/kernel/btf/vmlinux") {
        Ok(raw) => raw,
        Err(e) => return skip_or_fail(&format!("no kernel BTF: {e}")),
    };
    let offsets: KernelOffsets =
        kernel::resolve_offsets(&Btf::parse(&raw).expect("kernel BTF parses"))
            .expect("offsets resolve");
    let btf = aya::Btf::parse(&raw, Endianness::default()).expect("aya parses the kernel BTF");
    // Both objects: per-thread state in task local storage, and in a hash map.
    for (label, object) in [
        ("task storage", EBPF_OBJECT),
        ("hash map", EBPF_OBJECT_HASH),
    ] {
        eprintln!("verifier: the object with the per-thread state in {label}");
        check_object(object, &offsets, &btf);
    }
}

fn check_object(object: &[u8], offsets: &KernelOffsets, btf: &aya::Btf) {
    let filter = Filter {
        self_tgid: std::process::id(),
        ..Default::default()
    };
    let mut ebpf = EbpfLoader::new()
        .btf(Some(btf))
        .override_global("OFFSETS", offsets, true)
        .override_global("FILTER", &filter, true)
        .allow_unsupported_maps()
        .load(object)
        .expect("the object loads (maps, BTF, relocations)");

    // Every program the tool knows must be in the object, and every program in the object
    // must be known to the tool.
    let in_object: BTreeSet<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    let known: BTreeSet<String> = kernel::all_programs()
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        in_object, known,
        "object programs vs kernel::all_programs()"
    );

    let mut loaded = 0;
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    for (name, prog) in ebpf.programs_mut() {
        let result: Result<(), ProgramError> = match prog {
            Program::KProbe(p) => p.load(),
            Program::TracePoint(p) => p.load(),
            Program::PerfEvent(p) => p.load(),
            Program::FEntry(p) => p.load("handle_mm_fault", btf),
            Program::FExit(p) => p.load("handle_mm_fault", btf),
            other => panic!(
                "{name}: program type {:?} not covered by this test",
                other.prog_type()
            ),
        };
        let is_tracing = matches!(prog, Program::FEntry(_) | Program::FExit(_));
        match result {
            Ok(()) => {
                loaded += 1;
                eprintln!("verifier: {name}: loaded");
            }
            Err(ProgramError::LoadError {
                io_error,
                verifier_log,
            }) if is_tracing
                && matches!(
                    io_error.raw_os_error(),
                    Some(libc::EPERM) | Some(524) | Some(libc::EOPNOTSUPP)
                ) =>
            {
                let why = kernel::fentry_refusal(io_error.raw_os_error());
                // A refusal before verification leaves an empty or one-line log; a verifier
                // rejection has a trace, which is a failure even for fentry.
                let log = verifier_log.to_string();
                if log.lines().count() > 3 {
                    failures.push(format!("{name}: {io_error}\n{log}"));
                } else {
                    eprintln!("verifier: {name}: skipped: {why}");
                    skipped.push(name.to_string());
                }
            }
            Err(ProgramError::LoadError {
                io_error,
                verifier_log,
            }) => {
                failures.push(format!("{name}: {io_error}\n{verifier_log}"));
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "programs rejected:\n{}",
        failures.join("\n\n")
    );
    eprintln!(
        "verifier: {loaded} programs loaded, {} skipped ({})",
        skipped.len(),
        skipped.join(", ")
    );
    assert!(loaded >= 6, "only {loaded} programs loaded");
}
