//! Loading and attaching one probe of the table, and detaching.

use std::{collections::HashSet, path::Path};

use aya::{
    Ebpf,
    programs::{
        FEntry, FExit, KProbe, PerfEvent, Program, ProgramError, TracePoint,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
};

use super::errors::short_error;
use crate::{
    kernel::{self, Mode, ProbeSpec, ProgKind, Target},
    run_info::{ProbeReport, ProbeStatus, Reason},
};

/// What became of one probe, for the attach summary and the report.
pub fn probe_report(p: &ProbeSpec, status: ProbeStatus, reason: Option<Reason>) -> ProbeReport {
    ProbeReport {
        program: p.program.into(),
        target: p.target.describe(),
        mode: p.mode,
        role: p.role_text(),
        status,
        reason,
    }
}

/// Loads a program once (a tracepoint program serves several modes).
pub(super) fn load(
    ebpf: &mut Ebpf,
    p: &ProbeSpec,
    btf: &aya::Btf,
    loaded: &mut HashSet<&'static str>,
) -> Result<(), ProgramError> {
    if loaded.contains(p.program) {
        return Ok(());
    }
    let prog = ebpf
        .program_mut(p.program)
        .ok_or(ProgramError::UnexpectedProgramType)?;
    let func = match p.target {
        Target::Function(f) => f,
        _ => "",
    };
    match p.kind {
        ProgKind::FEntry => <&mut FEntry>::try_from(prog)?.load(func, btf)?,
        ProgKind::FExit => <&mut FExit>::try_from(prog)?.load(func, btf)?,
        ProgKind::KProbe | ProgKind::KRetProbe => <&mut KProbe>::try_from(prog)?.load()?,
        ProgKind::TracePoint => <&mut TracePoint>::try_from(prog)?.load()?,
        ProgKind::PerfEvent => <&mut PerfEvent>::try_from(prog)?.load()?,
    }
    loaded.insert(p.program);
    Ok(())
}

/// Attaches one probe. For a suffix target, returns the functions it attached to.
/// The program on `huge_fault` handlers' entry, which tells which handler was asked.
const HANDLER_ENTRY: &str = "hf_kprobe_huge_fault";

pub(super) fn attach(
    ebpf: &mut Ebpf,
    p: &ProbeSpec,
    tracefs: Result<&Path, &str>,
    kallsyms: &str,
    functions: &HashSet<String>,
    range_helper: &Result<Vec<String>, String>,
    handlers: &[String],
) -> Result<Option<String>, String> {
    let prog = ebpf
        .program_mut(p.program)
        .ok_or("program missing from the object")?;
    let e = |e: ProgramError| short_error(&e);
    match p.target {
        Target::Function(f) => match p.kind {
            ProgKind::FEntry => {
                <&mut FEntry>::try_from(prog)
                    .map_err(e)?
                    .attach()
                    .map_err(e)?;
            }
            ProgKind::FExit => {
                <&mut FExit>::try_from(prog)
                    .map_err(e)?
                    .attach()
                    .map_err(e)?;
            }
            _ => {
                <&mut KProbe>::try_from(prog)
                    .map_err(e)?
                    .attach(f, 0)
                    .map_err(e)?;
            }
        },
        Target::Tracepoint(cat, name, fields) => {
            let tracefs = tracefs.map_err(str::to_string)?;
            let format_path = tracefs.join("events").join(cat).join(name).join("format");
            let format = std::fs::read_to_string(&format_path)
                .map_err(|err| format!("tracepoint {cat}:{name} not in this kernel ({err})"))?;
            kernel::check_tracepoint_format(&format, fields)
                .map_err(|why| format!("tracepoint {cat}:{name} has another layout: {why}"))?;
            <&mut TracePoint>::try_from(prog)
                .map_err(e)?
                .attach(cat, name)
                .map_err(e)?;
        }
        Target::Suffix(_) | Target::RangeHelper => {
            let names: Vec<&str> = match p.target {
                Target::Suffix(suffix) => {
                    // The kernel's `*_huge_fault` functions, the handlers known by name
                    // that it has, and those the user named.
                    let mut v = kernel::functions_with_suffix(functions, suffix);
                    v.extend(
                        kernel::NAMED_HANDLERS
                            .iter()
                            .copied()
                            .filter(|n| functions.contains(*n)),
                    );
                    for h in handlers {
                        if !v.contains(&h.as_str()) {
                            v.push(h);
                        }
                    }
                    if v.is_empty() {
                        return Err(format!("no *{suffix} function in this kernel"));
                    }
                    v
                }
                _ => range_helper
                    .as_ref()
                    .map_err(Clone::clone)?
                    .iter()
                    .map(String::as_str)
                    .collect(),
            };
            let kp = <&mut KProbe>::try_from(prog).map_err(e)?;
            let mut attached = Vec::new();
            let mut failed = Vec::new();
            for f in names {
                match kp.attach(f, 0) {
                    Ok(_) => attached.push(f),
                    Err(err) => failed.push(format!("{f}: {}", short_error(&err))),
                }
            }
            if attached.is_empty() {
                return Err(failed.join("; "));
            }
            let mut detail = attached.join(", ");
            if !failed.is_empty() {
                detail.push_str(&format!("; not {}", failed.join("; ")));
            }
            if p.program == HANDLER_ENTRY
                && let Err(why) = super::handlers::register(ebpf, kallsyms, &attached)
            {
                detail.push_str(&format!("; handlers not named: {why}"));
            }
            return Ok(Some(detail));
        }
        Target::SoftwareEvent(ev) => {
            let event = match ev {
                "minor-faults" => SoftwareEvent::PageFaultsMin,
                "major-faults" => SoftwareEvent::PageFaultsMaj,
                other => return Err(format!("unknown software event {other}")),
            };
            let cpus = aya::util::online_cpus()
                .map_err(|(path, err)| format!("cannot read {path}: {err}"))?;
            let pe = <&mut PerfEvent>::try_from(prog).map_err(e)?;
            for cpu in cpus {
                pe.attach(
                    PerfEventConfig::Software(event),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Period(1),
                    false,
                )
                .map_err(|err| format!("cpu {cpu}: {}", short_error(&err)))?;
            }
        }
    }
    Ok(None)
}

/// Detaches and unloads one program (a no-op for a program never loaded).
pub fn unload_program(prog: &mut Program) {
    let _ = match prog {
        Program::FEntry(p) => p.unload(),
        Program::FExit(p) => p.unload(),
        Program::KProbe(p) => p.unload(),
        Program::TracePoint(p) => p.unload(),
        Program::PerfEvent(p) => p.unload(),
        _ => Ok(()),
    };
}

/// Detaches everything a failed mode attached.
pub(super) fn unload(ebpf: &mut Ebpf, mode: Mode, loaded: &mut HashSet<&'static str>) {
    for p in &kernel::probes(mode) {
        if let Some(prog) = ebpf.program_mut(p.program) {
            unload_program(prog);
        }
        loaded.remove(p.program);
    }
}
