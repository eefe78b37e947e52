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
	HFGPU_NR_POLICIES
};

struct hfgpu_info {
	__u64 bar_phys;
	__u64 bar_size;
	__u32 policy;
	__u32 pad;
};

/* Policy of the mappings made through this open file (also those made already). */
#define HFGPU_SET_POLICY _IOW('H', 1, __u32)
#define HFGPU_GET_INFO _IOR('H', 2, struct hfgpu_info)

/* Buffer objects (mmap offsets) start at multiples of 64 KiB, a GPU page. */
#define HFGPU_BO_ALIGN (64UL << 10)

#endif
