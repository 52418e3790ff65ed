//! Parsers for the system files the doctor reads: each takes text, never fails,
//! and never panics on garbage (property-tested in each module).

pub mod config;
pub mod kallsyms;
pub mod limits;
pub mod mountinfo;
pub mod os_release;
