//! Which faults retry under the per-VMA lock, per kernel, from Debian's sources.

/// A kind of fault whose first call (under the per-VMA lock, `FAULT_FLAG_VMA_LOCK`) returns
/// VM_FAULT_RETRY because that lock is not enough, so that x86 calls `handle_mm_fault` again
/// under the mmap lock, without `FAULT_FLAG_TRIED` (arch/x86/mm/fault.c adds it only after a
/// major first call). Read from Debian's 6.12.117 and 7.2.13 sources; Debian's 6.1 has no
/// per-VMA lock (the lab's three kernels; 6.4 to 6.11 differ and are not listed).
#[derive(Clone, Copy, Debug)]
pub struct VmaLockRetry {
    /// The first kernel (major, minor) of the lab's where it holds.
    pub since: (u32, u32),
    pub faults: &'static str,
    /// Where the kernel returns RETRY.
    pub source: &'static str,
}

pub const VMA_LOCK_RETRIES: &[VmaLockRetry] = &[
    VmaLockRetry {
        since: (6, 12),
        faults: "every fault that reaches the PTE path of a `fault` handler without \
                 `map_pages` (DAX files, device-dax below its alignment, vfio-pci, DRM TTM \
                 and GEM shmem, the lab's driver); `huge_fault` is asked first, under the \
                 VMA lock, and asked again for a PMD in the second call when no PTE table \
                 exists yet",
        source: "mm/memory.c vmf_can_call_fault (do_read_fault, do_cow_fault, \
                 do_shared_fault)",
    },
    VmaLockRetry {
        since: (6, 12),
        faults: "write-protect faults of such mappings with `pfn_mkwrite` or `page_mkwrite`",
        source: "mm/memory.c wp_pfn_shared, wp_page_shared",
    },
    VmaLockRetry {
        since: (6, 12),
        faults: "the first write to anonymous memory without an anon_vma yet (also THP, \
                 COW and private hugetlb), only when mmap_read_trylock fails",
        source: "mm/memory.c __vmf_anon_prepare",
    },
    VmaLockRetry {
        since: (6, 12),
        faults: "device-private memory (HMM) swap entries; on 7.2 device-private PMDs too",
        source: "mm/memory.c do_swap_page, mm/huge_memory.c do_huge_pmd_device_private",
    },
    VmaLockRetry {
        since: (6, 12),
        faults: "a VMA armed by userfaultfd",
        source: "handle_userfault (fs/userfaultfd.c; mm/userfaultfd.c on 7.2)",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vma_lock_retry_names_where_the_kernel_returns_it() {
        for r in VMA_LOCK_RETRIES {
            assert!(r.since >= (6, 4), "no per-VMA lock before 6.4: {r:?}");
            assert!(r.source.contains('/') && !r.faults.is_empty(), "{r:?}");
        }
    }
}
