//! The workload: files created in a tmpfs directory outside the timed region,
//! then unlinked with unlink(2) (rustix: no allocation per call) as fast as one or more threads can.

use std::ffi::{CStr, CString};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rustix::fs::statfs;
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

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
        let mounted = mount(c"tmpfs", &dir, c"tmpfs", MountFlags::empty(), None::<&CStr>);
        // TMPFS_MAGIC (linux/magic.h), in statfs's own word type.
        let is_tmpfs = statfs(&dir).is_ok_and(|stat| stat.f_type == 0x0102_1994);
        let filesystem = match (is_tmpfs, &mounted) {
            (true, _) => "tmpfs".to_string(),
            (false, Ok(())) => "not tmpfs (statfs disagrees with the mount)".to_string(),
            (false, Err(why_not)) => format!(
                "not tmpfs (mounting one failed: {})",
                std::io::Error::from(*why_not)
            ),
        };
        Ok(Scratch {
            dir,
            mounted: mounted.is_ok(),
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
            let _ = unmount(&self.dir, UnmountFlags::DETACH);
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

fn unlink(path: &CStr) -> Result<()> {
    rustix::fs::unlink(path)
        .map_err(|err| anyhow!("unlink {path:?}: {}", std::io::Error::from(err)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_mounts_unlinks_and_cleans_up() {
        let scratch = Scratch::new().unwrap();
        let dir = scratch.dir.clone();
        let mounted = || {
            let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
            mounts.contains(&format!(" {} ", dir.display()))
        };
        // Root mounts a tmpfs; otherwise the report says why not.
        assert_eq!(scratch.mounted, mounted());
        match scratch.mounted {
            true => assert_eq!(scratch.filesystem, "tmpfs"),
            false => assert!(
                scratch
                    .filesystem
                    .starts_with("not tmpfs (mounting one failed: "),
                "{}",
                scratch.filesystem
            ),
        }
        let files = scratch.subdir("0").unwrap();
        Batch::create(&files, 3).unwrap().unlink_all().unwrap();
        assert_eq!(fs::read_dir(&files).unwrap().count(), 0);
        let missing = unlink(c"/nonexistent/unlink-bench").unwrap_err();
        assert!(missing.to_string().contains("os error 2"), "{missing}");
        drop(scratch);
        assert!(!mounted() && !dir.exists());
    }
}
