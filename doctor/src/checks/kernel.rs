//! The Kernel version section: the version the lessons need, and fentry per architecture.

use unlink_common::failures::{self, Facts, Probe};

use super::system::Uname;
use crate::check_ids::{CheckId, SectionId};
use crate::report::{Item, Section, Status};

pub fn section(uname: &Uname, facts: &mut Facts) -> Section {
    let version = uname
        .release
        .as_deref()
        .and_then(failures::parse_kernel_version);
    facts.kernel_version = version;
    facts.arch = uname.machine.clone();
    let mut items = Vec::new();
    let (min_major, min_minor) = failures::LESSONS_MIN_VERSION;
    items.push(match version {
        Some(v) if v >= failures::LESSONS_MIN_VERSION => Item::new(
            CheckId::KernelVersion,
            Status::Ok,
            format!(
                "{}.{} (the lessons need >= {min_major}.{min_minor})",
                v.0, v.1
            ),
        ),
        Some(v) => Item::new(
            CheckId::KernelVersion,
            Status::Fail,
            format!(
                "{}.{} (the lessons need >= {min_major}.{min_minor})",
                v.0, v.1
            ),
        )
        .failure("kernel-too-old", Probe::Kprobe),
        None => Item::new(
            CheckId::KernelVersion,
            Status::Warn,
            format!("cannot parse {:?}", uname.release.as_deref().unwrap_or("")),
        )
        .advice("check `uname -r` by hand: the lessons need >= 5.8"),
    });
    items.push(Item::new(
        CheckId::KernelKprobe,
        Status::Ok,
        "any architecture, any version the lessons run on",
    ));
    let fentry = match (uname.machine.as_deref(), version) {
        (Some(arch), Some(v)) => match failures::fentry_needs(arch) {
            Some(needs) => {
                let (major, minor) = needs.min_version;
                let about = if needs.approximate { "about " } else { "" };
                let value = format!("{arch} needs {about}>= {major}.{minor}: {}", needs.why);
                match (v >= needs.min_version, needs.approximate) {
                    (true, _) => Item::new(CheckId::KernelFentry, Status::Ok, value),
                    (false, false) => Item::new(CheckId::KernelFentry, Status::Fail, value)
                        .failure("fentry-not-supported", Probe::Fentry),
                    (false, true) => Item::new(CheckId::KernelFentry, Status::Warn, value)
                        .advice("the version is approximate: only the live check (`sudo unlink-doctor`) tells"),
                }
            }
            None => Item::new(
                CheckId::KernelFentry,
                Status::Warn,
                format!("{arch}: no known BPF trampoline support"),
            )
            .advice("only the live check (`sudo unlink-doctor`) tells"),
        },
        _ => Item::new(
            CheckId::KernelFentry,
            Status::Skipped,
            "unknown architecture or version",
        ),
    };
    items.push(fentry);
    Section::new(SectionId::Kernel, items)
}
