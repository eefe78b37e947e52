//! How a report leaves the tool: printed as tables or JSON, judged against the thresholds,
//! and written as JUnit XML.

use crate::{
    cli::OutputArgs,
    error::{Error, Result},
    report::Report,
    say, stdio, threshold,
};

/// Prints the report: tables fitted to `width` (a terminal's; `None`: full width), JSON,
/// or one NDJSON line with `stream`. A closed stdout is [`Error::BrokenPipe`].
pub fn print(out: &OutputArgs, stream: bool, report: &Report, width: Option<usize>) -> Result<()> {
    if stream {
        stdio::out(&format!(
            "{}\n",
            serde_json::to_string(report).expect("a report serializes")
        ))
    } else if out.json {
        stdio::out(&format!("{}\n", report.to_json()))
    } else {
        stdio::out(&report.render(out.top, width, None))
    }
}

/// Judges the thresholds on the report's JSON form, one line each on stderr.
pub fn judge(out: &OutputArgs, report: &Report) -> Vec<threshold::Verdict> {
    let json = serde_json::to_value(report).expect("a report serializes");
    let verdicts = threshold::evaluate(&out.fail_if, &json);
    for v in &verdicts {
        say!("huge-fault: {}", v.line);
    }
    verdicts
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
