//! `cargo xtask ...`: the project's tasks. See `cargo xtask --help`.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xtask::vm::{kernels, Accel, VmRun};
use xtask::{book, deps, test, try_lesson, vm};

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
    /// Download and cache VM kernels
    Fetch {
        /// A kernel name, or `all` for the whole test matrix
        #[arg(long, default_value = kernels::DEFAULT)]
        kernel: String,
    },
    /// Install the Debian packages the project needs (as root)
    Deps,
    /// Build a lesson and run it with a few unlinks: natively if this kernel can, else in a VM
    Try {
        #[arg(value_enum)]
        lesson: try_lesson::Lesson,
    },
    /// Everything CI checks: dependencies, build, kernels, unit and end-to-end tests
    Test,
    /// The book in book/, English and 中文: install, build, serve, transcripts, check
    Book {
        #[command(subcommand)]
        task: book::Task,
    },
}

#[derive(clap::Args)]
struct VmArgs {
    /// debian-5.10, debian-6.1, debian-6.12, debian-7.2, or a path to a kernel image
    #[arg(long, default_value = kernels::DEFAULT)]
    kernel: String,
    /// Virtual CPUs
    #[arg(long, default_value_t = 2)]
    smp: u32,
    /// Guest memory in MiB
    #[arg(long, default_value_t = 1024)]
    memory: u32,
    /// Give up after this many seconds
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// tcg (software emulation, always works) or kvm (only where it boots stock kernels)
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// Copy another host file in: HOST_PATH[:GUEST_PATH]
    #[arg(long, value_name = "HOST[:GUEST]")]
    add: Vec<String>,
    /// Set an environment variable for COMMAND: KEY=VALUE
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Show the kernel console
    #[arg(short, long)]
    verbose: bool,
    /// The command and its arguments
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
        Task::Vm(args) => {
            deps::ensure(&[deps::VM])?;
            let mut run = VmRun::new(&args.kernel, args.command);
            run.smp = args.smp;
            run.memory_mib = args.memory;
            run.timeout = Duration::from_secs(args.timeout);
            run.accel = args.accel;
            run.verbose = args.verbose;
            for add in &args.add {
                let (host, guest) = add.split_once(':').unwrap_or((add, add));
                run.extra_files
                    .push((std::fs::canonicalize(host)?, guest.into()));
            }
            for pair in &args.env {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--env {pair:?}: expected KEY=VALUE"))?;
                run.env.push((key.to_string(), value.to_string()));
            }
            let output = run.run_streaming()?;
            eprintln!(
                "vm: {} exited with status {} after {:.1}s",
                run.kernel,
                output.status,
                output.elapsed.as_secs_f64()
            );
            Ok(ExitCode::from(output.status as u8))
        }
        Task::Fetch { kernel } => {
            let names: Vec<&str> = if kernel == "all" {
                kernels::MATRIX.to_vec()
            } else {
                vec![kernel.as_str()]
            };
            for name in names {
                let fetched = vm::kernels::fetch(name)?;
                eprintln!("{name}: {}", fetched.image.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Task::Deps => {
            deps::ensure(&[deps::BUILD, deps::VM, deps::TEST])?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Try { lesson } => try_lesson::run(lesson),
        Task::Test => {
            test::run()?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Book { task } => {
            book::run(task)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
