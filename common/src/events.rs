//! The record the BPF programs send (`common/bpf/unlink_event.h`) and how it is printed.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::errno;

const TASK_COMM_LEN: usize = 16;
const NAME_CAP: usize = 256;
const NAME_TRUNCATED: u32 = 1 << 0;
const NAME_UNREADABLE: u32 = 1 << 1;
/// `sizeof(struct unlink_event)`, asserted on the C side too.
pub const RAW_EVENT_SIZE: usize = 312;

/// One finished unlink, as decoded from the ring buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC at entry, in nanoseconds (`bpf_ktime_get_ns`).
    pub start_ns: u64,
    pub latency_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ret: i32,
    pub comm: Vec<u8>,
    pub filename: Filename,
}

/// The path the process passed to unlink, as far as the probe could read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filename {
    Complete(Vec<u8>),
    /// The first `UNLINK_NAME_CAP - 1` bytes of a longer name.
    Truncated(Vec<u8>),
    Unreadable,
}

impl Event {
    /// Decode one ring buffer record; `None` if it is not a whole `struct unlink_event`.
    pub fn parse(raw: &[u8]) -> Option<Event> {
        if raw.len() != RAW_EVENT_SIZE {
            return None;
        }
        let u64_at = |at: usize| u64::from_ne_bytes(raw[at..at + 8].try_into().unwrap());
        let u32_at = |at: usize| u32::from_ne_bytes(raw[at..at + 4].try_into().unwrap());
        let flags = u32_at(32);
        let comm = until_nul(&raw[40..40 + TASK_COMM_LEN]).to_vec();
        let name_field = &raw[56..56 + NAME_CAP];
        let name_len = (u32_at(28) as usize).min(NAME_CAP - 1);
        let name = name_field[..name_len].to_vec();
        let filename = if flags & NAME_UNREADABLE != 0 {
            Filename::Unreadable
        } else if flags & NAME_TRUNCATED != 0 {
            Filename::Truncated(name)
        } else {
            Filename::Complete(name)
        };
        Some(Event {
            start_ns: u64_at(0),
            latency_ns: u64_at(8),
            pid: u32_at(16),
            tid: u32_at(20),
            ret: u32_at(24) as i32,
            comm,
            filename,
        })
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

/// Converts the BPF side's monotonic timestamps to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    realtime_minus_monotonic_ns: i128,
}

impl Clock {
    pub fn now() -> Clock {
        let realtime = clock_ns(libc::CLOCK_REALTIME);
        let monotonic = clock_ns(libc::CLOCK_MONOTONIC);
        Clock {
            realtime_minus_monotonic_ns: realtime - monotonic,
        }
    }

    pub fn wall_time(&self, monotonic_ns: u64) -> SystemTime {
        let ns = (monotonic_ns as i128 + self.realtime_minus_monotonic_ns).max(0);
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// `HH:MM:SS.micros` in local time.
pub fn format_local_time(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs() as libc::time_t;
    // SAFETY: an all-zero tm is valid; localtime_r only writes into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        since_epoch.subsec_micros()
    )
}

/// RFC 3339 in UTC with microseconds, for JSON.
pub fn format_rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs() as i64;
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60,
        since_epoch.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A latency for people: `850ns`, `12.3µs`, `4.56ms`, `1.20s`.
pub fn format_latency(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// Bytes from the kernel shown without ambiguity: printable UTF-8 stays as it
/// is; `\\`, `"`, control characters and invalid bytes become escapes.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => write!(out, "\\u{{{:x}}}", c as u32).unwrap(),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            write!(out, "\\x{b:02x}").unwrap();
        }
    }
    out
}

/// The FILENAME column: bare when that is unambiguous, otherwise quoted and
/// escaped; a cut name ends in `...` outside the quotes.
pub fn display_filename(filename: &Filename) -> String {
    match filename {
        Filename::Complete(name) => {
            let escaped = escape_bytes(name);
            let plain = !escaped.is_empty()
                && escaped.len() == name.len()
                && !escaped.contains([' ', '"', '\\'])
                && !escaped.starts_with('<');
            if plain {
                escaped
            } else {
                format!("\"{escaped}\"")
            }
        }
        Filename::Truncated(name) => format!("\"{}\"...", escape_bytes(name)),
        Filename::Unreadable => "<unreadable>".to_string(),
    }
}

/// The text table's header, matching [`format_text`].
pub const TEXT_HEADER: &str =
    "TIME            PID     TID     COMM             RET              LATENCY   FILENAME";

/// One line of the text table.
pub fn format_text(event: &Event, clock: &Clock) -> String {
    format!(
        "{} {:<7} {:<7} {:<16} {:<16} {:>9} {}",
        format_local_time(clock.wall_time(event.start_ns)),
        event.pid,
        event.tid,
        escape_bytes(&event.comm),
        errno::describe_ret(event.ret),
        format_latency(event.latency_ns),
        display_filename(&event.filename),
    )
}

/// `--json`: one object per line; the schema is documented in the README.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JsonLine<'a> {
    /// Printed once, when the probes are in place.
    Attached {
        function: &'a str,
        probes: [&'a str; 2],
        mode: &'a str,
    },
    Unlink {
        time: String,
        start_ns: u64,
        pid: u32,
        tid: u32,
        comm: String,
        ret: i32,
        errno: Option<&'static str>,
        latency_ns: u64,
        filename: Option<String>,
        filename_truncated: bool,
    },
    /// `--printk`: a line from trace_pipe, as the kernel wrote it.
    Printk { line: &'a str },
    Summary {
        unlinks: u64,
        lost_events: u64,
        /// Runs of the probes the kernel skipped; `null` when it does not count them.
        skipped_by_kernel: Option<u64>,
    },
}

impl JsonLine<'_> {
    pub fn unlink(event: &Event, clock: &Clock) -> JsonLine<'static> {
        let (filename, filename_truncated) = match &event.filename {
            Filename::Complete(name) => (Some(escape_bytes(name)), false),
            Filename::Truncated(name) => (Some(escape_bytes(name)), true),
            Filename::Unreadable => (None, false),
        };
        JsonLine::Unlink {
            time: format_rfc3339(clock.wall_time(event.start_ns)),
            start_ns: event.start_ns,
            pid: event.pid,
            tid: event.tid,
            comm: escape_bytes(&event.comm),
            ret: event.ret,
            errno: errno::name(event.ret.saturating_neg()),
            latency_ns: event.latency_ns,
            filename,
            filename_truncated,
        }
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("JSON lines have no maps with non-string keys")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_event(ret: i32, flags: u32, name: &[u8]) -> Vec<u8> {
        let mut raw = vec![0u8; RAW_EVENT_SIZE];
        raw[0..8].copy_from_slice(&5_000_000_000u64.to_ne_bytes());
        raw[8..16].copy_from_slice(&12_345u64.to_ne_bytes());
        raw[16..20].copy_from_slice(&42u32.to_ne_bytes());
        raw[20..24].copy_from_slice(&43u32.to_ne_bytes());
        raw[24..28].copy_from_slice(&ret.to_ne_bytes());
        raw[28..32].copy_from_slice(&(name.len() as u32).to_ne_bytes());
        raw[32..36].copy_from_slice(&flags.to_ne_bytes());
        raw[40..42].copy_from_slice(b"rm");
        raw[56..56 + name.len()].copy_from_slice(name);
        raw
    }

    #[test]
    fn parses_the_c_layout() {
        let event = Event::parse(&raw_event(-2, 0, b"missing")).unwrap();
        assert_eq!(event.start_ns, 5_000_000_000);
        assert_eq!(event.latency_ns, 12_345);
        assert_eq!((event.pid, event.tid, event.ret), (42, 43, -2));
        assert_eq!(event.comm, b"rm");
        assert_eq!(event.filename, Filename::Complete(b"missing".to_vec()));
    }

    #[test]
    fn parses_flags() {
        let long = vec![b'a'; NAME_CAP - 1];
        let cut = Event::parse(&raw_event(0, NAME_TRUNCATED, &long)).unwrap();
        assert_eq!(cut.filename, Filename::Truncated(long));
        let gone = Event::parse(&raw_event(0, NAME_UNREADABLE, b"")).unwrap();
        assert_eq!(gone.filename, Filename::Unreadable);
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert_eq!(Event::parse(&[0u8; 10]), None);
        assert_eq!(Event::parse(&[0u8; RAW_EVENT_SIZE + 1]), None);
    }

    #[test]
    fn filenames_print_unambiguously() {
        let show = |name: &[u8]| display_filename(&Filename::Complete(name.to_vec()));
        assert_eq!(show(b"test1"), "test1");
        assert_eq!(show("日本語.txt".as_bytes()), "日本語.txt");
        assert_eq!(show(b"with space"), "\"with space\"");
        assert_eq!(show(b"line\nbreak"), "\"line\\nbreak\"");
        assert_eq!(show(b"bad\xffbyte"), "\"bad\\xffbyte\"");
        assert_eq!(show(b"back\\slash"), "\"back\\\\slash\"");
        assert_eq!(show(b"say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(show(b""), "\"\"");
        assert_eq!(show(b"<unreadable>"), "\"<unreadable>\"");
        assert_eq!(
            display_filename(&Filename::Truncated(b"abc".to_vec())),
            "\"abc\"..."
        );
        assert_eq!(display_filename(&Filename::Unreadable), "<unreadable>");
    }

    #[test]
    fn formats_times_and_latencies() {
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_795_305_600_123_456);
        assert_eq!(format_rfc3339(t), "2026-11-22T00:00:00.123456Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format_rfc3339(leap), "2000-02-29T00:00:00.000000Z");
        assert_eq!(format_latency(850), "850ns");
        assert_eq!(format_latency(12_345), "12.3µs");
        assert_eq!(format_latency(4_560_000), "4.56ms");
        assert_eq!(format_latency(1_200_000_000), "1.20s");
    }

    #[test]
    fn json_lines_carry_errno_and_escapes() {
        let event = Event::parse(&raw_event(-2, 0, b"a\xffb")).unwrap();
        let line = JsonLine::unlink(
            &event,
            &Clock {
                realtime_minus_monotonic_ns: 0,
            },
        )
        .to_line();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["type"], "unlink");
        assert_eq!(value["ret"], -2);
        assert_eq!(value["errno"], "ENOENT");
        assert_eq!(value["filename"], "a\\xffb");
        assert_eq!(value["filename_truncated"], false);
        assert_eq!(value["time"], "1970-01-01T00:00:05.000000Z");
    }

    #[test]
    fn the_summary_says_null_when_the_kernel_cannot_count_skips() {
        let summary = |skipped_by_kernel| {
            JsonLine::Summary {
                unlinks: 4,
                lost_events: 0,
                skipped_by_kernel,
            }
            .to_line()
        };
        assert_eq!(
            summary(Some(2)),
            r#"{"type":"summary","unlinks":4,"lost_events":0,"skipped_by_kernel":2}"#
        );
        assert_eq!(
            summary(None),
            r#"{"type":"summary","unlinks":4,"lost_events":0,"skipped_by_kernel":null}"#
        );
    }
}
