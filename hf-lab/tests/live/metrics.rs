//! The exporter scraped by a real Prometheus server (Debian's `prometheus`): a known number
//! of faults must show as the exact difference of raw samples, and the exposition must
//! parse with an independent OpenMetrics parser (Debian's `python3-prometheus-client`).

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    process::{Child, Command, Stdio},
};

use crate::*;

fn have(test: &str, what: &str, check: &mut Command) -> bool {
    if check.output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var("HUGE_FAULT_REQUIRE_ROOT").is_ok_and(|v| v == "1") {
        panic!("{test} needs {what} (cargo xtask test installs it)");
    }
    eprintln!("{test} skipped: no {what}");
    false
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET http://127.0.0.1:PORT/PATH`, the body.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    // Chunked bodies (Prometheus's API): the chunk-size lines are hex digits alone.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut lines = body.split("\r\n");
        while let Some(size) = lines.next() {
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.push_str(lines.next()?);
        }
        return Some(out);
    }
    Some(body.to_string())
}

/// The raw samples Prometheus holds for `series` over the last 10 minutes (a range
/// selector: no extrapolation, unlike `increase()`).
fn samples(prom: u16, series: &str) -> Vec<f64> {
    let q: String = format!("{series}[10m]")
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let Some(body) = get(prom, &format!("/api/v1/query?query={q}")) else {
        return vec![];
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["data"]["result"][0]["values"]
        .as_array()
        .map(|vals| {
            vals.iter()
                .filter_map(|p| p[1].as_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the last two samples of `series` are equal and satisfy `ok`.
fn settled(prom: u16, series: &str, ok: &dyn Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = samples(prom, series);
        if let [.., a, b] = s[..]
            && a == b
            && ok(b)
        {
            return b;
        }
        assert!(Instant::now() < deadline, "{series} did not settle: {s:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_exact_fault_counts_from_the_exporter() {
    let test = "prometheus_scrapes_exact_fault_counts_from_the_exporter";
    if !root_or_skip(test)
        || !have(
            test,
            "prometheus",
            Command::new("prometheus").arg("--version"),
        )
        || !have(
            test,
            "python3-prometheus-client",
            Command::new("/usr/bin/python3").args(["-c", "import prometheus_client"]),
        )
    {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hf-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The exporter on a port the kernel picks; it says which on stderr.
    let mut hf_child = Command::new(hf())
        .args(["--metrics", "127.0.0.1:0", "--comm", "hf-workload"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(hf_child.stderr.take().unwrap());
    let port: u16 = loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "the exporter exited");
        if let Some(rest) = line
            .trim()
            .strip_prefix("huge-fault: serving OpenMetrics at http://127.0.0.1:")
        {
            break rest.trim_end_matches("/metrics").parse().unwrap();
        }
    };
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
    });
    let hf_child = Killed(hf_child);
    let prom_port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hugefault\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    // A first workload makes the series exist; its settled value is the baseline.
    let kind = r#"{kind="file-shared"}"#;
    let path = dir.join("shared.bin");
    let p = path.to_str().unwrap();
    workload(&["file", "--path", p, "--size", "64K"]);
    settled(prom_port, r#"up{job="hugefault"}"#, &|v| v == 1.0);
    let faults = format!("hugefault_faults_total{kind}");
    let count = format!("hugefault_fault_latency_seconds_count{kind}");
    let before = settled(prom_port, &faults, &|v| v >= 16.0);
    let before_count = settled(prom_port, &count, &|v| v >= 16.0);
    // 2048 pages of a shared file mapping written once: 2048 faults of that kind.
    let path2 = dir.join("shared2.bin");
    let truth = workload(&["file", "--path", path2.to_str().unwrap(), "--size", "8M"]);
    // Minor and major alike are faults (a page the kernel had to read is major).
    let taken = truth["minflt"].as_u64().unwrap() + truth["majflt"].as_u64().unwrap();
    assert_eq!(taken, 2048, "{truth}");
    let after = settled(prom_port, &faults, &|v| v >= before + 2048.0);
    let after_count = settled(prom_port, &count, &|v| v >= before_count + 2048.0);
    assert_eq!(after - before, 2048.0, "raw samples of {faults}");
    assert_eq!(after_count - before_count, 2048.0, "raw samples of {count}");
    assert_eq!(settled(prom_port, r#"up{job="hugefault"}"#, &|_| true), 1.0);
    // An independent OpenMetrics parser reads the exposition whole.
    let text = get(port, "/metrics").expect("a scrape");
    let mut py = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
             fams = {f.name: f for f in p(sys.stdin.read())}\n\
             s = [x for x in fams['hugefault_faults'].samples if x.labels.get('kind') == 'file-shared']\n\
             print(int(s[0].value))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    py.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused it: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(parsed >= after, "parsed {parsed}, Prometheus had {after}");
    assert!(get(port, "/").is_some_and(|b| b.contains("/metrics")));
    short_lived_processes_lose_nothing(port, &dir);
    drop(hf_child);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The value of the sample `series` (name and labels as exposed) in an exposition.
fn exposed(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

/// A daemon outlives its processes: short-lived ones, each writing 16 pages of a shared
/// file, add exactly their faults and lose none; and they add fewer classes than there are
/// processes (a class keyed by pid or VMA would add at least one per process; what is left
/// is the finite mix of kinds, answers and latency buckets, which a first batch warms up).
fn short_lived_processes_lose_nothing(port: u16, dir: &std::path::Path) {
    let faults = r#"hugefault_faults_total{kind="file-shared"}"#;
    let scrape = || get(port, "/metrics").expect("a scrape");
    let read = |text: &str, s: &str| exposed(text, s).unwrap_or_else(|| panic!("no {s}:\n{text}"));
    let path = dir.join("soak.bin");
    let p = path.to_str().unwrap();
    let mut grown = vec![];
    for batch in 0..2 {
        let first = scrape();
        let (before, classes_before) = (read(&first, faults), read(&first, "hugefault_classes"));
        let mut taken = 0;
        for _ in 0..200 {
            let t = workload(&["file", "--path", p, "--size", "64K"]);
            taken += t["minflt"].as_u64().unwrap() + t["majflt"].as_u64().unwrap();
        }
        assert_eq!(taken, 200 * 16, "the workloads' getrusage");
        let deadline = Instant::now() + Duration::from_secs(20);
        let text = loop {
            let text = scrape();
            if read(&text, faults) >= before + taken as f64 || Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(
            read(&text, faults) - before,
            taken as f64,
            "{faults}, batch {batch}"
        );
        assert_eq!(read(&text, "hugefault_lost_faults_total"), 0.0);
        grown.push(read(&text, "hugefault_classes") - classes_before);
    }
    eprintln!("classes added by two batches of 200 processes: {grown:?}");
    assert!(
        grown[1] < 200.0,
        "200 processes added {} classes after a first batch added {}",
        grown[1],
        grown[0]
    );
}

/// The examples a fleet starts from: Prometheus accepts the scrape config and the alerting
/// rules, and every panel of the dashboard queries a series the exporter has.
#[test]
fn the_metrics_examples_are_valid() {
    let test = "the_metrics_examples_are_valid";
    if !have(test, "promtool", Command::new("promtool").arg("--version")) {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/metrics");
    for args in [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "huge-fault-rules.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("grafana-dashboard.json")).unwrap())
            .expect("the dashboard is JSON");
    let families = [
        "hugefault_faults_total",
        "hugefault_mapped_bytes_total",
        "hugefault_fallbacks_total",
        "hugefault_fault_latency_seconds_bucket",
        "hugefault_lost_faults_total",
        "hugefault_classes",
        "hugefault_class_capacity",
        "hugefault_build_info",
    ];
    let mut exprs = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            exprs += 1;
            for word in e.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if word.starts_with("hugefault_") {
                    assert!(
                        families.contains(&word),
                        "{word} is no series of the exporter"
                    );
                }
            }
        }
    }
    assert!(exprs >= 6);
}
