//! `-- COMMAND`: run the command whose unlinks the lesson shows, as the user
//! who ran `sudo`, and never let it, or anything it starts, outlive the lesson.
//!
//! The command leads a process group of its own, which its children join. A
//! guard process, forked from the lesson, waits for the lesson to end (even
//! by SIGKILL, which no handler sees) and then kills that group. The command
//! also gets SIGKILL from the kernel when the lesson dies (PR_SET_PDEATHSIG).
//! A process that leaves the group (`setsid`, a shell's job control) escapes.
//! Outside the terminal's foreground group, the command cannot read the
//! terminal, and Ctrl-C reaches it through the lesson (SIGTERM, then SIGKILL).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{self, Pid, Uid};

use crate::stop::StopSignals;

mod guard;
mod user;

use guard::Guard;
pub use user::RunAs;

/// How often a wait looks at the command and at the stop signals.
const WAIT_TICK: Duration = Duration::from_millis(20);
/// After SIGTERM, how long to wait before saying how to kill the command.
const PATIENCE: Duration = Duration::from_secs(1);

/// The command given after `--`, checked before anything is loaded.
#[derive(Debug)]
pub struct Command {
    argv: Vec<OsString>,
    run_as: Option<RunAs>,
}

/// Why the command never ran; the lesson exits with [`NotStarted::exit_code`].
#[derive(Debug)]
pub struct NotStarted {
    /// 127: not found, 126: found but not runnable, 128 + N: signal N came first.
    pub exit_code: u8,
    message: String,
}

impl fmt::Display for NotStarted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NotStarted {}

impl Command {
    /// Check that `argv[0]` can be run and find who runs it: the user behind
    /// `sudo` (SUDO_UID, SUDO_GID, SUDO_USER) unless `as_root`.
    pub fn new(argv: &[OsString], as_root: bool) -> Result<Command> {
        let (program, _) = argv.split_first().context("no command given after --")?;
        find_program(program, std::env::var_os("PATH").as_deref())?;
        let run_as = match as_root {
            true => None,
            false => RunAs::sudo_user(Uid::effective(), |name| std::env::var_os(name))?,
        };
        Ok(Command {
            argv: argv.to_vec(),
            run_as,
        })
    }

    /// Who the command runs as: `None` keeps this process's user.
    pub fn run_as(&self) -> Option<&RunAs> {
        self.run_as.as_ref()
    }

    /// Start the command, unless a stop signal came first. Call it from the
    /// thread that lives as long as the lesson (the main thread): the command
    /// gets SIGKILL when that thread ends, and its process group when the
    /// lesson ends.
    pub fn start(&self, stop: &StopSignals) -> Result<Running> {
        if let Some(signal) = stop.first() {
            return Err(NotStarted {
                exit_code: 128 + signal as u8,
                message: format!("{signal} arrived before the programs were attached, so the command was not started"),
            }
            .into());
        }
        let (program, args) = self.argv.split_first().expect("checked in new");
        let mut command = std::process::Command::new(program);
        command.args(args);
        if let Some(user) = &self.run_as {
            command
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        let run_as = self.run_as.clone();
        let lesson = unistd::getpid();
        // Before the command: then the guard is there for its very first child.
        let guard = Guard::start().context("starting the process that guards the command")?;
        // SAFETY: between fork and exec the closure only makes system calls
        // (no allocation, no locks): everything it needs was prepared above.
        unsafe {
            command.pre_exec(move || {
                // A group of its own, which its children join: the guard's target.
                unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
                if let Some(user) = &run_as {
                    unistd::setgroups(&user.groups)?;
                    unistd::setresgid(user.gid, user.gid, user.gid)?;
                    unistd::setresuid(user.uid, user.uid, user.uid)?;
                }
                // After the identity change, which clears the death signal.
                prctl::set_pdeathsig(Signal::SIGKILL)?;
                // The lesson may have died before the line above: then no signal comes.
                if unistd::getppid() != lesson {
                    return Err(Errno::ESRCH.into());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|error| not_runnable(program, &error))?;
        // spawn() returns once exec succeeded, so setpgid above already ran.
        let group = Pid::from_raw(child.id() as i32);
        guard.watch(group)?;
        Ok(Running {
            child,
            group,
            _guard: guard,
            stop_noted: false,
        })
    }
}

/// Look for `program` as exec would (a path, or a name in `path`), so that a
/// typo is reported before anything is loaded: 127 when there is no such
/// file, 126 when there is one but it is not an executable file.
fn find_program(program: &OsStr, path: Option<&OsStr>) -> Result<()> {
    let shown = program.to_string_lossy();
    let candidates: Vec<PathBuf> = if program.as_bytes().contains(&b'/') {
        vec![PathBuf::from(program)]
    } else {
        // As execvp: an empty entry is the current directory.
        let path = path.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
        std::env::split_paths(path)
            .map(|dir| match dir.as_os_str().is_empty() {
                true => Path::new(".").join(program),
                false => dir.join(program),
            })
            .collect()
    };
    let mut not_executable = None;
    for candidate in candidates {
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => return Ok(()),
            Ok(meta) => {
                let what = match meta.is_dir() {
                    true => "is a directory",
                    false => "is not executable",
                };
                not_executable.get_or_insert((candidate, what));
            }
            Err(_) => {}
        }
    }
    Err(match not_executable {
        Some((found, what)) => NotStarted {
            exit_code: 126,
            message: format!(
                "cannot run the command: {} {what}: make it executable (`chmod +x`), or run it through its interpreter (`sh {shown}`)",
                found.display()
            ),
        },
        None if program.as_bytes().contains(&b'/') => NotStarted {
            exit_code: 127,
            message: format!("cannot run the command: {shown} does not exist: check the path"),
        },
        None => NotStarted {
            exit_code: 127,
            message: format!(
                "cannot run the command: `{shown}` is not found in PATH: check its name, or give its path"
            ),
        },
    }
    .into())
}

/// A failed spawn, worded and numbered as a shell would.
fn not_runnable(program: &OsStr, error: &io::Error) -> anyhow::Error {
    let exit_code = match error.kind() {
        io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    NotStarted {
        exit_code,
        message: format!(
            "cannot run the command `{}`: {error}: check that it (and its #! interpreter) exists and is executable by the user who runs it",
            program.to_string_lossy()
        ),
    }
    .into()
}

/// The running command.
pub struct Running {
    child: Child,
    /// The command's process group: the command and what it starts.
    group: Pid,
    /// Kills the group when dropped, or when the lesson dies.
    _guard: Guard,
    /// Whether we said that the command stopped to use the terminal.
    stop_noted: bool,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        let status = self.child.try_wait().context("waiting for the command")?;
        if status.is_none() && !self.stop_noted && self.stopped_by_the_terminal() {
            eprintln!(
                "the command stopped: it tried to use the terminal, which a command \
                 in its own process group cannot. Ctrl-C ends it; give it input \
                 from a file instead (`-- sh -c 'CMD < FILE'`)"
            );
            self.stop_noted = true;
        }
        Ok(status)
    }

    /// Stopped by SIGTTIN or SIGTTOU: it read (or set up) the terminal from
    /// outside the terminal's foreground process group.
    fn stopped_by_the_terminal(&self) -> bool {
        let pid = Pid::from_raw(self.child.id() as i32);
        let flags = WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        matches!(
            waitid(Id::Pid(pid), flags),
            Ok(WaitStatus::Stopped(_, Signal::SIGTTIN | Signal::SIGTTOU))
        )
    }

    /// The watch is over: wait for the command to finish, and if a stop
    /// signal comes (or came), [`terminate`](Running::terminate) it.
    pub fn finish(&mut self, stop: &StopSignals) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if stop.requested() {
                return self.terminate(stop);
            }
            std::thread::sleep(WAIT_TICK);
        }
    }

    /// Ask the command and its process group to stop (SIGTERM) and wait for
    /// the command; a second stop signal kills them (SIGKILL), for commands
    /// that ignore SIGTERM.
    pub fn terminate(&mut self, stop: &StopSignals) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // Not yet reaped, so the group still has its leader, our child.
        let pid = self.group;
        let _ = killpg(pid, Signal::SIGTERM);
        // A stopped process (Ctrl-Z, or reading the terminal) acts on SIGTERM once continued.
        let _ = killpg(pid, Signal::SIGCONT);
        let asked = Instant::now();
        let (mut told, mut killed) = (false, false);
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if stop.count() >= 2 && !killed {
                let _ = killpg(pid, Signal::SIGKILL);
                killed = true;
            }
            if !told && !killed && asked.elapsed() >= PATIENCE {
                eprintln!("waiting for the command (pid {pid}) to exit: Ctrl-C again kills it");
                told = true;
            }
            std::thread::sleep(WAIT_TICK);
        }
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
mod tests;
