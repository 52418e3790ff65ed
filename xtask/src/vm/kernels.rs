//! Kernels to boot: Debian's by name, fetched once with `apt-get download`
//! through a private apt configuration (the system's sources are never
//! touched) and cached under target/vm/kernels/NAME/{vmlinuz,config,release}
//! (arm64 ones under target/vm/kernels/arm64-NAME/); or a kernel image the
//! user already has.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::apt::{depends, Package, PrivateApt};
use super::modules::{keep_console_modules, modules_in};
use super::Arch;
use crate::{cmd, workspace};

/// The kernels the lessons are tested on, oldest first.
pub const MATRIX: [&str; 4] = ["debian-5.10", "debian-6.1", "debian-6.12", "debian-7.2"];
pub const DEFAULT: &str = "debian-6.12";

/// A matrix name's Linux major.minor and the Debian suites that carry it.
fn suites(name: &str, arch: Arch) -> Option<(&'static str, &'static [&'static str])> {
    Some(match name {
        // bullseye-security's newest arm64 kernel (5.10.0-46) is listed but
        // 404s on the mirror; bullseye's own (5.10.0-32) downloads.
        "debian-5.10" if arch == Arch::Arm64 => ("5.10", &["bullseye"]),
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
    pub fn resolve(&self, arch: Arch) -> Result<Kernel> {
        let path = match self {
            KernelSpec::Debian(name) => return fetch_for(arch, name),
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
            release: release_of_file(&image, arch)?,
            image,
            config,
            modules: modules_in(&dir)?,
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
    /// Modules the guest loads, in this order, before running the command:
    /// arm64's virtio console, where the kernel has it as a module (Debian's
    /// arm64 5.10 and 6.1). Kept in `dir/modules/`.
    pub modules: Vec<PathBuf>,
}

/// The cache directory of an x86_64 matrix kernel (it may not be fetched yet).
pub fn cache_dir(name: &str) -> PathBuf {
    cache_dir_for(Arch::X86_64, name)
}

pub fn cache_dir_for(arch: Arch, name: &str) -> PathBuf {
    workspace::vm_dir()
        .join("kernels")
        .join(format!("{}{name}", arch.cache_prefix()))
}

/// An x86_64 matrix kernel, as [`fetch_for`].
pub fn fetch(name: &str) -> Result<Kernel> {
    fetch_for(Arch::X86_64, name)
}

/// A matrix kernel from the cache (no network), downloading it first if needed.
pub fn fetch_for(arch: Arch, name: &str) -> Result<Kernel> {
    let (version, suite_names) = suites(name, arch)
        .with_context(|| format!("unknown kernel {name:?}: use one of {}", MATRIX.join(", ")))?;
    let dir = cache_dir_for(arch, name);
    if let Some(kernel) = cached(name, &dir, arch)? {
        return Ok(kernel);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = workspace::lock_dir(&dir)?;
    if let Some(kernel) = cached(name, &dir, arch)? {
        return Ok(kernel);
    }
    download(name, version, suite_names, &dir, arch)?;
    cached(name, &dir, arch)?
        .with_context(|| format!("{name} is not in {} after fetching", dir.display()))
}

fn cached(name: &str, dir: &Path, arch: Arch) -> Result<Option<Kernel>> {
    let image = dir.join("vmlinuz");
    if !image.is_file() {
        return Ok(None);
    }
    let release_file = dir.join("release");
    let release = match fs::read_to_string(&release_file) {
        Ok(release) => release.trim().to_string(),
        // A cache from before the release was recorded.
        Err(_) => {
            let release = release_of_file(&image, arch)?;
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
        modules: modules_in(dir)?,
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

fn download(name: &str, version: &str, suite_names: &[&str], dir: &Path, arch: Arch) -> Result<()> {
    let started = Instant::now();
    eprintln!(
        "fetching {name}: Debian's {} Linux {version} kernel from {}",
        arch.debian(),
        suite_names.join(" + ")
    );
    let apt = PrivateApt::verified(suite_names, arch)?;
    let (release, packages) = kernel_packages(&apt, version, arch)?;
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
    let in_header = release_of_file(&image, arch)?;
    if in_header != release {
        bail!(
            "{} says it is Linux {in_header}, not {release}",
            image.display()
        );
    }

    if arch == Arch::Arm64 {
        keep_console_modules(&unpacked, &release, &config, dir)?;
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

/// The newest `linux-image-ARCH`'s kernel package and, from Debian's 7.x
/// kernels on (where linux-image-R is a metapackage), the packages with
/// the image (linux-binary-R) and the config (linux-base-R).
/// Returns the kernel release too: R of linux-image-R, in every Debian suite.
fn kernel_packages(apt: &PrivateApt, version: &str, arch: Arch) -> Result<(String, Vec<Package>)> {
    let meta_name = format!("linux-image-{}", arch.debian());
    let meta = &apt.show(&[&meta_name])?[0];
    let image = depends(&cmd::output(
        apt.command("apt-cache").args(["depends", &meta_name]),
    )?)
    .into_iter()
    .find(|dep| dep.starts_with("linux-image-"))
    .with_context(|| format!("{meta_name} depends on no linux-image package"))?;
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
            apt.command("apt-cache").args(["depends", &image]),
        )?)
        .into_iter()
        .filter(|dep| parts.contains(dep)),
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok((release, apt.show(&names)?))
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

fn release_of_file(image: &Path, arch: Arch) -> Result<String> {
    if arch == Arch::Arm64 {
        return arm64_release_of_file(image);
    }
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

/// The release in an arm64 `Image`: it has no version field in its header,
/// so it is read from the banner ("Linux version R (builder) ...") in the
/// uncompressed kernel, which Debian's arm64 vmlinuz files are.
fn arm64_release_of_file(image: &Path) -> Result<String> {
    const MAX_IMAGE: u64 = 256 << 20;
    let mut data = Vec::new();
    File::open(image)
        .and_then(|f| f.take(MAX_IMAGE).read_to_end(&mut data))
        .with_context(|| format!("reading {}", image.display()))?;
    arm64_release_of(&data).with_context(|| {
        format!(
            "{} is not an uncompressed arm64 kernel Image with a \"Linux version\" banner",
            image.display()
        )
    })
}

fn arm64_release_of(image: &[u8]) -> Option<String> {
    // ARM64 Image header: "ARM\x64" magic at 56.
    if image.get(56..60)? != b"ARM\x64" {
        return None;
    }
    const BANNER: &[u8] = b"Linux version ";
    image
        .windows(BANNER.len())
        .enumerate()
        .find_map(|(at, window)| {
            if window != BANNER {
                return None;
            }
            let text = image.get(at + BANNER.len()..)?;
            let end = text.iter().take(100).position(|&b| b == b' ')?;
            let release = std::str::from_utf8(&text[..end]).ok()?;
            let plausible =
                release.starts_with(|c: char| c.is_ascii_digit()) && text[end..].starts_with(b" (");
            plausible.then(|| release.to_string())
        })
}

/// "6.12.117+deb13-amd64" and "6.12.117-1" are 6.12; "6.1.0-56-amd64" is 6.1, not 6.12.
fn same_minor(version: &str, minor: &str) -> bool {
    version
        .strip_prefix(minor)
        .is_some_and(|rest| rest.starts_with(['.', '-', '+']))
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
    fn matrix_names_map_to_suites_and_specs() {
        for name in MATRIX {
            let (minor, suites) = suites(name, Arch::X86_64).unwrap();
            assert_eq!(name, format!("debian-{minor}"));
            assert!(!suites.is_empty());
            assert_eq!(KernelSpec::from(name), KernelSpec::Debian(name));
        }
        assert_eq!(suites("debian-7.2", Arch::X86_64).unwrap().1, ["sid"]);
        assert_eq!(suites("debian-5.10", Arch::Arm64).unwrap().1, ["bullseye"]);
        assert_eq!(
            KernelSpec::from("debian-4.19"),
            KernelSpec::Path("debian-4.19".into())
        );
        let err = KernelSpec::from("debian-4.19")
            .resolve(Arch::X86_64)
            .unwrap_err();
        assert!(err.to_string().contains("debian-6.12"), "{err}");
    }

    #[test]
    fn arm64_release_is_read_from_the_banner() {
        let mut image = vec![0u8; 64];
        image[56..60].copy_from_slice(b"ARM\x64");
        image.extend_from_slice(b"xx Linux version %s\0Linux version 6.1.0-57-arm64 (debian-kernel@lists.debian.org) (gcc)");
        assert_eq!(arm64_release_of(&image).as_deref(), Some("6.1.0-57-arm64"));
        image[56] = b'X';
        assert_eq!(arm64_release_of(&image), None, "no arm64 Image magic");
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
