//! What the binary does: the subcommands dispatched, the report printed and judged, the
//! exit status.

use std::path::Path;

use crate::{
    cli::{Args, Command, OutputArgs},
    error::{Error, Result},
    output::{judge, print, write_junit},
    record::replay_file,
    report::{Extras, Report},
    run_info::RunInfo,
    trace,
};

/// Runs what the command line asks for; returns the exit status (1: a threshold failed,
/// else the traced command's status, 0 without one).
pub fn run(args: &Args) -> Result<i32> {
    if let Some(what) = args.generate {
        crate::stdio::out(&what.render())?;
        return Ok(0);
    }
    match &args.command {
        None => trace::run(&args.trace, None),
        Some(Command::Run { trace, argv }) => trace::run(trace, Some(argv)),
        Some(Command::Report { output, file }) => report_file(output, file),
        Some(Command::Symbols { pattern, kallsyms }) => list_symbols(pattern, kallsyms.as_deref()),
    }
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
    let mut text = String::new();
    for s in found {
        text.push_str(&format!(
            "{}\t{}\t{}\n",
            s.name,
            s.demangled.as_deref().unwrap_or("-"),
            s.module
                .as_deref()
                .map_or(String::new(), |m| format!("[{m}]"))
        ));
    }
    crate::stdio::out(&text)?;
    Ok(0)
}

/// `huge-fault report FILE`: the tables, JSON and thresholds of a recording, offline.
/// A damaged file still reports everything before the damage, then fails with the offset.
fn report_file(out: &OutputArgs, path: &Path) -> Result<i32> {
    let r = replay_file(path, out.max_vmas).map_err(|source| Error::RecordOpen {
        path: path.into(),
        source,
    })?;
    // A file that is not a recording at all gets the error alone, no empty tables.
    if let Some(error) = r.error.as_ref().filter(|e| e.before_any_entry()) {
        return Err(Error::NotRecording(path.into(), error.clone()));
    }
    let run = match &r.trailer {
        Some(t) => t.run.clone(),
        None => RunInfo::truncated(),
    };
    let extras = Extras::finished(&r.analyzer, &run, out.histogram);
    let report = Report::build_with(&r.analyzer, &run, extras);
    let printed = print(out, false, &report, crate::trace::output_width());
    let verdicts = judge(out, &report);
    write_junit(out, &verdicts, None, report.duration_s)?;
    printed?;
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
