//! The workload: files created in a tmpfs directory outside the timed region,
//! then unlinked with libc::unlink as fast as one or more threads can.

use std::ffi::CString;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const TMPFS_MAGIC: libc::c_long = 0x0102_1994;

/// A fresh directory with a tmpfs mounted on it (when this process may mount).
pub struct Scratch {
    dir: PathBuf,
    mounted: bool,
    /// "tmpfs", or what the directory is on and why it is not tmpfs.
    pub filesystem: String,
}

impl Scratch {
    pub fn new() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("unlink-bench.{}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = c_path(&dir);
        let (source, fstype) = (c"tmpfs", c"tmpfs");
        // SAFETY: valid NUL-terminated strings; no mount data.
        let mounted = unsafe {
            libc::mount(
                source.as_ptr(),
                path.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        } == 0;
        let why_not = std::io::Error::last_os_error();
        // SAFETY: a zeroed statfs is a valid out-parameter.
        let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid path and out-parameter.
        let is_tmpfs = unsafe { libc::statfs(path.as_ptr(), &mut stat) } == 0
            && stat.f_type as libc::c_long == TMPFS_MAGIC;
        let filesystem = match (is_tmpfs, mounted) {
            (true, _) => "tmpfs".to_string(),
            (false, true) => "not tmpfs (statfs disagrees with the mount)".to_string(),
            (false, false) => format!("not tmpfs (mounting one failed: {why_not})"),
        };
        Ok(Scratch {
            dir,
            mounted,
            filesystem,
        })
    }

    /// A new empty subdirectory (one per worker: unlinks in one directory serialize on its lock).
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dir.join(name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.mounted {
            // SAFETY: a valid path we mounted on.
            unsafe { libc::umount2(c_path(&self.dir).as_ptr(), libc::MNT_DETACH) };
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("paths we build have no NUL")
}

/// Files that exist, waiting to be unlinked.
pub struct Batch {
    paths: Vec<CString>,
}

impl Batch {
    pub fn create(dir: &Path, count: usize) -> Result<Batch> {
        let paths = (0..count)
            .map(|i| {
                let path = dir.join(i.to_string());
                File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                Ok(c_path(&path))
            })
            .collect::<Result<_>>()?;
        Ok(Batch { paths })
    }

    /// Unlink every file; the only timed part.
    pub fn unlink_all(self) -> Result<Duration> {
        let start = Instant::now();
        for path in &self.paths {
            unlink(path)?;
        }
        Ok(start.elapsed())
    }

    /// Unlink every file at `per_second` on a fixed schedule: wait when ahead
    /// of it, never when behind. Short waits spin: a sleep that short oversleeps,
    /// and would cap the rate below what the thread can do.
    pub fn unlink_paced(self, per_second: f64) -> Result<Duration> {
        let start = Instant::now();
        for (i, path) in self.paths.iter().enumerate() {
            let due = start + Duration::from_secs_f64(i as f64 / per_second);
            while let Some(ahead) = due.checked_duration_since(Instant::now()) {
                if ahead > Duration::from_millis(1) {
                    std::thread::sleep(ahead - Duration::from_millis(1));
                } else {
                    std::hint::spin_loop();
                }
            }
            unlink(path)?;
        }
        Ok(start.elapsed())
    }
}

fn unlink(path: &CString) -> Result<()> {
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::unlink(path.as_ptr()) } != 0 {
        bail!("unlink {path:?}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Unlink `per_worker` files in each of `workers` threads at once, at full
/// speed or `paced` (unlinks per second, shared between the threads); the wall
/// time from their common start to the last one's end.
pub fn unlink_in_parallel(
    scratch: &Scratch,
    workers: usize,
    per_worker: usize,
    paced: Option<f64>,
) -> Result<Duration> {
    let batches = (0..workers)
        .map(|w| Batch::create(&scratch.subdir(&format!("worker-{w}"))?, per_worker))
        .collect::<Result<Vec<_>>>()?;
    let ready = Barrier::new(workers + 1);
    std::thread::scope(|scope| {
        let threads: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let ready = &ready;
                scope.spawn(move || {
                    ready.wait();
                    match paced {
                        Some(per_second) => batch.unlink_paced(per_second / workers as f64),
                        None => batch.unlink_all(),
                    }
                })
            })
            .collect();
        let start = Instant::now();
        ready.wait();
        for thread in threads {
            thread.join().expect("an unlink thread panicked")?;
        }
        Ok(start.elapsed())
    })
}
