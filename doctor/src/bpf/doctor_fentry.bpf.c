// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// The live check loads lesson 03's programs unchanged: this file only includes them.
#include "../../../lessons/03-fentry/src/bpf/unlink_fentry.bpf.c"
