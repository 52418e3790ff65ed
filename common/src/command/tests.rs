use super::*;
use nix::sys::signal::kill;
use nix::unistd::{Gid, User};
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
    stop.record(Signal::SIGINT as i32);
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
    stop.record(Signal::SIGINT as i32);
    let pid = Pid::from_raw(running.pid() as i32);
    let (done, finished) = std::sync::mpsc::channel();
    let stop = &stop;
    let status = std::thread::scope(|scope| {
        scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            // The second Ctrl-C.
            stop.record(Signal::SIGINT as i32);
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

/// What the command left running when it exited dies when the lesson is done with it.
#[test]
fn what_the_command_leaves_behind_dies_with_the_lesson() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = r#"sleep 30 & echo $! > "$1""#;
    let mut running = command(&["sh", "-c", script, "sh", pid_file.to_str().unwrap()])
        .start(&StopSignals::new())
        .unwrap();
    assert_eq!(exit_code(wait(&mut running)), 0);
    let sleep_pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(process_state(sleep_pid).is_some(), "the sleep is running");
    drop(running);
    assert_dies(sleep_pid, "the command's background child");
}

/// A command stopped by SIGTTIN (as when it reads the terminal from its
/// own process group) is noticed, and Ctrl-C still ends it.
#[test]
fn a_command_stopped_by_the_terminal_is_noticed_and_still_terminated() {
    let stop = StopSignals::new();
    let mut running = command(&["sh", "-c", "kill -TTIN $$; sleep 30"])
        .start(&stop)
        .unwrap();
    let start = Instant::now();
    while !running.stop_noted {
        assert!(running.try_wait().unwrap().is_none());
        assert!(start.elapsed() < Duration::from_secs(10), "no stop noticed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM alone would wait for a SIGCONT: then fail the test rather than hang.
    let pid = Pid::from_raw(running.pid() as i32);
    let (done, finished) = std::sync::mpsc::channel();
    let status = std::thread::scope(|scope| {
        scope.spawn(move || {
            if finished.recv_timeout(Duration::from_secs(10)).is_err() {
                let _ = kill(pid, Signal::SIGKILL);
            }
        });
        let status = running.terminate(&stop).unwrap();
        done.send(()).unwrap();
        status
    });
    assert_eq!(
        exit_code(status),
        128 + 15,
        "SIGTERM must end a stopped command"
    );
}

/// State letter of a process (`Z` for a zombie), `None` when it is gone.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Wait up to 5 s for `pid` to be gone (or a zombie nobody reaped yet).
fn assert_dies(pid: u32, what: &str) {
    let start = Instant::now();
    while !matches!(process_state(pid), None | Some('Z')) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what} (pid {pid}) outlived the lesson"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// This test's binary, run as a stand-in lesson: it starts a shell that
/// starts `sleep 30` and waits, and is then killed with SIGKILL; the shell
/// and its sleep must die with it.
#[test]
fn the_command_and_its_children_die_with_the_lesson_even_by_sigkill() {
    const STAND_IN: &str = "UNLINK_COMMAND_TEST_STAND_IN";
    if std::env::var_os(STAND_IN).is_some() {
        let script = r#"sleep 30 & echo "grandchild pid $!"; wait"#;
        let running = command(&["sh", "-c", script])
            .start(&StopSignals::new())
            .unwrap();
        println!("command pid {}", running.pid());
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let mut lesson = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "command::tests::the_command_and_its_children_die_with_the_lesson_even_by_sigkill",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env(STAND_IN, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = io::BufRead::lines(io::BufReader::new(lesson.stdout.take().unwrap()));
    // Two lines, in either order; libtest may print "test NAME ... " first on one.
    let (mut command_pid, mut sleep_pid) = (None, None);
    for _ in 0..2 {
        let line = stdout
            .by_ref()
            .map_while(|line| line.ok())
            .find(|line| line.contains(" pid "))
            .expect("the stand-in lesson and its command name their pids");
        let pid = |label: &str| line.split(label).nth(1)?.trim().parse::<u32>().ok();
        command_pid = command_pid.or(pid("command pid "));
        sleep_pid = sleep_pid.or(pid("grandchild pid "));
    }
    let (command_pid, sleep_pid) = (command_pid.unwrap(), sleep_pid.unwrap());
    // `$!` is known before the forked shell has become sleep.
    let start = Instant::now();
    while !std::fs::read(format!("/proc/{sleep_pid}/cmdline"))
        .unwrap()
        .starts_with(b"sleep\0")
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "pid {sleep_pid} is not the sleep"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    lesson.kill().unwrap(); // SIGKILL
    lesson.wait().unwrap();
    assert_dies(command_pid, "the command");
    assert_dies(sleep_pid, "the command's child");
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
