//! A fast way in to the kernel's BTF, for the lesson's start-up.
//!
//! /sys/kernel/btf/vmlinux hands out at most 4 KiB per read(2): its ~5 MB take
//! about 1,200 system calls, and a lesson paid that twice (finding its
//! function, then inside libbpf): about a quarter of its start-up under QEMU's
//! emulation, where system calls are dear. bpf(2) copies the same bytes in one call, and libbpf maps the
//! file instead of reading it whenever the file allows mmap (sysfs does not
//! before Linux 6.16). So while the lesson resolves its function and loads its
//! programs, it runs in a mount namespace of its own in which a tmpfs over
//! /sys/kernel/btf holds a copy. Nothing changes outside this process, and it
//! goes back to the original namespace before anything else runs.

use std::fs::File;
use std::io::Read;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use libbpf_rs::libbpf_sys::{
    bpf_btf_get_fd_by_id, bpf_btf_get_info_by_fd, bpf_btf_get_next_id, bpf_btf_info,
};

const BTF_DIR: &str = "/sys/kernel/btf";
const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// While this lives, /sys/kernel/btf/vmlinux is a tmpfs copy, for this process only.
pub struct KernelBtfCopy {
    original_namespace: OwnedFd,
    original_root: File,
    original_cwd: File,
}

impl KernelBtfCopy {
    /// Set up the copy, or say in one line why not: the lesson then reads
    /// sysfs as before. Needs root, like the lesson itself.
    pub fn install() -> Result<KernelBtfCopy, String> {
        if sysfs_maps_btf() {
            return Err("not needed: this kernel lets libbpf map the file".into());
        }
        let original_namespace: OwnedFd = File::open("/proc/self/ns/mnt")
            .map_err(|e| format!("/proc/self/ns/mnt: {e}"))?
            .into();
        // Going back to a mount namespace also resets our root and current directories.
        let original_root = File::open("/").map_err(|e| format!("the root directory: {e}"))?;
        let original_cwd = File::open(".").map_err(|e| format!("the current directory: {e}"))?;
        // SAFETY: plain system calls; the lesson has no other threads yet (unshare
        // of the mount namespace requires that).
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            return Err(format!("unshare: {}", std::io::Error::last_os_error()));
        }
        // From here on, dropping `copy` returns to the original namespace.
        let copy = KernelBtfCopy {
            original_namespace,
            original_root,
            original_cwd,
        };
        // Find the source before the tmpfs hides the real file.
        let source = BtfSource::find().ok_or("no kernel BTF to copy")?;
        // Private first, so the tmpfs cannot propagate back to the real /sys.
        mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE)?;
        mount(
            Some("tmpfs"),
            BTF_DIR,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        )?;
        // The kernel (or read(2)) writes straight into the tmpfs pages: one copy.
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(VMLINUX)
            .and_then(|file| file.set_len(source.size as u64).map(|()| file))
            .map_err(|e| format!("creating the copy: {e}"))?;
        let mut map =
            Mapping::new(&file, source.size, true).map_err(|e| format!("mapping the copy: {e}"))?;
        source
            .copy_into(map.bytes_mut())
            .map_err(|e| format!("copying the kernel's BTF: {e}"))?;
        Ok(copy)
    }
}

impl Drop for KernelBtfCopy {
    fn drop(&mut self) {
        // SAFETY: fds we own; failure leaves us in the private namespace, whose
        // only difference is the identical copy of the BTF.
        unsafe {
            libc::setns(self.original_namespace.as_raw_fd(), libc::CLONE_NEWNS);
            // chroot(".") from the old root keeps a chroot'ed lesson inside it.
            libc::fchdir(self.original_root.as_raw_fd());
            libc::chroot(c".".as_ptr());
            libc::fchdir(self.original_cwd.as_raw_fd());
        }
    }
}

fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> Result<(), String> {
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in a constant");
    let (source, target, fstype) = (source.map(c), c(target), fstype.map(c));
    let ptr = |s: &Option<std::ffi::CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: NUL-terminated strings that outlive the call.
    let status = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            std::ptr::null(),
        )
    };
    match status {
        0 => Ok(()),
        _ => Err(format!(
            "mount {}: {}",
            Path::new(target.to_str().unwrap_or("?")).display(),
            std::io::Error::last_os_error()
        )),
    }
}

/// Linux 6.16+ maps /sys/kernel/btf/vmlinux: libbpf and the function lookup
/// then read the kernel's own pages, and a copy would only cost time.
fn sysfs_maps_btf() -> bool {
    Mapping::of_file(Path::new(VMLINUX)).is_ok()
}

/// Where the copy comes from: the vmlinux BTF object through bpf(2), one copy
/// in one call; or, on kernels before 5.11 (vmlinux BTF has no id there), the
/// sysfs file, 4 KiB per read. `size` is the BTF's length in bytes.
struct BtfSource {
    from: CopyFrom,
    size: usize,
}

enum CopyFrom {
    Object(OwnedFd),
    File(File),
}

impl BtfSource {
    fn find() -> Option<BtfSource> {
        if let Some((object, size)) = vmlinux_btf_object() {
            return Some(BtfSource {
                from: CopyFrom::Object(object),
                size,
            });
        }
        let file = File::open(VMLINUX).ok()?;
        let size = file.metadata().ok()?.len() as usize;
        Some(BtfSource {
            from: CopyFrom::File(file),
            size,
        })
    }

    fn copy_into(&self, buffer: &mut [u8]) -> std::io::Result<()> {
        match &self.from {
            CopyFrom::Object(object) => {
                // SAFETY: info points at `buffer`, with its true length.
                let mut info: bpf_btf_info = unsafe { mem::zeroed() };
                info.btf = buffer.as_mut_ptr() as u64;
                info.btf_size = buffer.len() as u32;
                let mut len = mem::size_of::<bpf_btf_info>() as u32;
                if unsafe { bpf_btf_get_info_by_fd(object.as_raw_fd(), &mut info, &mut len) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            }
            CopyFrom::File(file) => (&*file).read_exact(buffer),
        }
    }
}

/// The vmlinux BTF object and its size. None before 5.11 and without CAP_SYS_ADMIN.
fn vmlinux_btf_object() -> Option<(OwnedFd, usize)> {
    let mut id = 0;
    // SAFETY: each bpf_btf_info points at a buffer that outlives the call, with
    // its true length.
    unsafe {
        while bpf_btf_get_next_id(id, &mut id) == 0 {
            let fd = bpf_btf_get_fd_by_id(id);
            if fd < 0 {
                continue; // freed since GET_NEXT_ID, or not ours to open
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let mut name = [0u8; 16];
            let mut info: bpf_btf_info = mem::zeroed();
            info.name = name.as_mut_ptr() as u64;
            info.name_len = name.len() as u32;
            let mut len = mem::size_of::<bpf_btf_info>() as u32;
            if bpf_btf_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) != 0 {
                return None;
            }
            if info.kernel_btf != 0 && name.starts_with(b"vmlinux\0") {
                return Some((fd, info.btf_size as usize));
            }
        }
    }
    None
}

/// A file mapped into memory: what the lessons read BTF through, so the bytes
/// are not copied again (tmpfs allows it; sysfs only since Linux 6.16).
pub struct Mapping {
    address: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    /// The whole file at `path`, read-only.
    pub fn of_file(path: &Path) -> std::io::Result<Mapping> {
        let file = File::open(path)?;
        let len = file.metadata()?.len() as usize;
        Mapping::new(&file, len, false)
    }

    fn new(file: &File, len: usize, writable: bool) -> std::io::Result<Mapping> {
        // Written through to the file, or only read (sysfs maps only so).
        let (protection, flags) = match writable {
            true => (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED),
            false => (libc::PROT_READ, libc::MAP_PRIVATE),
        };
        // SAFETY: a fresh mapping of an open file; unmapped on drop.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                protection,
                flags,
                file.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { address, len })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` mapped bytes, alive as long as self.
        unsafe { std::slice::from_raw_parts(self.address as *const u8, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as bytes(), mapped writable by `new(.., true)`.
        unsafe { std::slice::from_raw_parts_mut(self.address as *mut u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new().
        unsafe { libc::munmap(self.address, self.len) };
    }
}
