//! The attach modes, and what each can and cannot see.

/// How the fault lifecycle is observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Fentry,
    Kprobe,
    TracepointOnly,
}

impl Mode {
    /// Every mode, in the order `auto` tries them.
    pub const ALL: [Mode; 3] = [Mode::Fentry, Mode::Kprobe, Mode::TracepointOnly];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Fentry => "fentry",
            Mode::Kprobe => "kprobe",
            Mode::TracepointOnly => "tracepoint-only",
        }
    }
}

/// What a mode can and cannot see, stated once for the table, the JSON and the README.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Visibility {
    /// Every `handle_mm_fault` call, including calls that returned VM_FAULT_RETRY.
    pub every_call: bool,
    /// The `vm_fault_t` each call returned (errors, MAJOR, RETRY, FALLBACK).
    pub return_codes: bool,
    /// Faults that failed (SIGSEGV, SIGBUS, OOM) appear as faults.
    pub failed_faults: bool,
    /// Faults raised by the kernel on behalf of a process (get_user_pages, no pt_regs).
    pub gup_faults: bool,
    /// What the latency measures.
    pub latency: &'static str,
    /// What cannot be seen in this mode, in words.
    pub blind_spots: Vec<&'static str>,
}

impl Mode {
    pub fn visibility(self) -> Visibility {
        match self {
            Mode::Fentry | Mode::Kprobe => Visibility {
                every_call: true,
                return_codes: true,
                failed_faults: true,
                gup_faults: true,
                latency: "handle_mm_fault entry to return",
                blind_spots: vec![],
            },
            Mode::TracepointOnly => Visibility {
                every_call: false,
                return_codes: false,
                failed_faults: false,
                gup_faults: false,
                latency: "fault exception to completion (includes retries and exception entry)",
                blind_spots: vec![
                    "calls that returned VM_FAULT_RETRY (only the completing call is seen)",
                    "return codes: FALLBACK, NOPAGE, errors",
                    "failed faults (SIGSEGV, SIGBUS, OOM)",
                    "faults raised by get_user_pages (no user registers)",
                ],
            },
        }
    }
}
