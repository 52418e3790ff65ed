/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A minimal CO-RE "vmlinux.h": only the kernel types the unlink lessons touch.
 *
 * The usual vmlinux.h is dumped from one kernel's BTF (`bpftool btf dump file
 * /sys/kernel/btf/vmlinux format c`): 3 MB per architecture, tied to the kernel
 * it came from. Because every struct below is marked preserve_access_index,
 * clang records *which field* a program reads, and libbpf rewrites the offset
 * at load time from the running kernel's BTF. So these few declarations are
 * enough, on any kernel with BTF, and a fresh clone builds without kernel
 * headers, bpftool or a BTF-enabled build machine.
 */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef int pid_t;
typedef _Bool bool;
enum { false = 0, true = 1 };

/* The map types and flags these programs use (values from uapi/linux/bpf.h). */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};
/* Ring buffer wakeup flags and bpf_ringbuf_query() questions. */
enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
	BPF_RB_RING_SIZE = 1,
};

// ANCHOR: structs
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

#if defined(__TARGET_ARCH_x86)
/* kprobe programs receive the registers of the probed instruction. */
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};
#elif defined(__TARGET_ARCH_arm64)
struct user_pt_regs {
	u64 regs[31];
	u64 sp;
	u64 pc;
	u64 pstate;
};
struct pt_regs {
	struct user_pt_regs user_regs;
	u64 orig_x0;
};
#else
#error "vmlinux.h: only x86_64 and arm64 are described; generate a full vmlinux.h with bpftool for other architectures"
#endif

/* include/linux/fs.h: what getname() made of the user's path. */
struct filename {
	const char *name;
};

/* include/linux/sched.h: just the ids, to follow a command's children. */
struct task_struct {
	pid_t pid;
	pid_t tgid;
};

#pragma clang attribute pop
// ANCHOR_END: structs

#endif /* __VMLINUX_H__ */
