//! Shared plumbing for the unlink lessons' complete tools (step 3): what is
//! not the lesson's topic. Each lesson's `main.rs` keeps the eBPF part: open,
//! load, attach, the ring buffer and the poll loop.

pub mod catalogue;
pub mod classify;
pub mod cli;
pub mod command;
pub mod errno;
pub mod events;
pub mod facts;
pub mod kallsyms;
pub mod lesson;
pub mod libbpf_log;
pub mod printk;
pub mod probe;
pub mod stop;
pub mod target;

pub use cli::{run, LessonArgs};
pub use events::{Event, RawEvent};
pub use lesson::{Lesson, Output, Watch, TICK};
pub use probe::{Probe, Stage};
