//! `cargo xtask bench --irq-smp`: interrupt delivery per CPU (issue 21).
//! One QEMU (TCG) boot with `-smp 2` and one with `-smp 4`, each with the
//! simulated ConnectX-5 and a namespace peer; one VNIC pinned to each CPU
//! (`vnic.<i>=ip:..,cpu:<i>`), each serving a stock iperf3 client at the
//! same time. `irq` before and after gives each MSI-X vector's interrupts
//! per CPU during the runs; the table shows every queue set's completion
//! vector counted on the CPU it is bound to and nowhere else (anything
//! else is an error, not a figure).
//!
//! The counts depend on the traffic the model and the host let through
//! (wall time, shared cores); what they show is where interrupts land.
//!
//! Needs root (the namespace); without it the figures are skipped.

use std::path::Path;
use std::time::Duration;

use crate::bench::Figure;
use crate::netns::{PeerConfig, PeerError};
use crate::sim_device::SimDevice;
use crate::systests::{Context, SystemTest};
use crate::systests_attach::{Shell, plain_line};
use crate::systests_net::{iperf3_summary, static_cmdline};
use crate::systests_smp::{irq_lines, queue_set_vectors};

const TIMEOUT: Duration = Duration::from_secs(300);
/// The VNICs' addresses: `.<FIRST_VNIC + i>` for CPU i.
const FIRST_VNIC: u8 = 60;
/// Seconds each iperf3 client runs.
const IPERF_SECS: &str = "3";

/// One row of the table: a vector, what it serves, the CPU it is bound
/// to (queue sets) and its interrupts per CPU during the runs.
#[derive(Debug, PartialEq)]
struct Row {
    vector: String,
    what: String,
    bound: Option<usize>,
    counts: Vec<u64>,
}

/// The MSI-X rows of `irq` + `msix` output, counts taken as `after -
/// before`.
fn rows(before: &str, after: &str) -> Result<Vec<Row>, String> {
    let sets = queue_set_vectors(after);
    let old = irq_lines(before);
    let mut out = Vec::new();
    for (vector, role, counts) in irq_lines(after) {
        if role != "msi-x" {
            continue;
        }
        let prior = old
            .iter()
            .find(|(v, ..)| *v == vector)
            .map(|(.., c)| c.clone())
            .unwrap_or_default();
        if prior.len() != counts.len() {
            return Err(format!(
                "no per-CPU columns for {vector}:\n{before}\n{after}"
            ));
        }
        let counts = counts.iter().zip(&prior).map(|(a, b)| a - b).collect();
        let (what, bound) = match sets.iter().find(|(v, ..)| *v == vector) {
            Some((_, set, cpu)) => (format!("queue set {set}"), Some(*cpu)),
            None => ("eq0 (async, commands)".to_string(), None),
        };
        out.push(Row {
            vector,
            what,
            bound,
            counts,
        });
    }
    Ok(out)
}

/// Each queue set's vector counts only on its CPU, and the sets of the
/// CPUs that carried traffic count there.
fn check(rows: &[Row], cpus: usize) -> Result<(), String> {
    for r in rows {
        let Some(cpu) = r.bound else { continue };
        if let Some((other, n)) = r
            .counts
            .iter()
            .enumerate()
            .find(|(i, n)| *i != cpu && **n > 0)
        {
            return Err(format!(
                "{} ({}, bound to CPU {cpu}) interrupted CPU {other} {n} times",
                r.vector, r.what
            ));
        }
    }
    for cpu in 0..cpus {
        if !rows
            .iter()
            .any(|r| r.bound == Some(cpu) && r.counts.get(cpu).is_some_and(|n| *n > 0))
        {
            return Err(format!("no queue set vector fired on CPU {cpu}"));
        }
    }
    Ok(())
}

fn table(rows: &[Row], cpus: usize) -> String {
    let mut out = format!("{:<6}  {:<22}  {:>5}", "vector", "serves", "bound");
    for c in 0..cpus {
        out.push_str(&format!("  {:>8}", format!("cpu{c}")));
    }
    out.push('\n');
    for r in rows {
        let bound = r.bound.map_or("-".to_string(), |c| c.to_string());
        out.push_str(&format!("{:<6}  {:<22}  {bound:>5}", r.vector, r.what));
        for n in &r.counts {
            out.push_str(&format!("  {n:>8}"));
        }
        out.push('\n');
    }
    out
}

pub fn figures(ws: &crate::workspace::Workspace, kernel: &Path) -> Result<Vec<Figure>, String> {
    let mut config = PeerConfig::new("irqsmp");
    config.dhcp_lease_secs = None;
    let net = match crate::netns::PeerNetwork::create(&config) {
        Ok(net) => net,
        Err(PeerError::Skip(why)) => return Err(format!("skipped: {why}")),
        Err(e) => return Err(e.to_string()),
    };
    let qemu = crate::qemu_provision::vfio_user_qemu().map_err(|e| e.to_string())?;
    let ctx = Context::new(ws.clone(), qemu, kernel.to_path_buf());
    let setup = crate::systests_sim::setup(&ctx)?;
    let dir = ws.xtask_dir().join("bench-irq-smp");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for cpus in [2usize, 4] {
        let mut sim = SimDevice::start_with(
            &setup.sim,
            "cx5",
            "irq-smp",
            &dir.join(format!("smp{cpus}.sim.log")),
            &net.sim_options(None),
        )?;
        let test = SystemTest {
            name: "bench-irq-smp",
            timeout: TIMEOUT,
            run: |_, _| Err("the bench's pseudo-test is not run".into()),
        };
        let addrs: Vec<String> = (0..cpus)
            .map(|i| config.ipv4(FIRST_VNIC + i as u8))
            .collect();
        let mut cmdline = static_cmdline(&config);
        for (i, addr) in addrs.iter().enumerate() {
            cmdline.push_str(&format!(" vnic.{i}=ip:{addr}/24,cpu:{i}"));
        }
        let machine = crate::systests_sim::machine(&ctx, &sim, &cmdline);
        let smp = cpus.to_string();
        let command =
            crate::systests_sim::qemu_command(&setup, &machine, &["-smp", smp.as_str()], false);
        let session = crate::session::Session::spawn(
            command,
            &dir.join(format!("smp{cpus}.log")),
            test.timeout,
        )
        .map_err(|e| e.to_string())?;
        let mut shell = Shell::start(session)?;
        let vnics = shell.ask("vnics")?;
        for i in 0..cpus {
            let line = plain_line(&vnics, &format!("vnic{i} "))?;
            if !line.ends_with(&format!(" cpu {i}")) {
                return Err(format!("vnic{i} not on CPU {i}:\n{vnics}"));
            }
            let answer = shell.ask(&format!("serve iperf3 -I vnic{i}"))?;
            plain_line(&answer, "service ")?;
        }
        let before = shell.ask("irq")?;
        let runs = addrs
            .iter()
            .map(|a| {
                net.iperf3_client_start(a, &["-t", IPERF_SECS])
                    .map_err(|e| format!("{a}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (run, addr) in runs.into_iter().zip(&addrs) {
            let json = run.finish().map_err(|e| format!("{addr}: {e}"))?;
            let (bps, _) = iperf3_summary(&json).map_err(|e| format!("{addr}: {e}"))?;
            println!("    -smp {cpus}: iperf3 to {addr}: {:.1} Mbit/s", bps / 1e6);
        }
        let after = shell.ask("irq")?;
        let rows = rows(&before, &after)?;
        println!(
            "\n-smp {cpus}: MSI-X interrupts per CPU during {IPERF_SECS} s of iperf3 to {cpus} VNICs at once\n{}",
            table(&rows, cpus)
        );
        check(&rows, cpus).map_err(|e| format!("-smp {cpus}: {e}:\n{after}"))?;
        shell.poweroff(&mut sim)?;
        for r in &rows {
            let Some(cpu) = r.bound else { continue };
            let name = format!("tcg-irq-smp{cpus}-{}", r.what.replace(' ', ""));
            let own = r.counts.get(cpu).copied().unwrap_or(0);
            let elsewhere = r.counts.iter().sum::<u64>() - own;
            for (place, n) in [
                (format!("on-its-cpu{cpu}"), own),
                ("elsewhere".into(), elsewhere),
            ] {
                out.push(Figure {
                    name: format!("{name}-{place}"),
                    value: n.to_string(),
                    unit: "interrupts".into(),
                });
            }
        }
    }
    drop(net);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "irq 0x22 timer cpu-timer cpu0=0 cpu1=9: 9\n\
        irq 0x26 msi-x mlx5 cpu0=137 cpu1=0: 137\n\
        irq 0x27 msi-x mlx5 cpu0=2 cpu1=0: 2\n\
        irq 0x28 msi-x mlx5 cpu0=0 cpu1=0: 0\n";
    const AFTER: &str = "irq 0x22 timer cpu-timer cpu0=0 cpu1=55: 55\n\
        irq 0x26 msi-x mlx5 cpu0=149 cpu1=0: 149\n\
        irq 0x27 msi-x mlx5 cpu0=4119 cpu1=0: 4119\n\
        irq 0x28 msi-x mlx5 cpu0=0 cpu1=2858: 2858\n\
        msix 01:00.0 entry 0 vector 0x26 (eq0 0): 149\n\
        msix 01:00.0 entry 1 vector 0x27 (comp eq 1 queue set 0 cpu 0): 4119\n\
        msix 01:00.0 entry 2 vector 0x28 (comp eq 2 queue set 1 cpu 1): 2858\n";

    #[test]
    fn deltas_per_vector_and_cpu() {
        let r = rows(BEFORE, AFTER).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].bound, None);
        assert_eq!(r[0].counts, [12, 0]);
        assert_eq!(r[1].what, "queue set 0");
        assert_eq!((r[1].bound, r[1].counts.clone()), (Some(0), vec![4117, 0]));
        assert_eq!((r[2].bound, r[2].counts.clone()), (Some(1), vec![0, 2858]));
        assert_eq!(check(&r, 2), Ok(()));
        assert!(table(&r, 2).contains("0x28    queue set 1                 1         0      2858"));
    }

    #[test]
    fn a_vector_on_the_wrong_cpu_is_an_error() {
        let after = AFTER.replace("cpu0=0 cpu1=2858", "cpu0=1 cpu1=2857");
        let r = rows(BEFORE, &after).unwrap();
        assert!(check(&r, 2).unwrap_err().contains("interrupted CPU 0"));
        let idle = AFTER.replace("cpu0=0 cpu1=2858: 2858", "cpu0=0 cpu1=0: 0");
        let r = rows(BEFORE, &idle).unwrap();
        assert!(check(&r, 2).unwrap_err().contains("CPU 1"));
    }
}
