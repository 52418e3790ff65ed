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

impl Platform {
    fn describe(self) -> &'static str {
        match self {
            Platform::Tcg => "QEMU TCG (software emulation: only ratios mean anything)",
            Platform::Native => "native",
        }
    }
}

/// The Markdown page: how it was measured, then one section per kernel.
pub fn markdown(reports: &[Report]) -> String {
    let mut md = String::from(
        "<!-- Generated by `cargo xtask bench`; do not edit. -->\n\n\
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
         buffer and the runs of its probes the kernel skipped (recursion misses, and \
         kprobe misses on 6.7+). Then one thread per CPU unlinks \
         at a paced rate, 25% higher each step, until an event goes missing (after each \
         step the harness counts the lines written so far). Peak memory is \
         VmHWM from /proc/PID/status just before SIGTERM. The lessons are release builds.\n",
    );
    for report in reports {
        section(&mut md, report);
    }
    md
}

fn section(md: &mut String, r: &Report) {
    let e = &r.environment;
    let _ = writeln!(
        md,
        "\n### {}: Linux {}, {}, {} CPUs, {}{}\n",
        e.kernel,
        e.release,
        e.platform.describe(),
        e.cpus,
        e.date,
        if r.quick { " (--quick)" } else { "" }
    );
    let _ = writeln!(
        md,
        "Probed function: {}; files on {}.\n",
        r.function
            .as_ref()
            .map_or("none (no lesson attached)".into(), |f| format!("`{f}`")),
        r.filesystem
    );
    for u in &r.unavailable {
        let _ = writeln!(md, "- {}", u.reason);
    }
    if !r.unavailable.is_empty() {
        md.push('\n');
    }

    let cost = &r.unlink_cost;
    let _ = writeln!(
        md,
        "| cost per unlink ({} rounds, each the fastest of {} x {} files) | median ns | IQR | min-max | overhead |\n|---|--:|--:|--:|--:|",
        cost.rounds, cost.batches_per_sample, cost.files_per_batch
    );
    for c in &cost.configs {
        let s = &c.ns_per_unlink;
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0}-{:.0} | {:.0}-{:.0} | {} |",
            c.name,
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
        let _ = writeln!(
            md,
            "\nkprobe overhead / fentry overhead: **{}** with the event filtered out, **{}** delivering it.",
            ratio(cost.ratio_filtered, cost.noise_ns),
            ratio(cost.ratio_delivering, cost.noise_ns)
        );
    }
    md.push('\n');

    if !r.startup.tools.is_empty() {
        let _ = writeln!(
            md,
            "| start-up ({} rounds) | to announce, median ms | min-max | to first event, median ms | min-max | peak memory |\n|---|--:|--:|--:|--:|--:|",
            r.startup.rounds
        );
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
            let _ = writeln!(
                md,
                "- bpftrace / {}: **{:.1}x** to the first event, {:.1}x to the announcing line.",
                q.lesson, q.first_event, q.announced
            );
        }
        md.push('\n');
    }

    md.push_str(
        "| throughput | unlinking threads | ring buffer | unlinks/s | events read | lost (summary) | read + lost = unlinks |\n|---|--:|--:|--:|--:|--:|:-:|\n",
    );
    for t in &r.throughput {
        let accounted = match (t.events_read, t.lost_events) {
            (Some(read), Some(lost)) if read + lost == t.unlinks => "yes".to_string(),
            (Some(read), Some(lost)) => format!(
                "**no**: {} short; {}",
                t.unlinks - (read + lost).min(t.unlinks),
                skipped_by_kernel(t.skipped_by_kernel)
            ),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} | {accounted} |",
            t.tool.as_deref().unwrap_or("no probe"),
            t.threads,
            t.ring_buffer_kib.map_or("-".into(), |k| format!("{k} KiB")),
            t.per_second,
            t.events_read.map_or("-".into(), |n| n.to_string()),
            t.lost_events.map_or("-".into(), |n| n.to_string()),
        );
    }
    md.push('\n');
    for l in &r.lossless {
        let kept_up = l.per_second.map_or("no rate tried".into(), |rate| {
            format!("**{rate:.0} unlinks/s**")
        });
        let limit = match (l.lost_at, l.lost_events) {
            (Some(rate), Some(lost)) => format!(
                "at {rate:.0}/s events went missing: {lost} lost, {}",
                skipped_by_kernel(l.skipped_by_kernel)
            ),
            (Some(rate), None) => format!("at {rate:.0}/s events went missing"),
            (None, _) => "as fast as the threads unlink with it attached".to_string(),
        };
        let _ = writeln!(
            md,
            "- {} kept up, with its default ring buffer and nothing lost, with {kept_up} \
             from {} paced threads ({limit}).",
            l.tool, l.threads
        );
    }
    for note in &r.notes {
        let _ = writeln!(md, "\n> note: {note}");
    }
}

/// The lesson summary's count of skipped probe runs, in its own words.
pub fn skipped_by_kernel(count: Option<u64>) -> String {
    match count {
        Some(count) => format!("{count} skipped by the kernel"),
        None => "skipped by the kernel: unknown on this kernel".to_string(),
    }
}

fn ratio(r: Option<f64>, noise_ns: f64) -> String {
    r.map_or(
        format!("n/a (an overhead within the no-probe IQR, {noise_ns:.0} ns)"),
        |r| format!("{r:.1}x"),
    )
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
}
