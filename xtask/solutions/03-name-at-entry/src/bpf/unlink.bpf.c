// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Exercise starting point: lesson 03's fentry and fexit, one record per unlink.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The record user space reads; src/main.rs decodes it with the skeleton's types::event. */
struct event {
	__u64 latency_ns;
	__u32 pid;
	__s32 ret;
	char comm[16];
	char name[64];
};

/*
 * The whole record travels from fentry to fexit, by thread id: before Linux 7.0,
 * do_unlinkat frees `name` (putname) before it returns, so at fexit the name may
 * already be zeroed (init_on_free=1) or reused. fentry runs while it is valid.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct event);
} in_flight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");


SEC("fentry")
int BPF_PROG(unlink_entry, int dfd, struct filename *name)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event e = {};

	e.latency_ns = bpf_ktime_get_ns(); /* the start, until fexit */
	e.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	bpf_probe_read_kernel_str(e.name, sizeof(e.name), name->name);
	bpf_map_update_elem(&in_flight, &tid, &e, BPF_ANY);
	return 0;
}

SEC("fexit")
int BPF_PROG(unlink_exit, int dfd, struct filename *name, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *e = bpf_map_lookup_elem(&in_flight, &tid);

	if (!e)
		return 0;
	e->latency_ns = bpf_ktime_get_ns() - e->latency_ns;
	e->ret = ret;
	/* `name` is not read here: it may be freed already. */
	bpf_ringbuf_output(&events, e, sizeof(*e), 0);
	bpf_map_delete_elem(&in_flight, &tid);
	return 0;
}
