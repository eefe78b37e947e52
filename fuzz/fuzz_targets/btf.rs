//! A hostile `--btf FILE`: parsed, and asked for what huge-fault reads from it.
#![no_main]

use huge_fault::btf::Btf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data) else { return };
    let _ = btf.member_offset("vm_fault", "address");
    let _ = btf.member_offset("vm_area_struct", "vm_flags");
    let _ = btf.member_offset("folio", "_flags_1");
    let _ = btf.enum_value("page_entry_size", "PE_SIZE_PMD");
    let _ = btf.func_params("handle_mm_fault");
    for id in 0..64 {
        if let Some(t) = btf.type_by_id(id) {
            let _ = btf.members(t);
            let _ = btf.skip_modifiers(id);
        }
    }
});
