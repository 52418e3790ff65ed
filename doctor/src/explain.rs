//! `unlink-doctor explain ERROR_TEXT`: find the errno, the stage and the probe
//! in a pasted error, in any of the forms libbpf, libbpf-rs and the lessons print.

use serde::Serialize;
use unlink_common::errno;
use unlink_common::failures::{Probe, Stage};

/// What a pasted error says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parsed {
    pub errno: Option<i32>,
    /// The part of the text the errno was read from.
    pub errno_text: Option<String>,
    pub stage: Option<Stage>,
    pub probe: Option<Probe>,
}

pub fn parse(text: &str) -> Parsed {
    let (errno, errno_text) = match find_errno(text) {
        Some((errno, found)) => (errno, Some(found)),
        None => (None, None),
    };
    // Only trampolines (fentry/fexit) fail with the kernel-internal ENOTSUPP.
    let probe = find_probe(text).or((errno == Some(524)).then_some(Probe::Fentry));
    Parsed {
        errno,
        errno_text,
        stage: find_stage(text),
        probe,
    }
}

/// The errno in `text` (`None` for a number that is no errno) and the words it was read from.
fn find_errno(text: &str) -> Option<(Option<i32>, String)> {
    // libbpf < 1.6: `strerror_r(-524)=22`; the 22 is strerror_r's own failure, not the error.
    if let Some(digits) = digits_after(text, "strerror_r(-") {
        return Some((known_errno(digits), format!("strerror_r(-{digits})")));
    }
    // Rust: `Unknown error 524 (os error 524)`, `No such file or directory (os error 2)`, `os error 1`.
    for prefix in ["os error ", "Unknown error ", "errno=", "errno "] {
        if let Some(digits) = digits_after(text, prefix) {
            return Some((known_errno(digits), format!("{prefix}{digits}")));
        }
    }
    // libbpf >= 1.6 and the kernel's names: `-ENOTSUPP`, `ENOENT`.
    let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    for word in words.clone() {
        let name = word.trim_start_matches('-');
        if name.len() > 2
            && name.starts_with('E')
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            if let Some(n) = errno::from_name(name) {
                return Some((Some(n), word.to_string()));
            }
        }
    }
    // Negative return values: `...type ID of 'do_unlinkat': -3`, `err -524`.
    for word in words {
        if let Some(n) = word.strip_prefix('-').and_then(known_errno) {
            return Some((Some(n), word.to_string()));
        }
    }
    // The C library's text: `Operation not permitted`.
    (1..=133).find_map(|n| {
        let message = crate::sysroot::strerror(n);
        (!message.starts_with("Unknown error") && text.contains(&message))
            .then_some((Some(n), message))
    })
}

/// All the digits right after `prefix` (the first `prefix` followed by a digit wins).
fn digits_after<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    text.match_indices(prefix).find_map(|(at, _)| {
        let rest = &text[at + prefix.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        Some(&rest[..end]).filter(|digits| !digits.is_empty())
    })
}

/// The number in `digits` if Linux has an errno of that number (`999999999` is none).
fn known_errno(digits: &str) -> Option<i32> {
    digits.parse().ok().filter(|&n| errno::name(n).is_some())
}

fn find_stage(text: &str) -> Option<Stage> {
    let lower = text.to_lowercase();
    if lower.contains("attach") || lower.contains("perf event") || lower.contains("kprobe event") {
        Some(Stage::Attach)
    } else if lower.contains("load") || lower.contains("verifier") || lower.contains("btf") {
        Some(Stage::Load)
    } else {
        None
    }
}

fn find_probe(text: &str) -> Option<Probe> {
    let lower = text.to_lowercase();
    let kprobe = ["kprobe", "kretprobe", "lesson-02", "lesson_02"]
        .iter()
        .any(|w| lower.contains(w));
    let fentry = [
        "fentry",
        "fexit",
        "trampoline",
        "lesson-03",
        "lesson_03",
        "tracing prog",
        "btf type id",
    ]
    .iter()
    .any(|w| lower.contains(w));
    match (kprobe, fentry) {
        (true, false) => Some(Probe::Kprobe),
        (false, true) => Some(Probe::Fentry),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn errno(text: &str) -> Option<i32> {
        parse(text).errno
    }

    #[test]
    fn every_form_of_the_error() {
        assert_eq!(
            errno("libbpf: prog 'unlink_entry': failed to attach: ERROR: strerror_r(-524)=22"),
            Some(524)
        );
        assert_eq!(
            errno("libbpf: prog 'unlink_entry': failed to attach: -ENOTSUPP"),
            Some(524)
        );
        assert_eq!(
            errno("Error: failed to attach: Unknown error 524 (os error 524)"),
            Some(524)
        );
        assert_eq!(errno("Operation not permitted (os error 1)"), Some(1));
        assert_eq!(errno("os error 1"), Some(1));
        assert_eq!(
            errno("libbpf: failed to add legacy kprobe event for 'do_unlinkat+0x0': -ENOENT"),
            Some(2)
        );
        assert_eq!(errno("libbpf: prog 'unlink_entry': failed to find kernel BTF type ID of 'do_unlinkat': -3"), Some(3));
        assert_eq!(
            errno("libbpf: prog 'unlink_entry': BPF program load failed: Operation not permitted"),
            Some(1)
        );
        assert_eq!(
            errno("attaching the kprobe on do_unlinkat failed with ENOENT (-2): ..."),
            Some(2)
        );
        assert_eq!(errno("Device or resource busy"), Some(16));
        assert_eq!(errno("everything is fine"), None);
        assert_eq!(errno("ERROR: something"), None);
        // Numbers that are no errno are not taken for one, nor cut short.
        let parsed = parse("os error 999999999");
        assert_eq!(parsed.errno, None);
        assert_eq!(parsed.errno_text.as_deref(), Some("os error 999999999"));
        let parsed = parse("strerror_r(-2147483648)=22");
        assert_eq!(parsed.errno, None);
        assert_eq!(
            parsed.errno_text.as_deref(),
            Some("strerror_r(-2147483648)")
        );
    }

    #[test]
    fn stage_and_probe() {
        let parsed = parse(
            "libbpf: prog 'unlink_entry': failed to attach: ERROR: strerror_r(-524)=22 (fentry)",
        );
        assert_eq!(
            (parsed.stage, parsed.probe),
            (Some(Stage::Attach), Some(Probe::Fentry))
        );
        let parsed = parse("loading the kprobe programs failed");
        assert_eq!(
            (parsed.stage, parsed.probe),
            (Some(Stage::Load), Some(Probe::Kprobe))
        );
        assert_eq!(parse("os error 1").probe, None);
        assert_eq!(parse("strerror_r(-524)=22").probe, Some(Probe::Fentry));
        assert_eq!(
            parse("failed to find kernel BTF type ID of 'do_unlinkat': -3").probe,
            Some(Probe::Fentry)
        );
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn finds_any_os_error(prefix in "[a-z :]{0,40}", n in 1i32..600) {
            let known = errno::name(n).map(|_| n);
            prop_assert_eq!(errno(&format!("{prefix} (os error {n})")), known);
        }

        #[test]
        fn reads_every_digit(digits in "[0-9]{1,30}") {
            let parsed = parse(&format!("strerror_r(-{digits})=22"));
            prop_assert_eq!(parsed.errno_text, Some(format!("strerror_r(-{digits})")));
        }
    }
}
