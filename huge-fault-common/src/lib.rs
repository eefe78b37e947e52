//! Types shared by the huge-fault eBPF programs and the userspace tool.
//!
//! Everything here is `#[repr(C)]`, fixed-size and free of pointers, so that the kernel side
//! can write it into a ring buffer and the user side can copy it out with `read_unaligned`.
//! The crate is `no_std` for the BPF target and unit-tested on the host.
#![cfg_attr(not(test), no_std)]

pub mod aggregate;
pub mod chain;
pub mod config;
pub mod inflight;
pub mod kabi;
pub mod latency;
pub mod level;
pub mod record;

pub use aggregate::AggKey;
pub use chain::{
    MAX_CHAIN, Mapping, NO_PFN, PFN_MASK, STEP_PRESENT, STEP_VIA_RANGE, STEP_VMA_LOCK, step,
};
pub use config::{
    Filter, KernelOffsets, PageWalk, Settings, ThpNow, ThpSettings, counter, metrics, thp,
};
pub use inflight::InFlight;
pub use level::Level;
pub use record::{FaultRecord, rflags, source};

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain repr(C) structs of integers with explicit padding.
    unsafe impl aya::Pod for super::FaultRecord {}
    unsafe impl aya::Pod for super::InFlight {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::Filter {}
    unsafe impl aya::Pod for super::Mapping {}
    unsafe impl aya::Pod for super::AggKey {}
    unsafe impl aya::Pod for super::Settings {}
    unsafe impl aya::Pod for super::ThpSettings {}
    unsafe impl aya::Pod for super::ThpNow {}
    unsafe impl aya::Pod for super::PageWalk {}
}
