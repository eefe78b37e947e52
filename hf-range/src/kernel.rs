//! The C ABI the lab driver (`hfgpu`) links against: the driver supplies the page-table
//! walk and the kernel's insert calls, this crate supplies the plan.
//!
//! Built as a static library for `x86_64-unknown-none` with the kernel's code model (see
//! `cargo xtask lab`); the crate's object goes into the module as is.

use core::ffi::c_void;

use crate::{Entry, Level, Slot, Summary, Tables};

unsafe extern "C" {
    /// What holds the slot of `level` for `addr` in the faulting process: a [`Slot`] value.
    fn hf_range_slot(ctx: *mut c_void, addr: u64, level: u32) -> u32;
    /// Inserts one entry with the kernel's `vmf_insert_pfn{,_pmd,_pud}`: 0 on success, the
    /// `vm_fault_t` error bits otherwise.
    fn hf_range_insert_entry(ctx: *mut c_void, addr: u64, pfn: u64, level: u32) -> u32;
    /// Never returns (`BUG()`): the plan has no panicking path, this is the backstop.
    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    fn hf_range_bug() -> !;
}

/// The faulting process's page table, through the driver's callbacks.
pub struct KernelTables(*mut c_void);

impl Tables for KernelTables {
    fn slot(&mut self, addr: u64, level: Level) -> Slot {
        // SAFETY: the driver passes its own context through unchanged.
        Slot::from_u32(unsafe { hf_range_slot(self.0, addr, level as u32) })
    }
    fn insert(&mut self, e: Entry) -> Result<(), u32> {
        // SAFETY: as above.
        match unsafe { hf_range_insert_entry(self.0, e.addr, e.pfn, e.level as u32) } {
            0 => Ok(()),
            err => Err(err),
        }
    }
}

/// The range insert as the kernel runs it: `hf_range::kernel::insert_range`, the function
/// huge-fault probes by its demangled path. Kernel kprobe events only attach to functions
/// the function tracer knows, so its first instruction is a `call __fentry__` listed in
/// `__mcount_loc` (the kernel turns it into a NOP at module load), as the kernel's C
/// functions have; then it jumps to the implementation. Returns the error that stopped
/// the insert, or 0.
///
/// # Safety
/// `out` must be valid for a write; `ctx` is the driver's, passed back to its callbacks.
#[unsafe(naked)]
pub unsafe extern "C" fn insert_range(
    ctx: *mut c_void,
    addr: u64,
    pfn: u64,
    nr_pages: u64,
    out: *mut Summary,
) -> u32 {
    core::arch::naked_asm!(
        "1: call __fentry__",
        ".pushsection __mcount_loc, \"a\"",
        ".balign 8",
        ".quad 1b",
        ".popsection",
        "jmp {inner}",
        inner = sym insert_range_impl,
    )
}

extern "C" fn insert_range_impl(
    ctx: *mut c_void,
    addr: u64,
    pfn: u64,
    nr_pages: u64,
    out: *mut Summary,
) -> u32 {
    let s = crate::insert_range(&mut KernelTables(ctx), addr, pfn, nr_pages);
    // SAFETY: the caller passes a valid summary.
    unsafe { out.write(s) };
    s.error
}

/// `u32 hf_range_insert(void *ctx, u64 addr, u64 pfn, u64 nr_pages, struct hf_range_summary *out)`:
/// maps the range, fills `out` and returns the error that stopped it, or 0.
///
/// # Safety
/// `out` is NULL or valid for a write; `ctx` is the driver's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hf_range_insert(
    ctx: *mut c_void,
    addr: u64,
    pfn: u64,
    nr_pages: u64,
    out: *mut Summary,
) -> u32 {
    let mut s = Summary::default();
    let out = if out.is_null() {
        &mut s as *mut Summary
    } else {
        out
    };
    // SAFETY: `out` is valid; see above.
    unsafe { insert_range(ctx, addr, pfn, nr_pages, out) }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: the driver's BUG() wrapper.
    unsafe { hf_range_bug() }
}
