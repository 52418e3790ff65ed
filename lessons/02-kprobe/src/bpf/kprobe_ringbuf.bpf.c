// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Lesson 02, step 2: the same probes send one record per unlink through a ring buffer.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// ANCHOR: event
/* libbpf-cargo turns this into the Rust type `types::event` in the skeleton. */
struct event {
	__u32 pid;
	__s32 ret;
	__u8 comm[16];
	__u8 filename[256];
};
// ANCHOR_END: event

// ANCHOR: maps
/* Records for user space: a ring buffer shared by all CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* A kretprobe sees only the return value: the entry parks the record here, keyed by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct event);
} in_flight SEC(".maps");
// ANCHOR_END: maps

// ANCHOR: probes
SEC("kprobe")
int BPF_KPROBE(do_unlinkat, int dfd, struct filename *name)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event e = {};

	e.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	bpf_probe_read_kernel_str(e.filename, sizeof(e.filename), BPF_CORE_READ(name, name));
	bpf_map_update_elem(&in_flight, &tid, &e, BPF_ANY);
	return 0;
}

SEC("kretprobe")
int BPF_KRETPROBE(do_unlinkat_exit, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *e;

	e = bpf_map_lookup_elem(&in_flight, &tid);
	if (!e)
		return 0;
	e->ret = ret;
	/* Copies the record into the ring buffer; fails only when it is full. */
	bpf_ringbuf_output(&events, e, sizeof(*e), 0);
	bpf_map_delete_elem(&in_flight, &tid);
	return 0;
}
// ANCHOR_END: probes
