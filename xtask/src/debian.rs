//! Debian's archive, with the lab's own apt state under `lab-cache/` (never the system's),
//! and installs of host tools on this machine.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{progress, root, status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    Bookworm,
    Sid,
}

/// The lab's download cache.
pub(crate) fn cache() -> PathBuf {
    root().join("lab-cache")
}

pub(crate) fn apt_opts(suite: Suite) -> Vec<String> {
    let dir = cache().join(match suite {
        Suite::Bookworm => "apt-bookworm",
        Suite::Sid => "apt-sid",
    });
    vec![
        format!(
            "-oDir::Etc::SourceList={}",
            dir.join("sources.list").display()
        ),
        "-oDir::Etc::SourceParts=/dev/null".into(),
        format!("-oDir::State::Lists={}", dir.join("lists").display()),
        format!("-oDir::Cache={}", dir.join("cache").display()),
        "-oDebug::NoLocking=1".into(),
        "-oAPT::Sandbox::User=root".into(),
        "-qq".into(),
    ]
}

/// Package lists for one suite, refreshed when older than a day.
pub(crate) fn apt_update(suite: Suite) -> Result<()> {
    let dir = cache().join(match suite {
        Suite::Bookworm => "apt-bookworm",
        Suite::Sid => "apt-sid",
    });
    std::fs::create_dir_all(dir.join("lists/partial"))?;
    std::fs::create_dir_all(dir.join("cache/archives/partial"))?;
    let sources = match suite {
        Suite::Bookworm => {
            "deb http://deb.debian.org/debian bookworm main\n\
             deb http://deb.debian.org/debian-security bookworm-security main\n"
        }
        Suite::Sid => "deb http://deb.debian.org/debian sid main\n",
    };
    std::fs::write(dir.join("sources.list"), sources)?;
    let stamp = dir.join("updated");
    let fresh = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(86400));
    if !fresh {
        progress(&format!("lab: fetching Debian {suite:?} package lists"));
        status(Command::new("apt-get").args(apt_opts(suite)).arg("update"))
            .context("apt-get update (lab package lists)")?;
        std::fs::write(&stamp, "")?;
    }
    Ok(())
}

pub(crate) fn download_unpack(suite: Suite, package: &str, dir: &Path, into: &Path) -> Result<()> {
    let t = Instant::now();
    progress(&format!("lab: downloading {package}"));
    std::fs::create_dir_all(dir)?;
    status(
        Command::new("apt-get")
            .args(apt_opts(suite))
            .args(["download", package])
            .current_dir(dir),
    )
    .with_context(|| format!("apt-get download {package}"))?;
    let deb = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("downloaded .deb not found")?;
    status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(into)).context("dpkg-deb -x")?;
    std::fs::remove_file(&deb)?;
    progress(&format!("lab: {package} unpacked in {:.0?}", t.elapsed()));
    Ok(())
}

/// Installs a Debian package on this machine, once (refreshing the system's package lists
/// if the first try fails), with progress lines.
pub(crate) fn apt_install(package: &str, takes: &str) -> Result<()> {
    let t = Instant::now();
    progress(&format!("lab: installing {package} (once; {takes})"));
    let install = || {
        status(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends", package])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if install().is_err() {
        status(Command::new("apt-get").args(["update", "-qq"]))?;
        install()
            .with_context(|| format!("installing {package} (needs root and Debian's archive)"))?;
    }
    progress(&format!("lab: {package} installed in {:.0?}", t.elapsed()));
    Ok(())
}
