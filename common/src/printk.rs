//! `--printk`: read what bpf_printk wrote, from tracefs's trace_pipe.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::catalogue::FailureId;

/// tracefs's own mount point first, then the older place under debugfs.
const TRACE_PIPES: [&str; 2] = [
    "sys/kernel/tracing/trace_pipe",
    "sys/kernel/debug/tracing/trace_pipe",
];

/// The trace_pipe under `root`, opened non-blocking so the lesson can also watch the clock.
pub struct TracePipe {
    file: File,
    pub path: PathBuf,
    partial: Vec<u8>,
}

impl TracePipe {
    pub fn open(root: &Path) -> Result<TracePipe> {
        let mut errors = Vec::new();
        for candidate in TRACE_PIPES {
            let path = root.join(candidate);
            match std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TracePipe {
                        file,
                        path,
                        partial: Vec::new(),
                    })
                }
                Err(err) => errors.push(format!("{}: {err}", path.display())),
            }
        }
        let failure = FailureId::TracefsUnavailable.failure();
        Err(anyhow!(
            "cannot read trace_pipe ({}): {}. Next: {}",
            errors.join("; "),
            failure.cause,
            failure.fix
        ))
    }

    /// Complete lines available now, without waiting.
    pub fn read_lines(&mut self) -> Result<Vec<String>> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => break,
                Err(err) => return Err(anyhow!("reading {}: {err}", self.path.display())),
            }
        }
        Ok(take_lines(&mut self.partial))
    }

    /// Wait up to `timeout` for data.
    pub fn wait(&self, timeout: Duration) {
        let timeout = Timespec::try_from(timeout).ok();
        // A failed poll (EINTR) just means look again.
        let _ = poll(
            &mut [PollFd::new(&self.file, PollFlags::IN)],
            timeout.as_ref(),
        );
    }
}

fn take_lines(buffer: &mut Vec<u8>) -> Vec<String> {
    let Some(end) = buffer.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    let complete: Vec<u8> = buffer.drain(..=end).collect();
    complete
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// Is this trace_pipe line one of the lesson's exit messages (one per unlink)?
pub fn is_exit_line(line: &str) -> bool {
    line.contains("KPROBE EXIT: ") || line.contains("fexit: pid = ")
}

/// Is this line from one of the lessons' bpf_printk calls (not another tracer's)?
pub fn is_lesson_line(line: &str) -> bool {
    is_exit_line(line) || line.contains("KPROBE ENTRY pid = ") || line.contains("fentry: pid = ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_complete_lines_and_keeps_the_rest() {
        let mut buffer = b"one\ntwo\nthr".to_vec();
        assert_eq!(take_lines(&mut buffer), ["one", "two"]);
        assert_eq!(buffer, b"thr");
        buffer.extend_from_slice(b"ee\n");
        assert_eq!(take_lines(&mut buffer), ["three"]);
        assert!(buffer.is_empty());
    }

    #[test]
    fn recognises_the_chapters_messages() {
        let entry = "rm-9346 [005] d..3 4710.951696: bpf_trace_printk: KPROBE ENTRY pid = 9346, filename = test1";
        let exit =
            "rm-9346 [005] d..4 4710.951819: bpf_trace_printk: KPROBE EXIT: pid = 9346, ret = 0";
        let fexit = "rm-9290 [004] d..2 4637.798843: bpf_trace_printk: fexit: pid = 9290, filename = a, ret = 0";
        assert!(is_lesson_line(entry) && !is_exit_line(entry));
        assert!(is_exit_line(exit) && is_exit_line(fexit));
        assert!(!is_lesson_line(
            "sh-1 [000] d..1 1.0: bpf_trace_printk: something else"
        ));
    }

    #[test]
    fn missing_tracefs_is_one_clear_error() {
        let err = TracePipe::open(Path::new("/nonexistent-root"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("mount -t tracefs") && err.contains("trace_pipe"),
            "{err}"
        );
    }
}
