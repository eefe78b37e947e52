// The modules and items both objects share, included by `main.rs` and `main_hash.rs` after
// their crate attributes and before the `store` module each picks.

mod anon_thp;
mod ctx;
mod emit;
mod maps;
mod pagetable;
mod probes;
mod state;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
