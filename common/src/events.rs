//! The record the BPF programs send (`common/bpf/unlink_event.h`) and how it is printed.

use std::fmt;
use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::errno;

const TASK_COMM_LEN: usize = 16;
const NAME_CAP: usize = 256;
const NAME_TRUNCATED: u32 = 1 << 0;
const NAME_UNREADABLE: u32 = 1 << 1;

// ANCHOR: raw_event
/// `struct unlink_event` from common/bpf/unlink_event.h, field for field: a
/// ring buffer record is decoded by viewing its bytes as this type.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawEvent {
    pub start_ns: u64,
    pub latency_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ret: i32,
    pub name_len: u32,
    pub flags: u32,
    pub _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
    pub name: [u8; NAME_CAP],
}

// SAFETY: integers and byte arrays only, no padding: any bytes are a valid RawEvent.
unsafe impl plain::Plain for RawEvent {}
// ANCHOR_END: raw_event

/// `sizeof(struct unlink_event)`, asserted on the C side too.
const _: () = assert!(std::mem::size_of::<RawEvent>() == 312);

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
        if raw.len() != std::mem::size_of::<RawEvent>() {
            return None;
        }
        plain::from_bytes::<RawEvent>(raw).ok().map(Event::from)
    }
}

impl From<&RawEvent> for Event {
    fn from(raw: &RawEvent) -> Event {
        let name = raw.name[..(raw.name_len as usize).min(NAME_CAP - 1)].to_vec();
        let filename = if raw.flags & NAME_UNREADABLE != 0 {
            Filename::Unreadable
        } else if raw.flags & NAME_TRUNCATED != 0 {
            Filename::Truncated(name)
        } else {
            Filename::Complete(name)
        };
        Event {
            start_ns: raw.start_ns,
            latency_ns: raw.latency_ns,
            pid: raw.pid,
            tid: raw.tid,
            ret: raw.ret,
            comm: until_nul(&raw.comm).to_vec(),
            filename,
        }
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

/// Writes events as lines of text (the table under [`TEXT_HEADER`]) or JSON,
/// straight into the output: no allocation per event, and the wall-clock
/// second formatted once for all the events in it.
pub struct EventWriter {
    clock: Clock,
    json: bool,
    /// The second (since the epoch) `second_text` shows: `HH:MM:SS` in local
    /// time, or `YYYY-MM-DDTHH:MM:SS` in UTC for JSON.
    second: Option<u64>,
    second_text: String,
    /// A column's text before it is padded to its width.
    column: Vec<u8>,
}

impl EventWriter {
    pub fn new(clock: Clock, json: bool) -> EventWriter {
        EventWriter {
            clock,
            json,
            second: None,
            second_text: String::new(),
            column: Vec::new(),
        }
    }

    /// One line, newline included.
    pub fn write(&mut self, out: &mut impl Write, event: &Event) -> io::Result<()> {
        if self.json {
            self.write_json(out, event)
        } else {
            self.write_text(out, event)
        }
    }

    fn write_text(&mut self, out: &mut impl Write, event: &Event) -> io::Result<()> {
        self.write_time(out, event.start_ns)?;
        write!(out, " {:<7} {:<7} ", event.pid, event.tid)?;
        self.column.clear();
        write_escaped(&mut self.column, &event.comm, false)?;
        pad(out, &self.column, 16, false)?;
        out.write_all(b" ")?;
        self.column.clear();
        write!(self.column, "{}", errno::Ret(event.ret))?;
        pad(out, &self.column, 16, false)?;
        out.write_all(b" ")?;
        self.column.clear();
        write!(self.column, "{}", Latency(event.latency_ns))?;
        pad(out, &self.column, 9, true)?;
        out.write_all(b" ")?;
        write_filename(out, &event.filename)?;
        out.write_all(b"\n")
    }

    /// The fields and order of serde's `{"type":"unlink",...}`; strings hold
    /// the escaped text the table shows.
    fn write_json(&mut self, out: &mut impl Write, event: &Event) -> io::Result<()> {
        out.write_all(br#"{"type":"unlink","time":""#)?;
        self.write_time(out, event.start_ns)?;
        write!(
            out,
            r#"","start_ns":{},"pid":{},"tid":{},"comm":""#,
            event.start_ns, event.pid, event.tid
        )?;
        write_escaped(out, &event.comm, true)?;
        write!(out, r#"","ret":{},"errno":"#, event.ret)?;
        match errno::name(event.ret.saturating_neg()) {
            Some(name) => write!(out, "\"{name}\"")?,
            None => out.write_all(b"null")?,
        }
        write!(out, r#","latency_ns":{},"filename":"#, event.latency_ns)?;
        let truncated = match &event.filename {
            Filename::Complete(name) | Filename::Truncated(name) => {
                out.write_all(b"\"")?;
                write_escaped(out, name, true)?;
                out.write_all(b"\"")?;
                matches!(event.filename, Filename::Truncated(_))
            }
            Filename::Unreadable => {
                out.write_all(b"null")?;
                false
            }
        };
        writeln!(out, r#","filename_truncated":{truncated}}}"#)
    }

    /// `HH:MM:SS.micros` in local time; RFC 3339 in UTC with microseconds for JSON.
    fn write_time(&mut self, out: &mut impl Write, monotonic_ns: u64) -> io::Result<()> {
        let since_epoch = self
            .clock
            .wall_time(monotonic_ns)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let second = since_epoch.as_secs();
        if self.second != Some(second) {
            self.second = Some(second);
            self.second_text = match self.json {
                true => utc_date_time(second),
                false => local_time_of_day(second),
            };
        }
        let micros = since_epoch.subsec_micros();
        match self.json {
            true => write!(out, "{}.{micros:06}Z", self.second_text),
            false => write!(out, "{}.{micros:06}", self.second_text),
        }
    }
}

/// `text` in `width` characters, as `{:<width$}` (or `{:>width$}`) would pad it.
fn pad(out: &mut impl Write, text: &[u8], width: usize, right: bool) -> io::Result<()> {
    const SPACES: [u8; 16] = [b' '; 16];
    // Characters: bytes that do not continue a UTF-8 sequence.
    let chars = text.iter().filter(|&&b| (b as i8) >= -0x40).count();
    let fill = &SPACES[..width.saturating_sub(chars)];
    if right {
        out.write_all(fill)?;
    }
    out.write_all(text)?;
    if !right {
        out.write_all(fill)?;
    }
    Ok(())
}

/// `HH:MM:SS` in local time.
fn local_time_of_day(secs_since_epoch: u64) -> String {
    let secs = secs_since_epoch as libc::time_t;
    // SAFETY: an all-zero tm is valid; localtime_r only writes into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC.
fn utc_date_time(secs_since_epoch: u64) -> String {
    let secs = secs_since_epoch as i64;
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60,
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

/// A latency for people: `850ns`, `12.3µs`, `4.56ms`, `1.20s` (not padded).
pub struct Latency(pub u64);

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ns @ 0..=999 => write!(f, "{ns}ns"),
            ns @ 1_000..=999_999 => write!(f, "{:.1}µs", ns as f64 / 1e3),
            ns @ 1_000_000..=999_999_999 => write!(f, "{:.2}ms", ns as f64 / 1e6),
            ns => write!(f, "{:.2}s", ns as f64 / 1e9),
        }
    }
}

/// Shown as an escape rather than as itself.
fn needs_escape(c: char) -> bool {
    matches!(c, '\\' | '"') || c.is_control()
}

/// An ASCII byte shown as itself.
fn is_plain_ascii(b: u8) -> bool {
    (b' '..=b'~').contains(&b) && b != b'\\' && b != b'"'
}

/// Bytes from the kernel shown without ambiguity: printable UTF-8 stays as it
/// is; `\\`, `"`, control characters and invalid bytes become escapes. `json`:
/// as the content of a JSON string, which escapes those escapes again.
fn write_escaped(out: &mut impl Write, bytes: &[u8], json: bool) -> io::Result<()> {
    if bytes.iter().all(|&b| is_plain_ascii(b)) {
        return out.write_all(bytes); // the usual name, without decoding it
    }
    let backslash: &[u8] = if json { b"\\\\" } else { b"\\" };
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let mut plain_from = 0;
        for (at, c) in valid.char_indices().filter(|&(_, c)| needs_escape(c)) {
            out.write_all(&valid.as_bytes()[plain_from..at])?;
            plain_from = at + c.len_utf8();
            out.write_all(backslash)?;
            match c {
                '\\' => out.write_all(backslash)?,
                '"' if json => out.write_all(b"\\\"")?,
                '"' => out.write_all(b"\"")?,
                '\n' => out.write_all(b"n")?,
                '\t' => out.write_all(b"t")?,
                '\r' => out.write_all(b"r")?,
                c => write!(out, "u{{{:x}}}", c as u32)?,
            }
        }
        out.write_all(&valid.as_bytes()[plain_from..])?;
        for b in chunk.invalid() {
            out.write_all(backslash)?;
            write!(out, "x{b:02x}")?;
        }
    }
    Ok(())
}

/// The FILENAME column: bare when that is unambiguous, otherwise quoted and
/// escaped; a cut name ends in `...` outside the quotes.
fn write_filename(out: &mut impl Write, filename: &Filename) -> io::Result<()> {
    match filename {
        Filename::Complete(name) if is_plain(name) => out.write_all(name),
        Filename::Complete(name) | Filename::Truncated(name) => {
            out.write_all(b"\"")?;
            write_escaped(out, name, false)?;
            out.write_all(b"\"")?;
            match filename {
                Filename::Truncated(_) => out.write_all(b"..."),
                _ => Ok(()),
            }
        }
        Filename::Unreadable => out.write_all(b"<unreadable>"),
    }
}

/// A name that reads the same bare: printable UTF-8, no space, quote or
/// backslash, and not `<unreadable>`'s opening `<`.
fn is_plain(name: &[u8]) -> bool {
    if name.iter().all(|&b| is_plain_ascii(b)) {
        return !name.is_empty() && name[0] != b'<' && !name.contains(&b' ');
    }
    match std::str::from_utf8(name) {
        Ok(name) => {
            !name.is_empty()
                && !name.starts_with('<')
                && !name.chars().any(|c| c == ' ' || needs_escape(c))
        }
        Err(_) => false,
    }
}

/// The text table's header, matching [`EventWriter`]'s lines.
pub const TEXT_HEADER: &str =
    "TIME            PID     TID     COMM             RET              LATENCY   FILENAME";

/// `--json`'s lines other than events (those are [`EventWriter`]'s); the
/// schema is documented in the README.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JsonLine<'a> {
    /// Printed once, when the probes are in place.
    Attached {
        function: &'a str,
        probes: [&'a str; 2],
        mode: &'a str,
    },
    /// `--printk`: a line from trace_pipe, as the kernel wrote it.
    Printk { line: &'a str },
    Summary {
        unlinks: u64,
        lost_events: u64,
        /// Runs of the probes the kernel skipped; `null` when it does not count them.
        skipped_by_kernel: Option<u64>,
        /// lesson-02: unlinks whose kretprobe never ran (a kretprobe out of
        /// instances, or its program skipped); absent for lesson-03.
        #[serde(skip_serializing_if = "Option::is_none")]
        returns_missed: Option<u64>,
    },
}

impl JsonLine<'_> {
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("JSON lines have no maps with non-string keys")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_event(ret: i32, flags: u32, name: &[u8]) -> Vec<u8> {
        let mut raw = RawEvent {
            start_ns: 5_000_000_000,
            latency_ns: 12_345,
            pid: 42,
            tid: 43,
            ret,
            name_len: name.len() as u32,
            flags,
            _pad: 0,
            comm: [0; TASK_COMM_LEN],
            name: [0; NAME_CAP],
        };
        raw.comm[..2].copy_from_slice(b"rm");
        raw.name[..name.len()].copy_from_slice(name);
        // SAFETY: RawEvent is plain data; the bytes are copied out at once.
        unsafe { plain::as_bytes(&raw) }.to_vec()
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
        assert_eq!(
            Event::parse(&[0u8; std::mem::size_of::<RawEvent>() + 1]),
            None
        );
    }

    /// What `write` puts out, as text.
    fn written(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn line(event: &Event, json: bool) -> String {
        let clock = Clock {
            realtime_minus_monotonic_ns: 0,
        };
        written(|out| EventWriter::new(clock, json).write(out, event))
    }

    #[test]
    fn filenames_print_unambiguously() {
        let show =
            |name: &[u8]| written(|out| write_filename(out, &Filename::Complete(name.to_vec())));
        assert_eq!(show(b"test1"), "test1");
        assert_eq!(show("日本語.txt".as_bytes()), "日本語.txt");
        assert_eq!(show(b"with space"), "\"with space\"");
        assert_eq!(show(b"line\nbreak"), "\"line\\nbreak\"");
        assert_eq!(show(b"bad\xffbyte"), "\"bad\\xffbyte\"");
        assert_eq!(show(b"back\\slash"), "\"back\\\\slash\"");
        assert_eq!(show(b"say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(show(b"del\x7f"), "\"del\\u{7f}\"");
        assert_eq!(show(b""), "\"\"");
        assert_eq!(show(b"<unreadable>"), "\"<unreadable>\"");
        assert_eq!(
            written(|out| write_filename(out, &Filename::Truncated(b"abc".to_vec()))),
            "\"abc\"..."
        );
        assert_eq!(
            written(|out| write_filename(out, &Filename::Unreadable)),
            "<unreadable>"
        );
    }

    #[test]
    fn formats_times_and_latencies() {
        assert_eq!(utc_date_time(0), "1970-01-01T00:00:00");
        assert_eq!(utc_date_time(1_795_305_600), "2026-11-22T00:00:00");
        assert_eq!(utc_date_time(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(Latency(850).to_string(), "850ns");
        assert_eq!(Latency(12_345).to_string(), "12.3µs");
        assert_eq!(Latency(4_560_000).to_string(), "4.56ms");
        assert_eq!(Latency(1_200_000_000).to_string(), "1.20s");
    }

    #[test]
    fn text_lines_are_padded_columns() {
        let mut raw = raw_event(-2, 0, b"missing");
        raw[40..43].copy_from_slice("é\"".as_bytes());
        let event = Event::parse(&raw).unwrap();
        let text = line(&event, false);
        let time = text.split(' ').next().unwrap();
        assert_eq!(time.len(), "HH:MM:SS.000000".len());
        assert!(time.ends_with(".000000"), "{text}");
        assert_eq!(
            &text[time.len()..],
            " 42      43      é\\\"              -2 ENOENT           12.3µs missing\n"
        );
    }

    #[test]
    fn json_lines_carry_errno_and_escapes() {
        let mut raw = raw_event(-2, 0, b"a\xffb\"");
        raw[40..43].copy_from_slice(b"r\\m");
        let json = line(&Event::parse(&raw).unwrap(), true);
        assert_eq!(
            json,
            r#"{"type":"unlink","time":"1970-01-01T00:00:05.000000Z","start_ns":5000000000,"pid":42,"tid":43,"comm":"r\\\\m","ret":-2,"errno":"ENOENT","latency_ns":12345,"filename":"a\\xffb\\\"","filename_truncated":false}"#.to_string() + "\n"
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["comm"], "r\\\\m");
        assert_eq!(value["filename"], "a\\xffb\\\"");
        let cut = line(
            &Event::parse(&raw_event(0, NAME_TRUNCATED, b"abc")).unwrap(),
            true,
        );
        assert!(
            cut.ends_with("\"errno\":null,\"latency_ns\":12345,\"filename\":\"abc\",\"filename_truncated\":true}\n"),
            "{cut}"
        );
        let gone = line(
            &Event::parse(&raw_event(0, NAME_UNREADABLE, b"")).unwrap(),
            true,
        );
        assert!(
            gone.ends_with("\"filename\":null,\"filename_truncated\":false}\n"),
            "{gone}"
        );
    }

    #[test]
    fn the_summary_says_null_when_the_kernel_cannot_count_skips() {
        let summary = |skipped_by_kernel| {
            JsonLine::Summary {
                unlinks: 4,
                lost_events: 0,
                skipped_by_kernel,
                returns_missed: None,
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
        let kprobe = JsonLine::Summary {
            unlinks: 4,
            lost_events: 0,
            skipped_by_kernel: None,
            returns_missed: Some(3),
        };
        assert_eq!(
            kprobe.to_line(),
            r#"{"type":"summary","unlinks":4,"lost_events":0,"skipped_by_kernel":null,"returns_missed":3}"#
        );
    }
}
