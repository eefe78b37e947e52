//! Every lab scenario, as data: what runs, on which kernels, and what must come out. One
//! file per kind of memory; [`all`] lists them in the order the lab runs them.

use crate::check::{Check, Expected, Needs, SecondCount, Source};

mod anon;
mod devdax;
mod driver;
mod driver_misaligned;
mod drm;
pub use drm::SHMEM_HUGE_SINCE;
mod file;
mod gpu_runtime;
mod hugetlb;
mod vfio;

#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub kind: &'static str,
    pub needs: Needs,
    /// Not built yet: the matrix shows the cell as pending with this reason.
    pub todo: Option<&'static str>,
    /// The `range`-policy twin whose real faults and entries this run's what-if section
    /// must predict exactly, VMA by VMA (checked when both ran in the same mode).
    pub predicts: Option<&'static str>,
    /// Who counts the scenario a second time, independently of the tool: its FALLBACK
    /// steps and retried faults must equal that count (in the modes that see every call).
    pub counted_by: Option<SecondCount>,
    /// sysfs writes before the workload, restored afterwards.
    pub sysfs: &'static [(&'static str, &'static str)],
    /// A filesystem the workload needs: (mount point, fstype, options), mounted once.
    pub mount: Option<(&'static str, &'static str, &'static str)>,
    pub workload: &'static [&'static str],
    pub checks: &'static [Check],
}

pub(crate) const THP: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
/// 1 GiB + 2 MiB + 8 KiB: room for one entry of each size.
pub(crate) const GIB_2M_8K: &str = "1050632K";
pub(crate) const GIB_2M_8K_PAGES: u64 = ((1 << 30) + (2 << 20) + (8 << 10)) >> 12;
/// A buffer object starting 2 MiB + 64 KiB before a 1 GiB boundary of the BAR and ending
/// 2 MiB + 64 KiB after the next one.
pub(crate) const MID_OFFSET: &str = "1046464K";
pub(crate) const MID_SIZE: &str = "1052800K";
pub(crate) const NO_PFNMAP_HUGE_FAULT_BEFORE: &str =
    "before 6.12 the kernel never calls huge_fault for PFNMAP VMAs (see the -6.1 twin)";
/// The PCI device the lab binds to vfio-pci: the second ivshmem device (a 2 GiB BAR 2),
/// in the slot the host's QEMU command line gives it.
pub const VFIO_PCI_DEVICE: &str = "0000:00:05.0";
/// devdax devices the lab guest sets up on its emulated NVDIMMs.
pub const DAX_2M: &str = "/dev/hf-dax-2m";
pub const DAX_1G: &str = "/dev/hf-dax-1g";
/// ext4 `-o dax` on fsdax namespaces: a plain mkfs, and one with 2 MiB stripe alignment.
pub const FSDAX_PLAIN: &str = "/mnt/fsdax-plain";
pub const FSDAX_ALIGNED: &str = "/mnt/fsdax-aligned";
pub(crate) const THP_DEFRAG: &str = "/sys/kernel/mm/transparent_hugepage/defrag";
pub(crate) const MTHP_2M: &str = "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled";
pub(crate) const MTHP_64K: &str = "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled";
pub(crate) const MTHP_64K_ALLOC: &str =
    "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/stats/anon_fault_alloc";

/// Every scenario, in the order the lab runs them. The lab guest boots with
/// `transparent_hugepage=madvise` and four 2 MiB and one 1 GiB hugetlb pages reserved on
/// the command line.
pub fn all() -> impl Iterator<Item = &'static Scenario> {
    [
        anon::SCENARIOS,
        hugetlb::SCENARIOS,
        file::SCENARIOS,
        devdax::SCENARIOS,
        driver::SCENARIOS,
        driver_misaligned::SCENARIOS,
        gpu_runtime::SCENARIOS,
        vfio::SCENARIOS,
        drm::SCENARIOS,
    ]
    .into_iter()
    .flatten()
}

/// The scenario of this name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    all().find(|s| s.name == name)
}

/// Kernel log lines that fail a lab boot: warnings, BUGs, oopses and their stack traces.
pub const KERNEL_LOG_ALARMS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "Oops",
    "general protection fault",
    "Call Trace:",
];

/// The kernel counters one scenario reads (see [`Source::Vmstat`]) on a kernel of this
/// (major, minor), or on any kernel.
fn counter_keys(s: &Scenario, version: Option<(u32, u32)>) -> impl Iterator<Item = &'static str> {
    s.checks
        .iter()
        .chain(s.counted_by.map_or(&[][..], SecondCount::checks))
        .filter(move |c| version.is_none_or(|v| c.kernels.met(v).is_ok()))
        .flat_map(|c| {
            let expected = match c.expect {
                Expected::Same(Source::Vmstat(k)) => Some(k),
                _ => None,
            };
            let read = match c.source {
                Source::Vmstat(k) => Some(k),
                _ => None,
            };
            read.into_iter().chain(expected)
        })
}

/// The kernel events one scenario counts around its workload (`event:` keys) on a kernel
/// of this (major, minor): those of the checks that hold there (a function another kernel
/// lacks gets no probe event).
pub fn event_keys(s: &Scenario, version: (u32, u32)) -> Vec<&'static str> {
    let mut keys: Vec<_> = counter_keys(s, Some(version))
        .filter(|k| k.starts_with("event:"))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The /proc/vmstat counters (and sysfs files) a set of scenarios needs.
pub fn vmstat_keys(scenarios: &[&Scenario]) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = scenarios
        .iter()
        .flat_map(|s| counter_keys(s, None))
        .filter(|k| !k.starts_with("event:"))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Whether a scenario applies to this kernel: `Err(reason)` for `n/a`.
pub fn applies(s: &Scenario, version: (u32, u32)) -> Result<(), String> {
    s.needs.met(version).map_err(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::split_bo;
    use crate::parse::parse_vmstat;

    fn scenario(name: &str) -> &'static Scenario {
        find(name).unwrap()
    }

    #[test]
    fn scenario_table_is_consistent() {
        let mut names: Vec<_> = all().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all().count(), "duplicate scenario names");
        for s in all() {
            assert_eq!(s.todo.is_none(), !s.workload.is_empty(), "{}", s.name);
            // Every scenario with a mapping checks the tool's fault count (of each buffer
            // object, for the GPU runtime).
            if s.todo.is_none() && s.workload.first() != Some(&"gpu-errors") {
                assert!(
                    s.checks.iter().any(|c| matches!(c.source,
                        Source::Tool(k) if split_bo(k).1 == "faults")),
                    "{}",
                    s.name
                );
            }
            // A what-if twin exists and runs the range policy.
            if let Some(t) = s.predicts {
                let twin = find(t).expect(t);
                assert!(twin.workload.contains(&"range"), "{t}");
            }
        }
        let keys = vmstat_keys(&all().collect::<Vec<_>>());
        assert_eq!(
            keys,
            [
                "thp_fault_alloc",
                "thp_fault_fallback",
                "thp_fault_fallback_charge",
                "thp_file_alloc",
                "thp_file_mapped"
            ]
        );
        assert_eq!(
            event_keys(scenario("fsdax-misaligned"), (6, 12)),
            ["event:fs_dax:dax_pte_fault"]
        );
        assert!(event_keys(scenario("thp-aligned"), (6, 12)).is_empty());
        let vm = parse_vmstat("nr_free_pages 10\nthp_fault_alloc 3\n");
        assert_eq!(vm["thp_fault_alloc"], 3);
    }
}
