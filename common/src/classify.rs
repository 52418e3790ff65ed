//! From what the kernel said to the catalogue entry that explains it, and the
//! one line a lesson prints about it.

use std::fmt;

use crate::catalogue::{
    Failure, FailureId, E2BIG, EACCES, EBUSY, EINVAL, ENOENT, ENOMEM, ENOSYS, ENOTSUPP, EPERM,
    ESRCH,
};
use crate::errno;
use crate::facts::{Facts, LESSONS_MIN_VERSION};
use crate::probe::{Probe, Stage};

/// The errno inside a libbpf-rs error, whose `{:#}` ends in `(os error N)`.
pub fn errno_of(error: &dyn fmt::Display) -> Option<i32> {
    let text = format!("{error:#}"); // the alternate form includes the source chain
    let start = text.rfind("(os error ")? + "(os error ".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What went wrong, in the terms the catalogue needs.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub probe: Probe,
    pub stage: Stage,
    pub errno: Option<i32>,
    /// libbpf's log of the attempt: some causes are only visible there.
    pub libbpf_log: &'a str,
}

/// Pick the catalogue entry that explains `observed` on a system with `facts`.
pub fn classify(observed: &Observed<'_>, facts: &Facts) -> &'static Failure {
    let log = observed.libbpf_log;
    let old_kernel = facts
        .kernel_version
        .is_some_and(|v| v < LESSONS_MIN_VERSION);
    let no_kprobes =
        !facts.kprobe_pmu && !facts.kprobe_events || facts.config_kprobes == Some(false);
    let id = match (observed.errno, observed.probe, observed.stage) {
        (_, _, _)
            if log.contains("kernel BTF is missing")
                || log.contains("failed to find valid kernel BTF") =>
        {
            FailureId::NoBtf
        }
        (Some(ENOSYS), _, _) => FailureId::NoBpfSyscall,
        (Some(EPERM), _, _)
            if !facts.privileged && (facts.euid == Some(0) || facts.user_namespace) =>
        {
            FailureId::ContainerRestricted
        }
        (Some(EPERM), _, _) if !facts.privileged => FailureId::NotPrivileged,
        (Some(EPERM | EINVAL), _, _) if facts.lockdown_confidentiality => FailureId::Lockdown,
        (Some(EINVAL), _, Stage::Load) if old_kernel => FailureId::KernelTooOld,
        (Some(EPERM), _, _) if facts.seccomp == Some(2) => FailureId::ContainerRestricted,
        (Some(EPERM), Probe::Fentry, Stage::Load) => FailureId::TracingRefused,
        (Some(EPERM), _, Stage::Load) if facts.kernel_version.is_some_and(|v| v < (5, 11)) => {
            FailureId::MemlockLimit
        }
        (Some(ENOENT), Probe::Kprobe, Stage::Attach) if no_kprobes => FailureId::NoKprobes,
        (Some(ENOENT | ESRCH), _, _) if !facts.btf && observed.probe == Probe::Fentry => {
            FailureId::NoBtf
        }
        (Some(ENOENT | ESRCH), _, _) => FailureId::FunctionNotFound,
        (Some(EINVAL), Probe::Kprobe, Stage::Attach) => FailureId::NotTraceable,
        (Some(ENOTSUPP), _, _) => FailureId::FentryNotSupported,
        (Some(EBUSY), Probe::Kprobe, _) => FailureId::KprobeBusy,
        (Some(EBUSY), Probe::Fentry, _) => FailureId::FentryBusy,
        (Some(E2BIG), Probe::Fentry, Stage::Attach) => FailureId::TrampolineFull,
        (Some(EACCES), _, Stage::Load) => FailureId::VerifierRejected,
        (Some(ENOMEM), _, Stage::Load) => FailureId::RingBufferTooBig,
        _ => FailureId::Unknown,
    };
    id.failure()
}

/// `ENOENT (-2)`, `ENOTSUPP (-524)`, or `error -999` for numbers without a name.
pub fn errno_label(errno: i32) -> String {
    match errno::name(errno) {
        Some(name) => format!("{name} (-{errno})"),
        None => format!("error -{errno}"),
    }
}

/// The one line a lesson prints when the kernel refuses: errno, cause, next step.
pub fn explain(what: &str, observed: &Observed<'_>, facts: &Facts) -> String {
    let failure = classify(observed, facts);
    let errno = observed
        .errno
        .map(errno_label)
        .unwrap_or_else(|| "an error".to_string());
    let doctor = if failure.fix.contains("unlink-doctor") {
        ""
    } else {
        " (details: `sudo unlink-doctor`)"
    };
    let verifier = match verifier_last_line(observed.libbpf_log) {
        Some(line) if failure.id == FailureId::VerifierRejected => {
            format!(" (the verifier: \"{line}\")")
        }
        _ => String::new(),
    };
    format!(
        "{what} failed with {errno}: {}{verifier}. Next: {}{doctor}",
        failure.cause,
        failure.fix_for(observed.probe)
    )
}

/// The verifier's reason, the last line of the last program load log libbpf
/// printed, before its statistics (`processed N insns ...`).
pub fn verifier_last_line(libbpf_log: &str) -> Option<&str> {
    let end = libbpf_log.rfind("-- END PROG LOAD LOG --")?;
    let begin = libbpf_log[..end].rfind("-- BEGIN PROG LOAD LOG --")?;
    let statistics = ["processed ", "verification time ", "stack depth "];
    let (_, verifier_log) = libbpf_log[begin..end].split_once('\n')?;
    verifier_log
        .lines()
        .map(str::trim)
        .rev()
        .find(|line| !line.is_empty() && !statistics.iter().any(|s| line.starts_with(s)))
        .filter(|line| !line.chars().any(char::is_control))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::fixtures::this_machine;

    #[test]
    fn containers_and_namespaces() {
        let container = Facts {
            privileged: false,
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Load, EPERM), &container).id,
            FailureId::ContainerRestricted
        );
        let userns = Facts {
            privileged: false,
            euid: Some(1000),
            user_namespace: true,
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Load, EPERM), &userns).id,
            FailureId::ContainerRestricted
        );
        let old = Facts {
            kernel_version: Some((4, 19)),
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Load, EINVAL), &old).id,
            FailureId::KernelTooOld
        );
    }

    fn observed(probe: Probe, stage: Stage, errno: i32) -> Observed<'static> {
        Observed {
            probe,
            stage,
            errno: Some(errno),
            libbpf_log: "",
        }
    }

    #[test]
    fn this_machines_failures_are_named_right() {
        let facts = this_machine();
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Attach, ENOENT), &facts).id,
            FailureId::NoKprobes
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, EPERM), &facts).id,
            FailureId::TracingRefused
        );
    }

    #[test]
    fn privileges_come_before_kernel_policy() {
        let facts = Facts {
            privileged: false,
            euid: Some(1000),
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, EPERM), &facts).id,
            FailureId::NotPrivileged
        );
        let old = Facts {
            kernel_version: Some((5, 10)),
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Load, EPERM), &old).id,
            FailureId::MemlockLimit
        );
    }

    #[test]
    fn missing_functions_and_btf() {
        let with_kprobes = Facts {
            kprobe_pmu: true,
            config_kprobes: Some(true),
            ..this_machine()
        };
        assert_eq!(
            classify(
                &observed(Probe::Kprobe, Stage::Attach, ENOENT),
                &with_kprobes
            )
            .id,
            FailureId::FunctionNotFound
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, ESRCH), &with_kprobes).id,
            FailureId::FunctionNotFound
        );
        let no_btf = Facts {
            btf: false,
            ..with_kprobes
        };
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, ESRCH), &no_btf).id,
            FailureId::NoBtf
        );
        let log = Observed {
            libbpf_log: "libbpf: kernel BTF is missing at '/sys/kernel/btf/vmlinux'",
            ..observed(Probe::Kprobe, Stage::Load, ESRCH)
        };
        assert_eq!(classify(&log, &no_btf).id, FailureId::NoBtf);
    }

    #[test]
    fn attach_errors() {
        let facts = Facts {
            kprobe_pmu: true,
            config_kprobes: Some(true),
            ..this_machine()
        };
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Attach, ENOTSUPP), &facts).id,
            FailureId::FentryNotSupported
        );
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Attach, EINVAL), &facts).id,
            FailureId::NotTraceable
        );
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Attach, EBUSY), &facts).id,
            FailureId::KprobeBusy
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Attach, EBUSY), &facts).id,
            FailureId::FentryBusy
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Attach, E2BIG), &facts).id,
            FailureId::TrampolineFull
        );
        assert_eq!(
            classify(&observed(Probe::Fentry, Stage::Load, ENOSYS), &facts).id,
            FailureId::NoBpfSyscall
        );
        assert_eq!(
            classify(
                &observed(Probe::Fentry, Stage::Load, nix::errno::Errno::EIO as i32),
                &facts
            )
            .id,
            FailureId::Unknown
        );
        let locked = Facts {
            lockdown_confidentiality: true,
            ..facts
        };
        assert_eq!(
            classify(&observed(Probe::Kprobe, Stage::Load, EINVAL), &locked).id,
            FailureId::Lockdown
        );
    }

    #[test]
    fn explanations_name_errno_cause_and_next_step() {
        let line = explain(
            "attaching the kprobe to do_unlinkat",
            &observed(Probe::Kprobe, Stage::Attach, ENOENT),
            &this_machine(),
        );
        assert!(
            line.starts_with("attaching the kprobe to do_unlinkat failed with ENOENT (-2): "),
            "{line}"
        );
        assert!(line.contains("CONFIG_KPROBES"), "{line}");
        assert!(
            line.contains("run lesson-03 if `sudo unlink-doctor` says it is ready"),
            "{line}"
        );
        assert!(
            line.contains("cargo xtask vm -- target/debug/lesson-02"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let refused = explain(
            "loading",
            &observed(Probe::Fentry, Stage::Load, EPERM),
            &this_machine(),
        );
        assert!(
            refused.contains("EPERM (-1)") && refused.contains("`ulimit -l` is wrong here"),
            "{refused}"
        );
        let odd = explain(
            "loading",
            &observed(Probe::Fentry, Stage::Load, 999),
            &this_machine(),
        );
        assert!(
            odd.contains("error -999") && odd.contains("unlink-doctor --report"),
            "{odd}"
        );
    }

    /// The end of libbpf's log for `lesson-03 --function vfs_unlink` on Debian's 6.12.
    const VFS_UNLINK_LOG: &str = "\
libbpf: prog 'unlink_exit': BPF program load failed: Permission denied
libbpf: prog 'unlink_exit': -- BEGIN PROG LOAD LOG --
0: R1=ctx() R10=fp0
; int BPF_PROG(unlink_exit, int dfd, struct filename *name, int ret) @ unlink_fentry.bpf.c:52
0: (79) r6 = *(u64 *)(r1 +16)
func 'vfs_unlink' arg2 has btf_id 909 type STRUCT 'dentry'
; unlink_event_begin(e, name->name); @ unlink_fentry.bpf.c:80
65: (79) r1 = *(u64 *)(r9 +0)
access beyond the end of member i_mode (mend:2) in struct inode with off 0 size 8
processed 30 insns (limit 1000000) max_states_per_insn 0 total_states 3 peak_states 3 mark_read 2
-- END PROG LOAD LOG --
libbpf: prog 'unlink_exit': failed to load: -EACCES
libbpf: failed to load object 'unlink_fentry_bpf'
";

    #[test]
    fn verifier_refusals_quote_the_verifier() {
        assert_eq!(
            verifier_last_line(VFS_UNLINK_LOG),
            Some(
                "access beyond the end of member i_mode (mend:2) in struct inode with off 0 size 8"
            )
        );
        assert_eq!(verifier_last_line("libbpf: no log here"), None);
        let refused = Observed {
            libbpf_log: VFS_UNLINK_LOG,
            ..observed(Probe::Fentry, Stage::Load, EACCES)
        };
        let line = explain(
            "loading the fentry/fexit programs on vfs_unlink",
            &refused,
            &this_machine(),
        );
        assert!(
            line.contains("failed with EACCES (-13): the BPF verifier refused"),
            "{line}"
        );
        assert!(
            line.contains("(the verifier: \"access beyond the end of member i_mode (mend:2) in struct inode with off 0 size 8\")"),
            "{line}"
        );
        assert!(
            line.contains("drop --function so lesson-03 picks"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn no_memory_at_load_points_at_the_ring_buffer_flag() {
        let line = explain(
            "loading the kprobe programs on do_unlinkat",
            &observed(Probe::Kprobe, Stage::Load, ENOMEM),
            &this_machine(),
        );
        assert!(line.contains("failed with ENOMEM (-12)"), "{line}");
        assert!(
            line.contains("Next: give a smaller --ring-buffer-kib"),
            "{line}"
        );
    }

    #[test]
    fn errno_is_found_in_libbpf_rs_messages() {
        assert_eq!(errno_of(&"No such file or directory (os error 2)"), Some(2));
        assert_eq!(
            errno_of(&"failed to attach: Unknown error 524 (os error 524)"),
            Some(524)
        );
        assert_eq!(errno_of(&"nothing here"), None);
    }
}
