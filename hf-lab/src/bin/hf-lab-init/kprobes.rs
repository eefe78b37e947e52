//! The kprobes the kernel has registered (debugfs `kprobes/list`): the lab's own view of
//! whether the tool attached its gated multi-size THP probe while a scenario enabled a
//! multi-size THP size, and detached it when the scenario restored the setting.

use std::time::{Duration, Instant};

const LIST: &str = "/sys/kernel/debug/kprobes/list";
/// The function the gated probe attaches to (6.8+).
const MTHP_TARGET: &str = "folio_add_new_anon_rmap";

/// A scenario's sysfs writes that enable a multi-size THP size (a `hugepages-NkB` below the
/// PMD's 2 MiB set to anything but `never`).
pub fn enables_mthp(pairs: &[(&str, &str)]) -> bool {
    pairs.iter().any(|(path, value)| {
        path.rsplit('/').nth(1).is_some_and(|dir| {
            dir.strip_prefix("hugepages-")
                .and_then(|d| d.strip_suffix("kB"))
                .and_then(|k| k.parse::<u64>().ok())
                .is_some_and(|k| k < 2048)
        }) && path.ends_with("/enabled")
            && *value != "never"
    })
}

/// Whether a kprobe on `function` is registered now (`None`: the list cannot be read).
fn listed(function: &str) -> Option<bool> {
    Some(lists(&std::fs::read_to_string(LIST).ok()?, function))
}

/// Whether a `kprobes/list` text has a probe on `function`, at any offset: a probe on a
/// function's start is listed after its `endbr64` (`+0x4`) where the kernel has IBT.
fn lists(list: &str, function: &str) -> bool {
    list.lines().any(|l| {
        l.split_whitespace()
            .any(|w| w.split_once('+').is_some_and(|(f, _)| f == function))
    })
}

/// Waits (5 s at most) until the multi-size THP probe is registered (`want`) or gone.
/// Only in the modes that use it, on kernels that have its target.
pub fn await_mthp_probe(mode: &str, want: bool) -> Result<(), String> {
    if mode.starts_with("tracepoint") || !has_target() {
        return Ok(());
    }
    let t0 = Instant::now();
    loop {
        match listed(MTHP_TARGET) {
            None => return Err(format!("cannot read {LIST}")),
            Some(now) if now == want => return Ok(()),
            Some(_) if t0.elapsed() > Duration::from_secs(5) => {
                return Err(format!(
                    "huge-fault did not {} its multi-size THP probe ({MTHP_TARGET}) within 5 s of the setting's change",
                    if want { "attach" } else { "detach" }
                ));
            }
            Some(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The kernel has the probe's target (it has multi-size THP: 6.8+).
fn has_target() -> bool {
    std::fs::read_to_string("/proc/kallsyms")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some(MTHP_TARGET))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_listed_at_any_offset_of_its_function() {
        let list = "ffffffff8134d2a4  k  folio_add_new_anon_rmap+0x4    [FTRACE]\n\
                    ffffffff81100000  r  handle_mm_fault+0x0    [FTRACE]\n";
        assert!(lists(list, "folio_add_new_anon_rmap"));
        assert!(lists(list, "handle_mm_fault"));
        assert!(!lists(list, "folio_add_new"));
        assert!(!lists("", "handle_mm_fault"));
    }

    #[test]
    fn only_sizes_below_the_pmd_switched_on_count() {
        let on = "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled";
        let pmd = "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled";
        let top = "/sys/kernel/mm/transparent_hugepage/enabled";
        assert!(enables_mthp(&[
            (top, "never"),
            (pmd, "never"),
            (on, "always")
        ]));
        assert!(!enables_mthp(&[(top, "always"), (pmd, "always")]));
        assert!(!enables_mthp(&[(on, "never")]));
    }
}
