//! The flags every lesson shares, and how errors leave `main`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use colored::Colorize;

use crate::command::NotStarted;

#[derive(Debug, Clone, Args)]
pub struct LessonArgs {
    /// Only show unlinks by this process id (a running process, not a thread)
    #[arg(long, value_name = "PID", conflicts_with = "command", value_parser = parse_pid,
          allow_negative_numbers = true)]
    pub pid: Option<u32>,

    /// Only show unlinks by processes with this name (as in /proc/PID/comm, at most 15 bytes)
    #[arg(long, value_name = "NAME", value_parser = parse_comm)]
    pub comm: Option<String>,

    /// Exit after this many unlinks
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Exit after this many seconds
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<f64>,

    /// Attach to this kernel function instead of do_unlinkat / filename_unlinkat
    #[arg(long, value_name = "NAME", value_parser = parse_function)]
    pub function: Option<String>,

    /// Print bpf_printk messages from trace_pipe, as the tutorial chapter does
    #[arg(long)]
    pub printk: bool,

    /// Print one JSON object per line (schema in the README)
    #[arg(long)]
    pub json: bool,

    /// When to use colors
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Show libbpf's log
    #[arg(short, long)]
    pub verbose: bool,

    /// Ring buffer size in KiB (a power of two)
    #[arg(long, value_name = "KIB", default_value_t = 2048, value_parser = parse_ring_buffer_kib)]
    pub ring_buffer_kib: u32,

    /// Under sudo, run COMMAND as root instead of as the user who ran sudo
    #[arg(long, requires = "command")]
    pub as_root: bool,

    /// Run COMMAND and show only its unlinks (and its children's); exit with its status.
    /// Under sudo it runs as the user who ran sudo (SUDO_UID, SUDO_GID, that user's
    /// groups and HOME), so the files it makes are yours; --as-root keeps root.
    /// It starts once the programs are attached, and is killed if the lesson dies
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Color when printing to a terminal and NO_COLOR is unset
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    pub fn apply(self) {
        let enabled = match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::IsTerminal::is_terminal(&std::io::stderr())
            }
        };
        colored::control::set_override(enabled);
    }
}

fn parse_comm(name: &str) -> Result<String, String> {
    match name.len() {
        0 => Err("the name is empty".into()),
        1..=15 => Ok(name.to_string()),
        _ => Err("the kernel keeps only 15 bytes of a process name (TASK_COMM_LEN)".into()),
    }
}

/// A kernel function name as /proc/kallsyms spells it: `do_unlinkat`, `vfs_unlink.cold`.
fn parse_function(name: &str) -> Result<String, String> {
    const KSYM_NAME_LEN: usize = 512;
    if name.is_empty() {
        return Err(
            "the name is empty: drop --function to let the lesson pick the unlink function".into(),
        );
    }
    if name.len() >= KSYM_NAME_LEN
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(
            "a kernel function name has only letters, digits, `_` and `.`, as in /proc/kallsyms"
                .into(),
        );
    }
    Ok(name.to_string())
}

/// A process id of a running process (as --pid matches the process, not a thread of it).
fn parse_pid(value: &str) -> Result<u32, String> {
    let pid = match value.parse::<u32>() {
        Ok(pid) if pid > 0 => pid,
        _ => return Err("a process id is a whole number from 1 up, as `pgrep NAME` prints".into()),
    };
    let status = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => status,
        Err(_) => {
            return Err(format!(
                "no process has pid {pid} (it exited, or never ran): find it with `pgrep NAME`, \
                 or start it under the lesson with -- COMMAND"
            ))
        }
    };
    match crate::failures::status_field(&status, "Tgid:").and_then(|tgid| tgid.parse::<u32>().ok())
    {
        Some(tgid) if tgid != pid => Err(format!(
            "{pid} is a thread of process {tgid}, and --pid matches processes: use --pid {tgid}"
        )),
        _ => Ok(pid),
    }
}

fn parse_seconds(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(secs) if (0.0..1e9).contains(&secs) => Ok(secs),
        Ok(_) => Err("must be a number of seconds from 0 up".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_ring_buffer_kib(value: &str) -> Result<u32, String> {
    let kib: u32 = value.parse().map_err(|e| format!("{e}"))?;
    if kib >= 4 && kib.is_power_of_two() && kib <= 1 << 20 {
        Ok(kib)
    } else {
        Err("must be a power of two between 4 and 1048576 (a multiple of the page size)".into())
    }
}

/// Run a lesson body; print its error as one line (`error: ...: cause`) and exit 1,
/// or as a shell would when the command could not start (127, 126, 128 + signal).
pub fn run(body: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match body() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{} {err:#}", "error:".red().bold());
            match err.downcast_ref::<NotStarted>() {
                Some(not_started) => ExitCode::from(not_started.exit_code),
                None => ExitCode::FAILURE,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        lesson: LessonArgs,
    }

    #[test]
    fn command_after_double_dash() {
        let cli =
            Cli::try_parse_from(["lesson", "--count", "3", "--", "sh", "-c", "rm a"]).unwrap();
        assert_eq!(cli.lesson.count, Some(3));
        assert_eq!(cli.lesson.command, ["sh", "-c", "rm a"]);
    }

    #[test]
    fn function_names_and_pids_are_checked_at_parse_time() {
        let function = |name: &str| Cli::try_parse_from(["lesson", "--function", name]);
        for bad in ["", "do unlinkat", "do_unlinkat\n", "../x"] {
            assert!(function(bad).is_err(), "{bad:?}");
        }
        for good in ["vfs_unlink", "do_unlinkat.cold", "x"] {
            assert_eq!(
                function(good).unwrap().lesson.function.as_deref(),
                Some(good)
            );
        }
        let pid = |pid: &str| Cli::try_parse_from(["lesson", "--pid", pid]);
        let negative = pid("-1").err().unwrap().to_string();
        assert!(
            negative.contains("from 1 up") && !negative.contains("-- -1"),
            "{negative}"
        );
        assert!(pid("0").is_err());
        let me = std::process::id();
        assert_eq!(pid(&me.to_string()).unwrap().lesson.pid, Some(me));
        // A thread of this process, alive while its id is checked.
        let (tid_out, tid_in) = std::sync::mpsc::channel();
        let (end_out, end_in) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            tid_out.send(nix::unistd::gettid()).unwrap();
            let _ = end_in.recv();
        });
        let tid = tid_in.recv().unwrap();
        let refused = pid(&tid.to_string()).err().unwrap().to_string();
        end_out.send(()).unwrap();
        thread.join().unwrap();
        assert!(
            refused.contains(&format!("is a thread of process {me}")),
            "{refused}"
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Cli::try_parse_from(["lesson", "--comm", "a-very-long-process-name"]).is_err());
        assert!(Cli::try_parse_from(["lesson", "--ring-buffer-kib", "100"]).is_err());
        for bad in ["-1", "NaN", "inf", "soon"] {
            assert!(
                Cli::try_parse_from(["lesson", "--duration", bad]).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            Cli::try_parse_from(["lesson", "--duration", "0.5"])
                .unwrap()
                .lesson
                .duration,
            Some(0.5)
        );
        assert!(Cli::try_parse_from(["lesson", "--pid", "1", "--", "true"]).is_err());
        assert_eq!(
            Cli::try_parse_from(["lesson", "--ring-buffer-kib", "4"])
                .unwrap()
                .lesson
                .ring_buffer_kib,
            4
        );
    }
}
