// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Lesson 03: watch the kernel's unlink function with fentry and fexit.
// ANCHOR: includes
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "unlink.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
// ANCHOR_END: includes

// ANCHOR: entered_at
/*
 * fexit sees the arguments and the return value, so only the entry time has
 * to travel from fentry to fexit, keyed by thread id.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u64);
} entered_at SEC(".maps");

/*
 * Since 5.12 the kernel skips a run of fentry or fexit that would nest on the
 * same CPU (a preempted run, on 7.x). A skipped fexit leaves its entry time
 * parked: counted when the thread's next fentry replaces it (here), and at
 * the end (user space counts what is still parked).
 */
__u64 exits_missed = 0;
// ANCHOR_END: entered_at

// ANCHOR: entry
/* No function name after "fentry": user space sets the target before load. */
SEC("fentry")
int BPF_PROG(unlink_entry, int dfd, struct filename *name)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 now;

	if (!unlink_wanted())
		return 0;

	if (use_printk) {
		/* BTF tells the verifier what `name` points to: a plain dereference works. */
		bpf_printk("fentry: pid = %d, filename = %s\n",
			   bpf_get_current_pid_tgid() >> 32, name->name);
		return 0;
	}

	/* A thread unlinks one file at a time: an entry still parked missed its exit. */
	if (bpf_map_lookup_elem(&entered_at, &tid))
		__sync_fetch_and_add(&exits_missed, 1);
	now = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&entered_at, &tid, &now, BPF_ANY))
		count_lost();
	return 0;
}
// ANCHOR_END: entry

// ANCHOR: exit
SEC("fexit")
int BPF_PROG(unlink_exit, int dfd, struct filename *name, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct unlink_event *e;
	__u64 *entered;

	if (use_printk) {
		if (unlink_wanted())
			bpf_printk("fexit: pid = %d, filename = %s, ret = %ld\n",
				   bpf_get_current_pid_tgid() >> 32, name->name, (long)ret);
		return 0;
	}

	/* No entry time: this thread was filtered out at entry. */
	entered = bpf_map_lookup_elem(&entered_at, &tid);
	if (!entered)
		return 0;

	e = unlink_event_reserve();
	if (e) {
		/*
		 * Before Linux 7.0, do_unlinkat has already released `name` (putname)
		 * when fexit runs. The loads are fault-safe, and slab memory is not
		 * cleared on free (unless booted with init_on_free=1: then the name
		 * shows as <unreadable>), so the name is normally still there to copy.
		 * filename_unlinkat (7.0+) leaves `name` to its caller.
		 */
		unlink_event_begin(e, name->name);
		e->start_ns = *entered;
		e->ret = ret;
		e->latency_ns = bpf_ktime_get_ns() - *entered;
		bpf_ringbuf_submit(e, wakeup_flag());
	}
	bpf_map_delete_elem(&entered_at, &tid);
	return 0;
}
// ANCHOR_END: exit
