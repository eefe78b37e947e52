//! Live tracing: load the programs, choose the attach mode, read the ring buffer.
//! Everything aya lives here; the analysis and the report know nothing of it.

use std::{
    collections::HashSet,
    io::IsTerminal as _,
    path::Path,
    time::{Duration, Instant},
};

use aya::{
    Ebpf, EbpfLoader, Endianness,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{
        FEntry, FExit, KProbe, PerfEvent, Program, ProgramError, TracePoint,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
};
use aya_log::EbpfLogger;
use huge_fault_common::{AggKey, FaultRecord, Filter, InFlight, KernelOffsets, Settings, counter};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    analysis::Analyzer,
    btf::Btf,
    cli::{Args, Command, ModeArg},
    kernel::{self, Mode, ProbeSpec, ProgKind, Target},
    procmaps::ProcMaps,
    record::{Recorder, Recording, Trailer},
    report::{ProbeReport, ProbeStatus, Report, RunInfo},
    threshold,
};

/// The eBPF object built by build.rs, 8-byte aligned as the ELF parser wants.
pub static EBPF_OBJECT: &[u8] = {
    #[repr(C, align(8))]
    struct Aligned<B: ?Sized>(B);
    static ALIGNED: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
        env!("OUT_DIR"),
        "/huge-fault-ebpf"
    )));
    &ALIGNED.0
};

/// A one-line error for the user; `main` prints it and exits 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

fn fatal<T>(msg: impl Into<String>) -> Result<T, Fatal> {
    Err(Fatal(msg.into()))
}

/// Effective capabilities of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Root, or CAP_SYS_ADMIN, or CAP_BPF together with CAP_PERFMON.
pub fn check_privileges() -> Result<(), Fatal> {
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    const CAP_PERFMON: u64 = 1 << 38;
    const CAP_BPF: u64 = 1 << 39;
    let caps = effective_caps();
    if caps & CAP_SYS_ADMIN != 0 || caps & (CAP_BPF | CAP_PERFMON) == CAP_BPF | CAP_PERFMON {
        return Ok(());
    }
    fatal("must run as root (or with CAP_BPF and CAP_PERFMON) to load eBPF programs: try sudo")
}

/// Mounts tracefs when nothing provides it (minimal systems and VMs often lack the mount).
pub fn ensure_tracefs() -> Result<&'static Path, String> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let p = Path::new(p);
        if p.join("events").is_dir() {
            return Ok(p);
        }
    }
    let target = Path::new("/sys/kernel/tracing");
    let rc = unsafe {
        // SAFETY: constant NUL-terminated strings; mount(2) has no memory preconditions.
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "tracefs is not mounted and mounting it on /sys/kernel/tracing failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(target)
}

/// A short, one-line description of a program error (no verifier dump).
pub fn short_error(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            // The verifier's reason is the last line before its statistics.
            let last = log
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| {
                    !l.is_empty()
                        && !l.starts_with("processed ")
                        && !l.starts_with("verification time")
                        && !l.starts_with("stack depth")
                })
                .unwrap_or("");
            if last.is_empty() {
                format!("load refused: {io_error}")
            } else {
                format!("load refused: {io_error}; verifier: {last}")
            }
        }
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(e) = src {
                s.push_str(": ");
                s.push_str(&e.to_string());
                src = e.source();
            }
            s.lines().next().unwrap_or("").to_string()
        }
    }
}

fn errno_of(e: &ProgramError) -> Option<i32> {
    match e {
        ProgramError::LoadError { io_error, .. } => io_error.raw_os_error(),
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    }
}

/// Prints the programs' aya-log records with `-v`, drops them otherwise.
struct KernelLog {
    verbose: bool,
}

impl log::Log for KernelLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        self.verbose
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.verbose {
            eprintln!(
                "[kernel {}] {}",
                record.level().as_str().to_lowercase(),
                record.args()
            );
        }
    }
    fn flush(&self) {}
}

/// The loaded object and what attached.
pub struct Session {
    pub ebpf: Ebpf,
    pub mode: Mode,
    pub probes: Vec<ProbeReport>,
}

fn probe_report(p: &ProbeSpec, status: ProbeStatus, reason: Option<String>) -> ProbeReport {
    ProbeReport {
        program: p.program.into(),
        target: p.target.describe(),
        mode: p.mode.name().into(),
        role: p.role.into(),
        status,
        reason,
    }
}

/// Loads a program once (a tracepoint program serves several modes).
fn load(
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
fn attach(
    ebpf: &mut Ebpf,
    p: &ProbeSpec,
    tracefs: Result<&Path, &String>,
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
        Target::Tracepoint(cat, name) => {
            let tracefs = tracefs.map_err(Clone::clone)?;
            let format_path = tracefs.join("events").join(cat).join(name).join("format");
            let format = std::fs::read_to_string(&format_path)
                .map_err(|err| format!("tracepoint {cat}:{name} not in this kernel ({err})"))?;
            kernel::check_tracepoint_format(&format, kernel::EXCEPTION_FIELDS)
                .map_err(|why| format!("tracepoint {cat}:{name} has another layout: {why}"))?;
            <&mut TracePoint>::try_from(prog)
                .map_err(e)?
                .attach(cat, name)
                .map_err(e)?;
        }
        Target::Suffix(_) | Target::RangeHelper => {
            let names: Vec<&str> = match p.target {
                Target::Suffix(suffix) => {
                    // The kernel's `*_huge_fault` functions and the handlers the user named.
                    let mut v = kernel::functions_with_suffix(functions, suffix);
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
fn unload_program(prog: &mut Program) {
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
fn unload(ebpf: &mut Ebpf, mode: Mode, loaded: &mut HashSet<&'static str>) {
    for p in &kernel::probes(mode) {
        if let Some(prog) = ebpf.program_mut(p.program) {
            unload_program(prog);
        }
        loaded.remove(p.program);
    }
}

/// The reason given for an optional probe on a function this kernel does not have (another
/// kernel version's name for the same job).
pub const NOT_IN_KERNEL: &str = "not in this kernel";

/// What the running kernel offers, found once before the modes are tried.
struct KernelProbing<'a> {
    tracefs: Result<&'a Path, &'a String>,
    /// Why kprobes cannot be used, or `None` when they can.
    kprobe_why: Option<String>,
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
    fn new(
        tracefs: Result<&'a Path, &'a String>,
        range_helper: &[String],
        handlers: &[String],
    ) -> Result<Self, Fatal> {
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let found = resolve_patterns(&kallsyms, range_helper);
        let handlers_found = resolve_patterns(&kallsyms, handlers);
        if !handlers.is_empty() && handlers_found.is_empty() {
            return fatal(format!(
                "no function matches --huge-fault-handler {} in /proc/kallsyms (is its module loaded?)",
                handlers.join(",")
            ));
        }
        let range_helper = if found.is_empty() {
            Err(format!(
                "no function matches --range-helper {} in /proc/kallsyms (is its module loaded?)",
                range_helper.join(",")
            ))
        } else {
            Ok(found)
        };
        Ok(KernelProbing {
            tracefs,
            kprobe_why: kernel::kprobes_unavailable(Path::new("/sys"), tracefs.ok()),
            functions: kernel::kallsyms_functions(&kallsyms),
            range_helper,
            handlers: handlers_found,
        })
    }
}

/// Tries one mode: every required probe must load and attach; optional ones may fail.
fn try_mode(
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
        functions,
        range_helper,
        handlers,
    } = kernel_probing;
    let tracefs = *tracefs;
    if mode == Mode::Kprobe
        && let Some(why) = kprobe_why
    {
        for p in &kernel::probes(mode) {
            reports.push(probe_report(p, ProbeStatus::Skipped, Some(why.clone())));
        }
        return false;
    }
    let mut these = Vec::new();
    let mut ok = true;
    for p in &kernel::probes(mode) {
        if let (Some(why), ProgKind::KProbe | ProgKind::KRetProbe) = (kprobe_why, p.kind) {
            these.push(probe_report(p, ProbeStatus::Skipped, Some(why.clone())));
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
                Some(NOT_IN_KERNEL.into()),
            ));
            continue;
        }
        if !ok {
            these.push(probe_report(
                p,
                ProbeStatus::Skipped,
                Some(format!("{} mode abandoned", mode.name())),
            ));
            continue;
        }
        let result = load(ebpf, p, btf, loaded)
            .map_err(|e| match mode {
                _ if matches!(p.kind, ProgKind::FEntry | ProgKind::FExit)
                    && errno_of(&e).is_some()
                    && !matches!(e, ProgramError::LoadError { ref verifier_log, .. }
                        if verifier_log.to_string().lines().count() > 3) =>
                {
                    kernel::fentry_refusal(errno_of(&e))
                }
                _ => short_error(&e),
            })
            .and_then(|()| attach(ebpf, p, tracefs, functions, range_helper, handlers));
        match result {
            Ok(detail) => {
                let mut r = probe_report(p, ProbeStatus::Attached, None);
                if let Some(d) = detail {
                    r.target = format!("{} ({d})", r.target);
                }
                these.push(r);
            }
            Err(why) => {
                these.push(probe_report(p, ProbeStatus::Failed, Some(why)));
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
                r.reason = Some(format!("{} mode abandoned", mode.name()));
            }
        }
    }
    reports.extend(these);
    ok
}

pub struct LoadOptions<'a> {
    pub btf_path: &'a Path,
    pub mode: ModeArg,
    pub filter: Filter,
    pub ring_buffer_bytes: u32,
    pub verbose: bool,
    pub range_helper: &'a [String],
    pub huge_fault_handler: &'a [String],
    /// Count every fault in the kernel (no records).
    pub aggregate: bool,
}

/// Loads the object, starts the log reader and attaches in the best available mode.
pub fn start(opts: &LoadOptions<'_>) -> Result<(Session, Option<EbpfLogger<KernelLogBox>>), Fatal> {
    if EBPF_OBJECT.is_empty() {
        return fatal(
            "this binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild it",
        );
    }
    let raw = match std::fs::read(opts.btf_path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fatal(format!(
                "no BTF at {}: the kernel was built without CONFIG_DEBUG_INFO_BTF; pass --btf FILE",
                opts.btf_path.display()
            ));
        }
        Err(e) => return fatal(format!("cannot read BTF {}: {e}", opts.btf_path.display())),
    };
    let our_btf = Btf::parse(&raw).map_err(|e| {
        Fatal(format!(
            "BTF {} is not usable: {e}",
            opts.btf_path.display()
        ))
    })?;
    let offsets: KernelOffsets = kernel::resolve_offsets(&our_btf).map_err(|e| {
        Fatal(format!(
            "BTF {} lacks a structure huge-fault reads: {e}",
            opts.btf_path.display()
        ))
    })?;
    // One parsed BTF at a time: start-up is where the tool's memory peaks.
    drop(our_btf);
    let btf = aya::Btf::parse(&raw, Endianness::default()).map_err(|e| {
        Fatal(format!(
            "BTF {} is not usable: {e}",
            opts.btf_path.display()
        ))
    })?;
    drop(raw);

    let tracefs = ensure_tracefs();
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .override_global("OFFSETS", &offsets, true)
        .override_global("FILTER", &opts.filter, true)
        .override_global(
            "SETTINGS",
            &Settings {
                aggregate: u32::from(opts.aggregate),
                _pad: 0,
            },
            true,
        )
        .map_max_entries("EVENTS", opts.ring_buffer_bytes)
        .load(EBPF_OBJECT)
        .map_err(|e| {
            let mut msg = format!("cannot load the eBPF object: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            Fatal(msg.lines().next().unwrap_or_default().to_string())
        })?;
    let logger = EbpfLogger::init_with_logger(
        &mut ebpf,
        KernelLogBox(Box::new(KernelLog {
            verbose: opts.verbose,
        })),
    )
    .ok();

    let order: &[Mode] = match opts.mode {
        ModeArg::Auto => &[Mode::Fentry, Mode::Kprobe, Mode::TracepointOnly],
        ModeArg::Fentry => &[Mode::Fentry],
        ModeArg::Kprobe => &[Mode::Kprobe],
        ModeArg::Tracepoint => &[Mode::TracepointOnly],
    };
    let mut loaded = HashSet::new();
    let mut reports = Vec::new();
    let kernel_probing = KernelProbing::new(
        tracefs.as_ref().map(|p| *p),
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
        let why: Vec<String> = order
            .iter()
            .filter_map(|m| {
                reports
                    .iter()
                    .filter(|r| r.mode == m.name())
                    .find(|r| {
                        r.status != ProbeStatus::Attached
                            && !r.reason.as_deref().unwrap_or("").ends_with("abandoned")
                    })
                    .and_then(|r| r.reason.as_ref().map(|w| format!("{}: {w}", m.name())))
            })
            .collect();
        if let [only] = order {
            let reason = why
                .first()
                .map_or("", |w| w.split_once(": ").map_or(w.as_str(), |(_, r)| r));
            return fatal(format!("{} mode unavailable: {reason}", only.name()));
        }
        return fatal(format!(
            "no attach mode works on this kernel: {}",
            why.join("; ")
        ));
    };
    // Modes after the chosen one were not needed.
    if let Some(i) = order.iter().position(|&m| m == mode) {
        for &later in &order[i + 1..] {
            for p in &kernel::probes(later) {
                reports.push(probe_report(
                    p,
                    ProbeStatus::Skipped,
                    Some(format!("{} mode in use", mode.name())),
                ));
            }
        }
    }
    Ok((
        Session {
            ebpf,
            mode,
            probes: reports,
        },
        logger,
    ))
}

/// The boxed logger type the log reader uses.
pub struct KernelLogBox(Box<KernelLog>);

impl log::Log for KernelLogBox {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        self.0.enabled(m)
    }
    fn log(&self, r: &log::Record<'_>) {
        self.0.log(r)
    }
    fn flush(&self) {}
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

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// What reaches the analysis from the kernel side: a record, or faults of one class.
enum Item<'a> {
    Record(&'a FaultRecord),
    Class(&'a AggKey, u64),
}

/// Writes an item to the recording (when there is one) and hands it to the analyzer, with
/// the VMA resolver's answers recorded too.
fn feed(
    item: Item<'_>,
    analyzer: &mut Analyzer,
    maps: &mut ProcMaps,
    mut recorder: Option<&mut Recorder>,
) {
    if let Some(r) = recorder.as_deref_mut() {
        match item {
            Item::Record(rec) => r.record(rec),
            Item::Class(k, n) => r.aggregate(k, n),
        }
    }
    let mut resolver = Recording {
        inner: maps,
        rec: recorder,
    };
    match item {
        Item::Record(rec) => analyzer.ingest(rec, &mut resolver),
        Item::Class(k, n) => analyzer.ingest_aggregate(k, n, &mut resolver),
    }
}

/// Drains the ring buffer into the analyzer; returns how many records were read.
fn drain(
    ring: &mut RingBuf<MapData>,
    analyzer: &mut Analyzer,
    maps: &mut ProcMaps,
    mut recorder: Option<&mut Recorder>,
    limit: usize,
) -> usize {
    let mut n = 0;
    while n < limit {
        let Some(item) = ring.next() else { break };
        match FaultRecord::from_bytes(&item) {
            Some(rec) => feed(Item::Record(&rec), analyzer, maps, recorder.as_deref_mut()),
            None => analyzer.malformed += 1,
        }
        n += 1;
    }
    n
}

/// Faults that returned VM_FAULT_RETRY and were still waiting for their completing call
/// when the programs detached, as records of their retry calls (read from the in-flight
/// map after detach).
fn pending_retries(ebpf: &Ebpf, mode: Mode) -> Vec<FaultRecord> {
    let src = match mode {
        Mode::Fentry => huge_fault_common::source::FEXIT,
        Mode::Kprobe => huge_fault_common::source::KRETPROBE,
        Mode::TracepointOnly => return vec![],
    };
    let Some(map) = ebpf.map("INFLIGHT") else {
        return vec![];
    };
    let Ok(states) = aya::maps::HashMap::<_, u32, InFlight>::try_from(map) else {
        return vec![];
    };
    let mut out: Vec<FaultRecord> = states
        .iter()
        .filter_map(Result::ok)
        .filter(|(_, st)| st.waiting != 0)
        .map(|(tid, st)| {
            use huge_fault_common::rflags as f;
            let mut comm = [0u8; 16];
            if let Ok(c) = std::fs::read(format!("/proc/{}/comm", st.tgid)) {
                let c = c.strip_suffix(b"\n").unwrap_or(&c);
                let n = c.len().min(15);
                comm[..n].copy_from_slice(&c[..n]);
            }
            FaultRecord {
                start_ns: st.start_ns,
                end_ns: st.start_ns,
                address: st.address,
                ip: st.ip,
                tgid: st.tgid,
                tid,
                fault_flags: st.fault_flags,
                ret: kernel::VM_FAULT_RETRY,
                error_code: st.error_code,
                source: src,
                flags: f::HAS_ADDRESS | f::HAS_FAULT_FLAGS | f::HAS_RET | f::RETRY_PENDING,
                retries: st.retries,
                vma_lock_retries: st.vma_lock_retries,
                comm,
                mapping: st.mapping,
                ..Default::default()
            }
        })
        .collect();
    // Map iteration order is the kernel's; a replay must see them in a fixed one.
    out.sort_by_key(|r| (r.tgid, r.tid));
    out
}

/// The `AGGREGATE` map: faults counted in the kernel by class. Counts only grow; each sweep
/// hands the analyzer (and the recording) what each class gained since the last one.
struct Aggregates {
    map: aya::maps::HashMap<MapData, AggKey, u64>,
    seen: std::collections::HashMap<AggKey, u64>,
    /// The kernel's `AGGREGATED` counter at the last sweep: no sweep while it stands still.
    counted: u64,
}

impl Aggregates {
    fn sweep(
        &mut self,
        counted: u64,
        analyzer: &mut Analyzer,
        maps: &mut ProcMaps,
        mut recorder: Option<&mut Recorder>,
    ) {
        if counted == self.counted {
            return;
        }
        self.counted = counted;
        for item in self.map.iter() {
            let Ok((k, v)) = item else { continue };
            let before = self.seen.entry(k).or_insert(0);
            if v <= *before {
                continue;
            }
            let n = v - *before;
            *before = v;
            feed(Item::Class(&k, n), analyzer, maps, recorder.as_deref_mut());
        }
    }
}

/// Prints the report (tables or JSON) and judges the thresholds on its JSON form.
pub fn print_and_judge(args: &Args, report: &Report) -> Result<Vec<threshold::Verdict>, Fatal> {
    if args.json_stream {
        println!(
            "{}",
            serde_json::to_string(report).expect("a report serializes")
        );
    } else if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render(args.top, None));
    }
    let json: serde_json::Value =
        serde_json::from_str(&report.to_json()).map_err(|e| Fatal(format!("report: {e}")))?;
    let verdicts = threshold::evaluate(&args.fail_if, &json);
    for v in &verdicts {
        eprintln!("huge-fault: {}", v.line);
    }
    Ok(verdicts)
}

/// Writes the `--junit` report, if asked for.
fn write_junit(
    args: &Args,
    verdicts: &[threshold::Verdict],
    command: Option<(&str, i32)>,
    duration_s: f64,
) -> Result<(), Fatal> {
    let Some(path) = &args.junit else {
        return Ok(());
    };
    std::fs::write(path, threshold::junit(verdicts, command, duration_s)).map_err(|e| {
        Fatal(format!(
            "cannot write the JUnit report {}: {e}",
            path.display()
        ))
    })
}

/// `huge-fault symbols PATTERN`: what a pattern resolves to, one function per line
/// (`name<TAB>demangled path<TAB>[module]`). No match is an error.
fn list_symbols(pattern: &str, file: Option<&Path>) -> Result<i32, Fatal> {
    let path = file.unwrap_or(Path::new("/proc/kallsyms"));
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fatal(format!("cannot read {}: {e}", path.display())))?;
    let syms = crate::symbols::parse_kallsyms(&text);
    if syms.iter().all(|s| s.name.is_empty()) {
        return fatal(format!("{} lists no text symbols", path.display()));
    }
    let found = crate::symbols::resolve(&syms, pattern);
    if found.is_empty() {
        return fatal(format!(
            "no kernel function matches `{pattern}` in {}",
            path.display()
        ));
    }
    for s in found {
        println!(
            "{}\t{}\t{}",
            s.name,
            s.demangled.as_deref().unwrap_or("-"),
            s.module
                .as_deref()
                .map_or(String::new(), |m| format!("[{m}]"))
        );
    }
    Ok(0)
}

/// `huge-fault report FILE`: the tables, JSON and thresholds of a recording, offline.
/// A damaged file still reports everything before the damage, then fails with the offset.
pub fn report_file(args: &Args, path: &Path) -> Result<i32, Fatal> {
    let r = crate::record::replay_file(path, args.max_vmas).map_err(Fatal)?;
    let run = match &r.trailer {
        Some(t) => t.run.clone(),
        None => RunInfo {
            kernel_release: String::new(),
            mode: Mode::TracepointOnly,
            filter_pid: None,
            duration_s: 0.0,
            ended_by: "truncated".into(),
            probes: vec![],
            counters: vec![0; huge_fault_common::counter::COUNT as usize],
            aggregate: false,
        },
    };
    let mut report = Report::build(&r.analyzer, &run);
    if args.histogram {
        report = report.with_histograms(&r.analyzer);
    }
    let verdicts = print_and_judge(args, &report)?;
    write_junit(args, &verdicts, None, report.duration_s)?;
    let failed = verdicts.iter().any(|v| v.failed);
    if let Some(e) = r.error {
        return fatal(format!(
            "{}: {e}; reported the {} records before it",
            path.display(),
            r.records
        ));
    }
    Ok(i32::from(failed))
}

/// A command started by `huge-fault run`, held before `exec` until tracing is attached.
struct Traced {
    child: std::process::Child,
    /// Writing a byte here lets the child exec.
    release: std::fs::File,
}

/// How often the ring buffer is drained without a wake-up from the kernel side.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// The first argument of huge-fault re-executed as the holder of a `run` command.
pub const HOLD_ARG: &str = "--internal-hold-then-exec";

/// The holder's side of [`spawn_held`]: waits until the tracer writes to descriptor 3, then
/// becomes the command. Returns only when the exec failed (status 127, as a shell would).
pub fn hold_then_exec(argv: &[std::ffi::OsString]) -> i32 {
    use std::os::unix::process::CommandExt as _;
    let mut b = [0u8; 1];
    // SAFETY: descriptor 3 is the pipe spawn_held gave us; read/close have no preconditions.
    unsafe {
        libc::read(3, b.as_mut_ptr().cast(), 1);
        libc::close(3);
    }
    let Some((cmd, args)) = argv.split_first() else {
        return 127;
    };
    let err = std::process::Command::new(cmd).args(args).exec();
    eprintln!("huge-fault: cannot run {}: {err}", cmd.to_string_lossy());
    127
}

fn spawn_held(argv: &[String]) -> Result<Traced, Fatal> {
    use std::os::unix::process::CommandExt as _;
    let mut fds = [0i32; 2];
    // SAFETY: pipe() fills the two descriptors we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return fatal(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // std's spawn waits for the exec, so the hold cannot be in pre_exec: huge-fault itself
    // (no shell needed) waits on descriptor 3 instead, then execs the command (same pid).
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg(HOLD_ARG);
    cmd.args(argv);
    // SAFETY: dup2(2) is async-signal-safe; it gives the child the read end as fd 3.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(read_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Fatal(format!("cannot run {}: {e}", argv[0])))?;
    // SAFETY: both descriptors are ours; the write end is owned by the File from here on.
    let release = unsafe {
        libc::close(read_fd);
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(write_fd)
    };
    Ok(Traced { child, release })
}

/// The whole live run: load, attach, trace until the duration, a signal or the traced
/// command's exit, report, and judge the thresholds. Returns the exit status.
pub fn run(args: &Args) -> Result<i32, Fatal> {
    let run_argv = match &args.command {
        Some(Command::Run { argv }) => Some(argv.clone()),
        Some(Command::Report { file }) => return report_file(args, file),
        Some(Command::Symbols { pattern, kallsyms }) => {
            return list_symbols(pattern, kallsyms.as_deref());
        }
        None => None,
    };
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
        let meta = std::fs::metadata(path)
            .map_err(|e| Fatal(format!("cgroup {}: {e}", path.display())))?;
        let cgroup_controllers = path.join("cgroup.controllers");
        if !meta.is_dir() || !cgroup_controllers.exists() {
            return fatal(format!("{} is not a cgroup v2 directory", path.display()));
        }
        // A cgroup v2 directory's inode number is the cgroup id BPF sees.
        filter.cgroup_id = meta.ino();
    }
    if run_argv.is_some() {
        let tracefs = tracefs.as_ref().map_err(|e| Fatal(e.clone()))?;
        let format =
            std::fs::read_to_string(tracefs.join("events/sched/sched_process_fork/format"))
                .map_err(|e| {
                    Fatal(format!(
                        "cannot follow forks: sched:sched_process_fork: {e}"
                    ))
                })?;
        filter.follow = 1;
        filter.fork_child_pid_offset = kernel::tracepoint_field_offset(&format, "child_pid")
            .ok_or_else(|| {
                Fatal("cannot follow forks: sched_process_fork has no child_pid".into())
            })?;
    }
    if let Some(pid) = args.pid
        && !Path::new(&format!("/proc/{pid}")).exists()
    {
        return fatal(format!("no process with pid {pid}"));
    }
    let opts = LoadOptions {
        btf_path: &args.btf,
        mode: args.mode,
        filter,
        ring_buffer_bytes: args.ring_buffer_kib * 1024,
        verbose: args.verbose,
        range_helper: &args.range_helper,
        huge_fault_handler: &args.huge_fault_handler,
        aggregate: args.aggregate,
    };
    let (mut session, logger) = start(&opts)?;
    let mut traced = None;
    if let Some(argv) = &run_argv {
        let prog = session
            .ebpf
            .program_mut(kernel::FOLLOW_PROBE.program)
            .ok_or_else(|| Fatal("fork-following program missing from the object".into()))?;
        let tp = <&mut TracePoint>::try_from(prog).map_err(|e| Fatal(short_error(&e)))?;
        tp.load()
            .map_err(|e| Fatal(format!("fork-following program: {}", short_error(&e))))?;
        tp.attach("sched", "sched_process_fork")
            .map_err(|e| Fatal(format!("cannot follow forks: {}", short_error(&e))))?;
        session.probes.push(probe_report(
            &kernel::FOLLOW_PROBE,
            ProbeStatus::Attached,
            None,
        ));
        let t = spawn_held(argv)?;
        let map = session
            .ebpf
            .map_mut("TRACED")
            .ok_or_else(|| Fatal("TRACED map missing".into()))?;
        let mut set = aya::maps::HashMap::<_, u32, u8>::try_from(map)
            .map_err(|e| Fatal(format!("TRACED map: {e}")))?;
        set.insert(t.child.id(), 1, 0)
            .map_err(|e| Fatal(format!("TRACED map: {e}")))?;
        traced = Some(t);
    }
    eprint!("{}", Report::attach_summary(&session.probes, session.mode));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal(format!("cannot start the event loop: {e}")))?;
    rt.block_on(event_loop(args, &mut session, logger, traced))
}

async fn event_loop(
    args: &Args,
    session: &mut Session,
    logger: Option<EbpfLogger<KernelLogBox>>,
    mut traced: Option<Traced>,
) -> Result<i32, Fatal> {
    let ring_map = session
        .ebpf
        .take_map("EVENTS")
        .ok_or_else(|| Fatal("EVENTS map missing".into()))?;
    let ring = RingBuf::try_from(ring_map).map_err(|e| Fatal(format!("EVENTS map: {e}")))?;
    // SAFETY: the ring buffer owns its map fd, which stays open and unchanged until the
    // AsyncFd (which owns the ring buffer) is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| Fatal(format!("cannot poll the ring buffer: {e}")))?;
    let mut aggregates = Aggregates {
        map: session
            .ebpf
            .take_map("AGGREGATE")
            .ok_or_else(|| Fatal("AGGREGATE map missing".into()))
            .and_then(|m| {
                aya::maps::HashMap::try_from(m).map_err(|e| Fatal(format!("AGGREGATE map: {e}")))
            })?,
        seen: Default::default(),
        counted: 0,
    };
    let mut logger = match logger {
        // SAFETY: as above, the logger owns its ring buffer fd.
        Some(l) => Some(
            unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) }
                .map_err(|e| Fatal(format!("cannot poll the log buffer: {e}")))?,
        ),
        None => None,
    };
    let mut analyzer = Analyzer::new(args.max_vmas);
    let mut maps = ProcMaps::new();
    let mut recorder = match &args.record {
        Some(path) => Some(Recorder::create(path).map_err(Fatal)?),
        None => None,
    };
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + Duration::from_secs_f64(d));
    let interactive = std::io::stderr().is_terminal();
    let stdout_tty = std::io::stdout().is_terminal();
    let tick = Duration::from_secs_f64(args.interval.unwrap_or(1.0));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    // The programs wake us only when a backlog builds up (batched wake-ups): drain the ring
    // on this timer too.
    let mut drain_tick = tokio::time::interval(DRAIN_EVERY);
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Fatal(format!("cannot handle SIGTERM: {e}")))?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let sleep = tokio::time::sleep_until(deadline.map_or_else(
        || tokio::time::Instant::now() + Duration::from_secs(86400 * 365),
        tokio::time::Instant::from_std,
    ));
    tokio::pin!(sleep);
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
        .map_err(|e| Fatal(format!("cannot handle SIGCHLD: {e}")))?;
    // Everything is attached and the command is in TRACED: let it exec.
    if let Some(t) = traced.as_mut() {
        use std::io::Write as _;
        t.release
            .write_all(b"go\n")
            .map_err(|e| Fatal(format!("cannot start the command: {e}")))?;
    }
    let mut command_status: Option<std::process::ExitStatus> = None;
    let mut last_records = 0u64;
    let mut last_counts: std::collections::HashMap<u32, u64> = Default::default();
    let mut last_tick = Instant::now();
    let ended_by;
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.map_err(|e| Fatal(format!("ring buffer poll failed: {e}")))?;
                let inner = guard.get_inner_mut();
                drain(inner, &mut analyzer, &mut maps, recorder.as_mut(), 65536);
                guard.clear_ready();
            }
            _ = drain_tick.tick() => {
                drain(ring.get_mut(), &mut analyzer, &mut maps, recorder.as_mut(), 65536);
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
                let counted = read_counters(&session.ebpf)[counter::AGGREGATED as usize];
                aggregates.sweep(counted, &mut analyzer, &mut maps, recorder.as_mut());
                let elapsed = last_tick.elapsed().as_secs_f64();
                last_tick = Instant::now();
                let records_per_s = (analyzer.records - last_records) as f64 / elapsed.max(1e-9);
                last_records = analyzer.records;
                if args.json_stream {
                    let run = run_info(session, args, started, "running");
                    let rep = Report::build(&analyzer, &run);
                    println!("{}", serde_json::to_string(&rep).expect("a report serializes"));
                } else if args.interval.is_some() && !args.json {
                    let run = run_info(session, args, started, "running");
                    let drops = run.counters.get(counter::RINGBUF_DROPS as usize).copied().unwrap_or(0);
                    let header = format!(
                        "huge-fault: {} mode, {records_per_s:.0} records/s, {drops} ring-buffer drops\n",
                        session.mode.name()
                    );
                    let rep = Report::build(&analyzer, &run);
                    let rates = |pid: u32| {
                        let now = analyzer.processes.get(&pid).map_or(0, |p| p.stats.faults);
                        let before = last_counts.get(&pid).copied().unwrap_or(0);
                        Some((now - before.min(now)) as f64 / elapsed.max(1e-9))
                    };
                    let text = format!("{header}{}", rep.render(args.top, Some(&rates)));
                    if stdout_tty {
                        print!("\x1b[H\x1b[2J{text}");
                    } else {
                        println!("--- {:.0}s ---\n{text}", started.elapsed().as_secs_f64());
                    }
                    last_counts = analyzer.processes.iter().map(|(k, p)| (*k, p.stats.faults)).collect();
                } else if interactive {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()).as_secs());
                    eprint!(
                        "\r\x1b[Ktracing ({} mode): {} faults, {} processes, {} VMAs{}",
                        session.mode.name(),
                        analyzer.totals.faults,
                        analyzer.processes.len(),
                        analyzer.vmas.len(),
                        left.map_or_else(|| "; Ctrl-C to stop".to_string(), |l| format!("; {l}s left")),
                    );
                }
            }
            _ = sigchld.recv() => {
                if let Some(t) = traced.as_mut()
                    && let Ok(Some(st)) = t.child.try_wait()
                {
                    command_status = Some(st);
                    ended_by = "command-exit";
                    break;
                }
            }
            _ = &mut sleep => { ended_by = "duration"; break; }
            _ = &mut ctrl_c => { ended_by = "signal"; break; }
            _ = sigterm.recv() => { ended_by = "signal"; break; }
        }
    }
    if interactive && args.interval.is_none() {
        eprint!("\r\x1b[K");
    }
    // Detach, then read what is still in the ring.
    let counters_before_detach = read_counters(&session.ebpf);
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
    let mut report = Report::build(&analyzer, &run);
    if args.histogram {
        report = report.with_histograms(&analyzer);
    }
    if let Some(r) = recorder.take() {
        r.finish(&Trailer {
            run: run.clone(),
            max_vmas: args.max_vmas,
        })
        .map_err(Fatal)?;
    }
    let verdicts = print_and_judge(args, &report)?;
    let thresholds_failed = verdicts.iter().any(|v| v.failed);
    // A command still running (the duration ended first, or a signal) is left running.
    let command_code = match (command_status, traced.as_ref()) {
        (Some(st), Some(t)) => {
            use std::os::unix::process::ExitStatusExt as _;
            let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
            if code != 0 {
                eprintln!(
                    "huge-fault: the traced command (pid {}) failed with status {code}",
                    t.child.id()
                );
            }
            code
        }
        _ => 0,
    };
    let command_line = match &args.command {
        Some(Command::Run { argv }) => Some(argv.join(" ")),
        _ => None,
    };
    write_junit(
        args,
        &verdicts,
        command_line.as_deref().map(|c| (c, command_code)),
        report.duration_s,
    )?;
    Ok(if thresholds_failed { 1 } else { command_code })
}

fn run_info(session: &Session, args: &Args, started: Instant, ended_by: &str) -> RunInfo {
    RunInfo {
        kernel_release: kernel_release(),
        mode: session.mode,
        filter_pid: args.pid,
        duration_s: started.elapsed().as_secs_f64(),
        ended_by: ended_by.into(),
        probes: session.probes.clone(),
        counters: read_counters(&session.ebpf),
        aggregate: args.aggregate,
    }
}
