//! Helpers shared by the doctor's integration tests.

use std::process::Command;

/// The doctor with `args`, without colors.
pub fn doctor(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_unlink-doctor"));
    command.args(args).env("NO_COLOR", "1");
    command
}

/// [`bounded`] on the doctor with `args`.
pub fn bounded_doctor(args: &[&str]) -> (Option<i32>, String, String) {
    bounded(doctor(args))
}

/// Run `command` with a time limit and an address-space limit, so that a hang or a
/// runaway allocation fails the test instead of stalling or exhausting the machine.
/// Returns the exit code (`None`: killed by a signal), stdout and stderr.
pub fn bounded(mut command: Command) -> (Option<i32>, String, String) {
    use std::io::{Read as _, Seek as _};
    use std::os::unix::process::CommandExt as _;
    use std::time::{Duration, Instant};

    const MEMORY: u64 = 1 << 30;
    const TIME: Duration = Duration::from_secs(30);
    let mut stdout = tempfile::tempfile().unwrap();
    let mut stderr = tempfile::tempfile().unwrap();
    command
        .stdout(stdout.try_clone().unwrap())
        .stderr(stderr.try_clone().unwrap());
    let limit = rustix::process::Rlimit {
        current: Some(MEMORY),
        maximum: Some(MEMORY),
    };
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        command.pre_exec(move || {
            Ok(rustix::process::setrlimit(
                rustix::process::Resource::As,
                limit,
            )?)
        });
    }
    let mut child = command.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIME {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{command:?} hung: killed after {TIME:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |file: &mut std::fs::File| {
        let mut text = String::new();
        file.rewind().unwrap();
        file.take(1 << 20).read_to_string(&mut text).unwrap();
        text
    };
    (status.code(), read(&mut stdout), read(&mut stderr))
}

pub fn item<'a>(json: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    json["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["items"].as_array().unwrap())
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id}"))
}
