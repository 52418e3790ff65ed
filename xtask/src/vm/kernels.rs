//! Kernels to boot: Debian's by name, fetched once with `apt-get download`
//! through a private apt configuration (the system's sources are never
//! touched) and cached under target/vm/kernels/NAME/{vmlinuz,config,release};
//! or a kernel image the user already has.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::apt_root::AptRoot;
use crate::{cmd, workspace};

/// The kernels the lessons are tested on, oldest first.
pub const MATRIX: [&str; 4] = ["debian-5.10", "debian-6.1", "debian-6.12", "debian-7.2"];
pub const DEFAULT: &str = "debian-6.12";

/// A matrix name's Linux major.minor and the Debian suites that carry it.
fn suites(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match name {
        "debian-5.10" => ("5.10", &["bullseye", "bullseye-security"]),
        "debian-6.1" => ("6.1", &["bookworm", "bookworm-security"]),
        "debian-6.12" => ("6.12", &["trixie", "trixie-security"]),
        "debian-7.2" => ("7.2", &["sid"]),
        _ => return None,
    })
}

/// Which kernel to boot: `"debian-6.12"` or a path, via `From<&str>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// A name from [`MATRIX`].
    Debian(&'static str),
    /// A bzImage (vmlinuz) file, or a directory holding `vmlinuz` and maybe `config`.
    Path(PathBuf),
}

impl From<&str> for KernelSpec {
    fn from(spec: &str) -> KernelSpec {
        match MATRIX.iter().find(|name| **name == spec) {
            Some(name) => KernelSpec::Debian(name),
            None => KernelSpec::Path(spec.into()),
        }
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelSpec::Debian(name) => f.write_str(name),
            KernelSpec::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

impl KernelSpec {
    /// The kernel on disk, downloaded first if it is a Debian kernel not cached yet.
    pub fn resolve(&self) -> Result<Kernel> {
        let path = match self {
            KernelSpec::Debian(name) => return fetch(name),
            KernelSpec::Path(path) => path,
        };
        let image = if path.is_dir() {
            path.join("vmlinuz")
        } else {
            path.clone()
        };
        if !image.is_file() {
            bail!(
                "unknown kernel {:?}: use one of {} or a path to a kernel image",
                path.display(),
                MATRIX.join(", ")
            );
        }
        let dir = image.parent().unwrap_or(Path::new("/")).to_path_buf();
        let config = Some(dir.join("config")).filter(|c| c.is_file());
        Ok(Kernel {
            name: self.to_string(),
            release: release_of_file(&image)?,
            image,
            config,
            dir,
        })
    }
}

/// A bootable kernel on disk.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The matrix name, or the path the user gave.
    pub name: String,
    /// target/vm/kernels/NAME for Debian kernels, else the directory of `image`.
    pub dir: PathBuf,
    /// What QEMU boots: `dir/vmlinuz`, or the `dir/vmlinux` extracted from it.
    pub image: PathBuf,
    /// The kernel's build configuration (`/boot/config-*`); Debian kernels always have one.
    pub config: Option<PathBuf>,
    /// What `uname -r` says in the guest, read from the image's boot header.
    pub release: String,
}

/// The cache directory of a matrix kernel (it may not be fetched yet).
pub fn cache_dir(name: &str) -> PathBuf {
    workspace::vm_dir().join("kernels").join(name)
}

/// A matrix kernel from the cache (no network), downloading it first if needed.
pub fn fetch(name: &str) -> Result<Kernel> {
    let (version, suite_names) = suites(name)
        .with_context(|| format!("unknown kernel {name:?}: use one of {}", MATRIX.join(", ")))?;
    let dir = cache_dir(name);
    if let Some(kernel) = cached(name, &dir)? {
        return Ok(kernel);
    }
    // Parallel tests may ask for the same kernel: one downloads, the others wait.
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock = File::create(dir.join(".lock"))?;
    // SAFETY: flock on an open descriptor; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("locking {}", dir.display());
    }
    if let Some(kernel) = cached(name, &dir)? {
        return Ok(kernel);
    }
    download(name, version, suite_names, &dir)?;
    cached(name, &dir)?
        .with_context(|| format!("{name} is not in {} after fetching", dir.display()))
}

fn cached(name: &str, dir: &Path) -> Result<Option<Kernel>> {
    let image = dir.join("vmlinuz");
    if !image.is_file() {
        return Ok(None);
    }
    let release_file = dir.join("release");
    let release = match fs::read_to_string(&release_file) {
        Ok(release) => release.trim().to_string(),
        // A cache from before the release was recorded.
        Err(_) => {
            let release = release_of_file(&image)?;
            fs::write(&release_file, format!("{release}\n"))?;
            release
        }
    };
    Ok(Some(Kernel {
        name: name.to_string(),
        image: bootable(dir, &image)?,
        config: Some(dir.join("config")).filter(|c| c.is_file()),
        dir: dir.to_path_buf(),
        release,
    }))
}

/// What QEMU boots: the vmlinux inside vmlinuz, through its PVH entry point,
/// when the kernel has one. Skipping the kernel's own decompression saves
/// about 2 s for XZ (Debian's 5.10 and 6.1) and 0.8 s for zstd (6.12, 7.2)
/// under TCG. Extracted once, next to vmlinuz.
fn bootable(dir: &Path, vmlinuz: &Path) -> Result<PathBuf> {
    let vmlinux = dir.join("vmlinux");
    if vmlinux.is_file() {
        return Ok(vmlinux);
    }
    let config = fs::read_to_string(dir.join("config")).unwrap_or_default();
    if !config.lines().any(|line| line == "CONFIG_PVH=y") {
        return Ok(vmlinuz.to_path_buf());
    }
    let image = fs::read(vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    let Some((compressed, tool, package)) = payload(&image).and_then(|p| {
        // The build appends the decompressed size (4 bytes), which the tools would reject.
        let compressed = p.get(..p.len().checked_sub(4)?)?;
        if compressed.starts_with(b"\xfd7zXZ\0") {
            Some((compressed, "xz", "xz-utils"))
        } else if compressed.starts_with(b"\x28\xb5\x2f\xfd") {
            Some((compressed, "zstd", "zstd"))
        } else {
            None
        }
    }) else {
        return Ok(vmlinuz.to_path_buf());
    };
    // Temp files created exclusively next to the result (parallel runs may
    // extract at the same time), removed if anything fails.
    let mut input = tempfile::NamedTempFile::new_in(dir)?;
    input.write_all(compressed)?;
    let output = tempfile::NamedTempFile::new_in(dir)?;
    let mut command = Command::new(tool);
    command
        .args(["--decompress", "--stdout"])
        .arg(input.path())
        .stdout(output.reopen()?);
    cmd::run(&mut command)
        .with_context(|| format!("decompressing the kernel: install {package}"))?;
    output
        .as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))?;
    output
        .persist(&vmlinux)
        .with_context(|| format!("writing {}", vmlinux.display()))?;
    Ok(vmlinux)
}

/// The compressed kernel in a bzImage (boot protocol 2.08+): `payload_offset`
/// and `payload_length` at 0x248, counted from the end of the setup sectors.
fn payload(image: &[u8]) -> Option<&[u8]> {
    let u32_at =
        |at: usize| Some(u32::from_le_bytes(image.get(at..at + 4)?.try_into().ok()?) as usize);
    if image.get(0x202..0x206)? != b"HdrS"
        || u16::from_le_bytes(image.get(0x206..0x208)?.try_into().ok()?) < 0x208
    {
        return None;
    }
    let setup_sectors = match *image.get(0x1f1)? {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sectors + 1) * 512 + u32_at(0x248)?;
    image.get(start..start + u32_at(0x24c)?)
}

fn download(name: &str, version: &str, suite_names: &[&str], dir: &Path) -> Result<()> {
    let started = Instant::now();
    eprintln!(
        "fetching {name}: Debian's Linux {version} kernel from {}",
        suite_names.join(" + ")
    );
    let apt = PrivateApt::verified(suite_names)?;
    let (release, packages) = apt.kernel_packages(version)?;
    let total: u64 = packages.iter().map(|p| p.size).sum();
    for package in &packages {
        eprintln!(
            "  {} {} ({})",
            package.name,
            package.version,
            megabytes(package.size)
        );
    }
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    let unpacked = apt.download_and_unpack(&names)?;

    let pick = |candidates: [String; 2]| {
        candidates
            .iter()
            .map(|c| unpacked.join(c))
            .find(|p| p.is_file())
    };
    // /boot up to Debian's 6.x kernels; /usr/lib/modules/R from 7.x on.
    let image = pick([
        format!("boot/vmlinuz-{release}"),
        format!("usr/lib/modules/{release}/vmlinuz"),
    ])
    .with_context(|| format!("no vmlinuz for {release} in {}", names.join(", ")))?;
    let config = pick([
        format!("boot/config-{release}"),
        format!("usr/lib/modules/{release}/config"),
    ])
    .with_context(|| format!("no kernel config for {release} in {}", names.join(", ")))?;
    let in_header = release_of_file(&image)?;
    if in_header != release {
        bail!(
            "{} says it is Linux {in_header}, not {release}",
            image.display()
        );
    }

    fs::copy(&config, dir.join("config"))?;
    fs::write(dir.join("release"), format!("{release}\n"))?;
    fs::write(dir.join("packages"), names.join("\n") + "\n")?;
    // vmlinuz last: its presence marks a complete cache entry.
    fs::copy(&image, dir.join("vmlinuz.partial"))?;
    fs::rename(dir.join("vmlinuz.partial"), dir.join("vmlinuz"))?;
    fs::remove_dir_all(&unpacked)?;
    eprintln!(
        "cached {name} (Linux {release}) in {}: {} downloaded in {:.0} s",
        dir.display(),
        megabytes(total),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn megabytes(bytes: u64) -> String {
    if bytes < 1_000_000 {
        format!("{} kB", bytes.div_ceil(1000))
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

/// The release (`uname -r`) in an x86 bzImage's boot header: the
/// `kernel_version` field at 0x20e points (from 0x200) at "RELEASE (builder) #1 ...".
fn release_of(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let pointer = u16::from_le_bytes(image.get(0x20e..0x210)?.try_into().ok()?);
    if pointer == 0 {
        return None;
    }
    let text = image.get(pointer as usize + 0x200..)?;
    let end = text.iter().position(|&b| b == 0 || b == b' ')?;
    let release = std::str::from_utf8(&text[..end]).ok()?;
    (!release.is_empty()).then(|| release.to_string())
}

fn release_of_file(image: &Path) -> Result<String> {
    // The setup code, which holds the version string, is at most 64 sectors.
    let mut head = Vec::with_capacity(64 * 512);
    File::open(image)
        .and_then(|f| f.take(64 * 512).read_to_end(&mut head))
        .with_context(|| format!("reading {}", image.display()))?;
    release_of(&head).with_context(|| {
        format!(
            "{} is not an x86 kernel image (bzImage) with a version string",
            image.display()
        )
    })
}

const SYSTEM_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// A suite the system keyring can verify, whose debian-archive-keyring is
/// newer than this machine's: the trust path to a key that signs a newer suite.
const KEYRING_SUITE: &str = "trixie";

/// apt with its own sources, lists, cache and status in a private directory
/// (removed when dropped) that downloads as `_apt`, not as root.
struct PrivateApt {
    root: AptRoot,
}

struct Package {
    name: String,
    version: String,
    size: u64,
}

impl PrivateApt {
    fn new(suite_names: &[&str], keyring: &Path) -> Result<PrivateApt> {
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
        Ok(PrivateApt { root })
    }

    /// Updated lists for these suites, verified with the system keyring or,
    /// when that lacks the suite's signing key, with a newer Debian keyring.
    fn verified(suite_names: &[&str]) -> Result<PrivateApt> {
        let apt = PrivateApt::new(suite_names, Path::new(SYSTEM_KEYRING))?;
        if apt.update()? {
            return Ok(apt);
        }
        eprintln!(
            "{SYSTEM_KEYRING} lacks the key that signs {}: retrying with debian-archive-keyring from {KEYRING_SUITE}",
            suite_names[0]
        );
        let keyring = newer_keyring()?;
        let apt = PrivateApt::new(suite_names, &keyring)?;
        if !apt.update()? {
            bail!(
                "no Debian keyring here (nor debian-archive-keyring from {KEYRING_SUITE}) has the key that signs {}",
                suite_names[0]
            );
        }
        Ok(apt)
    }

    fn command(&self, program: &str) -> Command {
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
            "APT::Architecture=amd64".into(),
            "APT::Architectures=amd64".into(),
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

    /// The newest `linux-image-amd64`'s kernel package and, from Debian's 7.x
    /// kernels on (where linux-image-R is a metapackage), the packages with
    /// the image (linux-binary-R) and the config (linux-base-R).
    /// Returns the kernel release too: R of linux-image-R, in every Debian suite.
    fn kernel_packages(&self, version: &str) -> Result<(String, Vec<Package>)> {
        let meta = &self.show(&["linux-image-amd64"])?[0];
        let image = depends(&cmd::output(
            self.command("apt-cache")
                .args(["depends", "linux-image-amd64"]),
        )?)
        .into_iter()
        .find(|dep| dep.starts_with("linux-image-"))
        .context("linux-image-amd64 depends on no linux-image package")?;
        let release = image.trim_start_matches("linux-image-").to_string();
        if !same_minor(&meta.version, version) || !same_minor(&release, version) {
            bail!(
                "Debian now ships Linux {} ({image}) there, not {version}: update the matrix in xtask/src/vm/kernels.rs",
                meta.version
            );
        }
        let mut names = vec![image.clone()];
        let parts = [
            format!("linux-binary-{release}"),
            format!("linux-base-{release}"),
        ];
        names.extend(
            depends(&cmd::output(
                self.command("apt-cache").args(["depends", &image]),
            )?)
            .into_iter()
            .filter(|dep| parts.contains(dep)),
        );
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok((release, self.show(&names)?))
    }

    /// Name, version and download size of each package's candidate version.
    fn show(&self, names: &[&str]) -> Result<Vec<Package>> {
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
    /// into one tree, which the caller removes when done.
    fn download_and_unpack(&self, names: &[&str]) -> Result<PathBuf> {
        let unpacked = self.root.path().join("unpacked");
        if unpacked.exists() {
            fs::remove_dir_all(&unpacked)?;
        }
        fs::create_dir(&unpacked)?;
        let debs = self.root.download_dir("debs")?;
        cmd::run(
            self.command("apt-get")
                .current_dir(&debs)
                .arg("download")
                .args(names),
        )?;
        for deb in fs::read_dir(&debs)? {
            cmd::run(
                Command::new("dpkg")
                    .arg("-x")
                    .arg(deb?.path())
                    .arg(&unpacked),
            )?;
        }
        fs::remove_dir_all(&debs)?;
        Ok(unpacked)
    }
}

/// debian-archive-keyring's keyring from [`KEYRING_SUITE`], itself verified
/// with the system keyring; cached in target/vm/apt/.
fn newer_keyring() -> Result<PathBuf> {
    let cached = workspace::vm_dir().join("apt/debian-archive-keyring.gpg");
    if cached.is_file() {
        return Ok(cached);
    }
    let apt = PrivateApt::new(&[KEYRING_SUITE], Path::new(SYSTEM_KEYRING))?;
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

/// "6.12.117+deb13-amd64" and "6.12.117-1" are 6.12; "6.1.0-56-amd64" is 6.1, not 6.12.
fn same_minor(version: &str, minor: &str) -> bool {
    version
        .strip_prefix(minor)
        .is_some_and(|rest| rest.starts_with(['.', '-', '+']))
}

/// The `Depends:` lines of `apt-cache depends` (alternatives included).
fn depends(text: &str) -> Vec<String> {
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

    /// Extraction writes only through exclusive temp files: afterwards the
    /// directory holds vmlinux (0644) and nothing else new.
    #[test]
    #[ignore = "needs the debian-6.12 kernel cache; run by `cargo xtask test`"]
    fn vmlinux_is_extracted_through_temp_files() {
        let cache = cache_dir(DEFAULT);
        let dir = tempfile::tempdir().unwrap();
        for file in ["vmlinuz", "config"] {
            fs::copy(cache.join(file), dir.path().join(file)).unwrap();
        }
        let vmlinux = bootable(dir.path(), &dir.path().join("vmlinuz")).unwrap();
        assert_eq!(vmlinux, dir.path().join("vmlinux"));
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["config", "vmlinux", "vmlinuz"]);
        let meta = fs::metadata(&vmlinux).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert!(meta.len() > 10_000_000);
    }

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
    fn matrix_names_map_to_suites_and_specs() {
        for name in MATRIX {
            let (minor, suites) = suites(name).unwrap();
            assert_eq!(name, format!("debian-{minor}"));
            assert!(!suites.is_empty());
            assert_eq!(KernelSpec::from(name), KernelSpec::Debian(name));
        }
        assert_eq!(suites("debian-7.2").unwrap().1, ["sid"]);
        assert_eq!(
            KernelSpec::from("debian-4.19"),
            KernelSpec::Path("debian-4.19".into())
        );
        let err = KernelSpec::from("debian-4.19").resolve().unwrap_err();
        assert!(err.to_string().contains("debian-6.12"), "{err}");
    }

    #[test]
    fn versions_match_on_major_minor_only() {
        assert!(same_minor("6.12.117+deb13-amd64", "6.12"));
        assert!(same_minor("6.12.117-1", "6.12"));
        assert!(same_minor("5.10.0-46-amd64", "5.10"));
        assert!(same_minor("7.2.13+deb14-amd64", "7.2"));
        assert!(!same_minor("6.1.0-56-amd64", "6.12"));
        assert!(!same_minor("6.12.117-1", "6.1"));
        assert!(!same_minor("7.20.1-1", "7.2"));
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

    #[test]
    fn release_is_read_from_the_boot_header() {
        let mut image = vec![0u8; 0x800];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20e..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let version = b"6.12.117+deb13-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        image[0x500..0x500 + version.len()].copy_from_slice(version);
        assert_eq!(release_of(&image).as_deref(), Some("6.12.117+deb13-amd64"));
        image[0x1f1] = 1; // setup sectors: the payload is counted from 2 * 512
        image[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        image[0x248..0x24c].copy_from_slice(&0x10u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&3u32.to_le_bytes());
        image[0x410..0x413].copy_from_slice(b"xyz");
        assert_eq!(payload(&image), Some(&b"xyz"[..]));
        image[0x24c..0x250].copy_from_slice(&0x1000u32.to_le_bytes());
        assert_eq!(payload(&image), None, "past the end");
        image[0x202] = b'X';
        assert_eq!(release_of(&image), None, "no boot header magic");
        assert_eq!(release_of(&image[..0x100]), None, "too short");
    }
}
