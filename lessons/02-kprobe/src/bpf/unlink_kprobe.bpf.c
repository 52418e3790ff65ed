// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Lesson 02: watch the kernel's unlink function with a kprobe and a kretprobe.
// ANCHOR: includes
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "unlink.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
// ANCHOR_END: includes

// ANCHOR: in_flight
/*
 * A kretprobe sees only the return value, not the arguments. So the entry
 * probe parks what it learned here, keyed by thread id: the same thread
 * runs the matching return.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct unlink_event);
} in_flight SEC(".maps");

static const struct unlink_event empty_event;

/*
 * A kretprobe can miss a return: the kernel keeps a fixed number of return
 * slots (maxactive, about one per CPU on 5.10), and a program already running
 * on that CPU is skipped. The entry then stays parked. It is counted when the
 * thread's next entry replaces it (here), and at the end (user space counts
 * what is still parked).
 */
__u64 returns_missed = 0;
// ANCHOR_END: in_flight

// ANCHOR: entry
/* No function name after "kprobe": user space picks do_unlinkat or filename_unlinkat at run time. */
SEC("kprobe")
int BPF_KPROBE(unlink_entry, int dfd, struct filename *name)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct unlink_event *e;
	const char *filename;

	if (!unlink_wanted())
		return 0;

	/* `name` is a raw register value: read the kernel's struct through CO-RE. */
	filename = BPF_CORE_READ(name, name);

	if (use_printk) {
		bpf_printk("KPROBE ENTRY pid = %d, filename = %s\n",
			   bpf_get_current_pid_tgid() >> 32, filename);
		return 0;
	}

	/* A thread unlinks one file at a time: an entry still parked missed its return. */
	if (bpf_map_lookup_elem(&in_flight, &tid))
		__sync_fetch_and_add(&returns_missed, 1);
	if (bpf_map_update_elem(&in_flight, &tid, &empty_event, BPF_ANY)) {
		count_lost();
		return 0;
	}
	e = bpf_map_lookup_elem(&in_flight, &tid);
	if (e)
		unlink_event_begin(e, filename);
	return 0;
}
// ANCHOR_END: entry

// ANCHOR: exit
SEC("kretprobe")
int BPF_KRETPROBE(unlink_exit, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct unlink_event *e;

	if (use_printk) {
		if (unlink_wanted())
			bpf_printk("KPROBE EXIT: pid = %d, ret = %ld\n",
				   bpf_get_current_pid_tgid() >> 32, (long)ret);
		return 0;
	}

	/* No entry parked: this thread was filtered out at entry. */
	e = bpf_map_lookup_elem(&in_flight, &tid);
	if (!e)
		return 0;
	e->ret = ret;
	e->latency_ns = bpf_ktime_get_ns() - e->start_ns;
	unlink_event_submit(e);
	bpf_map_delete_elem(&in_flight, &tid);
	return 0;
}
// ANCHOR_END: exit
