//! Emulated NVDIMMs turned into the devdax and fsdax devices the DAX scenarios use.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use hf_lab::scenarios::{DAX_1G, DAX_2M, FSDAX_ALIGNED, FSDAX_PLAIN};

use crate::system::{mount, read_trim, write_sysfs};

/// Turns the label-less namespace of each emulated NVDIMM region into a devdax device, as
/// `ndctl create-namespace -f -e namespaceN.0 -m devdax -a ALIGN` does: unbind the
/// namespace, configure the region's dax seed (uuid, metadata in pmem, alignment,
/// namespace) and bind it. The 4 GiB region gets 1 GiB alignment, the other 2 MiB.
/// /dev/hf-dax-1g and /dev/hf-dax-2m then point at the character devices.
pub fn setup_dax() -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let regions = loop {
        let mut r: Vec<String> = std::fs::read_dir("/sys/bus/nd/devices")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("region"))
                    .collect()
            })
            .unwrap_or_default();
        r.sort();
        if r.len() >= 4 {
            break r;
        }
        if Instant::now() > deadline {
            return Err(format!("expected 4 NVDIMM regions, found {r:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut fsdax = 0;
    for (i, region) in regions.iter().enumerate() {
        let base = format!("/sys/bus/nd/devices/{region}");
        let size: u64 = read_trim(&format!("{base}/size"))
            .and_then(|s| s.parse().ok())
            .ok_or(format!("{region}: no size"))?;
        let n = region.trim_start_matches("region");
        let ns = format!("namespace{n}.0");
        let ns_dir = format!("/sys/bus/nd/devices/{ns}");
        // 4 GiB: devdax 1 GiB; 2 GiB: devdax 2 MiB; 1 GiB: fsdax (plain, then aligned mkfs).
        let (seed, align, link) = if size >= 3 << 30 {
            ("dax_seed", 1u64 << 30, DAX_1G)
        } else if size >= 3 << 29 {
            ("dax_seed", 2 << 20, DAX_2M)
        } else {
            fsdax += 1;
            (
                "pfn_seed",
                2 << 20,
                if fsdax == 1 {
                    "/dev/hf-pmem-plain"
                } else {
                    "/dev/hf-pmem-aligned"
                },
            )
        };
        if std::path::Path::new(&format!("{ns_dir}/driver")).exists() {
            write_sysfs(&format!("{ns_dir}/driver/unbind"), &ns)?;
        }
        let dev_name =
            read_trim(&format!("{base}/{seed}")).ok_or(format!("{region}: no {seed}"))?;
        let dev_dir = format!("/sys/bus/nd/devices/{dev_name}");
        write_sysfs(
            &format!("{dev_dir}/uuid"),
            &format!("6866642d-6461-4000-8000-00000000000{i}"),
        )?;
        write_sysfs(&format!("{dev_dir}/mode"), "pmem")?;
        write_sysfs(&format!("{dev_dir}/align"), &align.to_string())?;
        write_sysfs(&format!("{dev_dir}/namespace"), &ns)?;
        let drivers: Vec<_> = std::fs::read_dir("/sys/bus/nd/drivers")
            .map_err(|e| format!("/sys/bus/nd/drivers: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        for d in &drivers {
            let _ = std::fs::write(d.join("bind"), &dev_name);
            if std::path::Path::new(&format!("{dev_dir}/driver")).exists() {
                break;
            }
        }
        if !std::path::Path::new(&format!("{dev_dir}/driver")).exists() {
            return Err(format!(
                "no driver bound {dev_name} ({region}, align {align})"
            ));
        }
        // The device node: /dev/daxR.* for devdax, /dev/pmemR for fsdax.
        let prefix = if seed == "dax_seed" {
            format!("dax{n}.")
        } else {
            format!("pmem{n}")
        };
        let dev = loop {
            let found = std::fs::read_dir("/dev").ok().and_then(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .find(|f| f == &prefix || (f.starts_with(&prefix) && seed == "dax_seed"))
            });
            if let Some(f) = found {
                break format!("/dev/{f}");
            }
            if Instant::now() > deadline {
                return Err(format!("no /dev/{prefix}* after binding {dev_name}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        std::os::unix::fs::symlink(&dev, link).map_err(|e| format!("{link}: {e}"))?;
        println!(
            "init: {region} ({} MiB) -> {dev} align {align} as {link}",
            size >> 20
        );
        if seed == "pfn_seed" {
            let (target, extra): (&str, &[&str]) = if fsdax == 1 {
                (FSDAX_PLAIN, &[])
            } else {
                // 2 MiB stripes make ext4's allocator hand out 2 MiB-aligned extents.
                (
                    FSDAX_ALIGNED,
                    &["-b", "4096", "-E", "stride=512,stripe_width=512"],
                )
            };
            let out = Command::new("/usr/sbin/mkfs.ext4")
                .args(["-q", "-F"])
                .args(extra)
                .arg(&dev)
                .output()
                .map_err(|e| format!("mkfs.ext4: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "mkfs.ext4 {dev}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            mount(&dev, target, "ext4", Some("dax"))?;
            println!(
                "init: {dev} mkfs.ext4 {} mounted -o dax on {target}",
                extra.join(" ")
            );
        }
    }
    Ok(())
}
