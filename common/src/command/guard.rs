//! The guard: a process that outlives the lesson just long enough to kill
//! the command's process group.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{self, killpg, SigHandler, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{self, ForkResult, Pid};

// ANCHOR: guard
/// A process that kills the command's process group when the lesson ends,
/// however it ends: it waits on a pipe that only the lesson can write to,
/// and the kernel closes the lesson's end when the lesson exits or is killed.
pub struct Guard {
    pid: Pid,
    /// The lesson's end of the pipe: first the group to kill, then nothing until it closes.
    lifeline: Option<OwnedFd>,
}

impl Guard {
    pub fn start() -> Result<Guard> {
        let (guards_end, lessons_end) = unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
        // SAFETY: the child only makes system calls (guard_main) and never returns.
        match unsafe { unistd::fork() }.context("fork")? {
            ForkResult::Child => guard_main(guards_end.as_raw_fd()),
            ForkResult::Parent { child } => Ok(Guard {
                pid: child,
                lifeline: Some(lessons_end),
            }),
        }
    }

    /// Tell the guard which process group to kill.
    pub fn watch(&self, group: Pid) -> Result<()> {
        let lifeline = self.lifeline.as_ref().expect("set until drop");
        let written = unistd::write(lifeline, &group.as_raw().to_ne_bytes());
        match written {
            Ok(4) => Ok(()),
            other => bail!("telling the guard the command's process group failed: {other:?}"),
        }
    }
}

/// The guard's whole life, in the forked child: only system calls, which
/// are safe after fork in a process that may have other threads.
fn guard_main(pipe: RawFd) -> ! {
    // Ctrl-C and the like are for the lesson; it decides when the command stops.
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
    ] {
        // SAFETY: ignoring a signal installs no handler.
        let _ = unsafe { signal::signal(signal, SigHandler::SigIgn) };
    }
    // Keep nothing of the lesson's open (BPF objects, stdout, the pipe's
    // other end) but the pipe: close_range(2) for the ranges around it.
    // Raw calls: neither nix 0.31 nor rustix 1.1 wraps close_range or _exit.
    // SAFETY: plain system calls on file descriptor numbers.
    unsafe {
        if pipe > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (pipe - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (pipe + 1) as u32, u32::MAX, 0u32);
    }
    // SAFETY: the pipe's descriptor stays open for the guard's life.
    let pipe = unsafe { std::os::fd::BorrowedFd::borrow_raw(pipe) };
    // First the group's pid (4 bytes); then read() returns 0 once the lesson is gone.
    let mut group = [0u8; 4];
    let mut got = 0;
    while got < group.len() {
        match unistd::read(pipe, &mut group[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    let mut byte = [0u8; 1];
    while matches!(unistd::read(pipe, &mut byte), Ok(1) | Err(Errno::EINTR)) {}
    if got == group.len() {
        let _ = killpg(Pid::from_raw(i32::from_ne_bytes(group)), Signal::SIGKILL);
    }
    // SAFETY: ends this process without running the lesson's exit handlers.
    unsafe { libc::_exit(0) }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Closing our end makes the guard kill what is left of the group, and exit.
        drop(self.lifeline.take());
        let _ = waitpid(self.pid, None);
    }
}
// ANCHOR_END: guard
