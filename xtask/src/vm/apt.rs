//! apt with its own sources, lists, cache and status in a private directory:
//! Debian packages of any architecture are downloaded and unpacked without
//! touching the system's sources or its dpkg database.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::apt_root::AptRoot;
use super::Arch;
use crate::{cmd, workspace};

const SYSTEM_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// A suite the system keyring can verify, whose debian-archive-keyring is
/// newer than this machine's: the trust path to a key that signs a newer suite.
const KEYRING_SUITE: &str = "trixie";

/// apt with its own sources, lists, cache and status in a private directory
/// (removed when dropped) that downloads as `_apt`, not as root, and
/// resolves packages for one architecture.
pub(crate) struct PrivateApt {
    root: AptRoot,
    arch: Arch,
}

pub(crate) struct Package {
    pub name: String,
    pub version: String,
    pub size: u64,
}

impl PrivateApt {
    fn new(suite_names: &[&str], keyring: &Path, arch: Arch) -> Result<PrivateApt> {
        let root = AptRoot::new()?;
        root.dir("etc/sources.list.d")?;
        root.dir("etc/preferences.d")?;
        root.download_dir("state/lists/partial")?;
        root.download_dir("cache/archives/partial")?;
        let keyring = root.keyring(keyring)?;
        let root_path = root.path();
        let mirrors = system_mirrors()?;
        let sources: String = suite_names
            .iter()
            .map(|suite| {
                let uri = if suite.ends_with("-security") {
                    &mirrors.security
                } else {
                    &mirrors.main
                };
                format!("deb [signed-by={}] {uri} {suite} main\n", keyring.display())
            })
            .collect();
        fs::write(root_path.join("etc/sources.list"), sources)?;
        // An empty dpkg status: nothing is "installed", so every package resolves from the suite alone.
        fs::write(root_path.join("state/status"), "")?;
        Ok(PrivateApt { root, arch })
    }

    /// Updated lists for these suites, verified with the system keyring or,
    /// when that lacks the suite's signing key, with a newer Debian keyring.
    pub(crate) fn verified(suite_names: &[&str], arch: Arch) -> Result<PrivateApt> {
        let apt = PrivateApt::new(suite_names, Path::new(SYSTEM_KEYRING), arch)?;
        if apt.update()? {
            return Ok(apt);
        }
        eprintln!(
            "{SYSTEM_KEYRING} lacks the key that signs {}: retrying with debian-archive-keyring from {KEYRING_SUITE}",
            suite_names[0]
        );
        let keyring = newer_keyring()?;
        let apt = PrivateApt::new(suite_names, &keyring, arch)?;
        if !apt.update()? {
            bail!(
                "no Debian keyring here (nor debian-archive-keyring from {KEYRING_SUITE}) has the key that signs {}",
                suite_names[0]
            );
        }
        Ok(apt)
    }

    pub(crate) fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let path = |p: &str| self.root.path().join(p).display().to_string();
        for option in [
            format!("Dir::Etc::SourceList={}", path("etc/sources.list")),
            format!("Dir::Etc::SourceParts={}", path("etc/sources.list.d")),
            format!("Dir::Etc::Preferences={}", path("etc/preferences")),
            format!("Dir::Etc::PreferencesParts={}", path("etc/preferences.d")),
            format!("Dir::State={}", path("state")),
            format!("Dir::State::status={}", path("state/status")),
            format!("Dir::Cache={}", path("cache")),
            format!("APT::Architecture={}", self.arch.debian()),
            format!("APT::Architectures={}", self.arch.debian()),
            "Acquire::Languages=none".into(),
        ] {
            command.arg("-o").arg(option);
        }
        command
    }

    /// `apt-get update`; false when a suite is signed by a key the keyring lacks.
    fn update(&self) -> Result<bool> {
        let (status, stderr) = cmd::run_tee_stderr(self.command("apt-get").args(["update", "-q"]))?;
        if status.success() {
            Ok(true)
        } else if stderr.contains("NO_PUBKEY") {
            Ok(false)
        } else {
            bail!(
                "apt-get update failed ({status}) for the sources in {}",
                self.root.path().display()
            )
        }
    }

    /// Name, version and download size of each package's candidate version.
    pub(crate) fn show(&self, names: &[&str]) -> Result<Vec<Package>> {
        let text = cmd::output(
            self.command("apt-cache")
                .args(["show", "--no-all-versions"])
                .args(names),
        )?;
        let packages = parse_packages(&text);
        if packages.len() != names.len() {
            bail!(
                "apt-cache show {} found {} packages",
                names.join(" "),
                packages.len()
            );
        }
        Ok(packages)
    }

    /// Download the packages into this apt's directory and `dpkg -x` them all
    /// into one tree, which lives as long as this apt (or until the caller
    /// removes it).
    pub(crate) fn download_and_unpack(&self, names: &[&str]) -> Result<PathBuf> {
        let unpacked = self.root.path().join("unpacked");
        if unpacked.exists() {
            fs::remove_dir_all(&unpacked)?;
        }
        fs::create_dir(&unpacked)?;
        self.unpack_into(names, &unpacked)?;
        Ok(unpacked)
    }

    /// Download the packages and `dpkg -x` them all into `dir`, which exists;
    /// for a tree that outlives this apt (on another file system than its
    /// temporary directory, perhaps).
    pub(crate) fn unpack_into(&self, names: &[&str], dir: &Path) -> Result<()> {
        let debs = self.root.download_dir("debs")?;
        cmd::run(
            self.command("apt-get")
                .current_dir(&debs)
                .arg("download")
                .args(names),
        )?;
        for deb in fs::read_dir(&debs)? {
            cmd::run(Command::new("dpkg").arg("-x").arg(deb?.path()).arg(dir))?;
        }
        fs::remove_dir_all(&debs)?;
        Ok(())
    }
}

/// debian-archive-keyring's keyring from [`KEYRING_SUITE`], itself verified
/// with the system keyring; cached in target/vm/apt/.
fn newer_keyring() -> Result<PathBuf> {
    let cached = workspace::vm_dir().join("apt/debian-archive-keyring.gpg");
    if cached.is_file() {
        return Ok(cached);
    }
    let apt = PrivateApt::new(&[KEYRING_SUITE], Path::new(SYSTEM_KEYRING), Arch::X86_64)?;
    if !apt.update()? {
        bail!("{SYSTEM_KEYRING} cannot verify Debian {KEYRING_SUITE} either: update debian-archive-keyring on this machine");
    }
    let unpacked = apt.download_and_unpack(&["debian-archive-keyring"])?;
    fs::copy(
        unpacked.join("usr/share/keyrings/debian-archive-keyring.gpg"),
        &cached,
    )
    .context("debian-archive-keyring has no usr/share/keyrings/debian-archive-keyring.gpg")?;
    fs::remove_dir_all(&unpacked)?;
    Ok(cached)
}

/// The `Depends:` lines of `apt-cache depends` (alternatives included).
pub(crate) fn depends(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            line.trim()
                .trim_start_matches('|')
                .strip_prefix("Depends: ")
        })
        .map(str::to_string)
        .collect()
}

fn parse_packages(text: &str) -> Vec<Package> {
    text.split("\n\n")
        .filter_map(|paragraph| {
            let field = |name: &str| {
                paragraph
                    .lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                    .map(str::trim)
            };
            Some(Package {
                name: field("Package")?.to_string(),
                version: field("Version")?.to_string(),
                size: field("Size")?.parse().ok()?,
            })
        })
        .collect()
}

struct Mirrors {
    main: String,
    security: String,
}

/// The Debian mirror this machine's apt uses, so the private config names no host of its own.
fn system_mirrors() -> Result<Mirrors> {
    let mut text = String::new();
    for file in [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ] {
        text.push_str(&fs::read_to_string(file).unwrap_or_default());
        text.push('\n');
    }
    parse_mirrors(&text).context(
        "no Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list",
    )
}

/// The `.../debian` and `.../debian-security` URIs of deb822 `URIs:` lines or one-line `deb` entries.
fn parse_mirrors(text: &str) -> Option<Mirrors> {
    let uris: Vec<&str> = text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some(uris) = line.strip_prefix("URIs:") {
                return uris.split_whitespace().next();
            }
            let rest = line.strip_prefix("deb ")?.trim_start();
            let rest = match rest.strip_prefix('[') {
                Some(options) => options.split_once(']')?.1,
                None => rest,
            };
            rest.split_whitespace().next()
        })
        .map(|uri| uri.trim_end_matches('/'))
        .collect();
    let main = *uris.iter().find(|u| u.ends_with("/debian"))?;
    let security = uris
        .iter()
        .find(|u| u.ends_with("/debian-security"))
        .map(|u| u.to_string())
        .unwrap_or_else(|| format!("{main}-security"));
    Some(Mirrors {
        main: main.to_string(),
        security,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_from_deb822_and_one_line_sources() {
        let deb822 = "Types: deb\n# http://old.example/debian\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security/\nSuites: bookworm-security\n";
        let mirrors = parse_mirrors(deb822).unwrap();
        assert_eq!(mirrors.main, "http://mirror.example/debian");
        assert_eq!(mirrors.security, "http://mirror.example/debian-security");
        let legacy = "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n";
        let mirrors = parse_mirrors(legacy).unwrap();
        assert_eq!(mirrors.main, "http://m.example/debian");
        assert_eq!(mirrors.security, "http://m.example/debian-security");
        assert!(parse_mirrors("deb https://packages.example/apt cloud main\n").is_none());
        assert!(parse_mirrors("# deb http://m.example/debian bookworm main\n").is_none());
    }

    #[test]
    fn apt_cache_output_is_parsed() {
        let text = "linux-image-amd64\n  Depends: linux-image-7.2.13+deb14-amd64\n  |Depends: a\n  Recommends: b\n";
        assert_eq!(depends(text), ["linux-image-7.2.13+deb14-amd64", "a"]);
        let show =
            "Package: linux-binary-7.2.13+deb14-amd64\nSource: linux-signed-amd64 (7.2.13+1)\n\
                    Version: 7.2.13-1\nSize: 15234567\nDescription: x\n\n\
                    Package: linux-base-7.2.13+deb14-amd64\nVersion: 7.2.13-1\nSize: 1000\n\n";
        let packages = parse_packages(show);
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "linux-binary-7.2.13+deb14-amd64");
        assert_eq!(packages[0].version, "7.2.13-1");
        assert_eq!(packages[0].size, 15_234_567);
        assert_eq!(packages[1].size, 1000);
    }
}
