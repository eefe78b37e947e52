//! What the binary does: the subcommands dispatched, the report printed and judged, the
//! exit status.

use std::path::Path;

use crate::{
    cli::{Args, Command, OutputArgs},
    error::{Error, Result},
    record::replay_file,
    report::{Extras, Report},
    run_info::RunInfo,
    threshold, trace,
};

/// Runs what the command line asks for; returns the exit status (1: a threshold failed,
/// else the traced command's status, 0 without one).
pub fn run(args: &Args) -> Result<i32> {
    match &args.command {
        None => trace::run(&args.trace, None),
        Some(Command::Run { trace, argv }) => trace::run(trace, Some(argv)),
        Some(Command::Report { output, file }) => report_file(output, file),
        Some(Command::Symbols { pattern, kallsyms }) => list_symbols(pattern, kallsyms.as_deref()),
    }
}

/// Prints the report (tables, JSON, or one NDJSON line with `stream`) and judges the
/// thresholds on its JSON form.
pub fn print_and_judge(
    out: &OutputArgs,
    stream: bool,
    report: &Report,
) -> Result<Vec<threshold::Verdict>> {
    if stream {
        println!(
            "{}",
            serde_json::to_string(report).expect("a report serializes")
        );
    } else if out.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render(out.top, None));
    }
    let json = serde_json::to_value(report).expect("a report serializes");
    let verdicts = threshold::evaluate(&out.fail_if, &json);
    for v in &verdicts {
        eprintln!("huge-fault: {}", v.line);
    }
    Ok(verdicts)
}

/// Writes the `--junit` report, if asked for.
pub fn write_junit(
    out: &OutputArgs,
    verdicts: &[threshold::Verdict],
    command: Option<(&str, i32)>,
    duration_s: f64,
) -> Result<()> {
    let Some(path) = &out.junit else {
        return Ok(());
    };
    std::fs::write(path, threshold::junit(verdicts, command, duration_s)).map_err(|source| {
        Error::Junit {
            path: path.clone(),
            source,
        }
    })
}

/// `huge-fault symbols PATTERN`: what a pattern resolves to, one function per line
/// (`name<TAB>demangled path<TAB>[module]`). No match is an error.
fn list_symbols(pattern: &str, file: Option<&Path>) -> Result<i32> {
    let path = file.unwrap_or(Path::new("/proc/kallsyms"));
    let text = std::fs::read_to_string(path).map_err(|source| Error::Kallsyms {
        path: path.into(),
        source,
    })?;
    let syms = crate::symbols::parse_kallsyms(&text);
    if syms.iter().all(|s| s.name.is_empty()) {
        return Err(Error::NoSymbols(path.into()));
    }
    let found = crate::symbols::resolve(&syms, pattern);
    if found.is_empty() {
        return Err(Error::NoSymbolMatch {
            pattern: pattern.into(),
            path: path.into(),
        });
    }
    for s in found {
        println!(
            "{}\t{}\t{}",
            s.name,
            s.demangled.as_deref().unwrap_or("-"),
            s.module
                .as_deref()
                .map_or(String::new(), |m| format!("[{m}]"))
        );
    }
    Ok(0)
}

/// `huge-fault report FILE`: the tables, JSON and thresholds of a recording, offline.
/// A damaged file still reports everything before the damage, then fails with the offset.
fn report_file(out: &OutputArgs, path: &Path) -> Result<i32> {
    let r = replay_file(path, out.max_vmas)?;
    let run = match &r.trailer {
        Some(t) => t.run.clone(),
        None => RunInfo::truncated(),
    };
    let extras = Extras::finished(&r.analyzer, &run, out.histogram);
    let report = Report::build_with(&r.analyzer, &run, extras);
    let verdicts = print_and_judge(out, false, &report)?;
    write_junit(out, &verdicts, None, report.duration_s)?;
    let failed = verdicts.iter().any(|v| v.failed);
    if let Some(error) = r.error {
        return Err(Error::RecordDamaged {
            path: path.into(),
            error,
            records: r.records,
        });
    }
    Ok(i32::from(failed))
}
