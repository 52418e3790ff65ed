//! The Tracing section: tracefs and debugfs, kallsyms, the kprobe interfaces, whether the
//! function can be traced, tracing_on and livepatches.

use unlink_common::failures::{Facts, Probe};

use crate::check_ids::{CheckId, SectionId};
use crate::parse::kallsyms::{self, base_name};
use crate::parse::mountinfo;
use crate::report::{Item, Section, Status};
use crate::sysroot::{ReadError, SystemRoot};

pub fn section(
    root: &SystemRoot,
    function: Option<&str>,
    kallsyms: &Result<String, ReadError>,
    facts: &mut Facts,
) -> Section {
    let mut items = Vec::new();
    let mounts = mountinfo::parse(&root.read_text("/proc/self/mountinfo").unwrap_or_default());
    let tracefs = mountinfo::mount_points(&mounts, "tracefs");
    let debugfs = mountinfo::mount_points(&mounts, "debugfs");
    // tracefs's own mount point first, then the one debugfs provides.
    let tracing_dir = tracefs
        .iter()
        .map(|p| p.to_string())
        .chain(debugfs.iter().map(|p| format!("{p}/tracing")))
        .find(|dir| {
            root.exists(&format!("{dir}/trace_pipe"))
                || root.exists(&format!("{dir}/tracing_on"))
                || tracefs.contains(&dir.as_str())
        });
    items.push(match tracefs.is_empty() {
        false => Item::new(CheckId::TracingTracefs, Status::Ok, tracefs.join(", ")),
        true => Item::new(CheckId::TracingTracefs, Status::Warn, "not mounted")
            .failure("tracefs-unavailable", Probe::Kprobe),
    });
    items.push(match debugfs.is_empty() {
        false => Item::new(CheckId::TracingDebugfs, Status::Ok, debugfs.join(", ")),
        true => Item::new(
            CheckId::TracingDebugfs,
            Status::Info,
            "not mounted (only the kprobe blacklist lives there)",
        ),
    });

    let function_label = function.unwrap_or("the unlink function");
    // kallsyms: what a kprobe resolves its symbol against.
    facts.kprobe_pmu = root.exists("/sys/bus/event_source/devices/kprobe");
    items.push(match kallsyms {
        Ok(text) => match function.and_then(|f| kallsyms::lookup(text, f)) {
            Some(symbol) => {
                facts.function_in_kallsyms = Some(true);
                Item::new(
                    CheckId::TracingKallsyms,
                    Status::Ok,
                    format!("{symbol} is a text symbol"),
                )
            }
            None => {
                facts.function_in_kallsyms = Some(false);
                Item::new(
                    CheckId::TracingKallsyms,
                    Status::Fail,
                    format!("no text symbol {function_label}"),
                )
                .failure("function-not-found", Probe::Kprobe)
            }
        },
        Err(err) => Item::new(
            CheckId::TracingKallsyms,
            Status::Warn,
            format!("unreadable: {err}"),
        ),
    });
    items.push(match facts.kprobe_pmu {
        true => Item::new(
            CheckId::TracingKprobePmu,
            Status::Ok,
            "/sys/bus/event_source/devices/kprobe",
        ),
        false => Item::new(
            CheckId::TracingKprobePmu,
            Status::Fail,
            "missing (/sys/bus/event_source/devices/kprobe)",
        )
        .failure("no-kprobes", Probe::Kprobe),
    });
    let kprobe_events = tracing_dir
        .as_ref()
        .map(|dir| format!("{dir}/kprobe_events"));
    facts.kprobe_events = kprobe_events.as_ref().is_some_and(|path| root.exists(path));
    items.push(match (&kprobe_events, facts.kprobe_events) {
        (Some(path), true) => Item::new(CheckId::TracingKprobeEvents, Status::Ok, path.clone()),
        (Some(path), false) => Item::new(
            CheckId::TracingKprobeEvents,
            Status::Info,
            format!("{path} missing"),
        ),
        (None, _) => Item::new(
            CheckId::TracingKprobeEvents,
            Status::Skipped,
            "tracefs not mounted",
        ),
    });
    if !facts.kprobe_pmu && facts.kprobe_events {
        // libbpf falls back to the legacy interface: lesson-02 still works.
        if let Some(item) = items.iter_mut().find(|i| i.id == CheckId::TracingKprobePmu) {
            *item = Item::new(
                CheckId::TracingKprobePmu,
                Status::Warn,
                "missing; libbpf will use kprobe_events instead",
            );
        }
    }

    let privileged = facts.privileged;
    let filter_functions = tracing_dir
        .as_ref()
        .map(|dir| format!("{dir}/available_filter_functions"));
    items.push(match (&filter_functions, function) {
        (None, _) => Item::new(
            CheckId::TracingFilterFunctions,
            Status::Skipped,
            "tracefs not mounted",
        )
        .advice("mount it to check: `sudo mount -t tracefs nodev /sys/kernel/tracing`"),
        (Some(_), None) => Item::new(
            CheckId::TracingFilterFunctions,
            Status::Skipped,
            "no function to look for",
        ),
        (Some(path), Some(function)) => match root.read_text(path) {
            Ok(text) => {
                let listed = text
                    .lines()
                    .any(|line| line.split_whitespace().next().map(base_name) == Some(function));
                facts.function_traceable = Some(listed);
                match listed {
                    true => Item::new(
                        CheckId::TracingFilterFunctions,
                        Status::Ok,
                        format!("lists {function}"),
                    ),
                    false => Item::new(
                        CheckId::TracingFilterFunctions,
                        Status::Fail,
                        format!("does not list {function} (notrace)"),
                    )
                    .failure("not-traceable", Probe::Fentry),
                }
            }
            Err(err) if err.is_permission() && privileged => {
                facts.function_tracing_locked = true;
                Item::new(
                    CheckId::TracingFilterFunctions,
                    Status::Fail,
                    format!("unreadable although privileged: {err}"),
                )
                .failure("tracing-refused", Probe::Fentry)
            }
            Err(err) if err.is_permission() => Item::new(
                CheckId::TracingFilterFunctions,
                Status::Skipped,
                format!("unreadable: {err}"),
            )
            .advice("needs root: `sudo unlink-doctor`"),
            Err(err) => Item::new(
                CheckId::TracingFilterFunctions,
                Status::Warn,
                format!("unreadable: {err}"),
            ),
        },
    });
    let blacklist = debugfs
        .first()
        .map(|dir| format!("{dir}/kprobes/blacklist"));
    items.push(match (&blacklist, function) {
        (None, _) => Item::new(
            CheckId::TracingKprobeBlacklist,
            Status::Skipped,
            "debugfs not mounted",
        ),
        (Some(_), None) => Item::new(
            CheckId::TracingKprobeBlacklist,
            Status::Skipped,
            "no function to look for",
        ),
        (Some(path), Some(function)) => match root.read_text(path) {
            Ok(text) => {
                let listed = text
                    .lines()
                    .any(|line| line.split_whitespace().nth(1) == Some(function));
                facts.kprobe_blacklisted = Some(listed);
                match listed {
                    false => Item::new(
                        CheckId::TracingKprobeBlacklist,
                        Status::Ok,
                        format!("{function} not listed"),
                    ),
                    true => Item::new(
                        CheckId::TracingKprobeBlacklist,
                        Status::Fail,
                        format!("{function} is listed"),
                    )
                    .failure("not-traceable", Probe::Kprobe),
                }
            }
            Err(ReadError::Missing) => Item::new(
                CheckId::TracingKprobeBlacklist,
                Status::Info,
                format!("{path} missing"),
            ),
            Err(err) if err.is_permission() && !privileged => Item::new(
                CheckId::TracingKprobeBlacklist,
                Status::Skipped,
                format!("unreadable: {err}"),
            )
            .advice("needs root: `sudo unlink-doctor`"),
            Err(err) => Item::new(
                CheckId::TracingKprobeBlacklist,
                Status::Warn,
                format!("unreadable: {err}"),
            ),
        },
    });
    items.push(
        match tracing_dir
            .as_ref()
            .map(|dir| root.read_line(&format!("{dir}/tracing_on")))
        {
            None => Item::new(
                CheckId::TracingTracingOn,
                Status::Skipped,
                "tracefs not mounted",
            ),
            Some(Some(on)) if on == "1" => Item::new(CheckId::TracingTracingOn, Status::Ok, "1"),
            Some(Some(off)) => Item::new(CheckId::TracingTracingOn, Status::Warn, off).advice(
                "--printk output stays silent: `echo 1 | sudo tee /sys/kernel/tracing/tracing_on`",
            ),
            Some(None) => Item::new(
                CheckId::TracingTracingOn,
                Status::Skipped,
                "unreadable (needs root)",
            ),
        },
    );
    let patches = root.list("/sys/kernel/livepatch");
    if !patches.is_empty() {
        items.push(
            Item::new(CheckId::TracingLivepatch, Status::Warn, patches.join(", "))
                .advice("a livepatch on the function makes kprobes fail with EBUSY"),
        );
    }
    Section::new(SectionId::Tracing, items)
}
