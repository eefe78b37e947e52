//! The huge-fault kernel lab: scenarios run against real Debian kernels in QEMU, their
//! expectations as data and their evaluation, the protocol the guest speaks to the host,
//! and the benchmarks. Test infrastructure only: none of it ships with huge-fault.
//!
//! The guest side (`hf-lab-init`, PID 1 of the lab guest) runs each scenario's workload
//! (`hf-workload`) under huge-fault and calls [`evaluate::evaluate`]; the host side
//! (`cargo xtask lab`) boots the kernels and reads the guest's [`protocol::Line`]s.

pub mod bench;
pub mod bpf_objects;
pub mod check;
pub mod evaluate;
pub mod parse;
pub mod protocol;
pub mod scenarios;
