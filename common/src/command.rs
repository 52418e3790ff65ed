//! `-- COMMAND`: start the command held at a gate, so its pid can be put in
//! the BPF filter before it runs a single instruction of its own.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ExitStatus};

use anyhow::{Context, Result};

/// A child process that waits before exec until [`GatedChild::release`].
pub struct GatedChild {
    child: Child,
    gate: Option<OwnedFd>,
}

impl GatedChild {
    pub fn spawn(argv: &[OsString]) -> Result<GatedChild> {
        let (program, args) = argv.split_first().context("no command given after --")?;
        let (wait_end, release_end) = pipe()?;
        let wait_fd = wait_end.as_raw_fd();
        let release_fd = release_end.as_raw_fd();
        let mut command = std::process::Command::new(program);
        command.args(args);
        // SAFETY: the closure runs between fork and exec and only calls
        // async-signal-safe functions (close, read).
        unsafe {
            command.pre_exec(move || {
                libc::close(release_fd);
                let mut byte = 0u8;
                while libc::read(wait_fd, (&mut byte as *mut u8).cast(), 1) < 0
                    && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
                {}
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| {
            format!("cannot run `{}`: check the command name and that it is executable", program.to_string_lossy())
        })?;
        drop(wait_end);
        Ok(GatedChild { child, gate: Some(release_end) })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Let the command run: closing the pipe ends the child's wait.
    pub fn release(&mut self) {
        self.gate = None;
    }

    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child.try_wait().context("waiting for the command")
    }

    /// Ask the command to stop (SIGTERM) and wait for it.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        if self.try_wait()?.is_none() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        }
        self.release();
        self.child.wait().context("waiting for the command")
    }
}

/// The exit code a shell would report: the code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.wrapping_add(signal as u8),
        (None, None) => 1,
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error()).context("creating a pipe for the command");
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_command_waits_for_the_gate() {
        let mut child = GatedChild::spawn(&["sh".into(), "-c".into(), "exit 7".into()]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "ran before release");
        child.release();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(exit_code(status), 7);
    }

    #[test]
    fn terminate_reports_the_signal() {
        let mut child = GatedChild::spawn(&["sleep".into(), "30".into()]).unwrap();
        child.release();
        assert_eq!(exit_code(child.terminate().unwrap()), 128 + 15);
    }

    #[test]
    fn missing_commands_say_so() {
        let err = GatedChild::spawn(&["/no/such/command".into()]).err().unwrap();
        assert!(format!("{err:#}").starts_with("cannot run `/no/such/command`"), "{err:#}");
    }
}
