//! Host packages xtask needs, found by their files and installed with apt.
//!
//! Presence is decided by looking for the files a package ships (a binary on
//! PATH or a file at a fixed path), so a provisioned machine never calls apt.
//! A missing package is installed with `apt-get` when we run as root on
//! Debian or Ubuntu; anywhere else xtask stops and prints the exact command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Result, XtaskError};

/// How to tell that a package is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A program found on PATH.
    Program(&'static str),
    /// Any of these files exists.
    AnyFile(&'static [&'static str]),
}

/// A Debian package and the file that proves it is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPackage {
    pub name: &'static str,
    pub probe: Probe,
}

pub const QEMU: HostPackage = HostPackage {
    name: "qemu-system-x86",
    probe: Probe::Program("qemu-system-x86_64"),
};
pub const GRUB_PC: HostPackage = HostPackage {
    name: "grub-pc-bin",
    probe: Probe::AnyFile(&["/usr/lib/grub/i386-pc/kernel.img"]),
};
pub const GRUB_EFI: HostPackage = HostPackage {
    name: "grub-efi-amd64-bin",
    probe: Probe::AnyFile(&["/usr/lib/grub/x86_64-efi/kernel.img"]),
};
pub const XORRISO: HostPackage = HostPackage {
    name: "xorriso",
    probe: Probe::Program("xorriso"),
};
pub const MTOOLS: HostPackage = HostPackage {
    name: "mtools",
    probe: Probe::Program("mformat"),
};
/// Debian bookworm ships both the 2 MiB and the 4 MiB OVMF builds; trixie
/// only the 4 MiB one, so that is the one we look for (see `qemu::Ovmf`).
pub const OVMF: HostPackage = HostPackage {
    name: "ovmf",
    probe: Probe::AnyFile(&[
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_CODE.fd",
    ]),
};

/// What a GRUB ISO needs (grub-mkrescue comes with grub-common, a dependency of both grub packages).
pub const IMAGE_TOOLS: &[HostPackage] = &[GRUB_PC, GRUB_EFI, XORRISO, MTOOLS];

impl HostPackage {
    pub fn is_installed(&self) -> bool {
        match self.probe {
            Probe::Program(name) => find_program(name).is_some(),
            Probe::AnyFile(paths) => paths.iter().any(|p| Path::new(p).exists()),
        }
    }
}

/// Looks a program up on PATH.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The command a person runs to install `names` by hand.
pub fn install_command(names: &[&str], as_root: bool) -> String {
    let sudo = if as_root { "" } else { "sudo " };
    format!(
        "{sudo}apt-get update && {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        names.join(" ")
    )
}

/// True on Debian, Ubuntu and their derivatives (from the text of /etc/os-release).
pub fn is_debian_like(os_release: &str) -> bool {
    os_release.lines().any(|line| {
        let Some((key, value)) = line.split_once('=') else {
            return false;
        };
        (key == "ID" || key == "ID_LIKE")
            && value
                .trim_matches('"')
                .split_whitespace()
                .any(|id| id == "debian" || id == "ubuntu")
    })
}

fn running_as_root() -> bool {
    // The effective uid of /proc/self is ours; no libc call needed.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `apt-get update` runs at most once per xtask process.
static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Makes sure every package in `wanted` is installed, installing the missing ones if we may.
pub fn ensure(wanted: &[HostPackage]) -> Result<()> {
    let mut missing: Vec<&str> = Vec::new();
    for package in wanted {
        if !package.is_installed() && !missing.contains(&package.name) {
            missing.push(package.name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let root = running_as_root();
    let debian = is_debian_like(&os_release) && find_program("apt-get").is_some();
    if !(root && debian) {
        let why = if debian {
            "not running as root"
        } else {
            "not a Debian/Ubuntu system"
        };
        let how = if debian {
            format!(
                "install them with:\n    {}",
                install_command(&missing, false)
            )
        } else {
            format!(
                "install the equivalent of these Debian packages: {}",
                missing.join(" ")
            )
        };
        return Err(XtaskError::msg(format!(
            "missing host packages: {} ({why}); {how}",
            missing.join(" ")
        )));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        apt(&["update", "-q"])?;
    }
    let mut args = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        // A fresh machine may still be running its own apt jobs.
        "-o",
        "DPkg::Lock::Timeout=300",
    ];
    args.extend(missing.iter().copied());
    apt(&args)?;
    let still: Vec<&str> = wanted
        .iter()
        .filter(|p| !p.is_installed())
        .map(|p| p.name)
        .collect();
    if !still.is_empty() {
        return Err(XtaskError::msg(format!(
            "apt-get installed {} but these are still missing: {}",
            missing.join(" "),
            still.join(" ")
        )));
    }
    Ok(())
}

/// Runs apt-get, retrying twice: a mirror hiccup should not fail a CI run.
fn apt(args: &[&str]) -> Result<()> {
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            eprintln!("xtask: {last}; retrying");
            std::thread::sleep(std::time::Duration::from_secs(10));
        }
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null())
            .status()
            .map_err(|e| XtaskError::msg(format!("cannot run apt-get: {e}")))?;
        if status.success() {
            return Ok(());
        }
        last = format!("`apt-get {}` failed ({status})", args.join(" "));
    }
    Err(XtaskError::msg(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_debian_and_ubuntu() {
        assert!(is_debian_like(
            "PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n"
        ));
        assert!(is_debian_like("ID=ubuntu\nID_LIKE=debian\n"));
        assert!(is_debian_like("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"));
        assert!(!is_debian_like("ID=fedora\nID_LIKE=\"rhel centos\"\n"));
        assert!(!is_debian_like("PRETTY_NAME=debian\n"));
    }

    #[test]
    fn install_command_is_exact() {
        assert_eq!(
            install_command(&["qemu-system-x86", "ovmf"], false),
            "sudo apt-get update && sudo env DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends qemu-system-x86 ovmf"
        );
        assert!(!install_command(&["xorriso"], true).contains("sudo"));
    }

    #[test]
    fn probes_find_programs_and_files() {
        assert!(find_program("sh").is_some());
        assert!(find_program("definitely-not-a-program-cxos").is_none());
        let present = HostPackage {
            name: "x",
            probe: Probe::AnyFile(&["/nonexistent-cxos", "/"]),
        };
        let absent = HostPackage {
            name: "x",
            probe: Probe::AnyFile(&["/nonexistent-cxos"]),
        };
        assert!(present.is_installed());
        assert!(!absent.is_installed());
    }
}
