//! `cargo xtask`: builds, boots and tests cxos.
//!
//! Subcommands: `build`, `image`, `run`, `test`, `lint`, `bench`,
//! `acceptance`, `provision`. Exit codes: 0 success, 1 the kernel (or a
//! test, or an acceptance check) failed, 2 anything else went wrong.
#![forbid(unsafe_code)]

mod acceptance;
mod bench;
mod bench_callgrind;
mod bench_irq_smp;
mod bench_linux;
mod bench_pktgen;
mod bench_pktgen_smp;
mod console;
mod cpio;
mod image;
mod kernel;
mod lint;
mod linux_guest;
mod linux_vm;
mod mainjob;
mod netns;
mod pcap_flows;
mod provision;
mod qemu;
mod qemu_provision;
mod qmp;
mod run;
mod session;
mod sim_device;
mod soak;
mod systests;
mod systests_aggr;
mod systests_aggr_pair;
mod systests_attach;
mod systests_fast;
mod systests_fast_switches;
mod systests_faults;
mod systests_linux;
mod systests_net;
mod systests_peer;
mod systests_port;
mod systests_reset;
mod systests_sim;
mod systests_smp;
mod systests_vnic;
mod test;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An error that stops xtask, with the message to show.
#[derive(Debug)]
pub struct XtaskError(String);

impl XtaskError {
    pub fn msg(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl std::fmt::Display for XtaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for XtaskError {
    fn from(e: std::io::Error) -> Self {
        Self(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, XtaskError>;

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Build, boot and test cxos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the kernel ELF and print its path.
    Build {
        /// Use the `kernel-dev` profile (unoptimized) instead of `kernel`.
        #[arg(long)]
        dev: bool,
    },
    /// Build a GRUB ISO that boots the kernel under BIOS and UEFI; print its path.
    Image {
        #[arg(long)]
        dev: bool,
        /// Kernel command line baked into grub.cfg.
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Where to write the ISO (default: <target>/xtask/cxos.iso).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Boot the kernel in QEMU with its serial console on this terminal.
    Run(run::RunArgs),
    /// Host tests, lint, then the QEMU system tests.
    Test(test::TestArgs),
    /// clippy -D warnings, rustfmt --check, and the unsafe audit.
    Lint,
    /// Run the workspace benchmarks and xtask's own figures.
    Bench(bench::BenchArgs),
    /// The acceptance checks as one suite against the model or a real
    /// adapter; writes <target>/xtask/acceptance/report.md.
    Acceptance(acceptance::AcceptanceArgs),
    /// cxos on the model under stock iperf3 both ways for N minutes,
    /// sampling memory every minute; checks nothing leaked at detach.
    Soak(soak::SoakArgs),
    /// Make sure a QEMU with vfio-user-pci exists (provisions QEMU >= 10.1 from Debian
    /// trixie-backports into a cache dir once if needed); print its version and invocation.
    Provision {
        /// Also the Linux guest of the `linux-*` tests (Debian trixie's kernel
        /// and tools in a small initramfs); print its files.
        #[arg(long)]
        linux_guest: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(command: Command) -> Result<u8> {
    let ws = workspace::Workspace::locate()?;
    match command {
        Command::Build { dev } => {
            let elf = kernel::build(&ws, kernel::Profile::from_dev_flag(dev))?;
            println!("{}", elf.display());
            Ok(0)
        }
        Command::Image {
            dev,
            cmdline,
            output,
        } => {
            let elf = kernel::build(&ws, kernel::Profile::from_dev_flag(dev))?;
            let iso = output.unwrap_or_else(|| ws.xtask_dir().join("cxos.iso"));
            if let Some(dir) = iso.parent() {
                std::fs::create_dir_all(dir)?;
            }
            image::make_iso(&elf, &cmdline, &iso)?;
            println!("{}", iso.display());
            Ok(0)
        }
        Command::Run(args) => run::run(&ws, &args),
        Command::Test(args) => test::run(&ws, &args),
        Command::Lint => lint::run(&ws),
        Command::Bench(args) => bench::run(&ws, &args),
        Command::Acceptance(args) => acceptance::run(&ws, &args),
        Command::Soak(args) => soak::run(&ws, &args),
        Command::Provision { linux_guest } => {
            let code = qemu_provision::run_provision()?;
            if linux_guest {
                let g = linux_guest::guest()?;
                println!(
                    "linux {} {} {}",
                    g.release,
                    g.kernel.display(),
                    g.initramfs.display()
                );
            }
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_arguments_parse() {
        let cli = Cli::try_parse_from([
            "xtask",
            "run",
            "--uefi",
            "--accel",
            "kvm",
            "--cmdline",
            "test=selftest",
            "--device",
            "edu",
            "--device",
            "e1000e",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(args.uefi);
        assert_eq!(args.accel, qemu::Accel::Kvm);
        assert_eq!(args.cmdline.as_deref(), Some("test=selftest"));
        assert_eq!(args.device, ["edu", "e1000e"]);
        assert!(Cli::try_parse_from(["xtask", "run", "--accel", "hvf"]).is_err());
    }

    #[test]
    fn test_arguments_parse() {
        let cli =
            Cli::try_parse_from(["xtask", "test", "--system-only", "--filter", "shell"]).unwrap();
        let Command::Test(args) = cli.command else {
            panic!("not test")
        };
        assert!(args.system_only);
        assert_eq!(args.filter.as_deref(), Some("shell"));
    }
}
