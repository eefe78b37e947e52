//! The bench's own check: every storm fully accounted, in every configuration.

use super::{Config, Sample};

/// The samples whose storm huge-fault did not account exactly, in words: its count in the
/// storm's mapping must equal the faults the storm's threads took there, and a PTE storm
/// of `bytes` takes one fault per 4 KiB (the storm's own arithmetic).
pub fn inexact(samples: &[Sample], bytes: u64) -> Vec<String> {
    let mut out = Vec::new();
    for s in samples {
        if s.config == Config::Untraced || s.config == Config::Bpftrace {
            continue;
        }
        let what = format!("{} {} rep {}", s.storm, s.config.name(), s.rep);
        if s.vma_faults.is_none() || s.vma_faults != s.region_faults {
            out.push(format!(
                "{what}: huge-fault counted {:?} faults in the storm's mapping, the storm took {:?} there ({} program runs skipped)",
                s.vma_faults,
                s.region_faults,
                s.misses.unwrap_or(0)
            ));
        } else if matches!(s.storm.as_str(), "pte" | "pte-2-threads")
            && s.region_faults != Some(bytes >> 12)
        {
            out.push(format!(
                "{what}: {:?} faults in a {bytes}-byte PTE storm, not one per 4 KiB",
                s.region_faults
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(storm: &str, config: Config, region: Option<u64>, tool: Option<u64>) -> Sample {
        Sample {
            storm: storm.into(),
            config,
            rep: 0,
            faults: 4096,
            ns: 1,
            records: None,
            drops: None,
            misses: Some(0),
            tracer_cpu_ns: None,
            tracer_peak_rss_kib: None,
            bpf_ns: None,
            programs: Default::default(),
            region_faults: region,
            vma_faults: tool,
        }
    }

    #[test]
    fn only_an_exact_count_passes() {
        let mb16 = 16 << 20;
        let ok = [
            sample("pte", Config::Fentry, Some(4096), Some(4096)),
            sample("pmd", Config::KprobeAggregate, Some(8), Some(8)),
            // Nothing to account untraced or under bpftrace.
            sample("pte", Config::Untraced, Some(4096), None),
            sample("pte", Config::Bpftrace, Some(4096), None),
        ];
        assert!(inexact(&ok, mb16).is_empty());
        let bad = [
            sample("pte", Config::Fentry, Some(4096), Some(4095)),
            sample("pte", Config::Kprobe, Some(4096), None),
            sample("pmd", Config::Kprobe, None, Some(8)),
            // Equal, but not one per page: the storm itself went wrong.
            sample("pte-2-threads", Config::Kprobe, Some(4097), Some(4097)),
        ];
        let e = inexact(&bad, mb16);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains(
            "counted Some(4095) faults in the storm's mapping, the storm took Some(4096)"
        ));
        assert!(e[3].contains("not one per 4 KiB"));
    }
}
