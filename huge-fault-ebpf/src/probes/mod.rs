//! The programs, one file per probe family. Program names are the object's contract with
//! the tool's probe table (`huge_fault::kernel::probes`), checked by its verifier test.

mod fork;
mod huge_fault;
mod insert;
mod lifecycle;
mod thp;
mod tracepoint;
