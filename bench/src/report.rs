//! The results of one run (JSON, as the harness prints them) and their
//! Markdown rendering for the terminal and the book.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Report {
    pub environment: Environment,
    pub quick: bool,
    /// Where the files were unlinked: "tmpfs", or why not.
    pub filesystem: String,
    /// The kernel function probed, as the lessons named it.
    pub function: Option<String>,
    /// Tools that could not run here; the reason names the tool.
    pub unavailable: Vec<Unavailable>,
    pub unlink_cost: UnlinkCost,
    pub startup: Startup,
    pub throughput: Vec<Throughput>,
    /// The highest paced rate each lesson delivered without losing an event.
    pub lossless: Vec<Lossless>,
    /// The highest VmHWM seen over all of a tool's runs.
    pub peak_memory_kib: Vec<(String, u64)>,
    /// Anything that did not add up (events read + lost != unlinks made, ...).
    pub notes: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub struct Environment {
    /// The matrix name (debian-6.12) or "native".
    pub kernel: String,
    /// uname -r
    pub release: String,
    pub platform: Platform,
    pub cpus: usize,
    /// UTC, YYYY-MM-DD
    pub date: String,
}

#[derive(Clone, Copy, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// QEMU software emulation: only ratios within one run mean anything
    Tcg,
    /// The harness ran on this machine's own kernel
    Native,
}

#[derive(Serialize, Deserialize)]
pub struct Unavailable {
    pub tool: String,
    pub reason: String,
}

#[derive(Serialize, Deserialize)]
pub struct UnlinkCost {
    pub files_per_batch: usize,
    pub batches_per_sample: usize,
    pub rounds: usize,
    pub configs: Vec<CostConfig>,
    /// The no-probe IQR: a ratio needs both overheads above it.
    pub noise_ns: f64,
    /// kprobe overhead / fentry overhead, programs attached but the event filtered out.
    pub ratio_filtered: Option<f64>,
    /// The same with every event delivered to the lesson.
    pub ratio_delivering: Option<f64>,
}

#[derive(Serialize, Deserialize)]
pub struct CostConfig {
    pub name: String,
    pub ns_per_unlink: Stats,
    /// median(this) - median(no probe)
    pub overhead_ns: Option<f64>,
}

/// Median, quartiles and extremes of one measurement's samples.
#[derive(Clone, Serialize, Deserialize)]
pub struct Stats {
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Option<Stats> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            let at = q * (sorted.len() - 1) as f64;
            let (low, high) = (at.floor() as usize, at.ceil() as usize);
            sorted[low] + (sorted[high] - sorted[low]) * (at - low as f64)
        };
        (!sorted.is_empty()).then(|| Stats {
            median: quantile(0.5),
            q1: quantile(0.25),
            q3: quantile(0.75),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            samples: samples.to_vec(),
        })
    }
}

#[derive(Serialize, Deserialize)]
pub struct Startup {
    pub rounds: usize,
    /// `bpftrace --version`
    pub peer_version: Option<String>,
    pub tools: Vec<StartupTool>,
    /// bpftrace's time / each lesson's, at the same instants.
    pub ratios: Vec<StartupRatio>,
}

#[derive(Serialize, Deserialize)]
pub struct StartupTool {
    pub tool: String,
    /// From spawn to the line that announces the probes: the lessons' `attached`
    /// (printed after attaching), bpftrace's `Attaching 1 probe...` (printed before).
    pub announced_ms: Stats,
    /// From spawn to the first event read from its output, unlinks running every millisecond.
    pub first_event_ms: Stats,
}

#[derive(Serialize, Deserialize)]
pub struct StartupRatio {
    pub lesson: String,
    pub announced: f64,
    pub first_event: f64,
}

#[derive(Serialize, Deserialize)]
pub struct Throughput {
    /// None: no probe.
    pub tool: Option<String>,
    pub threads: usize,
    pub ring_buffer_kib: Option<u32>,
    pub unlinks: u64,
    pub per_second: f64,
    /// Events read from the lesson's output.
    pub events_read: Option<u64>,
    /// The lesson's summary: events lost to a full ring buffer.
    pub lost_events: Option<u64>,
    /// The lesson's summary: runs of its probes the kernel skipped, events
    /// neither sent nor counted lost (None where the kernel does not count them).
    pub skipped_by_kernel: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub struct Lossless {
    pub tool: String,
    /// Unlinking threads, each at its share of the rate.
    pub threads: usize,
    /// The highest rate with no event lost (None: lost even at the lowest rate tried).
    pub per_second: Option<f64>,
    /// The rate at which an event went missing; None: the thread could not unlink faster.
    pub lost_at: Option<f64>,
    /// The lesson's summary at the end of the search.
    pub lost_events: Option<u64>,
    /// The lesson's summary: runs of its probes the kernel skipped during the search.
    pub skipped_by_kernel: Option<u64>,
}

/// The language of a rendered page: the book has the same page in both.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Language {
    En,
    Zh,
}

impl Language {
    fn pick(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Language::En => en,
            Language::Zh => zh,
        }
    }
}

impl Platform {
    fn describe(self, lang: Language) -> &'static str {
        match self {
            Platform::Tcg => lang.pick(
                "QEMU TCG (software emulation: only ratios mean anything)",
                "QEMU TCG（纯软件模拟：只有比值有意义）",
            ),
            Platform::Native => lang.pick("native", "真机"),
        }
    }
}

/// The Markdown page in `lang`: how it was measured, then one section per kernel.
pub fn markdown(reports: &[Report], lang: Language) -> String {
    let mut md = String::from(match lang {
        Language::En => HOW_MEASURED_EN,
        Language::Zh => HOW_MEASURED_ZH,
    });
    for report in reports {
        section(&mut md, report, lang);
    }
    md
}

const HOW_MEASURED_EN: &str = "<!-- Generated by `cargo xtask bench`; do not edit. -->\n\n\
         How measured: the `unlink-bench` harness (bench/) runs as root in the kernel \
         named in each heading. It creates files in a fresh tmpfs outside the timed \
         region, then times `unlink(2)` on each; a sample is the fastest of a few \
         batches (the mean per unlink over the batch) with one start of the lesson. \
         The configurations (no probe; each lesson attached with `--comm` set to a name \
         that never matches, so the programs run but send nothing; each lesson delivering \
         every event as JSON to a file on tmpfs, as `> FILE` would) are interleaved in every round. \
         Overhead is the median minus the no-probe median; the kprobe/fentry ratio is \
         taken within the same run. Start-up: from spawning the tool to its announcing \
         line, and to the first event read from its output while a thread unlinks a file \
         every millisecond; bpftrace 0.17 prints `Attaching 1 probe...` before it loads \
         and attaches, so the first event is the fair comparison. Throughput: threads \
         unlink at full speed while the lesson writes every event to a file on tmpfs, so \
         nothing of the harness runs beside it; after it stopped, the harness checks every \
         line and counts the events, the summary line gives the events lost to a full ring \
         buffer and the runs of its probes the kernel skipped (its `skipped_by_kernel`: \
         recursion misses, and kprobe misses on 6.7+; null where the kernel does not \
         count them). Then one thread per CPU unlinks \
         at a paced rate, 25% higher each step, until an event goes missing (after each \
         step the harness counts the lines written so far). Peak memory is \
         VmHWM from /proc/PID/status just before SIGTERM. The lessons are release builds.\n";

const HOW_MEASURED_ZH: &str = "<!-- 由 `cargo xtask bench` 生成，请勿手改。 -->\n\n\
         测量方法：测量程序 `unlink-bench`（bench/）以 root 身份运行在各小标题所写的内核里。\
         它先在一个新挂载的 tmpfs 里建好文件（不计时），再对每个文件调用 `unlink(2)` 并计时；\
         一个样本取几批中最快的一批（一批内平均每次 unlink 的耗时），每个样本启动一次课程程序。\
         几种配置（不附加探针；每一课带着永远匹配不上的 `--comm` 附加上，程序会运行但什么也不送出；\
         每一课把每个事件以 JSON 写进 tmpfs 上的文件，就像 `> FILE` 那样）在每一轮里交替进行。\
         开销是中位数减去不附加探针时的中位数；kprobe/fentry 的比值取自同一次运行。\
         启动：从启动工具到它打印探针已附加的那一行，以及在一个线程每毫秒删一个文件时，\
         到从它的输出里读到第一个事件。bpftrace 0.17 在加载、附加之前就打印 \
         `Attaching 1 probe...`，所以第一个事件才是公平的比较。吞吐量：几个线程全速 unlink，\
         课程程序把每个事件写进 tmpfs 上的文件，测量程序不在旁边抢 CPU；课程停下后，\
         测量程序逐行核对、数出事件数，课程的总结行给出因 ring buffer 满而丢失的事件数，\
         以及内核跳过其探针程序的次数（总结里的 `skipped_by_kernel`：递归未命中，\
         6.7 起还有 kprobe 未命中；内核不统计时为 null）。随后每个 CPU 一个线程按限定速率 unlink，\
         每步提高 25%，直到有事件丢失（每步之后测量程序数一遍已写出的行）。\
         内存峰值是发送 SIGTERM 之前 /proc/PID/status 里的 VmHWM。课程程序是 release 构建。\n";

fn section(md: &mut String, r: &Report, lang: Language) {
    let e = &r.environment;
    let quick = if r.quick { " (--quick)" } else { "" };
    // The same id in both languages: the language link keeps the #section.
    let id = format!("bench-{}", e.kernel.replace(['.', '/', ' '], "-"));
    let _ = match lang {
        Language::En => writeln!(
            md,
            "\n### {}: Linux {}, {}, {} CPUs, {}{quick} {{#{id}}}\n",
            e.kernel,
            e.release,
            e.platform.describe(lang),
            e.cpus,
            e.date,
        ),
        Language::Zh => writeln!(
            md,
            "\n### {}：Linux {}，{}，{} 个 CPU，{}{quick} {{#{id}}}\n",
            e.kernel,
            e.release,
            e.platform.describe(lang),
            e.cpus,
            e.date,
        ),
    };
    let function = r.function.as_ref().map_or(
        lang.pick("none (no lesson attached)", "无（没有课程附加）")
            .into(),
        |f| format!("`{f}`"),
    );
    let _ = match lang {
        Language::En => writeln!(
            md,
            "Probed function: {function}; files on {}.\n",
            r.filesystem
        ),
        Language::Zh => writeln!(md, "探测的函数：{function}；文件在 {} 上。\n", r.filesystem),
    };
    for u in &r.unavailable {
        let _ = writeln!(md, "- {}", u.reason);
    }
    if !r.unavailable.is_empty() {
        md.push('\n');
    }

    let cost = &r.unlink_cost;
    let _ = match lang {
        Language::En => writeln!(
            md,
            "| cost per unlink ({} rounds, each the fastest of {} x {} files) | median ns | IQR | min-max | overhead |",
            cost.rounds, cost.batches_per_sample, cost.files_per_batch
        ),
        Language::Zh => writeln!(
            md,
            "| 每次 unlink 的开销（{} 轮，每轮取 {} 批 × {} 个文件中最快的一批） | 中位数 ns | 四分位距 | 最小-最大 | 开销 |",
            cost.rounds, cost.batches_per_sample, cost.files_per_batch
        ),
    };
    md.push_str("|---|--:|--:|--:|--:|\n");
    for c in &cost.configs {
        let s = &c.ns_per_unlink;
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0}-{:.0} | {:.0}-{:.0} | {} |",
            config_name(&c.name, lang),
            s.median,
            s.q1,
            s.q3,
            s.min,
            s.max,
            c.overhead_ns.map_or("-".into(), |o| format!("{o:+.0} ns"))
        );
    }
    let ran = |lesson: &str| cost.configs.iter().any(|c| c.name.starts_with(lesson));
    if ran("lesson-02") && ran("lesson-03") {
        let (filtered, delivering) = (
            ratio(cost.ratio_filtered, cost.noise_ns, lang),
            ratio(cost.ratio_delivering, cost.noise_ns, lang),
        );
        let _ = match lang {
            Language::En => writeln!(
                md,
                "\nkprobe overhead / fentry overhead: **{filtered}** with the event filtered out, **{delivering}** delivering it."
            ),
            Language::Zh => writeln!(
                md,
                "\nkprobe 开销 / fentry 开销：事件被过滤掉时 **{filtered}**，全部送出时 **{delivering}**。"
            ),
        };
    }
    md.push('\n');

    if !r.startup.tools.is_empty() {
        let _ = match lang {
            Language::En => writeln!(
                md,
                "| start-up ({} rounds) | to announce, median ms | min-max | to first event, median ms | min-max | peak memory |",
                r.startup.rounds
            ),
            Language::Zh => writeln!(
                md,
                "| 启动（{} 轮） | 到打印已附加，中位数 ms | 最小-最大 | 到第一个事件，中位数 ms | 最小-最大 | 内存峰值 |",
                r.startup.rounds
            ),
        };
        md.push_str("|---|--:|--:|--:|--:|--:|\n");
        for t in &r.startup.tools {
            let peak = r
                .peak_memory_kib
                .iter()
                .find(|(tool, _)| *tool == t.tool)
                .map_or("-".into(), |(_, kib)| {
                    format!("{:.1} MiB", *kib as f64 / 1024.0)
                });
            let (a, f) = (&t.announced_ms, &t.first_event_ms);
            let tool = match &r.startup.peer_version {
                Some(version) if t.tool == "bpftrace" => version,
                _ => &t.tool,
            };
            let _ = writeln!(
                md,
                "| {tool} | {} | {}-{} | {} | {}-{} | {peak} |",
                ms(a.median),
                ms(a.min),
                ms(a.max),
                ms(f.median),
                ms(f.min),
                ms(f.max)
            );
        }
        md.push('\n');
        for q in &r.startup.ratios {
            let _ = match lang {
                Language::En => writeln!(
                    md,
                    "- bpftrace / {}: **{:.1}x** to the first event, {:.1}x to the announcing line.",
                    q.lesson, q.first_event, q.announced
                ),
                Language::Zh => writeln!(
                    md,
                    "- bpftrace / {}：到第一个事件 **{:.1}x**，到打印已附加的那一行 {:.1}x。",
                    q.lesson, q.first_event, q.announced
                ),
            };
        }
        md.push('\n');
    }

    md.push_str(lang.pick(
        "| throughput | unlinking threads | ring buffer | unlinks/s | events read | lost (summary) | read + lost = unlinks |\n",
        "| 吞吐量 | unlink 线程数 | ring buffer | 每秒 unlink 次数 | 读到的事件 | 丢失（总结） | 读到 + 丢失 = unlink 次数 |\n",
    ));
    md.push_str("|---|--:|--:|--:|--:|--:|:-:|\n");
    for t in &r.throughput {
        let accounted = match (t.events_read, t.lost_events) {
            (Some(read), Some(lost)) if read + lost == t.unlinks => {
                lang.pick("yes", "是").to_string()
            }
            (Some(read), Some(lost)) => {
                let short = t.unlinks - (read + lost).min(t.unlinks);
                let skipped = skipped_by_kernel_in(t.skipped_by_kernel, lang);
                match lang {
                    Language::En => format!("**no**: {short} short; {skipped}"),
                    Language::Zh => format!("**否**：少 {short} 个；{skipped}"),
                }
            }
            _ => "-".to_string(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} | {accounted} |",
            t.tool
                .as_deref()
                .unwrap_or(lang.pick("no probe", "不附加探针")),
            t.threads,
            t.ring_buffer_kib.map_or("-".into(), |k| format!("{k} KiB")),
            t.per_second,
            t.events_read.map_or("-".into(), |n| n.to_string()),
            t.lost_events.map_or("-".into(), |n| n.to_string()),
        );
    }
    md.push('\n');
    for l in &r.lossless {
        let kept_up = l.per_second.map_or(
            lang.pick("no rate tried", "没有试过任何速率").into(),
            |rate| match lang {
                Language::En => format!("**{rate:.0} unlinks/s**"),
                Language::Zh => format!("**每秒 {rate:.0} 次 unlink**"),
            },
        );
        let skipped = skipped_by_kernel_in(l.skipped_by_kernel, lang);
        let limit = match (l.lost_at, l.lost_events, lang) {
            (Some(rate), Some(lost), Language::En) => {
                format!("at {rate:.0}/s events went missing: {lost} lost, {skipped}")
            }
            (Some(rate), Some(lost), Language::Zh) => {
                format!("到每秒 {rate:.0} 次时开始缺事件：丢失 {lost} 个，{skipped}")
            }
            (Some(rate), None, Language::En) => format!("at {rate:.0}/s events went missing"),
            (Some(rate), None, Language::Zh) => format!("到每秒 {rate:.0} 次时开始缺事件"),
            (None, _, _) => lang
                .pick(
                    "as fast as the threads unlink with it attached",
                    "附加着它时线程能删多快就删多快",
                )
                .to_string(),
        };
        let _ = match lang {
            Language::En => writeln!(
                md,
                "- {} kept up, with its default ring buffer and nothing lost, with {kept_up} \
                 from {} paced threads ({limit}).",
                l.tool, l.threads
            ),
            Language::Zh => writeln!(
                md,
                "- {} 用默认的 ring buffer、一个事件也不丢，跟上了 {} 个限速线程的{kept_up}（{limit}）。",
                l.tool, l.threads
            ),
        };
    }
    for note in &r.notes {
        let _ = match lang {
            Language::En => writeln!(md, "\n> note: {note}"),
            Language::Zh => writeln!(md, "\n> 注：{}", note_zh(note)),
        };
    }
}

/// A cost configuration's name ("lesson-02 (kprobe+kretprobe), filtered out") in `lang`.
fn config_name(name: &str, lang: Language) -> String {
    if lang == Language::En {
        return name.to_string();
    }
    name.replace("no probe", "不附加探针")
        .replace(", filtered out", "，过滤掉")
        .replace(", delivering", "，全部送出")
}

/// The harness's notes (measure.rs) in Chinese: the three forms it writes,
/// and any other note as it is.
fn note_zh(note: &str) -> String {
    let Some((tool, rest)) = note.split_once(": ") else {
        return match note.strip_suffix(" printed no summary line") {
            Some(tool) => format!("{tool} 没有打印总结行"),
            None => note.to_string(),
        };
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    if let Some(said) = rest.strip_prefix("the summary says ") {
        if let Some((unlinks, read)) = said.split_once(" unlinks, ") {
            if let (Some(unlinks), Some(read)) = (
                number(unlinks),
                read.strip_suffix(" were read").and_then(number),
            ) {
                return format!("{tool}：总结说有 {unlinks} 次 unlink，读到的是 {read} 个");
            }
        }
    }
    let counts = rest.split_once(" events read + ").and_then(|(read, rest)| {
        let (lost, rest) = rest.split_once(" lost != ")?;
        let (expected, rest) = rest.split_once(" expected; ")?;
        let skipped = rest.split(" skipped by the kernel").next()?;
        Some((
            number(read)?,
            number(lost)?,
            number(expected)?,
            number(skipped),
        ))
    });
    match counts {
        Some((read, lost, expected, skipped)) => format!(
            "{tool}：读到 {read} 个事件 + 丢失 {lost} 个 != 预期的 {expected} 个；{}\
             （某个探针程序已在该 CPU 上运行时的重入，或 kprobe 未命中）",
            skipped_by_kernel_in(skipped, Language::Zh)
        ),
        None => note.to_string(),
    }
}

/// The lesson summary's count of skipped probe runs, in its own words.
pub fn skipped_by_kernel(count: Option<u64>) -> String {
    skipped_by_kernel_in(count, Language::En)
}

fn skipped_by_kernel_in(count: Option<u64>, lang: Language) -> String {
    match (count, lang) {
        (Some(count), Language::En) => format!("{count} skipped by the kernel"),
        (None, Language::En) => "skipped by the kernel: unknown on this kernel".to_string(),
        (Some(count), Language::Zh) => format!("内核跳过 {count} 次"),
        (None, Language::Zh) => "内核跳过的次数：这个内核不统计".to_string(),
    }
}

fn ratio(r: Option<f64>, noise_ns: f64, lang: Language) -> String {
    match (r, lang) {
        (Some(r), _) => format!("{r:.1}x"),
        (None, Language::En) => {
            format!("n/a (an overhead within the no-probe IQR, {noise_ns:.0} ns)")
        }
        (None, Language::Zh) => {
            format!("无（有一项开销落在不附加探针时的四分位距 {noise_ns:.0} ns 之内）")
        }
    }
}

fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate() {
        let s = Stats::of(&[4.0, 1.0, 3.0, 2.0, 5.0]).unwrap();
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (1.0, 2.0, 3.0, 4.0, 5.0)
        );
        let s = Stats::of(&[1.0, 2.0]).unwrap();
        assert_eq!(s.median, 1.5);
        assert!(Stats::of(&[]).is_none());
    }

    /// The committed results: the pages render from them in both languages.
    fn committed() -> Vec<Report> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../book/src/generated/bench.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_chinese_page_is_in_chinese_with_the_same_numbers() {
        let reports = committed();
        let (en, zh) = (
            markdown(&reports, Language::En),
            markdown(&reports, Language::Zh),
        );
        for heading in [
            "| 每次 unlink 的开销",
            "| 启动（",
            "| 吞吐量 |",
            "测量方法：",
        ] {
            assert!(zh.contains(heading), "no {heading:?} in the Chinese page");
        }
        for english in [
            "| throughput",
            "How measured",
            "kept up",
            "> note:",
            "skipped by the kernel",
        ] {
            assert!(
                !zh.contains(english),
                "{english:?} left in the Chinese page"
            );
        }
        let numbers = |md: &str| -> Vec<String> {
            md.split(|c: char| !c.is_ascii_digit() && c != '.')
                .filter(|n| n.len() > 2)
                .map(String::from)
                .collect()
        };
        assert_eq!(numbers(&en), numbers(&zh));
    }

    #[test]
    fn how_measured_names_the_summary_not_fdinfo() {
        for lang in [Language::En, Language::Zh] {
            let md = markdown(&[], lang);
            assert!(md.contains("skipped_by_kernel"), "{lang:?}");
            assert!(
                !md.contains("fdinfo") && !md.contains("recursion_misses"),
                "{lang:?}"
            );
        }
    }

    #[test]
    fn notes_read_in_chinese() {
        assert_eq!(
            note_zh("lesson-03: 5 events read + 1 lost != 8 expected; 2 skipped by the kernel (why)"),
            "lesson-03：读到 5 个事件 + 丢失 1 个 != 预期的 8 个；内核跳过 2 次（某个探针程序已在该 CPU 上运行时的重入，或 kprobe 未命中）"
        );
        assert_eq!(
            note_zh("bpftrace printed no summary line"),
            "bpftrace 没有打印总结行"
        );
        assert_eq!(note_zh("something new"), "something new");
    }
}
