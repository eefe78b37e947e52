//! How a report leaves the tool: printed as tables or JSON, judged against the thresholds,
//! and written as JUnit XML.

use crate::{
    cli::OutputArgs,
    error::{Error, Result},
    report::Report,
    threshold,
};

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
