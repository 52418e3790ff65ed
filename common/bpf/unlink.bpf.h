/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What both lessons share on the BPF side: the event record, the ring buffer,
 * the filters set from the command line, and following a command's children.
 * Each lesson's .bpf.c includes this and only adds its two probes.
 */
#ifndef __UNLINK_BPF_H
#define __UNLINK_BPF_H

#include "unlink_event.h"

// ANCHOR: ring_buffer
/* One record per finished unlink, read by user space (unlink-common's events.rs). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2048 * 1024); /* user space may resize it before load */
} events SEC(".maps");
// ANCHOR_END: ring_buffer

// ANCHOR: traced_tgids
/* Processes whose unlinks we report when filter_by_tgid is set: --pid, or `-- COMMAND` and its children. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} traced_tgids SEC(".maps");
// ANCHOR_END: traced_tgids

// ANCHOR: rodata
/* Set by user space before load; the verifier prunes the branches they turn off. */
const volatile bool filter_by_tgid = false;
const volatile char filter_comm[TASK_COMM_LEN] = {};
const volatile bool use_printk = false;
// ANCHOR_END: rodata

// ANCHOR: lost_events
/* Records the ring buffer had no room for: counted here so user space can report them. */
__u64 lost_events = 0;
// ANCHOR_END: lost_events

// ANCHOR: unlink_wanted
static __always_inline bool unlink_wanted(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (filter_by_tgid && !bpf_map_lookup_elem(&traced_tgids, &tgid))
		return false;
	if (filter_comm[0]) {
		char comm[TASK_COMM_LEN];

		bpf_get_current_comm(comm, sizeof(comm));
#pragma unroll
		for (int i = 0; i < TASK_COMM_LEN; i++) {
			if (comm[i] != filter_comm[i])
				return false;
			if (!comm[i])
				break;
		}
	}
	return true;
}
// ANCHOR_END: unlink_wanted

// ANCHOR: event_begin
/* Fill in who is unlinking what; the caller adds ret and latency at exit. */
static __always_inline void unlink_event_begin(struct unlink_event *e, const char *name)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	long copied;

	/* Ring buffer memory arrives uninitialised: set every field. */
	e->start_ns = bpf_ktime_get_ns();
	e->latency_ns = 0;
	e->ret = 0;
	e->name_len = 0;
	e->flags = 0;
	e->_pad = 0;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	copied = bpf_probe_read_kernel_str(e->name, sizeof(e->name), name);
	if (copied <= 0) {
		e->flags |= UNLINK_NAME_UNREADABLE;
		return;
	}
	e->name_len = copied - 1;
	if (copied == sizeof(e->name)) {
		char next = 0;

		/* The buffer is full: the name was cut unless its last byte was the end. */
		bpf_probe_read_kernel(&next, 1, name + sizeof(e->name) - 1);
		if (next)
			e->flags |= UNLINK_NAME_TRUNCATED;
	}
}
// ANCHOR_END: event_begin

// ANCHOR: sending
/* A full ring buffer is counted, never silent: both ways of sending go through here. */
static __always_inline void count_lost(void)
{
	__sync_fetch_and_add(&lost_events, 1);
}

/*
 * Waking the reader costs the unlinking CPU an interrupt and a context switch.
 * By default the ring buffer wakes it for every record the reader is not
 * already behind on, which is nearly every record when it keeps up. Instead:
 * wake it when an eighth of the buffer has filled up, or when it has not been
 * woken for 10 ms, so that a lone event still shows at once. A record sent
 * without a wakeup waits for the next one, or for the reader's own look at
 * the buffer every 100 ms.
 */
#define WAKEUP_INTERVAL_NS (10 * 1000 * 1000)
__u64 last_wakeup_ns = 0;

static __always_inline __u64 wakeup_flag(void)
{
	__u64 now = bpf_ktime_get_ns();

	if (now - last_wakeup_ns >= WAKEUP_INTERVAL_NS ||
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >=
		    bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) / 8) {
		last_wakeup_ns = now; /* a race between CPUs only wakes once more */
		return BPF_RB_FORCE_WAKEUP;
	}
	return BPF_RB_NO_WAKEUP;
}

/* Copy a finished record (kept elsewhere, e.g. in a map) into the ring buffer. */
static __always_inline void unlink_event_submit(const struct unlink_event *e)
{
	if (bpf_ringbuf_output(&events, (void *)e, sizeof(*e), wakeup_flag()))
		count_lost();
}

/* Or reserve a record in the ring buffer, fill it in place, then bpf_ringbuf_submit() it
 * with wakeup_flag(). */
static __always_inline struct unlink_event *unlink_event_reserve(void)
{
	struct unlink_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		count_lost();
	return e;
}
// ANCHOR_END: sending

// ANCHOR: follow
/*
 * `-- COMMAND`: user space puts the command's pid in traced_tgids before it
 * runs; these two keep the set equal to that process and its descendants.
 * They are only loaded when following (see unlink-common's filters).
 */
SEC("raw_tp/sched_process_fork")
int BPF_PROG(follow_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	__u8 yes = 1;

	if (bpf_map_lookup_elem(&traced_tgids, &parent_tgid))
		bpf_map_update_elem(&traced_tgids, &child_tgid, &yes, BPF_ANY);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(forget_exit, struct task_struct *task)
{
	__u32 pid = BPF_CORE_READ(task, pid);
	__u32 tgid = BPF_CORE_READ(task, tgid);

	/* Threads exit too; only the group leader leaving ends the process. */
	if (pid == tgid)
		bpf_map_delete_elem(&traced_tgids, &tgid);
	return 0;
}
// ANCHOR_END: follow

#endif /* __UNLINK_BPF_H */
