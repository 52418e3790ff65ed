//! /proc/kallsyms, the symbols a kprobe resolves its function name against: the
//! kernel's `ADDRESS TYPE NAME [MODULE]` lines, or a snapshot's `TYPE NAME [MODULE]`
//! (`unlink-doctor snapshot` drops the addresses).
//!
//! The end-to-end tests (tests/tests/native.rs) read kallsyms with their own code on
//! purpose: an independent witness of what the doctor says.

/// The text symbol `name`, or else a compiler-suffixed one such as `name.isra.0`.
pub fn lookup(kallsyms: &str, name: &str) -> Option<String> {
    let mut suffixed = None;
    for line in kallsyms.lines() {
        let mut fields = line.split_whitespace();
        let (kind, symbol) = match (fields.next(), fields.next()) {
            (Some(kind), Some(symbol)) if kind.len() == 1 => (kind, symbol),
            (Some(_address), Some(kind)) => match fields.next() {
                Some(symbol) => (kind, symbol),
                None => continue,
            },
            _ => continue,
        };
        if !matches!(kind, "T" | "t") {
            continue;
        }
        if symbol == name {
            return Some(symbol.to_string());
        }
        if suffixed.is_none()
            && symbol
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('.'))
        {
            suffixed = Some(symbol.to_string());
        }
    }
    suffixed
}

/// `do_unlinkat.isra.0` -> `do_unlinkat`.
pub fn base_name(symbol: &str) -> &str {
    symbol.split('.').next().unwrap_or(symbol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lookup_prefers_exact_text_symbols() {
        let text = "ffff T __pfx_do_unlinkat\nffff t do_unlinkat.isra.0\nffff D do_unlinkat\nffff T do_unlinkat\n";
        assert_eq!(lookup(text, "do_unlinkat").as_deref(), Some("do_unlinkat"));
        assert_eq!(
            lookup("ffff t do_unlinkat.isra.0\n", "do_unlinkat").as_deref(),
            Some("do_unlinkat.isra.0")
        );
        assert_eq!(
            lookup("ffff D do_unlinkat\nffff T do_unlinkat_x\n", "do_unlinkat"),
            None
        );
        assert_eq!(lookup("garbage\n\n", "do_unlinkat"), None);
        assert_eq!(base_name("do_unlinkat.isra.0"), "do_unlinkat");
    }

    #[test]
    fn lookup_reads_a_snapshot_without_addresses() {
        assert_eq!(
            lookup("D do_unlinkat\nT do_unlinkat [ext4]\n", "do_unlinkat").as_deref(),
            Some("do_unlinkat")
        );
        assert_eq!(
            lookup("t do_unlinkat.isra.0\n", "do_unlinkat").as_deref(),
            Some("do_unlinkat.isra.0")
        );
        assert_eq!(lookup("T\n", "T"), None);
    }

    proptest! {
        #[test]
        fn never_panics(text in "([0-9a-f]{0,16} )?[TtDd]? ?(do_unlinkat)?.{0,100}", name in ".{0,20}") {
            let _ = lookup(&text, &name);
            let _ = base_name(&name);
        }
    }
}
