//! huge-fault: which page-table level each page fault ended at, why it fell back, what it
//! cost, per mapping.
//!
//! The analysis core ([`analysis`], [`hist`], [`report`]) is plain Rust, fed by the live
//! ring buffer ([`live`]) or by recorded records alike. Kernel knowledge is in [`kernel`].

pub mod analysis;
pub mod btf;
pub mod cli;
pub mod hist;
pub mod kernel;
pub mod live;
pub mod procmaps;
pub mod record;
pub mod report;
pub mod symbols;
pub mod threshold;
pub mod whatif;
