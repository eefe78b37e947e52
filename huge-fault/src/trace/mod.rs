//! A live run: filters set in the kernel, the programs attached, the command held and
//! released, the event loop until the duration, a signal or the command's exit.

mod event_loop;
mod feed;
mod held;
mod view;

use std::{path::Path, time::Duration};

use aya::programs::TracePoint;
use huge_fault_common::Filter;

pub use held::{HOLD_ARG, hold_then_exec};
pub use view::output_width;

use crate::{
    cli::TraceArgs,
    error::{Error, Result},
    host::{check_privileges, ensure_tracefs},
    kernel,
    loader::{LoadOptions, probe_report, short_error, start},
    record::Recorder,
    report::Report,
    run_info::ProbeStatus,
};
use held::spawn_held;

/// How often the ring buffer is drained without a wake-up from the kernel side.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// How often gated probes re-read the settings they follow (a few small sysfs files): a
/// size enabled while tracing is probed within this.
const GATE_EVERY: Duration = Duration::from_millis(200);

/// The whole live run: load, attach, trace until the duration, a signal or the traced
/// command's exit (`argv`, for `huge-fault run`), report, and judge the thresholds.
/// Returns the exit status.
pub fn run(args: &TraceArgs, argv: Option<&[String]>) -> Result<i32> {
    check_privileges()?;
    let tracefs = ensure_tracefs();
    let mut filter = Filter {
        target_tgid: args.pid.unwrap_or(0),
        self_tgid: std::process::id(),
        follow: 0,
        fork_child_pid_offset: 0,
        cgroup_id: 0,
        comm: [0; 16],
    };
    if let Some(name) = &args.comm {
        filter.comm[..name.len()].copy_from_slice(name.as_bytes());
    }
    if let Some(path) = &args.cgroup {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).map_err(|source| Error::Cgroup {
            path: path.clone(),
            source,
        })?;
        let cgroup_controllers = path.join("cgroup.controllers");
        if !meta.is_dir() || !cgroup_controllers.exists() {
            return Err(Error::NotCgroup(path.clone()));
        }
        // A cgroup v2 directory's inode number is the cgroup id BPF sees.
        filter.cgroup_id = meta.ino();
    }
    if argv.is_some() {
        let tracefs = tracefs
            .as_ref()
            .map_err(|e| Error::FollowForks(e.one_line()))?;
        let format =
            std::fs::read_to_string(tracefs.join("events/sched/sched_process_fork/format"))
                .map_err(|e| Error::FollowForks(format!("sched:sched_process_fork: {e}")))?;
        filter.follow = 1;
        filter.fork_child_pid_offset = kernel::tracepoint_field_offset(&format, "child_pid")
            .ok_or_else(|| Error::FollowForks("sched_process_fork has no child_pid".into()))?;
    }
    if let Some(pid) = args.pid
        && !Path::new(&format!("/proc/{pid}")).exists()
    {
        return Err(Error::NoProcess(pid));
    }
    // What can fail without the kernel fails before anything is attached.
    let program = argv.map(|a| held::resolve_command(&a[0])).transpose()?;
    if let Some(path) = &args.output.junit {
        check_writable_dir(path)?;
    }
    let recorder = match &args.record {
        Some(path) => Some(Recorder::create(path, args.force).map_err(|e| Error::record(path, e))?),
        None => None,
    };
    // The exporter's port is taken before anything attaches: a busy one fails at once.
    let metrics_listener = match args.metrics {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| Error::MetricsBind { addr, source })?,
        ),
        None => None,
    };
    let metrics_bits = if args.metrics.is_some() {
        huge_fault_common::metrics::CLASSES
            | if args.metrics_comm > 0 {
                huge_fault_common::metrics::COMM
            } else {
                0
            }
    } else {
        0
    };
    let opts = LoadOptions {
        btf_path: &args.btf,
        mode: args.mode,
        thread_state: args.thread_state,
        filter,
        ring_buffer_bytes: args.ring_buffer_kib * 1024,
        verbose: args.verbose,
        range_helper: &args.range_helper,
        huge_fault_handler: &args.huge_fault_handler,
        aggregate: args.aggregate || args.metrics.is_some(),
        metrics: metrics_bits,
    };
    // Held until the tool exits: the kernel accounts run time while any such fd is open.
    let _stats = if args.bpf_stats {
        Some(
            aya::sys::enable_stats(aya::sys::Stats::RunTime)
                .map_err(|e| Error::BpfStats(e.io_error))?,
        )
    } else {
        None
    };
    let (mut session, logger) = start(&opts)?;
    let mut traced = None;
    if let (Some(argv), Some(program)) = (argv, program.as_deref()) {
        let prog = session
            .ebpf
            .program_mut(kernel::FOLLOW_PROBE.program)
            .ok_or(Error::Object {
                what: "fork-following program",
                why: "missing from the object".into(),
            })?;
        let object = |e: aya::programs::ProgramError| Error::Object {
            what: "fork-following program",
            why: short_error(&e),
        };
        let tp = <&mut TracePoint>::try_from(prog).map_err(object)?;
        tp.load().map_err(object)?;
        tp.attach("sched", "sched_process_fork")
            .map_err(|e| Error::FollowForks(short_error(&e)))?;
        session.probes.push(probe_report(
            &kernel::FOLLOW_PROBE,
            ProbeStatus::Attached,
            None,
        ));
        let t = spawn_held(program, argv)?;
        let traced_map = |why: String| Error::Object {
            what: "TRACED map",
            why,
        };
        let map = session
            .ebpf
            .map_mut("TRACED")
            .ok_or_else(|| traced_map("missing".into()))?;
        let mut set = aya::maps::HashMap::<_, u32, u8>::try_from(map)
            .map_err(|e| traced_map(e.to_string()))?;
        set.insert(t.child.id(), 1, 0)
            .map_err(|e| traced_map(e.to_string()))?;
        traced = Some(t);
    }
    crate::stdio::err(&Report::attach_summary(&session.probes, session.mode));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the event loop", e))?;
    rt.block_on(event_loop::event_loop(
        args,
        argv,
        &mut session,
        logger,
        traced,
        recorder,
        metrics_listener,
    ))
}

/// The directory a file is to be written in at the end must be there now.
fn check_writable_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Junit {
            path: path.into(),
            source: std::io::ErrorKind::NotADirectory.into(),
        }),
        Err(source) => Err(Error::Junit {
            path: path.into(),
            source,
        }),
    }
}
