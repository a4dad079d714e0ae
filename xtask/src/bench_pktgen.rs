//! `cargo xtask bench --pktgen`: cxos's `pktgen` against Linux's in-kernel
//! pktgen (`pktgen.ko`, driving its own mlx5_core) on the same simulated
//! adapter (ConnectX-5 model on a TAP in a network namespace), in the same
//! QEMU (TCG), one run after the other in one invocation: 60-byte frames
//! (Linux's `pkt_size` default; 64 on the wire with the FCS) to a MAC
//! nobody in the namespace has, `PKTGEN_FRAMES` of them, the packets per
//! second each reports, and cxos / Linux.
//!
//! The model's own rate is bounded too: cxos's summary counts how often
//! the ring was full (the device had not completed the previous bursts
//! yet), and the model's wire counter shows every frame left it.
//!
//! Needs root (the namespace); without it the figures are skipped with a line.

use std::path::Path;
use std::time::Duration;

use crate::bench::Figure;
use crate::bench_qemu::Bed;
use crate::netns::PeerConfig;
use crate::sim_device::SimDevice;
use crate::systests_attach::plain_line;

const PART: &str = "cx5";
const TIMEOUT: Duration = Duration::from_secs(600);
/// Frames each generator sends.
pub const PKTGEN_FRAMES: u64 = 200_000;
/// Where the frames go: a locally administered MAC nobody has.
const DST: &str = "02:00:00:00:00:99";

fn figure(name: &str, value: impl std::fmt::Display, unit: &str) -> Figure {
    Figure {
        name: name.into(),
        value: value.to_string(),
        unit: unit.into(),
    }
}

/// The number before `pps` in a pktgen summary (cxos: `123 pps,`;
/// Linux: `123pps`).
pub fn pps_of(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| {
            let w = w.trim_end_matches(',');
            if let Some(n) = w.strip_suffix("pps") {
                return n.parse().ok().filter(|_| !n.is_empty());
            }
            None
        })
        .or_else(|| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words
                .windows(2)
                .find(|p| p[1].trim_end_matches(',') == "pps")
                .and_then(|p| p[0].parse().ok())
        })
}

/// The model's `wire tx <n>` counter.
fn wire_tx(sim: &SimDevice) -> Result<u64, String> {
    let lines = sim.ask_ok("stats")?;
    lines
        .iter()
        .find_map(|l| l.strip_prefix("wire tx "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no wire tx in {lines:?}"))
}

/// The figures (see the module docs); `Err` with `skipped: ...` when not root.
pub fn figures(ws: &crate::workspace::Workspace, kernel: &Path) -> Result<Vec<Figure>, String> {
    let bed = Bed::new(ws, kernel, PeerConfig::new("pktgen"), "bench-pktgen")?;
    let (net, setup, dir) = (&bed.net, &bed.setup, &bed.dir);

    // cxos.
    let mut sim = SimDevice::start_with(
        &setup.sim,
        PART,
        "pktgen-cxos",
        &dir.join("cxos.sim.log"),
        &net.sim_options(None),
    )?;
    let mut shell = bed.boot_cxos(&sim, "", &[], "cxos.log", TIMEOUT)?;
    let before = wire_tx(&sim)?;
    let answer = shell.ask(&format!(
        "pktgen -c {PKTGEN_FRAMES} -s 60 -b 32 --dst {DST}"
    ))?;
    let cxos_line =
        plain_line(&answer, &format!("pktgen: sent {PKTGEN_FRAMES} frames"))?.to_string();
    let cxos_pps = pps_of(&cxos_line).ok_or_else(|| format!("no pps: {cxos_line}"))?;
    let cxos_wire = wire_tx(&sim)? - before;
    shell.poweroff(&mut sim)?;

    // Linux.
    let guest = crate::linux_guest::guest().map_err(|e| e.to_string())?;
    let mut sim = SimDevice::start_with(
        &setup.sim,
        PART,
        "pktgen-linux",
        &dir.join("linux.sim.log"),
        &net.sim_options(None),
    )?;
    let script = format!(
        r#"
pci=0000:01:00.0
modprobe mlx5_core
wait_for 60 has_netdev $pci
dev=$(netdev_of $pci)
ip link set "$dev" up
check carrier wait_for 30 carrier_up "$dev"
check pktgen modprobe pktgen
pg() {{ echo "$2" > /proc/net/pktgen/$1; }}
pg kpktgend_0 rem_device_all
pg kpktgend_0 "add_device $dev"
pg "$dev" "count {PKTGEN_FRAMES}"
pg "$dev" "pkt_size 60"
pg "$dev" "delay 0"
pg "$dev" "clone_skb 1000"
pg "$dev" "burst 32" || echo "pktgen: burst refused"
pg "$dev" "dst 10.99.0.1"
pg "$dev" "dst_mac {DST}"
pg pgctrl start
echo "linux-pktgen: $(grep -A1 'Result: OK' /proc/net/pktgen/$dev | tr '\n' ' ')"
"#
    );
    let vm = crate::linux_vm::LinuxVm::boot(
        &setup.qemu,
        &guest,
        &[&sim],
        &script,
        &dir.join("linux.log"),
        TIMEOUT,
    )?;
    let text = vm.finish()?;
    sim.expect_clean_exit()?;
    crate::linux_vm::require_checks(&text, &["carrier", "pktgen"])?;
    let linux_line = text
        .lines()
        .find(|l| l.starts_with("linux-pktgen: Result: OK"))
        .ok_or("no pktgen result in the Linux guest's output")?
        .to_string();
    let linux_pps = pps_of(&linux_line).ok_or_else(|| format!("no pps: {linux_line}"))?;
    drop(bed);
    println!("    cxos:  {cxos_line}");
    println!("    Linux: {linux_line}");
    Ok(vec![
        figure("tcg-pktgen-cxos-cx5", cxos_pps, "pps"),
        figure("tcg-pktgen-cxos-model-wire-tx", cxos_wire, "frames"),
        figure("tcg-pktgen-linux-cx5", linux_pps, "pps"),
        figure(
            "tcg-pktgen-cxos-over-linux",
            format!("{:.2}", cxos_pps as f64 / linux_pps.max(1) as f64),
            "x",
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pps_from_either_summary() {
        let cxos = "pktgen: sent 200000 frames of 60 bytes in 0.500 s: 400000 pps, 0.192 Gbit/s (ring full 3 times)";
        assert_eq!(pps_of(cxos), Some(400_000));
        let linux = "linux-pktgen: Result: OK: 1000000(c990000+d10000) usec, 200000 (60byte,0frags)   200000pps 96Mb/sec (96000000bps) errors: 0 ";
        assert_eq!(pps_of(linux), Some(200_000));
        assert_eq!(pps_of("no rate"), None);
    }
}
