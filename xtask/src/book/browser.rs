//! The real-browser check: headless Chromium, driven over the DevTools
//! protocol on a pipe (`--remote-debugging-pipe`: NUL-terminated JSON, the
//! browser reads fd 3 and writes fd 4), against the built book served on
//! 127.0.0.1. No browser library, no downloads, no network: any request that
//! leaves the local server is reported.
//! Hand-made on purpose: WebDriver (chromium-driver) has no way to ask which
//! font rendered a node (CSS.getPlatformFontsForNode) or to see every request
//! a page makes (Network events), and the CDP crates either download a browser
//! or bring an async runtime for these ten commands.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tempfile::TempDir;

use super::check::Problems;
use super::{pipe, server};
use crate::cmd;

const CHROMIUM: &str = "/usr/bin/chromium";
const TIMEOUT: Duration = Duration::from_secs(20);

/// The page pair the check walks through, and the queries it searches.
pub struct Plan<'a> {
    pub en_page: &'a str,
    pub zh_page: &'a str,
    /// A heading id both pages have: the language link must keep it.
    pub section: &'a str,
    /// Each must find Chinese sections, and only those, on every fresh load of the Chinese page.
    pub zh_queries: &'a [&'a str],
    /// Must find English sections, and only those, on the English page.
    pub en_query: &'a str,
    /// Every page: its previous/next links must stay in its language.
    pub pages: Vec<String>,
}

/// How many times each Chinese query is loaded afresh (`?search=`, cache
/// off): the CJK patch once lost a race with mdBook's searcher on some loads.
pub const LOADS: usize = 10;

/// Load an English page at a section, follow its language link (to the same
/// section), check lang and the fonts Chinese renders with, follow the link
/// back; search in Chinese on fresh loads and in English; check every page's
/// previous/next links; screenshots go to `shots`.
pub fn check(site: &Path, plan: &Plan<'_>, shots: &Path, problems: &mut Problems) -> Result<()> {
    let base = server::start(site)?;
    fs::create_dir_all(shots).with_context(|| format!("creating {}", shots.display()))?;
    let mut browser = Browser::launch(&shots.join("chromium.log"))?;
    let result = walk(&mut browser, &base, plan, shots, problems);
    let events = browser.close();
    // Each page load repeats them: report each once.
    let mut found = std::collections::BTreeSet::new();
    for event in &events {
        let params = &event["params"];
        match event["method"].as_str().unwrap_or("") {
            "Network.requestWillBeSent" => {
                let url = params["request"]["url"].as_str().unwrap_or("");
                let local = url.starts_with(&base)
                    || ["data:", "about:", "blob:"]
                        .iter()
                        .any(|s| url.starts_with(s));
                if !local {
                    found.insert(format!(
                        "browser: a page requested a network resource: {url}"
                    ));
                }
            }
            "Network.responseReceived" => {
                let response = &params["response"];
                if response["status"].as_i64().unwrap_or(0) >= 400 {
                    found.insert(format!(
                        "browser: {} answered {}",
                        response["url"].as_str().unwrap_or("?"),
                        response["status"]
                    ));
                }
            }
            "Runtime.exceptionThrown" => {
                let details = &params["exceptionDetails"];
                let description = details["exception"]["description"].as_str();
                found.insert(format!(
                    "browser: script error: {}",
                    description.or(details["text"].as_str()).unwrap_or("?")
                ));
            }
            "Runtime.consoleAPICalled" if params["type"] == "error" => {
                found.insert(format!(
                    "browser: console error: {}",
                    params["args"][0]["value"]
                ));
            }
            _ => {}
        }
    }
    for problem in found {
        problems.add(problem);
    }
    result
}

fn walk(
    browser: &mut Browser,
    base: &str,
    plan: &Plan<'_>,
    shots: &Path,
    problems: &mut Problems,
) -> Result<()> {
    let en_url = format!("{base}{}#{}", plan.en_page, plan.section);
    browser.navigate(&en_url)?;
    expect_page(browser, plan.en_page, "en", problems)?;
    // On an English page the sidebar still lists the Chinese chapters.
    expect_chinese_fonts(browser, "#mdbook-sidebar a[lang=\"zh-CN\"]", problems)?;
    browser.screenshot(&shots.join("en.png"))?;

    browser.click_and_wait(".lang-switch a.lang-link")?;
    expect_page(browser, plan.zh_page, "zh-CN", problems)?;
    let hash = browser.eval("location.hash")?;
    if hash != json!(format!("#{}", plan.section)) {
        problems.add(format!(
            "browser: the language link from {}#{} lost the section: landed on {}{hash}",
            plan.en_page, plan.section, plan.zh_page
        ));
    }
    if browser.eval("document.querySelector('main div[lang=\"zh-CN\"]') !== null")? != json!(true) {
        problems.add(format!(
            "browser: {}: no <div lang=\"zh-CN\"> around the content",
            plan.zh_page
        ));
    }
    expect_chinese_fonts(browser, "main h1", problems)?;
    browser.screenshot(&shots.join("zh.png"))?;

    browser.click_and_wait(".lang-switch a.lang-link")?;
    expect_page(browser, plan.en_page, "en", problems)?;

    // Fresh loads: no cache, so the scripts arrive in a different order each time.
    browser.send("Network.setCacheDisabled", json!({"cacheDisabled": true}))?;
    for query in plan.zh_queries {
        let mut counts = Vec::new();
        for _ in 0..LOADS {
            let results = browser.search_on_load(base, plan.zh_page, query)?;
            counts.push(results.len());
            expect_language(&results, query, plan.zh_page, "zh/", problems);
        }
        eprintln!(
            "book: ?search={query} on {}: results per fresh load {counts:?}",
            plan.zh_page
        );
        if counts.contains(&0) {
            problems.add(format!(
                "browser: ?search={query} on {} found nothing on {} of {LOADS} fresh loads: {counts:?}",
                plan.zh_page,
                counts.iter().filter(|c| **c == 0).count()
            ));
        }
    }
    browser.screenshot(&shots.join("zh-search.png"))?;
    let results = browser.search_on_load(base, plan.en_page, plan.en_query)?;
    eprintln!(
        "book: ?search={} on {}: {} results",
        plan.en_query,
        plan.en_page,
        results.len()
    );
    if results.is_empty() {
        problems.add(format!(
            "browser: ?search={} on {} found nothing",
            plan.en_query, plan.en_page
        ));
    }
    expect_language(&results, plan.en_query, plan.en_page, "en/", problems);
    browser.send("Network.setCacheDisabled", json!({"cacheDisabled": false}))?;

    for page in &plan.pages {
        browser.navigate(&format!("{base}{page}"))?;
        let lang = if page.starts_with("zh/") {
            "zh/"
        } else {
            "en/"
        };
        let links = browser.eval(
            "Array.from(document.querySelectorAll('a.nav-chapters, a.mobile-nav-chapters'), \
             a => a.getAttribute('href'))",
        )?;
        // The wide and the mobile navigation repeat each link: report it once.
        let hrefs: std::collections::BTreeSet<&str> = links
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str())
            .collect();
        for href in hrefs {
            let other = if lang == "en/" { "zh/" } else { "en/" };
            if href.contains(other) {
                problems.add(format!(
                    "browser: {page}: a previous/next link leaves the language: {href} (theme/lang.js drops it)"
                ));
            }
        }
    }
    Ok(())
}

/// Search results on `page` are in that page's language only.
fn expect_language(
    results: &[String],
    query: &str,
    page: &str,
    lang: &str,
    problems: &mut Problems,
) {
    let others: Vec<&String> = results.iter().filter(|href| !href.contains(lang)).collect();
    if !others.is_empty() {
        problems.add(format!(
            "browser: ?search={query} on {page} shows results outside {lang}: {others:?}"
        ));
    }
}

/// The browser is on `page` and the document's lang is `lang`.
fn expect_page(
    browser: &mut Browser,
    page: &str,
    lang: &str,
    problems: &mut Problems,
) -> Result<()> {
    let state = browser.eval("[location.pathname, document.documentElement.lang]")?;
    let path = state[0].as_str().unwrap_or("");
    if !path.ends_with(&format!("/{page}")) {
        problems.add(format!("browser: expected to be on {page}, but on {path}"));
    }
    if state[1] != json!(lang) {
        problems.add(format!(
            "browser: {path}: document lang is {}, not {lang:?}",
            state[1]
        ));
    }
    Ok(())
}

/// The Chinese text of the first `selector` match renders with a Simplified
/// Chinese face (Noto Sans CJK SC), not the Japanese or Korean forms.
fn expect_chinese_fonts(
    browser: &mut Browser,
    selector: &str,
    problems: &mut Problems,
) -> Result<()> {
    let fonts = browser.platform_fonts(selector)?;
    let cjk: Vec<&String> = fonts.iter().filter(|f| f.contains("CJK")).collect();
    if cjk.is_empty() || cjk.iter().any(|f| !f.contains("SC")) {
        problems.add(format!(
            "browser: {selector} renders with {fonts:?}: expected Noto Sans CJK SC for its Chinese text"
        ));
    }
    Ok(())
}

struct Browser {
    child: Child,
    commands: File,
    messages: Receiver<Value>,
    /// Every event received so far, in order; the check reads them at the end.
    events: Vec<Value>,
    /// Events not yet consumed by a wait.
    unseen: VecDeque<Value>,
    next_id: u64,
    session: String,
    /// A fresh profile directory, private to this run (mode 0700, random name).
    profile: TempDir,
}

impl Browser {
    fn launch(log: &Path) -> Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("xtask-book-chromium-")
            .tempdir()
            .context("creating a private Chromium profile directory")?;
        let (commands_read, commands) = pipe()?;
        let (messages, messages_write) = pipe()?;
        let mut command = Command::new(CHROMIUM);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log).with_context(|| format!("creating {}", log.display()))?);
        let (read_fd, write_fd) = (commands_read.as_raw_fd(), messages_write.as_raw_fd());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Move both above 4 first, so that neither dup2 closes the other.
                let read_fd = libc::fcntl(read_fd, libc::F_DUPFD, 10);
                let write_fd = libc::fcntl(write_fd, libc::F_DUPFD, 10);
                if read_fd < 0
                    || write_fd < 0
                    || libc::dup2(read_fd, 3) < 0
                    || libc::dup2(write_fd, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd::echo(&command);
        let child = command
            .spawn()
            .context("cannot start /usr/bin/chromium: cargo xtask book install")?;
        drop((commands_read, messages_write));

        let (sender, receiver) = mpsc::channel();
        let mut reader = BufReader::new(File::from(messages));
        std::thread::spawn(move || {
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice(&message) {
                    if sender.send(value).is_err() {
                        break;
                    }
                }
                message.clear();
            }
        });

        let mut browser = Browser {
            child,
            commands: File::from(commands),
            messages: receiver,
            events: Vec::new(),
            unseen: VecDeque::new(),
            next_id: 0,
            session: String::new(),
            profile,
        };
        let target = browser.send("Target.createTarget", json!({"url": "about:blank"}))?;
        let attached = browser.send(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )?;
        browser.session = attached["sessionId"]
            .as_str()
            .context("Target.attachToTarget returned no sessionId")?
            .to_string();
        for domain in ["Page", "Runtime", "Network", "DOM", "CSS"] {
            browser.send(&format!("{domain}.enable"), json!({}))?;
        }
        Ok(browser)
    }

    /// Send a command (to the page's session once attached) and wait for its result.
    fn send(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message)?;
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .with_context(|| format!("sending {method} to Chromium"))?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let message = self.receive(deadline, method)?;
            if message["id"] == json!(id) {
                if let Some(error) = message.get("error") {
                    bail!("Chromium: {method} failed: {error}");
                }
                return Ok(message["result"].clone());
            }
            if message.get("method").is_some() {
                self.events.push(message.clone());
                self.unseen.push_back(message);
            }
        }
    }

    fn receive(&mut self, deadline: Instant, waiting_for: &str) -> Result<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.messages.recv_timeout(left) {
            Ok(message) => Ok(message),
            Err(RecvTimeoutError::Timeout) => {
                bail!("Chromium: no {waiting_for} within {TIMEOUT:?}")
            }
            Err(RecvTimeoutError::Disconnected) => {
                bail!("Chromium exited while waiting for {waiting_for} (see target/book-check/chromium.log)")
            }
        }
    }

    fn wait_event(&mut self, method: &str) -> Result<Value> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(event) = self.unseen.pop_front() {
                if event["method"] == json!(method) {
                    return Ok(event);
                }
                continue;
            }
            let message = self.receive(deadline, method)?;
            if message.get("method").is_some() {
                self.events.push(message.clone());
                self.unseen.push_back(message);
            }
        }
    }

    fn navigate(&mut self, url: &str) -> Result<()> {
        self.unseen.clear();
        let result = self.send("Page.navigate", json!({"url": url}))?;
        if let Some(error) = result.get("errorText") {
            bail!("Chromium could not load {url}: {error}");
        }
        self.wait_event("Page.loadEventFired")?;
        Ok(())
    }

    /// Evaluate a JavaScript expression in the page; its value as JSON.
    fn eval(&mut self, expression: &str) -> Result<Value> {
        let result = self.send(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(details) = result.get("exceptionDetails") {
            bail!(
                "in the page, {expression}: {}",
                details["exception"]["description"]
            );
        }
        Ok(result["result"]["value"].clone())
    }

    /// A real mouse click in the middle of the first element `selector` matches.
    fn click(&mut self, selector: &str) -> Result<()> {
        let selector_js = serde_json::to_string(selector)?;
        let point = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector_js}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ))?;
        let (Some(x), Some(y)) = (point[0].as_f64(), point[1].as_f64()) else {
            bail!("no {selector} on the page to click");
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.send(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )?;
        }
        Ok(())
    }

    fn click_and_wait(&mut self, selector: &str) -> Result<()> {
        self.unseen.clear();
        self.click(selector)?;
        self.wait_event("Page.loadEventFired")?;
        Ok(())
    }

    /// Load `page?search=QUERY` afresh and wait for mdBook's searcher to show
    /// its results for QUERY; the result links.
    fn search_on_load(&mut self, base: &str, page: &str, query: &str) -> Result<Vec<String>> {
        let encoded: String = query.bytes().map(|b| format!("%{b:02X}")).collect();
        self.navigate(&format!("{base}{page}?search={encoded}"))?;
        let query_js = serde_json::to_string(query)?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let state = self.eval(&format!(
                "[document.getElementById('mdbook-searchresults-header').innerText.includes({query_js}), \
                 Array.from(document.querySelectorAll('#mdbook-searchresults li a'), a => a.getAttribute('href'))]"
            ))?;
            if state[0] == json!(true) {
                return Ok(state[1]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|href| href.as_str().map(String::from))
                    .collect());
            }
            if Instant::now() > deadline {
                bail!("?search={query} on {page}: no results header after {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The font families Chromium really used for the text of the first match.
    fn platform_fonts(&mut self, selector: &str) -> Result<Vec<String>> {
        let document = self.send("DOM.getDocument", json!({"depth": 0}))?;
        let node = self.send(
            "DOM.querySelector",
            json!({"nodeId": document["root"]["nodeId"], "selector": selector}),
        )?;
        if node["nodeId"] == json!(0) {
            bail!("no {selector} on the page");
        }
        let fonts = self.send(
            "CSS.getPlatformFontsForNode",
            json!({"nodeId": node["nodeId"]}),
        )?;
        Ok(fonts["fonts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|font| font["familyName"].as_str().map(String::from))
            .collect())
    }

    fn screenshot(&mut self, path: &Path) -> Result<()> {
        let shot = self.send("Page.captureScreenshot", json!({"format": "png"}))?;
        let data = shot["data"]
            .as_str()
            .context("Page.captureScreenshot returned no data")?;
        let png = STANDARD
            .decode(data)
            .context("Page.captureScreenshot returned invalid base64")?;
        fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("book: screenshot {}", path.display());
        Ok(())
    }

    /// Close Chromium and hand back every event it sent.
    fn close(mut self) -> Vec<Value> {
        self.session.clear();
        let _ = self.send("Browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let events = std::mem::take(&mut self.events);
        // Chromium has exited: nothing writes to the profile any more.
        let _ = self.profile.close();
        events
    }
}
