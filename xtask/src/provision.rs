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

pub const QEMU: HostPackage = HostPackage::program("qemu-system-x86", "qemu-system-x86_64");
pub const GRUB_PC: HostPackage =
    HostPackage::any_file("grub-pc-bin", &["/usr/lib/grub/i386-pc/kernel.img"]);
pub const GRUB_EFI: HostPackage = HostPackage::any_file(
    "grub-efi-amd64-bin",
    &["/usr/lib/grub/x86_64-efi/kernel.img"],
);
pub const XORRISO: HostPackage = HostPackage::program("xorriso", "xorriso");
pub const MTOOLS: HostPackage = HostPackage::program("mtools", "mformat");
/// Debian bookworm ships both the 2 MiB and the 4 MiB OVMF builds; trixie
/// only the 4 MiB one, so that is the one we look for (see `qemu::Ovmf`).
pub const OVMF: HostPackage = HostPackage::any_file(
    "ovmf",
    &[
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_CODE.fd",
    ],
);

/// What a GRUB ISO needs (grub-mkrescue comes with grub-common, a dependency of both grub packages).
pub const IMAGE_TOOLS: &[HostPackage] = &[GRUB_PC, GRUB_EFI, XORRISO, MTOOLS];

pub const IPROUTE2: HostPackage = HostPackage::program("iproute2", "ip");
pub const PING: HostPackage = HostPackage::program("iputils-ping", "ping");
pub const IPERF3: HostPackage = HostPackage::program("iperf3", "iperf3");
/// dnsmasq's program without its system service (the `dnsmasq` package
/// would start one).
pub const DNSMASQ: HostPackage = HostPackage::program("dnsmasq-base", "dnsmasq");
/// tshark, and dumpcap with it (wireshark-common); installed with the
/// "may non-root users capture" question answered no (see [`ensure`]).
pub const TSHARK: HostPackage = HostPackage::program("tshark", "tshark");

/// The VLAN relay of the VNIC system test (host kernels without 802.1Q
/// get their VLAN sub-interfaces from it; xtask/src/netns.rs).
pub const PYTHON3: HostPackage = HostPackage::program("python3-minimal", "python3");

/// The peer network of the network system tests and `run`: a namespace
/// (`ip`), the model's TAP in it, DHCP, the stock peers, and the VLAN relay.
pub const NETWORK_TOOLS: &[HostPackage] = &[IPROUTE2, PING, IPERF3, DNSMASQ, TSHARK, PYTHON3];

impl HostPackage {
    /// Package `name`, installed when `program` is on PATH.
    pub const fn program(name: &'static str, program: &'static str) -> HostPackage {
        HostPackage {
            name,
            probe: Probe::Program(program),
        }
    }

    /// Package `name`, installed when any of `paths` exists.
    pub const fn any_file(name: &'static str, paths: &'static [&'static str]) -> HostPackage {
        HostPackage {
            name,
            probe: Probe::AnyFile(paths),
        }
    }

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
    if missing.contains(&TSHARK.name) {
        preseed_wireshark()?;
    }
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

/// The debconf answer wireshark-common's postinst would ask for (whether
/// non-root users may capture): no, so the install is non-interactive and
/// changes no permissions.
pub const WIRESHARK_PRESEED: &str =
    "wireshark-common wireshark-common/install-setuid boolean false\n";

fn preseed_wireshark() -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("debconf-set-selections")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| XtaskError::msg(format!("cannot run debconf-set-selections: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(WIRESHARK_PRESEED.as_bytes())?;
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(XtaskError::msg(format!(
            "debconf-set-selections failed ({status})"
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
    fn network_tools_are_the_debian_packages() {
        let names: Vec<&str> = NETWORK_TOOLS.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "iproute2",
                "iputils-ping",
                "iperf3",
                "dnsmasq-base",
                "tshark",
                "python3-minimal"
            ]
        );
        assert_eq!(DNSMASQ.probe, Probe::Program("dnsmasq"));
        assert!(
            WIRESHARK_PRESEED
                .starts_with("wireshark-common wireshark-common/install-setuid boolean false")
        );
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
