//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::threshold::Threshold;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// fentry/fexit, else kprobe/kretprobe, else tracepoint-only.
    Auto,
    Fentry,
    Kprobe,
    /// exceptions:page_fault_* tracepoints and the minor/major-faults perf events.
    Tracepoint,
}

/// Where the programs keep each thread's fault between its probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ThreadStateArg {
    /// Task local storage where the kernel allows it in tracing programs (5.12+), else a
    /// hash map.
    Auto,
    /// BPF task local storage: no hashing per fault.
    TaskStorage,
    /// An LRU hash map keyed by thread id (one lookup per program).
    Hash,
}

/// What `--generate` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
    /// The man page, huge-fault(1).
    Man,
}

impl Generate {
    /// The completion script or man page, as text.
    pub fn render(self) -> String {
        use clap::CommandFactory as _;
        use clap_complete::Shell;
        let mut cmd = Args::command();
        let mut out = Vec::new();
        let shell = match self {
            Generate::Bash => Shell::Bash,
            Generate::Zsh => Shell::Zsh,
            Generate::Fish => Shell::Fish,
            Generate::Elvish => Shell::Elvish,
            Generate::Powershell => Shell::PowerShell,
            Generate::Man => {
                clap_mangen::Man::new(cmd)
                    .render(&mut out)
                    .expect("rendering into memory cannot fail");
                return String::from_utf8_lossy(&out).into_owned();
            }
        };
        clap_complete::generate(shell, &mut cmd, "huge-fault", &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Shows what the kernel does on page faults: per process and per mapping, which
/// page-table level each fault ended at, which levels fell back, the entries it inserted,
/// retries, errors and latency.
#[derive(Debug, Parser)]
#[command(
    args_conflicts_with_subcommands = true,
    name = "huge-fault",
    version,
    after_help = "Examples:\n  \
        huge-fault                      trace every process until Ctrl-C, then print the summary\n  \
        huge-fault -p 1234 -d 10        trace process 1234 for 10 seconds\n  \
        huge-fault -i 1                 redraw the tables every second\n  \
        huge-fault -d 5 --json          print the report as JSON (schema huge-fault.report v3)\n  \
        huge-fault run -- ./test        trace a command and its children until it exits\n  \
        huge-fault run --fail-if 'fallback_rate > 5%' --fail-if '/dev/dax*: pmd_share < 90%' -- ./t\n\n\
        Threshold metrics (--fail-if 'METRIC OP VALUE', optionally 'GLOB: ...' for the VMAs\n\
        whose path or kind matches): faults, major, errors, retry_calls, fallback_rate (share\n\
        of faults whose chain holds a FALLBACK), pte_share / pmd_share / pud_share (share of\n\
        bytes mapped by that level), p50, p90, p99, max (latency), drops (ring buffer).\n\
        Exit status: 0 all good; 1 a threshold failed; 2 the tool failed; otherwise the\n\
        traced command's own failure.\n\n\
        Needs root (or CAP_BPF and CAP_PERFMON). The tool's own faults are never counted."
)]
pub struct Args {
    #[command(flatten)]
    pub trace: TraceArgs,

    /// Print a shell completion script or the man page (roff) on stdout, then exit.
    #[arg(long, value_enum, value_name = "WHAT", exclusive = true)]
    pub generate: Option<Generate>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to trace and how: the options of live tracing (`huge-fault` and `huge-fault run`).
#[derive(Debug, Clone, clap::Args)]
pub struct TraceArgs {
    /// Trace only this process (thread group id).
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Trace only tasks with this command name (exact, as in /proc/PID/comm).
    #[arg(long, value_name = "NAME", value_parser = parse_comm)]
    pub comm: Option<String>,

    /// Trace only tasks in this cgroup v2 directory (e.g. /sys/fs/cgroup/my.slice).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(short, long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<f64>,

    /// Print the tables every SECS seconds while tracing.
    #[arg(short, long, value_name = "SECS", value_parser = parse_secs)]
    pub interval: Option<f64>,

    /// Print one JSON report per line (NDJSON): every interval (-i, default 1 s) with
    /// `ended_by: running`, and the final one last.
    #[arg(long, conflicts_with = "json")]
    pub json_stream: bool,

    /// How to observe the fault lifecycle.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,

    /// Where the programs keep each thread's fault between its probes.
    #[arg(long, value_enum, default_value_t = ThreadStateArg::Auto)]
    pub thread_state: ThreadStateArg,

    /// Kernel BTF to resolve structure layouts with.
    #[arg(long, value_name = "FILE", default_value = "/sys/kernel/btf/vmlinux")]
    pub btf: PathBuf,

    /// Range-insert helpers to probe, comma-separated: C function names or Rust paths
    /// (`::`), `*` globs allowed, resolved in /proc/kallsyms (modules included). Their calls
    /// show as `LEVEL:RANGE` chain steps; the entries they insert count at their own sizes
    /// (a helper called by another counts once).
    #[arg(
        long,
        visible_alias = "insert-helper",
        value_name = "SYMBOL,...",
        value_delimiter = ',',
        default_value = crate::kernel::DEFAULT_RANGE_HELPER
    )]
    pub range_helper: Vec<String>,

    /// More `huge_fault` handlers to probe, comma-separated (C names or Rust paths, `*`
    /// globs), beside every `*_huge_fault` function of /proc/kallsyms: for a driver whose
    /// handler has another name.
    #[arg(long, value_name = "SYMBOL,...", value_delimiter = ',')]
    pub huge_fault_handler: Vec<String>,

    /// Show the programs' own anomaly reports (nesting, lost entries) as they happen.
    #[arg(short, long)]
    pub verbose: bool,

    /// Size of the record ring buffer in KiB (a power of two, at least 4). A fault that
    /// finds it full is not lost: it is counted in the kernel by class (see --aggregate),
    /// and the report says how many were.
    #[arg(long, value_name = "KIB", default_value_t = 4096, value_parser = parse_ring_kib)]
    pub ring_buffer_kib: u32,

    /// Count every fault in the kernel, per VMA and class (levels tried, entries, result,
    /// latency bucket), and write no per-fault records: for fault rates the ring buffer
    /// cannot carry, and the lowest overhead. The tables, JSON and thresholds stay the same;
    /// latencies are known to 12.5%, retry calls are counted but not linked, and there is
    /// no what-if.
    #[arg(long)]
    pub aggregate: bool,

    /// Turn on the kernel's run-time accounting of BPF programs for the run (what
    /// `kernel.bpf_stats_enabled` does, undone when the tool exits) and report each of the
    /// tool's programs with its runs and nanoseconds per run: its own cost in the kernel.
    #[arg(long)]
    pub bpf_stats: bool,

    /// Write every per-fault record to FILE, to report it again with `huge-fault report FILE`.
    /// The file is private (mode 0600), written as FILE.partial while the run goes and
    /// renamed at the end; an existing FILE is an error without --force.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Let --record replace an existing FILE (never a symbolic link).
    #[arg(long, requires = "record")]
    pub force: bool,

    /// Serve OpenMetrics at http://ADDR/metrics until stopped (e.g. 127.0.0.1:9758; a
    /// bare port binds the loopback), counting every fault in the kernel by VMA kind,
    /// level and answer (implies --aggregate; no process or address in the classes).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub metrics: Option<std::net::SocketAddr>,

    /// With --metrics: give the first N command names seen their own series (a `comm`
    /// label); the rest are counted as `other`.
    #[arg(long, value_name = "N", requires = "metrics", default_value_t = 0)]
    pub metrics_comm: usize,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// How the report is given and judged: live, and for a recording (`huge-fault report`).
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Print the final report as JSON on stdout instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Rows per table.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,

    /// Add log2 latency histograms: for all faults and each VMA shown in the tables, and
    /// as `latency_log2` (`from_ns`, `to_ns`, `count`) in the final JSON.
    #[arg(long)]
    pub histogram: bool,

    /// Most VMA rows kept; faults in further VMAs are counted as overflow, not dropped.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub max_vmas: usize,

    /// Fail (exit 1) when this holds at the end, e.g. 'fallback_rate > 5%', 'p99 > 2ms',
    /// '/dev/dax*: pmd_share < 90%'. Repeatable; metrics are listed below.
    #[arg(long = "fail-if", value_name = "COND", value_parser = parse_threshold)]
    pub fail_if: Vec<Threshold>,

    /// Also write the verdicts as a JUnit XML report to FILE: one test case per --fail-if,
    /// and one for the traced command's exit status.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a command, trace it and every process it forks, stop when it exits.
    Run {
        #[command(flatten)]
        trace: Box<TraceArgs>,
        /// The command and its arguments (after `--`).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required = true,
            value_name = "CMD"
        )]
        argv: Vec<String>,
    },
    /// List the kernel functions a name or pattern resolves to (Rust paths when it
    /// contains `::`, e.g. 'kernel::mm::*::insert_range'; C names otherwise, e.g.
    /// '*_huge_fault'), from /proc/kallsyms or FILE.
    Symbols {
        #[arg(value_name = "PATTERN")]
        pattern: String,
        /// A kallsyms listing to read instead of /proc/kallsyms.
        #[arg(long, value_name = "FILE")]
        kallsyms: Option<PathBuf>,
    },
    /// Report a recording made with --record: the same tables, JSON and thresholds.
    Report {
        #[command(flatten)]
        output: OutputArgs,
        /// The recording.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// A command line clap refused, as one line on stderr (status 2); `--help` and `--version`
/// printed on stdout (status 0).
pub fn usage_error(e: &clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let code = match crate::stdio::out(&e.render().to_string()) {
            Ok(()) => 0,
            Err(e) => e.exit_code(),
        };
        return std::process::ExitCode::from(code);
    }
    crate::say!(
        "huge-fault: error: {} (see --help)",
        usage_line(&e.render().to_string())
    );
    std::process::ExitCode::from(2)
}

/// clap's message on one line: its first line, with the list a line ending in `:`
/// announces.
fn usage_line(text: &str) -> String {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or("bad command line");
    let mut s = first.trim_start_matches("error: ").to_string();
    if s.ends_with(':') {
        let items: Vec<&str> = lines
            .take_while(|l| l.starts_with(' '))
            .map(str::trim)
            .collect();
        s = format!("{} {}", s, items.join(", "));
    }
    s
}

fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("`{s}` is not an address to listen on (HOST:PORT or PORT)"))
}

fn parse_comm(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 15 {
        return Err(format!(
            "`{s}`: a command name has 1 to 15 bytes (the kernel's comm)"
        ));
    }
    Ok(s.to_string())
}

fn parse_threshold(s: &str) -> Result<Threshold, String> {
    s.parse()
}

fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(v > 0.0 && v.is_finite()) {
        return Err(format!("`{s}` must be a positive number of seconds"));
    }
    Ok(v)
}

fn parse_ring_kib(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v < 4 || !v.is_power_of_two() || v > 1 << 20 {
        return Err(format!(
            "`{s}`: the ring buffer must be a power of two between 4 and 1048576 KiB"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn parses_the_common_invocations() {
        let a = Args::try_parse_from(["huge-fault", "-p", "42", "-d", "2.5s", "--json"]).unwrap();
        let t = &a.trace;
        assert_eq!(
            (t.pid, t.duration, t.output.json),
            (Some(42), Some(2.5), true)
        );
        assert_eq!(t.mode, ModeArg::Auto);
        assert_eq!(t.ring_buffer_kib, 4096);
        let a = Args::try_parse_from(["huge-fault", "--mode", "tracepoint", "-i", "1"]).unwrap();
        assert_eq!(
            (a.trace.mode, a.trace.interval),
            (ModeArg::Tracepoint, Some(1.0))
        );
        let a = Args::try_parse_from([
            "huge-fault",
            "run",
            "--fail-if",
            "p99 > 2ms",
            "-d",
            "3",
            "--",
            "ls",
            "-l",
        ])
        .unwrap();
        match a.command {
            Some(Command::Run { trace, argv }) => {
                assert_eq!(argv, ["ls", "-l"]);
                assert_eq!(trace.output.fail_if.len(), 1);
                assert_eq!(trace.duration, Some(3.0));
            }
            other => panic!("{other:?}"),
        }
        // Range helpers: the lab driver's by default, a list or the alias otherwise.
        let a = Args::try_parse_from(["huge-fault"]).unwrap();
        assert_eq!(
            a.trace.range_helper,
            ["hf_range::kernel::insert_range", "hf_vmf_insert_range"]
        );
        let a = Args::try_parse_from([
            "huge-fault",
            "--insert-helper",
            "kernel::mm::*::insert_range,my_insert",
        ])
        .unwrap();
        assert_eq!(
            a.trace.range_helper,
            ["kernel::mm::*::insert_range", "my_insert"]
        );
        let a =
            Args::try_parse_from(["huge-fault", "report", "--json", "--top", "5", "f"]).unwrap();
        match a.command {
            Some(Command::Report { output, file }) => {
                assert!(output.json);
                assert_eq!((output.top, file), (5, PathBuf::from("f")));
            }
            other => panic!("{other:?}"),
        }
    }

    /// Each subcommand takes only the options that mean something to it.
    #[test]
    fn options_belong_to_their_subcommand() {
        for bad in [
            vec!["huge-fault", "report", "--aggregate", "f"],
            vec!["huge-fault", "report", "-p", "1", "f"],
            vec!["huge-fault", "report", "--json-stream", "f"],
            vec!["huge-fault", "symbols", "--json", "x"],
            vec!["huge-fault", "-p", "1", "report", "f"],
        ] {
            let err = Args::try_parse_from(&bad).unwrap_err().to_string();
            assert!(err.starts_with("error:"), "{bad:?}: {err}");
        }
    }

    /// The option table of docs/usage.md (linked from the README) lists exactly the
    /// options `--help` shows, with their short forms.
    #[test]
    fn the_docs_option_table_matches_the_help() {
        use std::collections::BTreeSet;
        let doc = include_str!("../../docs/usage.md");
        let mut in_doc = BTreeSet::new();
        for row in doc.lines().filter(|l| l.starts_with("| `-")) {
            let cell = row[2..].split(" | ").next().unwrap();
            for span in cell.split('`').skip(1).step_by(2) {
                for word in span.split([' ', ',']).filter(|w| w.starts_with('-')) {
                    in_doc.insert(word.to_string());
                }
            }
        }
        let mut in_help = BTreeSet::new();
        let cmd = Args::command();
        for a in cmd.get_arguments() {
            if let Some(l) = a.get_long() {
                in_help.insert(format!("--{l}"));
            }
            if let Some(s) = a.get_short() {
                in_help.insert(format!("-{s}"));
            }
        }
        in_help.remove("--help");
        in_help.remove("-h");
        in_help.remove("--version");
        in_help.remove("-V");
        // The alias is named in the table's text, not as a row.
        assert!(doc.contains("alias `--insert-helper`"));
        assert_eq!(in_doc, in_help, "docs/usage.md's option table vs --help");
        for a in cmd.get_arguments().filter(|a| a.get_long().is_some()) {
            assert!(
                a.get_help().is_some_and(|h| !h.to_string().is_empty()),
                "--{} has no help text",
                a.get_long().unwrap()
            );
        }
    }

    #[test]
    fn usage_errors_are_one_line() {
        let one = |argv: &[&str]| {
            usage_line(&Args::try_parse_from(argv).unwrap_err().render().to_string())
        };
        assert_eq!(
            one(&["huge-fault", "-d", "soon"]),
            "invalid value 'soon' for '--duration <SECS>': `soon` is not a number of seconds"
        );
        assert_eq!(
            one(&["huge-fault", "run"]),
            "the following required arguments were not provided: <CMD>..."
        );
        assert_eq!(
            one(&["huge-fault", "--frobnicate"]),
            "unexpected argument '--frobnicate' found"
        );
    }

    #[test]
    fn rejects_bad_values_with_a_message() {
        for bad in [
            vec!["huge-fault", "-d", "0"],
            vec!["huge-fault", "-d", "soon"],
            vec!["huge-fault", "--ring-buffer-kib", "3000"],
            vec!["huge-fault", "--mode", "uprobe"],
            vec!["huge-fault", "--fail-if", "speed > 3"],
            vec!["huge-fault", "run"],
        ] {
            let err = Args::try_parse_from(&bad).unwrap_err().to_string();
            assert!(err.starts_with("error:"), "{bad:?}: {err}");
        }
    }
}
