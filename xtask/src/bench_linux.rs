//! `cargo xtask bench --linux`: cxos against Linux's own mlx5_core on the
//! same simulated adapter (ConnectX-5 model on a TAP in a network
//! namespace), in the same QEMU (TCG), measured with the same stock
//! `iperf3` in the namespace:
//!
//! - TCP host -> guest and guest -> host (`iperf3 -c <guest> -t 3`, and
//!   `-R`), the median of `--runs` runs each, and cxos / Linux;
//! - bring-up on the model's clock (its `--trace-commands` file): from the
//!   function's reset to the driver's first command (the guest OS booting),
//!   and from there to the driver's link decision (cxos: its attach reads
//!   PAOS; Linux: `QUERY_VPORT_STATE` when the interface comes up, right
//!   after `modprobe`), with the number of commands each driver issued to
//!   get there; and to the end of the whole bring-up (queues and steering
//!   included: the last command before the driver stays idle for 0.5 s);
//! - the distinct commands and registers Linux issued (probe, traffic,
//!   `ethtool`, MTU change, link down/up, rmmod) and how many of them the
//!   model implements (those that never failed with BAD_OPCODE or an
//!   unknown register).
//!
//! Needs root (the namespace); without it the figures are skipped with a line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bench::Figure;
use crate::bench_qemu::Bed;
use crate::netns::{PeerConfig, PeerNetwork};
use crate::sim_device::SimDevice;
use crate::systests_attach::plain_line;
use crate::systests_net::iperf3_summary;

const PART: &str = "cx5";
const GUEST: u8 = 2;
const TIMEOUT: Duration = Duration::from_secs(600);
/// A driver that issued no command for this long has finished bringing
/// the port up (both guests wait over a second before any traffic).
const IDLE_MS: f64 = 500.0;

/// One command line of a trace: (ms since reset, opcode name, register).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceLine {
    pub ms: f64,
    pub name: String,
    pub register: Option<String>,
    pub ok: bool,
    pub bad_opcode_or_register: bool,
}

/// The `cmd` lines of a `--trace-commands` file since its last `reset`.
pub fn parse_trace(text: &str) -> Vec<TraceLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("reset ") {
            out.clear();
            continue;
        }
        let Some(rest) = line.strip_prefix("cmd ") else {
            continue;
        };
        let w: Vec<&str> = rest.split_whitespace().collect();
        let (Some(ms), Some(name)) = (w.get(1), w.get(2)) else {
            continue;
        };
        let Ok(ms) = ms.trim_start_matches('+').trim_end_matches("ms").parse() else {
            continue;
        };
        // The word after `key`.
        let after = |key: &str| w.iter().position(|x| *x == key).and_then(|i| w.get(i + 1));
        let status = after("status").copied().unwrap_or("");
        let syndrome = after("syndrome").copied().unwrap_or("");
        let register = after("reg").map(|r| r.to_string());
        out.push(TraceLine {
            ms,
            name: name.split('(').next().unwrap_or(name).to_string(),
            register: register.map(|r| r.split('(').next().unwrap_or(&r).to_string()),
            ok: status == "0x0",
            // BAD_OPCODE, or ACCESS_REG's REG_ID syndrome (sim/src/syndrome.rs).
            bad_opcode_or_register: status == "0x2" || syndrome == "0x30011",
        });
    }
    out
}

/// (ms from reset to the first command, ms from there to the first line
/// `is_link` accepts, commands up to and including it).
pub fn bring_up(
    trace: &[TraceLine],
    is_link: impl Fn(&TraceLine) -> bool,
) -> Option<(f64, f64, usize)> {
    let first = trace.first()?.ms;
    let i = trace.iter().position(is_link)?;
    Some((first, trace[i].ms - first, i + 1))
}

/// (ms from the first command to the last one before the driver went idle
/// for `gap_ms`, commands up to it): the whole bring-up, queues and
/// steering included.
pub fn until_idle(trace: &[TraceLine], gap_ms: f64) -> Option<(f64, usize)> {
    let first = trace.first()?.ms;
    let i = trace
        .windows(2)
        .position(|w| w[1].ms - w[0].ms >= gap_ms)
        .unwrap_or(trace.len() - 1);
    Some((trace[i].ms - first, i + 1))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn figure(name: &str, value: impl std::fmt::Display, unit: &str) -> Figure {
    Figure {
        name: name.into(),
        value: value.to_string(),
        unit: unit.into(),
    }
}

/// Stock iperf3 from the namespace to `addr`: (host -> guest, guest ->
/// host) in Mbit/s, `runs` times each.
fn iperf3_runs(net: &PeerNetwork, addr: &str, runs: usize) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut to, mut from) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (extra, into) in [
            (&["-t", "3"][..], &mut to),
            (&["-t", "3", "-R"][..], &mut from),
        ] {
            let json = crate::systests_linux::host_iperf3(net, addr, extra)?;
            into.push(iperf3_summary(&json)?.0 / 1e6);
        }
    }
    Ok((to, from))
}

/// The figures (see the module docs); `Err` with `skipped: ...` when not root.
pub fn figures(
    ws: &crate::workspace::Workspace,
    kernel: &Path,
    runs: usize,
) -> Result<Vec<Figure>, String> {
    let bed = Bed::new(ws, kernel, PeerConfig::new("bench"), "bench-linux")?;
    let (config, net, setup, dir) = (&bed.config, &bed.net, &bed.setup, &bed.dir);
    let guest_ip = config.ipv4(GUEST);
    let host_ip = config.ipv4(1);

    // cxos.
    let cxos_trace = dir.join("cxos.trace");
    let mut options = net.sim_options(None);
    options.trace = Some(cxos_trace.clone());
    let mut sim = SimDevice::start_with(
        &setup.sim,
        PART,
        "bench-cxos",
        &dir.join("cxos.sim.log"),
        &options,
    )?;
    let mut shell = bed.boot_cxos(
        &sim,
        &format!("net.0={guest_ip}/24,gw={host_ip}"),
        &[],
        "cxos.log",
        TIMEOUT,
    )?;
    plain_line(&shell.ask("serve iperf3")?, "service ")?;
    let (cxos_to, cxos_from) = iperf3_runs(net, &guest_ip, runs)?;
    shell.poweroff(&mut sim)?;
    let cxos = parse_trace(&read(&cxos_trace)?);
    let cxos_up = bring_up(&cxos, |l| l.register.as_deref() == Some("PAOS"))
        .ok_or("no PAOS access in cxos's trace")?;
    let cxos_done = until_idle(&cxos, IDLE_MS).ok_or("empty cxos trace")?;

    // Linux.
    let guest = crate::linux_guest::guest().map_err(|e| e.to_string())?;
    let linux_trace = dir.join("linux.trace");
    let mut options = net.sim_options(None);
    options.trace = Some(linux_trace.clone());
    let mut sim = SimDevice::start_with(
        &setup.sim,
        PART,
        "bench-linux",
        &dir.join("linux.sim.log"),
        &options,
    )?;
    let script = format!(
        r#"
pci=0000:01:00.0
modprobe mlx5_core
wait_for 60 has_netdev $pci
dev=$(netdev_of $pci)
ip addr add {guest_ip}/24 dev "$dev"
ip link set "$dev" up
check carrier wait_for 30 carrier_up "$dev"
iperf3 -s -D
sleep 1
host_sync measure
ethtool -i "$dev" >/dev/null; ethtool -k "$dev" >/dev/null; ethtool -a "$dev" >/dev/null
ethtool -l "$dev" >/dev/null; ethtool -g "$dev" >/dev/null; ethtool -S "$dev" >/dev/null
ethtool "$dev" >/dev/null
ip link set "$dev" mtu 9000
ip link set "$dev" down
ip link set "$dev" up
check carrier-again wait_for 30 carrier_up "$dev"
check rmmod rmmod mlx5_core
"#
    );
    let mut vm = crate::linux_vm::LinuxVm::boot(
        &setup.qemu,
        &guest,
        &[&sim],
        &script,
        &dir.join("linux.log"),
        TIMEOUT,
    )?;
    vm.next_sync()?;
    let measured = iperf3_runs(net, &guest_ip, runs);
    vm.reply("go")?;
    let text = vm.finish()?;
    sim.expect_clean_exit()?;
    let (linux_to, linux_from) = measured?;
    crate::linux_vm::require_checks(&text, &["carrier", "carrier-again", "rmmod"])?;
    let linux = parse_trace(&read(&linux_trace)?);
    let linux_up = bring_up(&linux, |l| l.name == "QUERY_VPORT_STATE")
        .ok_or("no QUERY_VPORT_STATE in Linux's trace")?;
    let linux_done = until_idle(&linux, IDLE_MS).ok_or("empty Linux trace")?;
    let commands: BTreeSet<&str> = linux.iter().map(|l| l.name.as_str()).collect();
    let registers: BTreeSet<&str> = linux.iter().filter_map(|l| l.register.as_deref()).collect();
    let missing: BTreeSet<String> = linux
        .iter()
        .filter(|l| l.bad_opcode_or_register)
        .map(|l| l.register.clone().unwrap_or_else(|| l.name.clone()))
        .collect();
    drop(bed);

    let (ct, cf, lt, lf) = (
        median(cxos_to),
        median(cxos_from),
        median(linux_to),
        median(linux_from),
    );
    let mut figures = vec![
        figure("tcg-host-to-cxos-tcp-cx5", format!("{ct:.1}"), "Mbit/s"),
        figure("tcg-host-to-linux-tcp-cx5", format!("{lt:.1}"), "Mbit/s"),
        figure(
            "tcg-host-to-guest-cxos-over-linux",
            format!("{:.2}", ct / lt),
            "x",
        ),
        figure("tcg-cxos-to-host-tcp-cx5", format!("{cf:.1}"), "Mbit/s"),
        figure("tcg-linux-to-host-tcp-cx5", format!("{lf:.1}"), "Mbit/s"),
        figure(
            "tcg-guest-to-host-cxos-over-linux",
            format!("{:.2}", cf / lf),
            "x",
        ),
    ];
    figures.extend(bring_up_figures("cxos", cxos_up, cxos_done));
    figures.extend(bring_up_figures("linux", linux_up, linux_done));
    figures.extend([
        figure("linux-distinct-commands", commands.len(), "commands"),
        figure("linux-distinct-registers", registers.len(), "registers"),
        figure(
            "model-implements-of-them",
            commands.len() + registers.len() - missing.len(),
            "commands+registers",
        ),
    ]);
    Ok(figures)
}

/// The bring-up figures of driver `who`'s trace: `up` from [`bring_up`],
/// `done` from [`until_idle`].
fn bring_up_figures(who: &str, up: (f64, f64, usize), done: (f64, usize)) -> [Figure; 5] {
    [
        figure(
            &format!("{who}-reset-to-first-command"),
            format!("{:.0}", up.0),
            "ms",
        ),
        figure(
            &format!("{who}-first-command-to-link-up"),
            format!("{:.1}", up.1),
            "ms",
        ),
        figure(&format!("{who}-commands-to-link-up"), up.2, "commands"),
        figure(
            &format!("{who}-first-command-to-idle"),
            format!("{:.1}", done.0),
            "ms",
        ),
        figure(&format!("{who}-commands-to-idle"), done.1, "commands"),
    ]
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "reset +0.000ms\n\
        cmd 1 +5000.000ms ENABLE_HCA(0x104) op_mod 0x0 in 16 out 12 status 0x0 syndrome 0x0\n\
        cmd 2 +5001.500ms ACCESS_REG(0x805) op_mod 0x1 in 32 out 32 status 0x3 syndrome 0x30011 reg PFCC(0x5007) read\n\
        \x20 in: 0805\n\
        cmd 3 +5004.000ms QUERY_VPORT_STATE(0x750) op_mod 0x0 in 16 out 16 status 0x0 syndrome 0x0\n";

    #[test]
    fn traces_are_read_line_by_line() {
        let t = parse_trace(TRACE);
        assert_eq!(t.len(), 3);
        assert_eq!(t[1].register.as_deref(), Some("PFCC"));
        assert!(!t[1].ok && t[1].bad_opcode_or_register);
        assert_eq!(
            bring_up(&t, |l| l.name == "QUERY_VPORT_STATE"),
            Some((5000.0, 4.0, 3))
        );
        assert_eq!(until_idle(&t, 2.0), Some((1.5, 2)));
        assert_eq!(until_idle(&t, 10.0), Some((4.0, 3)));
        // A later reset starts the count again.
        let again = format!(
            "{TRACE}reset +0.000ms\ncmd 4 +10.000ms NOP(0x80d) op_mod 0x0 in 16 out 16 status 0x0 syndrome 0x0\n"
        );
        assert_eq!(parse_trace(&again).len(), 1);
    }
}
