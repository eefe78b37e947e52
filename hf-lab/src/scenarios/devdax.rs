//! Device DAX on emulated NVDIMMs: 2 MiB and 1 GiB alignment.

use crate::check::*;
use crate::scenarios::{DAX_1G, DAX_2M, Scenario};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "devdax-2m",
        kind: "devdax",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        mount: None,
        // A devdax device with 2 MiB alignment (drivers/dax): each 2 MiB is one fault that
        // inserts a PMD through vmf_insert_pfn_pmd (vmf_insert_pfn_pmd_prot on 6.1).
        workload: &["dev", "--path", DAX_2M, "--size", "8M", "--align", "2M"],
        checks: &[
            truth("touches", 2048),
            truth("minflt", 4),
            tool("faults", 4),
            tool("writes", 4),
            sized("entries.pmd", 4),
            sized("entries.pte", 0),
            sized("entries.pud", 0),
            sized("bytes_mapped", 8 << 20),
            sized_s("chains.0.chain", "PMD:OK"),
        ],
    },
    Scenario {
        name: "devdax-1g",
        kind: "devdax",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        mount: None,
        // 1 GiB alignment: one fault, one PUD through vmf_insert_pfn_pud.
        workload: &[
            "dev", "--path", DAX_1G, "--size", "1G", "--align", "1G", "--stride", "2M",
        ],
        checks: &[
            truth("touches", 512),
            truth("minflt", 1),
            tool("faults", 1),
            sized("entries.pud", 1),
            sized("entries.pmd", 0),
            sized("bytes_mapped", 1 << 30),
            sized_s("chains.0.chain", "PUD:OK"),
        ],
    },
];
