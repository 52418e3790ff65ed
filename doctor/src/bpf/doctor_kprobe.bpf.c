// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// The live check loads lesson 02's programs unchanged: this file only includes them.
#include "../../../lessons/02-kprobe/src/bpf/unlink_kprobe.bpf.c"
