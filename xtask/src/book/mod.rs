//! `cargo xtask book ...`: the mdBook in book/, English and 中文 in one book.
//! Install the pinned tools, build, serve, capture the terminal transcripts
//! from real runs, and check everything CI checks about the book.

mod browser;
mod check;
mod html;
mod install;
mod problems;
mod search;
mod server;
mod source;
mod spacing;
mod transcripts;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use rustix::pipe::PipeFlags;

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
    rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .context("creating a pipe")
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use rustix::io::{fcntl_getfd, FdFlags};

    #[test]
    fn pipe_ends_connect_and_close_on_exec() {
        let (read, write) = super::pipe().unwrap();
        for end in [&read, &write] {
            assert!(fcntl_getfd(end).unwrap().contains(FdFlags::CLOEXEC));
        }
        std::fs::File::from(write).write_all(b"hi").unwrap();
        let mut got = String::new();
        std::fs::File::from(read).read_to_string(&mut got).unwrap();
        assert_eq!(got, "hi");
    }
}
