//! A DRM dumb buffer, created and mapped the way a compositor maps one
//! (`DRM_IOCTL_MODE_CREATE_DUMB`, `DRM_IOCTL_MODE_MAP_DUMB`, `mmap` of the card at the
//! offset it returns), on the card of a named driver (`bochs-drm`, `qxl`, `vgem`), at a
//! chosen virtual address (MAP_FIXED_NOREPLACE at `--offset` past an `--align` boundary);
//! then touched in order or in reverse, with the same ground-truth line as the other
//! workloads.

use std::{os::fd::AsRawFd as _, process::ExitCode};

use crate::{Opts, errno, map_shared_at, rusage};

/// `DRM_IOWR(nr, size)`: `_IOC(_IOC_READ | _IOC_WRITE, 'd', nr, size)`.
const fn drm_iowr(nr: u64, size: usize) -> libc::c_ulong {
    (3 << 30) | ((size as u64) << 16) | (0x64 << 8) | nr
}
const DRM_IOCTL_VERSION: libc::c_ulong = drm_iowr(0x00, std::mem::size_of::<Version>());
const DRM_IOCTL_MODE_CREATE_DUMB: libc::c_ulong = drm_iowr(0xb2, std::mem::size_of::<CreateDumb>());
const DRM_IOCTL_MODE_MAP_DUMB: libc::c_ulong = drm_iowr(0xb3, std::mem::size_of::<MapDumb>());
const DRM_IOCTL_MODE_DESTROY_DUMB: libc::c_ulong = drm_iowr(0xb4, 4);

/// `struct drm_version`.
#[repr(C)]
struct Version {
    major: i32,
    minor: i32,
    patchlevel: i32,
    name_len: usize,
    name: *mut u8,
    date_len: usize,
    date: *mut u8,
    desc_len: usize,
    desc: *mut u8,
}

/// `struct drm_mode_create_dumb`.
#[repr(C)]
#[derive(Default)]
struct CreateDumb {
    height: u32,
    width: u32,
    bpp: u32,
    flags: u32,
    handle: u32,
    pitch: u32,
    size: u64,
}

/// `struct drm_mode_map_dumb`.
#[repr(C)]
#[derive(Default)]
struct MapDumb {
    handle: u32,
    pad: u32,
    offset: u64,
}

/// The driver name of an open DRM device.
fn driver_name(fd: i32) -> Result<String, String> {
    let mut name = [0u8; 64];
    let mut v = Version {
        major: 0,
        minor: 0,
        patchlevel: 0,
        name_len: name.len(),
        name: name.as_mut_ptr(),
        date_len: 0,
        date: std::ptr::null_mut(),
        desc_len: 0,
        desc: std::ptr::null_mut(),
    };
    // SAFETY: the ioctl writes at most `name_len` bytes into our buffer.
    if unsafe { libc::ioctl(fd, DRM_IOCTL_VERSION, &mut v as *mut Version) } != 0 {
        return Err(errno("DRM_IOCTL_VERSION"));
    }
    let n = v.name_len.min(name.len());
    Ok(String::from_utf8_lossy(&name[..n]).into_owned())
}

/// The primary node (`/dev/dri/cardN`) of the driver named `want`, opened.
fn open_card(want: &str) -> Result<(std::fs::File, String), String> {
    let mut found = Vec::new();
    let mut cards: Vec<String> = std::fs::read_dir("/dev/dri")
        .map_err(|e| format!("/dev/dri: {e} (no DRM driver loaded?)"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("card"))
        .collect();
    cards.sort();
    for card in cards {
        let path = format!("/dev/dri/{card}");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{path}: {e}"))?;
        let name = driver_name(f.as_raw_fd())?;
        if name == want {
            return Ok((f, path));
        }
        found.push(format!("{path}: {name}"));
    }
    Err(format!(
        "no DRM card of driver {want} (found: {})",
        found.join(", ")
    ))
}

/// `hf-workload drm --driver NAME`: a dumb buffer of `--size` bytes (4 KiB rows of 32-bit
/// pixels), mapped at `--offset` past an `--align` boundary of a free range, `--thp`
/// madvised, written once per 4 KiB page, first to last or last to first (`--reverse`).
pub fn drm(o: &Opts) -> ExitCode {
    match run(o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hf-workload: drm: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: &Opts) -> Result<(), String> {
    let want = o.driver.as_deref().ok_or("drm needs --driver NAME")?;
    if o.size == 0 || !o.size.is_multiple_of(4096) {
        return Err("--size must be a positive multiple of 4 KiB".into());
    }
    let (card, path) = open_card(want)?;
    let fd = card.as_raw_fd();
    let mut create = CreateDumb {
        height: (o.size / 4096) as u32,
        width: 1024,
        bpp: 32,
        ..Default::default()
    };
    // SAFETY: the ioctl reads and fills one struct drm_mode_create_dumb.
    if unsafe {
        libc::ioctl(
            fd,
            DRM_IOCTL_MODE_CREATE_DUMB,
            &mut create as *mut CreateDumb,
        )
    } != 0
    {
        return Err(errno("DRM_IOCTL_MODE_CREATE_DUMB"));
    }
    let mut map = MapDumb {
        handle: create.handle,
        ..Default::default()
    };
    // SAFETY: the ioctl reads and fills one struct drm_mode_map_dumb.
    if unsafe { libc::ioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &mut map as *mut MapDumb) } != 0 {
        return Err(errno("DRM_IOCTL_MODE_MAP_DUMB"));
    }
    let start = map_shared_at(
        o,
        fd,
        map.offset,
        &format!("{path} at offset {:#x}", map.offset),
    )?;
    let pages = o.size / 4096;
    let before = rusage();
    for i in 0..pages {
        let page = if o.reverse { pages - 1 - i } else { i };
        // SAFETY: inside our own mapping; volatile so that every write happens.
        unsafe { std::ptr::write_volatile((start + page * 4096) as *mut u8, 1) };
    }
    let after = rusage();
    println!(
        "{{\"pid\":{},\"vma_start\":\"{:#x}\",\"vma_end\":\"{:#x}\",\"size\":{},\"touches\":{},\"minflt\":{},\"majflt\":{},\"driver\":\"{want}\",\"card\":\"{path}\",\"bo_size\":{},\"pitch\":{},\"reverse\":{}}}",
        std::process::id(),
        start,
        start + o.size,
        o.size,
        pages,
        after.0 - before.0,
        after.1 - before.1,
        create.size,
        create.pitch,
        o.reverse,
    );
    if o.hold_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(o.hold_ms));
    }
    // SAFETY: our own mapping and handle.
    unsafe {
        libc::munmap(start as *mut _, o.size);
        libc::ioctl(
            fd,
            DRM_IOCTL_MODE_DESTROY_DUMB,
            &create.handle as *const u32,
        );
    }
    Ok(())
}
