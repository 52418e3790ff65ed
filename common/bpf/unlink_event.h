/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The record both lessons send to user space. unlink-common/src/events.rs mirrors it. */
#ifndef __UNLINK_EVENT_H
#define __UNLINK_EVENT_H

// ANCHOR: event
#define TASK_COMM_LEN 16
#define UNLINK_NAME_CAP 256

#define UNLINK_NAME_TRUNCATED (1U << 0)  /* longer than UNLINK_NAME_CAP - 1 bytes */
#define UNLINK_NAME_UNREADABLE (1U << 1) /* the kernel memory could not be read */

struct unlink_event {
	__u64 start_ns;   /* bpf_ktime_get_ns() at entry: CLOCK_MONOTONIC */
	__u64 latency_ns; /* exit minus entry */
	__u32 pid;        /* process (thread group) id */
	__u32 tid;        /* thread id */
	__s32 ret;        /* the function's return value: 0 or -errno */
	__u32 name_len;   /* bytes in name, without the NUL */
	__u32 flags;      /* UNLINK_NAME_* */
	__u32 _pad;
	char comm[TASK_COMM_LEN];
	char name[UNLINK_NAME_CAP];
};

_Static_assert(sizeof(struct unlink_event) == 312, "update events.rs when the layout changes");
// ANCHOR_END: event

#endif /* __UNLINK_EVENT_H */
