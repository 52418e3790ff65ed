//! Checks on the built HTML, offline: every relative link and #anchor
//! resolves, nothing is loaded from the network, no include was left
//! unexpanded, every code block has a language, no stray space sits between
//! two Chinese characters, every page links to its twin in the other language
//! (Chinese pages inside <div lang="zh-CN">), and the chapters carry no numbers.
//! The link check stays here rather than in lychee-lib: it must resolve
//! mdBook's <base>, anchors in pages and "loaded with the page" rules offline,
//! and lychee brings an async HTTP stack that this check never uses.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use scraper::{Html, Selector};

use super::check::Problems;
use super::server::percent_decode;
use super::source::{LANGUAGES, PAGES};
use super::spacing;
use crate::workspace;

/// Attributes that name another file: (tag, attribute, loaded with the page?).
const LINKS: [(&str, &str, bool); 7] = [
    ("a", "href", false),
    ("link", "href", true),
    ("script", "src", true),
    ("img", "src", true),
    ("iframe", "src", true),
    ("source", "src", true),
    ("video", "src", true),
];

#[derive(Debug, PartialEq)]
struct Tag {
    name: String,
    attributes: Vec<(String, String)>,
}

impl Tag {
    fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Page {
    tags: Vec<Tag>,
    ids: BTreeSet<String>,
    text: String,
}

pub fn check(site: &Path, problems: &mut Problems) -> Result<()> {
    let mut pages = BTreeMap::new();
    for file in html_files(site)? {
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let tags = tags(&text);
        let ids = tags
            .iter()
            .flat_map(|t| {
                [
                    t.get("id"),
                    if t.name == "a" { t.get("name") } else { None },
                ]
            })
            .flatten()
            .map(String::from)
            .collect();
        let relative = file.strip_prefix(site).unwrap().to_path_buf();
        pages.insert(relative, Page { tags, ids, text });
    }

    for (file, page) in &pages {
        let source = source_of(file);
        let base = page
            .tags
            .iter()
            .find(|t| t.name == "base")
            .and_then(|t| t.get("href"));
        for tag in &page.tags {
            for (name, attribute, loaded) in LINKS {
                if tag.name != name {
                    continue;
                }
                let Some(href) = tag.get(attribute) else {
                    continue;
                };
                if let Err(problem) = resolve(site, &pages, file, base, href, loaded) {
                    problems.add(format!(
                        "{source}: <{name} {attribute}=\"{href}\">: {problem}"
                    ));
                }
            }
        }
        if file.as_os_str() == "print.html" {
            continue; // every chapter again: the problems below are reported once, per chapter
        }
        if page.text.contains("{{#include") || page.text.contains("{{#rustdoc_include") {
            problems.add(format!(
                "{source}: an {{{{#include}}}} was left unexpanded (mdBook could not resolve it)"
            ));
        }
        for gap in spacing::stray_spaces(&page.text) {
            problems.add(format!(
                "{source}: a space between Chinese characters: {gap:?} (join the lines, or drop the space)"
            ));
        }
        let untagged = page
            .text
            .split("<pre>")
            .skip(1)
            .filter(|after| {
                let code = after.trim_start();
                code.starts_with("<code")
                    && !code[..code.find('>').unwrap_or(0)].contains("language-")
            })
            .count();
        if untagged > 0 {
            problems.add(format!(
                "{source}: {untagged} code block(s) without a language (indented code, or a fence with no tag)"
            ));
        }
    }

    // mdBook numbers the chapters through the whole book: the Chinese part
    // would be 8-14. book.toml's no-section-label turns numbers off.
    let toc = fs::read_to_string(site.join("toc.html")).context("reading the built toc.html")?;
    if toc.contains("<strong aria-hidden=\"true\">") {
        problems.add(
            "built toc.html: the chapters are numbered, the Chinese ones after the English \
             (set no-section-label = true in book.toml)"
                .into(),
        );
    }

    for name in PAGES {
        let heading_ids = |lang: &str| -> Option<BTreeSet<&str>> {
            let page = pages.get(&PathBuf::from(format!("{lang}/{name}.html")))?;
            let headings = ["h1", "h2", "h3", "h4", "h5", "h6"];
            Some(
                page.tags
                    .iter()
                    .filter(|t| headings.contains(&t.name.as_str()))
                    .filter_map(|t| t.get("id"))
                    .collect(),
            )
        };
        if let (Some(en), Some(zh)) = (heading_ids("en"), heading_ids("zh")) {
            let only = |a: &BTreeSet<&str>, b: &BTreeSet<&str>| -> Vec<String> {
                a.difference(b).map(|id| id.to_string()).collect()
            };
            for (lang, missing) in [("zh", only(&en, &zh)), ("en", only(&zh, &en))] {
                if !missing.is_empty() {
                    problems.add(format!(
                        "built {lang}/{name}.html: no heading with id {missing:?}, which the other language has (generated pages included)"
                    ));
                }
            }
        }
        for lang in LANGUAGES {
            let other = if lang == "en" { "zh" } else { "en" };
            let file = PathBuf::from(format!("{lang}/{name}.html"));
            let Some(page) = pages.get(&file) else {
                problems.add(format!("{}: not built", file.display()));
                continue;
            };
            let source = source_of(&file);
            let expected = format!("../{other}/{name}.html");
            let link = page.tags.iter().find(|t| {
                t.name == "a"
                    && t.get("class")
                        .is_some_and(|c| c.split(' ').any(|c| c == "lang-link"))
            });
            if link.and_then(|t| t.get("href")) != Some(expected.as_str()) {
                problems.add(format!(
                    "{source}: no language link to {expected} (preprocessor/lang.py adds it)"
                ));
            }
            let wrapped = page
                .tags
                .iter()
                .any(|t| t.name == "div" && t.get("lang") == Some("zh-CN"));
            if lang == "zh" && !wrapped {
                problems.add(format!(
                    "{source}: content is not inside <div lang=\"zh-CN\">"
                ));
            }
        }
    }
    Ok(())
}

/// Where a built page comes from, for messages: book/src/en/setup.md (en/setup.html).
fn source_of(file: &Path) -> String {
    let md = file.with_extension("md");
    let src = workspace::root().join("book/src").join(&md);
    if src.is_file() {
        format!("book/src/{} ({})", md.display(), file.display())
    } else {
        format!("built {}", file.display())
    }
}

fn html_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(html_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "html") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Check one link: a local file that exists, with the #anchor in it.
fn resolve(
    site: &Path,
    pages: &BTreeMap<PathBuf, Page>,
    from: &Path,
    base: Option<&str>,
    href: &str,
    loaded: bool,
) -> Result<(), String> {
    let scheme = href
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| !s.contains('/'));
    if let Some(scheme) = scheme {
        return if loaded || !matches!(scheme, "http" | "https" | "mailto") {
            Err(format!(
                "{scheme}: resources are not allowed (the book must load nothing from the network)"
            ))
        } else {
            Ok(()) // a link out: not followed offline
        };
    }
    if href.starts_with("//") {
        return Err("a protocol-relative URL loads from the network".into());
    }
    let (location, fragment) = href.split_once('#').unwrap_or((href, ""));
    let location = location.split('?').next().unwrap_or("");
    let location = percent_decode(location).ok_or("bad percent-encoding")?;
    let fragment = percent_decode(fragment).ok_or("bad percent-encoding")?;
    let target = if location.is_empty() {
        from.to_path_buf()
    } else {
        let start = match base {
            Some(base) if location.starts_with('/') || base.starts_with('/') => {
                PathBuf::from(base.trim_start_matches('/'))
            }
            _ => from.parent().unwrap_or(Path::new("")).to_path_buf(),
        };
        let joined = if location.starts_with('/') {
            PathBuf::from(location.trim_start_matches('/'))
        } else {
            start.join(&location)
        };
        let mut target = normalize(&joined).ok_or("points outside the book")?;
        if location.ends_with('/') || site.join(&target).is_dir() {
            target.push("index.html");
        }
        target
    };
    if !site.join(&target).is_file() {
        return Err(format!("{} does not exist", target.display()));
    }
    if fragment.is_empty() || target.extension().is_none_or(|e| e != "html") {
        return Ok(());
    }
    match pages.get(&target) {
        Some(page) if page.ids.contains(&fragment) => Ok(()),
        _ => Err(format!("{} has no id {fragment:?}", target.display())),
    }
}

/// `a/../b/./c` to `b/c`; None if it climbs above the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The elements of an HTML document in document order, with decoded
/// attribute values (html5ever, through scraper: comments and the text of
/// <script> and <style> are not elements).
fn tags(html: &str) -> Vec<Tag> {
    let every = Selector::parse("*").expect("a valid selector");
    Html::parse_document(html)
        .select(&every)
        .map(|element| Tag {
            name: element.value().name().to_string(),
            attributes: element
                .value()
                .attrs()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_and_skips_scripts_and_comments() {
        let html = r#"<!DOCTYPE html><a href="x.html#a&amp;b" class=plain>t</a><!-- <a href="no"> -->
            <script>if (a < b) { x = "<a href='no'>"; }</script><h2 id='sec'>S</h2><br/>"#;
        let found = tags(html);
        let names: Vec<&str> = found.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["html", "head", "body", "a", "script", "h2", "br"]);
        assert_eq!(found[3].get("href"), Some("x.html#a&b"));
        assert_eq!(found[3].get("class"), Some("plain"));
        assert_eq!(found[5].get("id"), Some("sec"));
    }

    #[test]
    fn normalizes_relative_paths() {
        assert_eq!(
            normalize(Path::new("en/../zh/./a.html")),
            Some(PathBuf::from("zh/a.html"))
        );
        assert_eq!(normalize(Path::new("../a.html")), None);
    }

    #[test]
    fn resolves_links_and_anchors() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().to_path_buf();
        fs::create_dir_all(site.join("en")).unwrap();
        fs::create_dir_all(site.join("zh")).unwrap();
        fs::write(site.join("en/a.html"), "").unwrap();
        fs::write(site.join("zh/a.html"), "").unwrap();
        let mut pages = BTreeMap::new();
        for (file, ids) in [("en/a.html", ["top"]), ("zh/a.html", ["中"])] {
            pages.insert(
                PathBuf::from(file),
                Page {
                    tags: Vec::new(),
                    ids: ids.iter().map(|s| s.to_string()).collect(),
                    text: String::new(),
                },
            );
        }
        let from = Path::new("en/a.html");
        let check = |href: &str, loaded: bool| resolve(&site, &pages, from, None, href, loaded);
        assert_eq!(check("#top", false), Ok(()));
        assert_eq!(check("../zh/a.html#%E4%B8%AD", false), Ok(()));
        assert!(check("../zh/a.html#nope", false)
            .unwrap_err()
            .contains("no id"));
        assert!(check("b.html", false)
            .unwrap_err()
            .contains("does not exist"));
        assert!(check("../../x.html", false)
            .unwrap_err()
            .contains("outside"));
        assert_eq!(check("https://docs.rs/libbpf-rs", false), Ok(()));
        assert!(check("https://cdn.example/x.js", true).is_err());
        assert_eq!(
            resolve(
                &site,
                &pages,
                Path::new("404.html"),
                Some("/"),
                "en/a.html",
                false
            ),
            Ok(())
        );
    }
}
