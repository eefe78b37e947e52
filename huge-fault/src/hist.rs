//! A log-linear latency histogram: 8 linear sub-buckets per power of two, so every
//! percentile it reports is within 12.5 % of the true value, in a fixed 4 KiB.

use serde::Serialize;

use huge_fault_common::latency;

/// Values below 2 * SUB are exact; above, 8 buckets per power of two up to 2^64.
#[cfg(test)]
const BUCKETS: usize =
    (2 * latency::SUB as usize) + (64 - latency::SUB_BITS as usize - 1) * latency::SUB as usize;

/// Only the buckets between the smallest and the largest value seen are stored (`lo` is
/// the first one's index): a VMA's latencies span a few dozen buckets, and the tool keeps
/// one histogram per VMA row and process.
#[derive(Clone, Debug)]
pub struct Histogram {
    lo: usize,
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            lo: 0,
            counts: Vec::new(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

/// The bucket of `v` (the kernel side buckets aggregated faults with the same function).
fn index(v: u64) -> usize {
    latency::bucket(v) as usize
}

/// The largest value that falls into bucket `i`.
fn upper(i: usize) -> u64 {
    latency::upper(i as u32)
}

/// Summary statistics in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub mean: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.record_n(v, 1);
    }

    /// Records `n` values of `v` (faults counted in the kernel, by bucket).
    pub fn record_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        let i = index(v);
        if self.counts.is_empty() {
            self.lo = i;
            self.counts.push(0);
        } else if i < self.lo {
            self.counts
                .splice(0..0, std::iter::repeat_n(0, self.lo - i));
            self.lo = i;
        } else if i >= self.lo + self.counts.len() {
            self.counts.resize(i - self.lo + 1, 0);
        }
        let c = &mut self.counts[i - self.lo];
        *c = c.saturating_add(n);
        self.count = self.count.saturating_add(n);
        self.sum = self.sum.saturating_add(u128::from(v) * u128::from(n));
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds every value of `other` (two rows of one mapping shown as one).
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let lo = self.lo.min(other.lo);
        let hi = (self.lo + self.counts.len()).max(other.lo + other.counts.len());
        let mut counts = vec![0u64; hi - lo];
        for h in [&*self, other] {
            for (k, &c) in h.counts.iter().enumerate() {
                let slot = &mut counts[h.lo + k - lo];
                *slot = slot.saturating_add(c);
            }
        }
        self.lo = lo;
        self.counts = counts;
        self.count = self.count.saturating_add(other.count);
        self.sum = self.sum.saturating_add(other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1): the upper bound of its bucket, clamped to the
    /// observed maximum. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (k, &c) in self.counts.iter().enumerate() {
            seen = u64::saturating_add(seen, c);
            if seen >= rank {
                return Some(upper(self.lo + k).min(self.max).max(self.min));
            }
        }
        Some(self.max)
    }

    pub fn summary(&self) -> Option<LatencySummary> {
        (self.count > 0).then(|| LatencySummary {
            count: self.count,
            min: self.min,
            mean: (self.sum / self.count as u128) as u64,
            p50: self.quantile(0.50).unwrap_or(0),
            p90: self.quantile(0.90).unwrap_or(0),
            p99: self.quantile(0.99).unwrap_or(0),
            max: self.max,
        })
    }
}

/// One power-of-two bucket: `[from_ns, to_ns)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Log2Bucket {
    pub from_ns: u64,
    pub to_ns: u64,
    pub count: u64,
}

impl Histogram {
    /// The counts per power of two (`[0, 1)`, `[1, 2)`, `[2, 4)`, ...), from the first
    /// non-empty bucket to the last, empty ones between included. Exact: every log-linear
    /// bucket lies inside one power of two.
    pub fn log2(&self) -> Vec<Log2Bucket> {
        let mut by_pow = [0u64; 65];
        for (k, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                // The bucket's values share the bit length of its upper bound.
                let up = upper(self.lo + k);
                let slot = &mut by_pow[(64 - up.leading_zeros()) as usize];
                *slot = slot.saturating_add(c);
            }
        }
        let Some(first) = by_pow.iter().position(|&c| c > 0) else {
            return Vec::new();
        };
        let last = by_pow.iter().rposition(|&c| c > 0).unwrap_or(first);
        (first..=last)
            .map(|k| Log2Bucket {
                from_ns: if k == 0 { 0 } else { 1u64 << (k - 1) },
                to_ns: if k == 64 { u64::MAX } else { 1u64 << k },
                count: by_pow[k],
            })
            .collect()
    }
}

/// A bpftrace-style text rendering of [`Histogram::log2`] buckets.
pub fn render_log2(buckets: &[Log2Bucket]) -> String {
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let mut out = String::new();
    for b in buckets {
        let bar = (u128::from(b.count) * 40).div_ceil(u128::from(max)) as usize;
        let range = format!("[{}, {})", fmt_ns(b.from_ns), fmt_ns(b.to_ns));
        out.push_str(&format!(
            "{range:<20} {:>9} |{:<40}|\n",
            b.count,
            "@".repeat(bar)
        ));
    }
    out
}

/// `1.2µs`-style rendering of nanoseconds.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod merge_tests {
    use super::Histogram;

    #[test]
    fn a_merge_is_the_histogram_of_both() {
        let (mut a, mut b, mut both) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for v in [100, 5_000, 70_000] {
            a.record(v);
            both.record(v);
        }
        for v in [3, 9_000_000] {
            b.record(v);
            both.record(v);
        }
        a.merge(&b);
        assert_eq!(a.summary(), both.summary());
        assert_eq!(a.log2(), both.log2());
        let mut empty = Histogram::default();
        empty.merge(&both);
        assert_eq!(empty.summary(), both.summary());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        // Every value maps to a bucket whose upper bound is >= the value and within 1/8.
        for v in (0u64..5000).chain([u64::MAX, u64::MAX / 3, 1 << 40, (1 << 40) - 1]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            let up = upper(i);
            assert!(up >= v, "{v}: upper {up}");
            assert!(up - v <= v / 8, "{v}: upper {up} too far");
            if i > 0 {
                assert!(upper(i - 1) < v, "{v}: previous bucket also holds it");
            }
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let s = h.summary().unwrap();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min, 1000);
        assert_eq!(s.max, 1_000_000);
        assert_eq!(s.mean, 500_500);
        // True p50 is 500 000, p99 990 000; buckets are 1/8 of a power of two wide.
        assert!((500_000..=500_000 + 65_536).contains(&s.p50), "{}", s.p50);
        assert!((990_000..=1_000_000).contains(&s.p99), "{}", s.p99);
    }

    #[test]
    fn small_values_are_exact_and_empty_is_none() {
        let mut h = Histogram::default();
        assert_eq!(h.summary(), None);
        for v in [3, 3, 3, 7] {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), Some(3));
        assert_eq!(h.quantile(1.0), Some(7));
    }

    #[test]
    fn log2_buckets_are_exact_powers_of_two() {
        let mut h = Histogram::default();
        assert!(h.log2().is_empty());
        for v in [0, 1, 3, 3, 1000, 1023, 1024, 5000] {
            h.record(v);
        }
        let b = h.log2();
        let count = |from: u64| b.iter().find(|x| x.from_ns == from).map(|x| x.count);
        assert_eq!(b.first().map(|x| (x.from_ns, x.to_ns)), Some((0, 1)));
        assert_eq!(count(0), Some(1));
        assert_eq!(count(1), Some(1));
        assert_eq!(count(2), Some(2));
        assert_eq!(count(4), Some(0), "empty buckets between are kept");
        assert_eq!(count(512), Some(2));
        assert_eq!(count(1024), Some(1));
        assert_eq!(count(4096), Some(1));
        assert_eq!(b.last().map(|x| x.to_ns), Some(8192));
        assert_eq!(b.iter().map(|x| x.count).sum::<u64>(), 8);
        let text = render_log2(&b);
        assert!(text.contains("[512ns, 1.0µs)"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains(" 2 |") && l.contains(&"@".repeat(40)))
        );
    }

    #[test]
    fn only_the_used_span_is_stored_and_order_does_not_matter() {
        let values = [5000u64, 3, 1 << 40, 700, 12, 5000, 1 << 20];
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for v in values {
            a.record(v);
        }
        let mut sorted = values;
        sorted.sort_unstable();
        for v in sorted {
            b.record(v);
        }
        assert_eq!(a.summary(), b.summary());
        assert_eq!(a.log2(), b.log2());
        let mut c = Histogram::default();
        for v in [1000u64, 1100, 1200] {
            c.record(v);
        }
        assert!(c.counts.len() <= 3, "{} buckets stored", c.counts.len());
    }

    #[test]
    fn formats_nanoseconds() {
        assert_eq!(fmt_ns(999), "999ns");
        assert_eq!(fmt_ns(1_500), "1.5µs");
        assert_eq!(fmt_ns(2_000_000), "2.0ms");
        assert_eq!(fmt_ns(3_000_000_000), "3.00s");
    }
}
