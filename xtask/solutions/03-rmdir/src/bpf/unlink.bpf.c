// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Exercise starting point: lesson 03's fentry and fexit, one record per unlink.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The record user space reads; src/main.rs decodes it with the skeleton's types::event. */
#define OP_UNLINK 0
#define OP_RMDIR 1

struct event {
	__u64 latency_ns;
	__u32 op; /* OP_UNLINK or OP_RMDIR */
	__u32 pid;
	__s32 ret;
	char comm[16];
	char name[64];
};

/* Only the entry time travels from fentry to fexit, by thread id: fexit sees the arguments too. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} entered_at SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* bpf_ringbuf_reserve() carries no type: this names struct event in the object's BTF,
 * so that the skeleton generates types::event for src/main.rs. */
struct event unused_event_type = {};


static __always_inline void enter(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&entered_at, &tid, &now, BPF_ANY);
}

static __always_inline void report(struct filename *name, int ret, __u32 op)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *entered = bpf_map_lookup_elem(&entered_at, &tid);
	struct event *e;

	if (!entered)
		return;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->latency_ns = bpf_ktime_get_ns() - *entered;
		e->pid = bpf_get_current_pid_tgid() >> 32;
		e->op = op;
		e->ret = ret;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		/* BTF tells the verifier what `name` points to: a plain dereference works. */
		bpf_probe_read_kernel_str(e->name, sizeof(e->name), name->name);
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&entered_at, &tid);
}

SEC("fentry")
int BPF_PROG(unlink_entry, int dfd, struct filename *name)
{
	enter();
	return 0;
}

SEC("fexit")
int BPF_PROG(unlink_exit, int dfd, struct filename *name, int ret)
{
	report(name, ret, OP_UNLINK);
	return 0;
}

/* do_rmdir (filename_rmdir from 7.0) takes the same arguments. */
SEC("fentry")
int BPF_PROG(rmdir_entry, int dfd, struct filename *name)
{
	enter();
	return 0;
}

SEC("fexit")
int BPF_PROG(rmdir_exit, int dfd, struct filename *name, int ret)
{
	report(name, ret, OP_RMDIR);
	return 0;
}
