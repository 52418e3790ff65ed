fn main() {
    lesson_build::build_skeleton("unlink");
}
