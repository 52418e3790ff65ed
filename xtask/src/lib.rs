//! Project tasks, as a library so the end-to-end tests can drive the VM runner.
//! xtask knows how to run things; it knows nothing about eBPF.

pub mod bench;
pub mod book;
pub mod build;
pub mod cmd;
pub mod deps;
pub mod exercise;
pub mod soak;
pub mod test;
pub mod try_lesson;
pub mod vm;
pub mod workspace;
