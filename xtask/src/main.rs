//! `cargo xtask ...`: the project's tasks. See `cargo xtask --help`.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use xtask::vm::{kernels, Accel, Arch, VmRun};
use xtask::{bench, book, build, deps, exercise, soak, test, try_lesson, vm};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Project tasks: run lessons in VMs, install dependencies, test"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Boot a kernel in QEMU and run COMMAND in it; exits with COMMAND's status
    Vm(VmArgs),
    /// Boot kernels many times under kprobe churn and count guest oopses and hangs
    VmSoak(soak::Args),
    /// Same as `vm fetch`
    #[command(hide = true)]
    Fetch(FetchArgs),
    /// Install the Debian packages the project needs (as root)
    Deps,
    /// Build the programs that load BPF (lessons, steps, unlink-doctor), also for arm64
    Build(build::Args),
    /// Build a lesson and run it with a few unlinks: natively if this kernel can, else in a VM
    Try {
        #[arg(value_enum)]
        lesson: try_lesson::Lesson,
        /// arm64: cross-build and run in Debian's arm64 kernel (never natively)
        #[arg(long, value_enum, default_value_t = Arch::X86_64)]
        arch: Arch,
        /// The VM's kernel, when the lesson runs in one
        #[arg(long, default_value = kernels::DEFAULT)]
        kernel: String,
    },
    /// Everything CI checks: dependencies, format, lints, build, kernels, unit and end-to-end tests
    Test(test::Args),
    /// Measure the lessons: cost per unlink, start to attached (vs bpftrace), throughput, memory
    Bench(bench::Args),
    /// The book in book/, English and 中文: install, build, serve, transcripts, check
    Book {
        #[command(subcommand)]
        task: book::Task,
    },
    /// The exercises, checked like rustlings: list, check ID, hint ID
    Exercise {
        #[command(subcommand)]
        task: exercise::Task,
    },
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct VmArgs {
    #[command(subcommand)]
    fetch: Option<VmTask>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum VmTask {
    /// Download and cache kernels (no network when cached)
    Fetch(FetchArgs),
}

#[derive(clap::Args)]
struct FetchArgs {
    /// A kernel name, or `all` for the whole matrix
    #[arg(long, default_value = kernels::DEFAULT)]
    kernel: String,
    /// The kernels' architecture
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    arch: Arch,
}

#[derive(clap::Args)]
struct RunArgs {
    /// debian-5.10, debian-6.1, debian-6.12, debian-7.2, or a path to a bzImage
    /// (or to a directory holding vmlinuz)
    #[arg(long, default_value = kernels::DEFAULT)]
    kernel: String,
    /// The guest's architecture: arm64 boots Debian's arm64 kernel (always
    /// emulated) and runs aarch64 programs (`cargo xtask build --arch arm64`)
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    arch: Arch,
    /// Virtual CPUs
    #[arg(long, default_value_t = 2)]
    smp: u32,
    /// Guest memory in MiB
    #[arg(long, default_value_t = 1024)]
    memory: u32,
    /// Give up after this many seconds (boot included)
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// tcg (software emulation, always works) or kvm (only where it boots stock kernels)
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// Append to the kernel command line (repeatable)
    #[arg(long, value_name = "ARG")]
    append: Vec<String>,
    /// Copy another host file in, with its libraries (repeatable); GUEST defaults to HOST's absolute path
    #[arg(long, value_name = "HOST[:GUEST]")]
    add: Vec<String>,
    /// Set an environment variable for COMMAND (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Show the kernel console
    #[arg(short, long)]
    verbose: bool,
    /// The command and its arguments: a host binary (e.g. target/debug/lesson-02), a busybox applet or a program on PATH
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

fn main() -> ExitCode {
    match run(Cli::parse().task) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<ExitCode> {
    match task {
        Task::Vm(VmArgs {
            fetch: Some(VmTask::Fetch(args)),
            ..
        })
        | Task::Fetch(args) => fetch(&args.kernel, args.arch),
        Task::Vm(VmArgs { run: args, .. }) => {
            deps::ensure(match args.arch {
                Arch::X86_64 => &[deps::VM],
                Arch::Arm64 => &[deps::VM, deps::VM_ARM64],
            })?;
            let mut run = VmRun::new(args.kernel.as_str(), args.command);
            run.arch = args.arch;
            run.smp = args.smp;
            run.memory_mib = args.memory;
            run.timeout = Duration::from_secs(args.timeout);
            run.accel = args.accel;
            run.append = args.append;
            run.verbose = args.verbose;
            for spec in &args.add {
                run.extra_files.push(vm::parse_add(spec)?);
            }
            for pair in &args.env {
                let (key, value) = pair
                    .split_once('=')
                    .with_context(|| format!("--env {pair:?}: expected KEY=VALUE"))?;
                run.env.push((key.to_string(), value.to_string()));
            }
            Ok(ExitCode::from(run.run_streaming()? as u8))
        }
        Task::VmSoak(args) => soak::run(&args).map(|()| ExitCode::SUCCESS),
        Task::Deps => {
            deps::ensure(&[
                deps::BUILD,
                deps::VM,
                deps::TEST,
                deps::BENCH,
                deps::BUILD_ARM64,
                deps::VM_ARM64,
            ])?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Build(args) => {
            build::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Try {
            lesson,
            arch,
            kernel,
        } => try_lesson::run(lesson, arch, &kernel),
        Task::Test(args) => {
            test::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Bench(args) => {
            bench::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Book { task } => {
            book::run(task)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Exercise { task } => exercise::run(task),
    }
}

fn fetch(kernel: &str, arch: Arch) -> Result<ExitCode> {
    let names: Vec<&str> = if kernel == "all" {
        kernels::MATRIX.to_vec()
    } else {
        vec![kernel]
    };
    for name in names {
        let kernel = kernels::fetch_for(arch, name)?;
        eprintln!(
            "{name} ({arch}): Linux {} in {}",
            kernel.release,
            kernel.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
