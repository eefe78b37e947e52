//! `cargo xtask lab`: boots Debian kernels in QEMU and runs every lab scenario inside each,
//! with `huge-fault` attached, then prints a scenario × kernel matrix (and writes it as JSON).
//!
//! Host side only: fetching kernels, building static guest binaries, the initramfs, QEMU and
//! the serial log. The scenarios and their expectations live in the `hf-lab` crate, run by
//! the guest; its protocol types are how the two sides talk.

mod initramfs;
mod kernels;
mod matrix;
mod qemu;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use initramfs::{build_guest_binaries, build_initramfs, host_program_with_libs, which_path};
use kernels::{KERNELS, KernelSpec, fetch_kernel, guest_modules};
use qemu::{boot, ensure_qemu};

use crate::{
    debian::{apt_install, cache},
    progress, root,
};

/// NVDIMM backing files and sizes: a 4 GiB one for 1 GiB-aligned devdax, a 2 GiB one for
/// 2 MiB-aligned devdax (the guest tells them apart by size).
/// Two 1 GiB ones carry fsdax ext4 filesystems (one plain mkfs, one with 2 MiB stripe
/// alignment).
pub(crate) const NVDIMMS: &[(&str, u64)] = &[
    ("nvdimm-4g.img", 4 << 30),
    ("nvdimm-2g.img", 2 << 30),
    ("nvdimm-1g-a.img", 1 << 30),
    ("nvdimm-1g-b.img", 1 << 30),
];

pub struct LabArgs {
    pub kernels: Vec<String>,
    pub scenarios: Vec<String>,
    pub modes: Vec<String>,
    pub keep: bool,
    pub timeout: Duration,
    /// A benchmark boot instead of the scenarios: `SIZE,REPS` (with bpftrace in the guest).
    pub bench: Option<String>,
    /// Bring the kprobe pass's recording back to target/lab-out/RELEASE-lab-kprobe.hfrec.
    pub save_recording: bool,
    /// A benchmark boot's second huge-fault (another revision's static build), carried as
    /// /bin/huge-fault-baseline.
    pub baseline: Option<std::path::PathBuf>,
}

pub fn lab(args: &LabArgs) -> Result<()> {
    let total = Instant::now();
    let mut stage_times: Vec<(String, Duration)> = Vec::new();
    let specs: Vec<&KernelSpec> = KERNELS
        .iter()
        .filter(|k| args.kernels.is_empty() || args.kernels.iter().any(|n| n == k.name))
        .collect();
    if specs.is_empty() {
        let known: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
        bail!(
            "unknown kernel {:?}; the lab knows {}",
            args.kernels,
            known.join(", ")
        );
    }
    let t = Instant::now();
    ensure_qemu()?;
    stage_times.push(("qemu".into(), t.elapsed()));
    let t = Instant::now();
    let bins = build_guest_binaries()?;
    let rust_obj = crate::driver::rust_object()?;
    let mut selftests = crate::selftests::build(&cache())?;
    if args.bench.is_some() {
        // bpftrace for the guest, with its libraries, from this machine's package.
        if which_path("bpftrace").is_none() {
            apt_install("bpftrace", "about 20 s")?;
        }
        selftests.extend(host_program_with_libs("bpftrace")?);
    }
    if let Some(b) = &args.baseline {
        selftests.push(("huge-fault-baseline".into(), b.clone()));
    }
    let out_dir = root().join("target/lab-out");
    std::fs::create_dir_all(&out_dir)?;
    stage_times.push(("build".into(), t.elapsed()));

    let mut columns: Vec<(String, Option<String>)> = Vec::new(); // (kernel label, pending reason)
    let mut all: Vec<matrix::Row> = Vec::new();
    let mut boot_failures: Vec<String> = Vec::new();
    for spec in &specs {
        if let Some(why) = spec.pending {
            columns.push((spec.name.to_string(), Some(why.to_string())));
            continue;
        }
        let t = Instant::now();
        let kernel = fetch_kernel(spec).with_context(|| format!("kernel {}", spec.name))?;
        let mut modules = guest_modules(&kernel.root)
            .with_context(|| format!("DAX and vfio modules of kernel {}", spec.name))?;
        // The lab's GPU-like driver, built against this kernel's headers, loaded last.
        modules.push(
            crate::driver::build(spec.suite, &kernel.package, spec.driver_builder, &rust_obj)
                .with_context(|| format!("lab driver for kernel {}", spec.name))?,
        );
        let initramfs = out_dir.join(format!("initramfs-{}.cpio", spec.name));
        build_initramfs(&bins, &modules, &selftests, &initramfs)?;
        stage_times.push((format!("fetch {}", spec.name), t.elapsed()));
        progress(&format!("lab: booting {} ({})", spec.name, kernel.package));
        let log = out_dir.join(format!("serial-{}.log", spec.name));
        let mut b = boot(&kernel, &initramfs, args, &log)?;
        if let Some(f) = b
            .failure
            .as_deref()
            .filter(|f| f.starts_with("kernel panic"))
            && (b.release.is_none() || stale_int3(&log))
        {
            // Either the kernel died before the lab's init ran (nothing of ours was loaded
            // yet), or on an int3 that is no longer in the kernel's text: the emulator ran
            // a stale copy of an instruction the kernel had just patched (jump labels,
            // trampolines and kprobes are patched through a temporary int3; seen on 6.12
            // and 7.2 under TCG, never twice in a row). Boot once more; the first log stays
            // beside the second, and a second panic fails.
            let when = if b.release.is_none() {
                "before the lab's init started"
            } else {
                "on an int3 no longer in the kernel text (an emulator race)"
            };
            progress(&format!(
                "lab: {} panicked {when} ({f}); booting it again, once",
                spec.name
            ));
            stage_times.push((format!("boot {} (panicked early)", spec.name), b.wall));
            std::fs::rename(&log, log.with_extension("first-boot.log"))?;
            b = boot(&kernel, &initramfs, args, &log)?;
        }
        stage_times.push((format!("boot {}", spec.name), b.wall));
        for (m, s) in &b.times {
            progress(&format!("lab:   {} {m}: {s:.1}s", spec.name));
        }
        let label = format!(
            "{} ({})",
            spec.name,
            b.release.clone().unwrap_or_else(|| kernel.package.clone())
        );
        if let Some(f) = &b.failure {
            boot_failures.push(format!("{label}: {f} (log: {})", log.display()));
        }
        if args.bench.is_some() {
            let dir = root().join("target/bench-out");
            std::fs::create_dir_all(&dir)?;
            let md = format!("### {label}\n\n{}\n", b.bench_table.join("\n"));
            println!("\n{md}");
            std::fs::write(dir.join(format!("guest-{}.md", spec.name)), md)?;
            std::fs::write(
                dir.join(format!("guest-{}.jsonl", spec.name)),
                b.bench_samples.join("\n"),
            )?;
        }
        all.extend(b.results.into_iter().map(|result| matrix::Row {
            column: label.clone(),
            result,
        }));
        columns.push((label, None));
        if !args.keep {
            // The downloads stay cached in lab-cache/; the serial logs and the matrix stay
            // for reading; the initramfs and the NVDIMM images go.
            let _ = std::fs::remove_file(&initramfs);
            for n in NVDIMMS {
                let _ = std::fs::remove_file(out_dir.join(n.0));
            }
        }
    }

    let ok = matrix::report(&columns, &all, &boot_failures, &stage_times, &out_dir)?;
    progress("lab stage times:");
    for (n, d) in &stage_times {
        progress(&format!("  {n:<14} {:>7.1}s", d.as_secs_f64()));
    }
    progress(&format!(
        "  {:<14} {:>7.1}s",
        "total",
        total.elapsed().as_secs_f64()
    ));
    if !ok {
        bail!(
            "the lab failed (see the matrix and the serial logs in {})",
            out_dir.display()
        );
    }
    Ok(())
}

/// Whether the guest died of an `Oops: int3` whose code, as the oops dumps it, holds no
/// int3 (0xcc) where it trapped: the instruction had been patched back already, and the
/// emulator ran its old copy.
fn stale_int3(log: &std::path::Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|text| stale_int3_in(&text))
}

fn stale_int3_in(text: &str) -> bool {
    let Some(oops) = text.find("Oops: int3") else {
        return false;
    };
    // The first `Code:` line after the oops marks the byte at RIP as `<xx>`; an int3 trap
    // leaves RIP just past the int3, so the trapping byte is the one before it.
    text[oops..]
        .lines()
        .find(|l| l.contains("Code:"))
        .and_then(|l| l.split_once('<'))
        .and_then(|(before, _)| before.split_whitespace().last())
        .is_some_and(|byte| byte != "cc")
}

#[cfg(test)]
mod tests {
    #[test]
    fn tells_a_stale_int3_from_a_real_one() {
        let oops = "[ 7.9] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n[ 7.9] RIP: 0010:ttwu_do_activate+0x8d/0x220\n";
        let code = |bytes: &str| format!("{oops}[ 7.9] Code: 89 e2 48 89 {bytes} 48 8b 83\n");
        assert!(super::stale_int3_in(&code("00 66 <90>")));
        assert!(!super::stale_int3_in(&code("00 cc <90>")));
        assert!(!super::stale_int3_in(
            "Kernel panic - not syncing: Fatal exception"
        ));
    }
}
