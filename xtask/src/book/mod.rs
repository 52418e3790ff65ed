//! `cargo xtask book ...`: the mdBook in book/, English and 中文 in one book.
//! Install the pinned tools, build, serve, capture the terminal transcripts
//! from real runs, and check everything CI checks about the book.

mod browser;
mod check;
mod html;
mod install;
mod search;
mod server;
mod source;
mod spacing;
mod transcripts;

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{cmd, deps, workspace};

#[derive(clap::Subcommand)]
pub enum Task {
    /// Install the pinned mdBook into target/tools, and Chromium with CJK fonts (apt, as root)
    Install,
    /// Build the book into book/book
    Build,
    /// Serve the book with live reload on http://127.0.0.1:PORT
    Serve {
        #[arg(long, default_value_t = 3000)]
        port: u16,
    },
    /// Capture book/src/transcripts/*.txt from real runs (natively and in the VM)
    Transcripts {
        /// Only these transcripts (file names, e.g. lesson-03-vm-arm64-5.10.txt); all by default
        files: Vec<String>,
    },
    /// Everything CI checks: sources, build, links, search, a real browser, transcripts
    Check,
}

pub fn run(task: Task) -> Result<()> {
    match task {
        Task::Install => install::run(),
        Task::Build => build(&dir().join("book")),
        Task::Serve { port } => {
            let mdbook = prepare()?;
            cmd::run(Command::new(mdbook).arg("serve").arg(dir()).args([
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ]))
        }
        Task::Transcripts { files } => transcripts::capture(&files),
        Task::Check => check::run(),
    }
}

/// The book's root: book.toml, src/, theme/, preprocessor/.
pub fn dir() -> PathBuf {
    workspace::root().join("book")
}

/// mdBook and what book.toml runs, installed; the path to mdbook.
fn prepare() -> Result<PathBuf> {
    deps::ensure(&[install::BUILD])?;
    install::mdbook()
}

/// Build the HTML book into `dest`.
fn build(dest: &Path) -> Result<()> {
    let mdbook = prepare()?;
    cmd::run(
        Command::new(mdbook)
            .arg("build")
            .arg(dir())
            .arg("--dest-dir")
            .arg(dest),
    )
}

/// A pipe whose ends are closed on exec (a child gets them through Stdio or dup2).
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("creating a pipe");
    }
    // SAFETY: pipe2 just opened both, and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
