// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Lesson 03, step 1: the chapter's program. Each unlink writes two lines to trace_pipe.
// ANCHOR: all
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* No function after "fentry": the loader sets do_unlinkat or, on Linux 7.0+, filename_unlinkat before load. */
SEC("fentry")
int BPF_PROG(do_unlinkat, int dfd, struct filename *name)
{
	pid_t pid;

	pid = bpf_get_current_pid_tgid() >> 32;
	bpf_printk("fentry: pid = %d, filename = %s\n", pid, name->name);
	return 0;
}

/* The function returns int (long before 6.x): read it as int, so -2 stays -2. */
SEC("fexit")
int BPF_PROG(do_unlinkat_exit, int dfd, struct filename *name, int ret)
{
	pid_t pid;

	pid = bpf_get_current_pid_tgid() >> 32;
	bpf_printk("fexit: pid = %d, filename = %s, ret = %ld\n", pid, name->name, (long)ret);
	return 0;
}
// ANCHOR_END: all
