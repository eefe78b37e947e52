//! `/proc/PID/maps`: names VMAs, and finds the VMA of an address when the kernel side could
//! not (tracepoint mode without `bpf_find_vma`). Cached per process, re-read on a miss.

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
    vmas: Vec<VmaDesc>,
    read_at: Instant,
}

/// Reads /proc/PID/maps (or another root, for tests) with a per-process cache.
pub struct ProcMaps {
    root: PathBuf,
    cache: HashMap<u32, Entry>,
    /// A process is re-read on a miss at most this often.
    min_refresh: Duration,
    /// Reads of maps files, for the report.
    pub reads: u64,
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
        }
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
        // Bounded: the process read longest ago goes (a long run sees many short ones).
        if self.cache.len() >= MAX_CACHED_PROCESSES
            && let Some(oldest) = self
                .cache
                .iter()
                .min_by_key(|(_, e)| e.read_at)
                .map(|(k, _)| *k)
        {
            self.cache.remove(&oldest);
        }
        self.cache.insert(
            tgid,
            Entry {
                vmas,
                read_at: Instant::now(),
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
        if let Some(v) = self
            .cache
            .get(&tgid)
            .and_then(|e| Self::find(&e.vmas, addr))
        {
            return Some(v);
        }
        let e = self.read(tgid)?;
        Self::find(&e.vmas, addr)
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
        let e = self.read(tgid)?;
        Self::find(&e.vmas, addr)
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
