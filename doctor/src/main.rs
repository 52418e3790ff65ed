//! unlink-doctor: says, for this machine, whether each lesson will work, and if
//! not exactly why. See doctor/README.md for the checks, the JSON schema and
//! the `--root` snapshot layout.

mod btf;
mod check_ids;
mod checks;
mod explain;
mod live;
mod parse;
mod report;
mod snapshot;
mod sysroot;
mod verdict;

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use colored::Colorize;
use unlink_common::cli::ColorChoice;
use unlink_common::failures::{self, errno_label, Observed, Probe, Stage};

use crate::live::Outcome;
use crate::report::Report;
use crate::sysroot::SystemRoot;

/// Says whether each lesson will work on this machine, and if not exactly why.
/// Run it as root (`sudo unlink-doctor`) so it can load and attach the lessons' programs.
#[derive(Parser)]
#[command(name = "unlink-doctor", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Print the findings as JSON (schema in doctor/README.md)
    #[arg(long, global = true)]
    json: bool,

    /// When to use colors
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN", global = true)]
    color: ColorChoice,

    /// Read-only checks only: do not load or attach anything
    #[arg(long)]
    no_live: bool,

    /// Check this kernel function instead of do_unlinkat / filename_unlinkat
    #[arg(long, value_name = "NAME")]
    function: Option<String>,

    /// Read the system files under DIR instead of / (a snapshot; implies --no-live)
    #[arg(long, value_name = "DIR", global = true)]
    root: Option<PathBuf>,

    /// Print a block to paste into a bug report: uname -a, os-release and the JSON
    #[arg(long, conflicts_with = "json")]
    report: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Explain a pasted error, such as `strerror_r(-524)=22` or `Unknown error 524 (os error 524)`
    Explain {
        /// The error text (several arguments are joined with spaces)
        #[arg(required = true, num_args = 1.., value_name = "ERROR_TEXT", allow_hyphen_values = true, trailing_var_arg = true)]
        text: Vec<String>,
    },
    /// Copy the files the doctor reads from this machine into DIR, for `--root DIR`
    Snapshot {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

const EXIT_CODES: &str = "Exit status: 0 every lesson is ready, 1 a lesson will fail or is unknown, 2 usage or internal error.";

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error in unlink-doctor: {info} (please report it)");
        std::process::exit(2);
    }));
    let cli = Cli::parse();
    apply_color(cli.color);
    live::capture_libbpf_log();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("{} {err:#}", "error:".red().bold());
            ExitCode::from(2)
        }
    }
}

/// Colors go to stdout: decide on stdout being a terminal.
fn apply_color(choice: ColorChoice) {
    let enabled = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    colored::control::set_override(enabled);
}

/// Print to stdout; a closed pipe (`| head`) is not an error worth a message.
fn emit(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn system_root(cli: &Cli) -> Result<SystemRoot> {
    match &cli.root {
        Some(dir) if !dir.is_dir() => anyhow::bail!("--root {}: not a directory", dir.display()),
        Some(dir) => SystemRoot::at(dir).map_err(anyhow::Error::msg),
        None => Ok(SystemRoot::native()),
    }
}

fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Some(Command::Explain { text }) => explain(cli, &text.join(" ")),
        Some(Command::Snapshot { dir }) => {
            let summary = snapshot::take(dir)?;
            eprintln!(
                "unlink-doctor: copied {} files into {} ({} unreadable, listed in {}); check it with `unlink-doctor --root {}`",
                summary.copied,
                dir.display(),
                summary.unreadable,
                sysroot::RECORDED_ERRORS,
                dir.display()
            );
            Ok(0)
        }
        None => {
            let root = system_root(cli)?;
            let report = diagnose(&root, cli)?;
            if cli.report {
                emit(&bug_report(&root, &report));
            } else if cli.json {
                emit(&format!("{}\n", report.to_json()));
            } else {
                emit(&report.to_text());
            }
            Ok(report.exit_code)
        }
    }
}

fn diagnose(root: &SystemRoot, cli: &Cli) -> Result<Report> {
    let survey = checks::survey(root, cli.function.as_deref());
    let skip = if cli.root.is_some() {
        Some("--root (it runs only on the machine itself)")
    } else if cli.no_live {
        Some("--no-live")
    } else if !survey.facts.privileged {
        Some("needs root (or CAP_BPF + CAP_PERFMON)")
    } else if survey.function.is_none() {
        Some("no unlink function found")
    } else {
        None
    };
    let mut sections = survey.sections;
    let mut lessons = Vec::new();
    let mut live_items = Vec::new();
    for probe in [Probe::Kprobe, Probe::Fentry] {
        let outcome = match (&skip, &survey.function) {
            (None, Some(function)) => live::check(probe, function),
            (Some(why), _) => Outcome::Skipped(why.to_string()),
            (None, None) => Outcome::Skipped("no function".into()),
        };
        live_items.push(verdict::live_item(
            probe,
            survey.function.as_deref(),
            &outcome,
            &survey.facts,
        ));
        lessons.push(verdict::decide(
            probe,
            survey.function.as_deref(),
            &outcome,
            &survey.facts,
        ));
    }
    sections.push(verdict::live_section(live_items));
    verdict::add_alternatives(&mut lessons);
    Ok(Report::new(
        root.dir().display().to_string(),
        survey.function,
        sections,
        lessons,
    ))
}

/// `uname -a`, os-release and the JSON, ready to paste into an issue.
fn bug_report(root: &SystemRoot, report: &Report) -> String {
    let line = |path: &str| root.read_line(path).unwrap_or_else(|| "?".into());
    let machine = root
        .read_line("/proc/sys/kernel/arch")
        .unwrap_or_else(|| std::env::consts::ARCH.into());
    let uname = [
        line("/proc/sys/kernel/ostype"),
        line("/proc/sys/kernel/hostname"),
        line("/proc/sys/kernel/osrelease"),
        line("/proc/sys/kernel/version"),
        machine,
    ]
    .join(" ");
    let os_release = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| root.read_text(p).ok())
        .unwrap_or_else(|| "(no /etc/os-release)\n".into());
    format!(
        "<details><summary>unlink-doctor report</summary>\n\n```\n$ uname -a\n{}\n$ cat /etc/os-release\n{}```\n\n```json\n{}\n```\n</details>\n",
        report::printable(&uname),
        report::printable_lines(&os_release),
        report.to_json()
    )
}

fn explain(cli: &Cli, text: &str) -> Result<u8> {
    let root = system_root(cli)?;
    let facts = checks::survey(&root, None).facts;
    let parsed = explain::parse(text);
    let probes = match parsed.probe {
        Some(probe) => vec![probe],
        None => vec![Probe::Kprobe, Probe::Fentry],
    };
    let explanations: Vec<serde_json::Value> = probes
        .iter()
        .map(|&probe| {
            // Without a word about it, the errno tells the likelier stage.
            let stage = parsed.stage.unwrap_or(match parsed.errno {
                Some(libc::EPERM | libc::ESRCH | libc::ENOSYS) => Stage::Load,
                _ => Stage::Attach,
            });
            let observed = Observed {
                probe,
                stage,
                errno: parsed.errno,
                libbpf_log: text,
            };
            let failure = failures::classify(&observed, &facts);
            serde_json::json!({
                "lesson": probe.lesson(),
                "probe": probe,
                "stage": stage,
                "failure": failure.id,
                "title": failure.title,
                "cause": failure.cause,
                "fix": failure.fix_for(probe),
                "doc": report::doc_link(failure),
            })
        })
        .collect();
    let recognised =
        parsed.errno.is_some() || explanations.iter().any(|e| e["failure"] != "unknown");
    let mut out = String::new();
    if cli.json {
        let json = serde_json::json!({ "schema": report::SCHEMA, "input": text, "parsed": parsed, "explanations": explanations });
        emit(&format!(
            "{}\n",
            report::json_printable(&serde_json::to_string_pretty(&json)?)
        ));
    } else {
        match (parsed.errno, &parsed.errno_text) {
            (Some(errno), Some(found)) => {
                let note = if found.starts_with("strerror_r") {
                    " (libbpf before 1.6 prints strerror_r's own failure, 22, after the real error)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "{} {} from {found:?}{note}",
                    "errno:".bold(),
                    errno_label(errno)
                );
            }
            (None, Some(found)) => {
                let _ = writeln!(
                    out,
                    "{} none: {found:?} is a number, but no errno Linux has",
                    "errno:".bold()
                );
            }
            (_, None) => {
                let _ = writeln!(out, "{} none found in the text", "errno:".bold());
            }
        }
        for e in &explanations {
            let str_of = |key: &str| e[key].as_str().unwrap_or_default().to_string();
            let _ = writeln!(
                out,
                "{} {} ({}, at {}): {} [{}]",
                if str_of("failure") == "unknown" {
                    "⚠".yellow()
                } else {
                    "✘".red().bold()
                },
                str_of("lesson").bold(),
                str_of("probe"),
                str_of("stage"),
                str_of("title"),
                str_of("failure")
            );
            let _ = writeln!(out, "    cause: {}", str_of("cause"));
            let _ = writeln!(out, "    fix:   {}", str_of("fix"));
            let _ = writeln!(out, "    see:   {}", str_of("doc"));
        }
        if parsed.probe.is_none() {
            let _ = writeln!(out, "(the text names neither kprobe nor fentry: both lessons shown; explained with this machine's facts)");
        }
    }
    emit(&out);
    Ok(if recognised { 0 } else { 1 })
}
