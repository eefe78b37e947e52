//! The evaluation against hand-made reports.

use super::*;
use crate::{
    check::{later, split_bo},
    protocol::Outcome,
    scenarios::{self, applies},
};
use serde_json::json;

/// [`super::evaluate`] on a report that names the per-thread state its pass asks for (the
/// hand-made reports leave it out), unless it names one itself.
fn evaluate(
    s: &Scenario,
    kernel: &str,
    mode: &str,
    report: &Value,
    truth: &Value,
    vmstat_delta: &BTreeMap<String, i64>,
) -> ScenarioResult {
    let mut report = report.clone();
    if report.get("probes").is_none() {
        let store = if mode.ends_with("-aggregate") {
            "per-thread state in a hash map by tid (--thread-state hash)"
        } else {
            "per-thread state in task local storage"
        };
        report["probes"] = json!([{"target": "handle_mm_fault"}, {"target": store}]);
    }
    super::evaluate(s, kernel, mode, &report, truth, vmstat_delta)
}

#[test]
fn a_pass_on_the_other_per_thread_state_fails() {
    let kprobe_pass = |probes: Value| {
        let mut rep = report(4, 4);
        rep["probes"] = probes;
        evaluate(
            scenario("thp-aligned"),
            "6.1",
            "kprobe",
            &rep,
            &truth(),
            &vm(4),
        )
    };
    let r = kprobe_pass(
        json!([{"target": "per-thread state in a hash map by tid (no task storage maps)"}]),
    );
    assert_eq!(r.status, Status::Fail);
    let c = r
        .checks
        .iter()
        .find(|c| c.what == "tool probes: per-thread state")
        .unwrap();
    assert_eq!(c.outcome, Outcome::Fail);
    assert_eq!(kprobe_pass(json!([])).status, Status::Fail);
}

fn scenario(name: &str) -> &'static Scenario {
    scenarios::find(name).unwrap()
}

fn report(faults: u64, writes: u64) -> Value {
    json!({"loss": {"ringbuf_drops": 0, "inflight_map_full": 0, "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0,
                    "malformed_records": 0},
           "vmas": [
        {"pid": 9, "start": "0x200000", "end": "0xa00000", "faults": faults, "writes": writes,
         "major": 0, "kind": "anon", "entries": {"pte": 0, "pmd": 4, "pud": 0},
         "unlinked_retries": 0, "pending_retries": 0,
         "bytes_mapped": 8 << 20, "chains": [{"chain": "PMD:OK", "count": 4}], "handlers": []},
        {"pid": 9, "start": "0x1000", "end": "0x2000", "faults": 77}
    ]})
}

fn truth() -> Value {
    json!({"pid": 9, "vma_start": "0x200000", "vma_end": "0xa00000", "touches": 2048, "minflt": 4})
}

fn vm(alloc: i64) -> BTreeMap<String, i64> {
    [
        ("thp_fault_alloc".to_string(), alloc),
        ("thp_fault_fallback".to_string(), 0),
    ]
    .into()
}

/// The mthp-64k scenario's report as the tool gives it today: 16 faults, each counted
/// as one PTE (the folio size is not probed yet).
fn mthp(entries_pte: u64) -> (Value, Value) {
    let rep = json!({"loss": {"ringbuf_drops": 0, "inflight_map_full": 0,
                              "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0, "malformed_records": 0},
        "vmas": [{"pid": 3, "start": "0x400000", "end": "0x500000", "faults": 16, "writes": 16,
                  "kind": "anon", "entries": {"pte": entries_pte, "pmd": 0, "pud": 0}, "handlers": [],
                  "unlinked_retries": 0, "pending_retries": 0,
                  "bytes_mapped": entries_pte * 4096, "chains": [{"chain": "PTE:OK", "count": 16}]}]});
    let truth = json!({"pid": 3, "vma_start": "0x400000", "vma_end": "0x500000", "touches": 256,
                       "minflt": 16, "counter_delta": 16});
    (rep, truth)
}

/// The aggregate pass checks the same numbers, must have written no record, and has no
/// what-if to check.
#[test]
fn the_aggregate_pass_checks_the_same_numbers_and_no_records() {
    let mut rep = report(4, 4);
    rep["kernel_counters"] = json!({"records_submitted": 0});
    let r = evaluate(
        scenario("thp-aligned"),
        "6.1",
        "kprobe-aggregate",
        &rep,
        &truth(),
        &vm(4),
    );
    assert_eq!(r.status, Status::Pass, "{:?}", r.reason);
    assert!(
        r.checks
            .iter()
            .any(|c| c.what == "tool kernel_counters.records_submitted"
                && c.outcome == Outcome::Pass)
    );
    rep["kernel_counters"] = json!({"records_submitted": 3});
    let r = evaluate(
        scenario("thp-aligned"),
        "6.1",
        "kprobe-aggregate",
        &rep,
        &truth(),
        &vm(4),
    );
    assert_eq!(r.status, Status::Fail);
    // A hand-written what-if expectation is not visible without records.
    let s = scenario("drv-pte-only-aligned");
    let r = evaluate(s, "6.12.1", "kprobe-aggregate", &rep, &truth(), &vm(0));
    let w: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.what.contains("what_if"))
        .collect();
    assert!(!w.is_empty());
    assert!(w.iter().all(|c| c.outcome == Outcome::NotVisible), "{w:?}");
    assert!(sees_what_if("kprobe") && !sees_what_if("kprobe-aggregate"));
}

#[test]
fn exact_numbers_pass_and_pending_stays_pending() {
    let r = evaluate(
        scenario("thp-aligned"),
        "6.1",
        "kprobe",
        &report(4, 4),
        &truth(),
        &vm(4),
    );
    assert_eq!(r.status, Status::Pass, "{:?}", r.reason);
    assert!(
        r.checks.iter().all(|c| c.outcome == Outcome::Pass),
        "{:?}",
        r.checks
    );
    let (rep, t) = mthp(256);
    let r = evaluate(scenario("mthp-64k"), "6.12", "kprobe", &rep, &t, &vm(0));
    assert_eq!(r.status, Status::Pass, "{:?}", r.reason);
    // One PTE per fault instead of 16: the folio size was missed.
    let (rep, t) = mthp(16);
    let r = evaluate(scenario("mthp-64k"), "6.12", "kprobe", &rep, &t, &vm(0));
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.reason
            .unwrap()
            .contains("entries.pte: expected 256 got 16")
    );
    // A pending expectation that does not pass stays pending.
    let r = evaluate(&pending_mthp(), "6.12", "kprobe", &rep, &t, &vm(0));
    assert_eq!(r.status, Status::Pass, "{:?}", r.reason);
    assert_eq!(
        r.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Pending)
            .count(),
        1
    );
}

/// A scenario with an expectation still pending, for the promotion rule.
fn pending_mthp() -> Scenario {
    const CHECKS: &[crate::check::Check] = &[later("entries.pte", 256, "not probed yet")];
    Scenario {
        name: "pending",
        checks: CHECKS,
        ..*scenarios::find("thp-aligned").expect("scenarios")
    }
}

#[test]
fn one_fault_too_many_fails_with_the_numbers() {
    let r = evaluate(
        scenario("thp-aligned"),
        "6.1",
        "kprobe",
        &report(5, 4),
        &truth(),
        &vm(4),
    );
    assert_eq!(r.status, Status::Fail);
    assert!(r.reason.unwrap().contains("tool faults: expected 4 got 5"));
    let r = evaluate(
        scenario("thp-aligned"),
        "6.1",
        "kprobe",
        &report(4, 4),
        &truth(),
        &vm(3),
    );
    assert_eq!(r.status, Status::Fail);
    let mut rep = report(4, 4);
    rep["vmas"][0]["entries"]["pmd"] = json!(3);
    let r = evaluate(
        scenario("thp-aligned"),
        "6.1",
        "fentry",
        &rep,
        &truth(),
        &vm(4),
    );
    assert!(
        r.reason
            .unwrap()
            .contains("tool entries.pmd: expected 4 got 3")
    );
}

#[test]
fn a_pending_expectation_that_passes_fails_until_promoted() {
    let (rep, t) = mthp(256);
    let r = evaluate(&pending_mthp(), "6.12", "kprobe", &rep, &t, &vm(0));
    assert_eq!(r.status, Status::Fail);
    assert!(r.reason.unwrap().contains("pending-passes"));
    // Tracepoint-only mode cannot see entries at all: not visible, not pending.
    let r = evaluate(
        scenario("thp-aligned"),
        "6.1",
        "tracepoint-only",
        &report(4, 4),
        &truth(),
        &vm(4),
    );
    assert_eq!(r.status, Status::Pass);
    assert!(r.checks.iter().any(|c| c.outcome == Outcome::NotVisible));
}

#[test]
fn lost_records_fail_the_scenario() {
    let mut rep = report(4, 4);
    rep["loss"]["ringbuf_drops"] = json!(3);
    let r = evaluate(
        scenario("thp-aligned"),
        "6.1",
        "kprobe",
        &rep,
        &truth(),
        &vm(4),
    );
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.reason
            .unwrap()
            .contains("loss.ringbuf_drops: expected 0 got 3")
    );
}

#[test]
fn a_missing_vma_row_fails() {
    let mut t = truth();
    t["vma_start"] = json!("0x400000");
    let r = evaluate(
        scenario("thp-aligned"),
        "6.1",
        "fentry",
        &report(4, 4),
        &t,
        &vm(4),
    );
    assert_eq!(r.status, Status::Fail);
    assert!(r.reason.unwrap().starts_with("no VMA row"));
}

#[test]
fn kernel_versions_and_applicability() {
    assert_eq!(kernel_version("6.1.0-56-amd64"), Some((6, 1)));
    assert_eq!(kernel_version("6.12.115+deb12-amd64"), Some((6, 12)));
    assert_eq!(kernel_version("7.2.13+deb14-amd64"), Some((7, 2)));
    let m = scenario("mthp-64k");
    assert!(applies(m, (6, 1)).unwrap_err().contains("older than 6.9"));
    assert!(applies(m, (6, 12)).is_ok());
}

#[test]
fn per_kernel_checks_apply_only_on_their_kernels() {
    let s = scenario("drv-misaligned-2m-range");
    let row = serde_json::json!({
        "pid": 7, "start": "0x1000", "end": "0x2000", "faults": 1,
        "entries": {"pmd": 0, "pte": 2048}, "chains": [{"chain": "PTE:RANGE", "count": 1}],
        "fallback_steps": 0, "retried_faults": 0, "retry_calls": 0, "vma_lock_retries": 0,
        "unlinked_retries": 0, "pending_retries": 0, "handlers": [],
    });
    let report = serde_json::json!({
        "vmas": [row],
        "loss": {"ringbuf_drops": 0, "inflight_map_full": 0,
                 "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0, "malformed_records": 0},
    });
    let t = serde_json::json!({"pid": 7, "vma_start": "0x1000", "vma_end": "0x2000", "minflt": 1,
        "drv_fallbacks": 0, "drv_fault_calls": 0, "drv_fault_calls_vma_lock": 0,
        "drv_mkwrite_calls_vma_lock": 0, "drv_calls_needing_mmap_lock": 0});
    let old = evaluate(s, "6.1.0-56-amd64", "kprobe", &report, &t, &BTreeMap::new());
    assert_eq!(old.status, Status::Pass, "{:?}", old.reason);
    // On 6.12 the chain must be PUD:RANGE: the 6.1 expectation does not apply there.
    let new = evaluate(
        s,
        "6.12.117+deb12-amd64",
        "kprobe",
        &report,
        &t,
        &BTreeMap::new(),
    );
    assert_eq!(new.status, Status::Fail);
    assert!(new.reason.unwrap().contains("PUD:RANGE"));
}

/// The driver's own count of its answers must equal the tool's, summed over the
/// workload's VMAs; an unlinked or pending retry in a VMA fails the scenario.
#[test]
fn second_counts_and_retry_anomalies_are_checked_per_vma() {
    let s = scenario("gpu-runtime-range");
    let row = |start: &str, fallback_steps: u64, unlinked: u64| {
        json!({"pid": 9, "start": start, "end": "0xe", "faults": 1,
            "fallback_steps": fallback_steps, "retried_faults": 0, "retry_calls": 0,
            "vma_lock_retries": 0, "unlinked_retries": unlinked, "pending_retries": 0})
    };
    let rep = |a: u64, b: u64, unlinked: u64| {
        json!({"vmas": [row("0xa", a, 0), row("0xb", b, unlinked)],
            "loss": {"ringbuf_drops": 0, "inflight_map_full": 0,
                "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0,
                "malformed_records": 0}})
    };
    let truth = json!({"pid": 9, "bos": [{"vma_start": "0xa", "vma_end": "0xe"},
        {"vma_start": "0xb", "vma_end": "0xe"}], "drv_fallbacks": 3, "drv_fault_calls": 0,
        "drv_fault_calls_vma_lock": 0, "drv_mkwrite_calls_vma_lock": 0,
        "drv_calls_needing_mmap_lock": 0});
    let check = |r: &ScenarioResult, what: &str| {
        r.checks.iter().find(|c| c.what == what).map(|c| c.outcome)
    };
    let r = evaluate(
        s,
        "6.12.1",
        "kprobe",
        &rep(1, 2, 0),
        &truth,
        &BTreeMap::new(),
    );
    assert_eq!(
        check(&r, "tool sum:fallback_steps"),
        Some(Outcome::Pass),
        "{:?}",
        r.checks
    );
    let r = evaluate(
        s,
        "6.12.1",
        "kprobe",
        &rep(1, 1, 0),
        &truth,
        &BTreeMap::new(),
    );
    assert_eq!(check(&r, "tool sum:fallback_steps"), Some(Outcome::Fail));
    assert!(
        r.reason
            .unwrap()
            .contains("expected \"workload drv_fallbacks = 3\" got 2")
    );
    let r = evaluate(
        s,
        "6.12.1",
        "kprobe",
        &rep(1, 2, 1),
        &truth,
        &BTreeMap::new(),
    );
    assert_eq!(check(&r, "tool bo1:unlinked_retries"), Some(Outcome::Fail));
    assert_eq!(r.status, Status::Fail);
    // Tracepoint-only mode cannot see either: not visible, not a failure.
    let r = evaluate(
        s,
        "6.12.1",
        "tracepoint-only",
        &rep(1, 1, 1),
        &truth,
        &BTreeMap::new(),
    );
    assert_eq!(
        check(&r, "tool sum:fallback_steps"),
        Some(Outcome::NotVisible)
    );
    assert!(check(&r, "tool bo1:unlinked_retries").is_none());
    // A missing second count is never a pass.
    let mut t = truth.clone();
    t.as_object_mut().unwrap().remove("drv_fallbacks");
    let r = evaluate(s, "6.12.1", "kprobe", &rep(1, 2, 0), &t, &BTreeMap::new());
    assert_eq!(check(&r, "tool sum:fallback_steps"), Some(Outcome::Fail));
}

#[test]
fn a_scenario_without_a_mapping_needs_no_vma_row() {
    let s = scenario("drv-bad-requests");
    let report = serde_json::json!({
        "vmas": [],
        "loss": {"ringbuf_drops": 0, "inflight_map_full": 0,
                 "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0, "malformed_records": 0},
    });
    let mut t = serde_json::json!({"ok_map": 0, "unaligned_offset": 22, "length_past_bar": 22,
        "offset_past_bar": 22, "private": 22, "unknown_policy": 22, "unknown_ioctl": 25});
    let r = evaluate(s, "6.12.1", "kprobe", &report, &t, &BTreeMap::new());
    assert_eq!(r.status, Status::Pass, "{:?}", r.reason);
    t["private"] = serde_json::json!(0);
    let r = evaluate(s, "6.12.1", "kprobe", &report, &t, &BTreeMap::new());
    assert_eq!(r.status, Status::Fail);
}

#[test]
fn buffer_object_rows_and_the_what_if_cross_check() {
    let row = |start: &str, faults: u64, pte: u64, w: Option<[u64; 4]>| {
        json!({"pid": 9, "start": start, "end": "0xe", "faults": faults,
            "entries": {"pte": pte, "pmd": 0, "pud": 0},
            "what_if": w.map(|[f, pud, pmd, pte]| json!({"module_helper":
                {"faults": f, "pud": pud, "pmd": pmd, "pte": pte}}))})
    };
    let report = json!({"vmas": [row("0xa", 16, 16, Some([1, 0, 0, 16])), row("0xb", 1, 16, None)],
        "loss": {"ringbuf_drops": 0, "inflight_map_full": 0,
            "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0, "malformed_records": 0}});
    let truth = |a: &str| json!({"pid": 9, "bos": [{"vma_start": a, "vma_end": "0xe"}]});
    let rows = vma_rows(&report, &truth("0xa"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].unwrap()["faults"], 16);
    assert_eq!(split_bo("bo3:entries.pte"), (Some(3), "entries.pte"));
    assert_eq!(split_bo("faults"), (None, "faults"));
    // The prediction of 0xa against the real run at 0xb: equal.
    let pred = vma_rows(&report, &truth("0xa"));
    let real = vma_rows(&report, &truth("0xb"));
    let c = what_if_checks("twin", true, &pred, &real);
    assert!(c.iter().all(|c| c.outcome == Outcome::Pass), "{c:?}");
    // A wrong prediction fails and says which number.
    let mut report2 = report.clone();
    report2["vmas"][0]["what_if"]["module_helper"]["pte"] = json!(15);
    let pred = vma_rows(&report2, &truth("0xa"));
    let c = what_if_checks("twin", true, &pred, &real);
    let bad: Vec<_> = c.iter().filter(|c| c.outcome == Outcome::Fail).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].what, "what-if vma0 pte = twin entries.pte");
    let mut r = evaluate(
        scenario("gpu-runtime-range"),
        "6.1.0",
        "kprobe",
        &report,
        &json!({}),
        &BTreeMap::new(),
    );
    add_checks(&mut r, c);
    assert_eq!(r.status, Status::Fail);
    assert!(r.reason.unwrap().contains("what-if vma0 pte"));
    // No what-if without returns: not visible, not failed.
    let c = what_if_checks("twin", false, &pred, &real);
    assert!(c.iter().all(|c| c.outcome == Outcome::NotVisible));
    // A VMA the predictor lacks fails.
    let none = vma_rows(&report, &truth("0xc"));
    let c = what_if_checks("twin", true, &none, &real);
    assert!(c.iter().all(|c| c.outcome == Outcome::Fail));
}

/// Fallback steps of one level, from the row's chains: what `thp_fault_fallback` counts
/// for DAX, whether or not the kernel also asked for a PUD first.
#[test]
fn level_fallback_steps_are_counted_from_the_chains() {
    let row = json!({"fallback_steps": 7, "chains": [
        {"chain": "PTE:OK", "count": 2043},
        {"chain": "PMD:FALLBACK PTE:OK", "count": 4},
        {"chain": "PUD:FALLBACK PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK", "count": 1},
        {"chain": "PMD:FALLBACK×2 PTE:OK", "count": 1},
    ]});
    assert_eq!(tool_value(&row, "pmd_fallback_steps"), Some(json!(8)));
    assert_eq!(tool_value(&row, "pud_fallback_steps"), Some(json!(1)));
    assert_eq!(tool_value(&row, "fallback_steps"), Some(json!(7)));
    assert_eq!(tool_value(&json!({}), "pmd_fallback_steps"), None);
}

/// `a+b`: a driver's inserts, new entries and re-inserts, as the kernel counts its calls.
#[test]
fn a_sum_of_two_keys_adds_them_and_needs_both() {
    let row = json!({"entries": {"pte": 768}, "reinserts": {"pte": 11400}});
    assert_eq!(
        tool_value(&row, "entries.pte+reinserts.pte"),
        Some(json!(12168))
    );
    assert_eq!(tool_value(&row, "entries.pte+reinserts.pmd"), None);
    assert_eq!(tool_value(&json!({"entries": null}), "entries.pte+x"), None);
}

#[test]
fn a_check_between_two_kernels_holds_from_the_first_and_before_the_second() {
    use crate::check::{Needs, between, tool};
    let c = between(tool("faults", 1), (6, 12), (7, 1));
    assert_eq!(c.kernels, Needs::Between((6, 12), (7, 1)));
    assert!(c.kernels.met((6, 1)).is_err());
    assert!(c.kernels.met((6, 12)).is_ok());
    assert!(c.kernels.met((7, 0)).is_ok());
    assert!(c.kernels.met((7, 1)).is_err());
    assert!(c.kernels.met((7, 2)).is_err());
}

/// A check's probe events are made on the kernels it holds on only: 7.2's GEM shmem
/// functions are not in 6.1.
#[test]
fn probe_events_come_from_the_checks_of_this_kernel() {
    let s = scenario("drm-vgem-shmem");
    let old = crate::scenarios::event_keys(s, (6, 1));
    assert_eq!(old, ["event:kprobe:vmf_insert_pfn"]);
    let new = crate::scenarios::event_keys(s, (7, 2));
    assert!(
        new.contains(&"event:kprobe:drm_gem_shmem_pfn_mkwrite"),
        "{new:?}"
    );
    assert!(new.contains(&"event:kretprobe:drm_gem_shmem_any_fault if ret == 2048"));
}
