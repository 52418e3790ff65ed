//! One verdict per lesson. Live results beat predictions: when the live check
//! ran, its outcome decides, and the catalogue (classify) names the cause with
//! the read-only facts; otherwise the catalogue's predict() decides.

use unlink_common::failures::{self, errno_label, Facts, Observed, Prediction, Probe};

use crate::check_ids::{CheckId, SectionId};
use crate::live::Outcome;
use crate::report::{doc_link, Basis, Item, LessonVerdict, Section, Status, Verdict};

/// The live section's item for one lesson.
pub fn live_item(probe: Probe, function: Option<&str>, outcome: &Outcome, facts: &Facts) -> Item {
    let [entry, _] = probe.programs();
    let id = live_check(probe);
    let label = format!(
        "{} on {}",
        id.label(),
        function.unwrap_or("the unlink function")
    );
    match outcome {
        Outcome::Skipped(why) => {
            Item::labelled(id, label, Status::Skipped, format!("not run: {why}"))
        }
        Outcome::Fired { ret, latency_ns } => Item::labelled(
            id,
            label,
            Status::Ok,
            format!(
                "loaded, attached, both fired on an unlink (ret {ret}, {:.1} µs), detached",
                *latency_ns as f64 / 1000.0
            ),
        ),
        Outcome::Failed {
            stage,
            step,
            errno,
            log,
            message,
        } => {
            let observed = Observed {
                probe,
                stage: *stage,
                errno: *errno,
                libbpf_log: log,
            };
            let failure = failures::classify(&observed, facts);
            let errno = errno
                .map(errno_label)
                .unwrap_or_else(|| "an error without errno".into());
            Item::labelled(
                id,
                label,
                Status::Fail,
                format!("{step} failed with {errno} ({message})"),
            )
            .failure(failure.id, probe)
        }
        Outcome::Silent { entry_fired } => Item::labelled(
            id,
            label,
            Status::Fail,
            format!(
                "attached, but no event after an unlink ({entry} fired: {})",
                if *entry_fired { "yes" } else { "no" }
            ),
        )
        .failure("unknown", probe),
    }
}

/// The live item's id for `probe`; its label names the programs the lesson attaches.
fn live_check(probe: Probe) -> CheckId {
    match probe {
        Probe::Kprobe => CheckId::LiveKprobe,
        Probe::Fentry => CheckId::LiveFentry,
    }
}

pub fn live_section(items: Vec<Item>) -> Section {
    Section::new(SectionId::Live, items)
}

/// The verdict for `probe`'s lesson, without the alternative (see [`add_alternatives`]).
pub fn decide(
    probe: Probe,
    function: Option<&str>,
    outcome: &Outcome,
    facts: &Facts,
) -> LessonVerdict {
    let [entry, exit] = probe.programs();
    let function = function.unwrap_or("the unlink function");
    let verdict = |verdict,
                   basis,
                   failure: Option<&'static failures::Failure>,
                   reason: String,
                   next: Option<String>| LessonVerdict {
        lesson: probe.lesson(),
        probe,
        verdict,
        basis,
        failure: failure.map(|f| f.id),
        reason,
        next,
        alternative: None,
        doc: failure.map(doc_link),
    };
    match outcome {
        Outcome::Fired { .. } => verdict(
            Verdict::Ready,
            Basis::Live,
            None,
            format!("its {entry} and {exit} attached to {function} and both fired"),
            None,
        ),
        Outcome::Failed { stage, step, errno, log, .. } => {
            let observed = Observed { probe, stage: *stage, errno: *errno, libbpf_log: log };
            let failure = failures::classify(&observed, facts);
            let errno = errno.map(errno_label).unwrap_or_else(|| "an error".into());
            verdict(
                Verdict::WillFail,
                Basis::Live,
                Some(failure),
                format!("{step} on {function} failed with {errno}: {}", failure.cause),
                Some(failure.fix_for(probe)),
            )
        }
        Outcome::Silent { entry_fired } => verdict(
            Verdict::WillFail,
            Basis::Live,
            Some(failures::by_id("unknown")),
            format!(
                "{entry} and {exit} attached to {function} but no event arrived after an unlink ({entry} fired: {})",
                if *entry_fired { "yes" } else { "no" }
            ),
            Some(failures::by_id("unknown").fix_for(probe)),
        ),
        Outcome::Skipped(why) => match failures::predict(probe, facts) {
            Prediction::Fails { failure, because } => verdict(
                Verdict::WillFail,
                Basis::ReadOnly,
                Some(failure),
                format!("{}: {because}", failure.title),
                Some(failure.fix_for(probe)),
            ),
            Prediction::Unchecked { blocked_by, missing } => verdict(
                Verdict::Unknown,
                Basis::ReadOnly,
                blocked_by,
                format!("could not check {}", missing.join("; ")),
                Some(how_to_check(blocked_by.is_some(), why)),
            ),
            Prediction::Passes => verdict(
                Verdict::Ready,
                Basis::ReadOnly,
                None,
                format!("every read-only check passed; live check not run: {why}"),
                None,
            ),
        },
    }
}

fn how_to_check(not_privileged: bool, why: &str) -> String {
    match (not_privileged, why.contains("--root")) {
        (true, _) => {
            "run `sudo unlink-doctor`: as root it loads and attaches the lesson's programs"
                .to_string()
        }
        (false, true) => "run `sudo unlink-doctor` on that machine for the live check".to_string(),
        (false, false) => {
            "run `sudo unlink-doctor` without --no-live: the live check decides".to_string()
        }
    }
}

/// Point each lesson that is not ready at the other lesson (when that one is ready) or a VM.
pub fn add_alternatives(verdicts: &mut [LessonVerdict]) {
    let ready: Vec<&'static str> = verdicts
        .iter()
        .filter(|v| v.verdict == Verdict::Ready)
        .map(|v| v.lesson)
        .collect();
    for verdict in verdicts.iter_mut().filter(|v| v.verdict != Verdict::Ready) {
        let other = verdict.probe.other().lesson();
        let vm = format!(
            "run {} in a VM: `cargo xtask vm -- target/debug/{}`",
            verdict.lesson, verdict.lesson
        );
        verdict.alternative = Some(match ready.contains(&other) {
            true => format!("{other} is ready here: `sudo target/debug/{other}`; or {vm}"),
            false => format!("{other} is not ready here either: {vm}"),
        });
    }
}
