//! The analysis core: fault records in, per-process and per-VMA statistics out.
//!
//! Plain Rust: fed by the live ring buffer or by a recorded file alike, and unit-tested
//! without a kernel. A *fault* is one `handle_mm_fault` call that did not return
//! VM_FAULT_RETRY; a call that did is a *retry call*. The kernel side links retry calls to
//! the call that completes them (same thread, next call on the same page), so that one
//! record carries a fault with its retries; a retry never completed comes as a record of
//! its own, flagged unlinked or (made at the end of a run) pending.

use std::collections::{BTreeMap, HashMap};

use huge_fault_common::{AggKey, FaultRecord, rflags, source};

use crate::{hist::Histogram, kernel};

/// Counts of one scope (all, a process, a VMA).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Faults: calls that did not return VM_FAULT_RETRY (tracepoint mode: completions).
    pub faults: u64,
    /// Calls that returned VM_FAULT_RETRY.
    pub retry_calls: u64,
    /// Faults whose completing call was preceded by at least one linked retry call.
    pub retried_faults: u64,
    /// Retry calls made under the per-VMA lock (`FAULT_FLAG_VMA_LOCK`).
    pub vma_lock_retries: u64,
    /// Retry calls whose fault was not continued on its thread and page (counted in
    /// `retry_calls` too).
    pub unlinked_retries: u64,
    /// Retry calls still waiting for their completing call when tracing ended.
    pub pending_retries: u64,
    /// Faults that failed (OOM, SIGBUS, SIGSEGV, HWPOISON).
    pub errors: u64,
    /// Faults that needed I/O (VM_FAULT_MAJOR, or the major-faults event).
    pub major: u64,
    /// Write faults (FAULT_FLAG_WRITE, or the x86 error code's write bit).
    pub writes: u64,
    /// Latency of each fault's completing call (or exception to completion).
    pub latency: Histogram,
    /// Entries inserted by faults, indexed by `huge_fault_common::level` (0 unused).
    pub entries: [u64; 4],
    /// Bytes mapped by those entries.
    pub bytes_mapped: u64,
    /// Faults per chain of levels tried (`PMD:FALLBACK PTE:OK`).
    pub chains: BTreeMap<String, u64>,
    /// Faults whose chain holds a FALLBACK.
    pub fallback_faults: u64,
    /// FALLBACK steps in those chains (a fault falling back at PMD in two calls counts two).
    pub fallback_steps: u64,
}

impl Stats {
    /// Adds `n` faults (or retry calls) classified as `f`.
    fn add(&mut self, f: &Classified, n: u64) {
        self.retry_calls += n * u64::from(f.retry_calls);
        self.vma_lock_retries += n * u64::from(f.vma_lock_retries);
        match f.unfinished {
            Some(Unfinished::Unlinked) => {
                self.unlinked_retries += n * u64::from(f.retry_calls);
                return;
            }
            Some(Unfinished::Pending) => {
                self.pending_retries += n * u64::from(f.retry_calls);
                return;
            }
            None => {}
        }
        self.faults += n;
        self.retried_faults += n * u64::from(f.retry_calls > 0);
        self.errors += n * u64::from(f.error);
        self.major += n * u64::from(f.major);
        self.writes += n * u64::from(f.write);
        if let Some(ns) = f.latency_ns {
            self.latency.record_n(ns, n);
        }
        if let Some(m) = &f.mapped {
            for (i, e) in m.entries.iter().enumerate() {
                self.entries[i] += n * u64::from(*e);
            }
            self.bytes_mapped += n * m.bytes;
            *self.chains.entry(m.chain.clone()).or_default() += n;
            self.fallback_faults += n * u64::from(m.fallback_steps > 0);
            self.fallback_steps += n * u64::from(m.fallback_steps);
        }
    }
}

/// Bytes of one entry per level.
pub const LEVEL_BYTES: [u64; 4] = [0, 4 << 10, 2 << 20, 1 << 30];
pub const LEVEL_NAMES: [&str; 4] = ["HUGE?", "PTE", "PMD", "PUD"];

/// What one fault mapped, interpreted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapped {
    pub chain: String,
    pub entries: [u32; 4],
    pub bytes: u64,
    /// FALLBACK steps in the chain.
    pub fallback_steps: u32,
}

/// `OK` for a result that mapped its entry, else the names of its failure bits.
fn step_result(ret: u32) -> String {
    const NOT_MAPPED: u32 = kernel::VM_FAULT_ERROR | kernel::VM_FAULT_RETRY;
    if ret & NOT_MAPPED == 0 && ret & huge_fault_common::STEP_VIA_RANGE != 0 {
        // The level's handler answered with a range insert.
        "RANGE".into()
    } else if ret & NOT_MAPPED == 0 {
        "OK".into()
    } else {
        kernel::bit_names(ret & NOT_MAPPED, kernel::VM_FAULT_BITS)
    }
}

/// The chain and entries of a completed fault from its record: the nested probes' steps
/// (of every call, a VM_FAULT_RETRY between calls as `RETRY`; a step repeated in a row as
/// `STEP×N`), then the PTE path when the probes saw no entry mapped and the fault
/// succeeded. A PTE fault on a present entry (x86 PROT bit: write-protect, COW) inserts
/// nothing.
pub fn mapped(r: &FaultRecord) -> Mapped {
    use huge_fault_common::level;
    let m = &r.mapping;
    let mut steps = Vec::new();
    let mut fallback_steps = 0;
    for i in 0..huge_fault_common::MAX_CHAIN {
        let Some((lvl, ret)) = m.step(i) else { break };
        let times = m.times(i);
        let name = if lvl == level::RETRY {
            "RETRY".to_string()
        } else {
            if ret & kernel::VM_FAULT_FALLBACK != 0 {
                fallback_steps += times;
            }
            format!(
                "{}:{}",
                LEVEL_NAMES.get(lvl as usize).unwrap_or(&"?"),
                step_result(ret)
            )
        };
        steps.push(if times > 1 {
            format!("{name}×{times}")
        } else {
            name
        });
    }
    if m.overflow > 0 {
        steps.push(format!("+{}", m.overflow));
    }
    let mut entries = m.entries;
    // Huge entries, or PTEs seen by the PTE-insert probes (drivers, range helpers): the
    // record has the entries, nothing is inferred.
    let seen = entries.iter().any(|&n| n > 0);
    let final_ok = r.ret & (kernel::VM_FAULT_ERROR | kernel::VM_FAULT_RETRY) == 0;
    // A huge_fault handler asked for a PTE (DAX, drivers) already made the PTE step (in the
    // last call: a RETRY step ends the calls before it).
    let last = (0..huge_fault_common::MAX_CHAIN)
        .rev()
        .find_map(|i| m.step(i));
    let pte_step = last.is_some_and(|(lvl, _)| lvl == level::PTE);
    if !seen && pte_step {
        if final_ok && last.is_some_and(|(_, ret)| step_result(ret) == "OK") {
            entries[1] += 1;
        }
    } else if !seen {
        if !final_ok {
            steps.push(format!("PTE:{}", step_result(r.ret)));
        } else if r.has(rflags::HAS_EXCEPTION) && r.error_code & kernel::X86_PF_PROT != 0 {
            steps.push("PTE:PRESENT".into());
        } else {
            steps.push("PTE:OK".into());
            entries[1] += 1;
        }
    }
    let bytes = entries
        .iter()
        .zip(LEVEL_BYTES)
        .map(|(n, b)| u64::from(*n) * b)
        .sum();
    Mapped {
        chain: steps.join(" "),
        entries,
        bytes,
        fallback_steps,
    }
}

/// Why a record holds retry calls and no fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfinished {
    /// The thread's next call was on another page (or the return had no entry).
    Unlinked,
    /// Still waiting for its completing call when tracing ended.
    Pending,
}

/// What one record says, once interpreted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classified {
    /// Not a fault: retry calls that no call completed (see `unfinished`).
    pub retry: bool,
    pub unfinished: Option<Unfinished>,
    pub error: bool,
    pub major: bool,
    pub write: bool,
    /// Of the whole fault: from the entry of its first call to the return of its last.
    pub latency_ns: Option<u64>,
    /// The fault's calls that returned VM_FAULT_RETRY (of a record that is no fault: its
    /// calls).
    pub retry_calls: u32,
    /// Of them, calls made under the per-VMA lock.
    pub vma_lock_retries: u32,
    /// Levels tried and entries mapped, where the mode and probes see them.
    pub mapped: Option<Mapped>,
}

/// Identity of a VMA as the kernel saw it at fault time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmaKey {
    pub tgid: u32,
    pub start: u64,
    pub end: u64,
}

#[derive(Clone, Debug, Default)]
pub struct VmaStats {
    pub comm: String,
    pub flags: u64,
    pub pgoff: u64,
    pub inode: u64,
    pub dev: u32,
    /// Backing file or `[heap]`-style name, when known.
    pub name: Option<String>,
    /// The VMA came from /proc/PID/maps, not from the kernel at fault time.
    pub from_proc: bool,
    /// Lookups of the name so far (a VMA split or mapped just before its first fault may
    /// not be in /proc/PID/maps yet as the kernel saw it, and the maps are re-read at most
    /// every 50 ms: the next 63 faults try again).
    pub name_tries: u8,
    pub stats: Stats,
}

impl VmaStats {
    /// A short class of the mapping, from its flags and backing.
    pub fn kind(&self) -> &'static str {
        if self.flags & kernel::VM_HUGETLB != 0 {
            "hugetlb"
        } else if self.flags & kernel::VM_PFNMAP != 0 {
            "pfnmap"
        } else if self.flags & kernel::VM_MIXEDMAP != 0 {
            "mixedmap"
        } else if self.inode == 0 {
            if self.flags & kernel::VM_SHARED != 0 {
                "anon-shared"
            } else {
                "anon"
            }
        } else if self.flags & kernel::VM_SHARED != 0 {
            "file-shared"
        } else {
            "file"
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ProcStats {
    pub comm: String,
    pub stats: Stats,
    /// Faults counted in no VMA row because the VMA table was full.
    pub vma_overflow: u64,
    /// Faults without a VMA (the lookup failed in the kernel and in /proc).
    pub no_vma: u64,
}

/// A VMA found by user space for an address (from /proc/PID/maps).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmaDesc {
    pub start: u64,
    pub end: u64,
    pub pgoff: u64,
    pub inode: u64,
    pub shared: bool,
    pub name: Option<String>,
}

/// Names VMAs and finds VMAs the kernel side could not; the live tool reads /proc.
pub trait VmaResolver {
    /// The VMA of `tgid` that contains `addr`, if any.
    fn lookup(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc>;
    /// The same, for a VMA the kernel reported: a resolver that caches may read again
    /// rather than answer from a copy older than the VMA.
    fn lookup_fresh(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        self.lookup(tgid, addr)
    }
}

/// A resolver that knows nothing (replay of recordings, tests).
pub struct NoResolver;

impl VmaResolver for NoResolver {
    fn lookup(&mut self, _tgid: u32, _addr: u64) -> Option<VmaDesc> {
        None
    }
}

/// Accumulates records into totals, processes and VMAs.
#[derive(Debug)]
pub struct Analyzer {
    pub totals: Stats,
    pub processes: BTreeMap<u32, ProcStats>,
    pub vmas: HashMap<VmaKey, VmaStats>,
    /// Most VMA rows kept; faults in further VMAs are counted per process as overflow.
    pub max_vmas: usize,
    /// Faults counted in no VMA row because the table was full.
    pub vma_overflow: u64,
    /// Faults of processes beyond the process table (as big as the VMA table).
    pub process_overflow: u64,
    /// Records that could not be parsed (short or unknown source).
    pub malformed: u64,
    /// Faults and retry calls counted in the kernel (`--aggregate`, or the ring buffer was
    /// full), ingested by class without per-fault detail.
    pub aggregated: u64,
    /// Records by `source`.
    pub records: u64,
    /// Returns without a recorded entry (the tool attached mid-fault).
    pub no_entry: u64,
    /// Returns of a nested call.
    pub nested: u64,
    /// The nested probes that report levels and entries are attached.
    pub sizes_visible: bool,
    /// What the what-if replay needs (addresses in order, pfn runs, levels asked).
    pub whatif: crate::whatif::Observer,
}

impl Analyzer {
    pub fn new(max_vmas: usize) -> Self {
        Self {
            totals: Stats::default(),
            processes: BTreeMap::new(),
            vmas: HashMap::new(),
            max_vmas,
            vma_overflow: 0,
            process_overflow: 0,
            malformed: 0,
            aggregated: 0,
            records: 0,
            no_entry: 0,
            nested: 0,
            sizes_visible: true,
            whatif: crate::whatif::Observer::default(),
        }
    }

    /// Interprets a record.
    pub fn classify(&self, r: &FaultRecord) -> Classified {
        let from_return = matches!(r.source, source::FEXIT | source::KRETPROBE);
        // A record closed on a VM_FAULT_RETRY is no fault: the kernel side gave up waiting
        // for its completing call, or the return had no entry (or was nested).
        let retry =
            from_return && r.ret & kernel::VM_FAULT_RETRY != 0 || r.has(rflags::RETRY_PENDING);
        let unfinished = retry.then(|| {
            if r.has(rflags::RETRY_PENDING) {
                Unfinished::Pending
            } else {
                Unfinished::Unlinked
            }
        });
        let error = from_return && !retry && r.ret & kernel::FAULT_FAILED != 0;
        let major = r.source == source::PERF_MAJOR
            || from_return && !retry && r.ret & kernel::VM_FAULT_MAJOR != 0;
        let write = (r.has(rflags::HAS_FAULT_FLAGS)
            && r.fault_flags & kernel::FAULT_FLAG_WRITE != 0)
            || (!r.has(rflags::HAS_FAULT_FLAGS)
                && r.has(rflags::HAS_EXCEPTION)
                && r.error_code & kernel::X86_PF_WRITE != 0);
        let retry_calls = if retry {
            u32::from(r.retries).max(1)
        } else {
            u32::from(r.retries)
        };
        let mapped =
            (self.sizes_visible && !retry && r.has(rflags::HAS_MAPPING)).then(|| mapped(r));
        Classified {
            retry,
            unfinished,
            error,
            major,
            write,
            latency_ns: (!retry).then(|| r.latency_ns()).flatten(),
            retry_calls,
            vma_lock_retries: u32::from(r.vma_lock_retries),
            mapped,
        }
    }

    /// Adds one record. `resolver` names VMAs and fills in VMAs the kernel did not give.
    pub fn ingest(&mut self, r: &FaultRecord, resolver: &mut dyn VmaResolver) {
        self.ingest_n(r, 1, false, resolver);
    }

    /// Adds `n` faults of one class counted in the kernel: the same numbers as `n` records
    /// of the class, except that retries are not linked, latencies are known to their
    /// bucket, and the what-if skips their VMA (it needs every fault's address).
    pub fn ingest_aggregate(&mut self, k: &AggKey, n: u64, resolver: &mut dyn VmaResolver) {
        if n > 0 {
            self.ingest_n(&k.to_record(), n, true, resolver);
        }
    }

    fn ingest_n(
        &mut self,
        r: &FaultRecord,
        n: u64,
        aggregated: bool,
        resolver: &mut dyn VmaResolver,
    ) {
        if !matches!(
            r.source,
            source::FEXIT | source::KRETPROBE | source::PERF_MINOR | source::PERF_MAJOR
        ) {
            self.malformed += n;
            return;
        }
        if aggregated {
            self.aggregated += n;
        } else {
            self.records += 1;
        }
        self.no_entry += n * u64::from(r.has(rflags::NO_ENTRY));
        self.nested += n * u64::from(r.has(rflags::NESTED));
        let c = self.classify(r);
        self.totals.add(&c, n);
        let comm = r.comm_bytes();
        // The process table is bounded like the VMA table: a long run sees many short
        // processes. Beyond it, faults count in the totals and as process-table overflow.
        let mut spare = ProcStats::default();
        let proc = if self.processes.len() < self.max_vmas || self.processes.contains_key(&r.tgid) {
            self.processes.entry(r.tgid).or_default()
        } else {
            self.process_overflow += n * u64::from(!c.retry);
            &mut spare
        };
        // The main thread's name, or the first seen (converted only when it changes).
        if (proc.comm.is_empty() || r.tid == r.tgid) && proc.comm.as_bytes() != comm {
            proc.comm = String::from_utf8_lossy(comm).into_owned();
        }
        proc.stats.add(&c, n);

        let mut vma = None;
        if r.has(rflags::HAS_VMA) && r.vma_end > r.vma_start {
            let key = VmaKey {
                tgid: r.tgid,
                start: r.vma_start,
                end: r.vma_end,
            };
            vma = Some((key, r.vma_flags, r.vma_pgoff, r.inode, r.dev, None, false));
        } else if r.has(rflags::HAS_ADDRESS)
            && let Some(d) = resolver.lookup(r.tgid, r.address)
        {
            let key = VmaKey {
                tgid: r.tgid,
                start: d.start,
                end: d.end,
            };
            let flags = if d.shared { kernel::VM_SHARED } else { 0 };
            vma = Some((key, flags, d.pgoff, d.inode, 0, d.name, true));
        }
        let Some((key, flags, pgoff, inode, dev, name, from_proc)) = vma else {
            if !c.retry {
                proc.no_vma += n;
            }
            return;
        };
        if !self.vmas.contains_key(&key) {
            if self.vmas.len() >= self.max_vmas {
                if !c.retry {
                    self.vma_overflow += n;
                    proc.vma_overflow += n;
                }
                return;
            }
            let name = name.or_else(|| {
                if from_proc {
                    None
                } else {
                    resolver
                        .lookup_fresh(key.tgid, key.start)
                        .filter(|d| d.start == key.start)
                        .and_then(|d| d.name)
                }
            });
            self.vmas.insert(
                key,
                VmaStats {
                    comm: String::from_utf8_lossy(comm).into_owned(),
                    flags,
                    pgoff,
                    inode,
                    dev,
                    name,
                    from_proc,
                    name_tries: 1,
                    stats: Stats::default(),
                },
            );
        } else if let Some(v) = self.vmas.get_mut(&key)
            && v.name.is_none()
            && !v.from_proc
            && v.name_tries < 64
        {
            v.name_tries += 1;
            v.name = resolver
                .lookup(key.tgid, key.start)
                .filter(|d| d.start == key.start && d.end == key.end)
                .and_then(|d| d.name);
        }
        if let Some(v) = self.vmas.get_mut(&key) {
            v.stats.add(&c, n);
            if aggregated {
                self.whatif.aggregated(key, n);
            } else if self.sizes_visible {
                let entries = c.mapped.as_ref().map_or([0; 4], |m| m.entries);
                self.whatif.observe(key, r, c.retry, &entries);
            }
        }
    }

    /// Retry calls still waiting for their completing call when tracing ended.
    pub fn pending_retries(&self) -> u64 {
        self.totals.pending_retries
    }

    /// Retry calls that no call completed on their thread and page.
    pub fn unlinked_retries(&self) -> u64 {
        self.totals.unlinked_retries
    }

    /// VMA rows, most faults first (ties by process and address).
    pub fn vmas_sorted(&self) -> Vec<(&VmaKey, &VmaStats)> {
        let mut v: Vec<_> = self.vmas.iter().collect();
        v.sort_by(|a, b| {
            (b.1.stats.faults + b.1.stats.retry_calls)
                .cmp(&(a.1.stats.faults + a.1.stats.retry_calls))
                .then(a.0.cmp(b.0))
        });
        v
    }

    /// Processes, most faults first.
    pub fn processes_sorted(&self) -> Vec<(u32, &ProcStats)> {
        let mut v: Vec<_> = self.processes.iter().map(|(k, p)| (*k, p)).collect();
        v.sort_by(|a, b| {
            (b.1.stats.faults + b.1.stats.retry_calls)
                .cmp(&(a.1.stats.faults + a.1.stats.retry_calls))
                .then(a.0.cmp(&b.0))
        });
        v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn rec(src: u8, tgid: u32, tid: u32, addr: u64) -> FaultRecord {
        let mut r = FaultRecord {
            source: src,
            tgid,
            tid,
            address: addr,
            flags: rflags::HAS_ADDRESS,
            ..Default::default()
        };
        r.comm[..4].copy_from_slice(b"work");
        r
    }

    pub fn with_vma(mut r: FaultRecord, start: u64, end: u64) -> FaultRecord {
        r.vma_start = start;
        r.vma_end = end;
        r.flags |= rflags::HAS_VMA;
        r
    }

    fn ret_call(tid: u32, addr: u64, ret: u32, fault_flags: u32, t: (u64, u64)) -> FaultRecord {
        let mut r = with_vma(
            rec(source::KRETPROBE, 100, tid, addr),
            0x1000_0000,
            0x1100_0000,
        );
        r.ret = ret;
        r.fault_flags = fault_flags;
        r.start_ns = t.0;
        r.end_ns = t.1;
        r.flags |= rflags::HAS_RET | rflags::HAS_START | rflags::HAS_FAULT_FLAGS;
        r
    }

    #[test]
    fn counts_faults_per_process_and_vma() {
        let mut a = Analyzer::new(16);
        for i in 0..10 {
            let r = with_vma(
                rec(source::PERF_MINOR, 7, 7, 0x4000_0000 + i * 4096),
                0x4000_0000,
                0x4100_0000,
            );
            a.ingest(&r, &mut NoResolver);
        }
        for i in 0..3 {
            let r = with_vma(
                rec(source::PERF_MAJOR, 7, 8, 0x5000_0000 + i * 4096),
                0x5000_0000,
                0x5000_4000,
            );
            a.ingest(&r, &mut NoResolver);
        }
        a.ingest(
            &with_vma(rec(source::PERF_MINOR, 9, 9, 0x1000), 0x1000, 0x2000),
            &mut NoResolver,
        );
        assert_eq!(a.totals.faults, 14);
        assert_eq!(a.totals.major, 3);
        assert_eq!(a.processes[&7].stats.faults, 13);
        assert_eq!(a.processes[&9].stats.faults, 1);
        let rows = a.vmas_sorted();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].0.start, rows[0].1.stats.faults), (0x4000_0000, 10));
        assert_eq!(
            (
                rows[1].0.start,
                rows[1].1.stats.faults,
                rows[1].1.stats.major
            ),
            (0x5000_0000, 3, 3)
        );
        assert_eq!(rows[0].1.kind(), "anon");
    }

    /// A class of faults counted in the kernel reads as that many records of the class, its
    /// retries (linked in the kernel) included.
    #[test]
    fn faults_counted_in_the_kernel_add_up_like_their_records() {
        use huge_fault_common::{latency, level};
        let class = |ret: u32, bucket: u32| AggKey {
            vma_start: 0x1000_0000,
            vma_end: 0x1100_0000,
            tgid: 100,
            ret,
            fault_flags: kernel::FAULT_FLAG_WRITE,
            latency_bucket: bucket,
            source: source::KRETPROBE,
            flags: rflags::HAS_VMA
                | rflags::HAS_RET
                | rflags::HAS_FAULT_FLAGS
                | rflags::HAS_MAPPING,
            entries: [0, 0, 1, 0],
            chain: [
                huge_fault_common::step(level::PUD, kernel::VM_FAULT_FALLBACK),
                huge_fault_common::step(level::PMD, 0x100),
                0,
                0,
                0,
                0,
                0,
                0,
            ],
            chain_len: 2,
            comm: *b"work\0\0\0\0\0\0\0\0\0\0\0\0",
            ..Default::default()
        };
        // Faults whose first call returned VM_FAULT_RETRY under the per-VMA lock: linked in
        // the kernel, their class has the retry in its chain and counts.
        let mut retried = class(0x100, latency::bucket(2_000));
        retried.chain[1] = huge_fault_common::step(
            level::RETRY,
            kernel::VM_FAULT_RETRY | huge_fault_common::STEP_VMA_LOCK,
        );
        retried.chain[2] = huge_fault_common::step(level::PMD, 0x100);
        retried.chain_len = 3;
        retried.retries = 1;
        retried.vma_lock_retries = 1;
        let classes = [
            (class(0x100, latency::bucket(5_000)), 7),
            (class(0x100, latency::bucket(900_000)), 1),
            (retried, 2),
        ];
        let mut agg = Analyzer::new(16);
        let mut one_by_one = Analyzer::new(16);
        for (k, n) in &classes {
            agg.ingest_aggregate(k, *n, &mut NoResolver);
            for i in 0..*n {
                // The records each have their own thread: no retry links either.
                let mut r = k.to_record();
                r.tid = 1000 + i as u32 + r.ret;
                one_by_one.ingest(&r, &mut NoResolver);
            }
        }
        assert_eq!(agg.aggregated, 10);
        assert_eq!(agg.records, 0);
        let t = &agg.totals;
        assert_eq!((t.faults, t.retry_calls, t.writes), (10, 2, 10));
        assert_eq!((t.retried_faults, t.vma_lock_retries), (2, 2));
        assert_eq!(t.entries, [0, 0, 10, 0]);
        assert_eq!(t.bytes_mapped, 10 * (2 << 20));
        assert_eq!(t.fallback_faults, 10);
        assert_eq!(t.chains.get("PUD:FALLBACK PMD:OK"), Some(&8));
        assert_eq!(t.chains.get("PUD:FALLBACK RETRY PMD:OK"), Some(&2));
        let o = &one_by_one.totals;
        assert_eq!(
            (
                t.faults,
                t.retry_calls,
                t.retried_faults,
                &t.entries,
                &t.chains,
                t.bytes_mapped
            ),
            (
                o.faults,
                o.retry_calls,
                o.retried_faults,
                &o.entries,
                &o.chains,
                o.bytes_mapped
            )
        );
        assert_eq!(t.latency.summary(), o.latency.summary());
        let p50 = t.latency.summary().unwrap().p50;
        assert_eq!(p50, latency::upper(latency::bucket(5_000)));
        let rows = agg.vmas_sorted();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1.stats.faults, 10);
        assert_eq!(agg.unlinked_retries(), 0);
        assert_eq!(agg.pending_retries(), 0);
    }

    /// A fault whose first call (under the per-VMA lock) returned VM_FAULT_RETRY: the kernel
    /// side folds both calls into one record, its chain holding the steps of both.
    fn retried_fault(tid: u32, addr: u64) -> FaultRecord {
        use huge_fault_common::{STEP_VMA_LOCK, level, step};
        let mut r = ret_call(tid, addr, 0x100, kernel::FAULT_FLAG_WRITE, (1000, 9000));
        r.retries = 1;
        r.vma_lock_retries = 1;
        r.flags |= rflags::HAS_MAPPING;
        let m = &mut r.mapping;
        for st in [
            step(level::PUD, kernel::VM_FAULT_FALLBACK),
            step(level::PMD, kernel::VM_FAULT_FALLBACK),
            step(level::RETRY, kernel::VM_FAULT_RETRY | STEP_VMA_LOCK),
            step(level::PMD, kernel::VM_FAULT_FALLBACK),
            step(level::PTE, 0x100),
        ] {
            m.push_step(st);
        }
        m.entries[1] = 1;
        r
    }

    #[test]
    fn a_retried_fault_is_one_fault_with_the_steps_of_all_its_calls() {
        let mut a = Analyzer::new(16);
        a.ingest(&retried_fault(5, 0x1000_2345), &mut NoResolver);
        let t = &a.totals;
        assert_eq!(
            (
                t.faults,
                t.retry_calls,
                t.retried_faults,
                t.vma_lock_retries
            ),
            (1, 1, 1, 1)
        );
        assert_eq!((t.unlinked_retries, t.pending_retries), (0, 0));
        assert_eq!(
            t.chains.keys().collect::<Vec<_>>(),
            ["PUD:FALLBACK PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK"]
        );
        // One fault that fell back three times (two levels in the first call, one in the
        // second): one fallback fault, three FALLBACK answers.
        assert_eq!((t.fallback_faults, t.fallback_steps), (1, 3));
        assert_eq!(t.entries, [0, 1, 0, 0]);
        // Latency spans both calls: 9000 - 1000.
        assert_eq!(t.latency.summary().unwrap().max, 8000);
        let v = &a.vmas_sorted()[0].1.stats;
        assert_eq!((v.faults, v.retry_calls, v.retried_faults), (1, 1, 1));
    }

    #[test]
    fn retry_calls_no_call_completed_are_unlinked_or_pending_not_faults() {
        let mut a = Analyzer::new(16);
        // The kernel side gave up waiting: the thread's next call was on another page.
        let mut gone = retried_fault(5, 0x1000_0000);
        gone.ret = kernel::VM_FAULT_RETRY;
        gone.retries = 2;
        gone.flags |= rflags::RETRY_UNLINKED;
        a.ingest(&gone, &mut NoResolver);
        // A return without an entry that returned VM_FAULT_RETRY: one call.
        let mut orphan = ret_call(6, 0x1000_8000, kernel::VM_FAULT_RETRY, 0, (0, 4));
        orphan.flags = (orphan.flags & !rflags::HAS_START) | rflags::NO_ENTRY;
        a.ingest(&orphan, &mut NoResolver);
        // Still waiting when tracing ended.
        let mut waiting = retried_fault(7, 0x1000_9000);
        waiting.ret = kernel::VM_FAULT_RETRY;
        waiting.flags |= rflags::RETRY_PENDING;
        a.ingest(&waiting, &mut NoResolver);
        let t = &a.totals;
        assert_eq!((t.faults, t.retried_faults, t.retry_calls), (0, 0, 4));
        assert_eq!((t.unlinked_retries, t.pending_retries), (3, 1));
        assert_eq!((a.unlinked_retries(), a.pending_retries()), (3, 1));
        assert!(t.chains.is_empty() && t.latency.summary().is_none());
        let v = &a.vmas_sorted()[0].1.stats;
        assert_eq!((v.unlinked_retries, v.pending_retries), (3, 1));
    }

    #[test]
    fn a_batch_of_inserts_in_one_call_is_one_step_with_a_count() {
        use huge_fault_common::{level, step};
        let mut r = ret_call(5, 0x1000_0000, 0x100, kernel::FAULT_FLAG_WRITE, (1, 2));
        r.flags |= rflags::HAS_MAPPING;
        for _ in 0..16 {
            r.mapping.push_step(step(level::PTE, 0x100));
        }
        r.mapping.entries[1] = 16;
        let m = mapped(&r);
        assert_eq!((m.chain.as_str(), m.entries), ("PTE:OK×16", [0, 16, 0, 0]));
        assert_eq!(m.bytes, 16 * 4096);
    }

    #[test]
    fn errors_and_writes_are_counted() {
        let mut a = Analyzer::new(16);
        a.ingest(
            &ret_call(
                5,
                0x1000_0000,
                kernel::VM_FAULT_SIGBUS,
                kernel::FAULT_FLAG_WRITE,
                (1, 2),
            ),
            &mut NoResolver,
        );
        let mut tp = rec(source::PERF_MINOR, 100, 5, 0x1000_1000);
        tp.error_code = kernel::X86_PF_WRITE | kernel::X86_PF_USER;
        tp.flags |= rflags::HAS_EXCEPTION;
        a.ingest(&tp, &mut NoResolver);
        assert_eq!(
            (a.totals.faults, a.totals.errors, a.totals.writes),
            (2, 1, 2)
        );
    }

    #[test]
    fn a_full_vma_table_counts_overflow_instead_of_dropping() {
        let mut a = Analyzer::new(2);
        for i in 0..5u64 {
            let base = 0x10_0000 * (i + 1);
            a.ingest(
                &with_vma(rec(source::PERF_MINOR, 1, 1, base), base, base + 0x1000),
                &mut NoResolver,
            );
        }
        assert_eq!(a.vmas.len(), 2);
        assert_eq!(a.vma_overflow, 3);
        assert_eq!(a.processes[&1].vma_overflow, 3);
        assert_eq!(a.totals.faults, 5);
    }

    #[test]
    fn a_full_process_table_counts_overflow() {
        let mut a = Analyzer::new(2);
        for tgid in [1, 2, 3, 3, 1] {
            a.ingest(
                &rec(source::PERF_MINOR, tgid, tgid, 0x1000),
                &mut NoResolver,
            );
        }
        assert_eq!(a.processes.len(), 2);
        assert_eq!(a.processes[&1].stats.faults, 2);
        assert_eq!(a.process_overflow, 2);
        assert_eq!(a.totals.faults, 5);
    }

    struct OneVma;
    impl VmaResolver for OneVma {
        fn lookup(&mut self, _tgid: u32, addr: u64) -> Option<VmaDesc> {
            (0x7000..0x9000).contains(&addr).then(|| VmaDesc {
                start: 0x7000,
                end: 0x9000,
                pgoff: 0,
                inode: 42,
                shared: true,
                name: Some("/dev/shm/x".into()),
            })
        }
    }

    #[test]
    fn user_space_resolves_vmas_the_kernel_did_not_give() {
        let mut a = Analyzer::new(8);
        a.ingest(&rec(source::PERF_MINOR, 3, 3, 0x7123), &mut OneVma);
        a.ingest(&rec(source::PERF_MINOR, 3, 3, 0x1), &mut OneVma);
        let rows = a.vmas_sorted();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1.name.as_deref(), Some("/dev/shm/x"));
        assert_eq!(rows[0].1.kind(), "file-shared");
        assert!(rows[0].1.from_proc);
        assert_eq!(a.processes[&3].no_vma, 1);
    }

    fn step(r: &mut FaultRecord, lvl: u8, ret: u32, size: u64) {
        let m = &mut r.mapping;
        m.chain[m.chain_len as usize] = (u32::from(lvl) << 24) | ret;
        m.chain_len += 1;
        if ret & (kernel::VM_FAULT_ERROR | kernel::VM_FAULT_RETRY) == 0 {
            m.entries[lvl as usize] += 1;
            m.first_addr[lvl as usize] = r.address & !(size - 1);
        }
    }

    #[test]
    fn chains_entries_and_bytes_per_fault() {
        use huge_fault_common::level;
        let base = ret_call(5, 0x1020_0000, 0, kernel::FAULT_FLAG_WRITE, (1, 2));
        let mut pmd = base;
        pmd.flags |= rflags::HAS_MAPPING;
        step(&mut pmd, level::PMD, 0, 2 << 20);
        let m = mapped(&pmd);
        assert_eq!(
            (m.chain.as_str(), m.entries, m.bytes, m.fallback_steps),
            ("PMD:OK", [0, 0, 1, 0], 2 << 20, 0)
        );

        let mut fb = base;
        fb.flags |= rflags::HAS_MAPPING;
        step(&mut fb, level::PMD, kernel::VM_FAULT_FALLBACK, 2 << 20);
        let m = mapped(&fb);
        assert_eq!(
            (m.chain.as_str(), m.entries, m.bytes, m.fallback_steps),
            ("PMD:FALLBACK PTE:OK", [0, 1, 0, 0], 4096, 1)
        );

        let mut pud = base;
        step(&mut pud, level::PUD, 0x100, 1 << 30);
        assert_eq!(mapped(&pud).chain, "PUD:OK");
        assert_eq!(mapped(&pud).bytes, 1 << 30);

        let mut wp = base;
        wp.flags |= rflags::HAS_EXCEPTION;
        wp.error_code = kernel::X86_PF_PROT | kernel::X86_PF_WRITE;
        assert_eq!(
            (mapped(&wp).chain.as_str(), mapped(&wp).entries),
            ("PTE:PRESENT", [0; 4])
        );

        // DAX: the handler was asked for a PMD, fell back, then for a PTE.
        let mut dax = base;
        dax.flags |= rflags::HAS_MAPPING;
        step(&mut dax, level::PMD, kernel::VM_FAULT_FALLBACK, 2 << 20);
        dax.mapping.chain[1] = (u32::from(level::PTE) << 24) | 0x100;
        dax.mapping.chain_len = 2;
        let m = mapped(&dax);
        assert_eq!(
            (m.chain.as_str(), m.entries, m.fallback_steps),
            ("PMD:FALLBACK PTE:OK", [0, 1, 0, 0], 1)
        );

        let mut bus = base;
        bus.ret = kernel::VM_FAULT_SIGBUS;
        assert_eq!(
            (mapped(&bus).chain.as_str(), mapped(&bus).bytes),
            ("PTE:SIGBUS", 0)
        );

        // The analyzer adds them up per VMA, and counts fallback faults.
        let mut a = Analyzer::new(8);
        for r in [pmd, fb, fb] {
            a.ingest(&r, &mut NoResolver);
        }
        let v = &a.vmas_sorted()[0].1.stats;
        assert_eq!(v.entries, [0, 2, 1, 0]);
        assert_eq!(v.bytes_mapped, (2 << 20) + 2 * 4096);
        assert_eq!(v.fallback_faults, 2);
        assert_eq!(v.chains["PMD:FALLBACK PTE:OK"], 2);
        // Without the nested probes, nothing is claimed.
        let mut b = Analyzer::new(8);
        b.sizes_visible = false;
        b.ingest(&pmd, &mut NoResolver);
        assert!(b.totals.chains.is_empty());
        assert_eq!(b.totals.bytes_mapped, 0);
    }

    #[test]
    fn unknown_sources_are_counted_as_malformed() {
        let mut a = Analyzer::new(8);
        a.ingest(&rec(99, 1, 1, 0), &mut NoResolver);
        assert_eq!((a.malformed, a.records, a.totals.faults), (1, 0, 0));
    }
}
