//! What the doctor found: sections of checked items, one verdict per lesson,
//! and the two ways to show them (text for people, JSON for tools).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use colored::Colorize;
use serde::Serialize;
use unlink_common::failures::{self, Failure, Probe};

use crate::check_ids::{CheckId, SectionId};

/// The JSON schema's name and version; bump the number on incompatible changes.
pub const SCHEMA: &str = "unlink-doctor/1";

/// Where the book explains each catalogue entry: `{TROUBLESHOOTING}#{id}`.
pub const TROUBLESHOOTING: &str = "book/src/en/troubleshooting.md";

/// How one check came out; sections show their worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A fact shown for context: nothing to pass or fail.
    Info,
    Ok,
    /// Could not be checked here (not root, --root, --no-live, file missing).
    Skipped,
    /// May break something, or could not be confirmed.
    Warn,
    /// Makes a lesson fail.
    Fail,
}

impl Status {
    fn symbol(self) -> String {
        match self {
            Status::Info => "•".normal(),
            Status::Ok => "✔".green(),
            Status::Skipped => "–".dimmed(),
            Status::Warn => "⚠".yellow(),
            Status::Fail => "✘".red().bold(),
        }
        .to_string()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Stable id such as `config.kprobes` or `live.fentry`.
    pub id: CheckId,
    pub label: String,
    pub status: Status,
    pub value: String,
    /// One line: what to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    /// The catalogue entry this item points at (`unlink_common::failures`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<&'static str>,
}

impl Item {
    /// The item under its check's own label.
    pub fn new(id: CheckId, status: Status, value: impl Into<String>) -> Item {
        Item::labelled(id, id.label(), status, value)
    }

    /// The item under a label that says more than its check's own.
    pub fn labelled(
        id: CheckId,
        label: impl Into<String>,
        status: Status,
        value: impl Into<String>,
    ) -> Item {
        Item {
            id,
            label: label.into(),
            status,
            value: value.into(),
            advice: None,
            failure: None,
        }
    }

    pub fn advice(mut self, advice: impl Into<String>) -> Item {
        self.advice = Some(advice.into());
        self
    }

    /// Point at a catalogue entry; the advice becomes its fix for `probe`'s lesson and the book's anchor.
    pub fn failure(mut self, id: &'static str, probe: Probe) -> Item {
        let failure = failures::by_id(id);
        self.failure = Some(failure.id);
        self.advice = Some(format!(
            "{} ({})",
            failure.fix_for(probe),
            doc_link(failure)
        ));
        self
    }
}

/// `text` safe to print on a terminal: control characters (C0, DEL, C1) and bidirectional
/// overrides, which a snapshot or a hostile system can put in any value, become escapes
/// such as `\x1b`, so they cannot move the cursor, retitle the window or reorder the line.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().fold(String::new(), |mut out, c| {
        match (needs_escape(c), u32::from(c)) {
            (false, _) => out.push(c),
            (true, n @ ..=0xff) => {
                let _ = write!(out, "\\x{n:02x}");
            }
            (true, n) => {
                let _ = write!(out, "\\u{{{n:x}}}");
            }
        }
        out
    }))
}

/// Lines of text, each made [`printable`].
pub fn printable_lines(text: &str) -> String {
    text.lines()
        .map(|line| format!("{}\n", printable(line)))
        .collect()
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// JSON escapes C0 controls itself; DEL, C1 and bidi overrides become `\u` escapes too, which
/// keeps every value the same for a JSON reader.
pub fn json_printable(json: &str) -> String {
    json.chars()
        .fold(String::with_capacity(json.len()), |mut out, c| {
            match needs_escape(c) && !c.is_ascii_control() || c == '\u{7f}' {
                true => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                false => out.push(c),
            }
            out
        })
}

/// `book/src/en/troubleshooting.md#no-kprobes`
pub fn doc_link(failure: &Failure) -> String {
    format!("{TROUBLESHOOTING}#{}", failure.id)
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub id: SectionId,
    pub title: &'static str,
    /// The worst status of the items (`ok` for only info items).
    pub status: Status,
    pub items: Vec<Item>,
}

impl Section {
    pub fn new(id: SectionId, items: Vec<Item>) -> Section {
        let status = items
            .iter()
            .map(|i| i.status)
            .max()
            .unwrap_or(Status::Ok)
            .max(Status::Ok);
        Section {
            id,
            title: id.title(),
            status,
            items,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ready,
    WillFail,
    Unknown,
}

/// What decided a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The doctor loaded and attached the lesson's programs and triggered an unlink.
    Live,
    /// Predicted from files alone (no root, `--no-live` or `--root`).
    ReadOnly,
}

#[derive(Debug, Clone, Serialize)]
pub struct LessonVerdict {
    pub lesson: &'static str,
    pub probe: Probe,
    pub verdict: Verdict,
    pub basis: Basis,
    /// will_fail: the decisive catalogue entry; unknown: the one that kept the check from running, if any.
    pub failure: Option<&'static str>,
    /// One line: why.
    pub reason: String,
    /// will_fail: the fix; unknown: how to check what could not be checked.
    pub next: Option<String>,
    /// The other way to do the lesson's work when this one fails.
    pub alternative: Option<String>,
    /// The book's troubleshooting anchor for `failure`.
    pub doc: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub doctor_version: &'static str,
    /// The system root the files were read from (`/`, or `--root DIR`).
    pub root: String,
    /// The kernel function checked (`--function`, or what the kernel has).
    pub function: Option<String>,
    pub sections: Vec<Section>,
    pub lessons: Vec<LessonVerdict>,
    /// `lesson-02` -> verdict: the stable field for scripts and tests.
    pub verdicts: BTreeMap<&'static str, Verdict>,
    /// What the process exits with: 0 every lesson ready, 1 otherwise.
    pub exit_code: u8,
}

impl Report {
    pub fn new(
        root: String,
        function: Option<String>,
        sections: Vec<Section>,
        lessons: Vec<LessonVerdict>,
    ) -> Report {
        let verdicts = lessons.iter().map(|l| (l.lesson, l.verdict)).collect();
        let exit_code = if lessons.iter().all(|l| l.verdict == Verdict::Ready) {
            0
        } else {
            1
        };
        Report {
            schema: SCHEMA,
            doctor_version: env!("CARGO_PKG_VERSION"),
            root,
            function,
            sections,
            lessons,
            verdicts,
            exit_code,
        }
    }

    pub fn to_json(&self) -> String {
        json_printable(&serde_json::to_string_pretty(self).expect("the report is plain data"))
    }

    /// Sections, then the verdicts, `brew doctor` style.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for section in &self.sections {
            let _ = writeln!(out, "{} {}", section.status.symbol(), section.title.bold());
            for item in &section.items {
                let _ = writeln!(
                    out,
                    "  {} {}: {}",
                    item.status.symbol(),
                    printable(&item.label),
                    printable(&item.value)
                );
                if let Some(advice) = &item.advice {
                    if item.status >= Status::Skipped {
                        let _ = writeln!(out, "      {} {}", "→".dimmed(), printable(advice));
                    }
                }
            }
        }
        let _ = writeln!(out, "{}", "Verdict".bold());
        for lesson in &self.lessons {
            let (symbol, word) = match lesson.verdict {
                Verdict::Ready => (Status::Ok.symbol(), "ready".green().bold()),
                Verdict::WillFail => (Status::Fail.symbol(), "will fail".red().bold()),
                Verdict::Unknown => (Status::Warn.symbol(), "unknown".yellow().bold()),
            };
            let basis = match lesson.basis {
                Basis::Live => "live check",
                Basis::ReadOnly => "read-only checks",
            };
            let failure = lesson
                .failure
                .map(|id| format!(" [{id}]"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {symbol} {} ({}): {word}{failure}: {} ({basis})",
                lesson.lesson.bold(),
                lesson.probe,
                printable(&lesson.reason)
            );
            for (label, line) in [
                ("next", &lesson.next),
                ("or", &lesson.alternative),
                ("see", &lesson.doc),
            ] {
                if let Some(line) = line {
                    let _ = writeln!(
                        out,
                        "      {} {}",
                        format!("{label}:").dimmed(),
                        printable(line)
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_show_their_worst_item_and_items_their_fix() {
        let items = vec![
            Item::new(CheckId::ConfigSource, Status::Info, "x"),
            Item::new(CheckId::ConfigKprobes, Status::Fail, "not set")
                .failure("no-kprobes", Probe::Kprobe),
        ];
        let section = Section::new(SectionId::Config, items);
        assert_eq!(section.status, Status::Fail);
        let advice = section.items[1].advice.as_deref().unwrap();
        assert!(
            advice.contains("run lesson-03") && advice.ends_with("troubleshooting.md#no-kprobes)"),
            "{advice}"
        );
        assert_eq!(
            Section::new(
                SectionId::System,
                vec![Item::new(CheckId::SystemKernel, Status::Info, "x")]
            )
            .status,
            Status::Ok
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("Debian 12"), "Debian 12");
        assert_eq!(printable("中文 ✔"), "中文 ✔");
        assert_eq!(
            printable("a\u{1b}]0;x\u{7}b\u{9b}c\u{202e}d\n"),
            "a\\x1b]0;x\\x07b\\x9bc\\u{202e}d\\x0a"
        );
        let json = json_printable("{\"v\": \"\u{7f}\u{9b}\u{2066}ok\"}");
        assert_eq!(json, "{\"v\": \"\\u007f\\u009b\\u2066ok\"}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["v"], "\u{7f}\u{9b}\u{2066}ok");
    }

    proptest::proptest! {
        #[test]
        fn printable_leaves_no_control_character(text in "\\PC*|[\\x00-\\x{9f}\\x{202a}-\\x{202e}]{0,40}") {
            proptest::prop_assert!(!printable(&text).chars().any(needs_escape));
            let lines = printable_lines(&text);
            proptest::prop_assert!(lines.split('\n').all(|line| !line.contains(needs_escape)));
        }
    }
}
