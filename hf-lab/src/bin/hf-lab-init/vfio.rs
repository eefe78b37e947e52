//! The vfio-pci scenarios' device: the second ivshmem device (its slot fixed by the host's
//! QEMU command line) kept from the lab driver and bound to vfio-pci, behind the emulated
//! IOMMU.

use hf_lab::scenarios::VFIO_PCI_DEVICE;

use crate::system::{read_trim, write_sysfs};

/// Before the modules load: marks the device for vfio-pci (`driver_override`), so that the
/// lab driver, which takes every ivshmem device, leaves it alone and vfio-pci binds it.
pub fn reserve_device() -> Result<(), String> {
    let dir = format!("/sys/bus/pci/devices/{VFIO_PCI_DEVICE}");
    let id = (
        read_trim(&format!("{dir}/vendor")),
        read_trim(&format!("{dir}/device")),
    );
    if id != (Some("0x1af4".into()), Some("0x1110".into())) {
        return Err(format!("{dir}: no ivshmem device there ({id:?})"));
    }
    write_sysfs(&format!("{dir}/driver_override"), "vfio-pci")
}

/// After the modules load: the device is bound to vfio-pci, in an IOMMU group, and the
/// container device exists.
pub fn check_bound(reserved: Result<(), String>) -> Result<(), String> {
    reserved?;
    let dir = format!("/sys/bus/pci/devices/{VFIO_PCI_DEVICE}");
    let driver = std::fs::read_link(format!("{dir}/driver"))
        .map_err(|e| format!("{dir}/driver: {e} (vfio-pci did not bind it)"))?;
    if !driver.ends_with("vfio-pci") {
        return Err(format!(
            "{VFIO_PCI_DEVICE} is bound to {}",
            driver.display()
        ));
    }
    let group = std::fs::read_link(format!("{dir}/iommu_group"))
        .map_err(|e| format!("{dir}/iommu_group: {e} (is the IOMMU on?)"))?;
    let group = group
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    for dev in ["/dev/vfio/vfio".to_string(), format!("/dev/vfio/{group}")] {
        if !std::path::Path::new(&dev).exists() {
            return Err(format!("{dev} does not exist"));
        }
    }
    Ok(())
}
