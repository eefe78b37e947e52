//! A /proc/PID/maps the tool did not expect (a new kernel's format, odd paths).
#![no_main]

use huge_fault::procmaps::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse(&String::from_utf8_lossy(data));
});
