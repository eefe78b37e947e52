//! The kernel's own mm selftests for the lab's CI example: `map_hugetlb` and
//! `madv_populate` from `tools/testing/selftests/vm` of Debian's linux-source-6.1, built
//! statically with this machine's gcc and cached under lab-cache/mm-selftests/.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result};

use crate::{
    debian::{Suite, apt_opts, apt_update},
    progress, status,
};

/// The tests the guest runs under `huge-fault run`.
pub const TESTS: &[&str] = &["map_hugetlb", "madv_populate"];

/// Builds the tests once; returns (name in the guest's /bin, path here).
pub fn build(cache: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = cache.join("mm-selftests");
    let built: Vec<(String, PathBuf)> =
        TESTS.iter().map(|t| (t.to_string(), dir.join(t))).collect();
    if built.iter().all(|(_, p)| p.is_file()) {
        return Ok(built);
    }
    let t = Instant::now();
    progress("lab: fetching linux-source-6.1 for the mm selftests (once; about 30 s)");
    apt_update(Suite::Bookworm)?;
    let work = dir.join("src");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    status(
        Command::new("apt-get")
            .args(apt_opts(Suite::Bookworm))
            .args(["download", "linux-source-6.1"])
            .current_dir(&work),
    )
    .context("apt-get download linux-source-6.1")?;
    let deb = std::fs::read_dir(&work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("linux-source-6.1 .deb not found")?;
    // Only the selftests' sources come out of the 1.3 GB tree.
    let script = format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x ./usr/src/linux-source-6.1.tar.xz -O \
         | tar -xJ -C '{}' --wildcards 'linux-source-6.1/tools/testing/selftests/vm/*' \
         'linux-source-6.1/tools/testing/selftests/kselftest.h'",
        deb.display(),
        work.display()
    );
    status(Command::new("sh").args(["-c", &script])).context("unpacking the mm selftests")?;
    std::fs::remove_file(&deb)?;
    let vm = work.join("linux-source-6.1/tools/testing/selftests/vm");
    for (name, out) in &built {
        status(
            Command::new("gcc")
                .args(["-static", "-O2", "-I.."])
                .arg(format!("{name}.c"))
                .arg("vm_util.c")
                .arg("-o")
                .arg(out)
                .current_dir(&vm),
        )
        .with_context(|| format!("building the {name} selftest (needs gcc and libc6-dev)"))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    progress(&format!("lab: mm selftests built in {:.0?}", t.elapsed()));
    Ok(built)
}
