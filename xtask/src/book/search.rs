//! The search index test: a Chinese word finds Chinese pages. mdBook's own
//! search cannot (mdBook issue #1081); the script in theme/head.hbs searches
//! the section texts stored in the built index instead. This test runs the
//! same rule on the same index, without a browser: every space-separated term
//! must occur in the section's title or body, case-insensitively.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::check::Problems;

pub fn check(site: &Path, query: &str, problems: &mut Problems) -> Result<()> {
    let index = load(site)?;
    let found = search(&index, query);
    eprintln!(
        "book: {query:?} is in {} sections, first {:?}",
        found.len(),
        found.first()
    );
    if !found.iter().any(|url| url.starts_with("zh/")) {
        problems.add(format!(
            "search index: {query:?} finds no Chinese page (found {found:?}); is it in the zh pages' text?"
        ));
    }
    Ok(())
}

/// The JSON inside the built searchindex-HASH.js.
fn load(site: &Path) -> Result<Value> {
    let file = fs::read_dir(site)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("searchindex") && name.ends_with(".js")
        })
        .with_context(|| format!("no searchindex*.js in {}", site.display()))?;
    let script = fs::read_to_string(&file)?;
    // window.search = Object.assign(window.search, JSON.parse('...'));
    let (Some(start), Some(end)) = (script.find("JSON.parse('"), script.rfind("')")) else {
        bail!(
            "{}: not the searchindex.js format of mdBook 0.5",
            file.display()
        );
    };
    let json = unescape_js(&script[start + "JSON.parse('".len()..end]);
    serde_json::from_str(&json).with_context(|| format!("parsing the index in {}", file.display()))
}

/// Undo mdBook's escaping of the JSON into a '...' string: `\\` and `\'`.
fn unescape_js(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The URLs of the sections matching `query`, the rule of theme/head.hbs.
fn search(index: &Value, query: &str) -> Vec<String> {
    let terms: Vec<String> = query
        .to_lowercase()
        .split_whitespace()
        .map(String::from)
        .collect();
    let docs = index["index"]["documentStore"]["docs"].as_object();
    let mut found: Vec<(usize, String)> = docs
        .into_iter()
        .flatten()
        .filter_map(|(reference, doc)| {
            let text = |field: &str| doc[field].as_str().unwrap_or("").to_lowercase();
            let (title, body) = (text("title"), text("body"));
            let mut score = 0;
            for term in &terms {
                let hits =
                    2 * title.matches(term.as_str()).count() + body.matches(term.as_str()).count();
                if hits == 0 {
                    return None;
                }
                score += hits;
            }
            let url = index["doc_urls"][reference.parse::<usize>().ok()?].as_str()?;
            Some((score, url.to_string()))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found.into_iter().map(|(_, url)| url).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_term_must_occur() {
        let index = json!({
            "doc_urls": ["en/a.html#x", "zh/a.html#x", "zh/b.html#y"],
            "index": {"documentStore": {"docs": {
                "0": {"title": "Kernel", "body": "the kernel function"},
                "1": {"title": "内核", "body": "每次调用内核函数时"},
                "2": {"title": "探针", "body": "kprobe 挂在函数入口"},
            }}}
        });
        assert_eq!(search(&index, "内核"), ["zh/a.html#x"]);
        assert_eq!(search(&index, "函数"), ["zh/a.html#x", "zh/b.html#y"]);
        assert_eq!(search(&index, "KPROBE 入口"), ["zh/b.html#y"]);
        assert!(search(&index, "内核 kprobe").is_empty());
    }

    #[test]
    fn undoes_the_js_string_escaping() {
        assert_eq!(
            unescape_js(r#"{"a":"it\'s \\"x\\" \\\\"}"#),
            r#"{"a":"it's \"x\" \\"}"#
        );
    }
}
