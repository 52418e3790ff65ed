//! os-release(5): `KEY=value` lines, values optionally quoted.

use std::collections::BTreeMap;

pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once('=')?;
            let valid =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            valid.then(|| (key.to_string(), unquote(value.trim())))
        })
        .collect()
}

fn unquote(value: &str) -> String {
    let inner = ['"', '\'']
        .iter()
        .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
        .unwrap_or(value);
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// `PRETTY_NAME`, or `NAME VERSION`, or `NAME`.
pub fn pretty_name(fields: &BTreeMap<String, String>) -> Option<String> {
    if let Some(pretty) = fields.get("PRETTY_NAME").filter(|p| !p.is_empty()) {
        return Some(pretty.clone());
    }
    let name = fields.get("NAME")?;
    Some(match fields.get("VERSION") {
        Some(version) => format!("{name} {version}"),
        None => name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_debian() {
        let fields = parse("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME='Debian'\nVERSION_ID=\"12\"\n# comment\nbad line\n");
        assert_eq!(
            pretty_name(&fields).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(fields["NAME"], "Debian");
        assert_eq!(
            pretty_name(&parse("NAME=Alpine\nVERSION=3.20\n")).as_deref(),
            Some("Alpine 3.20")
        );
        assert_eq!(pretty_name(&parse("")), None);
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,300}") {
            let _ = pretty_name(&parse(&text));
        }
    }
}
