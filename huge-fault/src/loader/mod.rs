//! Loading the programs and attaching them in the best mode the kernel allows. Everything
//! aya lives in the loader and the trace loop; the analysis and the report know nothing of
//! it.

mod attach;
mod errors;
mod gated;
mod handlers;
mod log;
mod modes;
mod thp_words;

use std::{collections::HashSet, path::Path};

use aya::{Ebpf, EbpfLoader, Endianness, maps::PerCpuArray};
use aya_log::EbpfLogger;
use huge_fault_common::{Filter, KernelOffsets, PageWalk, Settings, counter};

pub use attach::{probe_report, unload_program};
pub use errors::short_error;
pub use log::KernelLogBox;

use crate::{
    btf::Btf,
    cli::{ModeArg, ThreadStateArg},
    error::{Error, Result},
    host::ensure_tracefs,
    kernel::{self, Mode},
    run_info::{ProbeReport, ProbeStatus, ProgramCost, Reason},
};
use log::KernelLog;
use modes::{KernelProbing, try_mode};

/// An object built by build.rs, 8-byte aligned as the ELF parser wants.
macro_rules! object {
    ($name:literal) => {{
        #[repr(C, align(8))]
        struct Aligned<B: ?Sized>(B);
        static ALIGNED: &Aligned<[u8]> =
            &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/", $name)));
        &ALIGNED.0
    }};
}

/// The eBPF object: per-thread state in task local storage.
pub static EBPF_OBJECT: &[u8] = object!("huge-fault-ebpf");

/// The same programs with the per-thread state in a hash map, for kernels without task
/// storage in tracing programs.
pub static EBPF_OBJECT_HASH: &[u8] = object!("huge-fault-ebpf-hash");

/// Where the programs keep a thread's fault between probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadStore {
    /// BPF task local storage: found from the current task, no hashing (5.12+).
    TaskStorage,
    /// An LRU hash map keyed by tid; the reason task storage cannot be used.
    HashMap(String),
}

impl ThreadStore {
    /// The store `--thread-state` asks for; `auto` probes the kernel.
    pub fn choose(arg: ThreadStateArg) -> Self {
        match arg {
            ThreadStateArg::Auto => Self::probe(),
            ThreadStateArg::TaskStorage => Self::TaskStorage,
            ThreadStateArg::Hash => Self::HashMap("--thread-state hash".into()),
        }
    }

    /// What the kernel allows, probed: the map type and its helper from a kprobe program.
    pub fn probe() -> Self {
        use aya::{
            maps::MapType,
            programs::ProgramType,
            sys::{BpfHelper, is_helper_supported, is_map_supported},
        };
        match is_map_supported(MapType::TaskStorage) {
            Ok(true) => {}
            Ok(false) => return Self::HashMap("no task storage maps".into()),
            Err(e) => return Self::HashMap(format!("task storage probe: {e}")),
        }
        match is_helper_supported(ProgramType::KProbe, BpfHelper::BPF_FUNC_task_storage_get) {
            Ok(true) => Self::TaskStorage,
            Ok(false) => Self::HashMap("no bpf_task_storage_get in tracing programs".into()),
            Err(e) => Self::HashMap(format!("bpf_task_storage_get probe: {e}")),
        }
    }

    /// The object that keeps its state here.
    pub fn object(&self) -> &'static [u8] {
        match self {
            Self::TaskStorage => EBPF_OBJECT,
            Self::HashMap(_) => EBPF_OBJECT_HASH,
        }
    }

    /// The attach report's line for it.
    fn report(&self, mode: Mode) -> ProbeReport {
        let target = match self {
            Self::TaskStorage => "per-thread state in task local storage".to_string(),
            Self::HashMap(why) => format!("per-thread state in a hash map by tid ({why})"),
        };
        ProbeReport {
            program: String::new(),
            target,
            mode,
            role: "where a thread's fault is kept between its probes".into(),
            status: ProbeStatus::Attached,
            reason: None,
        }
    }
}

/// The loaded object and what attached.
pub struct Session {
    pub ebpf: Ebpf,
    pub mode: Mode,
    pub probes: Vec<ProbeReport>,
    /// Probes attached only while their gate holds (see [`Session::update_gates`]).
    pub gated: Vec<gated::Gated>,
    /// The THP settings words the programs read from the tool's copy of sysfs (see
    /// [`Session::update_thp_words`]); `None` where they read the kernel's own.
    pub thp_words: Option<thp_words::ThpCopy>,
    /// The `huge_fault` handlers attached to, by index - 1 ([`huge_fault_common::Mapping::handler`]).
    pub handlers: Vec<String>,
}

pub struct LoadOptions<'a> {
    pub btf_path: &'a Path,
    pub mode: ModeArg,
    pub thread_state: ThreadStateArg,
    pub filter: Filter,
    pub ring_buffer_bytes: u32,
    pub verbose: bool,
    pub range_helper: &'a [String],
    pub huge_fault_handler: &'a [String],
    /// Count every fault in the kernel (no records).
    pub aggregate: bool,
    /// `huge_fault_common::metrics` bits (`--metrics`).
    pub metrics: u32,
}

/// Loads the object, starts the log reader and attaches in the best available mode.
pub fn start(opts: &LoadOptions<'_>) -> Result<(Session, Option<EbpfLogger<KernelLogBox>>)> {
    let store = ThreadStore::choose(opts.thread_state);
    let object = store.object();
    if object.is_empty() {
        return Err(Error::NoEbpfObject);
    }
    let path = || opts.btf_path.to_path_buf();
    let raw = match std::fs::read(opts.btf_path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoBtf(path())),
        Err(source) => {
            return Err(Error::BtfUnreadable {
                path: path(),
                source,
            });
        }
    };
    let unusable = |why: String| Error::BtfUnusable { path: path(), why };
    let our_btf = Btf::parse(&raw).map_err(|e| unusable(e.to_string()))?;
    let offsets: KernelOffsets =
        kernel::resolve_offsets(&our_btf).map_err(|m| Error::MissingMember {
            path: path(),
            member: m.member,
            why: m.why,
        })?;
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
    let thp = kernel::resolve_thp(
        &our_btf,
        &kallsyms,
        crate::analysis::reason::kernel_version(&crate::host::kernel_release()),
        Path::new(kernel::THP_SYSFS),
    );
    let walk = kernel::resolve_walk(&our_btf, &kallsyms);
    // One parsed BTF at a time: start-up is where the tool's memory peaks.
    drop(our_btf);
    let btf = aya::Btf::parse(&raw, Endianness::default()).map_err(|e| unusable(e.to_string()))?;
    drop(raw);

    let tracefs = ensure_tracefs();
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .override_global("OFFSETS", &offsets, true)
        .override_global("FILTER", &opts.filter, true)
        .override_global("THP", &thp.0, true)
        .override_global("WALK", walk.as_ref().unwrap_or(&PageWalk::default()), true)
        .override_global(
            "SETTINGS",
            &Settings {
                aggregate: u32::from(opts.aggregate),
                metrics: opts.metrics,
            },
            true,
        )
        .map_max_entries("EVENTS", opts.ring_buffer_bytes)
        // The task storage map: aya has no user-space type for it, and needs none.
        .allow_unsupported_maps()
        .load(object)
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            Error::ObjectLoad(msg)
        })?;
    let logger = match EbpfLogger::init_with_logger(
        &mut ebpf,
        KernelLogBox(Box::new(KernelLog {
            verbose: opts.verbose,
        })),
    ) {
        Ok(l) => Some(l),
        Err(e) => {
            // The log is shown with -v only; without it nothing is lost.
            if opts.verbose {
                crate::say!("huge-fault: warning: the programs' log cannot be read: {e}");
            }
            None
        }
    };

    let order: &[Mode] = match opts.mode {
        ModeArg::Auto => &[Mode::Fentry, Mode::Kprobe, Mode::TracepointOnly],
        ModeArg::Fentry => &[Mode::Fentry],
        ModeArg::Kprobe => &[Mode::Kprobe],
        ModeArg::Tracepoint => &[Mode::TracepointOnly],
    };
    let mut loaded = HashSet::new();
    let mut reports = Vec::new();
    let kernel_probing = KernelProbing::new(
        &kallsyms,
        tracefs.map_err(|e| e.one_line()),
        opts.range_helper,
        opts.huge_fault_handler,
    )?;
    let mut chosen = None;
    for &mode in order {
        if try_mode(
            &mut ebpf,
            mode,
            &btf,
            &kernel_probing,
            &mut loaded,
            &mut reports,
        ) {
            chosen = Some(mode);
            break;
        }
    }
    let Some(mode) = chosen else {
        // One reason per mode: its first real failure.
        let mut why: Vec<(Mode, String)> = order
            .iter()
            .filter_map(|&m| {
                reports
                    .iter()
                    .filter(|r| r.mode == m)
                    .find(|r| {
                        r.status != ProbeStatus::Attached
                            && !matches!(r.reason, Some(Reason::ModeAbandoned(_)))
                    })
                    .and_then(|r| r.reason.as_ref().map(|w| (m, w.to_string())))
            })
            .collect();
        if let [only] = order {
            let reason = why.pop().map(|(_, w)| w).unwrap_or_default();
            return Err(Error::ModeUnavailable {
                mode: *only,
                reason,
            });
        }
        return Err(Error::NoMode(why));
    };
    reports.push(store.report(mode));
    let thp_copy = match &thp.1 {
        Ok(kernel::ThpSource::Sysfs { bits, .. }) if mode != Mode::TracepointOnly => {
            Some(thp_words::ThpCopy::new(*bits))
        }
        _ => None,
    };
    if mode != Mode::TracepointOnly {
        reports.push(thp_report(mode, thp.1));
        reports.push(walk_report(mode, walk));
    }
    // Modes after the chosen one were not needed.
    if let Some(i) = order.iter().position(|&m| m == mode) {
        for &later in &order[i + 1..] {
            for p in &kernel::probes(later) {
                reports.push(probe_report(
                    p,
                    ProbeStatus::Skipped,
                    Some(Reason::ModeInUse(mode)),
                ));
            }
        }
    }
    let gated = gated::find(mode, &loaded, &reports);
    let mut session = Session {
        ebpf,
        mode,
        probes: reports,
        gated,
        thp_words: thp_copy,
        handlers: Vec::new(),
    };
    session.handlers = handlers::table(&session.ebpf, &kallsyms);
    for line in session.update_gates(Path::new(kernel::THP_SYSFS), None) {
        crate::say!("{line}");
    }
    if let Some(line) = session.update_thp_words(Path::new(kernel::THP_SYSFS), None) {
        crate::say!("{line}");
    }
    Ok((session, logger))
}

/// What the closing program reads of the anonymous THP settings, as a line of the attach
/// report: read, or why not (then anonymous faults never asked for a PMD get no reason).
fn thp_report(mode: Mode, thp: std::result::Result<kernel::ThpSource, String>) -> ProbeReport {
    let closing = kernel::probes(mode)
        .into_iter()
        .find(|p| {
            p.required
                && matches!(
                    p.kind,
                    kernel::ProgKind::FExit | kernel::ProgKind::KRetProbe
                )
        })
        .map_or("", |p| p.program);
    let mut target = "transparent_hugepage_flags (read)".to_string();
    let (status, reason) = match thp {
        Ok(kernel::ThpSource::Kernel) => (ProbeStatus::Attached, None),
        Ok(kernel::ThpSource::Sysfs { why, .. }) => {
            target = format!(
                "THP settings from sysfs, every 200 ms ({why}: a change is seen up to 200 ms late)"
            );
            (ProbeStatus::Attached, None)
        }
        Err(why) => (ProbeStatus::Skipped, Some(Reason::Unavailable(why))),
    };
    ProbeReport {
        program: closing.into(),
        target,
        mode,
        role: "anonymous THP settings of faults that mapped no PMD: why the kernel never asked"
            .into(),
        status,
        reason,
    }
}

/// What the insert probes read of the page tables, as a line of the attach report: read,
/// or why not (then a re-insert over a present entry counts as an entry).
fn walk_report(mode: Mode, walk: std::result::Result<PageWalk, String>) -> ProbeReport {
    let (status, reason) = match walk {
        Ok(_) => (ProbeStatus::Attached, None),
        Err(why) => (ProbeStatus::Skipped, Some(Reason::Unavailable(why))),
    };
    ProbeReport {
        program: "hf_kprobe_insert_*".into(),
        target: "page tables before an insert (read)".into(),
        mode,
        role: "tells a new entry from a re-insert over a present one (TTM's prefault)".into(),
        status,
        reason,
    }
}

/// Sums the per-CPU counters.
pub fn read_counters(ebpf: &Ebpf) -> Vec<u64> {
    let mut out = vec![0; counter::COUNT as usize];
    let Some(map) = ebpf.map("COUNTERS") else {
        return out;
    };
    let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
        return out;
    };
    for (i, slot) in out.iter_mut().enumerate() {
        if let Ok(v) = arr.get(&(i as u32), 0) {
            *slot = v.iter().sum();
        }
    }
    out
}

/// Runs the kernel skipped, by program, for the programs that skipped any: each program's
/// `recursion_misses` (kept whether or not `kernel.bpf_stats_enabled` is set), read from its
/// file descriptor's `/proc/self/fdinfo` entry. Read before detaching: the descriptors
/// close with the programs.
pub fn read_misses(ebpf: &Ebpf) -> std::collections::BTreeMap<String, u64> {
    program_fdinfos(ebpf)
        .filter_map(|(name, info)| {
            let n = fdinfo_misses(&info)?;
            (n > 0).then_some((name, n))
        })
        .collect()
}

/// Each loaded program's name and `/proc/self/fdinfo` text (programs without an fd, or
/// whose entry cannot be read, are left out).
fn program_fdinfos(ebpf: &Ebpf) -> impl Iterator<Item = (String, String)> + '_ {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    ebpf.programs().filter_map(|(name, prog)| {
        let fd = prog.fd().ok()?.as_fd().as_raw_fd();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
        Some((name.to_string(), info))
    })
}

/// The `recursion_misses:` field of a BPF program's fdinfo (kernels since 5.12 print it).
fn fdinfo_misses(info: &str) -> Option<u64> {
    fdinfo_field(info, "recursion_misses")
}

/// A numeric field of a BPF program's fdinfo.
fn fdinfo_field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// The kernel's own accounting of each program that ran (`run_cnt` and `run_time_ns` of
/// its fdinfo), kept while run-time statistics are enabled (`--bpf-stats` or
/// `kernel.bpf_stats_enabled`); empty when they were not. Read before detaching.
pub fn read_costs(ebpf: &Ebpf) -> std::collections::BTreeMap<String, ProgramCost> {
    program_fdinfos(ebpf)
        .filter_map(|(name, info)| fdinfo_cost(&info).map(|c| (name, c)))
        .collect()
}

/// A program's runs and run time from its fdinfo, when it ran while accounted.
fn fdinfo_cost(info: &str) -> Option<ProgramCost> {
    let runs = fdinfo_field(info, "run_cnt")?;
    let run_time_ns = fdinfo_field(info, "run_time_ns")?;
    (runs > 0).then_some(ProgramCost { runs, run_time_ns })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fdinfo_misses_reads_the_kernels_field() {
        // As a 6.12 kernel prints it for a tracing program.
        let info = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t2084\nlink_type:\ttracing\n\
                    prog_type:\t26\nprog_jited:\t1\nprog_tag:\t3b185187f1855c4c\n\
                    memlock:\t4096\nprog_id:\t75\nrun_time_ns:\t0\nrun_cnt:\t0\n\
                    recursion_misses:\t158\nverified_insns:\t412\n";
        assert_eq!(super::fdinfo_misses(info), Some(158));
        assert_eq!(super::fdinfo_misses("prog_type:\t26\n"), None);
        assert_eq!(super::fdinfo_misses("recursion_misses:\tx\n"), None);
    }

    #[test]
    fn fdinfo_cost_reads_runs_and_time_of_programs_that_ran() {
        let info = "prog_type:\t26\nprog_id:\t75\nrun_time_ns:\t1234567\nrun_cnt:\t4096\n\
                    recursion_misses:\t0\n";
        assert_eq!(
            super::fdinfo_cost(info),
            Some(crate::run_info::ProgramCost {
                runs: 4096,
                run_time_ns: 1_234_567
            })
        );
        // Not accounted (statistics off) or never ran: nothing to say.
        assert_eq!(super::fdinfo_cost("run_time_ns:\t0\nrun_cnt:\t0\n"), None);
        assert_eq!(super::fdinfo_cost("prog_type:\t26\n"), None);
    }
}
