//! What one row of the probe table says: the program, where it attaches, in which mode, on
//! which kernels, and what it contributes.

use super::Mode;

/// Where a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A kernel function, by BTF/kallsyms name.
    Function(&'static str),
    /// `category:name` under tracefs `events/`, with the fields (name, offset) the program
    /// reads from its record, checked against the kernel's format file before attaching.
    Tracepoint(&'static str, &'static str, &'static [(&'static str, u32)]),
    /// A perf software event, on every online CPU.
    SoftwareEvent(&'static str),
    /// Every function in /proc/kallsyms whose name ends with this suffix (modules
    /// included): the `huge_fault` handlers of DAX, file systems and drivers.
    Suffix(&'static str),
    /// The range-insert helper named by `--range-helper` (C name or Rust path).
    RangeHelper,
}

/// `huge_fault` handlers whose names do not end in `_huge_fault`, probed beside the suffix
/// target's functions where the kernel has them: the DRM GEM shmem helpers' handler (7.x),
/// which their PTE `fault` handler also calls, with order 0.
pub const NAMED_HANDLERS: &[&str] = &["drm_gem_shmem_any_fault"];

/// The range-insert helper probed by default: the lab driver's Rust helper.
pub const DEFAULT_RANGE_HELPER: &str = "hf_range::kernel::insert_range,hf_vmf_insert_range";

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Function(f) => f.to_string(),
            Target::Tracepoint(c, n, _) => format!("{c}:{n}"),
            Target::SoftwareEvent(e) => format!("perf:{e}"),
            Target::Suffix(s) => std::iter::once(format!("*{s}"))
                .chain(NAMED_HANDLERS.iter().map(|n| n.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
            Target::RangeHelper => "range-insert helper".into(),
        }
    }
}

/// The program type, which decides how it is loaded and attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgKind {
    FEntry,
    FExit,
    KProbe,
    KRetProbe,
    TracePoint,
    PerfEvent,
}

/// One program of the object, and when it is used.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSpec {
    /// Program name in the object.
    pub program: &'static str,
    pub kind: ProgKind,
    pub target: Target,
    /// The mode this program serves; a tracepoint serving several modes is listed once per mode.
    pub mode: Mode,
    /// Without it the mode cannot work (the fault lifecycle).
    pub required: bool,
    /// What the program contributes, for the attach summary.
    pub role: &'static str,
    /// The kernels (major, minor) that have the target under this name, where that is not
    /// every kernel: another version's name for the same job is a row of its own.
    pub since: Option<(u32, u32)>,
    pub until: Option<(u32, u32)>,
    /// Attached only while this holds (checked at start and while tracing), where the
    /// probe would otherwise run on every fault for nothing.
    pub gate: Option<Gate>,
}

/// A condition of the running system under which a probe is worth its cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// A multi-size THP size (an anonymous folio order below the PMD's) is enabled in
    /// `/sys/kernel/mm/transparent_hugepage/hugepages-*kB/enabled`.
    MultiSizeThp,
}

impl ProbeSpec {
    /// The role, with the kernels that have this target: `driver/DAX PMD insert (6.4+)`.
    pub fn role_text(&self) -> String {
        let v = |(a, b): (u32, u32)| format!("{a}.{b}");
        match (self.since, self.until) {
            (None, None) => self.role.to_string(),
            (Some(s), None) => format!("{} ({}+)", self.role, v(s)),
            (None, Some(u)) => format!("{} (up to {})", self.role, v(u)),
            (Some(s), Some(u)) => format!("{} ({} ... {})", self.role, v(s), v(u)),
        }
    }
}
