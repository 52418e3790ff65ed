//! unlink-bench: measures the lessons on the kernel it runs on (as root, in a
//! VM or natively) and prints a JSON report; `report` turns reports into the
//! Markdown table for the terminal and the book. `cargo xtask bench` drives it.

mod measure;
mod report;
mod tool;
mod unlinks;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use measure::{Bench, FULL, QUICK};
use report::{Environment, Platform, Report};
use tool::{Kind, Tool};
use unlinks::Scratch;

#[derive(Parser)]
#[command(name = "unlink-bench", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Measure here and print the JSON report on stdout (progress on stderr)
    Run {
        #[arg(long, value_name = "PATH")]
        lesson_02: PathBuf,
        #[arg(long, value_name = "PATH")]
        lesson_03: PathBuf,
        /// The peer for start-up times
        #[arg(long, value_name = "PATH")]
        bpftrace: Option<PathBuf>,
        /// Every measurement, briefly
        #[arg(long)]
        quick: bool,
        /// The kernel's name in the report (debian-6.12, native)
        #[arg(long, default_value = "native")]
        kernel: String,
        #[arg(long, value_enum, default_value_t = Platform::Native)]
        platform: Platform,
    },
    /// Merge JSON reports (one each, or a results.json) into DIR/results.json and
    /// DIR/results.md, results.zh.md in Chinese; print the Markdown
    Report {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(required = true, value_name = "REPORT.json")]
        reports: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Run {
            lesson_02,
            lesson_03,
            bpftrace,
            quick,
            kernel,
            platform,
        } => {
            let lesson = |name, path, probes| Tool {
                name,
                path,
                probes,
                kind: Kind::Lesson,
            };
            let lessons = vec![
                lesson("lesson-02", lesson_02, "kprobe+kretprobe"),
                lesson("lesson-03", lesson_03, "fentry+fexit"),
            ];
            let bpftrace = bpftrace.map(|path| Tool {
                name: "bpftrace",
                path,
                probes: "kprobe",
                kind: Kind::Bpftrace,
            });
            run(lessons, bpftrace, quick, kernel, platform).and_then(|report| {
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(())
            })
        }
        Task::Report { out, reports } => merge(&out, &reports),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("unlink-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    lessons: Vec<Tool>,
    bpftrace: Option<Tool>,
    quick: bool,
    kernel: String,
    platform: Platform,
) -> Result<Report> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let environment = Environment {
        kernel,
        release: fs::read_to_string("/proc/sys/kernel/osrelease")?
            .trim()
            .to_string(),
        platform,
        cpus,
        date: today_utc(),
    };
    let comm = fs::read_to_string("/proc/self/comm")?.trim().to_string();
    let mut bench = Bench {
        plan: if quick { QUICK } else { FULL },
        scratch: Scratch::new()?,
        lessons,
        bpftrace,
        comm,
        peer_version: None,
        unavailable: Vec::new(),
        peak_memory_kib: BTreeMap::new(),
        notes: Vec::new(),
    };
    eprintln!(
        "unlink-bench: Linux {}, {cpus} CPUs, files on {}",
        environment.release, bench.scratch.filesystem
    );
    let function = bench.preflight();
    let unlink_cost = bench.unlink_cost()?;
    let startup = match &function {
        Some(function) => bench.startup(function)?,
        None => {
            if let Some(bpftrace) = bench.bpftrace.take() {
                bench.unavailable.push(report::Unavailable {
                    tool: bpftrace.name.into(),
                    reason: "bpftrace not run: no lesson attached here to compare it with".into(),
                });
            }
            report::Startup {
                rounds: 0,
                peer_version: None,
                tools: Vec::new(),
                ratios: Vec::new(),
            }
        }
    };
    let (throughput, lossless) = bench.throughput(cpus)?;
    Ok(Report {
        environment,
        quick,
        filesystem: bench.scratch.filesystem.clone(),
        function,
        unavailable: bench.unavailable,
        unlink_cost,
        startup,
        throughput,
        lossless,
        peak_memory_kib: bench.peak_memory_kib.into_iter().collect(),
        notes: bench.notes,
    })
}

fn merge(out: &std::path::Path, paths: &[PathBuf]) -> Result<()> {
    /// A harness report, or a merged results.json (book/src/generated/bench.json).
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Input {
        One(Box<Report>),
        Merged(Vec<Report>),
    }
    let mut reports = Vec::new();
    for path in paths {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        match serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))? {
            Input::One(report) => reports.push(*report),
            Input::Merged(merged) => reports.extend(merged),
        }
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&reports)?,
    )?;
    let markdown = report::markdown(&reports, report::Language::En);
    fs::write(out.join("results.md"), &markdown)?;
    fs::write(
        out.join("results.zh.md"),
        report::markdown(&reports, report::Language::Zh),
    )?;
    print!("{markdown}");
    Ok(())
}

/// Today's date in UTC, YYYY-MM-DD (the civil-from-days algorithm).
fn today_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    date_of_day(secs / 86_400)
}

fn date_of_day(days_since_epoch: u64) -> String {
    let z = days_since_epoch as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date_of_day(0), "1970-01-01");
        assert_eq!(super::date_of_day(11_016), "2000-02-29");
        assert_eq!(super::date_of_day(20_415), "2025-11-23");
    }
}
