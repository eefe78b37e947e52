//! What every program reads first: the filter, the offsets, the counters, and kernel
//! memory (VMAs) through probe reads.

use crate::maps::*;
use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_probe_read_kernel, generated,
};
use huge_fault_common::{KernelOffsets, config::VMA_SPAN_MAX};

#[inline(always)]
pub(crate) fn offsets() -> KernelOffsets {
    // SAFETY: a read of our own .rodata global; volatile so the value the loader wrote is
    // not constant-folded away at compile time.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

#[inline(always)]
pub(crate) fn bump(idx: u32) {
    let _ = bump_get(idx);
}

/// [`bump`], returning this CPU's count after it (0 if the slot is missing).
#[inline(always)]
pub(crate) fn bump_get(idx: u32) -> u64 {
    match COUNTERS.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot; programs do not migrate CPUs while running.
        Some(slot) => unsafe {
            *slot += 1;
            *slot
        },
        None => 0,
    }
}

/// Whether this thread group is traced. Returns the (tgid, tid) pair.
#[inline(always)]
pub(crate) fn wanted() -> Option<(u32, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    // Each member loaded where it is used (`off!`), not the whole struct per program run.
    let self_tgid = off!(FILTER.self_tgid);
    if self_tgid != 0 && tgid == self_tgid {
        return None;
    }
    let target = off!(FILTER.target_tgid);
    if target != 0 && tgid != target {
        return None;
    }
    // SAFETY: a lookup in our own map; the value is not kept.
    if off!(FILTER.follow) != 0 && unsafe { TRACED.get(tgid) }.is_none() {
        return None;
    }
    let cgroup = off!(FILTER.cgroup_id);
    // SAFETY: helper without preconditions.
    if cgroup != 0 && unsafe { bpf_get_current_cgroup_id() } != cgroup {
        return None;
    }
    if off!(FILTER.comm[0]) != 0 {
        let filter = off!(FILTER.comm);
        // Compared as two words: the BPF target has no memcmp.
        let c = bpf_get_current_comm().unwrap_or([0; 16]);
        let word = |b: &[u8; 16], i: usize| {
            u64::from_ne_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        if word(&c, 0) != word(&filter, 0) || word(&c, 8) != word(&filter, 8) {
            return None;
        }
    }
    Some((tgid, tid))
}

#[inline(always)]
pub(crate) fn read_u64(base: u64, off: u32) -> u64 {
    // SAFETY: bpf_probe_read_kernel tolerates any address; a bad one yields an error.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const u64) }.unwrap_or(0)
}

#[inline(always)]
pub(crate) fn read_u32(base: u64, off: u32) -> u32 {
    // SAFETY: as read_u64.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const u32) }.unwrap_or(0)
}

/// How a program reads kernel memory at `base + off`.
///
/// [`Probe`]: `bpf_probe_read_kernel`, which takes any address (kprobes, and pointers kept
/// as numbers). [`Typed`]: a plain load, for a pointer the verifier knows by its BTF type
/// (an fentry/fexit argument, `bpf_get_current_task_btf`, a `bpf_find_vma` callback's VMA,
/// and what is loaded through them): no helper call, the JIT turns a faulting load into 0.
/// The verifier checks each such load against the kernel's BTF, so `off` must be one it
/// knows as a constant: read from the frozen `.rodata` right where it is used ([`off!`]).
pub(crate) trait Kmem {
    fn u64_at(base: u64, off: u32) -> u64;
    fn u32_at(base: u64, off: u32) -> u32;
    /// Reads the VMA at `vma` into `out`.
    fn read_vma(vma: u64, out: &mut VmaInfo);
    /// The VMA's `vm_mm`.
    fn vma_mm(vma: u64, read: &VmaInfo) -> u64;
}

pub(crate) struct Probe;
pub(crate) struct Typed;

impl Kmem for Probe {
    #[inline(always)]
    fn u64_at(base: u64, off: u32) -> u64 {
        read_u64(base, off)
    }
    #[inline(always)]
    fn u32_at(base: u64, off: u32) -> u32 {
        read_u32(base, off)
    }
    /// The VMA's first `vma_span` bytes in one helper call (one per member costs six), then
    /// its file's members one by one.
    #[inline(always)]
    fn read_vma(vma: u64, out: &mut VmaInfo) {
        let span = off!(OFFSETS.vma_span);
        if span == 0 {
            read_vma_members::<Self>(vma, out);
            return;
        }
        if off!(OFFSETS.valid) == 0 || vma == 0 {
            return;
        }
        let Some(raw) = VMA_RAW.get_ptr_mut(0) else {
            return;
        };
        // SAFETY: `raw` is this CPU's scratch, `span` at most its size; the helper takes
        // any source address.
        let rc = unsafe {
            generated::bpf_probe_read_kernel(
                raw.cast(),
                span.min(VMA_SPAN_MAX),
                vma as *const core::ffi::c_void,
            )
        };
        if rc != 0 {
            return;
        }
        const LAST: usize = VMA_SPAN_MAX as usize / 8 - 1;
        // SAFETY: as above; the index is masked into the array.
        let word = |off: u32| unsafe { (*raw)[(off as usize / 8) & LAST] };
        out.start = word(off!(OFFSETS.vma_start));
        out.end = word(off!(OFFSETS.vma_end));
        out.flags = word(off!(OFFSETS.vma_flags));
        out.pgoff = word(off!(OFFSETS.vma_pgoff));
        out.mm = word(off!(OFFSETS.vma_mm));
        let file = word(off!(OFFSETS.vma_file));
        read_file::<Self>(file, out);
        out.found = 1;
    }
    #[inline(always)]
    fn vma_mm(vma: u64, read: &VmaInfo) -> u64 {
        if read.mm != 0 {
            read.mm
        } else {
            read_u64(vma, off!(THP.vma_mm))
        }
    }
}

impl Kmem for Typed {
    #[inline(always)]
    fn u64_at(base: u64, off: u32) -> u64 {
        // SAFETY: `base` is a BTF-typed kernel pointer (see the trait) and `off` one of its
        // type's members by the kernel's BTF; the verifier rejects any other access, and a
        // load that faults (a freed object, a null pointer) reads 0.
        unsafe { core::ptr::read_volatile((base as *const u8).wrapping_add(off as usize).cast()) }
    }
    #[inline(always)]
    fn u32_at(base: u64, off: u32) -> u32 {
        // SAFETY: as u64_at.
        unsafe { core::ptr::read_volatile((base as *const u8).wrapping_add(off as usize).cast()) }
    }
    #[inline(always)]
    fn read_vma(vma: u64, out: &mut VmaInfo) {
        read_vma_members::<Self>(vma, out);
    }
    #[inline(always)]
    fn vma_mm(vma: u64, _read: &VmaInfo) -> u64 {
        Self::u64_at(vma, off!(THP.vma_mm))
    }
}

/// One member of a global (`off!(OFFSETS.vma_start)`, `off!(THP.orders_addr[0])`), loaded
/// where it is used. From `.rodata`, the verifier knows its value (a copy of the whole
/// struct goes through the stack, where 4-byte members lose it on older kernels, and costs
/// a load and a store per member).
macro_rules! off {
    ($($place:tt)+) => {
        // SAFETY: a read of our own global, volatile so that the value the loader wrote
        // is not constant-folded away at compile time; the tool writes the mutable ones.
        unsafe {
            core::ptr::read_volatile(&raw const $($place)+)
        }
    };
}
pub(crate) use off;

/// Reads the VMA at `vma` into `out` member by member, by `R`.
#[inline(always)]
fn read_vma_members<R: Kmem>(vma: u64, out: &mut VmaInfo) {
    if off!(OFFSETS.valid) == 0 || vma == 0 {
        return;
    }
    out.start = R::u64_at(vma, off!(OFFSETS.vma_start));
    out.end = R::u64_at(vma, off!(OFFSETS.vma_end));
    out.flags = R::u64_at(vma, off!(OFFSETS.vma_flags));
    out.pgoff = R::u64_at(vma, off!(OFFSETS.vma_pgoff));
    let file = R::u64_at(vma, off!(OFFSETS.vma_file));
    read_file::<R>(file, out);
    out.found = 1;
}

/// The inode number and device of the VMA's file, when it has one.
#[inline(always)]
fn read_file<R: Kmem>(file: u64, out: &mut VmaInfo) {
    if file != 0 {
        let inode = R::u64_at(file, off!(OFFSETS.file_inode));
        if inode != 0 {
            out.inode = R::u64_at(inode, off!(OFFSETS.inode_ino));
            let sb = R::u64_at(inode, off!(OFFSETS.inode_sb));
            if sb != 0 {
                out.dev = R::u32_at(sb, off!(OFFSETS.sb_dev));
            }
        }
    }
}

/// `vmf->address` of a `struct vm_fault *`, when its offset is known.
#[inline(always)]
pub(crate) fn vmf_address(vmf: u64) -> Option<u64> {
    let off = off!(OFFSETS.vmf_address);
    (off != 0 && vmf != 0).then(|| read_u64(vmf, off))
}
