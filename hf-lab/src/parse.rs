//! Small parsers of what the guest reads: kernel release strings, /proc/vmstat, sizes.

use std::collections::BTreeMap;

/// /proc/vmstat as a map.
pub fn parse_vmstat(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// (major, minor) of a release string like `6.1.0-56-amd64` or `7.2.13+deb14-amd64`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// `16M`-style sizes, as the workloads take them.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_releases() {
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("1050632K"), Some(1050632 << 10));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        assert_eq!(kernel_version("6.1.0-57-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("7.2.13+deb14-amd64"), Some((7, 2)));
        let vm = parse_vmstat("nr_free_pages 10\nthp_fault_alloc 3\nbad\n");
        assert_eq!(vm.get("thp_fault_alloc"), Some(&3));
        assert_eq!(vm.len(), 2);
    }
}
