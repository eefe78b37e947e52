//! Kernel function symbols by name or pattern, C and Rust alike.
//!
//! Rust kernel functions carry v0-mangled names with a per-build crate hash
//! (`_RNvNtCs…_6kernel2mm…`) and have no BTF, so they can only be found through
//! /proc/kallsyms and probed with kprobes. A pattern with `::` matches the demangled path
//! (without crate hashes); any other pattern matches the plain symbol name. `*` matches any
//! run of characters (including `::`), `?` one character.

/// One text symbol of /proc/kallsyms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// The name kprobes attach to (mangled for Rust).
    pub name: String,
    /// The demangled path without crate hashes, for Rust symbols.
    pub demangled: Option<String>,
    /// The module, for symbols of loaded modules.
    pub module: Option<String>,
}

/// The demangled path of a Rust v0 (or legacy) symbol, without hashes.
pub fn demangle(name: &str) -> Option<String> {
    if !(name.starts_with("_R") || name.starts_with("_ZN")) {
        return None;
    }
    rustc_demangle::try_demangle(name)
        .ok()
        .map(|d| format!("{d:#}"))
}

/// `(address, name, module)` of each text symbol (`t`/`T`) of a /proc/kallsyms listing,
/// the address as listed (hex; zeros where kallsyms hides addresses from this user).
fn text_lines(text: &str) -> impl Iterator<Item = (&str, &str, Option<&str>)> {
    text.lines().filter_map(|l| {
        let mut it = l.split_whitespace();
        let (addr, kind, name) = (it.next()?, it.next()?, it.next()?);
        // `__pfx_*` are the padding in front of functions (6.2+), not functions.
        if !matches!(kind, "t" | "T") || name.starts_with("__pfx_") {
            return None;
        }
        Some((addr, name, it.next().map(|m| m.trim_matches(['[', ']']))))
    })
}

/// `(name, module)` of each text symbol (`t`/`T`) of a /proc/kallsyms listing.
pub fn text_symbols(text: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    text_lines(text).map(|(_, name, module)| (name, module))
}

/// `(address, name, module)` of each text symbol listed at an address (none where
/// kallsyms hides addresses from this user).
pub fn text_symbol_addresses(text: &str) -> impl Iterator<Item = (u64, &str, Option<&str>)> {
    text_lines(text).filter_map(|(addr, name, module)| {
        let addr = u64::from_str_radix(addr, 16).ok().filter(|a| *a != 0)?;
        Some((addr, name, module))
    })
}

/// The text symbols of a /proc/kallsyms listing, Rust names demangled.
pub fn parse_kallsyms(text: &str) -> Vec<Symbol> {
    text_symbols(text)
        .map(|(name, module)| Symbol {
            name: name.to_string(),
            demangled: demangle(name),
            module: module.map(str::to_string),
        })
        .collect()
}

/// `*` and `?` glob match.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    // Iterative matching with one backtrack point per `*`.
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The symbols a pattern names: Rust paths when it contains `::`, plain names otherwise.
pub fn resolve<'a>(symbols: &'a [Symbol], pattern: &str) -> Vec<&'a Symbol> {
    let rust = pattern.contains("::");
    let mut v: Vec<&Symbol> = symbols
        .iter()
        .filter(|s| {
            if rust {
                s.demangled.as_deref().is_some_and(|d| glob(pattern, d))
            } else {
                glob(pattern, &s.name)
            }
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v.dedup_by(|a, b| a.name == b.name);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 734 Rust text symbols of Debian's 7.2.13 cloud kernel, as /proc/kallsyms lists them.
    const FIXTURE: &str = include_str!("../tests/data/kallsyms-rust-debian-7.2.13.txt");

    #[test]
    fn every_rust_symbol_of_a_real_kernel_demangles() {
        let syms = parse_kallsyms(FIXTURE);
        assert_eq!(syms.len(), 734);
        let failed: Vec<&str> = syms
            .iter()
            .filter(|s| s.demangled.is_none())
            .map(|s| s.name.as_str())
            .collect();
        assert!(failed.is_empty(), "not demangled: {failed:?}");
        // No crate hash survives demangling (this build's core hash is `bZfwWpAStWS`).
        assert!(syms.iter().all(|s| {
            let d = s.demangled.as_ref().unwrap();
            !d.contains("bZfwWpAStWS") && !d.starts_with("_R")
        }));
    }

    #[test]
    fn known_symbols_demangle_to_their_paths() {
        assert_eq!(
            demangle("_RNvNtCsbZfwWpAStWS_4core3str16slice_error_fail").as_deref(),
            Some("core::str::slice_error_fail")
        );
        // An impl of a trait (`X`), with a back-reference (`B7_`).
        assert_eq!(
            demangle("_RNvXsW_NtNtCsbZfwWpAStWS_4core3fmt3nummNtB7_5Debug3fmt").as_deref(),
            Some("<u32 as core::fmt::Debug>::fmt")
        );
        // A generic instance (`I ... E`).
        assert_eq!(
            demangle("_RINvNtCsbZfwWpAStWS_4core9panicking13assert_failedjjEB4_").as_deref(),
            Some("core::panicking::assert_failed::<usize, usize>")
        );
        assert_eq!(demangle("vmf_insert_pfn_pmd"), None);
    }

    #[test]
    fn patterns_resolve_rust_paths_and_c_names() {
        let syms = parse_kallsyms(FIXTURE);
        let one = resolve(&syms, "core::str::slice_error_fail");
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].name,
            "_RNvNtCsbZfwWpAStWS_4core3str16slice_error_fail"
        );
        // core::str and core::wtf8 both have one; `*` also takes the _ct and _rt variants.
        assert_eq!(resolve(&syms, "*::slice_error_fail").len(), 2);
        assert_eq!(resolve(&syms, "*::slice_error_fail*").len(), 4);
        let fmt = resolve(&syms, "<u32 as core::fmt::*>::fmt");
        assert!(fmt.len() >= 5, "{}", fmt.len());
        assert!(resolve(&syms, "kernel::nothing::*").is_empty());
        // A C pattern matches plain names, with module symbols.
        let c = parse_kallsyms(
            "0 t dev_dax_huge_fault\t[device_dax]\n0 T vmf_insert_pfn_pmd\n0 D data_sym\n\
             0 t __pfx_dev_dax_huge_fault\t[device_dax]\n",
        );
        let r = resolve(&c, "*_huge_fault");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].module.as_deref(), Some("device_dax"));
        assert_eq!(resolve(&c, "vmf_insert_pfn_p?d").len(), 1);
    }

    #[test]
    fn glob_handles_stars_and_backtracking() {
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(glob("*::insert_range", "kernel::mm::virt::insert_range"));
        assert!(!glob("*::insert_range", "kernel::mm::insert_range_x"));
        assert!(glob("*", ""));
        assert!(!glob("?", ""));
        assert!(glob("a*", "a"));
    }
}
