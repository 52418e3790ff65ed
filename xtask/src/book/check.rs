//! `cargo xtask book check`: everything CI checks about the book, each
//! problem reported on its own line (file:line where there is one), and a
//! non-zero exit when there is any.

use std::time::Instant;

use anyhow::{bail, Result};

use super::source::{LANGUAGES, PAGES};
use super::{browser, build, html, install, search, source, transcripts};
use crate::{deps, workspace};

/// The Chinese words the search tests look for (kernel, probe, trace, return
/// value): words a reader of the Chinese pages searches for.
pub const ZH_QUERIES: [&str; 4] = ["内核", "探针", "跟踪", "返回值"];

/// Problems found so far; each is printed when found.
#[derive(Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn add(&mut self, problem: String) {
        eprintln!("  ✘ {problem}");
        self.0.push(problem);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

pub fn run() -> Result<()> {
    let started = Instant::now();
    deps::ensure(&[install::BUILD, install::BROWSER])?;
    install::mdbook()?;
    let mut problems = Problems::default();
    let out = workspace::target_dir().join("book-check");
    let site = out.join("html");

    stage(
        "sources: pages, headings and ids, code blocks, includes, catalogue",
        &mut problems,
        source::check,
    )?;
    let _ = std::fs::remove_dir_all(&site);
    build(&site)?;
    stage(
        "built HTML: links and anchors, offline, includes, language links",
        &mut problems,
        |p| html::check(&site, p),
    )?;
    stage(
        &format!("search index: each of {ZH_QUERIES:?} finds a Chinese page"),
        &mut problems,
        |p| {
            ZH_QUERIES
                .iter()
                .try_for_each(|query| search::check(&site, query, p))
        },
    )?;
    let plan = browser::Plan {
        en_page: "en/setup.html",
        zh_page: "zh/setup.html",
        section: "running-in-a-vm",
        zh_queries: &ZH_QUERIES,
        en_query: "kprobe",
        pages: LANGUAGES
            .iter()
            .flat_map(|lang| PAGES.iter().map(move |name| format!("{lang}/{name}.html")))
            .collect(),
    };
    stage(
        &format!(
            "headless Chromium: language links, lang, fonts, search ({} fresh loads per query), previous/next",
            browser::LOADS
        ),
        &mut problems,
        |p| browser::check(&site, &plan, &out, p),
    )?;
    stage(
        "transcripts: re-run and compare",
        &mut problems,
        transcripts::check,
    )?;

    let elapsed = started.elapsed().as_secs_f64();
    if !problems.0.is_empty() {
        bail!(
            "book check: {} problems (listed above), {elapsed:.1}s",
            problems.len()
        );
    }
    eprintln!(
        "book check: all good in {elapsed:.1}s; screenshots in {}",
        out.display()
    );
    Ok(())
}

fn stage(
    name: &str,
    problems: &mut Problems,
    check: impl FnOnce(&mut Problems) -> Result<()>,
) -> Result<()> {
    eprintln!("book check: {name}");
    let (started, before) = (Instant::now(), problems.len());
    check(problems)?;
    let found = problems.len() - before;
    eprintln!(
        "book check: {} in {:.1}s",
        if found == 0 {
            "ok".to_string()
        } else {
            format!("{found} problems")
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
