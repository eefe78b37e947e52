//! A VMA as the analysis and the what-if both name it, how user space looks one up
//! (/proc/PID/maps, or the answers a recording kept), and its kind.

use crate::kernel;

/// Identity of a VMA as the kernel saw it at fault time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmaKey {
    pub tgid: u32,
    pub start: u64,
    pub end: u64,
}

/// A VMA found by user space for an address (from /proc/PID/maps).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmaDesc {
    pub start: u64,
    pub end: u64,
    pub pgoff: u64,
    pub inode: u64,
    pub shared: bool,
    pub name: Option<String>,
}

/// Names VMAs and finds VMAs the kernel side could not; the live tool reads /proc.
pub trait VmaResolver {
    /// The VMA of `tgid` that contains `addr`, if any.
    fn lookup(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc>;
    /// The same, for a VMA the kernel reported: a resolver that caches may read again
    /// rather than answer from a copy older than the VMA.
    fn lookup_fresh(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        self.lookup(tgid, addr)
    }
}

/// A resolver that knows nothing (replay of recordings, tests).
pub struct NoResolver;

impl VmaResolver for NoResolver {
    fn lookup(&mut self, _tgid: u32, _addr: u64) -> Option<VmaDesc> {
        None
    }
}

/// A short class of the mapping, from its flags and backing.
pub fn kind(flags: u64, inode: u64) -> &'static str {
    if flags & kernel::VM_HUGETLB != 0 {
        "hugetlb"
    } else if flags & kernel::VM_PFNMAP != 0 {
        "pfnmap"
    } else if flags & kernel::VM_MIXEDMAP != 0 {
        "mixedmap"
    } else if inode == 0 {
        if flags & kernel::VM_SHARED != 0 {
            "anon-shared"
        } else {
            "anon"
        }
    } else if flags & kernel::VM_SHARED != 0 {
        "file-shared"
    } else {
        "file"
    }
}
