#![no_std]
// The library target only exists so that the userspace crate can name this package as a
// build dependency (cache invalidation); the programs live in main.rs.
