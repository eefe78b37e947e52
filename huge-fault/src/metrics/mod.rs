//! The OpenMetrics exporter (`--metrics ADDR`): faults counted in the kernel by class, with
//! no process or address in the class (so the class table stays small for months), turned
//! into counters and a latency histogram with bounded labels, encoded by
//! `prometheus-client` on each scrape. Counters only grow: each sweep adds what each class
//! gained since the last one.

mod serve;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use huge_fault_common::{AggKey, latency};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};

pub use serve::serve;

use crate::analysis::{Answer, Step, classify};

/// The label set of a series: `kind` always, `comm` when asked for (`--metrics-comm N`).
type Labels = Vec<(&'static str, String)>;

/// Latency bucket bounds in seconds: powers of two of nanoseconds from 2^10 (1.024 µs) to
/// 2^30 (1.07 s). Each is a bound of the kernel's log-linear buckets, so a fault counted in
/// the kernel by its bucket falls into exactly one of them.
pub const LE_EXP: std::ops::RangeInclusive<u32> = 10..=30;

#[derive(Debug, Default, Clone)]
struct Hist {
    /// Per bound of [`LE_EXP`], then +Inf (not cumulative).
    buckets: Vec<u64>,
    /// Seconds, from each fault's bucket bound (within 12.5 % above the true sum).
    sum: f64,
    count: u64,
}

/// What the exporter counts, per label set.
#[derive(Debug, Default)]
pub struct State {
    pub version: &'static str,
    pub kernel: String,
    pub mode: &'static str,
    faults: BTreeMap<Labels, u64>,
    retry_calls: BTreeMap<Labels, u64>,
    errors: BTreeMap<Labels, u64>,
    major: BTreeMap<Labels, u64>,
    entries: BTreeMap<(Labels, &'static str), u64>,
    bytes: BTreeMap<(Labels, &'static str), u64>,
    steps: BTreeMap<(Labels, &'static str, String), u64>,
    fallbacks: BTreeMap<(Labels, &'static str), u64>,
    latency: BTreeMap<Labels, Hist>,
    /// Faults lost (the class table was full).
    pub lost: u64,
    /// Runs of the tool's programs the kernel skipped, by program (they only grow).
    pub skipped_runs: BTreeMap<String, u64>,
    /// Classes in the kernel's table, and its capacity.
    pub classes: u64,
    pub class_capacity: u64,
    /// Command names given their own series (`--metrics-comm N`), first come.
    comms: Vec<String>,
    max_comms: usize,
    /// What the mode sees: a series it cannot see is not exported (absent, never 0).
    pub sees: Sees,
}

/// Which families the attach mode can fill.
#[derive(Debug, Clone, Copy)]
pub struct Sees {
    /// Retry calls (every `handle_mm_fault` call).
    pub retries: bool,
    /// Failed faults and return codes.
    pub errors: bool,
    /// Levels, answers and entries.
    pub levels: bool,
}

impl Default for Sees {
    fn default() -> Self {
        Sees {
            retries: true,
            errors: true,
            levels: true,
        }
    }
}

fn level_name(level: u8) -> &'static str {
    match level {
        1 => "pte",
        2 => "pmd",
        3 => "pud",
        _ => "other",
    }
}

fn bump<K: Ord>(m: &mut BTreeMap<K, u64>, k: K, n: u64) {
    let v = m.entry(k).or_default();
    *v = v.saturating_add(n);
}

impl State {
    pub fn new(
        version: &'static str,
        kernel: String,
        mode: &'static str,
        comms: usize,
        sees: Sees,
    ) -> Self {
        State {
            version,
            kernel,
            mode,
            max_comms: comms,
            sees,
            ..Default::default()
        }
    }

    fn labels(&mut self, k: &AggKey) -> Labels {
        let kind = if k.flags & huge_fault_common::rflags::HAS_VMA == 0 {
            "unknown"
        } else {
            crate::vma::kind(k.vma_flags, k.inode)
        };
        let mut l = vec![("kind", kind.to_string())];
        if self.max_comms > 0 {
            let n = k.comm.iter().position(|&b| b == 0).unwrap_or(16);
            let comm = String::from_utf8_lossy(&k.comm[..n]).into_owned();
            // The first N names seen keep their own series for the whole run (a series
            // never disappears, so no counter goes backwards); the rest share `other`.
            if !self.comms.contains(&comm) && self.comms.len() < self.max_comms {
                self.comms.push(comm.clone());
            }
            let comm = if self.comms.contains(&comm) {
                comm
            } else {
                "other".into()
            };
            l.push(("comm", comm));
        }
        l
    }

    /// Adds `n` faults (or retry calls) of class `k`.
    pub fn add(&mut self, k: &AggKey, n: u64) {
        if n == 0 {
            return;
        }
        let l = self.labels(k);
        let c = classify(&k.to_record(), self.sees.levels);
        bump(
            &mut self.retry_calls,
            l.clone(),
            n.saturating_mul(u64::from(c.retry_calls)),
        );
        if c.retry {
            return;
        }
        bump(&mut self.faults, l.clone(), n);
        if c.error {
            bump(&mut self.errors, l.clone(), n);
        }
        if c.major {
            bump(&mut self.major, l.clone(), n);
        }
        if let Some(m) = &c.mapped {
            for (level, &e) in m.entries.iter().enumerate() {
                if e > 0 {
                    let name = level_name(level as u8);
                    bump(
                        &mut self.entries,
                        (l.clone(), name),
                        n.saturating_mul(u64::from(e)),
                    );
                    let bytes = u64::from(e) * crate::analysis::LEVEL_BYTES[level];
                    bump(&mut self.bytes, (l.clone(), name), n.saturating_mul(bytes));
                }
            }
            for (step, times) in &m.chain.steps {
                if let Step::Level { level, answer } = step {
                    let name = level_name(*level);
                    let result = match answer {
                        Answer::Ok => "ok".to_string(),
                        Answer::Range => "range".into(),
                        Answer::Present => "present".into(),
                        Answer::Failed(_) => answer.to_string().to_lowercase(),
                    };
                    let times = n.saturating_mul(u64::from(*times));
                    bump(&mut self.steps, (l.clone(), name, result), times);
                    if answer.is_fallback() {
                        bump(&mut self.fallbacks, (l.clone(), name), times);
                    }
                }
            }
        }
        if k.latency_bucket != latency::NONE {
            let h = self.latency.entry(l).or_insert_with(|| Hist {
                buckets: vec![0; LE_EXP.count() + 1],
                ..Default::default()
            });
            let bound = latency::upper(k.latency_bucket);
            // The first power of two above the bucket's values.
            let slot = LE_EXP
                .clone()
                .position(|e| bound < (1u64 << e))
                .unwrap_or(LE_EXP.count());
            h.buckets[slot] = h.buckets[slot].saturating_add(n);
            h.count = h.count.saturating_add(n);
            h.sum += bound as f64 * 1e-9 * n as f64;
        }
    }
}

/// The state behind the registry, encoded on each scrape.
#[derive(Debug, Clone)]
pub struct Shared(pub Arc<Mutex<State>>);

fn counters<K>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: &BTreeMap<K, u64>,
    labels: impl Fn(&K) -> Labels,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (k, v) in series {
        let l = labels(k);
        ConstCounter::new(*v).encode(family.encode_family(&l)?)?;
    }
    Ok(())
}

impl Collector for Shared {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut f = e.encode_descriptor(
                "hugefault_build",
                "huge-fault's version, the kernel it traces and the attach mode",
                None,
                MetricType::Info,
            )?;
            let labels: Labels = vec![
                ("version", s.version.to_string()),
                ("kernel", s.kernel.clone()),
                ("mode", s.mode.to_string()),
            ];
            f.encode_info(&labels)?;
        }
        let same = |l: &Labels| l.clone();
        let with_level = |k: &(Labels, &'static str)| {
            let mut l = k.0.clone();
            l.push(("level", k.1.to_string()));
            l
        };
        counters(
            &mut e,
            "hugefault_faults",
            "Page faults (handle_mm_fault calls that did not return VM_FAULT_RETRY)",
            None,
            &s.faults,
            same,
        )?;
        let none = BTreeMap::new();
        let seen = |yes: bool, m| if yes { m } else { &none };
        counters(
            &mut e,
            "hugefault_retry_calls",
            "handle_mm_fault calls that returned VM_FAULT_RETRY (absent where the mode cannot see them)",
            None,
            seen(s.sees.retries, &s.retry_calls),
            same,
        )?;
        counters(
            &mut e,
            "hugefault_errors",
            "Faults that failed (OOM, SIGBUS, SIGSEGV, HWPOISON; absent where the mode cannot see them)",
            None,
            seen(s.sees.errors, &s.errors),
            same,
        )?;
        counters(
            &mut e,
            "hugefault_major_faults",
            "Faults that needed I/O (VM_FAULT_MAJOR)",
            None,
            &s.major,
            same,
        )?;
        counters(
            &mut e,
            "hugefault_entries",
            "Page-table entries inserted by faults, per level",
            None,
            &s.entries,
            with_level,
        )?;
        counters(
            &mut e,
            "hugefault_mapped",
            "Bytes mapped by the entries faults inserted, per level",
            Some(&Unit::Bytes),
            &s.bytes,
            with_level,
        )?;
        counters(
            &mut e,
            "hugefault_fallbacks",
            "FALLBACK answers, per level asked",
            None,
            &s.fallbacks,
            with_level,
        )?;
        counters(
            &mut e,
            "hugefault_level_answers",
            "Answers of the levels faults tried, per level and result",
            None,
            &s.steps,
            |k| {
                let mut l = k.0.clone();
                l.push(("level", k.1.to_string()));
                l.push(("result", k.2.clone()));
                l
            },
        )?;
        {
            let mut f = e.encode_descriptor(
                "hugefault_fault_latency",
                "Fault latency, from the entry of a fault's first call to the return of its last",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (l, h) in &s.latency {
                let bounds: Vec<(f64, u64)> = LE_EXP
                    .clone()
                    .map(|x| (1u64 << x) as f64 * 1e-9)
                    .chain([f64::INFINITY])
                    .zip(h.buckets.iter().copied())
                    .collect();
                f.encode_family(l)?
                    .encode_histogram::<Labels>(h.sum, h.count, &bounds, None)?;
            }
        }
        {
            let f = e.encode_descriptor(
                "hugefault_lost_faults",
                "Faults lost: the in-kernel class table was full",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(s.lost).encode(f)?;
        }
        counters(
            &mut e,
            "hugefault_skipped_program_runs",
            "Runs of huge-fault's programs the kernel skipped (already running on that CPU): a fault counted without its return, or a step missing from a chain",
            None,
            &s.skipped_runs,
            |p| vec![("program", p.clone())],
        )?;
        {
            let f = e.encode_descriptor(
                "hugefault_classes",
                "Classes of faults in the kernel's table (they are never removed)",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(s.classes as i64).encode(f)?;
            let f = e.encode_descriptor(
                "hugefault_class_capacity",
                "Classes the kernel's table holds",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(s.class_capacity as i64).encode(f)?;
        }
        Ok(())
    }
}

/// A registry holding the exporter's collector.
pub fn registry(shared: &Shared) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(shared.clone()));
    r
}

/// The OpenMetrics text of a scrape.
pub fn exposition(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("encoding into a String cannot fail");
    out
}

#[cfg(test)]
mod tests;
