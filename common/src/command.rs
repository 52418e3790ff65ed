//! `-- COMMAND`: run the command whose unlinks the lesson shows, as the user
//! who ran `sudo`, and never let it outlive the lesson.

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::prctl;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{self, Gid, Pid, Uid, User};

use crate::stop::StopSignals;

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

/// The unprivileged user the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    /// Supplementary groups, the primary group among them, as login would set them.
    pub groups: Vec<Gid>,
    pub home: PathBuf,
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
    /// gets SIGKILL when that thread ends.
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
        // SAFETY: between fork and exec the closure only makes system calls
        // (no allocation, no locks): everything it needs was prepared above.
        unsafe {
            command.pre_exec(move || {
                if let Some(user) = &run_as {
                    unistd::setgroups(&user.groups)?;
                    unistd::setresgid(user.gid, user.gid, user.gid)?;
                    unistd::setresuid(user.uid, user.uid, user.uid)?;
                }
                // After the identity change, which clears the death signal.
                prctl::set_pdeathsig(Signal::SIGKILL)?;
                // The lesson may have died before the line above: then no signal comes.
                if unistd::getppid() != lesson {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|error| not_runnable(program, &error))?;
        Ok(Running { child })
    }
}

impl RunAs {
    /// The user who ran `sudo`, when this process is root because of it; `None`
    /// when not root, not under sudo, or sudo was run by root. `var` reads the environment.
    pub fn sudo_user(euid: Uid, var: impl Fn(&str) -> Option<OsString>) -> Result<Option<RunAs>> {
        let Some(uid) = var("SUDO_UID") else {
            return Ok(None);
        };
        let uid = parse_id("SUDO_UID", &uid)?;
        if !euid.is_root() || uid == 0 {
            return Ok(None);
        }
        let not_a_user = || {
            format!(
                "SUDO_UID={uid} is not in the user database, so the command cannot run as that user: \
                 pass --as-root to run it as root"
            )
        };
        // SUDO_USER picks among names that share the uid; the uid decides.
        let named = var("SUDO_USER")
            .and_then(|name| User::from_name(&name.to_string_lossy()).ok().flatten())
            .filter(|user| user.uid.as_raw() == uid);
        let user = match named {
            Some(user) => user,
            None => User::from_uid(Uid::from_raw(uid))
                .with_context(not_a_user)?
                .with_context(not_a_user)?,
        };
        let gid = match var("SUDO_GID") {
            Some(gid) => Gid::from_raw(parse_id("SUDO_GID", &gid)?),
            None => user.gid,
        };
        let name = CString::new(user.name.as_bytes()).with_context(not_a_user)?;
        let groups = unistd::getgrouplist(&name, gid)
            .with_context(|| format!("reading the groups of {} (getgrouplist)", user.name))?;
        Ok(Some(RunAs {
            name: user.name,
            uid: user.uid,
            gid,
            groups,
            home: user.dir,
        }))
    }
}

fn parse_id(variable: &str, value: &OsStr) -> Result<u32> {
    match value.to_str().and_then(|v| v.parse().ok()) {
        Some(id) => Ok(id),
        None => bail!(
            "{variable}={} is not a number: unset it, or pass --as-root to run the command as root",
            value.to_string_lossy()
        ),
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
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child.try_wait().context("waiting for the command")
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

    /// Ask the command to stop (SIGTERM) and wait for it; a second stop
    /// signal kills it (SIGKILL), for commands that ignore SIGTERM.
    pub fn terminate(&mut self, stop: &StopSignals) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // Not yet reaped, so the pid is still our child's.
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let asked = Instant::now();
        let (mut told, mut killed) = (false, false);
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if stop.count() >= 2 && !killed {
                let _ = kill(pid, Signal::SIGKILL);
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
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn command(argv: &[&str]) -> Command {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        Command::new(&argv, true).unwrap()
    }

    fn wait(running: &mut Running) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = running.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "still running");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn not_started(error: anyhow::Error) -> NotStarted {
        error.downcast().expect("a NotStarted error")
    }

    #[test]
    fn reports_the_exit_code() {
        let mut running = command(&["sh", "-c", "exit 7"])
            .start(&StopSignals::new())
            .unwrap();
        assert_eq!(exit_code(wait(&mut running)), 7);
    }

    #[test]
    fn terminate_reports_the_signal() {
        let stop = StopSignals::new();
        let mut running = command(&["sleep", "30"]).start(&stop).unwrap();
        assert_eq!(exit_code(running.terminate(&stop).unwrap()), 128 + 15);
    }

    #[test]
    fn commands_that_cannot_run_exit_127_or_126_before_anything_starts() {
        let missing = not_started(Command::new(&["/no/such/command".into()], true).unwrap_err());
        assert_eq!(missing.exit_code, 127);
        assert!(
            missing
                .to_string()
                .contains("/no/such/command does not exist"),
            "{missing}"
        );
        let typo = not_started(Command::new(&["no-such-command-h7".into()], true).unwrap_err());
        assert_eq!(typo.exit_code, 127);
        assert!(typo.to_string().contains("not found in PATH"), "{typo}");
        for (path, what) in [
            ("/etc/passwd", "is not executable"),
            ("/etc", "is a directory"),
        ] {
            let refused = not_started(Command::new(&[path.into()], true).unwrap_err());
            assert_eq!(refused.exit_code, 126, "{path}");
            assert!(refused.to_string().contains(what), "{refused}");
        }
        // An empty PATH entry is the current directory, as for execvp.
        assert!(find_program(OsStr::new("Cargo.toml"), Some(OsStr::new(":"))).is_err());
        assert!(find_program(OsStr::new("sh"), Some(OsStr::new("/nowhere:/bin"))).is_ok());
    }

    #[test]
    fn a_stop_signal_before_the_start_keeps_the_command_from_running() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("started");
        let stop = StopSignals::new();
        stop.record(libc::SIGINT);
        let touch = command(&["touch", marker.to_str().unwrap()]);
        let refused = not_started(touch.start(&stop).err().expect("must not start"));
        assert_eq!(refused.exit_code, 130);
        assert!(
            refused.to_string().starts_with("SIGINT arrived before"),
            "{refused}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(!marker.exists(), "the command ran");
    }

    #[test]
    fn a_second_stop_signal_kills_a_command_that_ignores_sigterm() {
        let stop = StopSignals::new();
        let ignores = "trap '' TERM INT; while :; do sleep 0.05; done";
        let mut running = command(&["sh", "-c", ignores]).start(&stop).unwrap();
        // Let sh install its trap; then the first Ctrl-C: terminate sends SIGTERM.
        std::thread::sleep(Duration::from_millis(200));
        stop.record(libc::SIGINT);
        let pid = Pid::from_raw(running.pid() as i32);
        let (done, finished) = std::sync::mpsc::channel();
        let stop = &stop;
        let status = std::thread::scope(|scope| {
            scope.spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                // The second Ctrl-C.
                stop.record(libc::SIGINT);
                // Without the kill, fail the test rather than hang: SIGUSR1 ends sh with 138.
                if finished.recv_timeout(Duration::from_secs(10)).is_err() {
                    let _ = kill(pid, Signal::SIGUSR1);
                }
            });
            let status = running.terminate(stop).unwrap();
            done.send(()).unwrap();
            status
        });
        assert_eq!(exit_code(status), 128 + 9);
    }

    /// State letter of a process (`Z` for a zombie), `None` when it is gone.
    fn process_state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 1..].trim_start().chars().next()
    }

    /// This test's binary, run as a stand-in lesson: it starts `sleep 30` and
    /// is then killed with SIGKILL; the sleep must die with it.
    #[test]
    fn the_command_dies_with_the_lesson_even_by_sigkill() {
        const STAND_IN: &str = "UNLINK_COMMAND_TEST_STAND_IN";
        if std::env::var_os(STAND_IN).is_some() {
            let running = command(&["sleep", "30"])
                .start(&StopSignals::new())
                .unwrap();
            println!("command pid {}", running.pid());
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        let mut lesson = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "command::tests::the_command_dies_with_the_lesson_even_by_sigkill",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(STAND_IN, "1")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = io::BufRead::lines(io::BufReader::new(lesson.stdout.take().unwrap()));
        let pid: u32 = stdout
            .map_while(|line| line.ok())
            // libtest may print "test NAME ... " on the same line first.
            .find_map(|line| line.split("command pid ").nth(1)?.trim().parse().ok())
            .expect("the stand-in lesson names its command's pid");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(
            cmdline.starts_with(b"sleep\0"),
            "pid {pid} is not the command"
        );
        lesson.kill().unwrap(); // SIGKILL
        lesson.wait().unwrap();
        let start = Instant::now();
        while !matches!(process_state(pid), None | Some('Z')) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the command (pid {pid}) outlived the lesson"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.into())
        }
    }

    #[test]
    fn sudo_names_the_user_only_for_root() {
        let root = Uid::from_raw(0);
        let nobody = [
            ("SUDO_UID", "65534"),
            ("SUDO_GID", "65534"),
            ("SUDO_USER", "nobody"),
        ];
        assert_eq!(RunAs::sudo_user(root, vars(&[])).unwrap(), None);
        assert_eq!(
            RunAs::sudo_user(Uid::from_raw(1000), vars(&nobody)).unwrap(),
            None
        );
        assert_eq!(
            RunAs::sudo_user(root, vars(&[("SUDO_UID", "0")])).unwrap(),
            None
        );
        let user = RunAs::sudo_user(root, vars(&nobody)).unwrap().unwrap();
        assert_eq!(
            (user.name.as_str(), user.uid.as_raw(), user.gid.as_raw()),
            ("nobody", 65534, 65534)
        );
        assert!(user.groups.contains(&Gid::from_raw(65534)), "{user:?}");
        assert!(!user.groups.contains(&Gid::from_raw(0)), "{user:?}");
        let bad = RunAs::sudo_user(root, vars(&[("SUDO_UID", "me")])).unwrap_err();
        assert!(format!("{bad:#}").contains("pass --as-root"), "{bad:#}");
        let unknown = RunAs::sudo_user(root, vars(&[("SUDO_UID", "3999999999")])).unwrap_err();
        assert!(
            format!("{unknown:#}").contains("not in the user database"),
            "{unknown:#}"
        );
    }

    /// Under sudo the command's files belong to the user, not root.
    #[test]
    fn under_sudo_the_command_runs_as_the_user() {
        let euid = Uid::effective();
        let sudo = [
            ("SUDO_UID", "65534"),
            ("SUDO_GID", "65534"),
            ("SUDO_USER", "nobody"),
        ];
        let run_as = RunAs::sudo_user(euid, vars(&sudo)).unwrap();
        if !euid.is_root() {
            assert_eq!(run_as, None, "only root can change user");
            return;
        }
        // As if nobody were also in group 100 (users): supplementary groups come along.
        let run_as = run_as.map(|mut user| {
            user.groups.push(Gid::from_raw(100));
            user
        });
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        let script = r#"{ touch "$1/made" && id -u && id -g && id -G && echo "$HOME $USER $LOGNAME"; } > "$1/output""#;
        let command = Command {
            argv: ["sh", "-c", script, "sh", dir.path().to_str().unwrap()]
                .map(OsString::from)
                .to_vec(),
            run_as,
        };
        let mut running = command.start(&StopSignals::new()).unwrap();
        assert_eq!(exit_code(wait(&mut running)), 0);
        let output_file = dir.path().join("output");
        for made in [dir.path().join("made"), output_file.clone()] {
            let meta = std::fs::metadata(&made).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (65534, 65534),
                "{}",
                made.display()
            );
        }
        let output = std::fs::read_to_string(&output_file).unwrap();
        let home = User::from_uid(Uid::from_raw(65534)).unwrap().unwrap().dir;
        assert_eq!(
            output,
            format!(
                "65534\n65534\n65534 100\n{} nobody nobody\n",
                home.display()
            )
        );
    }
}
