//! Shared plumbing for the unlink lessons' complete tools (step 3): what is
//! not the lesson's topic. Each lesson's `main.rs` keeps the eBPF part: open,
//! load, attach, the ring buffer and the poll loop.

pub mod cli;
pub mod command;
pub mod errno;
pub mod events;
pub mod failures;
pub mod lesson;
pub mod printk;
pub mod stop;
pub mod target;

pub use cli::{run, LessonArgs};
pub use events::{Event, RawEvent};
pub use failures::{Probe, Stage};
pub use lesson::{Lesson, Output, Watch, TICK};
