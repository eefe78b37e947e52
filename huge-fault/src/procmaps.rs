//! `/proc/PID/maps`: names VMAs, and finds the VMA of an address when the kernel side could
//! not (tracepoint mode without `bpf_find_vma`). Cached per process. On a miss, kernels
//! with the `PROCMAP_QUERY` ioctl (6.11+) are asked for the one VMA at the address;
//! older ones have the whole file read again.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::vma::{VmaDesc, VmaResolver};

/// One line of /proc/PID/maps.
pub fn parse_line(line: &str) -> Option<VmaDesc> {
    let mut it = line.split_ascii_whitespace();
    let (start, end) = it.next()?.split_once('-')?;
    let perms = it.next()?;
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let inode = it.next()?.parse::<u64>().ok()?;
    // The path may contain spaces: take the rest of the line after the inode column.
    let name = line
        .splitn(6, |c: char| c.is_ascii_whitespace())
        .nth(5)
        .map(|s| s.trim_start().to_string())
        .filter(|s| !s.is_empty());
    Some(VmaDesc {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        pgoff: offset >> 12,
        inode,
        shared: perms.as_bytes().get(3) == Some(&b's'),
        name,
    })
}

pub fn parse(text: &str) -> Vec<VmaDesc> {
    text.lines().filter_map(parse_line).collect()
}

/// Processes whose maps are kept.
const MAX_CACHED_PROCESSES: usize = 1024;

struct Entry {
    /// Sorted by address, not overlapping.
    vmas: Vec<VmaDesc>,
    read_at: Instant,
    /// The maps file, kept open for `PROCMAP_QUERY`.
    file: Option<std::fs::File>,
}

/// Whether the kernel answers `PROCMAP_QUERY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Query {
    Unknown,
    Yes,
    No,
}

/// `struct procmap_query` (include/uapi/linux/fs.h, 6.11+).
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: libc::c_ulong = 0xc068_6611;
const PROCMAP_QUERY_VMA_SHARED: u64 = 0x08;

/// The VMA covering `addr` as the kernel answers `PROCMAP_QUERY` on an open maps file:
/// `Ok(None)` when no VMA covers it, `Err` when the kernel cannot answer.
fn query_vma(file: &std::fs::File, addr: u64) -> std::io::Result<Option<VmaDesc>> {
    use std::os::fd::AsRawFd as _;
    let mut name = [0u8; 4096];
    let mut q = ProcmapQuery {
        size: std::mem::size_of::<ProcmapQuery>() as u64,
        query_addr: addr,
        vma_name_size: name.len() as u32,
        vma_name_addr: name.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the ioctl reads and writes one procmap_query, and writes at most
    // `vma_name_size` bytes to `name`, which outlives the call.
    if unsafe { libc::ioctl(file.as_raw_fd(), PROCMAP_QUERY, &mut q as *mut ProcmapQuery) } != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) => Ok(None),
            _ => Err(e),
        };
    }
    // The name comes NUL-terminated; an empty one is an anonymous VMA.
    let len = (q.vma_name_size as usize).min(name.len()).saturating_sub(1);
    let name = (len > 0).then(|| String::from_utf8_lossy(&name[..len]).into_owned());
    Ok(Some(VmaDesc {
        start: q.vma_start,
        end: q.vma_end,
        pgoff: q.vma_offset >> 12,
        inode: q.inode,
        shared: q.vma_flags & PROCMAP_QUERY_VMA_SHARED != 0,
        name,
    }))
}

/// Reads /proc/PID/maps (or another root, for tests) with a per-process cache.
pub struct ProcMaps {
    root: PathBuf,
    cache: HashMap<u32, Entry>,
    /// A process is re-read on a miss at most this often.
    min_refresh: Duration,
    /// Reads of maps files, for the report.
    pub reads: u64,
    /// `PROCMAP_QUERY` calls.
    pub queries: u64,
    query: Query,
}

impl ProcMaps {
    pub fn new() -> Self {
        Self::with_root("/proc")
    }

    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            cache: HashMap::new(),
            min_refresh: Duration::from_millis(50),
            reads: 0,
            queries: 0,
            query: Query::Unknown,
        }
    }

    /// The VMA at `addr` from `PROCMAP_QUERY`, kept in the process's cache; `None` when
    /// the kernel cannot answer (then the file is read instead).
    fn query(&mut self, tgid: u32, addr: u64) -> Option<Option<VmaDesc>> {
        if self.query == Query::No {
            return None;
        }
        if self.cache.get(&tgid).is_none_or(|e| e.file.is_none()) {
            let file = std::fs::File::open(self.root.join(tgid.to_string()).join("maps")).ok()?;
            self.make_room(tgid);
            let e = self.cache.entry(tgid).or_insert_with(|| Entry {
                vmas: Vec::new(),
                read_at: Instant::now(),
                file: None,
            });
            e.file = Some(file);
        }
        let e = self.cache.get_mut(&tgid)?;
        self.queries += 1;
        let got = query_vma(e.file.as_ref()?, addr);
        match got {
            Err(_) if self.query == Query::Unknown => {
                // Not this kernel (before 6.11), or not a procfs file: read files instead.
                self.query = Query::No;
                e.file = None;
                None
            }
            // The process is gone: what was read stays known.
            Err(_) => Some(Self::find(&e.vmas, addr)),
            Ok(v) => {
                self.query = Query::Yes;
                e.read_at = Instant::now();
                if let Some(v) = &v {
                    e.vmas.retain(|x| x.end <= v.start || x.start >= v.end);
                    let i = e.vmas.partition_point(|x| x.end <= v.start);
                    e.vmas.insert(i, v.clone());
                }
                Some(v)
            }
        }
    }

    /// Bounded: the process read longest ago goes (a long run sees many short ones).
    fn make_room(&mut self, tgid: u32) {
        if self.cache.len() >= MAX_CACHED_PROCESSES
            && !self.cache.contains_key(&tgid)
            && let Some(oldest) = self
                .cache
                .iter()
                .min_by_key(|(_, e)| e.read_at)
                .map(|(k, _)| *k)
        {
            self.cache.remove(&oldest);
        }
    }

    /// A miss: the kernel's answer for the address, else the whole file read again.
    fn refresh(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        if let Some(v) = self.query(tgid, addr) {
            return v;
        }
        let e = self.read(tgid)?;
        Self::find(&e.vmas, addr)
    }

    fn read(&mut self, tgid: u32) -> Option<&Entry> {
        let text = std::fs::read_to_string(self.root.join(tgid.to_string()).join("maps")).ok();
        self.reads += 1;
        // A process that has exited keeps the VMAs last read: its late records still name
        // them.
        let vmas = match (text, self.cache.remove(&tgid)) {
            (Some(t), _) => parse(&t),
            (None, Some(old)) => old.vmas,
            (None, None) => Vec::new(),
        };
        self.make_room(tgid);
        self.cache.insert(
            tgid,
            Entry {
                vmas,
                read_at: Instant::now(),
                file: None,
            },
        );
        self.cache.get(&tgid)
    }

    fn find(vmas: &[VmaDesc], addr: u64) -> Option<VmaDesc> {
        let i = vmas.partition_point(|v| v.end <= addr);
        vmas.get(i).filter(|v| v.start <= addr).cloned()
    }
}

impl Default for ProcMaps {
    fn default() -> Self {
        Self::new()
    }
}

impl VmaResolver for ProcMaps {
    fn lookup_fresh(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        // A cached VMA that covers `addr` but does not start there is an older mapping the
        // new one replaced (a reservation given back, then mapped over): ask again.
        if let Some(v) = self
            .cache
            .get(&tgid)
            .and_then(|e| Self::find(&e.vmas, addr))
            .filter(|v| v.start == addr)
        {
            return Some(v);
        }
        let v = self.refresh(tgid, addr);
        if v.as_ref().is_some_and(|v| v.start == addr) {
            return v;
        }
        // An open maps file answers for the address space it was opened on: one opened
        // before the process's exec (a vfork child faults in its parent's) knows nothing of
        // the new one. Open it again, once.
        match self.cache.get_mut(&tgid) {
            Some(e) if e.file.is_some() => e.file = None,
            _ => return v,
        }
        self.refresh(tgid, addr)
    }

    fn lookup(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        if let Some(e) = self.cache.get(&tgid) {
            if let Some(v) = Self::find(&e.vmas, addr) {
                return Some(v);
            }
            if e.read_at.elapsed() < self.min_refresh {
                return None;
            }
        }
        self.refresh(tgid, addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fe:01 1311 /usr/bin/cat
7f0000000000-7f0040000000 rw-s 00200000 00:01 2049 /dev/shm/my file (deleted)
7f1000000000-7f1000021000 rw-p 00000000 00:00 0 \n\
7ffd1000000-7ffd1021000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn parses_paths_with_spaces_shared_and_anonymous() {
        let v = parse(MAPS);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].name.as_deref(), Some("/usr/bin/cat"));
        assert!(!v[0].shared);
        assert_eq!(v[1].name.as_deref(), Some("/dev/shm/my file (deleted)"));
        assert_eq!((v[1].pgoff, v[1].inode, v[1].shared), (0x200, 2049, true));
        assert_eq!(v[2].name, None);
        assert_eq!(v[3].name.as_deref(), Some("[stack]"));
    }

    /// This process's own VMAs, asked of the kernel (6.11+) and read from its maps file,
    /// agree.
    #[test]
    fn the_kernel_answers_a_query_as_the_maps_file_says() {
        let me = std::process::id();
        let mut pm = ProcMaps::new();
        pm.min_refresh = Duration::ZERO;
        // A mapping of our own, and the stack.
        let len = 3 << 20;
        // SAFETY: a fresh anonymous mapping, unmapped below.
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(m, libc::MAP_FAILED);
        let local = 0u64;
        let stack = &local as *const u64 as u64;
        let maps = parse(&std::fs::read_to_string("/proc/self/maps").unwrap());
        // And a file's: this test's own code.
        let code = ProcMaps::find as fn(&[VmaDesc], u64) -> Option<VmaDesc> as usize as u64;
        for addr in [m as u64 + 4096, stack, code] {
            let want = ProcMaps::find(&maps, addr).expect("in the maps file");
            assert_eq!(pm.lookup(me, addr), Some(want), "{addr:#x}");
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let v = release
            .split(|c: char| !c.is_ascii_digit())
            .take(2)
            .map(|n| n.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>();
        if (v[0], v[1]) >= (6, 11) {
            assert_eq!((pm.query, pm.reads), (Query::Yes, 0), "asked, not read");
            assert_eq!(pm.queries, 3);
            // An address no VMA covers: no answer, and no file read.
            assert_eq!(pm.lookup_fresh(me, 0x1000), None);
            assert_eq!(pm.reads, 0);
        } else {
            eprintln!("PROCMAP_QUERY not checked: kernel {release} is older than 6.11");
        }
        // SAFETY: our own mapping.
        unsafe { libc::munmap(m, len) };
    }

    #[test]
    fn looks_up_by_address_and_rereads_on_a_miss() {
        let dir = std::env::temp_dir().join(format!("hf-maps-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("77")).unwrap();
        std::fs::write(dir.join("77/maps"), MAPS).unwrap();
        let mut pm = ProcMaps::with_root(&dir);
        pm.min_refresh = Duration::ZERO;
        let v = pm
            .lookup(77, 0x7f00_1234_5678)
            .expect("inside the shm mapping");
        assert_eq!(v.start, 0x7f00_0000_0000);
        assert_eq!(pm.lookup(77, 0x7f00_4000_0000), None, "end is exclusive");
        assert_eq!(pm.lookup(77, 0x55d0_c0a0_0000).map(|v| v.inode), Some(1311));
        let reads = pm.reads;
        // A new mapping appears: a miss re-reads the file.
        std::fs::write(
            dir.join("77/maps"),
            format!("{MAPS}7f2000000000-7f2000001000 rw-p 00000000 00:00 0\n"),
        )
        .unwrap();
        assert!(pm.lookup(77, 0x7f20_0000_0010).is_some());
        assert_eq!(pm.reads, reads + 1);
        assert_eq!(pm.lookup(78, 0x1000), None, "no such process");
        // A VMA the kernel reported is looked up again at once, whatever the cache's age.
        pm.min_refresh = Duration::from_secs(3600);
        std::fs::write(
            dir.join("77/maps"),
            format!("{MAPS}7f2000000000-7f2000001000 rw-p 00000000 00:00 0\n7f3000000000-7f3000001000 rw-s 00000000 00:01 9 /dev/x\n"),
        )
        .unwrap();
        assert_eq!(
            pm.lookup(77, 0x7f30_0000_0000),
            None,
            "a miss within the refresh time"
        );
        assert_eq!(
            pm.lookup_fresh(77, 0x7f30_0000_0000).and_then(|v| v.name),
            Some("/dev/x".into())
        );
        // The process exits: what was read stays known.
        pm.min_refresh = Duration::ZERO;
        std::fs::remove_dir_all(dir.join("77")).unwrap();
        assert_eq!(pm.lookup(77, 0x7f40_0000_0000), None);
        assert_eq!(
            pm.lookup(77, 0x7f20_0000_0010).map(|v| v.start),
            Some(0x7f20_0000_0000)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
