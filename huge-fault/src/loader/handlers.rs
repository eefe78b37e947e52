//! Which `huge_fault` handler served a fault: the handlers the tool attached to get an index
//! in the programs' `HANDLERS` map (by address), the fault's mapping carries the index of
//! the one asked last, and the report names it (`dev_dax_huge_fault [device_dax]`).

use aya::{Ebpf, maps::HashMap};

use crate::symbols::text_symbol_addresses;

/// Most handlers given an index (the mapping's byte; 0 is none).
const MAX: usize = 255;

/// The map entries for `names`, in order: every address of each name (a static function
/// may have namesakes in several modules: all of them get its index, as the kprobe may sit
/// on any), and 4 bytes past it (a kprobe on a function's start sits after its `endbr64`
/// where the kernel has IBT, and the helper reports the probe's address).
pub fn entries(kallsyms: &str, names: &[&str]) -> Vec<(u64, u8)> {
    let mut out = Vec::new();
    for (addr, name, _) in text_symbol_addresses(kallsyms) {
        if let Some(i) = names.iter().take(MAX).position(|n| *n == name) {
            out.push((addr, i as u8 + 1));
            out.push((addr + 4, i as u8 + 1));
        }
    }
    out
}

/// Fills the programs' `HANDLERS` map for the handlers attached, `names` in attach order,
/// at their addresses in `kallsyms` (the /proc/kallsyms text the loader read).
pub fn register(ebpf: &mut Ebpf, kallsyms: &str, names: &[&str]) -> Result<(), String> {
    let map = ebpf
        .map_mut("HANDLERS")
        .ok_or("the object has no HANDLERS map")?;
    let mut map = HashMap::<_, u64, u8>::try_from(map).map_err(|e| e.to_string())?;
    for (addr, i) in entries(kallsyms, names) {
        map.insert(addr, i, 0).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The handler table: entry `i` names the handler of index `i + 1`, as `symbol [module]`
/// (a built-in one without the module).
pub fn table_from(kallsyms: &str, entries: &[(u64, u8)]) -> Vec<String> {
    let n = entries
        .iter()
        .map(|(_, i)| usize::from(*i))
        .max()
        .unwrap_or(0);
    let mut out = vec![String::new(); n];
    for (addr, name, module) in text_symbol_addresses(kallsyms) {
        if let Some((_, i)) = entries.iter().find(|(a, _)| *a == addr) {
            let slot = &mut out[usize::from(*i) - 1];
            if slot.is_empty() {
                *slot = match module {
                    Some(m) => format!("{name} [{m}]"),
                    None => name.to_string(),
                };
            }
        }
    }
    for (i, s) in out.iter_mut().enumerate() {
        if s.is_empty() {
            *s = format!("handler #{}", i + 1);
        }
    }
    out
}

/// The handler table of a loaded session (empty when no handler was attached), named
/// from `kallsyms`.
pub fn table(ebpf: &Ebpf, kallsyms: &str) -> Vec<String> {
    let Some(map) = ebpf.map("HANDLERS") else {
        return Vec::new();
    };
    let Ok(map) = HashMap::<_, u64, u8>::try_from(map) else {
        return Vec::new();
    };
    let entries: Vec<(u64, u8)> = map.iter().filter_map(Result::ok).collect();
    if entries.is_empty() {
        return Vec::new();
    }
    table_from(kallsyms, &entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "\
ffffffff81400000 T ext4_dax_huge_fault
ffffffff81400100 t __pfx_dev_dax_huge_fault
ffffffffc0a01000 t dev_dax_huge_fault\t[device_dax]
ffffffffc0b02000 t hfgpu_huge_fault\t[hfgpu]
ffffffff82a1c0e8 D hfgpu_huge_fault
0000000000000000 t hidden_huge_fault
";

    #[test]
    fn each_handler_gets_its_index_at_its_address_and_past_endbr64() {
        let e = entries(
            KALLSYMS,
            &["dev_dax_huge_fault", "hfgpu_huge_fault", "absent"],
        );
        assert_eq!(
            e,
            [
                (0xffffffffc0a01000, 1),
                (0xffffffffc0a01004, 1),
                (0xffffffffc0b02000, 2),
                (0xffffffffc0b02004, 2),
            ],
            "data symbols, hidden addresses and absent names get no entry"
        );
        assert!(entries(KALLSYMS, &[]).is_empty());
    }

    #[test]
    fn the_table_names_each_index_with_its_module() {
        let e = entries(KALLSYMS, &["ext4_dax_huge_fault", "dev_dax_huge_fault"]);
        assert_eq!(
            table_from(KALLSYMS, &e),
            ["ext4_dax_huge_fault", "dev_dax_huge_fault [device_dax]"]
        );
        // An index whose address no longer resolves (the module went away) is still named.
        assert_eq!(table_from("", &[(0x1000, 2)]), ["handler #1", "handler #2"]);
        assert!(table_from(KALLSYMS, &[]).is_empty());
    }
}
