//! hugetlbfs: 2 MiB and 1 GiB pages from the pools reserved on the kernel command line.

use crate::check::*;
use crate::scenarios::Scenario;

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "hugetlb-2m",
        kind: "hugetlbfs",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        mount: None,
        workload: &["hugetlb", "--page-size", "2M", "--size", "4M"],
        checks: &[
            truth("touches", 2),
            truth("minflt", 2),
            truth("huge_pages_used", 2),
            tool("faults", 2),
            tool("writes", 2),
            tool_s("kind", "hugetlb"),
            sized("entries.pmd", 2),
            sized("bytes_mapped", 4 << 20),
            sized_s("chains.0.chain", "PMD:OK"),
        ],
    },
    Scenario {
        name: "hugetlb-1g",
        kind: "hugetlbfs",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        mount: None,
        workload: &["hugetlb", "--page-size", "1G", "--size", "1G"],
        checks: &[
            truth("touches", 1),
            truth("minflt", 1),
            truth("huge_pages_used", 1),
            tool("faults", 1),
            tool_s("kind", "hugetlb"),
            sized("entries.pud", 1),
            sized("bytes_mapped", 1 << 30),
            sized_s("chains.0.chain", "PUD:OK"),
        ],
    },
];
