// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Lesson 03, step 2: fexit sends one record per unlink through a ring buffer.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// ANCHOR: event
/* libbpf-cargo turns this into the Rust type `types::event` in the skeleton. */
struct event {
	__u32 pid;
	__s32 ret;
	__u8 comm[16];
	__u8 filename[256];
};

/* Nothing else in this program names `struct event` in its type information: this does, for the skeleton. */
struct event *unused_event __attribute__((unused));
// ANCHOR_END: event

// ANCHOR: maps
/* Records for user space: a ring buffer shared by all CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");
// ANCHOR_END: maps

// ANCHOR: probes
/* fexit sees the arguments and the return value: one program is enough. */
SEC("fexit")
int BPF_PROG(do_unlinkat_exit, int dfd, struct filename *name, int ret)
{
	struct event *e;

	/* Reserve room in the ring buffer, fill the record in place, submit it. */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0; /* the ring buffer is full */
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ret = ret;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* Before Linux 7.0 the kernel has released `name` by now; step 3 says why this still works. */
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), name->name);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
// ANCHOR_END: probes
