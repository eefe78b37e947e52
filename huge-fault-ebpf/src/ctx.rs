//! What every program reads first: the filter, the offsets, the counters, and kernel
//! memory (VMAs) through probe reads.

use crate::maps::*;
use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_probe_read_kernel,
};
use huge_fault_common::KernelOffsets;

#[inline(always)]
pub(crate) fn offsets() -> KernelOffsets {
    // SAFETY: a read of our own .rodata global; volatile so the value the loader wrote is
    // not constant-folded away at compile time.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

#[inline(always)]
pub(crate) fn bump(idx: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot; programs do not migrate CPUs while running.
        unsafe { *slot += 1 };
    }
}

/// Whether this thread group is traced. Returns the (tgid, tid) pair.
#[inline(always)]
pub(crate) fn wanted() -> Option<(u32, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    // SAFETY: see offsets().
    let filter = unsafe { core::ptr::read_volatile(&FILTER) };
    if filter.self_tgid != 0 && tgid == filter.self_tgid {
        return None;
    }
    if filter.target_tgid != 0 && tgid != filter.target_tgid {
        return None;
    }
    // SAFETY: a lookup in our own map; the value is not kept.
    if filter.follow != 0 && unsafe { TRACED.get(tgid) }.is_none() {
        return None;
    }
    // SAFETY: helper without preconditions.
    if filter.cgroup_id != 0 && unsafe { bpf_get_current_cgroup_id() } != filter.cgroup_id {
        return None;
    }
    if filter.comm[0] != 0 {
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
        if word(&c, 0) != word(&filter.comm, 0) || word(&c, 8) != word(&filter.comm, 8) {
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

#[inline(always)]
pub(crate) fn read_vma(vma: u64, out: &mut VmaInfo) {
    let o = offsets();
    if o.valid == 0 || vma == 0 {
        return;
    }
    out.start = read_u64(vma, o.vma_start);
    out.end = read_u64(vma, o.vma_end);
    out.flags = read_u64(vma, o.vma_flags);
    out.pgoff = read_u64(vma, o.vma_pgoff);
    let file = read_u64(vma, o.vma_file);
    if file != 0 {
        let inode = read_u64(file, o.file_inode);
        if inode != 0 {
            out.inode = read_u64(inode, o.inode_ino);
            let sb = read_u64(inode, o.inode_sb);
            if sb != 0 {
                out.dev = read_u32(sb, o.sb_dev);
            }
        }
    }
    out.found = 1;
}

/// `vmf->address` of a `struct vm_fault *`, when its offset is known.
#[inline(always)]
pub(crate) fn vmf_address(vmf: u64) -> Option<u64> {
    let off = offsets().vmf_address;
    (off != 0 && vmf != 0).then(|| read_u64(vmf, off))
}
