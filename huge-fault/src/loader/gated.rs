//! Probes attached only while their gate holds ([`kernel::Gate`]): loaded with their mode,
//! attached at once where the gate is open, and attached or detached while tracing as it
//! opens and closes (the multi-size THP probe would otherwise run on every anonymous fault
//! of a system where no multi-size THP size is enabled).

use std::{path::Path, time::Duration};

use aya::programs::{KProbe, kprobe::KProbeLinkId};

use super::{Session, errors::short_error};
use crate::{
    kernel::{self, Mode, ProbeSpec, Target},
    run_info::{ProbeReport, ProbeStatus, Reason},
};

/// One gated probe of the session.
pub struct Gated {
    spec: ProbeSpec,
    /// Its line among the session's probe reports.
    report: usize,
    link: Option<KProbeLinkId>,
    /// It failed to attach while the gate was open: not tried again until it closes.
    failed: bool,
}

/// The gated probes of `mode` that loaded (try_mode loads them and leaves them detached),
/// with their report lines.
pub(super) fn find(
    mode: Mode,
    loaded: &std::collections::HashSet<&'static str>,
    reports: &[ProbeReport],
) -> Vec<Gated> {
    kernel::probes(mode)
        .into_iter()
        .filter(|p| p.gate.is_some() && loaded.contains(p.program))
        .filter_map(|spec| {
            let report = reports.iter().position(|r| {
                r.mode == mode && r.program == spec.program && r.target == spec.target.describe()
            })?;
            Some(Gated {
                spec,
                report,
                link: None,
                failed: false,
            })
        })
        .collect()
}

impl Session {
    /// Whether any probe waits on a gate (then the event loop checks them while tracing).
    pub fn has_gates(&self) -> bool {
        !self.gated.is_empty()
    }

    /// Attaches each gated probe whose gate is open and detaches each whose gate closed,
    /// as sysfs under `thp` says now; `at` is the time since tracing began (`None` at
    /// start). Returns one line per change, and keeps the probe's report line current.
    pub fn update_gates(&mut self, thp: &Path, at: Option<Duration>) -> Vec<String> {
        let mut said = Vec::new();
        for g in &mut self.gated {
            let Some(gate) = g.spec.gate else { continue };
            let Target::Function(f) = g.spec.target else {
                continue;
            };
            let open = gate.open(thp);
            let Some(kp) = self
                .ebpf
                .program_mut(g.spec.program)
                .and_then(|p| <&mut KProbe>::try_from(p).ok())
            else {
                continue;
            };
            let when = at.map_or(String::new(), |t| format!(" {:.1} s in", t.as_secs_f64()));
            let r = &mut self.probes[g.report];
            match (open, g.link.is_some()) {
                (Some(_), false) if g.failed => {}
                (None, false) => g.failed = false,
                (Some(why), false) => match kp.attach(f, 0) {
                    Ok(link) => {
                        g.link = Some(link);
                        r.status = ProbeStatus::Attached;
                        r.reason = None;
                        r.target = format!("{f} (while {why}; attached{when})");
                        if at.is_some() {
                            said.push(format!(
                                "huge-fault: {why}: attached {} to {f}{when}",
                                g.spec.program
                            ));
                        }
                    }
                    Err(e) => {
                        let why = format!("{why}, but it did not attach: {}", short_error(&e));
                        said.push(format!("huge-fault: warning: {}: {why}", g.spec.program));
                        g.failed = true;
                        r.status = ProbeStatus::Failed;
                        r.reason = Some(Reason::Unavailable(why));
                    }
                },
                (None, true) => {
                    if let Some(link) = g.link.take() {
                        let _ = kp.detach(link);
                    }
                    r.status = ProbeStatus::Skipped;
                    r.target = f.to_string();
                    r.reason = Some(Reason::Unavailable(format!(
                        "{} (detached{when})",
                        gate.closed()
                    )));
                    said.push(format!(
                        "huge-fault: {}: detached {} from {f}{when}",
                        gate.closed(),
                        g.spec.program
                    ));
                }
                _ => {}
            }
        }
        said
    }
}
