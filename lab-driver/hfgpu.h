/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* hfgpu: the huge-fault lab's GPU-like device. The user ABI. */
#ifndef HFGPU_H
#define HFGPU_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* How the driver answers faults; see hfgpu.c. */
enum hfgpu_policy {
	HFGPU_POLICY_PUD = 0,      /* PUD where alignment allows, else PMD, else PTE */
	HFGPU_POLICY_PMD_ONLY = 1, /* FALLBACK at PUD, PMD where alignment allows */
	HFGPU_POLICY_PTE_ONLY = 2, /* FALLBACK at PUD and PMD: 4 KiB entries only */
	HFGPU_POLICY_RANGE = 3,    /* hf_vmf_insert_range() of the whole buffer object */
	HFGPU_POLICY_REMAP = 4,    /* io_remap_pfn_range() of the whole buffer object from the
				    * fault handler, as vfio-pci did before 6.12 (before 6.3
				    * only: later kernels take the VMA's write lock in it) */
	HFGPU_NR_POLICIES
};

struct hfgpu_info {
	__u64 bar_phys;
	__u64 bar_size;
	__u32 policy;
	__u32 pad;
};

/* Handler calls since the module was loaded, for the lab's second count of what the tool
 * reports: calls[LEVEL][RESULT], LEVEL the level asked for (HFGPU_LVL_*: the fault handler
 * is PTE), RESULT what the handler answered (HFGPU_RES_*). vma_lock[][] counts the calls
 * among them made under the per-VMA lock (FAULT_FLAG_VMA_LOCK, 6.4+). */
enum { HFGPU_LVL_PTE = 0, HFGPU_LVL_PMD = 1, HFGPU_LVL_PUD = 2, HFGPU_NR_LVLS };
enum { HFGPU_RES_MAPPED = 0, HFGPU_RES_FALLBACK = 1, HFGPU_RES_OTHER = 2, HFGPU_NR_RES };

struct hfgpu_stats {
	__u64 calls[HFGPU_NR_LVLS][HFGPU_NR_RES];
	__u64 vma_lock[HFGPU_NR_LVLS][HFGPU_NR_RES];
	/* pfn_mkwrite calls (write-notify mappings), and those under the per-VMA lock. */
	__u64 mkwrite;
	__u64 mkwrite_vma_lock;
};

/* Flags of the mappings made through this open file from then on. WRITE_NOTIFY gives them
 * a pfn_mkwrite handler, so that the kernel maps their pages read-only first and a write
 * takes a second, write-protect fault (as DRM GEM shmem, DAX and TTM mappings with dirty
 * tracking do). */
#define HFGPU_F_WRITE_NOTIFY 1u

/* Policy of the mappings made through this open file (also those made already). */
#define HFGPU_SET_POLICY _IOW('H', 1, __u32)
#define HFGPU_GET_INFO _IOR('H', 2, struct hfgpu_info)
#define HFGPU_GET_STATS _IOR('H', 3, struct hfgpu_stats)
#define HFGPU_SET_FLAGS _IOW('H', 4, __u32)

/* Buffer objects (mmap offsets) start at multiples of 64 KiB, a GPU page. */
#define HFGPU_BO_ALIGN (64UL << 10)

#endif
