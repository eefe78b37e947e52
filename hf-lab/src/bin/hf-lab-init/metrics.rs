//! The exporter in the guest, in kprobe mode: a plain HTTP GET of `/metrics` after a THP
//! and a devdax workload must show their PMD entries and answers exactly.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use hf_lab::{protocol::ScenarioResult, scenarios::DAX_2M};

const THP: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

fn get(port: u16) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok(text)
}

fn check(port: u16) -> Result<(), String> {
    let workloads: [&[&str]; 2] = [
        &["anon", "--size", "8M", "--align", "2M", "--thp", "always"],
        &["dev", "--path", DAX_2M, "--size", "8M", "--align", "2M"],
    ];
    for w in workloads {
        let o = Command::new("/bin/hf-workload")
            .args(w)
            .output()
            .map_err(|e| format!("hf-workload: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "hf-workload {w:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    let want = [
        r#"hugefault_entries_total{kind="anon",level="pmd"} 4"#,
        r#"hugefault_mapped_bytes_total{kind="anon",level="pmd"} 8388608"#,
        r#"hugefault_level_answers_total{kind="anon",level="pmd",result="ok"} 4"#,
        r#"hugefault_entries_total{kind="file-shared",level="pmd"} 4"#,
        r#"hugefault_mapped_bytes_total{kind="file-shared",level="pmd"} 8388608"#,
        r#"hugefault_level_answers_total{kind="file-shared",level="pmd",result="ok"} 4"#,
        "hugefault_lost_faults_total 0",
    ];
    // The classes are swept every second.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = get(port)?;
        let missing: Vec<&str> = want
            .iter()
            .copied()
            .filter(|w| !text.lines().any(|l| l == *w))
            .collect();
        if missing.is_empty() {
            for l in text.lines().filter(|l| l.contains("level=\"pmd\"")) {
                println!("init: [metrics] {l}");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let pmd: Vec<&str> = text.lines().filter(|l| l.contains("pmd")).collect();
            return Err(format!("missing {missing:?}; the PMD series: {pmd:?}"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Brings the guest's loopback interface up (PID 1 has no network set-up): `SIOCSIFFLAGS`
/// with `IFF_UP` on `lo`, as `ip link set lo up` does.
fn loopback_up() -> Result<(), String> {
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let mut req = IfReq {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: a datagram socket used only for the two interface ioctls below, closed after;
    // `req` is an `ifreq` (name, then the flags of its union) that outlives both calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req as *mut IfReq);
        if r == 0 {
            req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut req as *mut IfReq);
        }
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if r != 0 {
            return Err(format!("bringing lo up: {e}"));
        }
    }
    Ok(())
}

/// `huge-fault --mode kprobe --metrics` scraped after known workloads.
pub fn metrics_check(kernel: &str) -> ScenarioResult {
    if let Err(e) = loopback_up() {
        println!("init: [metrics] {e}");
    }
    let old_thp = std::fs::read_to_string(THP).unwrap_or_default();
    let _ = std::fs::write(THP, "madvise");
    let result = (|| {
        let mut child = Command::new("/bin/huge-fault")
            .args([
                "--mode",
                "kprobe",
                "--metrics",
                "127.0.0.1:9758",
                "--comm",
                "hf-workload",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start huge-fault: {e}"))?;
        let mut err = BufReader::new(child.stderr.take().expect("piped"));
        let mut serving = false;
        let mut head = String::new();
        let mut line = String::new();
        while err.read_line(&mut line).unwrap_or(0) > 0 {
            head.push_str(&line);
            if line.starts_with("huge-fault: serving OpenMetrics at ") {
                serving = true;
                break;
            }
            line.clear();
        }
        let r = if serving {
            check(9758)
        } else {
            Err(format!("the exporter did not start: {}", head.trim()))
        };
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
        r
    })();
    // `[madvise]` in the file: the setting is the word in brackets.
    if let Some(w) = old_thp.split(['[', ']']).nth(1) {
        let _ = std::fs::write(THP, w);
    }
    let reason = result.err();
    println!(
        "init: [kprobe] metrics exporter: {}",
        reason
            .as_deref()
            .unwrap_or("the PMD series of both workloads exact")
    );
    ScenarioResult::verdict("metrics-exporter", kernel, "kprobe", reason)
}
