//! Choosing the attach mode: what the kernel offers, found once, then each mode tried in
//! turn; a mode whose required probe fails is given up.

use std::{collections::HashSet, path::Path};

use aya::{Ebpf, programs::ProgramError};

use super::{
    attach::{attach, load, probe_report, unload},
    errors::{errno_of, short_error},
};
use crate::{
    error::{Error, Result},
    kernel::{self, Mode, ProgKind, Target},
    run_info::{ProbeReport, ProbeStatus, Reason},
};

/// What the running kernel offers, found once before the modes are tried.
pub(super) struct KernelProbing<'a> {
    tracefs: Result<&'a Path, String>,
    /// Why kprobes cannot be used, or `None` when they can.
    kprobe_why: Option<String>,
    /// /proc/kallsyms as read at start (empty when it cannot be read).
    kallsyms: &'a str,
    /// Text symbols of /proc/kallsyms (empty when it cannot be read).
    functions: HashSet<String>,
    /// The symbols `--range-helper` resolved to, or why there are none.
    range_helper: Result<Vec<String>, String>,
    /// The functions `--huge-fault-handler` resolved to.
    handlers: Vec<String>,
}

/// The text symbols of a /proc/kallsyms listing that any of `patterns` names: Rust paths
/// (demangled, `::`) or C names, `*` globs allowed.
fn resolve_patterns(kallsyms: &str, patterns: &[String]) -> Vec<String> {
    // Only the symbols a pattern could name are turned into `Symbol`s.
    let symbols: Vec<crate::symbols::Symbol> = crate::symbols::text_symbols(kallsyms)
        .filter(|(n, _)| {
            patterns.iter().any(|p| {
                if p.contains("::") {
                    n.starts_with("_R") || n.starts_with("_ZN")
                } else {
                    crate::symbols::glob(p, n)
                }
            })
        })
        .map(|(name, module)| crate::symbols::Symbol {
            name: name.to_string(),
            demangled: crate::symbols::demangle(name),
            module: module.map(str::to_string),
        })
        .collect();
    let mut found: Vec<String> = patterns
        .iter()
        .flat_map(|p| crate::symbols::resolve(&symbols, p))
        .map(|s| s.name.clone())
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

impl<'a> KernelProbing<'a> {
    pub(super) fn new(
        kallsyms: &'a str,
        tracefs: Result<&'a Path, String>,
        range_helper: &[String],
        handlers: &[String],
    ) -> Result<Self> {
        let found = resolve_patterns(kallsyms, range_helper);
        let handlers_found = resolve_patterns(kallsyms, handlers);
        if !handlers.is_empty() && handlers_found.is_empty() {
            return Err(Error::NoHandler(handlers.join(",")));
        }
        let range_helper = if found.is_empty() {
            Err(format!(
                "no function matches --range-helper {} in /proc/kallsyms (is its module loaded?)",
                range_helper.join(",")
            ))
        } else {
            Ok(found)
        };
        let kprobe_why =
            kernel::kprobes_unavailable(Path::new("/sys"), tracefs.as_ref().ok().copied());
        Ok(KernelProbing {
            tracefs,
            kprobe_why,
            kallsyms,
            functions: kernel::kallsyms_functions(kallsyms),
            range_helper,
            handlers: handlers_found,
        })
    }
}

/// Tries one mode: every required probe must load and attach; optional ones may fail.
pub(super) fn try_mode(
    ebpf: &mut Ebpf,
    mode: Mode,
    btf: &aya::Btf,
    kernel_probing: &KernelProbing<'_>,
    loaded: &mut HashSet<&'static str>,
    reports: &mut Vec<ProbeReport>,
) -> bool {
    let KernelProbing {
        tracefs,
        kprobe_why,
        kallsyms,
        functions,
        range_helper,
        handlers,
    } = kernel_probing;
    let tracefs = tracefs.as_ref().map(|p| *p).map_err(String::as_str);
    if mode == Mode::Kprobe
        && let Some(why) = kprobe_why
    {
        for p in &kernel::probes(mode) {
            reports.push(probe_report(
                p,
                ProbeStatus::Skipped,
                Some(Reason::Unavailable(why.clone())),
            ));
        }
        return false;
    }
    let mut these = Vec::new();
    let mut ok = true;
    for p in &kernel::probes(mode) {
        if let (Some(why), ProgKind::KProbe | ProgKind::KRetProbe) = (kprobe_why, p.kind) {
            these.push(probe_report(
                p,
                ProbeStatus::Skipped,
                Some(Reason::Unavailable(why.clone())),
            ));
            ok &= !p.required;
            continue;
        }
        if let (Target::Function(f), false) = (p.target, p.required)
            && !functions.is_empty()
            && !functions.contains(f)
        {
            these.push(probe_report(
                p,
                ProbeStatus::Skipped,
                Some(Reason::NotInKernel),
            ));
            continue;
        }
        if !ok {
            these.push(probe_report(
                p,
                ProbeStatus::Skipped,
                Some(Reason::ModeAbandoned(mode)),
            ));
            continue;
        }
        let loaded_ok = load(ebpf, p, btf, loaded).map_err(|e| match mode {
            _ if matches!(p.kind, ProgKind::FEntry | ProgKind::FExit)
                && errno_of(&e).is_some()
                && !matches!(e, ProgramError::LoadError { ref verifier_log, .. }
                        if verifier_log.to_string().lines().count() > 3) =>
            {
                kernel::fentry_refusal(errno_of(&e))
            }
            _ => short_error(&e),
        });
        if let (Ok(()), Some(gate)) = (&loaded_ok, p.gate) {
            // Attached once the mode is chosen, and while tracing, as long as its gate
            // holds (`Session::update_gates`).
            these.push(probe_report(
                p,
                ProbeStatus::Skipped,
                Some(Reason::Unavailable(gate.closed().into())),
            ));
            continue;
        }
        let result = loaded_ok.and_then(|()| {
            attach(
                ebpf,
                p,
                tracefs,
                kallsyms,
                functions,
                range_helper,
                handlers,
            )
        });
        match result {
            Ok(detail) => {
                let mut r = probe_report(p, ProbeStatus::Attached, None);
                if let Some(d) = detail {
                    r.target = format!("{} ({d})", r.target);
                }
                these.push(r);
            }
            Err(why) => {
                these.push(probe_report(
                    p,
                    ProbeStatus::Failed,
                    Some(Reason::Unavailable(why)),
                ));
                if p.required {
                    ok = false;
                }
            }
        }
    }
    if !ok {
        unload(ebpf, mode, loaded);
        for r in &mut these {
            if r.status == ProbeStatus::Attached {
                r.status = ProbeStatus::Skipped;
                r.reason = Some(Reason::ModeAbandoned(mode));
            }
        }
    }
    reports.extend(these);
    ok
}
