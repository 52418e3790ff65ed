//! Shared plumbing for the unlink lessons, so each lesson's `main.rs` is only
//! about its probes: open, load, attach, watch.

pub mod cli;
pub mod command;
pub mod errno;
pub mod events;
pub mod failures;
pub mod kernel_btf;
pub mod lesson;
pub mod printk;
pub mod stop;
pub mod target;

pub use cli::{run, LessonArgs};
pub use failures::{Probe, Stage};
pub use lesson::Lesson;
