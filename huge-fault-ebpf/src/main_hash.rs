//! The same programs as `main.rs`, with the per-thread state in a hash map instead of task
//! local storage: the object the tool loads on kernels without task storage in tracing
//! programs (see `store_hash.rs`).

#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

include!("programs.rs");

#[path = "store_hash.rs"]
mod store;
