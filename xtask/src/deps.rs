//! The Debian packages the project needs, installed with apt when root.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::cmd;

/// A package and the file that proves it is installed.
pub struct Package {
    pub name: &'static str,
    pub provides: &'static str,
}

const fn pkg(name: &'static str, provides: &'static str) -> Package {
    Package { name, provides }
}

/// Building the lessons: clang compiles the BPF C; libbpf-sys builds libbpf.
pub const BUILD: &[Package] = &[
    pkg("clang", "/usr/bin/clang"),
    pkg("llvm", "/usr/bin/llvm-strip"),
    pkg("libelf-dev", "/usr/include/libelf.h"),
    pkg("zlib1g-dev", "/usr/include/zlib.h"),
    pkg("pkg-config", "/usr/bin/pkg-config"),
    pkg("make", "/usr/bin/make"),
];

/// Running lessons in QEMU.
pub const VM: &[Package] = &[
    pkg("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    pkg("busybox-static", "/bin/busybox"),
    // unpack the Debian kernels' vmlinux (see vm::kernels)
    pkg("xz-utils", "/usr/bin/xz"),
    pkg("zstd", "/usr/bin/zstd"),
    pkg("binutils", "/usr/bin/strip"),
];

/// Running arm64 lessons in QEMU, with [`VM`]. The guest's busybox and
/// kernels come from Debian's arm64 archive through a private apt (vm::apt).
pub const VM_ARM64: &[Package] = &[
    pkg("qemu-system-arm", "/usr/bin/qemu-system-aarch64"),
    // strips the aarch64 programs copied into the guest
    pkg(
        "binutils-aarch64-linux-gnu",
        "/usr/bin/aarch64-linux-gnu-strip",
    ),
];

/// Cross-building the lessons for arm64 (`cargo xtask build --arch arm64`).
pub const BUILD_ARM64: &[Package] = &[pkg(
    "gcc-aarch64-linux-gnu",
    "/usr/bin/aarch64-linux-gnu-gcc",
)];

/// The tests' independent witnesses.
pub const TEST: &[Package] = &[pkg("bpftool", "/usr/sbin/bpftool")];

/// `cargo xtask bench`: the peer the lessons' start-up is compared with.
pub const BENCH: &[Package] = &[pkg("bpftrace", "/usr/bin/bpftrace")];

/// Install what is missing (as root), or say exactly what to run. Nothing
/// the user has installed is ever removed or upgraded: apt's plan is
/// simulated first, and a plan that would do either stops with the command
/// and its consequences, for the user to decide.
pub fn ensure(groups: &[&[Package]]) -> Result<()> {
    ensure_as(groups, crate::workspace::is_root())
}

fn ensure_as(groups: &[&[Package]], root: bool) -> Result<()> {
    let mut missing: Vec<&str> = groups
        .iter()
        .flat_map(|group| group.iter())
        .filter(|package| !Path::new(package.provides).exists())
        .map(|package| package.name)
        .collect();
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !root {
        let list = missing.join(" ");
        bail!(
            "missing packages: {list}; install them with `sudo apt-get update && sudo apt-get install --no-remove {list}`"
        );
    }
    cmd::run(Command::new("apt-get").args(["update", "-q"]))?;
    let qemu_suite = qemu_suite()?;
    let (qemu, others): (Vec<&str>, Vec<&str>) = missing
        .iter()
        .partition(|name| name.starts_with("qemu-system-"));
    if !others.is_empty() {
        install(&others, None)?;
    }
    if !qemu.is_empty() {
        // Backports' QEMU where apt can install it cleanly, else Debian's.
        let from_backports = qemu_suite.and_then(|suite| {
            install(&qemu, Some(&suite))
                .map_err(|err| eprintln!("{err}; trying the default suite"))
                .ok()
        });
        if from_backports.is_none() {
            install(&qemu, None)?;
        }
    }
    Ok(())
}

/// `apt-get install` of `names` (from `suite` when given), after a
/// simulation shows it only adds packages.
fn install(names: &[&str], suite: Option<&str>) -> Result<()> {
    let mut args: Vec<String> = vec!["install".into(), "--no-upgrade".into()];
    if let Some(suite) = suite {
        args.extend(["-t".into(), suite.into()]);
    }
    args.extend(names.iter().map(|name| name.to_string()));
    // Simulated without --no-remove, so that apt lists what it would remove.
    let simulation = cmd::output(Command::new("apt-get").arg("-s").args(&args))?;
    let plan = Plan::of(&simulation);
    plan.check(&format!("apt-get {}", args.join(" ")))?;
    eprintln!("installing {}", plan.summary(names));
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-y", "--no-remove"])
            .args(&args),
    )
}

/// What `apt-get -s install` would do, from its `Inst` and `Remv` lines.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    new: Vec<String>,
    /// "name (old -> new)"
    upgrades: Vec<String>,
    /// "name (version)"
    removals: Vec<String>,
}

impl Plan {
    fn of(simulation: &str) -> Plan {
        let mut plan = Plan::default();
        for line in simulation.lines() {
            let mut words = line.split_whitespace();
            let (Some(action), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            let rest: Vec<&str> = words.collect();
            let bracketed = |word: &&&str| word.starts_with('[');
            let old = rest
                .first()
                .filter(bracketed)
                .map(|w| w.trim_matches(['[', ']']));
            let new = rest
                .iter()
                .find(|w| w.starts_with('('))
                .map(|w| w.trim_start_matches('('));
            match (action, old) {
                ("Remv", old) => plan
                    .removals
                    .push(format!("{name} ({})", old.unwrap_or("?"))),
                ("Inst", Some(old)) => plan
                    .upgrades
                    .push(format!("{name} ({old} -> {})", new.unwrap_or("?"))),
                ("Inst", None) => plan.new.push(name.to_string()),
                _ => {}
            }
        }
        plan
    }

    /// Refuses a plan that removes or upgrades installed packages.
    fn check(&self, command: &str) -> Result<()> {
        let mut changes = Vec::new();
        if !self.removals.is_empty() {
            changes.push(format!("remove {}", self.removals.join(", ")));
        }
        if !self.upgrades.is_empty() {
            changes.push(format!("upgrade {}", self.upgrades.join(", ")));
        }
        if !changes.is_empty() {
            bail!(
                "not installing: `sudo {command}` would {}; run it yourself if that is what you want, then run this again",
                changes.join(" and ")
            );
        }
        Ok(())
    }

    /// "clang llvm (and 3 dependencies: a b c)"
    fn summary(&self, names: &[&str]) -> String {
        let dependencies: Vec<&str> = self
            .new
            .iter()
            .map(String::as_str)
            .filter(|name| !names.contains(name))
            .collect();
        if dependencies.is_empty() {
            names.join(" ")
        } else {
            format!(
                "{} (and {} dependencies: {})",
                names.join(" "),
                dependencies.len(),
                dependencies.join(" ")
            )
        }
    }
}

/// The backports suite to take QEMU from, where apt knows one: QEMU 10
/// there runs multi-threaded TCG without oopsing guests (vm::tcg), and it
/// fits a QEMU package already installed from backports, which Debian's
/// 7.2 would conflict with. None: the default suite.
fn qemu_suite() -> Result<Option<String>> {
    let policy = cmd::output(Command::new("apt-cache").args(["policy", "qemu-system-x86"]))?;
    Ok(backports_suite(&policy))
}

/// The `*-backports` suite in `apt-cache policy` output that offers the package.
fn backports_suite(policy: &str) -> Option<String> {
    policy.lines().find_map(|line| {
        line.split_whitespace()
            .find_map(|word| word.split('/').next().filter(|s| s.ends_with("-backports")))
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_told_the_exact_command() {
        const MISSING: &[Package] = &[
            pkg("xtask-test-a", "/nonexistent/a"),
            pkg("xtask-test-b", "/nonexistent/b"),
        ];
        const PRESENT: &[Package] = &[pkg("coreutils", "/")];
        let err = ensure_as(&[PRESENT, MISSING], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing packages: xtask-test-a xtask-test-b; install them with \
             `sudo apt-get update && sudo apt-get install --no-remove xtask-test-a xtask-test-b`"
        );
        assert!(ensure_as(&[PRESENT], false).is_ok());
    }

    /// `apt-get -s install qemu-system-x86` on bookworm with qemu-utils
    /// 10.0 from bookworm-backports installed: the reported bug.
    const REMOVES_QEMU_UTILS: &str = "\
NOTE: This is only a simulation!
The following packages will be REMOVED:
  qemu-utils
The following NEW packages will be installed:
  qemu-system-common qemu-system-data qemu-system-x86
Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]
Inst qemu-system-common (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])
Inst qemu-system-data (1:7.2+dfsg-7+deb12u18 Debian:12.15/oldstable [all])
Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])
Conf qemu-system-x86 (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])
";

    /// Installing bpftool pulled a newer linux-perf.
    const UPGRADES_PERF: &str = "\
Inst linux-perf [6.1.129-1] (6.1.192-3 Debian-Security:12/oldstable-security [amd64]) []
Inst bpftool (7.1.0+6.1.192-3 Debian-Security:12/oldstable-security [amd64])
Conf bpftool (7.1.0+6.1.192-3 Debian-Security:12/oldstable-security [amd64])
";

    #[test]
    fn a_plan_that_removes_a_package_is_refused_with_the_command() {
        let plan = Plan::of(REMOVES_QEMU_UTILS);
        assert_eq!(
            plan.removals,
            ["qemu-utils (1:10.0.2+ds-2+deb13u1~bpo12+1)"]
        );
        let err = plan
            .check("apt-get install --no-upgrade qemu-system-x86")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "not installing: `sudo apt-get install --no-upgrade qemu-system-x86` would remove \
             qemu-utils (1:10.0.2+ds-2+deb13u1~bpo12+1); run it yourself if that is what you \
             want, then run this again"
        );
    }

    #[test]
    fn a_plan_that_upgrades_a_package_is_refused() {
        let plan = Plan::of(UPGRADES_PERF);
        assert_eq!(plan.upgrades, ["linux-perf (6.1.129-1 -> 6.1.192-3)"]);
        assert_eq!(plan.new, ["bpftool"]);
        let err = plan.check("apt-get install bpftool").unwrap_err();
        assert!(err
            .to_string()
            .contains("would upgrade linux-perf (6.1.129-1 -> 6.1.192-3)"));
    }

    #[test]
    fn a_plan_that_only_adds_is_announced_in_one_line() {
        let plan = Plan::of(
            "Inst libfoo1 (1.0 Debian:12.15/oldstable [amd64])\n\
             Inst clang (1:14.0-55.7 Debian:12.15/oldstable [amd64])\n\
             Conf clang (1:14.0-55.7 Debian:12.15/oldstable [amd64])\n",
        );
        assert!(plan.check("apt-get install clang").is_ok());
        assert_eq!(
            plan.summary(&["clang"]),
            "clang (and 1 dependencies: libfoo1)"
        );
    }

    #[test]
    fn qemu_comes_from_backports_where_apt_knows_it() {
        let policy = "\
qemu-system-x86:
  Installed: (none)
  Candidate: 1:7.2+dfsg-7+deb12u18+b3
  Version table:
     1:10.0.2+ds-2+deb13u1~bpo12+1 100
        100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages
     1:7.2+dfsg-7+deb12u18+b3 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
";
        assert_eq!(
            backports_suite(policy).as_deref(),
            Some("bookworm-backports")
        );
        assert_eq!(backports_suite(&policy.replace("-backports", "")), None);
    }

    /// A real simulation on this machine: Debian's `busybox` conflicts with
    /// `busybox-static`, which the VM runs need (deps::VM), so apt would
    /// remove it. Simulating needs no root and changes nothing.
    #[test]
    fn a_real_simulation_that_would_remove_busybox_static_is_refused() {
        let installed = cmd::output(Command::new("dpkg-query").args([
            "-W",
            "-f",
            "${db:Status-Abbrev}",
            "busybox-static",
        ]))
        .unwrap_or_default();
        assert!(
            installed.starts_with("ii"),
            "this test needs busybox-static installed (cargo xtask deps)"
        );
        let simulation =
            cmd::output(Command::new("apt-get").args(["-s", "install", "--no-upgrade", "busybox"]))
                .unwrap();
        let err = Plan::of(&simulation)
            .check("apt-get install busybox")
            .unwrap_err();
        assert!(
            err.to_string().contains("would remove busybox-static ("),
            "{err}"
        );
    }

    /// The whole path as root: update, simulate, refuse. busybox-static
    /// stays installed.
    #[test]
    #[ignore = "needs root and the network (apt-get update)"]
    fn as_root_an_install_that_would_remove_a_package_stops() {
        const CONFLICTING: &[Package] = &[pkg("busybox", "/nonexistent/busybox")];
        let err = ensure_as(&[CONFLICTING], true).unwrap_err().to_string();
        assert!(
            err.starts_with("not installing: `sudo apt-get install --no-upgrade busybox` would remove busybox-static ("),
            "{err}"
        );
        assert!(Path::new("/bin/busybox").exists());
    }
}
