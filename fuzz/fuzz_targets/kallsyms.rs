//! A hostile `--kallsyms FILE` and pattern: the first line is the pattern, the rest the
//! listing (Rust symbols demangled, globs matched).
#![no_main]

use huge_fault::symbols::{parse_kallsyms, resolve};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, listing) = text.split_once('\n').unwrap_or((&text, ""));
    let syms = parse_kallsyms(listing);
    let _ = resolve(&syms, pattern);
});
