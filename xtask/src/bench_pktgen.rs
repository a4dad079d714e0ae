//! `cargo xtask bench --pktgen`: cxos's `pktgen` against Linux's in-kernel
//! pktgen (`pktgen.ko`, driving its own mlx5_core) on the same simulated
//! adapter (ConnectX-5 model), in the same QEMU (TCG), one run after the
//! other in one invocation: 60-byte frames (Linux's `pkt_size` default; 64
//! on the wire with the FCS) to a MAC nobody has, `PKTGEN_FRAMES` of
//! them, the packets per second each reports, and cxos / Linux.
//!
//! The port's cable is `--wire sink` for both: a far end that takes every
//! frame at line rate, as a real 100 GbE port drains 148 Mpps. A TAP would
//! cost one write(2) and the host stack's receive path per frame on the
//! machine's shared CPUs and set the rate for both generators.
//!
//! The model shows it was not the bottleneck: its own clock
//! (`tx-engine` in its log at exit: `mlx5_sim::datapath::tx_engine_line`)
//! gives, for the stretch of transmit work of the run, the frames per
//! second it processed (next to each generator's pps) and the frames per
//! second of its engine's own busy time (its capacity). `model-headroom`
//! is the smaller capacity / pps of the two runs: above 1, the drivers set
//! the rates. cxos's summary also counts how often its ring was full.
//!
//! No network namespace or TAP: the sink cable needs none, so neither is
//! created and the bench runs without root where QEMU (with vfio-user)
//! and the Linux guest image are already provisioned (building them runs
//! chroot, which needs root).

use std::path::Path;
use std::time::Duration;

use crate::bench::Figure;
use crate::bench_qemu::Host;
use crate::sim_device::{SimDevice, SimOptions};
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

/// The model's own view of a run: the stretch of transmit work with the
/// most frames (`tx-engine ... peak frames <n> span-us <n> busy-us <n>`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Engine {
    pub frames: u64,
    /// Frames per second of wall time.
    pub pps: f64,
    /// Frames per second of the engine's busy time.
    pub capacity: f64,
}

/// The last `tx-engine` line of a model's log.
pub fn engine_of(log: &str) -> Option<Engine> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("tx-engine frames "))?;
    let peak = line.split(" peak ").nth(1)?;
    let num = |key: &str| -> Option<f64> {
        let mut w = peak.split_whitespace();
        w.by_ref().find(|x| *x == key)?;
        w.next()?.parse().ok()
    };
    let frames = num("frames")?;
    let span = num("span-us")?;
    let busy = num("busy-us")?;
    let rate = |us: f64| if us > 0.0 { frames * 1e6 / us } else { 0.0 };
    Some(Engine {
        frames: frames as u64,
        pps: rate(span),
        capacity: rate(busy),
    })
}

fn engine_in(path: &Path) -> Result<Engine, String> {
    let log = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    engine_of(&log).ok_or_else(|| format!("no tx-engine line in {}", path.display()))
}

/// The model on a sink cable (see the module docs).
fn sink() -> SimOptions {
    SimOptions {
        wire: Some("sink".into()),
        ..SimOptions::default()
    }
}

/// The figures (see the module docs).
pub fn figures(ws: &crate::workspace::Workspace, kernel: &Path) -> Result<Vec<Figure>, String> {
    let host = Host::new(ws, kernel, "bench-pktgen")?;
    let (setup, dir) = (&host.setup, &host.dir);

    // cxos.
    let cxos_sim_log = dir.join("cxos.sim.log");
    let mut sim = SimDevice::start_with(&setup.sim, PART, "pktgen-cxos", &cxos_sim_log, &sink())?;
    let mut shell = host.boot_cxos(&sim, "", &[], "cxos.log", TIMEOUT)?;
    let answer = shell.ask(&format!(
        "pktgen -c {PKTGEN_FRAMES} -s 60 -b 32 --dst {DST}"
    ))?;
    let cxos_line =
        plain_line(&answer, &format!("pktgen: sent {PKTGEN_FRAMES} frames"))?.to_string();
    let cxos_pps = pps_of(&cxos_line).ok_or_else(|| format!("no pps: {cxos_line}"))?;
    shell.poweroff(&mut sim)?;
    let cxos_model = engine_in(&cxos_sim_log)?;

    // Linux.
    let guest = crate::linux_guest::guest().map_err(|e| e.to_string())?;
    let linux_sim_log = dir.join("linux.sim.log");
    let mut sim = SimDevice::start_with(&setup.sim, PART, "pktgen-linux", &linux_sim_log, &sink())?;
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
    let linux_model = engine_in(&linux_sim_log)?;
    drop(host);
    let model = |m: &Engine| {
        format!(
            "model: {} frames at {:.0} pps, engine capacity {:.0} pps",
            m.frames, m.pps, m.capacity
        )
    };
    let headroom = |m: &Engine, pps: u64| m.capacity / pps.max(1) as f64;
    let (cxos_room, linux_room) = (
        headroom(&cxos_model, cxos_pps),
        headroom(&linux_model, linux_pps),
    );
    println!("    cxos:  {cxos_line}");
    println!("           {}", model(&cxos_model));
    println!("    Linux: {linux_line}");
    println!("           {}", model(&linux_model));
    println!(
        "    model-headroom: {:.2}x (cxos {cxos_room:.2}x, Linux {linux_room:.2}x: the model's capacity / the generator's pps; above 1 the driver set the rate)",
        cxos_room.min(linux_room)
    );
    Ok(vec![
        figure("tcg-pktgen-cxos-cx5", cxos_pps, "pps"),
        figure(
            "tcg-pktgen-cxos-model-pps",
            format!("{:.0}", cxos_model.pps),
            "pps",
        ),
        figure(
            "tcg-pktgen-cxos-model-capacity",
            format!("{:.0}", cxos_model.capacity),
            "pps",
        ),
        figure("tcg-pktgen-linux-cx5", linux_pps, "pps"),
        figure(
            "tcg-pktgen-linux-model-pps",
            format!("{:.0}", linux_model.pps),
            "pps",
        ),
        figure(
            "tcg-pktgen-linux-model-capacity",
            format!("{:.0}", linux_model.capacity),
            "pps",
        ),
        figure(
            "tcg-pktgen-cxos-over-linux",
            format!("{:.2}", cxos_pps as f64 / linux_pps.max(1) as f64),
            "x",
        ),
        figure(
            "tcg-pktgen-model-headroom",
            format!("{:.2}", cxos_room.min(linux_room)),
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

    #[test]
    fn the_models_rate_from_its_log() {
        let log = "mlx5-sim: INFO mlx5_sim::vfio: client disconnected\n\
                   mlx5-sim: INFO mlx5_sim::vfio: tx-engine frames 200012 busy-us 90000 peak frames 200000 span-us 250000 busy-us 50000 pps 800000 capacity-pps 4000000\n";
        let e = engine_of(log).unwrap();
        assert_eq!(e.frames, 200_000);
        assert_eq!(e.pps, 800_000.0);
        assert_eq!(e.capacity, 4_000_000.0);
        assert_eq!(engine_of("no such line"), None);
        assert_eq!(
            engine_of("tx-engine frames 0 busy-us 0 peak frames 0 span-us 0 busy-us 0 pps 0 capacity-pps 0")
                .map(|e| e.pps),
            Some(0.0)
        );
    }
}
