//! One guest boot: QEMU with the lab's devices, the serial console read as protocol lines.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use hf_lab::protocol::{Line, ScenarioResult};

use super::{LabArgs, NVDIMMS, kernels::Kernel};
use crate::{debian::apt_install, output, progress};

pub fn ensure_qemu() -> Result<()> {
    if output(Command::new("qemu-system-x86_64").arg("--version")).is_some() {
        return Ok(());
    }
    apt_install("qemu-system-x86", "about 15 s")
}

/// One guest boot's results.
pub struct Boot {
    pub release: Option<String>,
    pub results: Vec<ScenarioResult>,
    pub times: Vec<(String, f64)>,
    /// Why the boot did not end with the done marker.
    pub failure: Option<String>,
    pub wall: Duration,
    /// Benchmark boots: the summary table's lines and the raw samples (JSON lines).
    pub bench_table: Vec<String>,
    pub bench_samples: Vec<String>,
    /// The guest printed its done line.
    done: bool,
}

impl Boot {
    /// Takes one protocol line of the guest.
    fn take(&mut self, line: Line, log: &Path) -> Result<()> {
        match line {
            Line::Kernel(r) => {
                progress(&format!("lab: guest is up: {r}"));
                self.release = Some(r);
            }
            Line::Result(r) => self.results.push(r),
            Line::Time { pass, secs } => {
                progress(&format!("lab: {pass} mode: all scenarios in {secs:.1}s"));
                self.times.push((pass, secs));
            }
            Line::File { name, bytes } => {
                // A file from the guest, appended piece by piece, beside the serial log.
                let path = log.with_file_name(format!(
                    "{}-{name}",
                    self.release.as_deref().unwrap_or("guest")
                ));
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?
                    .write_all(&bytes)?;
            }
            Line::BenchTable(t) => self.bench_table.push(t),
            Line::BenchSample(t) => self.bench_samples.push(t),
            Line::Failure(f) => self.failure = Some(format!("init: failure: {f}")),
            Line::Done => self.done = true,
        }
        Ok(())
    }
}

pub fn boot(kernel: &Kernel, initramfs: &Path, args: &LabArgs, log: &Path) -> Result<Boot> {
    let mut append = String::from(
        "console=ttyS0 rdinit=/init panic=-1 oops=panic quiet loglevel=4 \
         transparent_hugepage=madvise hugepagesz=2M hugepages=4 hugepagesz=1G hugepages=1 \
         intel_iommu=on",
    );
    if !args.scenarios.is_empty() {
        append.push_str(&format!(" hf.only={}", args.scenarios.join(",")));
    }
    if !args.modes.is_empty() {
        append.push_str(&format!(" hf.modes={}", args.modes.join(",")));
    }
    if let Some(b) = &args.bench {
        append.push_str(&format!(" hf.bench={b}"));
    }
    if args.save_recording {
        append.push_str(" hf.save-recording");
    }
    // Emulated NVDIMMs, label-less: each is one region with one raw namespace that the guest
    // turns into a devdax device. Sparse files, fresh per boot.
    let mut nv = Vec::new();
    for (i, (file, size)) in NVDIMMS.iter().enumerate() {
        let path = initramfs.with_file_name(file);
        let f = std::fs::File::create(&path)?;
        f.set_len(*size)?;
        nv.push("-object".to_string());
        nv.push(format!(
            "memory-backend-file,id=nv{i},share=on,mem-path={},size={size}",
            path.display()
        ));
        nv.push("-device".to_string());
        nv.push(format!("nvdimm,memdev=nv{i},id=nvdimm{i}"));
    }
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2"])
        // q35 with an emulated IOMMU (interrupt remapping on): vfio-pci needs one, Debian's
        // kernels having no VFIO_NOIOMMU. q35 keeps at most 2 GiB of RAM below 4 GiB, where
        // the kernel and the initramfs sit, and the boot-time allocations take the top of
        // memory: 4 GiB leaves a free 1 GiB-aligned block for the 1 GiB hugetlb page.
        .args(["-machine", "q35,nvdimm=on", "-m", "4G,slots=4,maxmem=13G"])
        .args(["-device", "intel-iommu,intremap=on", "-net", "none"])
        .args(&nv)
        // The GPU-like device of the lab driver: a 4 GiB BAR of host RAM (only what is
        // touched is allocated); and a second one, a 2 GiB BAR, for vfio-pci. The guest
        // finds each by its slot (hf_lab::scenarios::VFIO_PCI_DEVICE).
        .args([
            "-object",
            "memory-backend-ram,id=vram,size=4G",
            "-device",
            "ivshmem-plain,memdev=vram,addr=0x4",
            "-object",
            "memory-backend-ram,id=vfiobar,size=2G",
            "-device",
            "ivshmem-plain,memdev=vfiobar,addr=0x5",
        ])
        // Display devices for the DRM scenarios: the standard VGA (bochs-drm) and a
        // secondary QXL device (qxl), both TTM drivers up to 6.12 (bochs uses GEM shmem
        // since 6.13). QXL's BARs are 16 MiB each: with its default 64 MiB ones, 6.1's
        // vfio-remap-6.1 soft-locked the guest (the init stuck in the kernel for minutes);
        // the cause was not found.
        .args([
            "-vga",
            "std",
            "-device",
            "qxl,addr=0x6,ram_size_mb=16,vram_size_mb=16,vram64_size_mb=16",
        ])
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut logf = std::fs::File::create(log)?;
    let mut b = Boot {
        release: None,
        results: vec![],
        times: vec![],
        failure: None,
        wall: Duration::ZERO,
        bench_table: vec![],
        bench_samples: vec![],
        done: false,
    };
    let deadline = started + args.timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_secs(5))) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                writeln!(logf, "{line}")?;
                match Line::parse(&line) {
                    Some(Ok(l)) => b.take(l, log)?,
                    Some(Err(e)) => b.failure = Some(e),
                    None if line.contains("Kernel panic") => {
                        b.failure = Some(format!("kernel panic: {line}"));
                    }
                    None => {}
                }
                if b.failure
                    .as_deref()
                    .is_some_and(|f| f.starts_with("kernel panic"))
                {
                    // Give the panic message a moment to reach the log, then stop.
                    std::thread::sleep(Duration::from_secs(2));
                    while let Ok(l) = rx.try_recv() {
                        writeln!(logf, "{l}")?;
                    }
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    b.failure = Some(format!("timeout after {:.0?}", args.timeout));
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    let st = child.wait()?;
    b.wall = started.elapsed();
    if !b.done && b.failure.is_none() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut err);
        }
        b.failure = Some(format!(
            "guest stopped before finishing ({st}) {}",
            err.trim()
        ));
    }
    Ok(b)
}
