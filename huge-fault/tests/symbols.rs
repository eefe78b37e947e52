//! `huge-fault symbols` on a real kernel's Rust symbols, from a kallsyms listing: no
//! privileges needed.

use std::process::Command;

const HF: &str = env!("CARGO_BIN_EXE_huge-fault");

fn hf_ok(args: &[&str]) -> std::process::Output {
    let out = Command::new(HF)
        .args(args)
        .output()
        .expect("huge-fault runs");
    assert!(
        out.status.success(),
        "huge-fault {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn symbols_resolves_rust_paths_from_a_kallsyms_listing() {
    // No privileges needed: a real kernel's Rust symbols, from a file.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/kallsyms-rust-debian-7.2.13.txt"
    );
    let out = hf_ok(&[
        "symbols",
        "core::str::slice_error_fail",
        "--kallsyms",
        fixture,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "_RNvNtCsbZfwWpAStWS_4core3str16slice_error_fail\tcore::str::slice_error_fail\t\n"
    );
    let out = Command::new(HF)
        .args(["symbols", "kernel::nothing::*", "--kallsyms", fixture])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no kernel function matches"));
}
