//! Link aggregation of cxos against itself (issue 19): `aggr-cxos-pair`.
//! Two cxos VMs, each on its own `mlx5-sim --ports 2` (a cx5 board and a
//! cx4lx board, so the two ends have different system MACs), the boards'
//! port wires joined pairwise by the model's `unix:` wire (port 0 to
//! port 0, port 1 to port 1; a wire carries carrier changes to the other
//! end, as a cable does). Both boot with `aggr.0=ports:net0+net1,...`:
//! A actively with the L4 policy, B passively with L3 (a passive end
//! speaks only to an active one, so this drives both LACP_Activity
//! settings).
//!
//! One boot of each VM walks through: negotiation (each end
//! Collecting_Distributing on both members, `aggr show -L` naming the
//! other end's system MAC as partner on both), ping both ways over
//! aggr0, then failover: B pings A while the model's `link N down` pulls
//! the cable of the member B's pings leave on (read from B's per-member
//! counters; B's port N loses carrier too); both ends take it out, the
//! ping goes on over the other member; `link N up` and it rejoins on
//! both ends, and ping works again. Then A's aggregation is deleted and
//! created again with a command of its first member VNIC lost (the
//! model's `fault no-completion` on CREATE_TIR): the create waits
//! cooperatively, so a port event on A's other function meanwhile
//! (`link 1 down`) is printed by EQ0's work before the create's
//! `mlx5.cmd.timeout` record, and the create fails cleanly with the
//! members' interfaces back. Both ends power off cleanly.
//!
//! SMP (issue 21): A runs with `-smp 2` and has a VNIC on its
//! aggregation pinned to CPU 1 (`vnic.1=over:aggr0,...,cpu:1`), B one on
//! its own (one CPU). `vnics` on A says `cpu 1` for it; A pings B and runs
//! iperf3 against B's service over it (the VNIC's stack and its apps on
//! CPU 1, LACP on CPU 0); `vnic create over:aggr0 cpu 3` is refused (no
//! CPU 3 online). After the failed create, `aggr create` again: the
//! aggregation comes back with the VNIC on CPU 1, and ping works over
//! it again. A's `net.0=none,queues=2` gives net0 two receive queues
//! when it comes back from the aggregation; `ifconfig net1
//! none,queues=4` makes net1 again with four.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::session::{Session, tail};
use crate::sim_device::{SecondPort, SimDevice, SimOptions};
use crate::systests::{Context, SystemTest};
use crate::systests_attach::{Shell, plain_line};
use crate::systests_sim::{self, PROMPT};

/// Two boots under TCG (A with two CPUs) and LACP convergence: ~60 s on
/// an idle machine, 225 s seen at load 12; the limit covers 2 shared
/// cores.
const TIMEOUT: Duration = Duration::from_secs(300);
const A4: &str = "10.20.0.1";
const B4: &str = "10.20.0.2";
/// Pings B sends across the failover, one every half second.
const FAILOVER_PINGS: u32 = 12;
/// The VNICs on the aggregations (A's on CPU 1).
const VA4: &str = "10.21.0.1";
const VB4: &str = "10.21.0.2";

pub fn all() -> Vec<SystemTest> {
    vec![SystemTest {
        name: "aggr-cxos-pair",
        timeout: TIMEOUT,
        run: aggr_pair,
    }]
}

fn at(step: &'static str) -> impl Fn(String) -> String {
    move |e| format!("step `{step}`: {e}")
}

fn aggr_pair(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let log = ctx.log_path(test);
    let dir = std::env::temp_dir().join(format!("cxos-{}-aggr-pair", std::process::id()));
    let result = run(ctx, test, &log, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| {
        let mut out = e;
        for side in ["a", "b"] {
            let path = log.with_extension(format!("{side}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.push_str(&format!(
                "\n--- cxos {side} console ({}), last lines ---\n{}",
                path.display(),
                tail(&text, 20)
            ));
        }
        out
    })
}

/// Whether member `port`'s line of `aggr show` says it distributes.
fn distributing(show: &str, port: &str) -> Option<bool> {
    let line = show
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{port}: ")))?;
    Some(line.contains("collecting-distributing"))
}

/// Member `port`'s transmitted frames in `aggr show` (`tx N frames`).
fn tx_frames(show: &str, port: &str) -> Option<u64> {
    let line = show
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{port}: ")))?;
    line.split(", tx ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The aggregation's system MAC from `aggr show` (`aggr0: 2 ports, mac X, ...`).
fn aggr_mac(show: &str) -> Option<String> {
    let line = show
        .lines()
        .find(|l| l.starts_with("aggr0: ") && l.contains(", mac "))?;
    Some(line.split_once(", mac ")?.1.split(',').next()?.to_string())
}

/// Polls `aggr show` on `shell` until both members are in the state
/// `want` gives (or `wait` passes).
fn wait_members(shell: &mut Shell, wait: Duration, want: [bool; 2]) -> Result<String, String> {
    let until = Instant::now() + wait;
    loop {
        let show = shell.ask("aggr show")?;
        if [distributing(&show, "net0"), distributing(&show, "net1")] == want.map(Some) {
            return Ok(show);
        }
        if Instant::now() >= until {
            return Err(format!("not within {} s:\n{show}", wait.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn ping_all(shell: &mut Shell, to: &str, count: u32) -> Result<(), String> {
    let answer = shell.ask(&format!("ping -I aggr0 {to} -c {count}"))?;
    plain_line(
        &answer,
        &format!("{count} packets transmitted, {count} received"),
    )
    .map(|_| ())
}

fn start_sim(
    setup: &systests_sim::Setup,
    test: &SystemTest,
    log: &Path,
    dir: &Path,
    personality: &str,
    side: &str,
) -> Result<SimDevice, String> {
    let wire = |port: u8| format!("unix:{}", dir.join(format!("wire{port}.sock")).display());
    let options = SimOptions {
        wire: Some(wire(0)),
        second_port: Some(SecondPort {
            wire: Some(wire(1)),
            pcap: Some(log.with_extension(format!("{side}1.pcap"))),
        }),
        ..SimOptions::default()
    }
    .test_capture(log.with_extension(format!("{side}0.pcap")));
    SimDevice::start_with(
        &setup.sim,
        personality,
        &format!("{}-{side}", test.name),
        &log.with_extension(format!("sim-{side}.log")),
        &options,
    )
}

fn run(ctx: &Context, test: &SystemTest, log: &Path, dir: &Path) -> Result<(), String> {
    let started = Instant::now();
    let setup = systests_sim::setup(ctx).map_err(at("setup"))?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut sim_a = start_sim(&setup, test, log, dir, "cx5", "a").map_err(at("start model A"))?;
    let mut sim_b = start_sim(&setup, test, log, dir, "cx4lx", "b").map_err(at("start model B"))?;

    let cmdline_a = format!(
        "aggr.0=ports:net0+net1,lacp:active,policy:l4,timer:fast,ip:{A4}/24 vnic.1=over:aggr0,cpu:1,ip:{VA4}/24 net.0=none,queues=2"
    );
    let cmdline_b = format!(
        "aggr.0=ports:net0+net1,lacp:passive,policy:l3,timer:fast,ip:{B4}/24 vnic.1=over:aggr0,ip:{VB4}/24"
    );
    let session_a = {
        let machine = systests_sim::machine(ctx, &sim_a, &cmdline_a);
        let command = systests_sim::qemu_command(&setup, &machine, &["-smp", "2"], false);
        Session::spawn(command, &log.with_extension("a.log"), test.timeout)
            .map_err(|e| e.to_string())
            .map_err(at("boot A"))?
    };
    let session_b = crate::systests_net::spawn_vm(ctx, &setup, test, &sim_b, "b", &cmdline_b)
        .map_err(at("boot B"))?;
    let mut a = Shell::start(session_a).map_err(at("A's shell"))?;
    let mut b = Shell::start(session_b).map_err(at("B's shell"))?;
    let booted = Instant::now();

    // Negotiation: each end aggregates both links with the other.
    let show_a = wait_members(&mut a, Duration::from_secs(40), [true, true])
        .map_err(at("A: both members Collecting_Distributing"))?;
    let show_b = wait_members(&mut b, Duration::from_secs(40), [true, true])
        .map_err(at("B: both members Collecting_Distributing"))?;
    let converged = booted.elapsed();
    let mac_a = aggr_mac(&show_a).ok_or_else(|| format!("no mac in A's:\n{show_a}"))?;
    let mac_b = aggr_mac(&show_b).ok_or_else(|| format!("no mac in B's:\n{show_b}"))?;
    if mac_a == mac_b {
        return Err(format!("both ends have system MAC {mac_a}"));
    }
    for (shell, partner, who) in [(&mut a, &mac_b, "A"), (&mut b, &mac_a, "B")] {
        let long = shell.ask("aggr show -L").map_err(at("aggr show -L"))?;
        let partners = long
            .lines()
            .filter(|l| l.trim().starts_with(&format!("partner: system {partner} ")))
            .count();
        if partners != 2 {
            return Err(format!(
                "step `{who}'s aggr show -L names the other end as partner on both ports`:\n{long}"
            ));
        }
    }
    ping_all(&mut a, B4, 3).map_err(at("A pings B over aggr0"))?;
    let vnic_traffic = vnic_on_cpu1(&mut a, &mut b).map_err(at("A's VNIC on aggr0 on CPU 1"))?;
    let before = b.ask("aggr show").map_err(at("aggr show"))?;
    ping_all(&mut b, A4, 3).map_err(at("B pings A over aggr0"))?;
    let after = b.ask("aggr show").map_err(at("aggr show"))?;
    // The member B's pings to A leave on (the hash keeps one flow on
    // one member): its cable is the one pulled.
    let sent = |port: &str| -> Result<u64, String> {
        let tx = |show: &str| tx_frames(show, port).ok_or_else(|| format!("no {port} in:\n{show}"));
        Ok(tx(&after)?.saturating_sub(tx(&before)?))
    };
    let (sent0, sent1) = (sent("net0")?, sent("net1")?);
    let (pulled_port, kept) = if sent0 >= sent1 { (0, 1) } else { (1, 0) };
    if sent0.max(sent1) < 3 {
        return Err(format!(
            "step `B's pings leave on one member`: net0 {sent0}, net1 {sent1} frames"
        ));
    }
    let mut out = [true; 2];
    out[pulled_port] = false;

    // Failover: B pings A across the pulled cable of the member its
    // pings took.
    b.session
        .send_line(&format!("ping -I aggr0 {A4} -c {FAILOVER_PINGS} -i 0.5"))?;
    b.session
        .expect_from(b.ready, &format!("from {A4}: icmp_seq=2 "))
        .map_err(at("B's ping runs before the cable is pulled"))?;
    sim_a
        .ask_ok(&format!("link {pulled_port} down"))
        .map_err(at("link down"))?;
    let pulled = Instant::now();
    wait_members(&mut a, Duration::from_secs(5), out)
        .map_err(at("A takes the member out at once"))?;
    let left = pulled.elapsed();
    let end = b
        .session
        .expect_from(b.ready, PROMPT)
        .map_err(at("B's ping across the failover ends"))?;
    let answer = b.session.serial()[b.ready..end].to_string();
    b.ready = end;
    wait_members(&mut b, Duration::from_secs(5), out)
        .map_err(at("B takes the member out (carrier lost on the wire)"))?;
    let summary = plain_line(&answer, &format!("{FAILOVER_PINGS} packets transmitted, "))
        .map_err(at("B's failover ping summary"))?;
    let received: u32 = summary
        .split(", ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no received count in {summary}"))?;
    // The ping keeps working: its last pings, sent well after the
    // cable went, are all answered over the other member.
    let last_answered = (FAILOVER_PINGS - 2..=FAILOVER_PINGS)
        .all(|seq| answer.contains(&format!("from {A4}: icmp_seq={seq} ")));
    if !last_answered || received * 2 < FAILOVER_PINGS {
        return Err(format!(
            "step `the ping goes on over net{kept}`: {received} of {FAILOVER_PINGS} answered:\n{answer}"
        ));
    }
    ping_all(&mut a, B4, 3).map_err(at("A pings B over one member"))?;

    sim_a
        .ask_ok(&format!("link {pulled_port} up"))
        .map_err(at("link up"))?;
    let plugged = Instant::now();
    wait_members(&mut a, Duration::from_secs(30), [true, true])
        .map_err(at("the member rejoins on A"))?;
    wait_members(&mut b, Duration::from_secs(30), [true, true])
        .map_err(at("the member rejoins on B"))?;
    let rejoin = plugged.elapsed();
    ping_all(&mut b, A4, 3).map_err(at("B pings A after the rejoin"))?;

    let lost = lost_create_command(&mut a, &mut sim_a)?;
    recreate(&mut a, &mut b).map_err(at("aggr create again: the VNIC back on CPU 1"))?;

    a.poweroff(&mut sim_a).map_err(at("A powers off"))?;
    b.poweroff(&mut sim_b).map_err(at("B powers off"))?;
    println!(
        "    (LACP converged {:.1} s after both shells were up, net{pulled_port} (B's ping flow) out {:.1} s after link down, {received}/{FAILOVER_PINGS} pings across the failover, rejoin {:.1} s; {lost}; {vnic_traffic}; total {:.1} s)",
        converged.as_secs_f64(),
        left.as_secs_f64(),
        rejoin.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `aggr delete aggr0` on A, then `aggr create aggr0 ...` with the first
/// CREATE_TIR (the first member VNIC's) lost: while it waits (the
/// command timeout, 15 s) the rest of A runs: the model's `link 1 down`
/// is printed by A's EQ0 work before the timeout record; the create then
/// fails, undone (the members get their interfaces back). What it saw,
/// for the summary.
fn lost_create_command(a: &mut Shell, sim_a: &mut SimDevice) -> Result<String, String> {
    let answer = a.ask("aggr delete aggr0").map_err(at("aggr delete"))?;
    plain_line(&answer, "aggr0: deleted, 0 errors").map_err(at("aggr delete"))?;
    sim_a
        .ask_ok("fault no-completion 0x900")
        .map_err(at("lose CREATE_TIR"))?;
    let from = a.ready;
    a.session
        .send_line("aggr create aggr0 net0 net1 lacp active policy L4 timer fast")?;
    // The member VNIC's CREATE_TIR is out (lost) well within this.
    std::thread::sleep(Duration::from_secs(2));
    sim_a
        .ask_ok("link 1 down")
        .map_err(at("link down during the create"))?;
    let t = Instant::now();
    let link = a
        .session
        .expect_from(from, "mlx5 02:00.0: link down")
        .map_err(at("A prints the port event during the create"))?;
    let printed = t.elapsed();
    let record = a
        .session
        .expect_from(from, "FAULT mlx5.cmd.timeout 01:00.0 opcode=0x900 ")
        .map_err(at("the lost CREATE_TIR's record"))?;
    if link > record {
        return Err(format!(
            "step `the create waits cooperatively`: the port event was printed after the timeout:\n{}",
            tail(&a.session.serial()[from..], 40)
        ));
    }
    let end = a
        .session
        .expect_from(a.ready, PROMPT)
        .map_err(at("the create's answer"))?;
    let answer = a.session.serial()[a.ready..end].to_string();
    a.ready = end;
    plain_line(&answer, "aggr: aggr0 not created: ").map_err(at("the failed create"))?;
    sim_a.ask_ok("link 1 up").map_err(at("link up"))?;
    let show = a.ask("ifconfig").map_err(at("ifconfig"))?;
    plain_line(&show, "net0").map_err(at("net0 back after the failed create"))?;
    plain_line(&show, "net1").map_err(at("net1 back after the failed create"))?;
    // net0 comes back with the receive queues of its `queues=2`; net1
    // is made again with 4 by `ifconfig`.
    let answer = a
        .ask("ifconfig net1 none,queues=4")
        .map_err(at("ifconfig"))?;
    plain_line(&answer, "net1: 4 receive queues").map_err(at("ifconfig net1 none,queues=4"))?;
    let vnics = a.ask("vnics").map_err(at("vnics"))?;
    for (name, queues) in [("net0", 2), ("net1", 4)] {
        let line = plain_line(&vnics, &format!("{name} ")).map_err(at("vnics"))?;
        if !line.contains(&format!(" queues {queues} ")) || !line.trim_end().ends_with(" cpu 0") {
            return Err(format!(
                "step `{name} with {queues} receive queues on cpu 0`:\n{vnics}"
            ));
        }
    }
    Ok(format!(
        "lost CREATE_TIR in aggr create: link event printed {:.1} s into the wait",
        printed.as_secs_f64() + 2.0
    ))
}

/// A's `vnics` line of vnic1: over aggr0, owned by CPU 1.
fn vnic1_on_cpu1(a: &mut Shell) -> Result<(), String> {
    let vnics = a.ask("vnics")?;
    let line = plain_line(&vnics, "vnic1 ")?;
    if !line.contains(" over aggr0 ") || !line.trim_end().ends_with(" cpu 1") {
        return Err(format!("vnic1 is not over aggr0 on cpu 1:\n{vnics}"));
    }
    Ok(())
}

/// A's VNIC on aggr0 runs on CPU 1: `vnics` says so, ping and iperf3
/// (against B's service on its VNIC) cross it; a VNIC for a CPU that is
/// not online is refused. The iperf3 figure, for the summary.
fn vnic_on_cpu1(a: &mut Shell, b: &mut Shell) -> Result<String, String> {
    vnic1_on_cpu1(a)?;
    let answer = a.ask(&format!("ping -I vnic1 {VB4} -c 3"))?;
    plain_line(&answer, "3 packets transmitted, 3 received")?;
    plain_line(&b.ask("serve iperf3 -I vnic1")?, "service ")?;
    let before = cpu1_interrupts(&a.ask("irq")?);
    let iperf = a.ask(&format!("iperf3 -c {VB4} -B {VA4} -t 2"))?;
    let irq = a.ask("irq")?;
    // Its member VNICs' completions come on CPU 1's queue set.
    if cpu1_interrupts(&irq) <= before {
        return Err(format!(
            "no completion interrupt on CPU 1's queue set during iperf3 over vnic1 ({before} before):\n{irq}"
        ));
    }
    if iperf.lines().any(|l| l.starts_with("failed: ")) {
        return Err(format!("iperf3 over vnic1:\n{iperf}"));
    }
    let (line, v) = crate::systests_net::client_json(&iperf)?;
    let bps = v
        .get("receiver_bits_per_second")
        .and_then(|b| b.as_f64())
        .unwrap_or(0.0);
    if bps <= 0.0 {
        return Err(format!("iperf3 over vnic1 measured nothing: {line}"));
    }
    let refused = a.ask("vnic create over:aggr0 ip:10.21.0.3/24 cpu 3")?;
    let line = plain_line(&refused, "vnic: vnic")?;
    if !line.trim_end().ends_with(" not created: no CPU 3 online") {
        return Err(format!("cpu 3 not refused: {line}"));
    }
    Ok(format!(
        "iperf3 A -> B over A's vnic1 on CPU 1: {:.1} Mbit/s",
        bps / 1e6
    ))
}

/// After the failed create: `aggr create` again on A, LACP converges
/// again and the defined VNIC comes back with it on CPU 1, ping crossing
/// it.
fn recreate(a: &mut Shell, b: &mut Shell) -> Result<(), String> {
    let answer = a.ask("aggr create aggr0 net0 net1 lacp active policy L4 timer fast")?;
    plain_line(&answer, "aggr0")?;
    wait_members(a, Duration::from_secs(30), [true, true])?;
    wait_members(b, Duration::from_secs(30), [true, true])?;
    vnic1_on_cpu1(a)?;
    let answer = a.ask(&format!("ping -I vnic1 {VB4} -c 3"))?;
    plain_line(&answer, "3 packets transmitted, 3 received")?;
    Ok(())
}

/// `irq`: the interrupts of the completion vectors of queue set 1 (CPU
/// 1's) on every function (`msix <pci> entry N vector V (comp eq E queue
/// set 1 cpu 1): <count> ...`).
fn cpu1_interrupts(irq: &str) -> u64 {
    irq.lines()
        .filter(|l| l.contains(" queue set 1 cpu 1)"))
        .filter_map(|l| {
            l.split_once("): ")?
                .1
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}
