//! `cargo xtask build`: the release binary, its shell completions and its man page.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{cargo, progress, root, status};

/// What `huge-fault --generate` writes, and where under `target/release/`.
const GENERATED: [(&str, &str); 4] = [
    ("bash", "completions/huge-fault.bash"),
    ("zsh", "completions/_huge-fault"),
    ("fish", "completions/huge-fault.fish"),
    ("man", "man/huge-fault.1"),
];

pub fn build() -> Result<()> {
    progress("building huge-fault (release)");
    status(cargo().args(["build", "--release", "--package", "huge-fault"]))?;
    let out = root().join("target/release");
    let bin = out.join("huge-fault");
    for (what, path) in GENERATED {
        let o = Command::new(&bin)
            .args(["--generate", what])
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        if !o.status.success() || o.stdout.is_empty() {
            bail!("huge-fault --generate {what} failed ({})", o.status);
        }
        let dest = out.join(path);
        std::fs::create_dir_all(dest.parent().expect("a directory"))?;
        std::fs::write(&dest, &o.stdout).with_context(|| format!("writing {}", dest.display()))?;
    }
    progress(&format!(
        "completions in {0}/completions, man page in {0}/man/huge-fault.1",
        out.display()
    ));
    Ok(())
}
