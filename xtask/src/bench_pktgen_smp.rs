//! `cargo xtask bench --pktgen-smp`: cxos's pktgen with 1 and with 2 CPUs
//! in the same QEMU (TCG) on the same simulated ConnectX-5 (issue 21), one
//! boot after the other: two generators at once, one on `net0` (CPU 0)
//! as the foreground app and one on `vnic0` as a service (`serve pktgen`),
//! `vnic0` owned by CPU 0 in the 1-CPU boot and by CPU 1 (`cpu:1`) in the
//! 2-CPU one. The figures are each boot's summed pps.
//!
//! QEMU's vCPUs, the model and the namespace share the host's cores (two
//! on the machines this runs on), so the ratio says little about how the
//! driver scales; it shows both CPUs transmitting at once.
//!
//! Needs root (the namespace); without it the figures are skipped.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::bench::Figure;
use crate::bench_pktgen::{PKTGEN_FRAMES, pps_of};
use crate::bench_qemu::Bed;
use crate::netns::PeerConfig;
use crate::sim_device::SimDevice;
use crate::systests_attach::plain_line;

const TIMEOUT: Duration = Duration::from_secs(300);
/// Where the frames go: a locally administered MAC nobody has.
const DST: &str = "02:00:00:00:00:99";

/// The `pktgen: sent ...` summaries printed since `from` (a service's may
/// follow a prompt on its line).
fn summaries(serial: &str, from: usize) -> Vec<String> {
    let needle = format!("pktgen: sent {PKTGEN_FRAMES} frames");
    serial
        .get(from..)
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.find(&needle).map(|i| l[i..].to_string()))
        .collect()
}

pub fn figures(ws: &crate::workspace::Workspace, kernel: &Path) -> Result<Vec<Figure>, String> {
    let bed = Bed::new(ws, kernel, PeerConfig::new("pktgsmp"), "bench-pktgen-smp")?;
    let mut out = Vec::new();
    for cpus in [1usize, 2] {
        let mut sim = SimDevice::start_with(
            &bed.setup.sim,
            "cx5",
            "pktgen-smp",
            &bed.dir.join(format!("smp{cpus}.sim.log")),
            &bed.net.sim_options(None),
        )?;
        let mut shell = bed.boot_cxos(
            &sim,
            &format!("vnic.0=cpu:{}", cpus - 1),
            &["-smp", &cpus.to_string()],
            &format!("smp{cpus}.log"),
            TIMEOUT,
        )?;
        let vnics = shell.ask("vnics")?;
        let owner = plain_line(&vnics, "vnic0 ")?;
        if !owner.ends_with(&format!(" cpu {}", cpus - 1)) {
            return Err(format!("vnic0 not on CPU {}:\n{vnics}", cpus - 1));
        }
        let from = shell.session.serial().len();
        let args = format!("-c {PKTGEN_FRAMES} -s 60 -b 32 --dst {DST}");
        let answer = shell.ask(&format!("serve pktgen -I vnic0 {args}"))?;
        plain_line(&answer, "service ")?;
        shell.ask(&format!("pktgen {args}"))?;
        let started = Instant::now();
        let lines = loop {
            let lines = summaries(shell.session.serial(), from);
            if lines.len() >= 2 {
                break lines;
            }
            if started.elapsed() > TIMEOUT / 2 {
                return Err(format!(
                    "{cpus} CPUs: {} of 2 pktgen summaries after byte {from}:\n{}",
                    lines.len(),
                    shell.session.serial().get(from..).unwrap_or("")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
            // The service's summary comes on its own; a prompt round trip
            // lets the console catch up.
            shell.ask("serve")?;
        };
        let pps: u64 = lines
            .iter()
            .map(|l| pps_of(l).ok_or_else(|| format!("no pps: {l}")))
            .sum::<Result<u64, String>>()?;
        for l in &lines {
            println!("    {cpus} CPU(s): {l}");
        }
        shell.poweroff(&mut sim)?;
        out.push(Figure {
            name: format!("tcg-pktgen-cxos-two-generators-smp{cpus}"),
            value: pps.to_string(),
            unit: "pps".into(),
        });
    }
    drop(bed);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_full_summaries_after_the_mark_count() {
        let text = format!(
            "pktgen: sent {PKTGEN_FRAMES} frames of 60 bytes in 1.000 s: 5 pps\n\
             x\ncxos> pktgen: sent {PKTGEN_FRAMES} frames of 60 bytes in 2.000 s: 7 pps, 0.1 Gbit/s\n\
             pktgen: sent 3 frames of 60 bytes\n"
        );
        let at = text.find('x').unwrap();
        let found = summaries(&text, at);
        assert_eq!(found.len(), 1);
        assert_eq!(pps_of(&found[0]), Some(7));
        assert_eq!(summaries(&text, 0).len(), 2);
    }
}
