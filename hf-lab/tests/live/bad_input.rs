//! The README's bad-input table, row by row: each command gives exactly the line it shows
//! on stderr, nothing else there, and the status it shows.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::*;

/// One row: the shell command, whether it runs unprivileged, the stderr line (`None`:
/// nothing), the status.
#[derive(Debug)]
struct Row {
    command: String,
    unprivileged: bool,
    line: Option<String>,
    status: i32,
}

/// The text of a table cell's first code span (`` `x` `` or ``` `` x `` ```), with the
/// table's `\|` unescaped.
fn code_span(cell: &str) -> Option<String> {
    let cell = cell.trim();
    let inner = if let Some(rest) = cell.strip_prefix("`` ") {
        &rest[..rest.find(" ``")?]
    } else {
        let rest = cell.strip_prefix('`')?;
        &rest[..rest.find('`')?]
    };
    Some(inner.replace("\\|", "|"))
}

fn rows() -> Vec<Row> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("README.md");
    let start = text
        .find("<!-- bad-input")
        .expect("the README's bad-input table");
    let mut rows = Vec::new();
    for line in text[start..].lines().skip(3) {
        if !line.starts_with("| ") {
            break;
        }
        // Cells are split on ` | ` outside code spans: the first and the last are plain.
        let body = line.trim_start_matches("| ").trim_end_matches(" |");
        let (first, rest) = body.split_once(" | ").expect("three cells");
        let (second, status) = rest.rsplit_once(" | ").expect("three cells");
        rows.push(Row {
            command: code_span(first).unwrap_or_else(|| panic!("no command in {line}")),
            unprivileged: first.contains("(as an unprivileged user)"),
            line: code_span(second),
            status: status.trim().parse().expect("an exit status"),
        });
    }
    assert!(rows.len() >= 20, "the table has {} rows", rows.len());
    rows
}

/// The scratch directory the table calls `$D`.
fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("hf-bad-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(d.join("random.bin"), random).unwrap();
    std::fs::write(d.join("empty"), "").unwrap();
    std::fs::write(d.join("plain"), "not a program\n").unwrap();
    std::fs::write(d.join("old-format.hfrec"), "HFREC001R").unwrap();
    std::fs::write(d.join("exists.hfrec"), "already here").unwrap();
    std::os::unix::fs::symlink(d.join("victim"), d.join("link.hfrec")).unwrap();
    let secret = d.join("secret.hfrec");
    std::fs::write(&secret, "HFREC004").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let gz = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../huge-fault/tests/data/lab-6.12-kprobe.hfrec.gz");
    let mut whole = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap()),
        &mut whole,
    )
    .unwrap();
    std::fs::write(d.join("cut.hfrec"), &whole[..100_000]).unwrap();
    d
}

#[test]
fn every_row_of_the_readme_bad_input_table() {
    if !root_or_skip("every_row_of_the_readme_bad_input_table") {
        return;
    }
    let d = scratch();
    let bin_dir = Path::new(hf()).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failures = Vec::new();
    for row in rows() {
        let script = format!("set -o pipefail; {}", row.command);
        let mut cmd = if row.unprivileged {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "bash",
                "-c",
                &script,
            ]);
            c
        } else {
            let mut c = Command::new("bash");
            c.args(["-c", &script]);
            c
        };
        let mut child = cmd
            .env("D", &d)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash runs");
        // A row that does not fail at once would trace until stopped: that is a failure.
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let want = row
            .line
            .as_ref()
            .map(|l| format!("{}\n", l.replace("$D", &d.to_string_lossy())));
        let got_status = out.status.code().unwrap_or(-1);
        // No line: a run that attached and then ended quietly, with its attach summary.
        let summary_only = err.starts_with("huge-fault: tracing in ")
            && err.lines().skip(1).all(|l| l.starts_with("  "));
        let stderr_ok = match &want {
            Some(w) => err == *w,
            None => summary_only,
        };
        if !stderr_ok || got_status != row.status {
            failures.push(format!(
                "`{}`: status {got_status} (want {}), stderr:\n{err}want:\n{}",
                row.command,
                row.status,
                want.unwrap_or_else(|| "(the attach summary only)\n".into())
            ));
        }
    }
    // The symlink's target was never created through it.
    assert!(!d.join("victim").exists());
    std::fs::remove_dir_all(&d).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
