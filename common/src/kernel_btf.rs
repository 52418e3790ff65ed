//! A fast way in to the kernel's BTF, for the lesson's start-up.
//!
//! /sys/kernel/btf/vmlinux hands out at most 4 KiB per read(2): its ~5 MB take
//! about 1,200 system calls, which under QEMU's emulation cost 115 ms, and a
//! lesson paid that twice (finding its function, then inside libbpf): most of
//! its start-up. bpf(2) copies the same bytes in one call, and libbpf maps the
//! file instead of reading it whenever the file allows mmap (sysfs does not
//! before Linux 6.16). So while the lesson resolves its function and loads its
//! programs, it runs in a mount namespace of its own in which a tmpfs over
//! /sys/kernel/btf holds a copy. Nothing changes outside this process, and it
//! goes back to the original namespace before anything else runs.

use std::fs::{self, File};
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
    /// sysfs as before, only slower. Needs root, like the lesson itself.
    pub fn install() -> Result<KernelBtfCopy, String> {
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
        // Read before the tmpfs hides the real file.
        let blob = vmlinux_btf_in_one_call()
            .or_else(|| fs::read(VMLINUX).ok())
            .ok_or("no kernel BTF to copy")?;
        // Private first, so the tmpfs cannot propagate back to the real /sys.
        mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE)?;
        mount(
            Some("tmpfs"),
            BTF_DIR,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        )?;
        fs::write(VMLINUX, &blob).map_err(|e| format!("writing the copy: {e}"))?;
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

/// The vmlinux BTF object's bytes through bpf(2), in one copy. None on kernels
/// before 5.11 (vmlinux BTF has no id there) and without CAP_SYS_ADMIN.
fn vmlinux_btf_in_one_call() -> Option<Vec<u8>> {
    let mut id = 0;
    // SAFETY: the bpf_btf_info structs point at buffers that outlive each call,
    // with their true lengths.
    unsafe {
        while bpf_btf_get_next_id(id, &mut id) == 0 {
            let fd = bpf_btf_get_fd_by_id(id);
            if fd < 0 {
                return None;
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
            if info.kernel_btf == 0 || !name.starts_with(b"vmlinux\0") {
                continue;
            }
            let mut blob = vec![0u8; info.btf_size as usize];
            let mut info: bpf_btf_info = mem::zeroed();
            info.btf = blob.as_mut_ptr() as u64;
            info.btf_size = blob.len() as u32;
            let mut len = mem::size_of::<bpf_btf_info>() as u32;
            if bpf_btf_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) != 0 {
                return None;
            }
            return Some(blob);
        }
    }
    None
}
