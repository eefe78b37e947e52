//! The verdicts as a JUnit XML report, for CI systems: one test case per threshold and, for
//! `huge-fault run`, one for the traced command.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::Verdict;

/// A JUnit XML report of a run: one test case per threshold and, for `huge-fault run`, one
/// for the traced command (`(command line, exit status)`), which fails when it failed.
pub fn junit(verdicts: &[Verdict], command: Option<(&str, i32)>, duration_s: f64) -> String {
    let time = Duration::from_secs_f64(duration_s.max(0.0));
    let mut suite = TestSuite::new("huge-fault");
    suite.set_time(time);
    for v in verdicts {
        let status = if v.failed {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(v.line.as_str())
                .set_description(v.line.as_str());
            s
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(v.threshold.as_str(), status);
        case.set_classname("huge-fault.threshold")
            .set_time(Duration::ZERO);
        if !v.failed {
            case.set_system_out(v.line.as_str());
        }
        suite.add_test_case(case);
    }
    if let Some((cmd, code)) = command {
        let status = if code == 0 {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("exit status {code}"))
                .set_description(format!("the traced command failed with status {code}"));
            s
        };
        let mut case = TestCase::new(cmd, status);
        case.set_classname("huge-fault.command").set_time(time);
        suite.add_test_case(case);
    }
    let mut report = Report::new("huge-fault");
    report.set_time(time).add_test_suite(suite);
    report.to_string().expect("a JUnit report serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threshold::evaluate;
    use serde_json::json;

    fn report() -> serde_json::Value {
        json!({
            "loss": {"ringbuf_drops": 3},
            "totals": {"faults": 100, "major": 0, "errors": 0, "retry_calls": 2,
                       "fallback_faults": 10, "bytes_mapped": 6291456 + 4096 * 512,
                       "entries": {"pte": 512, "pmd": 3, "pud": 0},
                       "latency_ns": {"p50": 1000, "p90": 2000, "p99": 3_000_000, "max": 5_000_000}},
            "vmas": [
                {"path": "/dev/dax0.0", "kind": "file-shared", "faults": 3, "fallback_faults": 0,
                 "bytes_mapped": 6291456, "entries": {"pte": 0, "pmd": 3, "pud": 0},
                 "latency_ns": {"p99": 50_000}},
                {"path": null, "kind": "anon", "faults": 97, "fallback_faults": 10,
                 "bytes_mapped": 2097152, "entries": {"pte": 512, "pmd": 0, "pud": 0},
                 "latency_ns": {"p99": 3_000_000}}
            ]
        })
    }

    #[test]
    fn junit_has_a_case_per_threshold_and_the_command() {
        let v = evaluate(
            &[
                "p99 > 2ms".parse().unwrap(),
                "/dev/dax*: pmd_share < 90%".parse().unwrap(),
            ],
            &report(),
        );
        let x = junit(&v, Some(("sh -c 'exit 3' <&>", 3)), 1.5);
        assert!(x.starts_with("<?xml version=\"1.0\""), "{x}");
        let suites = x.lines().find(|l| l.starts_with("<testsuites")).unwrap();
        for attr in [
            "name=\"huge-fault\"",
            "tests=\"3\"",
            "failures=\"2\"",
            "time=\"1.500\"",
        ] {
            assert!(suites.contains(attr), "{attr}: {x}");
        }
        assert!(x.contains("name=\"p99 &gt; 2ms\""), "{x}");
        assert_eq!(x.matches("<failure").count(), 2, "{x}");
        assert!(
            x.contains("name=\"sh -c &apos;exit 3&apos; &lt;&amp;&gt;\""),
            "{x}"
        );
        assert!(x.contains("exit status 3"), "{x}");
        assert_eq!(
            x.matches("<testcase").count(),
            x.matches("</testcase>").count()
        );
        // Nothing to judge and no command: an empty, passing suite.
        let x = junit(&[], None, 0.0);
        assert!(
            x.contains("tests=\"0\"") && x.contains("failures=\"0\""),
            "{x}"
        );
    }
}
