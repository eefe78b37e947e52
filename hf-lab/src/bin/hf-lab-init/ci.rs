//! The README's CI example, on the kernel's own mm selftests.

use std::process::Command;

use hf_lab::protocol::{ScenarioResult, Status};

/// One `huge-fault run` of the CI example: its exit status, the JUnit report's test and
/// failure counts, and its stderr must be as expected.
struct CiRun {
    name: &'static str,
    args: &'static [&'static str],
    exit: i32,
    /// (tests, failures) in the JUnit report.
    junit: (u32, u32),
    /// A line its stderr must hold.
    says: &'static str,
}

const CI_RUNS: &[CiRun] = &[
    // map_hugetlb 4: 4 MiB of 2 MiB hugetlb pages. It reads the first word (a read fault
    // maps the first page, read-only in a private mapping), writes every byte (a
    // write-protect fault on the first page, a fault on the second) and reads them back:
    // 3 faults, all bytes mapped by PMD entries.
    CiRun {
        name: "ci-map_hugetlb",
        args: &[
            "--fail-if",
            "hugetlb: faults != 3",
            "--fail-if",
            "hugetlb: pmd_share < 100%",
            "--fail-if",
            "errors > 0",
            "--fail-if",
            "drops > 0",
            "--",
            "/bin/map_hugetlb",
            "4",
        ],
        exit: 0,
        junit: (5, 0),
        says: "threshold `hugetlb: pmd_share < 100%` passed",
    },
    // The same test held to a threshold it cannot meet: no 1 GiB entries. Exit 1.
    CiRun {
        name: "ci-map_hugetlb-fails",
        args: &[
            "--fail-if",
            "hugetlb: pud_share < 100%",
            "--",
            "/bin/map_hugetlb",
            "4",
        ],
        exit: 1,
        junit: (2, 1),
        says: "threshold `hugetlb: pud_share < 100%` FAILED",
    },
    // madv_populate: MADV_POPULATE_READ/WRITE fault pages in through get_user_pages, which
    // only the fentry and kprobe modes see.
    CiRun {
        name: "ci-madv_populate",
        args: &[
            "--fail-if",
            "drops > 0",
            "--fail-if",
            "faults < 512",
            "--",
            "/bin/madv_populate",
        ],
        exit: 0,
        junit: (3, 0),
        says: "threshold `faults < 512` passed",
    },
];

/// The README's CI example: `huge-fault run` around the kernel's mm selftests with
/// thresholds and a JUnit report, in kprobe mode.
pub fn ci_example(kernel: &str) -> Vec<ScenarioResult> {
    CI_RUNS
        .iter()
        .map(|c| {
            let junit = format!("/tmp/{}.xml", c.name);
            let out = Command::new("/bin/huge-fault")
                .args(["run", "--mode", "kprobe", "--junit", &junit])
                .args(c.args)
                .output();
            let mut problems = Vec::new();
            match &out {
                Err(e) => problems.push(format!("cannot run huge-fault: {e}")),
                Ok(o) => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    for l in err.lines() {
                        println!("init: [ci] {}: {l}", c.name);
                    }
                    if o.status.code() != Some(c.exit) {
                        problems.push(format!("exit {:?}, expected {}", o.status.code(), c.exit));
                    }
                    if !err.contains(c.says) {
                        problems.push(format!("stderr lacks `{}`", c.says));
                    }
                    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
                    // The suites' totals, attribute by attribute (their order is the
                    // writer's).
                    let suites = xml
                        .lines()
                        .find(|l| l.trim_start().starts_with("<testsuites"));
                    for want in [
                        format!("tests=\"{}\"", c.junit.0),
                        format!("failures=\"{}\"", c.junit.1),
                    ] {
                        if !suites.is_some_and(|l| l.contains(&want)) {
                            problems.push(format!("JUnit report lacks {want}"));
                        }
                    }
                    let stdout = String::from_utf8_lossy(&o.stdout);
                    for l in stdout.lines().take(3) {
                        println!("init: [ci] {}: {l}", c.name);
                    }
                }
            }
            ScenarioResult {
                scenario: c.name.into(),
                kernel: kernel.into(),
                mode: "kprobe".into(),
                status: if problems.is_empty() {
                    Status::Pass
                } else {
                    Status::Fail
                },
                reason: (!problems.is_empty()).then(|| problems.join("; ")),
                checks: vec![],
            }
        })
        .collect()
}
