//! Compile the lessons' own BPF programs (through doctor/src/bpf/*.bpf.c, which
//! include them) so the live check loads exactly what the lessons load.

fn main() {
    lesson_build::build_skeleton("doctor_kprobe");
    lesson_build::build_skeleton("doctor_fentry");
    println!("cargo:rerun-if-changed=../lessons/02-kprobe/src/bpf/unlink_kprobe.bpf.c");
    println!("cargo:rerun-if-changed=../lessons/03-fentry/src/bpf/unlink_fentry.bpf.c");
}
