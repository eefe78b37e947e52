//! What reaches the analysis from the kernel side: records drained from the ring buffer,
//! classes swept from the aggregate table, retries still pending at detach; each also
//! written to the recording.

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use huge_fault_common::{AggKey, FaultRecord, InFlight};

use crate::{
    analysis::Analyzer,
    kernel::{self, Mode},
    procmaps::ProcMaps,
    record::{Recorder, Recording},
};

/// What reaches the analysis from the kernel side: a record, or faults of one class.
pub(super) enum Item<'a> {
    Record(&'a FaultRecord),
    Class(&'a AggKey, u64),
}

/// Writes an item to the recording (when there is one) and hands it to the analyzer, with
/// the VMA resolver's answers recorded too.
pub(super) fn feed(
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
pub(super) fn drain(
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
/// when the programs detached, as records of their retry calls: read from the programs'
/// copy of them (`PENDING`) after detach. (A thread that exits closes its own: see
/// `hf_tp_thread_exit`.)
pub(super) fn pending_retries(ebpf: &Ebpf, mode: Mode) -> Vec<FaultRecord> {
    let src = match mode {
        Mode::Fentry => huge_fault_common::source::FEXIT,
        Mode::Kprobe => huge_fault_common::source::KRETPROBE,
        Mode::TracepointOnly => return vec![],
    };
    let Some(map) = ebpf.map("PENDING") else {
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
            let ret = kernel::VM_FAULT_RETRY;
            let flags = f::HAS_ADDRESS | f::HAS_FAULT_FLAGS | f::HAS_RET | f::RETRY_PENDING;
            let flags = flags
                | if st.has_exception != 0 {
                    f::HAS_EXCEPTION
                } else {
                    0
                };
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
                ret,
                error_code: st.error_code,
                source: src,
                flags,
                retries: st.retries,
                vma_lock_retries: st.vma_lock_retries,
                comm,
                mapping: {
                    let mut m = st.mapping;
                    m.clear_unused();
                    m
                },
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
pub(super) struct Aggregates {
    /// One count per CPU and class, summed here.
    pub(super) map: aya::maps::PerCpuHashMap<MapData, AggKey, u64>,
    pub(super) seen: std::collections::HashMap<AggKey, u64>,
    /// The kernel's `AGGREGATED` counter at the last sweep: no sweep while it stands still.
    pub(super) counted: u64,
    /// The exporter's counters (`--metrics`), fed the same gains.
    pub(super) metrics: Option<crate::metrics::Shared>,
}

impl Aggregates {
    pub(super) fn sweep(
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
            let Ok((k, per_cpu)) = item else { continue };
            let v: u64 = per_cpu.iter().sum();
            let before = self.seen.entry(k).or_insert(0);
            if v <= *before {
                continue;
            }
            let n = v - *before;
            *before = v;
            if let Some(m) = &self.metrics {
                m.0.lock().unwrap_or_else(|p| p.into_inner()).add(&k, n);
            }
            feed(Item::Class(&k, n), analyzer, maps, recorder.as_deref_mut());
        }
    }
}
