//! The fuzz stage: every target of `fuzz/` (the recording reader, the record and class
//! decoders, the BTF, kallsyms and /proc/PID/maps parsers, the threshold parser) built
//! with cargo-fuzz and the address sanitizer, then run for a bounded time each from the
//! seeds in `fuzz/seeds/`. A crash, a leak, an input that runs over 10 s or an allocation
//! over the limits fails the stage, with the input saved under `target/fuzz/artifacts/`.

use std::{process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};

use crate::{output, pinned, progress, root, status};

/// The targets, as `fuzz/Cargo.toml` names them, with the inputs each runs: about 45 s on
/// two cores each (the targets differ 100-fold in speed). With a fixed seed and a fresh
/// corpus from the seeds, a run is the same wherever it runs: a run that passed here
/// passes in CI. `HF_FUZZ_RUNS_SCALE` multiplies the runs, `HF_FUZZ_SEED` changes the seed
/// (a longer hunt), `HF_FUZZ_SECONDS` caps each target's time.
const TARGETS: [(&str, u64); 6] = [
    ("recording", 30_000),
    ("records", 30_000),
    ("btf", 500_000),
    ("kallsyms", 300_000),
    ("procmaps", 1_300_000),
    ("threshold", 2_500_000),
];

/// The most seconds a target may take, whatever its runs.
const DEFAULT_SECONDS: u64 = 120;

/// Installs the pinned cargo-fuzz when it is missing or another version.
fn ensure_cargo_fuzz() -> Result<()> {
    let want = pinned("cargo-fuzz")?;
    let have = output(Command::new("cargo-fuzz").arg("--version"));
    if have
        .as_deref()
        .is_some_and(|v| v.split_whitespace().any(|w| w == want))
    {
        return Ok(());
    }
    let t = Instant::now();
    progress(&format!("installing cargo-fuzz {want} (once; about 1 min)"));
    status(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--version",
        &want,
        "--locked",
        "--quiet",
    ]))
    .context("installing cargo-fuzz")?;
    progress(&format!(
        "cargo-fuzz {want} installed in {:.0?}",
        t.elapsed()
    ));
    Ok(())
}

/// `cargo fuzz` with the pinned nightly, run from the workspace root, building into
/// `target/fuzz/build` (the tool's eBPF object is not needed: `AYA_BUILD_SKIP`).
fn cargo_fuzz(toolchain: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root())
        .args(["run", toolchain, "cargo", "fuzz"])
        .env("AYA_BUILD_SKIP", "1")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO");
    cmd
}

/// The end-of-run figures libFuzzer prints: executions, coverage, features, corpus size.
fn summary(log: &str) -> String {
    let done = log
        .lines()
        .rev()
        .find(|l| l.contains(" DONE ") || l.contains("DONE   cov"))
        .unwrap_or("");
    let stat = |key: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{key}:")))
            .map(str::trim)
            .unwrap_or("?")
            .to_string()
    };
    let field = |name: &str| {
        done.split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "{} executions, cov {}, ft {}, corpus {} inputs, peak RSS {} MB",
        stat("number_of_executed_units"),
        field("cov:"),
        field("ft:"),
        field("corp:").split('/').next().unwrap_or("?"),
        stat("peak_rss_mb"),
    )
}

pub fn fuzz() -> Result<()> {
    let toolchain = pinned("ebpf-toolchain")?;
    ensure_cargo_fuzz()?;
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<u64>().ok());
    let seconds = env("HF_FUZZ_SECONDS").unwrap_or(DEFAULT_SECONDS);
    let scale = env("HF_FUZZ_RUNS_SCALE").unwrap_or(1);
    let seed = env("HF_FUZZ_SEED").unwrap_or(1);
    let out = root().join("target/fuzz");
    let t = Instant::now();
    progress("fuzz: building the targets with the address sanitizer");
    status(cargo_fuzz(&toolchain).args(["build", "--target-dir", "target/fuzz/build"]))?;
    progress(&format!("fuzz: built in {:.0?}", t.elapsed()));
    let mut failed = Vec::new();
    for (target, runs) in TARGETS {
        let corpus = out.join("corpus").join(target);
        let artifacts = out.join("artifacts").join(target);
        // A fresh corpus each time: the run depends on the seeds and the seed alone.
        let _ = std::fs::remove_dir_all(&corpus);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        let seeds = root().join("fuzz/seeds").join(target);
        let o = cargo_fuzz(&toolchain)
            .args(["run", "--target-dir", "target/fuzz/build", target])
            .arg(&corpus)
            .arg(&seeds)
            .args([
                "--",
                &format!("-runs={}", runs * scale),
                &format!("-seed={seed}"),
                &format!("-max_total_time={seconds}"),
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-malloc_limit_mb=512",
                "-print_final_stats=1",
            ])
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .output()
            .with_context(|| format!("running the {target} fuzzer"))?;
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        std::fs::write(out.join(format!("{target}.log")), &log)?;
        if o.status.success() {
            progress(&format!("fuzz: {target}: seed {seed}, {}", summary(&log)));
        } else {
            let why = log
                .lines()
                .find(|l| l.contains("ERROR: ") || l.contains("panicked at"))
                .unwrap_or("(see the log)")
                .trim()
                .to_string();
            progress(&format!(
                "fuzz: {target} FAILED: {why}; input under {}, log {}",
                artifacts.display(),
                out.join(format!("{target}.log")).display()
            ));
            failed.push(target);
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_libfuzzers_final_figures() {
        let log = "#524288\tpulse  cov: 10 ft: 20 corp: 5/1Kb\n\
                   #1048576\tDONE   cov: 812 ft: 2301 corp: 143/22Kb lim: 4096 exec/s: 17476 rss: 61Mb\n\
                   Done 1048576 runs in 60 second(s)\n\
                   stat::number_of_executed_units: 1048576\n\
                   stat::peak_rss_mb:              61\n";
        assert_eq!(
            super::summary(log),
            "1048576 executions, cov 812, ft 2301, corpus 143 inputs, peak RSS 61 MB"
        );
    }
}
