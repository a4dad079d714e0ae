//! Issue 17's function reset and command timeout, in one boot against the
//! model wired to a peer namespace: a health syndrome injected through the
//! control socket is recorded (`FAULT mlx5.health ... outcome=escalate`),
//! the function is reset and restored (`... action=function-reset
//! outcome=recovered`); the interface keeps its address and MTU and the
//! VNIC its own (stock ping reaches both), a second fault during stock
//! iperf3 and the run completes; a lost periodic query (the queue checks'
//! QUERY_EQ) holds neither the shell nor the stack and its timeout is
//! recorded; a lost counter query (`stats`) is
//! recorded as `FAULT mlx5.cmd.timeout`, bounded, and the shell answers
//! after it, while the network stack kept answering stock ping during the
//! wait (the wait is cooperative). The internal error event (`fault
//! internal-error`) takes the same reset, and `faults` counts every
//! `mlx5.health` record. Detach then leaves the model with no page and no
//! violation.

use std::time::{Duration, Instant};

use crate::netns::PeerConfig;
use crate::systests::{Context, SystemTest};
use crate::systests_attach::plain_line;
use crate::systests_lost::ask_while_pinging;
use crate::systests_net::{PEER_GUEST, iperf3_summary, peer_boot, peer_finish, static_cmdline};

const PCI: &str = "01:00.0";
const TIMEOUT: Duration = Duration::from_secs(240);
/// The VNIC's host number in the peer subnet.
const VNIC_HOST: u8 = 30;
/// The MTU the user set before the faults (restored by the reset).
const MTU: u32 = 3000;
/// How long traffic may take to come back after a fault.
const RESUME_LIMIT: Duration = Duration::from_secs(20);

/// After a periodic query is made to be lost, until the next one (every
/// second) is surely out.
const QUERY_OUT: Duration = Duration::from_secs(3);
/// The shell's answer while a periodic query is lost (a kernel blocked on
/// it answers after the command timeout, 15 s).
const SHELL_LIMIT: Duration = Duration::from_secs(5);
/// How long after step 4's wait the lost QUERY_EQ's record may still take
/// (the command timeout, 15 s, and a margin).
const LOST_QUERY_WAIT: Duration = Duration::from_secs(20);

pub fn all() -> Vec<SystemTest> {
    vec![SystemTest {
        name: "fault-function-reset",
        timeout: TIMEOUT,
        run: function_reset,
    }]
}

/// Stock `ping -c 1 -W 1` from the namespace until one answer; how long
/// it took.
fn until_answered(
    net: &crate::netns::PeerNetwork,
    addr: &str,
    since: Instant,
) -> Result<Duration, String> {
    loop {
        if let Ok(out) = net.ping(addr, 1)
            && out.contains(" 1 received")
        {
            return Ok(since.elapsed());
        }
        if since.elapsed() > RESUME_LIMIT {
            return Err(format!(
                "{addr} did not answer within {} s of the fault",
                RESUME_LIMIT.as_secs()
            ));
        }
    }
}

/// Stock `ping -c 3`, every one answered, after one whose answer may
/// wait for cxos's ARP request for the host (smoltcp drops the packet
/// that needed it).
fn pings_all(net: &crate::netns::PeerNetwork, addr: &str) -> Result<(), String> {
    let _ = net.ping(addr, 1);
    let out = net.ping(addr, 3).map_err(|e| e.to_string())?;
    if !out.contains("3 packets transmitted, 3 received, 0% packet loss") {
        return Err(format!("stock ping {addr}:\n{out}"));
    }
    Ok(())
}

fn function_reset(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let config = PeerConfig::new("systest");
    let guest = config.ipv4(PEER_GUEST);
    let vnic = config.ipv4(VNIC_HOST);
    let cmdline = format!("{} vnic.0=ip:{vnic}/24", static_cmdline(&config));
    let Some(mut peer) = peer_boot(ctx, test, false, &cmdline)? else {
        return Ok(());
    };
    let answer = peer.shell.ask(&format!("mtu net0 {MTU}"))?;
    plain_line(&answer, &format!("net0: mtu 1500 -> {MTU}"))?;
    pings_all(&peer.net, &guest)?;
    pings_all(&peer.net, &vnic)?;

    // 1. A health syndrome: recorded, reset, restored; time to traffic.
    // Detection (the once-a-second health poll), reset, bring-up,
    // restore, then the first ping answered.
    let t0 = Instant::now();
    peer.sim.ask_ok("fault health 0x8")?;
    peer.shell
        .wait_for_line(&format!("mlx5 {PCI}: function reset: up again in "))?;
    let resumed = until_answered(&peer.net, &guest, t0)?;
    let escalated = peer
        .shell
        .wait_for_line(&format!("FAULT mlx5.health {PCI} function syndrome=0x8 "))?;
    if !escalated.ends_with("action=function-reset outcome=escalate") {
        return Err(format!("fault line: {escalated}"));
    }
    let recovered = peer.shell.wait_for_line(&format!(
        "FAULT mlx5.health {PCI} function syndrome=0x8 vendor_syndrome=0x0 reset_ms="
    ))?;
    if !recovered.ends_with("action=function-reset outcome=recovered") {
        return Err(format!("recovery line: {recovered}"));
    }
    let done = peer
        .shell
        .wait_for_line(&format!("mlx5 {PCI}: function reset: up again in "))?;
    if !done.contains(", 2 interfaces restored") {
        return Err(format!("restore line: {done}"));
    }
    // The interface kept its address and MTU, the VNIC its own.
    let ifconfig = peer.shell.ask("ifconfig")?;
    let net0 = plain_line(&ifconfig, "net0")?;
    if !net0.contains(&guest) || !ifconfig.contains(&format!("mtu {MTU}")) {
        return Err(format!("net0 after the reset:\n{ifconfig}"));
    }
    pings_all(&peer.net, &vnic)?;
    let vnics = peer.shell.ask("vnics")?;
    plain_line(&vnics, "vnic0 ")?;

    // 1b. The PRM's internal error event (EQ0): the same function reset.
    let t = Instant::now();
    peer.sim.ask_ok("fault internal-error")?;
    // Details print in decimal: event=8 (the health buffer is clean).
    let head = format!("FAULT mlx5.health {PCI} function syndrome=0x0 vendor_syndrome=0x0 event=8");
    let line = peer.shell.wait_for_line(&format!("{head} action="))?;
    if !line.ends_with("action=function-reset outcome=escalate") {
        return Err(format!("internal error line: {line}"));
    }
    let line = peer.shell.wait_for_line(&format!("{head} reset_ms="))?;
    if !line.ends_with("action=function-reset outcome=recovered") {
        return Err(format!("internal error recovery: {line}"));
    }
    // The driver's record ends the reset and bring-up; the interfaces are
    // restored after it. A ping sent between the two finds no steering
    // rule on the new function and costs its whole 1 s wait (what made
    // this figure twice the health fault's): ping once they are back, as
    // step 1 does.
    peer.shell
        .wait_for_line(&format!("mlx5 {PCI}: function reset: up again in "))?;
    let internal = until_answered(&peer.net, &guest, t)?;

    // 2. Again, while stock iperf3 runs against cxos: the run completes.
    let answer = peer.shell.ask("serve iperf3")?;
    plain_line(&answer, "service ")?;
    let run = peer
        .net
        .iperf3_client_start(&guest, &["-t", "8"])
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(2));
    peer.sim.ask_ok("fault health 0x1")?;
    let json = run
        .finish()
        .map_err(|e| format!("iperf3 through the reset: {e}"))?;
    let (bps, retransmits) = iperf3_summary(&json)?;
    peer.shell.wait_for_line(&format!(
        "FAULT mlx5.health {PCI} function syndrome=0x1 vendor_syndrome=0x0 reset_ms="
    ))?;
    // Traffic after the reset too.
    let json = peer
        .net
        .iperf3_client(&guest, &["-t", "2"])
        .map_err(|e| format!("iperf3 after the reset: {e}"))?;
    let (after_bps, _) = iperf3_summary(&json)?;

    // Three faults so far, each recorded as it escalated and as it
    // recovered (a fourth would be one reset too many for the policy:
    // queue-faults takes the stopped health counter).
    let faults = peer.shell.ask("faults")?;
    let health = plain_line(&faults, "  mlx5.health ")?;
    if health.split_whitespace().last() != Some("6") {
        return Err(format!(
            "`faults` does not count 6 mlx5.health records:\n{faults}"
        ));
    }

    // 3. A lost periodic query (the queue checks' QUERY_EQ): started on
    // one round, collected on a later one, so while it is lost (up to the
    // command timeout) the shell answers and so does the stack; its
    // timeout is recorded (below, during step 4's wait).
    peer.sim.ask_ok("fault no-completion 0x303")?;
    // The checks query every second: the next QUERY_EQ is out by now.
    std::thread::sleep(QUERY_OUT);
    let t0 = Instant::now();
    let faults = peer.shell.ask("faults")?;
    let faults_took = t0.elapsed();
    plain_line(&faults, &format!("{PCI} faults "))?;
    if faults_took > SHELL_LIMIT {
        return Err(format!(
            "`faults` took {faults_took:?} while a periodic query was lost"
        ));
    }
    pings_all(&peer.net, &guest)?;

    // 4. A lost counter query: bounded, recorded, the shell answers; the
    // wait is cooperative: the stack answers the namespace's stock ping
    // meanwhile (a blocking wait answers none until the timeout).
    peer.sim.ask_ok("fault no-completion 0x773")?;
    let wait = ask_while_pinging(&peer.net, &mut peer.shell, "stats", &guest)?;
    let (stats, waited, during) = (wait.answer, wait.waited, wait.during);
    plain_line(&stats, "  q counter not read: ")?;
    // Printed as it happens: inside the answer.
    plain_line(
        &stats,
        &format!("FAULT mlx5.cmd.timeout {PCI} opcode=0x773 waited_ms="),
    )?;
    if waited > Duration::from_secs(40) {
        return Err(format!("stats took {waited:?} with a lost command"));
    }
    // Step 3's QUERY_EQ timed out by now when it went out first; a
    // loaded guest may have sent it later: its record comes within the
    // command timeout.
    let lost_query = format!("FAULT mlx5.cmd.timeout {PCI} opcode=0x303 waited_ms=");
    let until = Instant::now() + LOST_QUERY_WAIT;
    loop {
        let log = peer.shell.ask("faults -v")?;
        if log.contains(&lost_query) {
            break;
        }
        if Instant::now() >= until {
            return Err(format!("no {lost_query:?} record in:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let t2 = Instant::now();
    peer.shell.ask("ifconfig")?;
    if t2.elapsed() > Duration::from_secs(5) {
        return Err(format!(
            "the shell took {:?} after the timeout",
            t2.elapsed()
        ));
    }
    pings_all(&peer.net, &guest)?;
    peer_finish(peer)?;
    println!(
        "    (health fault -> ping answered: {} ms; internal error event -> {} ms; {done}; iperf3 through a reset {:.1} Mbit/s, {retransmits} retransmits, after {:.1} Mbit/s; lost periodic query: faults answered in {} ms; lost command: stats answered in {} ms, {during} ping replies meanwhile)",
        resumed.as_millis(),
        internal.as_millis(),
        bps / 1e6,
        after_bps / 1e6,
        faults_took.as_millis(),
        waited.as_millis()
    );
    Ok(())
}
