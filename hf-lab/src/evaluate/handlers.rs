//! Which `huge_fault` handler served each of a scenario's VMAs, by the scenario's mapping
//! kind: the kernel's own handlers for DAX, the lab driver's on the kernels that ask it,
//! none for anonymous memory, hugetlbfs and shmem. The tool must name exactly that one.

use serde_json::Value;

/// What a kind's VMAs must show in `handlers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// `[]`: no fault asked a `huge_fault` handler.
    None,
    /// One handler, asked by some faults.
    By(&'static str),
    /// One handler, asked by every fault (DAX asks its handler on the PTE path too).
    ByEvery(&'static str),
}

/// The expectation for a scenario `kind` on kernel `(major, minor)`; `None`: not checked.
pub fn expected(kind: &str, version: (u32, u32)) -> Option<Served> {
    match kind {
        "anonymous THP" | "hugetlbfs" | "shmem THP" => Some(Served::None),
        "devdax" => Some(Served::ByEvery("dev_dax_huge_fault [device_dax]")),
        "fsdax" => Some(Served::ByEvery("ext4_dax_huge_fault [ext4]")),
        // Before 6.12 the kernel never asks a PFNMAP VMA's huge_fault.
        "GPU driver" if version >= (6, 12) => Some(Served::By("hfgpu_huge_fault [hfgpu]")),
        "GPU driver" => Some(Served::None),
        // 6.12+: every fault asks vfio-pci's handler, the PTE ones through its `fault`
        // handler's order-0 call; 6.1 has none.
        "vfio-pci" if version >= (6, 12) => {
            Some(Served::ByEvery("vfio_pci_mmap_huge_fault [vfio_pci_core]"))
        }
        "vfio-pci" => Some(Served::None),
        // TTM has had no huge_fault since 5.16.
        "DRM TTM" => Some(Served::None),
        // The GEM shmem helpers' handler, asked by the faults that insert (the PTE ones
        // through the `fault` handler's order-0 call), not by the write-protect ones.
        "DRM GEM shmem" if version >= crate::scenarios::SHMEM_HUGE_SINCE => {
            Some(Served::By("drm_gem_shmem_any_fault [drm_shmem_helper]"))
        }
        "DRM GEM shmem" => Some(Served::None),
        _ => None,
    }
}

/// Whether a VMA row's `handlers` meets `want`, and what it was, in words.
pub fn meets(row: &Value, want: Served) -> (bool, Value) {
    let got = row["handlers"].clone();
    let list = got.as_array();
    let ok = match (want, list.map(Vec::as_slice)) {
        (Served::None, Some([])) => true,
        (Served::By(h), Some([one])) => one["handler"] == h && one["faults"].as_u64() > Some(0),
        (Served::ByEvery(h), Some([one])) => one["handler"] == h && one["faults"] == row["faults"],
        _ => false,
    };
    (ok, got)
}

/// The expectation in words, for the check's `expected`.
pub fn describe(want: Served) -> Value {
    match want {
        Served::None => Value::from("[]"),
        Served::By(h) => Value::from(format!("{h}, asked by some faults")),
        Served::ByEvery(h) => Value::from(format!("{h}, asked by every fault")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_meets_its_kinds_handler_exactly() {
        let dax = json!({"faults": 4, "handlers": [{"handler": "dev_dax_huge_fault [device_dax]", "faults": 4}]});
        let want = expected("devdax", (6, 1)).unwrap();
        assert!(meets(&dax, want).0);
        let some = json!({"faults": 5, "handlers": [{"handler": "dev_dax_huge_fault [device_dax]", "faults": 4}]});
        assert!(!meets(&some, want).0, "DAX asks at every fault");
        let drv = expected("GPU driver", (6, 12)).unwrap();
        let asked = json!({"faults": 4, "handlers": [{"handler": "hfgpu_huge_fault [hfgpu]", "faults": 3}]});
        assert!(meets(&asked, drv).0);
        // 6.1 never asks a PFNMAP VMA: none, and `null` (not known) is not none.
        let none = expected("GPU driver", (6, 1)).unwrap();
        assert!(meets(&json!({"faults": 4, "handlers": []}), none).0);
        assert!(!meets(&json!({"faults": 4, "handlers": null}), none).0);
        assert!(!meets(&asked, none).0);
        // Two handlers, or another one, never meet one.
        let two = json!({"faults": 4, "handlers": [
            {"handler": "hfgpu_huge_fault [hfgpu]", "faults": 3},
            {"handler": "x_huge_fault", "faults": 1}]});
        assert!(!meets(&two, drv).0);
        assert_eq!(expected("hugetlbfs", (7, 2)), Some(Served::None));
        // vfio-pci: every fault asks its handler on 6.12+ (PTE faults too), none on 6.1.
        let vfio = expected("vfio-pci", (6, 12)).unwrap();
        let every = json!({"faults": 3, "handlers": [{"handler": "vfio_pci_mmap_huge_fault [vfio_pci_core]", "faults": 3}]});
        assert!(meets(&every, vfio).0);
        let partly = json!({"faults": 3, "handlers": [{"handler": "vfio_pci_mmap_huge_fault [vfio_pci_core]", "faults": 2}]});
        assert!(!meets(&partly, vfio).0);
        assert_eq!(expected("vfio-pci", (6, 1)), Some(Served::None));
        assert_eq!(expected("something else", (7, 2)), None);
        // DRM: TTM never has a handler; GEM shmem's is asked by the faults that insert
        // (not by the write-protect ones) on the kernels that have it.
        assert_eq!(expected("DRM TTM", (7, 2)), Some(Served::None));
        assert_eq!(expected("DRM GEM shmem", (6, 12)), Some(Served::None));
        let shmem = expected("DRM GEM shmem", (7, 2)).unwrap();
        let half = json!({"faults": 2048, "handlers": [{"handler": "drm_gem_shmem_any_fault [drm_shmem_helper]", "faults": 1024}]});
        assert!(meets(&half, shmem).0);
    }
}
