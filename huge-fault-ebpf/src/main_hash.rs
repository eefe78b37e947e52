//! The same programs as `main.rs`, with the per-thread state in a hash map instead of task
//! local storage: the object the tool loads on kernels without task storage in tracing
//! programs (see `store_hash.rs`).

#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod anon_thp;
mod ctx;
mod emit;
mod maps;
mod probes;
mod state;
#[path = "store_hash.rs"]
mod store;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
