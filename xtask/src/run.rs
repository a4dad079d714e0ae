//! `cargo xtask run`: boot the kernel in QEMU with the serial console on
//! this terminal and exit with the kernel's verdict.

use std::path::PathBuf;

use clap::Args;

use crate::image;
use crate::kernel::{self, Profile};
use crate::provision;
use crate::qemu::{Accel, Boot, Machine, Ovmf, Qemu, Verdict};
use crate::session::describe;
use crate::workspace::Workspace;
use crate::{Result, XtaskError};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Boot the GRUB ISO (multiboot2) instead of loading the ELF directly (PVH).
    #[arg(long)]
    pub iso: bool,
    /// Boot the ISO under UEFI (OVMF); implies --iso.
    #[arg(long)]
    pub uefi: bool,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
    /// Kernel command line (e.g. `test=selftest log=debug`); empty starts the shell.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Extra QEMU `-device` (repeatable), e.g. `--device e1000e --device edu`.
    #[arg(long)]
    pub device: Vec<String>,
    /// Use the `kernel-dev` profile.
    #[arg(long)]
    pub dev: bool,
}

/// Chooses how the kernel boots for these arguments (the ISO is built by the caller).
pub fn boot_for(
    args: &RunArgs,
    kernel: PathBuf,
    iso: Option<PathBuf>,
    vars: PathBuf,
) -> Result<Boot> {
    Ok(match (args.uefi, iso) {
        (true, Some(iso)) => Boot::UefiIso {
            iso,
            ovmf: Ovmf::find()?,
            vars,
        },
        (false, Some(iso)) if args.iso => Boot::BiosIso { iso },
        (false, None) if !args.iso => Boot::Pvh {
            kernel,
            cmdline: args.cmdline.clone(),
        },
        _ => return Err(XtaskError::msg("internal: ISO expected for --iso/--uefi")),
    })
}

pub fn run(ws: &Workspace, args: &RunArgs) -> Result<u8> {
    let elf = kernel::build(ws, Profile::from_dev_flag(args.dev))?;
    let wants_iso = args.iso || args.uefi;
    let iso = if wants_iso {
        let iso = ws.xtask_dir().join("run.iso");
        std::fs::create_dir_all(ws.xtask_dir())?;
        Some(image::make_iso(&elf, &args.cmdline, &iso)?)
    } else {
        None
    };
    if args.uefi {
        provision::ensure(&[provision::OVMF])?;
    }
    let boot = boot_for(args, elf, iso, ws.xtask_dir().join("run-vars.fd"))?;
    let mut machine = Machine::new(boot);
    machine.accel = args.accel;
    machine.devices = args.device.clone();
    let qemu = Qemu::system()?;
    provision::ensure(&machine.packages())?;
    let mut command = machine.command(&qemu)?;
    eprintln!("xtask: {}", describe(&command));
    let status = command
        .status()
        .map_err(|e| XtaskError::msg(format!("cannot start QEMU: {e}")))?;
    let verdict = Verdict::from_status(status);
    eprintln!("xtask: {verdict}");
    Ok(verdict.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(iso: bool, uefi: bool) -> RunArgs {
        RunArgs {
            iso,
            uefi,
            accel: Accel::Tcg,
            cmdline: "log=debug".into(),
            device: vec![],
            dev: false,
        }
    }

    #[test]
    fn default_run_boots_pvh_with_the_cmdline() {
        let boot = boot_for(&args(false, false), "/k".into(), None, "/v".into()).unwrap();
        assert_eq!(
            boot,
            Boot::Pvh {
                kernel: "/k".into(),
                cmdline: "log=debug".into()
            }
        );
    }

    #[test]
    fn iso_run_boots_bios() {
        let boot = boot_for(
            &args(true, false),
            "/k".into(),
            Some("/i.iso".into()),
            "/v".into(),
        )
        .unwrap();
        assert_eq!(
            boot,
            Boot::BiosIso {
                iso: "/i.iso".into()
            }
        );
        assert!(boot_for(&args(true, false), "/k".into(), None, "/v".into()).is_err());
    }
}
