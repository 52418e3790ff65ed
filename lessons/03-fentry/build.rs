// ANCHOR: build
fn main() {
    // One skeleton per program: src/bpf/NAME.bpf.c -> OUT_DIR/NAME.skel.rs.
    lesson_build::build_skeleton("fentry_printk"); // step 1
    lesson_build::build_skeleton("fentry_ringbuf"); // step 2
    lesson_build::build_skeleton("unlink_fentry"); // step 3, the complete tool
}
// ANCHOR_END: build
