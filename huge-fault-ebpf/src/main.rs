//! huge-fault's eBPF programs: the fault lifecycle.
//!
//! Three ways to see a fault, chosen by the tool per kernel:
//! - fentry/fexit on `handle_mm_fault` (BTF-typed arguments, cheapest);
//! - kprobe/kretprobe on `handle_mm_fault` (any kernel with CONFIG_KPROBES);
//! - tracepoint-only: `exceptions:page_fault_{user,kernel}` stamp the entry, and the perf
//!   software events `minor-faults` / `major-faults` (raised by `mm_account_fault` when a
//!   fault completes without VM_FAULT_RETRY or an error) close it. This mode sees neither
//!   return codes nor retried calls, and says so.
//!
//! Every mode writes one fixed-size `FaultRecord` per fault into `EVENTS` (or counts its
//! class in `AGGREGATE`).

#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

include!("programs.rs");

#[path = "store_task.rs"]
mod store;
