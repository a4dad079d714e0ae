//! QEMU command lines for cxos, and what QEMU's exit status means.
//!
//! The base machine is the contract's (docs: qemu/README.md): q35, no default
//! devices, serial console on stdio, `isa-debug-exit` at 0xf4 so the kernel
//! can report its verdict as QEMU's exit status. Everything a run adds (how
//! the kernel is loaded, accelerator, extra devices) is a field of
//! [`Machine`], so later features (a simulated adapter, passthrough) only add
//! fields here.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::provision::{self, HostPackage};
use crate::{Result, XtaskError};

/// Exit status of QEMU when the kernel wrote 0x10 (pass) to isa-debug-exit: `(0x10 << 1) | 1`.
pub const EXIT_PASS: i32 = 33;
/// Exit status of QEMU when the kernel wrote 0x11 (fail): `(0x11 << 1) | 1`.
pub const EXIT_FAIL: i32 = 35;

/// What the kernel said through QEMU's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The kernel wrote the pass code.
    Pass,
    /// The kernel wrote the fail code.
    Fail,
    /// QEMU exited some other way (its own error, a triple fault with
    /// `-no-reboot` gives 0, a signal): the kernel gave no verdict.
    Silent(Option<i32>),
}

impl Verdict {
    pub fn from_status(status: ExitStatus) -> Self {
        Self::from_code(status.code())
    }

    pub fn from_code(code: Option<i32>) -> Self {
        match code {
            Some(EXIT_PASS) => Self::Pass,
            Some(EXIT_FAIL) => Self::Fail,
            other => Self::Silent(other),
        }
    }

    /// The exit code xtask itself returns: 0 pass, 1 fail, 2 no verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Pass => 0,
            Self::Fail => 1,
            Self::Silent(_) => 2,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pass => write!(f, "pass (QEMU exit status {EXIT_PASS})"),
            Self::Fail => write!(f, "fail (QEMU exit status {EXIT_FAIL})"),
            Self::Silent(Some(code)) => {
                write!(f, "no verdict from the kernel (QEMU exit status {code})")
            }
            Self::Silent(None) => {
                write!(f, "no verdict from the kernel (QEMU killed by a signal)")
            }
        }
    }
}

/// `cargo xtask test --smp N`: every cxos machine gets `-smp N`.
static SMP_OVERRIDE: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

pub fn set_smp_override(cpus: u16) {
    let _ = SMP_OVERRIDE.set(cpus);
}

pub fn smp_override() -> Option<u16> {
    SMP_OVERRIDE.get().copied()
}

/// What `--smp` did to the machines a system test started, so the run
/// can name the tests it did not reach instead of passing them silently.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SmpUse {
    /// A cxos machine got the override.
    pub cxos: bool,
    /// `-smp` values the test gave its machines itself (QEMU takes the
    /// last `-smp`, so these replace the override).
    pub own: std::collections::BTreeSet<String>,
}

static SMP_USE: std::sync::Mutex<SmpUse> = std::sync::Mutex::new(SmpUse {
    cxos: false,
    own: std::collections::BTreeSet::new(),
});

fn smp_use() -> std::sync::MutexGuard<'static, SmpUse> {
    SMP_USE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records the `-smp` value in arguments appended after a cxos machine's
/// (only while `--smp` is in force).
pub fn note_own_smp(extra: &[&str]) {
    if SMP_OVERRIDE.get().is_none() {
        return;
    }
    if let Some(at) = extra.iter().position(|a| *a == "-smp") {
        let value = extra.get(at + 1).copied().unwrap_or("");
        smp_use().own.insert(value.to_string());
    }
}

/// What `--smp` did since the last call.
pub fn take_smp_use() -> SmpUse {
    std::mem::take(&mut *smp_use())
}

/// TCG (software emulation) is the default: KVM here is a nested software
/// hypervisor that fails on ordinary kernel code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Accel {
    #[default]
    Tcg,
    Kvm,
}

impl Accel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tcg => "tcg",
            Self::Kvm => "kvm",
        }
    }
}

/// OVMF's code and variable-store templates from Debian's `ovmf` package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ovmf {
    pub code: PathBuf,
    pub vars_template: PathBuf,
}

impl Ovmf {
    /// Pairs Debian ships: the 4 MiB build (bookworm and trixie), then the 2 MiB one (bookworm).
    const CANDIDATES: &[(&str, &str)] = &[
        (
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ),
        (
            "/usr/share/OVMF/OVMF_CODE.fd",
            "/usr/share/OVMF/OVMF_VARS.fd",
        ),
    ];

    pub fn find() -> Result<Self> {
        Self::CANDIDATES
            .iter()
            .map(|(code, vars)| Self {
                code: code.into(),
                vars_template: vars.into(),
            })
            .find(|o| o.code.is_file() && o.vars_template.is_file())
            .ok_or_else(|| {
                XtaskError::msg(
                    "OVMF firmware not found in /usr/share/OVMF (Debian package `ovmf`)",
                )
            })
    }
}

/// How the kernel gets into the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// QEMU loads the ELF itself through its PVH note (`-kernel`).
    Pvh { kernel: PathBuf, cmdline: String },
    /// SeaBIOS boots GRUB from the ISO (the command line is in its grub.cfg).
    BiosIso { iso: PathBuf },
    /// A Linux kernel image with an initramfs (the Linux guest of
    /// [`crate::linux_vm`]).
    Linux {
        kernel: PathBuf,
        initrd: PathBuf,
        cmdline: String,
    },
    /// OVMF boots GRUB from the ISO; `vars` is a private, writable copy of the variable store.
    UefiIso {
        iso: PathBuf,
        ovmf: Ovmf,
        vars: PathBuf,
    },
}

/// One QEMU machine: the contract's base plus what a run adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub boot: Boot,
    /// QEMU's `-machine` value: `q35` (the contract's) unless a test needs another.
    pub machine_type: String,
    pub accel: Accel,
    pub memory: String,
    /// `-object` values, in order (e.g. a shared memfd memory backend for vfio-user).
    pub objects: Vec<String>,
    /// Extra `-device` values, in order (e.g. `e1000e`, `edu`).
    pub devices: Vec<String>,
    /// Files the guest reads through QEMU's firmware config (`-fw_cfg
    /// name=<name>,file=<path>`).
    pub fw_cfg: Vec<(String, PathBuf)>,
    /// `-netdev` values, in order (backends of the NICs in `devices`).
    pub netdevs: Vec<String>,
    /// A QMP socket QEMU listens on (`-qmp unix:PATH,server=on,wait=off`;
    /// [`crate::qmp`] talks to it).
    pub qmp: Option<PathBuf>,
}

impl Machine {
    pub fn new(boot: Boot) -> Self {
        Self {
            boot,
            machine_type: "q35".to_string(),
            accel: Accel::Tcg,
            memory: "512M".to_string(),
            objects: Vec::new(),
            devices: Vec::new(),
            fw_cfg: Vec::new(),
            netdevs: Vec::new(),
            qmp: None,
        }
    }

    /// A virtio-net NIC `id` with MAC `mac` whose backend is QEMU's
    /// stream socket client on the unix socket `path` (a model's
    /// `--wire qemu:PATH`; 4-byte big-endian length before each frame).
    /// QEMU retries the connection every second while nobody listens.
    /// The NIC reports `speed_mbps` at full duplex: Linux's bonding runs
    /// LACP only on full-duplex ports, and a virtio-net without them
    /// reports neither.
    pub fn stream_nic(&mut self, id: &str, mac: &str, path: &Path, speed_mbps: u32) {
        let mut netdev = OsString::from(format!(
            "stream,id={id},server=off,reconnect-ms=1000,addr.type=unix,addr.path="
        ));
        netdev.push(escape_comma(path));
        self.netdevs.push(netdev.to_string_lossy().into_owned());
        self.devices.push(format!(
            "virtio-net-pci,netdev={id},id={id},mac={mac},speed={speed_mbps},duplex=full"
        ));
    }

    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.devices.push(device.into());
        self
    }

    /// QEMU's arguments (without the program name).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        push(&[
            "-nodefaults",
            "-machine",
            &self.machine_type,
            "-accel",
            self.accel.as_str(),
        ]);
        push(&["-m", &self.memory, "-cpu", "max", "-display", "none"]);
        push(&["-serial", "stdio", "-no-reboot"]);
        push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        // cxos machines only: the Linux guests (model probes, peers) are
        // not what `--smp` tests, and Linux's IO-APIC timer check can
        // fail on a loaded host with two TCG vCPUs.
        if let Some(n) = SMP_OVERRIDE.get()
            && !matches!(self.boot, Boot::Linux { .. })
        {
            push(&["-smp", &n.to_string()]);
            smp_use().cxos = true;
        }
        match &self.boot {
            Boot::Pvh { kernel, cmdline } => {
                args.push("-kernel".into());
                args.push(kernel.into());
                args.push("-append".into());
                args.push(cmdline.into());
            }
            Boot::Linux {
                kernel,
                initrd,
                cmdline,
            } => {
                args.push("-kernel".into());
                args.push(kernel.into());
                args.push("-initrd".into());
                args.push(initrd.into());
                args.push("-append".into());
                args.push(cmdline.into());
            }
            Boot::BiosIso { iso } => args.extend(cdrom(iso)),
            Boot::UefiIso { iso, ovmf, vars } => {
                args.push("-drive".into());
                args.push(pflash(&ovmf.code, 0, true));
                args.push("-drive".into());
                args.push(pflash(vars, 1, false));
                args.extend(cdrom(iso));
            }
        }
        for object in &self.objects {
            args.push("-object".into());
            args.push(object.into());
        }
        for netdev in &self.netdevs {
            args.push("-netdev".into());
            args.push(netdev.into());
        }
        for device in &self.devices {
            args.push("-device".into());
            args.push(device.into());
        }
        for (name, file) in &self.fw_cfg {
            let mut value = OsString::from(format!("name={name},file="));
            value.push(escape_comma(file));
            args.push("-fw_cfg".into());
            args.push(value);
        }
        if let Some(qmp) = &self.qmp {
            let mut value = OsString::from("unix:");
            value.push(escape_comma(qmp));
            value.push(",server=on,wait=off");
            args.push("-qmp".into());
            args.push(value);
        }
        args
    }

    /// Host packages this machine needs.
    pub fn packages(&self) -> Vec<HostPackage> {
        let mut packages = vec![provision::QEMU];
        if matches!(self.boot, Boot::UefiIso { .. }) {
            packages.push(provision::OVMF);
        }
        packages
    }

    /// Prepares what the run writes (OVMF's variable store) and builds the command.
    pub fn command(&self, qemu: &Qemu) -> Result<Command> {
        if let Boot::UefiIso { ovmf, vars, .. } = &self.boot {
            if let Some(dir) = vars.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::copy(&ovmf.vars_template, vars).map_err(|e| {
                XtaskError::msg(format!("cannot copy {}: {e}", ovmf.vars_template.display()))
            })?;
        }
        let mut command = Command::new(&qemu.program);
        command.args(&qemu.leading_args).args(self.args());
        Ok(command)
    }
}

/// `-drive` value for a read-only or writable firmware flash.
fn pflash(file: &Path, unit: u32, readonly: bool) -> OsString {
    let mut value = OsString::from(format!("if=pflash,format=raw,unit={unit},"));
    if readonly {
        value.push("readonly=on,");
    }
    value.push("file=");
    value.push(escape_comma(file));
    value
}

fn cdrom(iso: &Path) -> [OsString; 2] {
    let mut value = OsString::from("media=cdrom,format=raw,readonly=on,file=");
    value.push(escape_comma(iso));
    ["-drive".into(), value]
}

/// QEMU option values separate on commas; a literal comma is written twice.
fn escape_comma(path: &Path) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// The QEMU program to run. Today this is the system's
/// `qemu-system-x86_64`; a provisioned QEMU (one with `vfio-user-pci`) will
/// be a different program with leading arguments (its loader, `-L` firmware dirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qemu {
    pub program: PathBuf,
    pub leading_args: Vec<OsString>,
}

impl Qemu {
    /// The system's QEMU, installed if missing.
    pub fn system() -> Result<Self> {
        provision::ensure(&[provision::QEMU])?;
        let program = provision::find_program("qemu-system-x86_64")
            .ok_or_else(|| XtaskError::msg("qemu-system-x86_64 not on PATH"))?;
        Ok(Self {
            program,
            leading_args: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn pvh_machine_has_the_contract_base() {
        let m = Machine::new(Boot::Pvh {
            kernel: "/t/kernel/cxos".into(),
            cmdline: "test=selftest log=info".into(),
        })
        .device("e1000e")
        .device("edu");
        assert_eq!(
            strings(&m.args()).join(" "),
            "-nodefaults -machine q35 -accel tcg -m 512M -cpu max -display none -serial stdio \
             -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -kernel /t/kernel/cxos -append test=selftest log=info -device e1000e -device edu"
        );
    }

    #[test]
    fn every_machine_starts_with_nodefaults() {
        let ovmf = Ovmf {
            code: "/o/CODE.fd".into(),
            vars_template: "/o/VARS.fd".into(),
        };
        for boot in [
            Boot::Pvh {
                kernel: "k".into(),
                cmdline: String::new(),
            },
            Boot::BiosIso {
                iso: "a.iso".into(),
            },
            Boot::UefiIso {
                iso: "a.iso".into(),
                ovmf,
                vars: "/v/vars.fd".into(),
            },
        ] {
            assert_eq!(strings(&Machine::new(boot).args())[0], "-nodefaults");
        }
    }

    #[test]
    fn uefi_machine_uses_pflash_and_a_cdrom() {
        let ovmf = Ovmf {
            code: "/o/CODE.fd".into(),
            vars_template: "/o/VARS.fd".into(),
        };
        let mut m = Machine::new(Boot::UefiIso {
            iso: "/i/a,b.iso".into(),
            ovmf,
            vars: "/v/vars.fd".into(),
        });
        m.accel = Accel::Kvm;
        let args = strings(&m.args());
        let tail = args[args.len() - 6..].join(" ");
        assert_eq!(
            tail,
            "-drive if=pflash,format=raw,unit=0,readonly=on,file=/o/CODE.fd \
             -drive if=pflash,format=raw,unit=1,file=/v/vars.fd \
             -drive media=cdrom,format=raw,readonly=on,file=/i/a,,b.iso"
        );
        assert!(args.windows(2).any(|w| w[0] == "-accel" && w[1] == "kvm"));
        assert_eq!(m.packages(), vec![provision::QEMU, provision::OVMF]);
    }

    #[test]
    fn machine_type_and_memory_are_configurable() {
        let mut m = Machine::new(Boot::BiosIso {
            iso: "a.iso".into(),
        });
        m.machine_type = "pc".into();
        m.memory = "5G".into();
        m.objects
            .push("memory-backend-memfd,id=mem,size=5G,share=on".into());
        let args = strings(&m.args());
        assert!(
            args.windows(2)
                .any(|w| w[0] == "-object" && w[1].starts_with("memory-backend-memfd,id=mem"))
        );
        assert!(args.windows(2).any(|w| w[0] == "-machine" && w[1] == "pc"));
        assert!(args.windows(2).any(|w| w[0] == "-m" && w[1] == "5G"));
        assert!(!args.contains(&"q35".to_string()));
    }

    #[test]
    fn linux_machine_loads_kernel_initrd_and_fw_cfg_files() {
        let mut m = Machine::new(Boot::Linux {
            kernel: "/g/vmlinuz".into(),
            initrd: "/g/initramfs.cpio".into(),
            cmdline: "console=ttyS0".into(),
        });
        m.fw_cfg
            .push(("opt/cxos/script".into(), "/l/a,b.sh".into()));
        let line = strings(&m.args()).join(" ");
        assert!(
            line.contains("-kernel /g/vmlinuz -initrd /g/initramfs.cpio -append console=ttyS0"),
            "{line}"
        );
        assert!(
            line.ends_with("-fw_cfg name=opt/cxos/script,file=/l/a,,b.sh"),
            "{line}"
        );
    }

    #[test]
    fn stream_nics_and_qmp_are_on_the_line() {
        let mut m = Machine::new(Boot::BiosIso {
            iso: "a.iso".into(),
        });
        m.stream_nic("p0", "52:54:00:19:00:01", Path::new("/w/a,b.sock"), 25000);
        m.stream_nic("p1", "52:54:00:19:00:02", Path::new("/w/c.sock"), 25000);
        m.qmp = Some("/w/qmp.sock".into());
        let line = strings(&m.args()).join(" ");
        assert!(
            line.ends_with(
                "-netdev stream,id=p0,server=off,reconnect-ms=1000,addr.type=unix,\
                 addr.path=/w/a,,b.sock \
                 -netdev stream,id=p1,server=off,reconnect-ms=1000,addr.type=unix,\
                 addr.path=/w/c.sock \
                 -device virtio-net-pci,netdev=p0,id=p0,mac=52:54:00:19:00:01,\
                 speed=25000,duplex=full \
                 -device virtio-net-pci,netdev=p1,id=p1,mac=52:54:00:19:00:02,\
                 speed=25000,duplex=full -qmp unix:/w/qmp.sock,server=on,wait=off"
            ),
            "{line}"
        );
    }

    #[test]
    fn exit_status_maps_to_verdict() {
        assert_eq!(Verdict::from_code(Some(33)), Verdict::Pass);
        assert_eq!(Verdict::from_code(Some(35)), Verdict::Fail);
        assert_eq!(Verdict::from_code(Some(0)), Verdict::Silent(Some(0)));
        assert_eq!(Verdict::from_code(Some(1)), Verdict::Silent(Some(1)));
        assert_eq!(Verdict::from_code(None), Verdict::Silent(None));
        assert_eq!(Verdict::Pass.exit_code(), 0);
        assert_eq!(Verdict::Fail.exit_code(), 1);
        assert_eq!(Verdict::Silent(Some(1)).exit_code(), 2);
    }
}
