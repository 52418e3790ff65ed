// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Exercise starting point: lesson 02's kprobe and kretprobe, one record per unlink.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The record user space reads; src/main.rs decodes it with the skeleton's types::event. */
struct event {
	__u32 pid;
	__s32 ret;
	char comm[16];
	char name[64];
};

/* The kretprobe sees only the return value: the entry parks the record here, by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct event);
} in_flight SEC(".maps");

/* Unlinks per command name, read by user space on exit. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[16]);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("kprobe")
int BPF_KPROBE(unlink_entry, int dfd, struct filename *name)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event e = {};
	__u64 one = 1, *count;

	e.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	bpf_probe_read_kernel_str(e.name, sizeof(e.name), BPF_CORE_READ(name, name));
	bpf_map_update_elem(&in_flight, &tid, &e, BPF_ANY);

	count = bpf_map_lookup_elem(&counts, e.comm);
	if (count)
		__sync_fetch_and_add(count, 1); /* other CPUs may count the same command */
	else
		/* BPF_NOEXIST: if another CPU added it first, this one unlink goes uncounted. */
		bpf_map_update_elem(&counts, e.comm, &one, BPF_NOEXIST);
	return 0;
}

SEC("kretprobe")
int BPF_KRETPROBE(unlink_exit, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *e = bpf_map_lookup_elem(&in_flight, &tid);

	if (!e)
		return 0;
	e->ret = ret;
	bpf_ringbuf_output(&events, e, sizeof(*e), 0);
	bpf_map_delete_elem(&in_flight, &tid);
	return 0;
}
