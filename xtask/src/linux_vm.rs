//! A Linux VM for the system tests: the guest of [`crate::linux_guest`]
//! booted in the vfio-user QEMU (TCG) with one or more `mlx5-sim`
//! functions attached (01:00.0, 02:00.0, ...), running a shell script the
//! test writes. Or a *peer* VM ([`LinuxVm::boot_peer`]): no model
//! function, instead virtio-net NICs whose backends are models' port
//! wires (`mlx5-sim --wire qemu:PATH`; QEMU's `-netdev stream` connects
//! to PATH), and a QMP socket through which the test pulls a NIC's cable
//! (`set_link`, [`crate::qmp`]).
//!
//! The script gets [`PRELUDE`] first, shell functions that speak a line
//! protocol on the serial console:
//!
//! - `check NAME CMD...` runs CMD and prints `cxos-check NAME ok` or
//!   `cxos-check NAME FAILED: <last lines of its output>` (the output
//!   itself follows indented, for the log);
//! - `value NAME TEXT` prints `cxos-value NAME TEXT` (a figure or a fact
//!   for the test to compare);
//! - `host_sync TAG...` prints `cxos-sync TAG...` and waits for the test
//!   to type one line back (in `$CXOS_REPLY`): the test acts on the host
//!   side (peer traffic, the model's control socket) at that point;
//! - `report_dmesg` prints the kernel log, each line `cxos-dmesg <raw
//!   line>` with its `<level>` prefix, for [`dmesg_problems`];
//! - `wait_for SECONDS CMD...` retries CMD every 0.2 s; `netdev_of PCI`
//!   names the interface of a PCI function, `netdev_with_mac MAC` the one
//!   with that address (a peer VM's virtio-net NICs); `carrier_up IF`,
//!   `carrier_down IF`, `oper_down IF` (`carrier` cannot be read while the
//!   interface is down);
//! - `iperf3_client ARGS...` runs `iperf3 ARGS...`, again (up to 5 times,
//!   1 s apart) while it fails before the test starts (no connection, or
//!   the control connection reset): an iperf3 server closes its listening
//!   socket after each test and opens it again a moment later, so
//!   back-to-back clients can find no listener, or be reset.
//!
//! The prelude's own variables are named `cxos_*` (dash functions share
//! the script's globals).
//!
//! After the script the guest prints `cxos-guest: script exit <status>` and
//! powers off. The kernel's own console messages are silenced
//! (`loglevel=1`) so they never split a protocol line.

use std::path::Path;
use std::time::Duration;

use crate::linux_guest::{LinuxGuest, SCRIPT_FW_CFG};
use crate::qemu::{Boot, Machine, Qemu};
use crate::session::Session;
use crate::sim_device::SimDevice;

/// Guest RAM of a Linux VM (a shared memfd every model maps).
pub const MEMORY: &str = "1G";

/// The kernel command line: an oops panics, and a panic reboots at once,
/// which ends QEMU (`-no-reboot`): a test fails there and then instead of
/// waiting out its timeout on a wedged guest.
pub const CMDLINE: &str = "console=ttyS0 loglevel=1 oops=panic panic=-1";

/// Shell functions every script starts with (see the module docs).
pub const PRELUDE: &str = r#"export PATH=/usr/sbin:/usr/bin:/sbin:/bin
check() {
    cxos_name=$1; shift
    if cxos_out=$("$@" 2>&1); then
        echo "cxos-check $cxos_name ok"
    else
        echo "cxos-check $cxos_name FAILED: $(printf '%s' "$cxos_out" | tail -n 3 | tr '\n' ' ')"
    fi
    [ -z "$cxos_out" ] || printf '%s\n' "$cxos_out" | sed 's/^/  | /'
}
value() { cxos_v=$1; shift; echo "cxos-value $cxos_v $*"; }
host_sync() { echo "cxos-sync $*"; read -r CXOS_REPLY; }
report_dmesg() { dmesg -r | sed 's/^/cxos-dmesg /'; }
wait_for() {
    cxos_t=$1; shift; cxos_i=0
    while ! "$@" >/dev/null 2>&1; do
        cxos_i=$((cxos_i + 1)); [ "$cxos_i" -gt $((cxos_t * 5)) ] && return 1; sleep 0.2
    done
}
netdev_of() { ls "/sys/bus/pci/devices/$1/net" 2>/dev/null | head -n 1; }
has_netdev() { [ -n "$(netdev_of "$1")" ]; }
netdev_with_mac() {
    for cxos_d in /sys/class/net/*; do
        [ "$(cat "$cxos_d/address" 2>/dev/null)" = "$1" ] && { echo "${cxos_d##*/}"; return 0; }
    done
    return 1
}
carrier_up() { [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]; }
carrier_down() { [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 0 ]; }
oper_down() { [ "$(cat "/sys/class/net/$1/operstate")" = down ]; }
iperf3_client() {
    cxos_n=1
    while :; do
        cxos_o=$(iperf3 "$@" 2>&1) && { printf '%s\n' "$cxos_o"; return 0; }
        case $cxos_o in *"unable to connect"*|*"control message"*) ;; *) cxos_n=5 ;; esac
        [ "$cxos_n" -lt 5 ] || { printf '%s\n' "$cxos_o"; return 1; }
        cxos_n=$((cxos_n + 1)); sleep 1
    done
}
"#;

/// A NIC of a peer VM: virtio-net `id` (the name `set_link` takes) with
/// `mac`, connected to the model's `--wire qemu:<wire>`, reporting
/// `speed_mbps` full duplex (what bonding's 802.3ad keys on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamNic {
    pub id: String,
    pub mac: String,
    pub wire: std::path::PathBuf,
    pub speed_mbps: u32,
}

/// A running Linux VM.
#[derive(Debug)]
pub struct LinuxVm {
    pub session: Session,
    /// Serial output consumed by the protocol so far.
    pub read: usize,
}

/// The machine for `guest` with the `sims` attached, handing it `script`.
pub fn machine(guest: &LinuxGuest, script: &Path, sims: &[&SimDevice]) -> Machine {
    let mut m = Machine::new(Boot::Linux {
        kernel: guest.kernel.clone(),
        initrd: guest.initramfs.clone(),
        cmdline: CMDLINE.to_string(),
    });
    m.memory = MEMORY.to_string();
    m.fw_cfg
        .push((SCRIPT_FW_CFG.to_string(), script.to_path_buf()));
    if !sims.is_empty() {
        let sockets: Vec<&Path> = sims.iter().map(|s| s.socket.as_path()).collect();
        crate::sim_device::add_functions(&mut m, &sockets);
    }
    m
}

impl LinuxVm {
    /// Writes [`PRELUDE`] + `script` to `<log>.sh` and boots the VM; its
    /// serial output goes to `log`.
    pub fn boot(
        qemu: &Qemu,
        guest: &LinuxGuest,
        sims: &[&SimDevice],
        script: &str,
        log: &Path,
        timeout: Duration,
    ) -> Result<LinuxVm, String> {
        LinuxVm::boot_with(qemu, guest, sims, script, log, timeout, |_| {})
    }

    /// A peer VM: no model function, a virtio-net NIC on each of `nics`
    /// (their backends the models' `qemu:` wires), QMP on `qmp` for
    /// [`crate::qmp::Qmp::set_link`]. The script finds a NIC by its MAC
    /// (`netdev_with_mac`).
    pub fn boot_peer(
        qemu: &Qemu,
        guest: &LinuxGuest,
        nics: &[StreamNic],
        qmp: &Path,
        script: &str,
        log: &Path,
        timeout: Duration,
    ) -> Result<LinuxVm, String> {
        LinuxVm::boot_with(qemu, guest, &[], script, log, timeout, |m| {
            for nic in nics {
                m.stream_nic(&nic.id, &nic.mac, &nic.wire, nic.speed_mbps);
            }
            m.qmp = Some(qmp.to_path_buf());
        })
    }

    /// [`LinuxVm::boot`] with `customize` adding to the machine.
    pub fn boot_with(
        qemu: &Qemu,
        guest: &LinuxGuest,
        sims: &[&SimDevice],
        script: &str,
        log: &Path,
        timeout: Duration,
        customize: impl FnOnce(&mut Machine),
    ) -> Result<LinuxVm, String> {
        let path = log.with_extension("sh");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&path, format!("{PRELUDE}{script}"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut m = machine(guest, &path, sims);
        customize(&mut m);
        let mut command = crate::qemu_provision::command_of(qemu);
        command.args(m.args());
        let session = Session::spawn(command, log, timeout).map_err(|e| e.to_string())?;
        Ok(LinuxVm { session, read: 0 })
    }

    /// Waits for the next `cxos-sync` line; returns its words after the
    /// marker.
    pub fn next_sync(&mut self) -> Result<Vec<String>, String> {
        let at = self.session.expect_from(self.read, "cxos-sync ")?;
        let end = self.session.expect_from(at, "\n")?;
        let words = self.session.serial()[at..end]
            .split_whitespace()
            .map(str::to_string)
            .collect();
        self.read = end;
        Ok(words)
    }

    /// The answer to the last sync (one line).
    pub fn reply(&mut self, line: &str) -> Result<(), String> {
        self.session.send_line(line)
    }

    /// Waits for the script to end and the VM to power off; the whole
    /// serial output. Fails if the script did not end with status 0.
    pub fn finish(mut self) -> Result<String, String> {
        self.session.wait_exit()?;
        let text = self.session.serial().to_string();
        if let Some(oops) = text
            .lines()
            .find(|l| l.contains("Oops:") || l.contains("BUG:"))
        {
            return Err(format!("the guest kernel crashed: {}", oops.trim()));
        }
        match text
            .lines()
            .find_map(|l| l.trim().strip_prefix("cxos-guest: script exit "))
        {
            Some("0") => Ok(text),
            Some(other) => Err(format!("the guest script exited {other}")),
            None => Err("the guest script never finished (no `cxos-guest: script exit`)".into()),
        }
    }
}

/// `cxos-check` results in order: (name, `Ok` or the failure text).
pub fn checks(text: &str) -> Vec<(String, Result<(), String>)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim_end().strip_prefix("cxos-check ")?;
            let (name, verdict) = rest.split_once(' ')?;
            let r = match verdict {
                "ok" => Ok(()),
                v => Err(v.strip_prefix("FAILED: ").unwrap_or(v).to_string()),
            };
            Some((name.to_string(), r))
        })
        .collect()
}

/// Requires every check named in `names` to be present and ok.
pub fn require_checks(text: &str, names: &[&str]) -> Result<(), String> {
    let all = checks(text);
    let mut bad = Vec::new();
    for name in names {
        match all.iter().find(|(n, _)| n == name) {
            Some((_, Ok(()))) => {}
            Some((_, Err(why))) => bad.push(format!("{name}: {why}")),
            None => bad.push(format!("{name}: never ran")),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("guest checks failed:\n  {}", bad.join("\n  ")))
    }
}

/// The text of `cxos-value NAME ...`, if printed.
pub fn value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("cxos-value {name} ");
    text.lines()
        .find_map(|l| l.trim_end().strip_prefix(prefix.as_str()))
}

/// Kernel messages a test accepts from mlx5_core although they are
/// warnings, each with the reason the model cannot avoid them.
pub const DMESG_ALLOWED: &[(&str, &str)] = &[
    (
        "Failed to get valid vendor specific ID",
        "the model's config space has no vendor-specific capability (the \
         crspace/ICMD gateway used for firmware flashing and crash dumps)",
    ),
    (
        "PTM is not supported by PCIe",
        "no PCIe Precision Time Measurement: the model has no PTP clock",
    ),
];

/// The `cxos-dmesg` lines of `text` that are mlx5 errors or warnings
/// (levels 0-4) or any kernel WARN / BUG splat, minus [`DMESG_ALLOWED`].
pub fn dmesg_problems(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("cxos-dmesg "))
        .filter(|l| {
            let level = l
                .strip_prefix('<')
                .and_then(|r| r.split_once('>'))
                .and_then(|(n, _)| n.parse::<u32>().ok())
                .map(|n| n & 7)
                .unwrap_or(7);
            let splat = ["WARNING:", "BUG:", "Call Trace", "Oops", "cut here"]
                .iter()
                .any(|w| l.contains(w));
            (level <= 4 && l.contains("mlx5")) || splat
        })
        .filter(|l| !DMESG_ALLOWED.iter().any(|(a, _)| l.contains(a)))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lines_are_read() {
        let text = "cxos-guest: up 3.1 s\n\
                    cxos-check probe ok\n\
                    cxos-check carrier FAILED: timed out \n\
                    \x20 | some output\n\
                    cxos-value fw 16.35.2000 (MT_0000000008)\n";
        let c = checks(text);
        assert_eq!(c[0], ("probe".to_string(), Ok(())));
        assert_eq!(c[1].1, Err("timed out".to_string()));
        assert_eq!(value(text, "fw"), Some("16.35.2000 (MT_0000000008)"));
        assert!(require_checks(text, &["probe"]).is_ok());
        let e = require_checks(text, &["probe", "carrier", "link"]).unwrap_err();
        assert!(
            e.contains("carrier: timed out") && e.contains("link: never ran"),
            "{e}"
        );
    }

    #[test]
    fn dmesg_keeps_mlx5_warnings_and_splats_only() {
        let text = "cxos-dmesg <6>[    5.1] mlx5_core 0000:01:00.0: firmware version: 16.35.2000\n\
                    cxos-dmesg <4>[    5.2] mlx5_core 0000:01:00.0: mlx5_pci_vsc_init:66:(pid 1): Failed to get valid vendor specific ID\n\
                    cxos-dmesg <3>[    5.3] mlx5_core 0000:01:00.0: mlx5_cmd_out_err:815: CREATE_SQ(0x904) failed\n\
                    cxos-dmesg <4>[    5.4] WARNING: CPU: 0 PID: 1 at fs_core.c:3054\n\
                    cxos-dmesg <3>[    5.5] ata1: an error of another driver\n\
                    cxos-dmesg <4>[    5.6] e1000e: warning of another driver\n";
        let p = dmesg_problems(text);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("CREATE_SQ"));
        assert!(p[1].contains("WARNING: CPU"));
    }

    #[test]
    fn the_prelude_defines_the_protocol() {
        for f in [
            "check()",
            "value()",
            "host_sync()",
            "report_dmesg()",
            "wait_for()",
        ] {
            assert!(PRELUDE.contains(f), "{f}");
        }
        assert!(PRELUDE.contains("echo \"cxos-sync $*\"; read -r CXOS_REPLY"));
    }
}
