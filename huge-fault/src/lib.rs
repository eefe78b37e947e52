//! huge-fault: which page-table level each page fault ended at, why it fell back, what it
//! cost, per mapping.
//!
//! Data flows one way: kernel records ([`loader`], [`trace`]) → decode and analysis
//! ([`analysis`], [`whatif`], [`hist`]) → the report ([`report`], [`threshold`]). The
//! analysis is plain Rust, fed by the live ring buffer or by a recording ([`record`]) alike.
//! Kernel knowledge is in [`kernel`]; what several layers share is in the leaf modules
//! [`run_info`] and [`vma`].

pub mod analysis;
pub mod app;
pub mod btf;
pub mod cli;
pub mod error;
pub mod hist;
pub mod host;
pub mod kernel;
pub mod loader;
pub mod metrics;
pub mod output;
pub mod procmaps;
pub mod record;
pub mod report;
pub mod run_info;
pub mod stdio;
pub mod symbols;
pub mod threshold;
pub mod trace;
pub mod vma;
pub mod whatif;
