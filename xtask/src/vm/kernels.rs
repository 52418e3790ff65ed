//! Debian kernels by name: fetched once with `apt-get download` through a
//! private apt configuration (the system's sources are never touched), then
//! cached under target/vm/kernels/NAME/{vmlinuz,config,release}.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cmd, workspace};

/// The kernels the lessons are tested on, oldest first.
pub const MATRIX: [&str; 4] = ["debian-5.10", "debian-6.1", "debian-6.12", "debian-7.2"];
pub const DEFAULT: &str = "debian-6.12";

/// A kernel name from the matrix and the Debian suites that carry it.
fn suites(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match name {
        "debian-5.10" => ("5.10", &["bullseye", "bullseye-security"]),
        "debian-6.1" => ("6.1", &["bookworm", "bookworm-security"]),
        "debian-6.12" => ("6.12", &["trixie", "trixie-security"]),
        "debian-7.2" => ("7.2", &["sid"]),
        _ => return None,
    })
}

/// A bootable kernel on disk.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub name: String,
    pub image: PathBuf,
    /// The kernel's build config, when known (Debian packages ship it).
    pub config: Option<PathBuf>,
}

/// The cache directory of a matrix kernel (it may not be fetched yet).
pub fn cache_dir(name: &str) -> PathBuf {
    workspace::target_dir().join("vm/kernels").join(name)
}

/// A matrix name (fetched if not cached), or a path to a kernel image or a directory holding `vmlinuz`.
pub fn resolve(spec: &str) -> Result<Kernel> {
    if suites(spec).is_some() {
        return fetch(spec);
    }
    let path = Path::new(spec);
    let image = if path.is_dir() {
        path.join("vmlinuz")
    } else {
        path.to_path_buf()
    };
    if !image.is_file() {
        bail!(
            "unknown kernel {spec:?}: use one of {} or a path to a kernel image",
            MATRIX.join(", ")
        );
    }
    let config = image
        .parent()
        .map(|dir| dir.join("config"))
        .filter(|c| c.is_file());
    Ok(Kernel {
        name: spec.to_string(),
        image,
        config,
    })
}

/// The cached kernel, downloading it first if needed.
pub fn fetch(name: &str) -> Result<Kernel> {
    let (version, suite_names) =
        suites(name).with_context(|| format!("unknown kernel {name:?}"))?;
    let dir = cache_dir(name);
    let kernel = Kernel {
        name: name.to_string(),
        image: dir.join("vmlinuz"),
        config: Some(dir.join("config")),
    };
    if kernel.image.is_file() {
        return Ok(kernel);
    }
    eprintln!(
        "fetching kernel {name} (Linux {version}) from Debian {}",
        suite_names[0]
    );
    let apt = PrivateApt::new(suite_names)?;
    apt.update()?;
    let packages = apt.kernel_packages(version)?;
    let download = apt.root.join("debs");
    fs::create_dir_all(&download)?;
    for package in &packages {
        apt.download(package, &download)?;
    }
    let unpacked = apt.root.join("unpacked");
    let _ = fs::remove_dir_all(&unpacked);
    for deb in fs::read_dir(&download)? {
        let deb = deb?.path();
        if packages.iter().any(|p| {
            deb.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(&format!("{p}_")))
        }) {
            cmd::run(Command::new("dpkg").arg("-x").arg(&deb).arg(&unpacked))?;
        }
    }
    let image = find_file(&unpacked, |path| {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        name == "vmlinuz" || name.starts_with("vmlinuz-")
    })
    .with_context(|| format!("no vmlinuz in {}", packages.join(", ")))?;
    let config = find_file(&unpacked, |path| {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        name.starts_with("config-")
            || (name == "config" && path.to_string_lossy().contains("/modules/"))
    })
    .with_context(|| format!("no kernel config in {}", packages.join(", ")))?;
    fs::create_dir_all(&dir)?;
    fs::copy(&image, dir.join("vmlinuz.partial"))?;
    fs::copy(&config, dir.join("config"))?;
    fs::write(dir.join("packages"), packages.join("\n") + "\n")?;
    fs::rename(dir.join("vmlinuz.partial"), &kernel.image)?;
    let _ = fs::remove_dir_all(&unpacked);
    eprintln!("cached {name} in {}", dir.display());
    Ok(kernel)
}

fn find_file(dir: &Path, wanted: impl Fn(&Path) -> bool + Copy) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() && !path.is_symlink() {
            if let Some(found) = find_file(&path, wanted) {
                return Some(found);
            }
        } else if path.is_file() && wanted(&path) {
            return Some(path);
        }
    }
    None
}

/// apt with its own sources, lists, cache and status under target/vm/apt/SUITE.
struct PrivateApt {
    root: PathBuf,
}

impl PrivateApt {
    fn new(suite_names: &[&str]) -> Result<PrivateApt> {
        let root = workspace::target_dir().join("vm/apt").join(suite_names[0]);
        for dir in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            fs::create_dir_all(root.join(dir))?;
        }
        let mirrors = system_mirrors()?;
        let mut sources = String::new();
        for suite in suite_names {
            let uri = if suite.ends_with("-security") {
                &mirrors.security
            } else {
                &mirrors.main
            };
            sources.push_str(&format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {uri} {suite} main\n"
            ));
        }
        fs::write(root.join("etc/sources.list"), sources)?;
        let status = root.join("state/status");
        if !status.exists() {
            fs::write(&status, "")?;
        }
        Ok(PrivateApt { root })
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let path = |p: &str| self.root.join(p).display().to_string();
        command.args([
            "-o".to_string(),
            format!("Dir::Etc::SourceList={}", path("etc/sources.list")),
            "-o".to_string(),
            format!("Dir::Etc::SourceParts={}", path("etc/sources.list.d")),
            "-o".to_string(),
            format!("Dir::Etc::Preferences={}", path("etc/preferences")),
            "-o".to_string(),
            format!("Dir::Etc::PreferencesParts={}", path("etc/preferences.d")),
            "-o".to_string(),
            format!("Dir::State={}", path("state")),
            "-o".to_string(),
            format!("Dir::State::status={}", path("state/status")),
            "-o".to_string(),
            format!("Dir::Cache={}", path("cache")),
            "-o".to_string(),
            "APT::Architecture=amd64".to_string(),
            "-o".to_string(),
            "APT::Architectures=amd64".to_string(),
            "-o".to_string(),
            "Acquire::Languages=none".to_string(),
        ]);
        command
    }

    fn update(&self) -> Result<()> {
        cmd::run(self.command("apt-get").args(["update", "-q"]))
    }

    /// The packages holding the newest `linux-image-VERSION*-amd64` kernel and its config.
    fn kernel_packages(&self, version: &str) -> Result<Vec<String>> {
        let depends = cmd::output(
            self.command("apt-cache")
                .args(["depends", "linux-image-amd64"]),
        )?;
        let image = depends
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Depends: "))
            .find(|dep| dep.starts_with("linux-image-"))
            .context("linux-image-amd64 depends on no linux-image package")?
            .to_string();
        let release = image
            .trim_start_matches("linux-image-")
            .trim_end_matches("-amd64");
        if !(release.starts_with(&format!("{version}."))
            || release.starts_with(&format!("{version}-")))
        {
            bail!("Debian now ships {image}, not Linux {version}: update the matrix in xtask/src/vm/kernels.rs");
        }
        // From Debian's 7.x kernels on, linux-image-R is a metapackage over linux-binary-R and linux-base-R.
        let deps = cmd::output(self.command("apt-cache").args(["depends", &image]))?;
        let mut packages = vec![image.clone()];
        for dep in deps
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Depends: "))
        {
            if dep.starts_with("linux-binary-") || dep.starts_with(&format!("linux-base-{release}"))
            {
                packages.push(dep.to_string());
            }
        }
        Ok(packages)
    }

    fn download(&self, package: &str, into: &Path) -> Result<()> {
        cmd::run(
            self.command("apt-get")
                .current_dir(into)
                .args(["download", package]),
        )
    }
}

struct Mirrors {
    main: String,
    security: String,
}

/// The Debian mirror this machine's apt uses, so the private config needs no host name of its own.
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

fn parse_mirrors(text: &str) -> Option<Mirrors> {
    let uris: Vec<&str> = text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some(uris) = line.strip_prefix("URIs:") {
                return uris.split_whitespace().next();
            }
            let rest = line.strip_prefix("deb ")?;
            let rest = if rest.starts_with('[') {
                rest.split_once(']')?.1
            } else {
                rest
            };
            rest.split_whitespace().next()
        })
        .collect();
    let main = uris
        .iter()
        .find(|u| u.trim_end_matches('/').ends_with("/debian"))?
        .trim_end_matches('/');
    let security = uris
        .iter()
        .find(|u| u.trim_end_matches('/').ends_with("/debian-security"))
        .map(|u| u.trim_end_matches('/').to_string())
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
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        let mirrors = parse_mirrors(deb822).unwrap();
        assert_eq!(mirrors.main, "http://mirror.example/debian");
        assert_eq!(mirrors.security, "http://mirror.example/debian-security");
        let legacy = "deb [arch=amd64] http://m.example/debian/ bookworm main\n";
        let mirrors = parse_mirrors(legacy).unwrap();
        assert_eq!(mirrors.main, "http://m.example/debian");
        assert_eq!(mirrors.security, "http://m.example/debian-security");
        assert!(parse_mirrors("deb https://packages.example/apt cloud main\n").is_none());
    }

    #[test]
    fn matrix_names_map_to_suites() {
        for name in MATRIX {
            assert!(suites(name).is_some(), "{name}");
        }
        assert!(suites("debian-4.19").is_none());
        assert!(resolve("debian-4.19")
            .unwrap_err()
            .to_string()
            .contains("debian-6.12"));
    }
}
