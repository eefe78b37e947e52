//! Faults counted in the kernel by class instead of recorded one by one.

use crate::{
    chain::{MAX_CHAIN, Mapping, NO_PFN},
    latency,
    record::{FaultRecord, rflags},
};

/// Classes the kernel's `AGGREGATE` table holds.
pub const CLASSES: u32 = 65536;

/// A class of faults counted in the kernel instead of recorded one by one: every field of
/// a [`FaultRecord`] the analysis reads, less what is unique to one fault (thread, address,
/// times, first and last entry, pfns), with the latency as a [`latency`] bucket. The
/// `AGGREGATE` map counts faults per class. 176 bytes, 8-byte aligned, zero padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AggKey {
    pub vma_start: u64,
    pub vma_end: u64,
    pub vma_flags: u64,
    pub vma_pgoff: u64,
    pub inode: u64,
    /// The faulting page when the kernel did not give the VMA (user space looks it up);
    /// 0 when it did.
    pub address: u64,
    pub dev: u32,
    pub tgid: u32,
    pub fault_flags: u32,
    pub ret: u32,
    pub error_code: u32,
    /// [`latency::bucket`] of the fault's latency, [`latency::NONE`] when unknown.
    pub latency_bucket: u32,
    pub source: u8,
    /// [`Mapping::handler`]: the class keeps which `huge_fault` handler was asked.
    pub handler: u8,
    /// [`rflags`] bits.
    pub flags: u16,
    /// As in [`FaultRecord`]: the class's retried calls per fault.
    pub retries: u16,
    pub vma_lock_retries: u16,
    pub comm: [u8; 16],
    pub entries: [u32; 4],
    pub chain: [u32; MAX_CHAIN],
    pub repeat: [u16; MAX_CHAIN],
    pub chain_len: u16,
    pub _pad_chain: u16,
    pub overflow: u32,
    pub pfn_missing: u32,
    pub _pad2: u32,
}

impl AggKey {
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// A record that the analysis reads as this class's faults: the latency is the bucket's
    /// upper bound, first and last entries and pfns are unknown.
    pub fn to_record(&self) -> FaultRecord {
        let mut flags = self.flags & !rflags::HAS_START;
        let end_ns = if self.latency_bucket == latency::NONE {
            0
        } else {
            flags |= rflags::HAS_START;
            latency::upper(self.latency_bucket)
        };
        if self.address != 0 {
            flags |= rflags::HAS_ADDRESS;
        }
        FaultRecord {
            start_ns: 0,
            end_ns,
            address: self.address,
            vma_start: self.vma_start,
            vma_end: self.vma_end,
            vma_flags: self.vma_flags,
            vma_pgoff: self.vma_pgoff,
            inode: self.inode,
            dev: self.dev,
            tgid: self.tgid,
            fault_flags: self.fault_flags,
            ret: self.ret,
            error_code: self.error_code,
            source: self.source,
            flags,
            retries: self.retries,
            vma_lock_retries: self.vma_lock_retries,
            comm: self.comm,
            mapping: Mapping {
                entries: self.entries,
                chain: self.chain,
                repeat: self.repeat,
                chain_len: self.chain_len,
                overflow: self.overflow,
                first_pfn: [NO_PFN; 4],
                last_pfn: [NO_PFN; 4],
                pfn_missing: self.pfn_missing,
                handler: self.handler,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Copies a key out of bytes (which need not be aligned); `None` when too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: at least SIZE bytes; every bit pattern is a valid AggKey.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }

    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: repr(C) with explicit padding fields: every byte is initialised.
        unsafe { core::slice::from_raw_parts((self as *const Self).cast::<u8>(), Self::SIZE) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{chain::step, level, record::source};

    #[test]
    fn aggregate_key_layout_is_fixed() {
        assert_eq!(AggKey::SIZE, 176);
        assert_eq!(core::mem::align_of::<AggKey>(), 8);
        assert_eq!(core::mem::offset_of!(AggKey, comm), 80);
        assert_eq!(core::mem::offset_of!(AggKey, _pad2), 172);
    }

    #[test]
    fn an_aggregate_key_reads_as_a_record_of_its_class() {
        let k = AggKey {
            vma_start: 0x1000,
            vma_end: 0x9000,
            tgid: 7,
            ret: 0x4,
            latency_bucket: latency::bucket(3000),
            source: source::KRETPROBE,
            flags: rflags::HAS_VMA | rflags::HAS_RET | rflags::HAS_MAPPING,
            entries: [0, 2, 0, 0],
            chain: [step(level::PMD, 0x800), 0, 0, 0, 0, 0, 0, 0],
            chain_len: 1,
            ..Default::default()
        };
        let r = k.to_record();
        assert!(r.has(rflags::HAS_START) && !r.has(rflags::HAS_ADDRESS));
        assert_eq!(r.latency_ns(), Some(latency::upper(latency::bucket(3000))));
        assert_eq!(r.mapping.step(0), Some((level::PMD, 0x800)));
        assert_eq!(r.mapping.first_pfn, [NO_PFN; 4]);
        assert_eq!(AggKey::from_bytes(k.as_bytes()), Some(k));
        let none = AggKey {
            latency_bucket: latency::NONE,
            address: 0x5000,
            ..k
        };
        let r = none.to_record();
        assert_eq!(r.latency_ns(), None);
        assert_eq!(r.address, 0x5000);
        assert!(r.has(rflags::HAS_ADDRESS));
    }
}
