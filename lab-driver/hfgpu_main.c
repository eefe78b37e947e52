// SPDX-License-Identifier: GPL-2.0
/*
 * hfgpu: the huge-fault lab's GPU-like device.
 *
 * Binds QEMU's ivshmem-plain PCI device, whose BAR 2 (RAM on the host, several GiB,
 * naturally aligned) stands in for VRAM, and exposes /dev/hfgpu. Each mmap() of it is one
 * buffer object: BAR pages from the mmap offset, mapped VM_PFNMAP by a huge_fault handler
 * and a PTE fault handler, the way GPU and VFIO drivers map device memory. How faults are
 * answered is a policy (module parameter `policy`, or per open file with HFGPU_SET_POLICY):
 *
 *   pud       PUD where virtual and physical alignment allow, else PMD, else PTE;
 *   pmd-only  VM_FAULT_FALLBACK at PUD, PMD where alignment allows;
 *   pte-only  VM_FAULT_FALLBACK at PUD and PMD, as a driver doing 4 KiB dirty tracking;
 *   range     hf_vmf_insert_range() of the whole buffer object, from whichever handler
 *             the fault reaches: one call maps it with PUD, PMD and PTE entries as
 *             alignment allows. The plan is Rust (crate hf_range, linked in as an object);
 *             this file only walks the page table and wraps the kernel's insert calls.
 *   remap     io_remap_pfn_range() of the whole buffer object from the PTE fault handler,
 *             as vfio-pci's fault handler did before 6.12 (one fault, every PTE). Before
 *             6.3 only: from then on remap_pfn_range sets the VMA's flags with
 *             vm_flags_set(), which wants the mmap lock held for writing.
 *
 * Kernels differ: before 6.8 or so the core VM never calls huge_fault for VM_PFNMAP VMAs
 * (hugepage_vma_check refuses VM_SPECIAL), so only the ordinary fault handler runs there;
 * the range policy inserts huge entries from it, as TTM did before 5.16.
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/huge_mm.h>
#include <linux/miscdevice.h>
#include <linux/mman.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/pgtable.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 17, 0)
#include <linux/pfn_t.h>
#endif

#include "hfgpu.h"

static char *policy = "pud";
module_param(policy, charp, 0444);
MODULE_PARM_DESC(policy, "default fault policy: pud, pmd-only, pte-only, range or remap");

static const char *const policy_names[HFGPU_NR_POLICIES] = {
	"pud", "pmd-only", "pte-only", "range", "remap",
};

static u32 default_policy;
/* The handler calls HFGPU_GET_STATS reports. */
static atomic64_t stat_calls[HFGPU_NR_LVLS][HFGPU_NR_RES];
static atomic64_t stat_vma_lock[HFGPU_NR_LVLS][HFGPU_NR_RES];
static atomic64_t stat_mkwrite, stat_mkwrite_vma_lock;
static phys_addr_t bar_phys;
static resource_size_t bar_size;
static struct pci_dev *hf_pdev;

struct hfgpu_file {
	u32 policy;
	u32 flags;
};

/* --- the Rust range insert (hf_range::kernel) and what it calls back --------------- */

enum { HF_PTE = 1, HF_PMD = 2, HF_PUD = 3 };
enum { SLOT_EMPTY = 0, SLOT_PRESENT = 1, SLOT_TABLE = 2, SLOT_MISSING = 3 };

struct hf_range_summary {
	u64 entries[4];
	u64 present;
	u32 error;
	u32 second_pass;
};

u32 hf_range_insert(void *ctx, u64 addr, u64 pfn, u64 nr_pages,
		    struct hf_range_summary *out);

struct hf_ctx {
	struct vm_fault *vmf;
};

/* Walks to the PUD slot of addr; NULL where an upper level is missing. */
static pud_t *walk_pud(struct mm_struct *mm, unsigned long addr)
{
	pgd_t *pgd = pgd_offset(mm, addr);
	p4d_t *p4d;

	if (pgd_none(*pgd))
		return NULL;
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(*p4d))
		return NULL;
	return pud_offset(p4d, addr);
}

/* The PMD slot of addr; NULL where the PMD table is missing or a PUD leaf maps it. */
static pmd_t *walk_pmd(struct mm_struct *mm, unsigned long addr)
{
	pud_t *pud = walk_pud(mm, addr);
	pud_t pv;

	if (!pud)
		return NULL;
	pv = READ_ONCE(*pud);
	if (pud_none(pv) || pud_leaf(pv))
		return NULL;
	return pmd_offset(pud, addr);
}

u32 hf_range_slot(void *ctx, u64 addr, u32 level)
{
	struct hf_ctx *c = ctx;
	struct mm_struct *mm = c->vmf->vma->vm_mm;
	pud_t *pud = walk_pud(mm, addr);
	pud_t pv;
	pmd_t *pmd, mv;
	pte_t *pte;

	if (!pud)
		return SLOT_MISSING;
	pv = READ_ONCE(*pud);
	if (pud_leaf(pv))
		return SLOT_PRESENT;
	if (level == HF_PUD)
		return pud_none(pv) ? SLOT_EMPTY : SLOT_TABLE;
	if (pud_none(pv))
		return SLOT_MISSING;
	pmd = pmd_offset(pud, addr);
	mv = READ_ONCE(*pmd);
	if (pmd_leaf(mv))
		return SLOT_PRESENT;
	if (level == HF_PMD)
		return pmd_none(mv) ? SLOT_EMPTY : SLOT_TABLE;
	if (pmd_none(mv))
		return SLOT_EMPTY; /* the PTE insert allocates the table */
	pte = pte_offset_kernel(pmd, addr);
	return pte_none(ptep_get(pte)) ? SLOT_EMPTY : SLOT_PRESENT;
}

static vm_fault_t insert_pud(struct vm_fault *vmf, unsigned long pfn, bool write)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
	return vmf_insert_pfn_pud(vmf, pfn, write);
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	return vmf_insert_pfn_pud(vmf, __pfn_to_pfn_t(pfn, PFN_DEV), write);
#else
	return vmf_insert_pfn_pud_prot(vmf, __pfn_to_pfn_t(pfn, PFN_DEV),
				       vmf->vma->vm_page_prot, write);
#endif
}

static vm_fault_t insert_pmd(struct vm_fault *vmf, unsigned long pfn, bool write)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
	return vmf_insert_pfn_pmd(vmf, pfn, write);
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	return vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(pfn, PFN_DEV), write);
#else
	return vmf_insert_pfn_pmd_prot(vmf, __pfn_to_pfn_t(pfn, PFN_DEV),
				       vmf->vma->vm_page_prot, write);
#endif
}

/* 0, or the vm_fault_t error bits. */
static u32 fault_error(vm_fault_t r)
{
	return (u32)(r & VM_FAULT_ERROR);
}

u32 hf_range_insert_entry(void *ctx, u64 addr, u64 pfn, u32 level)
{
	struct hf_ctx *c = ctx;
	struct vm_area_struct *vma = c->vmf->vma;
	bool write = c->vmf->flags & FAULT_FLAG_WRITE;
	struct vm_fault f;

	if (level == HF_PTE)
		return fault_error(vmf_insert_pfn(vma, addr, pfn));
	/*
	 * vmf_insert_pfn_pud/pmd insert at vmf->address into vmf->pud/pmd: hand them a copy
	 * of the fault pointing at this entry's slot.
	 */
	memcpy(&f, c->vmf, sizeof(f));
	*(unsigned long *)&f.address = addr;
	if (level == HF_PUD) {
		f.pud = walk_pud(vma->vm_mm, addr);
		if (!f.pud)
			return VM_FAULT_SIGBUS;
		return fault_error(insert_pud(&f, pfn, write));
	}
	f.pmd = walk_pmd(vma->vm_mm, addr);
	if (!f.pmd)
		return VM_FAULT_SIGBUS;
	return fault_error(insert_pmd(&f, pfn, write));
}

void hf_range_bug(void)
{
	BUG();
}

/**
 * hf_vmf_insert_range - map a physically contiguous pfn range in one call
 * @vmf: the fault being handled (its VMA and page table)
 * @addr: first virtual address, page aligned, inside vmf->vma
 * @pfn: first pfn
 * @nr_pages: number of base pages
 *
 * Largest entries first (PUD, PMD, PTE) as virtual and physical alignment allow. A huge
 * entry goes only where its page-table level exists and its slot is empty: a module
 * cannot allocate page-table levels; PTE inserts allocate their own. Entries already
 * present are left alone.
 *
 * Return: VM_FAULT_NOPAGE, or the error of the insert that failed.
 */
vm_fault_t hf_vmf_insert_range(struct vm_fault *vmf, unsigned long addr,
			       unsigned long pfn, unsigned long nr_pages)
{
	struct hf_ctx ctx = { .vmf = vmf };
	struct hf_range_summary sum;
	u32 err;

	if (addr < vmf->vma->vm_start || addr + (nr_pages << PAGE_SHIFT) > vmf->vma->vm_end)
		return VM_FAULT_SIGBUS;
	err = hf_range_insert(&ctx, addr, pfn, nr_pages, &sum);
	pr_debug("hfgpu: range %#lx+%lu pages: pud %llu pmd %llu pte %llu present %llu err %#x\n",
		 addr, nr_pages, sum.entries[HF_PUD], sum.entries[HF_PMD],
		 sum.entries[HF_PTE], sum.present, err);
	return err ? (vm_fault_t)err : VM_FAULT_NOPAGE;
}
EXPORT_SYMBOL_GPL(hf_vmf_insert_range);

/* --- fault handlers --------------------------------------------------------------- */

/* Counts one handler call: the level asked for, what it answered, and whether it ran
 * under the per-VMA lock. Returns the answer. */
static vm_fault_t count_call(struct vm_fault *vmf, int lvl, vm_fault_t ret)
{
	int res = ret & VM_FAULT_FALLBACK ? HFGPU_RES_FALLBACK :
		  ret & (VM_FAULT_ERROR | VM_FAULT_RETRY) ? HFGPU_RES_OTHER : HFGPU_RES_MAPPED;

	atomic64_inc(&stat_calls[lvl][res]);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	if (vmf->flags & FAULT_FLAG_VMA_LOCK)
		atomic64_inc(&stat_vma_lock[lvl][res]);
#endif
	return ret;
}

static unsigned long bo_pfn(struct vm_area_struct *vma, unsigned long addr)
{
	return PHYS_PFN(bar_phys) + vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
}

static u32 bo_policy(struct vm_area_struct *vma)
{
	struct hfgpu_file *hf = vma->vm_private_data;

	return READ_ONCE(hf->policy);
}

/* The whole buffer object (the VMA) in one range insert. */
static vm_fault_t fault_range(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;

	return hf_vmf_insert_range(vmf, vma->vm_start, bo_pfn(vma, vma->vm_start),
				   (vma->vm_end - vma->vm_start) >> PAGE_SHIFT);
}

/* One huge entry at the fault address, if both addresses are aligned and it fits. */
static vm_fault_t fault_huge(struct vm_fault *vmf, unsigned long size)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned long addr = vmf->address & ~(size - 1);
	bool write = vmf->flags & FAULT_FLAG_WRITE;
	unsigned long pfn;

	if (addr < vma->vm_start || addr + size > vma->vm_end)
		return VM_FAULT_FALLBACK;
	pfn = bo_pfn(vma, addr);
	if (pfn & ((size >> PAGE_SHIFT) - 1))
		return VM_FAULT_FALLBACK;
	return size == PUD_SIZE ? insert_pud(vmf, pfn, write) : insert_pmd(vmf, pfn, write);
}

static vm_fault_t hfgpu_huge_answer(struct vm_fault *vmf, unsigned int order)
{
	u32 p = bo_policy(vmf->vma);

	if (p == HFGPU_POLICY_RANGE)
		return fault_range(vmf);
	if (order == PUD_SHIFT - PAGE_SHIFT && p == HFGPU_POLICY_PUD)
		return fault_huge(vmf, PUD_SIZE);
	if (order == PMD_SHIFT - PAGE_SHIFT &&
	    (p == HFGPU_POLICY_PUD || p == HFGPU_POLICY_PMD_ONLY))
		return fault_huge(vmf, PMD_SIZE);
	return VM_FAULT_FALLBACK;
}

static vm_fault_t hfgpu_huge(struct vm_fault *vmf, unsigned int order)
{
	int lvl = order == PUD_SHIFT - PAGE_SHIFT ? HFGPU_LVL_PUD :
		  order == PMD_SHIFT - PAGE_SHIFT ? HFGPU_LVL_PMD : HFGPU_LVL_PTE;

	return count_call(vmf, lvl, hfgpu_huge_answer(vmf, order));
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
static vm_fault_t hfgpu_huge_fault(struct vm_fault *vmf, unsigned int order)
{
	return hfgpu_huge(vmf, order);
}
#else
static vm_fault_t hfgpu_huge_fault(struct vm_fault *vmf, enum page_entry_size pe_size)
{
	switch (pe_size) {
	case PE_SIZE_PUD:
		return hfgpu_huge(vmf, PUD_SHIFT - PAGE_SHIFT);
	case PE_SIZE_PMD:
		return hfgpu_huge(vmf, PMD_SHIFT - PAGE_SHIFT);
	default:
		return count_call(vmf, HFGPU_LVL_PTE, VM_FAULT_FALLBACK);
	}
}
#endif

/* The whole buffer object in one io_remap_pfn_range(), the way vfio-pci's fault handler
 * mapped a whole BAR before 6.12. */
static vm_fault_t fault_remap(struct vm_fault *vmf)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
	struct vm_area_struct *vma = vmf->vma;

	if (io_remap_pfn_range(vma, vma->vm_start, bo_pfn(vma, vma->vm_start),
			       vma->vm_end - vma->vm_start, vma->vm_page_prot))
		return VM_FAULT_SIGBUS;
	return VM_FAULT_NOPAGE;
#else
	return VM_FAULT_SIGBUS;
#endif
}

static vm_fault_t hfgpu_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned long addr = vmf->address & PAGE_MASK;

	if (bo_policy(vma) == HFGPU_POLICY_RANGE)
		return count_call(vmf, HFGPU_LVL_PTE, fault_range(vmf));
	if (bo_policy(vma) == HFGPU_POLICY_REMAP)
		return count_call(vmf, HFGPU_LVL_PTE, fault_remap(vmf));
	return count_call(vmf, HFGPU_LVL_PTE, vmf_insert_pfn(vma, addr, bo_pfn(vma, addr)));
}

/* A write to a page mapped read-only by a write-notify mapping: allow it (the core makes
 * the PTE writable). */
static vm_fault_t hfgpu_pfn_mkwrite(struct vm_fault *vmf)
{
	atomic64_inc(&stat_mkwrite);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	if (vmf->flags & FAULT_FLAG_VMA_LOCK)
		atomic64_inc(&stat_mkwrite_vma_lock);
#endif
	return 0;
}

static const struct vm_operations_struct hfgpu_vm_ops = {
	.fault = hfgpu_fault,
	.huge_fault = hfgpu_huge_fault,
};

/* With pfn_mkwrite the VMA wants write notification: the core maps pages read-only
 * (vma_set_page_prot after our mmap) and calls pfn_mkwrite on the first write. */
static const struct vm_operations_struct hfgpu_vm_ops_write_notify = {
	.fault = hfgpu_fault,
	.huge_fault = hfgpu_huge_fault,
	.pfn_mkwrite = hfgpu_pfn_mkwrite,
};

/* --- the character device --------------------------------------------------------- */

static int hfgpu_open(struct inode *inode, struct file *file)
{
	struct hfgpu_file *hf = kzalloc(sizeof(*hf), GFP_KERNEL);

	if (!hf)
		return -ENOMEM;
	hf->policy = default_policy;
	file->private_data = hf;
	return 0;
}

static int hfgpu_release(struct inode *inode, struct file *file)
{
	kfree(file->private_data);
	return 0;
}

static int hfgpu_mmap(struct file *file, struct vm_area_struct *vma)
{
	unsigned long off = vma->vm_pgoff << PAGE_SHIFT;
	unsigned long len = vma->vm_end - vma->vm_start;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (off & (HFGPU_BO_ALIGN - 1))
		return -EINVAL;
	if (vma->vm_pgoff > (bar_size >> PAGE_SHIFT) || len > bar_size - off)
		return -EINVAL;
	vma->vm_private_data = file->private_data;
	vma->vm_ops = READ_ONCE(((struct hfgpu_file *)file->private_data)->flags) &
			      HFGPU_F_WRITE_NOTIFY ?
			      &hfgpu_vm_ops_write_notify :
			      &hfgpu_vm_ops;
	/* VM_HUGEPAGE: asks for huge entries whatever the THP sysfs mode ("madvise"). */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP | VM_HUGEPAGE);
#else
	vma->vm_flags |= VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP | VM_HUGEPAGE;
#endif
	return 0;
}

static unsigned long lower_unmapped_area(struct file *file, unsigned long len,
					 unsigned long pgoff, unsigned long flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
	return mm_get_unmapped_area(file, 0, len, pgoff, flags);
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
	return mm_get_unmapped_area(current->mm, file, 0, len, pgoff, flags);
#else
	return current->mm->get_unmapped_area(file, 0, len, pgoff, flags);
#endif
}

/*
 * Places a mapping so that its virtual address is congruent to its BAR address modulo
 * the largest entry size it can hold (1 GiB, 2 MiB), as device-dax does.
 */
static unsigned long hfgpu_get_unmapped_area(struct file *file, unsigned long addr,
					     unsigned long len, unsigned long pgoff,
					     unsigned long flags)
{
	unsigned long align, off, area;

	if (flags & MAP_FIXED)
		return addr;
	align = len >= PUD_SIZE ? PUD_SIZE : len >= PMD_SIZE ? PMD_SIZE : PAGE_SIZE;
	off = (bar_phys + (pgoff << PAGE_SHIFT)) & (align - 1);
	if (align == PAGE_SIZE || len + align < len)
		return lower_unmapped_area(file, len, pgoff, flags);
	area = lower_unmapped_area(file, len + align, pgoff, flags);
	if (IS_ERR_VALUE(area))
		return lower_unmapped_area(file, len, pgoff, flags);
	return ALIGN(area - off, align) + off;
}

static long hfgpu_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct hfgpu_file *hf = file->private_data;
	struct hfgpu_info info = {};
	struct hfgpu_stats stats = {};
	int l, r;
	u32 p;

	switch (cmd) {
	case HFGPU_SET_POLICY:
		if (get_user(p, (u32 __user *)arg))
			return -EFAULT;
		if (p >= HFGPU_NR_POLICIES)
			return -EINVAL;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
		if (p == HFGPU_POLICY_REMAP)
			return -EOPNOTSUPP;
#endif
		WRITE_ONCE(hf->policy, p);
		return 0;
	case HFGPU_SET_FLAGS:
		if (get_user(p, (u32 __user *)arg))
			return -EFAULT;
		if (p & ~HFGPU_F_WRITE_NOTIFY)
			return -EINVAL;
		WRITE_ONCE(hf->flags, p);
		return 0;
	case HFGPU_GET_INFO:
		info.bar_phys = bar_phys;
		info.bar_size = bar_size;
		info.policy = READ_ONCE(hf->policy);
		return copy_to_user((void __user *)arg, &info, sizeof(info)) ? -EFAULT : 0;
	case HFGPU_GET_STATS:
		for (l = 0; l < HFGPU_NR_LVLS; l++) {
			for (r = 0; r < HFGPU_NR_RES; r++) {
				stats.calls[l][r] = atomic64_read(&stat_calls[l][r]);
				stats.vma_lock[l][r] = atomic64_read(&stat_vma_lock[l][r]);
			}
		}
		stats.mkwrite = atomic64_read(&stat_mkwrite);
		stats.mkwrite_vma_lock = atomic64_read(&stat_mkwrite_vma_lock);
		return copy_to_user((void __user *)arg, &stats, sizeof(stats)) ? -EFAULT : 0;
	default:
		return -ENOTTY;
	}
}

static const struct file_operations hfgpu_fops = {
	.owner = THIS_MODULE,
	.open = hfgpu_open,
	.release = hfgpu_release,
	.mmap = hfgpu_mmap,
	.get_unmapped_area = hfgpu_get_unmapped_area,
	.unlocked_ioctl = hfgpu_ioctl,
};

static struct miscdevice hfgpu_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "hfgpu",
	.fops = &hfgpu_fops,
	.mode = 0666,
};

/* --- PCI ------------------------------------------------------------------------- */

static int hfgpu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	int ret;

	if (hf_pdev)
		return -EBUSY;
	ret = pci_enable_device_mem(pdev);
	if (ret)
		return ret;
	ret = pci_request_region(pdev, 2, "hfgpu");
	if (ret)
		goto disable;
	bar_phys = pci_resource_start(pdev, 2);
	bar_size = pci_resource_len(pdev, 2);
	if (!bar_size) {
		ret = -ENODEV;
		goto release;
	}
	hf_pdev = pdev;
	ret = misc_register(&hfgpu_misc);
	if (ret)
		goto release;
	dev_info(&pdev->dev, "hfgpu: BAR 2 at %pa, %llu MiB, policy %s\n", &bar_phys,
		 (unsigned long long)bar_size >> 20, policy_names[default_policy]);
	return 0;
release:
	hf_pdev = NULL;
	pci_release_region(pdev, 2);
disable:
	pci_disable_device(pdev);
	return ret;
}

static void hfgpu_remove(struct pci_dev *pdev)
{
	misc_deregister(&hfgpu_misc);
	pci_release_region(pdev, 2);
	pci_disable_device(pdev);
	hf_pdev = NULL;
}

static const struct pci_device_id hfgpu_ids[] = {
	{ PCI_DEVICE(0x1af4, 0x1110) }, /* ivshmem */
	{ }
};
MODULE_DEVICE_TABLE(pci, hfgpu_ids);

static struct pci_driver hfgpu_driver = {
	.name = "hfgpu",
	.id_table = hfgpu_ids,
	.probe = hfgpu_probe,
	.remove = hfgpu_remove,
};

static int __init hfgpu_init(void)
{
	int i;

	for (i = 0; i < HFGPU_NR_POLICIES; i++)
		if (sysfs_streq(policy, policy_names[i]))
			break;
	if (i == HFGPU_NR_POLICIES) {
		pr_err("hfgpu: unknown policy '%s' (pud, pmd-only, pte-only, range, remap)\n", policy);
		return -EINVAL;
	}
	default_policy = i;
	return pci_register_driver(&hfgpu_driver);
}

static void __exit hfgpu_exit(void)
{
	pci_unregister_driver(&hfgpu_driver);
}

module_init(hfgpu_init);
module_exit(hfgpu_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("huge-fault lab: GPU-like BAR mapping with huge_fault policies and a Rust range insert");
