//! The lab driver's ioctls: fault policy, mapping flags, and its own count of its handlers'
//! answers.

/// The hfgpu ioctls (lab-driver/hfgpu.h).
pub const HFGPU_SET_POLICY: libc::c_ulong = 0x4004_4801;
/// `_IOR('H', 3, struct hfgpu_stats)`: 20 u64 counters.
pub const HFGPU_GET_STATS: libc::c_ulong = 0x80a0_4803;
/// `_IOW('H', 4, __u32)`, and its write-notify flag.
pub const HFGPU_SET_FLAGS: libc::c_ulong = 0x4004_4804;
pub const HFGPU_F_WRITE_NOTIFY: u32 = 1;
pub const HFGPU_POLICIES: [&str; 5] = ["pud", "pmd-only", "pte-only", "range", "remap"];

/// `struct hfgpu_stats`: the driver's handler calls, `[level][result]` with level PTE (the
/// fault handler), PMD, PUD and result mapped, FALLBACK, other; and those under the
/// per-VMA lock.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct DrvStats {
    calls: [[u64; 3]; 3],
    vma_lock: [[u64; 3]; 3],
    mkwrite: u64,
    mkwrite_vma_lock: u64,
}

impl DrvStats {
    pub fn read(fd: i32) -> Result<Self, String> {
        let mut s = DrvStats::default();
        // SAFETY: the ioctl writes one struct hfgpu_stats into `s`.
        if unsafe { libc::ioctl(fd, HFGPU_GET_STATS, &mut s as *mut DrvStats) } != 0 {
            return Err(format!(
                "HFGPU_GET_STATS: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(s)
    }

    /// The driver's second count of what the tool reports, between two reads, as JSON keys
    /// of the ground-truth line: its FALLBACK answers (PUD and PMD), the calls of its PTE
    /// fault handler (on 6.12+ each one comes after a VM_FAULT_RETRY under the per-VMA
    /// lock, which the core returns before calling a `fault` handler without
    /// `map_pages`), the huge_fault calls under the per-VMA lock, and the fault handler's
    /// calls under it (none: the core never makes one); the `pfn_mkwrite` calls (likewise
    /// only after a RETRY under the per-VMA lock: `wp_pfn_shared`), and the two together.
    pub fn keys_since(&self, before: &DrvStats) -> String {
        let d = |a: &[[u64; 3]; 3], b: &[[u64; 3]; 3], l: usize, r: usize| a[l][r] - b[l][r];
        let (c, b) = (&self.calls, &before.calls);
        let (v, bv) = (&self.vma_lock, &before.vma_lock);
        let sum = |a: &[[u64; 3]; 3], b: &[[u64; 3]; 3], l: usize| {
            (0..3).map(|r| d(a, b, l, r)).sum::<u64>()
        };
        format!(
            "\"drv_fallbacks\":{},\"drv_pud_fallbacks\":{},\"drv_pmd_fallbacks\":{},\"drv_huge_mapped\":{},\"drv_fault_calls\":{},\"drv_huge_calls_vma_lock\":{},\"drv_fault_calls_vma_lock\":{},\"drv_mkwrite_calls\":{},\"drv_mkwrite_calls_vma_lock\":{},\"drv_calls_needing_mmap_lock\":{}",
            d(c, b, 1, 1) + d(c, b, 2, 1),
            d(c, b, 2, 1),
            d(c, b, 1, 1),
            d(c, b, 1, 0) + d(c, b, 2, 0),
            sum(c, b, 0),
            sum(v, bv, 1) + sum(v, bv, 2),
            sum(v, bv, 0),
            self.mkwrite - before.mkwrite,
            self.mkwrite_vma_lock - before.mkwrite_vma_lock,
            sum(c, b, 0) + self.mkwrite - before.mkwrite,
        )
    }
}

/// The errno of the call that just failed.
pub fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// HFGPU_SET_POLICY with a policy number: 0, or the errno.
pub fn ioctl_policy(fd: i32, p: u32) -> i32 {
    // SAFETY: the ioctl reads one u32 from the pointer.
    if unsafe { libc::ioctl(fd, HFGPU_SET_POLICY, &p as *const u32) } == 0 {
        0
    } else {
        last_errno()
    }
}

pub fn set_policy(fd: i32, name: &str) -> Result<(), String> {
    let p = HFGPU_POLICIES
        .iter()
        .position(|n| *n == name)
        .map_or(u32::MAX, |i| i as u32);
    match ioctl_policy(fd, p) {
        0 => Ok(()),
        e => Err(format!(
            "HFGPU_SET_POLICY {name}: {}",
            std::io::Error::from_raw_os_error(e)
        )),
    }
}

/// Opens a device for reading and writing, or says why not.
pub fn open_device(path: &str) -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| eprintln!("hf-workload: {path}: {e}"))
        .ok()
}
