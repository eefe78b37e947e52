//! A BAR of a PCI device bound to vfio-pci, mapped the way a VMM maps a passed-through GPU's
//! BAR: a type1 container, the device's group, the device fd, then `mmap` of the region at
//! a chosen virtual address (MAP_FIXED_NOREPLACE: vfio-pci picks no aligned address itself)
//! and BAR offset; then touched, with the same ground-truth line as the other workloads.

use std::{ffi::CString, os::fd::AsRawFd as _, process::ExitCode};

use crate::{Opts, errno, map_shared_at, rusage, touch};

/// The VFIO ioctls (`include/uapi/linux/vfio.h`: `_IO(';', 100 + n)`).
const VFIO_GET_API_VERSION: libc::c_ulong = 0x3b64;
const VFIO_CHECK_EXTENSION: libc::c_ulong = 0x3b65;
const VFIO_SET_IOMMU: libc::c_ulong = 0x3b66;
const VFIO_GROUP_GET_STATUS: libc::c_ulong = 0x3b67;
const VFIO_GROUP_SET_CONTAINER: libc::c_ulong = 0x3b68;
const VFIO_GROUP_GET_DEVICE_FD: libc::c_ulong = 0x3b6a;
const VFIO_DEVICE_GET_REGION_INFO: libc::c_ulong = 0x3b6c;
const VFIO_API_VERSION: i32 = 0;
const VFIO_TYPE1V2_IOMMU: libc::c_ulong = 3;
const VFIO_GROUP_FLAGS_VIABLE: u32 = 1;
const VFIO_REGION_INFO_FLAG_MMAP: u32 = 4;
/// `VFIO_PCI_BAR2_REGION_INDEX`: ivshmem's shared memory is BAR 2.
const BAR2: u32 = 2;

/// `struct vfio_group_status`.
#[repr(C)]
struct GroupStatus {
    argsz: u32,
    flags: u32,
}

/// `struct vfio_region_info`.
#[repr(C)]
#[derive(Default)]
struct RegionInfo {
    argsz: u32,
    flags: u32,
    index: u32,
    cap_offset: u32,
    size: u64,
    offset: u64,
}

/// The first device bound to vfio-pci (`--path` names another), e.g. `0000:00:05.0`.
fn bound_device(o: &Opts) -> Result<String, String> {
    if let Some(p) = &o.path {
        return Ok(p.clone());
    }
    let dir = "/sys/bus/pci/drivers/vfio-pci";
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{dir}: {e} (is vfio-pci loaded?)"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 12 && n.as_bytes()[4] == b':' && n.as_bytes()[10] == b'.')
        .collect();
    names.sort();
    names
        .into_iter()
        .next()
        .ok_or(format!("no device is bound to vfio-pci ({dir})"))
}

fn open_rw(path: &str) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))
}

/// The device's fd, its group and container kept open beside it, and BAR 2's region.
struct Device {
    _container: std::fs::File,
    _group: std::fs::File,
    fd: i32,
    region: RegionInfo,
    group_id: String,
}

fn open_device(dev: &str) -> Result<Device, String> {
    let link = format!("/sys/bus/pci/devices/{dev}/iommu_group");
    let group_id = std::fs::read_link(&link)
        .map_err(|e| format!("{link}: {e} (no IOMMU group: is the IOMMU on?)"))?
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or(format!("{link}: no group number"))?;
    let container = open_rw("/dev/vfio/vfio")?;
    let c = container.as_raw_fd();
    // SAFETY: ioctls without arguments, or with a plain integer.
    unsafe {
        if libc::ioctl(c, VFIO_GET_API_VERSION) != VFIO_API_VERSION {
            return Err("VFIO_GET_API_VERSION: not version 0".into());
        }
        if libc::ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1V2_IOMMU) != 1 {
            return Err("VFIO_CHECK_EXTENSION: no type1v2 IOMMU".into());
        }
    }
    let group = open_rw(&format!("/dev/vfio/{group_id}"))?;
    let g = group.as_raw_fd();
    let mut status = GroupStatus {
        argsz: std::mem::size_of::<GroupStatus>() as u32,
        flags: 0,
    };
    // SAFETY: the ioctl fills one struct vfio_group_status.
    if unsafe { libc::ioctl(g, VFIO_GROUP_GET_STATUS, &mut status as *mut GroupStatus) } != 0 {
        return Err(errno("VFIO_GROUP_GET_STATUS"));
    }
    if status.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
        return Err(format!(
            "group {group_id} is not viable (a device in it is bound elsewhere)"
        ));
    }
    // SAFETY: the ioctl reads one int, the container's fd.
    if unsafe { libc::ioctl(g, VFIO_GROUP_SET_CONTAINER, &c as *const i32) } != 0 {
        return Err(errno("VFIO_GROUP_SET_CONTAINER"));
    }
    // SAFETY: an ioctl with a plain integer.
    if unsafe { libc::ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1V2_IOMMU) } != 0 {
        return Err(errno("VFIO_SET_IOMMU (type1v2)"));
    }
    let name = CString::new(dev).map_err(|_| "device name with a NUL".to_string())?;
    // SAFETY: the ioctl reads a NUL-terminated device name.
    let fd = unsafe { libc::ioctl(g, VFIO_GROUP_GET_DEVICE_FD, name.as_ptr()) };
    if fd < 0 {
        return Err(errno("VFIO_GROUP_GET_DEVICE_FD"));
    }
    let mut region = RegionInfo {
        argsz: std::mem::size_of::<RegionInfo>() as u32,
        index: BAR2,
        ..Default::default()
    };
    // SAFETY: the ioctl fills one struct vfio_region_info.
    if unsafe {
        libc::ioctl(
            fd,
            VFIO_DEVICE_GET_REGION_INFO,
            &mut region as *mut RegionInfo,
        )
    } != 0
    {
        return Err(errno("VFIO_DEVICE_GET_REGION_INFO (BAR 2)"));
    }
    if region.flags & VFIO_REGION_INFO_FLAG_MMAP == 0 {
        return Err(format!("BAR 2 of {dev} cannot be mmapped"));
    }
    Ok(Device {
        _container: container,
        _group: group,
        fd,
        region,
        group_id,
    })
}

/// `hf-workload vfio`: BAR 2 of the vfio-pci device at `--bo-offset`, `--size` bytes, at
/// `--offset` past an `--align` boundary of a reservation that owns that whole block (so no
/// other mapping shares its page tables); `--thp always|never` madvises it.
pub fn vfio(o: &Opts) -> ExitCode {
    match run(o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hf-workload: vfio: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: &Opts) -> Result<(), String> {
    let dev = bound_device(o)?;
    let d = open_device(&dev)?;
    if (o.bo_offset + o.size) as u64 > d.region.size {
        return Err(format!(
            "{} bytes at BAR offset {:#x} do not fit the {}-byte BAR",
            o.size, o.bo_offset, d.region.size
        ));
    }
    let start = map_shared_at(
        o,
        d.fd,
        d.region.offset + o.bo_offset as u64,
        &format!("BAR 2 at offset {:#x}", o.bo_offset),
    )?;
    let before = rusage();
    let touched = touch(start, o.size, o.stride.unwrap_or(4096));
    let after = rusage();
    println!(
        "{{\"pid\":{},\"vma_start\":\"{:#x}\",\"vma_end\":\"{:#x}\",\"size\":{},\"bo_offset\":{},\"touches\":{},\"minflt\":{},\"majflt\":{},\"device\":\"{dev}\",\"iommu_group\":\"{}\",\"bar_size\":{}}}",
        std::process::id(),
        start,
        start + o.size,
        o.size,
        o.bo_offset,
        touched,
        after.0 - before.0,
        after.1 - before.1,
        d.group_id,
        d.region.size,
    );
    if o.hold_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(o.hold_ms));
    }
    // SAFETY: the device fd is ours; closing it after the mapping is gone.
    unsafe {
        libc::munmap(start as *mut _, o.size);
        libc::close(d.fd);
    }
    Ok(())
}
