//! `-- COMMAND`: run the command whose unlinks the lesson shows.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};

use anyhow::{Context, Result};

/// The running `-- COMMAND`.
pub struct Command {
    child: Child,
}

impl Command {
    pub fn spawn(argv: &[OsString]) -> Result<Command> {
        let (program, args) = argv.split_first().context("no command given after --")?;
        let child = std::process::Command::new(program)
            .args(args)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run `{}`: check the command name and that it is executable",
                    program.to_string_lossy()
                )
            })?;
        Ok(Command { child })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn reports_the_exit_code() {
        let mut command = Command::spawn(&["sh".into(), "-c".into(), "exit 7".into()]).unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = command.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(exit_code(status), 7);
    }

    #[test]
    fn terminate_reports_the_signal() {
        let mut command = Command::spawn(&["sleep".into(), "30".into()]).unwrap();
        assert_eq!(exit_code(command.terminate().unwrap()), 128 + 15);
    }

    #[test]
    fn missing_commands_say_so() {
        let err = Command::spawn(&["/no/such/command".into()]).err().unwrap();
        assert!(
            format!("{err:#}").starts_with("cannot run `/no/such/command`"),
            "{err:#}"
        );
    }
}
