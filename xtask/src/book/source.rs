//! Checks on the Markdown sources: every English page has its Chinese twin,
//! listed in SUMMARY.md, with the same section ids; every heading has an
//! explicit id; every code block has a language, listings are includes of the
//! real sources and console blocks are captured transcripts; every include
//! resolves; every failure in the catalogue has its troubleshooting entry.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::check::Problems;
use crate::workspace;

/// The pages each language has (book/src/LANG/NAME.md), agreed with the writer.
pub const PAGES: [&str; 7] = [
    "introduction",
    "setup",
    "lesson-02-kprobe",
    "lesson-03-fentry",
    "doctor",
    "troubleshooting",
    "measurements",
];
pub const LANGUAGES: [&str; 2] = ["en", "zh"];

/// Code blocks in these languages are listings: {{#include}}s of the real sources only.
const LISTING_LANGUAGES: [&str; 2] = ["rust", "c"];

pub fn check(problems: &mut Problems) -> Result<()> {
    let root = workspace::root();
    let src = root.join("book/src");
    let summary =
        fs::read_to_string(src.join("SUMMARY.md")).context("reading book/src/SUMMARY.md")?;
    let listed: BTreeSet<String> = summary_paths(&summary).into_iter().collect();

    let mut names: BTreeSet<String> = PAGES.iter().map(|p| p.to_string()).collect();
    for lang in LANGUAGES {
        for entry in fs::read_dir(src.join(lang)).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "md") {
                names.insert(path.file_stem().unwrap().to_string_lossy().into_owned());
            }
        }
    }

    for name in &names {
        let mut pages = Vec::new();
        for lang in LANGUAGES {
            let page = format!("{lang}/{name}.md");
            let path = src.join(&page);
            if !listed.contains(&page) {
                problems.add(format!("book/src/SUMMARY.md: does not list {page}"));
            }
            match fs::read_to_string(&path) {
                Ok(text) => {
                    let shown = format!("book/src/{page}");
                    let scan = scan(&text);
                    report_scan(&shown, &path, &scan, problems);
                    pages.push((shown, scan));
                }
                Err(_) => problems.add(format!(
                    "book/src/{page}: missing (every page exists in en and zh)"
                )),
            }
        }
        if let [(en_file, en), (zh_file, zh)] = &pages[..] {
            compare_ids(en_file, en, zh_file, zh, problems);
            compare_asides(en_file, en, zh_file, zh, problems);
            chinese_terms(zh_file, zh, problems);
        }
    }

    // Pages outside the two languages (the landing page): the same rules, no twin.
    for page in listed
        .iter()
        .filter(|p| !LANGUAGES.iter().any(|l| p.starts_with(&format!("{l}/"))))
    {
        let path = src.join(page);
        match fs::read_to_string(&path) {
            Ok(text) => report_scan(&format!("book/src/{page}"), &path, &scan(&text), problems),
            Err(_) => problems.add(format!(
                "book/src/SUMMARY.md: lists {page}, which does not exist"
            )),
        }
    }

    let failures = root.join("common/src/failures.rs");
    let catalogue =
        catalogue_ids(&fs::read_to_string(&failures).context("reading common/src/failures.rs")?);
    if catalogue.is_empty() {
        problems.add("common/src/failures.rs: found no `id: \"...\"` in CATALOGUE".into());
    }
    for lang in LANGUAGES {
        let page = format!("book/src/{lang}/troubleshooting.md");
        let Ok(text) = fs::read_to_string(root.join(&page)) else {
            continue;
        };
        let ids: BTreeSet<String> = scan(&text)
            .headings
            .into_iter()
            .filter_map(|h| h.id)
            .collect();
        for (id, line) in &catalogue {
            if !ids.contains(id) {
                problems.add(format!(
                    "{page}: no heading {{#{id}}} for the catalogue's {id:?} (common/src/failures.rs:{line})"
                ));
            }
        }
    }
    Ok(())
}

/// The chapter paths SUMMARY.md links to.
fn summary_paths(summary: &str) -> Vec<String> {
    summary
        .lines()
        .filter_map(|line| {
            let start = line.find("](")? + 2;
            let end = start + line[start..].find(')')?;
            Some(line[start..end].to_string())
        })
        .collect()
}

#[derive(Debug, PartialEq)]
struct Heading {
    line: usize,
    text: String,
    id: Option<String>,
}

#[derive(Debug, PartialEq)]
struct CodeBlock {
    line: usize,
    /// The info string's first word; empty when untagged.
    language: String,
    lines: Vec<String>,
}

#[derive(Debug, PartialEq)]
struct Include {
    line: usize,
    path: String,
    /// An anchor name, a line range, or empty.
    spec: String,
}

#[derive(Debug, Default, PartialEq)]
struct Scan {
    headings: Vec<Heading>,
    code_blocks: Vec<CodeBlock>,
    includes: Vec<Include>,
    /// Lines underlining a setext heading, which cannot carry our ids cleanly.
    setext: Vec<usize>,
    /// Lines outside code blocks (headings included), with their numbers.
    prose: Vec<(usize, String)>,
}

/// One pass over a page: headings outside code, fenced code blocks, includes anywhere.
fn scan(text: &str) -> Scan {
    let mut scan = Scan::default();
    let mut fence: Option<(char, usize)> = None;
    let mut previous_is_text = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        scan.includes.extend(includes(line, number));
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|c| *c == m).count());
        if let Some((fence_char, fence_len)) = fence {
            if marker == Some(fence_char) && run >= fence_len && trimmed[run..].trim().is_empty() {
                fence = None;
            } else if let Some(block) = scan.code_blocks.last_mut() {
                block.lines.push(line.to_string());
            }
            previous_is_text = false;
            continue;
        }
        if let (Some(m), true) = (marker, run >= 3) {
            fence = Some((m, run));
            let info = trimmed[run..].trim();
            let language = info
                .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
                .next()
                .unwrap_or("")
                .to_string();
            scan.code_blocks.push(CodeBlock {
                line: number,
                language,
                lines: Vec::new(),
            });
            previous_is_text = false;
            continue;
        }
        scan.prose.push((number, line.to_string()));
        if let Some(heading) = atx_heading(trimmed, number) {
            scan.headings.push(heading);
            previous_is_text = false;
            continue;
        }
        let underline = !trimmed.is_empty()
            && (trimmed.trim_end().chars().all(|c| c == '=')
                || trimmed.trim_end().chars().all(|c| c == '-'));
        if underline && previous_is_text {
            scan.setext.push(number);
        }
        previous_is_text = !trimmed.is_empty()
            && !underline
            && !trimmed.starts_with(['-', '*', '+', '>', '|', '<'])
            && !trimmed.starts_with(|c: char| c.is_ascii_digit());
    }
    scan
}

/// `## Title {#id}`: the title and its explicit id, if any.
fn atx_heading(line: &str, number: usize) -> Option<Heading> {
    let level = line.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let rest = rest.trim();
    let (text, id) = match rest
        .strip_suffix('}')
        .and_then(|r| r.rfind('{').map(|at| (r, at)))
    {
        Some((inner, at)) => {
            let id = inner[at + 1..]
                .split_whitespace()
                .find_map(|attribute| attribute.strip_prefix('#'))
                .map(String::from);
            (inner[..at].trim().to_string(), id)
        }
        None => (rest.to_string(), None),
    };
    Some(Heading {
        line: number,
        text,
        id,
    })
}

/// `{{#include path:spec}}` and `{{#rustdoc_include ...}}` on a line, not escaped with `\`.
fn includes(line: &str, number: usize) -> Vec<Include> {
    let mut found = Vec::new();
    let mut rest = line;
    let mut offset = 0;
    while let Some(at) = rest.find("{{#") {
        let escaped = line[..offset + at].ends_with('\\');
        let after = &rest[at + 3..];
        let Some(end) = after.find("}}") else { break };
        let directive = &after[..end];
        let mut words = directive.split_whitespace();
        let kind = words.next().unwrap_or("");
        if !escaped && (kind == "include" || kind == "rustdoc_include") {
            let target = words.next().unwrap_or("");
            let (path, spec) = target.split_once(':').unwrap_or((target, ""));
            found.push(Include {
                line: number,
                path: path.to_string(),
                spec: spec.to_string(),
            });
        }
        offset += at + 3 + end + 2;
        rest = &after[end + 2..];
    }
    found
}

fn report_scan(shown: &str, path: &Path, scan: &Scan, problems: &mut Problems) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for heading in &scan.headings {
        match &heading.id {
            None => problems.add(format!(
                "{shown}:{}: heading {:?} has no explicit id: write it as `{} {{#some-id}}`, the same id in en and zh",
                heading.line, heading.text, heading.text
            )),
            Some(id) => {
                if let Some(first) = seen.insert(id, heading.line) {
                    problems.add(format!(
                        "{shown}:{}: heading id {{#{id}}} again (first at line {first})",
                        heading.line
                    ));
                }
            }
        }
    }
    for line in &scan.setext {
        problems.add(format!(
            "{shown}:{line}: setext heading (underlined): use `## Title {{#id}}`"
        ));
    }
    for block in &scan.code_blocks {
        let body: Vec<&str> = block
            .lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        let only_includes = body.iter().all(|l| {
            (l.starts_with("{{#include ") || l.starts_with("{{#rustdoc_include "))
                && l.ends_with("}}")
        });
        if block.language.is_empty() {
            problems.add(format!(
                "{shown}:{}: code block without a language tag (```rust, ```c, ```console, ```sh, ```text, ...)",
                block.line
            ));
        } else if LISTING_LANGUAGES.contains(&block.language.as_str()) && !only_includes {
            problems.add(format!(
                "{shown}:{}: ```{} block with pasted code: listings are {{{{#include}}}}s of the real sources (ANCHOR regions)",
                block.line, block.language
            ));
        } else if block.language == "console"
            && !(only_includes && body.iter().all(|l| l.contains("transcripts/")))
        {
            problems.add(format!(
                "{shown}:{}: ```console block that is not a captured transcript: include one from book/src/transcripts/ (cargo xtask book transcripts)",
                block.line
            ));
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    for include in &scan.includes {
        if let Err(problem) = resolve_include(dir, include) {
            problems.add(format!(
                "{shown}:{}: {{{{#include {}}}}}: {problem}",
                include.line, include.path
            ));
        }
    }
}

fn resolve_include(dir: &Path, include: &Include) -> Result<(), String> {
    let file: PathBuf = dir.join(&include.path);
    let text =
        fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let spec = include.spec.as_str();
    if spec.is_empty() {
        return Ok(());
    }
    let is_range = spec.chars().all(|c| c.is_ascii_digit() || c == ':');
    if is_range {
        let lines = text.lines().count();
        let too_far = spec
            .split(':')
            .filter_map(|n| n.parse::<usize>().ok())
            .find(|n| *n > lines);
        return match too_far {
            Some(n) => Err(format!("line {n} is past the end ({lines} lines)")),
            None => Ok(()),
        };
    }
    let has = |marker: &str| {
        text.lines().any(|l| {
            l.split_once(marker)
                .is_some_and(|(_, name)| name.trim().trim_end_matches("*/").trim() == spec)
        })
    };
    match (has("ANCHOR:"), has("ANCHOR_END:")) {
        (true, true) => Ok(()),
        (false, _) => Err(format!("no `ANCHOR: {spec}` in {}", file.display())),
        (true, false) => Err(format!("no `ANCHOR_END: {spec}` in {}", file.display())),
    }
}

/// Same section ids, in the same order, in a page and its translation.
/// The optional deep dives (theme/lang.css): the same number in both languages.
const ASIDE: &str = "<aside class=\"deep-dive\">";

fn compare_asides(en_file: &str, en: &Scan, zh_file: &str, zh: &Scan, problems: &mut Problems) {
    let count = |scan: &Scan| scan.prose.iter().filter(|(_, l)| l.contains(ASIDE)).count();
    let (in_en, in_zh) = (count(en), count(zh));
    if in_en != in_zh {
        problems.add(format!(
            "{zh_file}: {in_zh} optional asides ({ASIDE}), {en_file} has {in_en}: the same deep dives in both"
        ));
    }
}

/// One Chinese word per term: 附加 for attaching a program, 挂载 for
/// mounting a file system. A bare 挂 (挂上, 挂到, 挂好) means either.
fn chinese_terms(zh_file: &str, zh: &Scan, problems: &mut Problems) {
    for (line, text) in &zh.prose {
        let prose = text.split('`').step_by(2).collect::<String>();
        if prose.replace("挂载", "").contains('挂') {
            problems.add(format!(
                "{zh_file}:{line}: 挂 without 载: write 附加 for attach, 挂载 for mount"
            ));
        }
    }
}

fn compare_ids(en_file: &str, en: &Scan, zh_file: &str, zh: &Scan, problems: &mut Problems) {
    let ids = |scan: &Scan| -> Vec<(String, usize)> {
        scan.headings
            .iter()
            .filter_map(|h| Some((h.id.clone()?, h.line)))
            .collect()
    };
    let (en_ids, zh_ids) = (ids(en), ids(zh));
    let has = |list: &[(String, usize)], id: &str| list.iter().any(|(i, _)| i == id);
    for (id, line) in &en_ids {
        if !has(&zh_ids, id) {
            problems.add(format!(
                "{zh_file}: no heading {{#{id}}} ({en_file}:{line} has it)"
            ));
        }
    }
    for (id, line) in &zh_ids {
        if !has(&en_ids, id) {
            problems.add(format!(
                "{en_file}: no heading {{#{id}}} ({zh_file}:{line} has it)"
            ));
        }
    }
    let common = |list: &[(String, usize)], other: &[(String, usize)]| -> Vec<(String, usize)> {
        list.iter()
            .filter(|(id, _)| has(other, id))
            .cloned()
            .collect()
    };
    let (en_order, zh_order) = (common(&en_ids, &zh_ids), common(&zh_ids, &en_ids));
    if let Some(((en_id, en_line), (zh_id, zh_line))) =
        en_order.iter().zip(&zh_order).find(|(a, b)| a.0 != b.0)
    {
        problems.add(format!(
            "{zh_file}:{zh_line}: sections in another order than in English: {{#{zh_id}}} here, {{#{en_id}}} at {en_file}:{en_line}"
        ));
    }
}

/// The ids of the failure catalogue and their lines, read as text.
fn catalogue_ids(failures_rs: &str) -> Vec<(String, usize)> {
    let mut in_catalogue = false;
    let mut ids = Vec::new();
    for (index, line) in failures_rs.lines().enumerate() {
        let line = line.trim();
        if line.starts_with("pub const CATALOGUE") {
            in_catalogue = true;
        } else if in_catalogue && line == "];" {
            break;
        } else if let (true, Some(rest)) = (in_catalogue, line.strip_prefix("id: \"")) {
            if let Some(id) = rest.strip_suffix("\",") {
                ids.push((id.to_string(), index + 1));
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_with_and_without_ids() {
        let scan =
            scan("# Title {#title}\n\n## 标题 {#same-id .class}\n\n### Plain\n\n#notaheading\n");
        let found: Vec<(&str, Option<&str>)> = scan
            .headings
            .iter()
            .map(|h| (h.text.as_str(), h.id.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                ("Title", Some("title")),
                ("标题", Some("same-id")),
                ("Plain", None)
            ]
        );
    }

    #[test]
    fn code_blocks_and_headings_inside_them() {
        let text = "```rust\n{{#include ../a.rs:open}}\n```\n\n````\n# not a heading\n```\n````\n\n~~~console\nx\n~~~\n";
        let scan = scan(text);
        assert!(scan.headings.is_empty(), "{scan:?}");
        let blocks: Vec<(usize, &str, usize)> = scan
            .code_blocks
            .iter()
            .map(|b| (b.line, b.language.as_str(), b.lines.len()))
            .collect();
        assert_eq!(blocks, [(1, "rust", 1), (5, "", 2), (10, "console", 1)]);
    }

    #[test]
    fn setext_headings_are_found_but_not_rules_or_lists() {
        let scan = scan("Title\n=====\n\ntext\n\n---\n\n- item\n---\n");
        assert_eq!(scan.setext, [2]);
    }

    #[test]
    fn includes_with_anchors_ranges_and_escapes() {
        let found = includes(
            r"{{#include ../x.rs:open}} and {{#include y.txt}} \{{#include z.rs}}",
            3,
        );
        assert_eq!(
            found,
            [
                Include {
                    line: 3,
                    path: "../x.rs".into(),
                    spec: "open".into()
                },
                Include {
                    line: 3,
                    path: "y.txt".into(),
                    spec: "".into()
                },
            ]
        );
    }

    #[test]
    fn anchors_must_open_and_close() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        fs::write(
            dir.join("a.c"),
            "// ANCHOR: entry\nint x;\n// ANCHOR_END: entry\n/* ANCHOR: half */\n",
        )
        .unwrap();
        let include = |spec: &str| Include {
            line: 1,
            path: "a.c".into(),
            spec: spec.into(),
        };
        assert_eq!(resolve_include(&dir, &include("entry")), Ok(()));
        assert!(resolve_include(&dir, &include("half"))
            .unwrap_err()
            .contains("ANCHOR_END: half"));
        assert!(resolve_include(&dir, &include("missing"))
            .unwrap_err()
            .contains("ANCHOR: missing"));
        assert_eq!(resolve_include(&dir, &include("2:3")), Ok(()));
        assert!(resolve_include(&dir, &include("9:")).is_err());
    }

    #[test]
    fn reads_the_catalogue_ids_only() {
        let text = "struct Failure { id: &'static str }\npub const CATALOGUE: &[Failure] = &[\n    Failure {\n        id: \"not-privileged\",\n    },\n];\nfn f() { Failure { id: \"elsewhere\", } }\n";
        assert_eq!(catalogue_ids(text), [("not-privileged".to_string(), 4)]);
    }

    #[test]
    fn summary_links() {
        assert_eq!(
            summary_paths("# Summary\n\n[unlink-lab](index.md)\n\n- [Setup](en/setup.md)\n"),
            ["index.md", "en/setup.md"]
        );
    }

    #[test]
    fn one_word_for_attach_another_for_mount() {
        let mut problems = Problems::default();
        let zh = scan("先挂载 tracefs，再附加程序。\n```sh\n# 挂 in code is fine\n```\n`挂` too\n");
        chinese_terms("zh.md", &zh, &mut problems);
        assert_eq!(problems.len(), 0);
        chinese_terms("zh.md", &scan("把程序挂到函数上\n"), &mut problems);
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn asides_come_in_pairs() {
        let mut problems = Problems::default();
        let aside = "<aside class=\"deep-dive\">\n\ntext\n\n</aside>\n";
        compare_asides("en", &scan(aside), "zh", &scan(aside), &mut problems);
        assert_eq!(problems.len(), 0);
        compare_asides("en", &scan(aside), "zh", &scan("text\n"), &mut problems);
        assert_eq!(problems.len(), 1);
    }
}
