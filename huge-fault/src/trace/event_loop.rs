//! The event loop of a live run, and the final report when it ends.

use std::time::{Duration, Instant};

use aya::maps::RingBuf;
use aya_log::EbpfLogger;
use huge_fault_common::counter;
use tokio::io::{Interest, unix::AsyncFd};

use super::{
    DRAIN_EVERY, GATE_EVERY,
    feed::{Aggregates, Item, drain, feed, pending_retries},
    held::Traced,
    view::{Control, View, output_width},
};
use crate::{
    analysis::Analyzer,
    cli::TraceArgs,
    error::{Error, Result},
    host::kernel_release,
    kernel,
    loader::{KernelLogBox, Session, read_costs, read_counters, read_misses, unload_program},
    output::{judge, print, write_junit},
    procmaps::ProcMaps,
    record::{CreateError, Recorder, Trailer},
    report::{Extras, Report},
    run_info::{EndedBy, RunInfo},
};

/// Reads the kernel side until the run ends, then detaches, reads what is left, reports
/// and judges. Returns the exit status.
pub async fn event_loop(
    args: &TraceArgs,
    argv: Option<&[String]>,
    session: &mut Session,
    logger: Option<EbpfLogger<KernelLogBox>>,
    mut traced: Option<Traced>,
    mut recorder: Option<Recorder>,
    metrics_listener: Option<std::net::TcpListener>,
) -> Result<i32> {
    let object = |what, why: String| Error::Object { what, why };
    let ring_map = session
        .ebpf
        .take_map("EVENTS")
        .ok_or_else(|| object("EVENTS map", "missing".into()))?;
    let ring = RingBuf::try_from(ring_map).map_err(|e| object("EVENTS map", e.to_string()))?;
    // SAFETY: the ring buffer owns its map fd, which stays open and unchanged until the
    // AsyncFd (which owns the ring buffer) is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| Error::io("cannot poll the ring buffer", e.into()))?;
    let mut aggregates = Aggregates {
        map: session
            .ebpf
            .take_map("AGGREGATE")
            .ok_or_else(|| object("AGGREGATE map", "missing".into()))
            .and_then(|m| {
                aya::maps::PerCpuHashMap::try_from(m)
                    .map_err(|e| object("AGGREGATE map", e.to_string()))
            })?,
        seen: Default::default(),
        counted: 0,
        metrics: None,
    };
    // The exporter: its state fed by every sweep, encoded on each scrape.
    let (metrics, registry, listener) = match metrics_listener {
        Some(l) => {
            let shared = crate::metrics::Shared(std::sync::Arc::new(std::sync::Mutex::new(
                crate::metrics::State::new(
                    env!("CARGO_PKG_VERSION"),
                    kernel_release(),
                    session.mode.name(),
                    args.metrics_comm,
                    {
                        let vis = session.mode.visibility();
                        crate::metrics::Sees {
                            retries: vis.every_call,
                            errors: vis.failed_faults,
                            levels: run_info(session, args, Instant::now(), EndedBy::Running)
                                .sizes_visible(),
                        }
                    },
                ),
            )));
            aggregates.metrics = Some(shared.clone());
            let registry = std::sync::Arc::new(crate::metrics::registry(&shared));
            let listener = tokio::net::TcpListener::from_std(l)
                .map_err(|e| Error::io("cannot serve metrics", e))?;
            crate::say!(
                "huge-fault: serving OpenMetrics at http://{}/metrics",
                listener
                    .local_addr()
                    .map_err(|e| Error::io("cannot serve metrics", e))?
            );
            (Some(shared), Some(registry), Some(listener))
        }
        None => (None, None, None),
    };
    let mut logger = match logger {
        // SAFETY: as above, the logger owns its ring buffer fd.
        Some(l) => Some(
            unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) }
                .map_err(|e| Error::io("cannot poll the log buffer", e.into()))?,
        ),
        None => None,
    };
    let mut analyzer = Analyzer::new(args.output.max_vmas);
    analyzer.reasons = crate::analysis::reason::Context::new(&kernel_release());
    let mut maps = ProcMaps::new();
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + Duration::from_secs_f64(d));
    let tick = Duration::from_secs_f64(args.interval.unwrap_or(1.0));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    let mut view = View::new(args);
    let mut keys = view.take_keys();
    // The programs wake us only when a backlog builds up (batched wake-ups): drain the ring
    // on this timer too.
    let mut drain_tick = tokio::time::interval(DRAIN_EVERY);
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Gated probes follow their sysfs settings while tracing.
    let mut gate_tick = tokio::time::interval(GATE_EVERY);
    gate_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let gates = session.polls_sysfs();
    let signal = |kind: tokio::signal::unix::SignalKind, name: &str| {
        tokio::signal::unix::signal(kind).map_err(|e| Error::io(format!("cannot handle {name}"), e))
    };
    use tokio::signal::unix::SignalKind;
    let mut sigterm = signal(SignalKind::terminate(), "SIGTERM")?;
    let mut sighup = signal(SignalKind::hangup(), "SIGHUP")?;
    // A write to a closed pipe fails with EPIPE as well; this catches `kill -PIPE`.
    let mut sigpipe = signal(SignalKind::pipe(), "SIGPIPE")?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let sleep = tokio::time::sleep_until(deadline.map_or_else(
        || tokio::time::Instant::now() + Duration::from_secs(86400 * 365),
        tokio::time::Instant::from_std,
    ));
    tokio::pin!(sleep);
    let mut sigchld = signal(tokio::signal::unix::SignalKind::child(), "SIGCHLD")?;
    // Everything is attached and the command is in TRACED: let it exec.
    if let Some(t) = traced.as_mut() {
        use std::io::Write as _;
        t.release
            .write_all(b"go\n")
            .map_err(|e| Error::io("cannot start the command", e))?;
    }
    let mut command_status: Option<std::process::ExitStatus> = None;
    let mut output_error = None;
    let ended_by;
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.map_err(|e| Error::io("ring buffer poll failed", e))?;
                let inner = guard.get_inner_mut();
                drain(inner, &mut analyzer, &mut maps, recorder.as_mut(), 65536);
                guard.clear_ready();
            }
            _ = drain_tick.tick() => {
                drain(ring.get_mut(), &mut analyzer, &mut maps, recorder.as_mut(), 65536);
            }
            _ = gate_tick.tick(), if gates => {
                let at = Some(started.elapsed());
                let thp = std::path::Path::new(kernel::THP_SYSFS);
                for line in session.update_gates(thp, at) {
                    crate::say!("{line}");
                }
                if let Some(line) = session.update_thp_words(thp, at) {
                    crate::say!("{line}");
                }
            }
            guard = async {
                match logger.as_mut() {
                    Some(l) => l.readable_mut().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Ok(mut guard) = guard {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
            }
            _ = ticker.tick() => {
                let run = run_info(session, args, started, EndedBy::Running);
                aggregates.sweep(
                    run.counter(counter::AGGREGATED),
                    &mut analyzer,
                    &mut maps,
                    recorder.as_mut(),
                );
                if let Some(r) = recorder.as_mut() {
                    r.flush();
                }
                if let Some(m) = &metrics {
                    let mut s = m.0.lock().unwrap_or_else(|p| p.into_inner());
                    s.lost = run.counter(counter::RINGBUF_DROPS);
                    s.skipped_runs = run.program_misses.clone();
                    s.classes = aggregates.seen.len() as u64;
                    s.class_capacity = u64::from(huge_fault_common::aggregate::CLASSES);
                }
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()).as_secs());
                if let Err(e) = view.tick(args, &analyzer, &run, left) {
                    output_error = Some(e);
                    ended_by = EndedBy::OutputClosed;
                    break;
                }
            }
            key = async {
                match keys.as_mut() {
                    Some(k) => k.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                match key {
                    Some(k) if view.on_key(k) == Control::Quit => {
                        ended_by = EndedBy::Quit;
                        break;
                    }
                    Some(_) => {}
                    // The keyboard is gone (no terminal): keep tracing without it.
                    None => keys = None,
                }
            }
            conn = async {
                match listener.as_ref() {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            } => {
                if let (Ok((stream, _)), Some(r)) = (conn, registry.as_ref()) {
                    crate::metrics::serve(stream, r.clone());
                }
            }
            _ = sigchld.recv() => {
                if let Some(t) = traced.as_mut()
                    && let Ok(Some(st)) = t.child.try_wait()
                {
                    command_status = Some(st);
                    ended_by = EndedBy::CommandExit;
                    break;
                }
            }
            _ = &mut sleep => { ended_by = EndedBy::Duration; break; }
            _ = &mut ctrl_c => { ended_by = EndedBy::Signal; break; }
            _ = sigterm.recv() => { ended_by = EndedBy::Signal; break; }
            _ = sighup.recv() => { ended_by = EndedBy::Signal; break; }
            _ = sigpipe.recv() => { ended_by = EndedBy::Signal; break; }
        }
    }
    view.finish();
    // Detach, then read what is still in the ring.
    let counters_before_detach = read_counters(&session.ebpf);
    let misses = read_misses(&session.ebpf);
    let costs = read_costs(&session.ebpf);
    for (_, prog) in session.ebpf.programs_mut() {
        unload_program(prog);
    }
    drain(
        ring.get_mut(),
        &mut analyzer,
        &mut maps,
        recorder.as_mut(),
        usize::MAX,
    );
    aggregates.sweep(u64::MAX, &mut analyzer, &mut maps, recorder.as_mut());
    for rec in pending_retries(&session.ebpf, session.mode) {
        feed(
            Item::Record(&rec),
            &mut analyzer,
            &mut maps,
            recorder.as_mut(),
        );
    }
    if let Some(l) = logger.as_mut() {
        l.get_mut().flush();
    }
    let mut run = run_info(session, args, started, ended_by);
    // Counters do not move after detach; prefer the later read when it succeeded.
    if run.counters.iter().all(|&c| c == 0) {
        run.counters = counters_before_detach;
    }
    run.program_misses = misses;
    run.program_costs = (!costs.is_empty()).then_some(costs);
    let extras = Extras::finished(&analyzer, &run, args.output.histogram);
    let report = Report::build_with(&analyzer, &run, extras);
    let recorded = match recorder.take() {
        Some(r) => {
            let path = r.path.clone();
            r.finish(&Trailer {
                run: run.clone(),
                max_vmas: args.output.max_vmas,
            })
            .map_err(|e| match e {
                CreateError::Io(source) => Error::RecordWrite {
                    path: path.clone(),
                    source,
                },
                e => Error::record(&path, e),
            })
        }
        None => Ok(()),
    };
    // With stdout gone there is nothing to print; the recording and JUnit still count.
    let printed = match output_error {
        Some(e) => Err(e),
        None => print(&args.output, args.json_stream, &report, output_width()),
    };
    let verdicts = judge(&args.output, &report);
    let thresholds_failed = verdicts.iter().any(|v| v.failed);
    // A command still running (the duration ended first, or a signal) is left running.
    let command_code = match (command_status, traced.as_ref()) {
        (Some(st), Some(t)) => {
            use std::os::unix::process::ExitStatusExt as _;
            let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
            if code != 0 {
                crate::say!(
                    "huge-fault: the traced command (pid {}) failed with status {code}",
                    t.child.id()
                );
            }
            code
        }
        _ => 0,
    };
    let command_line = argv.map(|a| a.join(" "));
    write_junit(
        &args.output,
        &verdicts,
        command_line.as_deref().map(|c| (c, command_code)),
        report.duration_s,
    )?;
    recorded?;
    printed?;
    Ok(if thresholds_failed { 1 } else { command_code })
}

fn run_info(session: &Session, args: &TraceArgs, started: Instant, ended_by: EndedBy) -> RunInfo {
    RunInfo {
        kernel_release: kernel_release(),
        mode: session.mode,
        filter_pid: args.pid,
        duration_s: started.elapsed().as_secs_f64(),
        ended_by,
        probes: session.probes.clone(),
        counters: read_counters(&session.ebpf),
        aggregate: args.aggregate || args.metrics.is_some(),
        program_misses: read_misses(&session.ebpf),
        program_costs: Some(read_costs(&session.ebpf)).filter(|c| !c.is_empty()),
        handlers: session.handlers.clone(),
    }
}
