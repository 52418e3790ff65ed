// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Lesson 02, step 1: the chapter's program. Each unlink writes two lines to trace_pipe.
// ANCHOR: all
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* No function after "kprobe": the loader attaches to do_unlinkat or, on Linux 7.0+, filename_unlinkat. */
SEC("kprobe")
int BPF_KPROBE(do_unlinkat, int dfd, struct filename *name)
{
	pid_t pid;
	const char *filename;

	pid = bpf_get_current_pid_tgid() >> 32;
	filename = BPF_CORE_READ(name, name);
	bpf_printk("KPROBE ENTRY pid = %d, filename = %s\n", pid, filename);
	return 0;
}

/* The function returns int (long before 6.x): read it as int, so -2 stays -2. */
SEC("kretprobe")
int BPF_KRETPROBE(do_unlinkat_exit, int ret)
{
	pid_t pid;

	pid = bpf_get_current_pid_tgid() >> 32;
	bpf_printk("KPROBE EXIT: pid = %d, ret = %ld\n", pid, (long)ret);
	return 0;
}
// ANCHOR_END: all
