//! The measurements, in the order they run: cost per unlink, start-up, throughput.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use crate::report::{
    self, CostConfig, Lossless, Startup, StartupRatio, StartupTool, Stats, Throughput, Unavailable,
    UnlinkCost,
};
use crate::tool::{Output, Running, Stopped, Tool};
use crate::unlinks::{unlink_in_parallel, Batch, Scratch};

/// Under TCG a lesson attaches in about a second and bpftrace in 5-10 s.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(180);
/// A process name no process has (`--comm` keeps 15 bytes): the programs run, nothing is sent.
const NO_SUCH_COMM: &str = "nobody-matches";

/// How much of each measurement to do.
pub struct Plan {
    pub cost_rounds: usize,
    /// Batches per configuration and round, with one lesson start; the fastest is the sample.
    pub cost_batches: usize,
    pub cost_files: usize,
    pub startup_rounds: usize,
    /// Files per thread at full speed.
    pub throughput_files: usize,
    /// How long each rate lasts in the search for the highest lossless rate.
    pub paced_step: Duration,
}

pub const QUICK: Plan = Plan {
    cost_rounds: 2,
    cost_batches: 2,
    cost_files: 2_000,
    startup_rounds: 1,
    throughput_files: 4_000,
    paced_step: Duration::from_millis(200),
};

pub const FULL: Plan = Plan {
    cost_rounds: 9,
    cost_batches: 5,
    cost_files: 5_000,
    startup_rounds: 5,
    throughput_files: 40_000,
    paced_step: Duration::from_secs(1),
};

pub struct Bench {
    pub plan: Plan,
    pub scratch: Scratch,
    /// The lessons that attach here.
    pub lessons: Vec<Tool>,
    pub bpftrace: Option<Tool>,
    /// This process's name: the lessons' `--comm` when they should deliver.
    pub comm: String,
    /// `bpftrace --version`, once it ran.
    pub peer_version: Option<String>,
    pub unavailable: Vec<Unavailable>,
    pub peak_memory_kib: BTreeMap<String, u64>,
    pub notes: Vec<String>,
}

fn lesson_args<'a>(comm: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--json", "--color", "never", "--comm", comm];
    args.extend_from_slice(extra);
    args
}

impl Bench {
    /// Attach each lesson once (a warm-up, and the kernel function's name);
    /// keep only the tools that work here.
    pub fn preflight(&mut self) -> Option<String> {
        let mut function = None;
        for lesson in std::mem::take(&mut self.lessons) {
            let attached = lesson
                .start(&lesson_args(NO_SUCH_COMM, &[]), Output::Pipe)
                .and_then(|mut run| {
                    let attached = run.wait_attached(ATTACH_TIMEOUT)?;
                    run.stop()?;
                    Ok(attached)
                });
            match attached {
                Ok(attached) => {
                    eprintln!("unlink-bench: {} attaches", lesson.name);
                    function = function.or(attached.function);
                    self.lessons.push(lesson);
                }
                Err(err) => self.mark_unavailable(lesson.name, err),
            }
        }
        if let Some(bpftrace) = self.bpftrace.take() {
            match bpftrace.version() {
                Ok(version) => {
                    self.peer_version = Some(version);
                    self.bpftrace = Some(bpftrace);
                }
                Err(err) => self.mark_unavailable(bpftrace.name, err),
            }
        }
        function
    }

    /// Where a lesson's output goes while it is measured: a file on the scratch
    /// tmpfs, read after it stopped (a reader would compete with it for the CPUs).
    fn output_file(&self) -> Result<Output> {
        Ok(Output::File(
            self.scratch.subdir("output")?.join("stdout.jsonl"),
        ))
    }

    fn mark_unavailable(&mut self, tool: &str, err: anyhow::Error) {
        eprintln!("unlink-bench: {err:#}");
        self.unavailable.push(Unavailable {
            tool: tool.to_string(),
            reason: format!("{err:#}"),
        });
    }

    /// Peak memory, then SIGTERM; check the events read and lost against `expected`.
    fn finish(&mut self, tool: &str, run: Running, expected: Option<u64>) -> Result<Stopped> {
        let kib = run.peak_memory_kib()?;
        let peak = self.peak_memory_kib.entry(tool.to_string()).or_default();
        *peak = (*peak).max(kib);
        let stopped = run.stop()?;
        let Some(expected) = expected else {
            return Ok(stopped);
        };
        match stopped.summary {
            None => self.notes.push(format!("{tool} printed no summary line")),
            Some(s) if s.unlinks != stopped.events => self.notes.push(format!(
                "{tool}: the summary says {} unlinks, {} were read",
                s.unlinks, stopped.events
            )),
            Some(s) if stopped.events + s.lost_events != expected => self.notes.push(format!(
                "{tool}: {} events read + {} lost != {expected} expected; {} (runs of a probe \
                 already running on that CPU, or kprobe misses)",
                stopped.events,
                s.lost_events,
                report::skipped_by_kernel(s.skipped_by_kernel)
            )),
            Some(_) => {}
        }
        Ok(stopped)
    }

    /// ns per unlink with no probe, and each lesson filtering out or delivering
    /// every event; the configurations interleaved, a different one first each round.
    pub fn unlink_cost(&mut self) -> Result<UnlinkCost> {
        let Plan {
            cost_rounds: rounds,
            cost_batches: batches,
            cost_files: files,
            ..
        } = self.plan;
        // (lesson index, delivering)
        let mut configs: Vec<Option<(usize, bool)>> = vec![None];
        for lesson in 0..self.lessons.len() {
            configs.extend([Some((lesson, false)), Some((lesson, true))]);
        }
        let dir = self.scratch.subdir("cost")?;
        Batch::create(&dir, files)?.unlink_all()?; // warm-up
        let mut samples = vec![Vec::new(); configs.len()];
        for round in 0..rounds {
            for k in 0..configs.len() {
                let c = (k + round) % configs.len();
                // The fastest batch: other load on the machine only ever adds time.
                let mut measure = || -> Result<()> {
                    let mut fastest = f64::INFINITY;
                    for _ in 0..batches {
                        let took = Batch::create(&dir, files)?.unlink_all()?;
                        fastest = fastest.min(took.as_nanos() as f64 / files as f64);
                    }
                    samples[c].push(fastest);
                    Ok(())
                };
                match configs[c] {
                    None => measure()?,
                    Some((lesson, deliver)) => {
                        let comm = if deliver {
                            self.comm.clone()
                        } else {
                            NO_SUCH_COMM.into()
                        };
                        let mut run = self.lessons[lesson]
                            .start(&lesson_args(&comm, &[]), self.output_file()?)?;
                        run.wait_attached(ATTACH_TIMEOUT)?;
                        measure()?;
                        let expected = if deliver { (batches * files) as u64 } else { 0 };
                        self.finish(self.lessons[lesson].name, run, Some(expected))?;
                    }
                }
            }
            eprintln!(
                "unlink-bench: cost per unlink, round {}/{rounds} done",
                round + 1
            );
        }
        let stats: Vec<Stats> = samples
            .iter()
            .map(|s| Stats::of(s).context("no samples"))
            .collect::<Result<_>>()?;
        let medians: Vec<f64> = stats.iter().map(|s| s.median).collect();
        // An overhead smaller than the no-probe spread makes a ratio of noise.
        let noise = stats[0].q3 - stats[0].q1;
        let overhead = |config: Option<(usize, bool)>| {
            configs
                .iter()
                .position(|c| *c == config)
                .map(|i| medians[i] - medians[0])
        };
        let ratio = |deliver: bool| {
            let of = |name: &str| {
                let lesson = self.lessons.iter().position(|l| l.name == name)?;
                overhead(Some((lesson, deliver)))
            };
            match (of("lesson-02")?, of("lesson-03")?) {
                (kprobe, fentry) if kprobe > noise && fentry > noise => Some(kprobe / fentry),
                _ => None,
            }
        };
        Ok(UnlinkCost {
            files_per_batch: files,
            batches_per_sample: batches,
            rounds,
            noise_ns: noise,
            ratio_filtered: ratio(false),
            ratio_delivering: ratio(true),
            configs: configs
                .iter()
                .zip(stats)
                .map(|(&config, ns_per_unlink)| CostConfig {
                    name: match config {
                        None => "no probe".into(),
                        Some((lesson, deliver)) => format!(
                            "{} ({}), {}",
                            self.lessons[lesson].name,
                            self.lessons[lesson].probes,
                            if deliver {
                                "delivering"
                            } else {
                                "filtered out"
                            }
                        ),
                    },
                    overhead_ns: config.and(overhead(config)),
                    ns_per_unlink,
                })
                .collect(),
        })
    }

    /// Each tool, in turn and `startup_rounds` times: from spawn to its announcing
    /// line and to its first event, while a thread unlinks a file every millisecond.
    pub fn startup(&mut self, function: &str) -> Result<Startup> {
        let dir = self.scratch.subdir("startup")?;
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let trigger = scope.spawn(|| unlink_every_millisecond(&dir, &stop));
            let startup = self.startup_rounds(function);
            stop.store(true, Ordering::Relaxed);
            trigger.join().expect("the trigger thread panicked")?;
            startup
        })
    }

    fn startup_rounds(&mut self, function: &str) -> Result<Startup> {
        let program = format!("kprobe:{function} {{ printf(\"hit\\n\"); }}");
        let mut samples: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        for round in 0..self.plan.startup_rounds {
            for lesson in 0..self.lessons.len() {
                let tool = &self.lessons[lesson];
                let mut run = tool.start(&["--json", "--color", "never"], Output::Pipe)?;
                let announced = run.wait_attached(ATTACH_TIMEOUT)?.after;
                let first = run.wait_first_event(ATTACH_TIMEOUT)?;
                let name = tool.name;
                self.finish(name, run, None)?;
                let entry = samples.entry(name.to_string()).or_default();
                entry.0.push(ms(announced));
                entry.1.push(ms(first));
            }
            if let Some(bpftrace) = &self.bpftrace {
                let name = bpftrace.name;
                let measured =
                    bpftrace
                        .start(&["-e", &program], Output::Pipe)
                        .and_then(|mut run| {
                            let announced = run.wait_attached(ATTACH_TIMEOUT)?.after;
                            let first = run.wait_first_event(ATTACH_TIMEOUT)?;
                            self.finish(name, run, None)?;
                            Ok((announced, first))
                        });
                match measured {
                    Ok((announced, first)) => {
                        let entry = samples.entry(name.to_string()).or_default();
                        entry.0.push(ms(announced));
                        entry.1.push(ms(first));
                    }
                    Err(err) => {
                        self.bpftrace = None;
                        self.mark_unavailable(name, err);
                    }
                }
            }
            eprintln!(
                "unlink-bench: start-up, round {}/{} done",
                round + 1,
                self.plan.startup_rounds
            );
        }
        let tools: Vec<StartupTool> = samples
            .into_iter()
            .map(|(tool, (announced, first))| {
                Ok(StartupTool {
                    tool,
                    announced_ms: Stats::of(&announced).context("no samples")?,
                    first_event_ms: Stats::of(&first).context("no samples")?,
                })
            })
            .collect::<Result<_>>()?;
        let ratios = match tools.iter().find(|t| t.tool == "bpftrace") {
            None => Vec::new(),
            Some(peer) => tools
                .iter()
                .filter(|t| t.tool != "bpftrace")
                .map(|lesson| StartupRatio {
                    lesson: lesson.tool.clone(),
                    announced: peer.announced_ms.median / lesson.announced_ms.median,
                    first_event: peer.first_event_ms.median / lesson.first_event_ms.median,
                })
                .collect(),
        };
        Ok(Startup {
            rounds: self.plan.startup_rounds,
            peer_version: self.peer_version.clone(),
            tools,
            ratios,
        })
    }

    /// Unlinks per second at full speed, with one thread and with one per CPU,
    /// with no probe and with each lesson delivering (its default ring buffer,
    /// then 4 KiB to show events lost and counted); and the highest rate each
    /// lesson keeps up with.
    pub fn throughput(&mut self, cpus: usize) -> Result<(Vec<Throughput>, Vec<Lossless>)> {
        let files = self.plan.throughput_files;
        let mut thread_counts = vec![1];
        if cpus > 1 {
            thread_counts.push(cpus);
        }
        let mut rows = Vec::new();
        for &threads in &thread_counts {
            let took = unlink_in_parallel(&self.scratch, threads, files, None)?;
            rows.push(Throughput {
                tool: None,
                threads,
                ring_buffer_kib: None,
                unlinks: (threads * files) as u64,
                per_second: (threads * files) as f64 / took.as_secs_f64(),
                events_read: None,
                lost_events: None,
                skipped_by_kernel: None,
            });
        }
        let one_thread = rows[0].per_second;
        let mut runs: Vec<(usize, u32)> = thread_counts
            .iter()
            .map(|&t| (t, DEFAULT_RING_BUFFER_KIB))
            .collect();
        runs.push((cpus, 4));
        let mut lossless = Vec::new();
        for lesson in 0..self.lessons.len() {
            for &(threads, ring_kib) in &runs {
                let ring = ring_kib.to_string();
                let comm = self.comm.clone();
                let args = lesson_args(&comm, &["--ring-buffer-kib", &ring]);
                let mut run = self.lessons[lesson].start(&args, self.output_file()?)?;
                run.wait_attached(ATTACH_TIMEOUT)?;
                let took = unlink_in_parallel(&self.scratch, threads, files, None)?;
                let unlinks = (threads * files) as u64;
                let name = self.lessons[lesson].name;
                let stopped = self.finish(name, run, Some(unlinks))?;
                rows.push(Throughput {
                    tool: Some(name.to_string()),
                    threads,
                    ring_buffer_kib: Some(ring_kib),
                    unlinks,
                    per_second: unlinks as f64 / took.as_secs_f64(),
                    events_read: Some(stopped.events),
                    lost_events: stopped.summary.map(|s| s.lost_events),
                    skipped_by_kernel: stopped.summary.and_then(|s| s.skipped_by_kernel),
                });
            }
            let start = one_thread / 16.0;
            lossless.push(self.highest_lossless_rate(lesson, cpus, start)?);
            eprintln!(
                "unlink-bench: throughput of {} done",
                self.lessons[lesson].name
            );
        }
        Ok((rows, lossless))
    }

    /// `threads` unlink at a paced total rate, 25% higher each step, while the
    /// lesson delivers with its default ring buffer; the highest rate reached
    /// before an event went missing or the threads could not go faster.
    fn highest_lossless_rate(
        &mut self,
        lesson: usize,
        threads: usize,
        mut rate: f64,
    ) -> Result<Lossless> {
        let name = self.lessons[lesson].name;
        let comm = self.comm.clone();
        let mut run = self.lessons[lesson].start(&lesson_args(&comm, &[]), self.output_file()?)?;
        run.wait_attached(ATTACH_TIMEOUT)?;
        let (mut made, mut kept_up, mut lost_at) = (0, None, None);
        loop {
            let per_thread =
                ((rate * self.plan.paced_step.as_secs_f64()) as usize / threads).max(100);
            let took = unlink_in_parallel(&self.scratch, threads, per_thread, Some(rate))?;
            let files = per_thread * threads;
            made += files as u64;
            let achieved = files as f64 / took.as_secs_f64();
            if !caught_up(&mut run, made)? {
                lost_at = Some(achieved);
                break;
            }
            // No faster than the last step: the threads are at their top speed.
            if kept_up.is_some_and(|best| achieved <= best) {
                break;
            }
            kept_up = Some(achieved);
            rate *= 1.25;
        }
        let stopped = self.finish(name, run, Some(made))?;
        Ok(Lossless {
            tool: name.to_string(),
            threads,
            per_second: kept_up,
            lost_at,
            lost_events: stopped.summary.map(|s| s.lost_events),
            skipped_by_kernel: stopped.summary.and_then(|s| s.skipped_by_kernel),
        })
    }
}

/// Wait until `made` events were output; false when the output stalls short of
/// it for 2 s (events were lost, which the summary then confirms).
fn caught_up(run: &mut Running, made: u64) -> Result<bool> {
    let (mut read, mut since) = (run.events()?, Instant::now());
    while read < made {
        std::thread::sleep(Duration::from_millis(10));
        let now = run.events()?;
        if now != read {
            (read, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_secs(2) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The lessons' `--ring-buffer-kib` default.
const DEFAULT_RING_BUFFER_KIB: u32 = 2048;

fn unlink_every_millisecond(dir: &Path, stop: &AtomicBool) -> Result<()> {
    let path = dir.join("trigger");
    while !stop.load(Ordering::Relaxed) {
        File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        fs::remove_file(&path).map_err(|e| anyhow!("unlink {}: {e}", path.display()))?;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}
