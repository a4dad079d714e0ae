//! System test of issue 17's queue faults: cxos in QEMU on the model,
//! wired to the namespace peer, `serve iperf3`; one boot walks through
//! every data-path fault class. For each: stock iperf3 from the namespace
//! starts, the fault is injected through the model's control socket
//! (`fault <kind>`), the console shows its `FAULT <class> ...` line with
//! `outcome=recovered`, and iperf3 completes with traffic after the
//! fault. Then lost interrupts: a completion interrupt under iperf3
//! (traffic goes on), an EQ0 interrupt under `traninfo`'s commands (they
//! complete, the periodic check records it and EQ0 is armed again). Then
//! a lost command inside a multi-command port sequence:
//! `traninfo` with its first ACCESS_REGISTER dropped by the model waits
//! (up to the command timeout) without freezing the kernel: stock ping
//! from the namespace is answered meanwhile; the answer carries the typed
//! error line and the `FAULT mlx5.cmd.timeout` record, and the module is
//! read after it. A lost MODIFY_SQ in a recovery the periodic check runs
//! (a transmit timeout), then in one the packet path left (an error CQE):
//! a VNIC keeps answering stock ping, and the shell keeps answering, while
//! the command is out. An EQ0 port event (`link down`) whose port-state read
//! is lost: EQ0's work waits for it cooperatively, the shell answers
//! `cpus` meanwhile (before the timeout record). Then the health counter
//! stops with the bring-up's SET_DRIVER_VERSION lost: recorded, the
//! function reset, the shell answering `faults` (the function "reset in
//! progress") and `cpus` while the bring-up waits, then restored; iperf3
//! runs again. At the end `faults` counts every class, detach reports 0
//! pages lost and the model's sanitizer nothing.

use std::time::Duration;

use crate::netns::{PeerConfig, PeerNetwork};
use crate::sim_device::SimDevice;
use crate::systests::{Context, SystemTest};
use crate::systests_attach::Shell;
use crate::systests_attach::{detach_clean, plain_line};
use crate::systests_lost::{
    MIN_REPLIES_DURING_WAIT, TimedPings, ask_while_pinging, replies_between,
};
use crate::systests_net::{PEER_GUEST, Peer, peer_boot, static_cmdline};

/// The model's fault requests of the data-path classes, and the class
/// each is recorded as (the soak draws from this list too).
pub const QUEUE_FAULTS: &[(&str, &str)] = &[
    ("fault sq-bad-lkey", "mlx5.sq.err"),
    ("fault sq-bad-addr", "mlx5.sq.err"),
    ("fault rq-bad-lkey", "mlx5.rq.err"),
    ("fault rq-bad-addr", "mlx5.rq.err"),
    ("fault cq-overflow", "mlx5.cq.overflow"),
    ("fault cq-overflow rx", "mlx5.cq.overflow"),
    ("fault wq-catastrophic", "mlx5.wq.catastrophic"),
    ("fault eq-stall", "mlx5.eq.stall"),
    ("fault eq-stall sticky", "mlx5.eq.stall"),
    ("fault sq-stall", "mlx5.tx.timeout"),
];

/// Faults this test injects after [`QUEUE_FAULTS`]; a request ending in
/// `rqn=` gets the number of the interface's first receive queue.
const EXTRA_FAULTS: &[(&str, &str)] = &[("fault wq-catastrophic rqn=", "mlx5.wq.catastrophic")];

/// One iperf3 run around each fault (seconds, and a rate TCG keeps up with).
const IPERF3_SECONDS: &str = "4";
const IPERF3_RATE: &str = "10M";

pub fn all() -> Vec<SystemTest> {
    vec![SystemTest {
        name: "queue-faults",
        timeout: Duration::from_secs(240),
        run: queue_faults,
    }]
}

fn queue_faults(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let config = PeerConfig::new("systest");
    let Some(peer) = peer_boot(ctx, test, false, &static_cmdline(&config))? else {
        return Ok(());
    };
    let Peer {
        net,
        mut sim,
        mut shell,
        ..
    } = peer;
    let guest = config.ipv4(PEER_GUEST);
    plain_line(&shell.ask("serve iperf3")?, "service ")?;
    // The soak's list, then faults naming a queue the model does not pick
    // by default.
    let mut requests: Vec<(&str, &str)> = QUEUE_FAULTS.to_vec();
    requests.extend(EXTRA_FAULTS);
    for (request, class) in &requests {
        // `rqn=`: the receive queue in use now (recoveries replace it).
        let request = if request.ends_with("rqn=") {
            let rings = shell.ask("rings")?;
            // `  rq0 0x2001 cq ...` under the port's heading.
            let rqn = rings
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("rq0 "))
                .and_then(|l| l.split_whitespace().next())
                .ok_or_else(|| format!("no rq0 line in:\n{rings}"))?;
            format!("{request}{rqn}")
        } else {
            request.to_string()
        };
        let request = &request;
        let run = net
            .iperf3_client_start(&guest, &["-t", IPERF3_SECONDS, "-b", IPERF3_RATE])
            .map_err(|e| format!("iperf3 before {request}: {e}"))?;
        std::thread::sleep(Duration::from_millis(1500));
        // Earlier FAULT lines are behind the prompt of this answer.
        shell.ask("uptime")?;
        let armed = sim.ask_ok(request)?;
        println!("    {request}: {}", armed.join(" "));
        let line = wait_for_outcome(&mut shell, &format!("FAULT {class} "))?;
        println!("    {line}");
        if !line.ends_with("outcome=recovered") {
            return Err(format!("{request}: not recovered: {line}"));
        }
        // A stall the re-arm does not heal: the EQ is recreated.
        if request.ends_with("sticky") && !line.contains(" action=eq-recreate ") {
            return Err(format!("{request}: not recreated: {line}"));
        }
        let json = run
            .finish()
            .map_err(|e| format!("iperf3 across {request}: {e}"))?;
        let bytes = serde_json::from_str::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| v.pointer("/end/sum_received/bytes")?.as_u64())
            .unwrap_or(0);
        if bytes == 0 {
            return Err(format!("iperf3 across {request}: nothing received"));
        }
        // Past the grace period before the next fault on the same queue.
        std::thread::sleep(Duration::from_millis(600));
    }
    lost_interrupts(&net, &mut shell, &sim, &guest)?;
    lost_port_command(&net, &mut shell, &mut sim, &guest)?;
    lost_recovery_command(&net, &config, &mut shell, &mut sim, &guest)?;
    lost_poll_recovery_command(&net, &mut shell, &mut sim, &guest)?;
    lost_event_read(&mut shell, &mut sim)?;
    // The health counter stops (syndrome clean): the health poll finds
    // it after its misses, the function is reset and restored, traffic
    // flows again. The bring-up's SET_DRIVER_VERSION (optional: the
    // bring-up goes on without it) is lost: the reset waits for it
    // cooperatively, the shell answers meanwhile.
    sim.ask_ok("fault no-completion 0x10d")?;
    sim.ask_ok("fault health-counter-stops")?;
    let head = "FAULT mlx5.health 01:00.0 function syndrome=0x0 vendor_syndrome=0x0 counter=";
    let line = shell.wait_for_line(head)?;
    println!("    {line}");
    if !line.ends_with("action=function-reset outcome=escalate") {
        return Err(format!("stopped health counter: {line}"));
    }
    shell_during_reset(&mut shell)?;
    let counter = line
        .split_whitespace()
        .find(|w| w.starts_with("counter="))
        .unwrap_or_default();
    let line = shell.wait_for_line(&format!(
        "FAULT mlx5.health 01:00.0 function syndrome=0x0 vendor_syndrome=0x0 {counter} reset_ms="
    ))?;
    println!("    {line}");
    if !line.ends_with("action=function-reset outcome=recovered") {
        return Err(format!("stopped health counter recovery: {line}"));
    }
    shell.wait_for_line("mlx5 01:00.0: function reset: up again in ")?;
    let json = net
        .iperf3_client(&guest, &["-t", "2", "-b", IPERF3_RATE])
        .map_err(|e| format!("iperf3 after the function reset: {e}"))?;
    let bytes = serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v.pointer("/end/sum_received/bytes")?.as_u64())
        .unwrap_or(0);
    if bytes == 0 {
        return Err("iperf3 after the function reset: nothing received".into());
    }
    let faults = shell.ask("faults")?;
    plain_line(&faults, "  mlx5.cmd.timeout ")?;
    let health = plain_line(&faults, "  mlx5.health ")?;
    if health.split_whitespace().last() != Some("2") {
        return Err(format!(
            "`faults` does not count the 2 mlx5.health records:\n{faults}"
        ));
    }
    for (_, class) in &requests {
        let want = requests.iter().filter(|(_, c)| c == class).count() as u64
            + u64::from(*class == "mlx5.eq.stall");
        let l = plain_line(&faults, &format!("  {class} "))?;
        let n: u64 = l
            .split_whitespace()
            .last()
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        if n < want {
            return Err(format!("`faults` counts {n} of {want} {class}:\n{faults}"));
        }
    }
    detach_clean(&mut shell, &sim)?;
    shell.poweroff(&mut sim)?;
    drop(net);
    Ok(())
}

/// The model's count of interrupts `fault lost-interrupt` dropped
/// (`stats`: `interrupts-lost <n>`).
fn interrupts_lost(sim: &SimDevice) -> Result<u64, String> {
    let stats = sim.ask_ok("stats")?;
    stats
        .iter()
        .find_map(|l| l.strip_prefix("interrupts-lost "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no interrupts-lost line in {stats:?}"))
}

/// Lost interrupts. On the completion EQ under iperf3: the network stack
/// polls its interfaces after every interrupt and timer, so the events
/// are taken at its next poll and iperf3 completes; the model confirms
/// the interrupt was dropped. On EQ0 (`fault lost-interrupt eqn=0`), then
/// `traninfo`, whose commands complete on EQ0: they complete anyway (a
/// waiting command drains EQ0 without its interrupt), and once EQ0's
/// vector has stayed silent past the driver's grace for a late interrupt
/// the periodic check records `FAULT mlx5.eq.stall 01:00.0 eqn=0x0
/// pending=1 ci=<n> action=eq-poll outcome=recovered` and arms EQ0 again;
/// `traninfo` reads the module after it too, with no second record.
fn lost_interrupts(
    net: &PeerNetwork,
    shell: &mut Shell,
    sim: &SimDevice,
    guest: &str,
) -> Result<(), String> {
    let lost = interrupts_lost(sim)?;
    let run = net
        .iperf3_client_start(guest, &["-t", "3", "-b", IPERF3_RATE])
        .map_err(|e| format!("iperf3 before a lost completion interrupt: {e}"))?;
    std::thread::sleep(Duration::from_millis(1000));
    let armed = sim.ask_ok("fault lost-interrupt")?;
    println!("    fault lost-interrupt: {}", armed.join(" "));
    let json = run
        .finish()
        .map_err(|e| format!("iperf3 across a lost completion interrupt: {e}"))?;
    let bytes = serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v.pointer("/end/sum_received/bytes")?.as_u64())
        .unwrap_or(0);
    if bytes == 0 {
        return Err("iperf3 across a lost completion interrupt: nothing received".into());
    }
    if interrupts_lost(sim)? != lost + 1 {
        return Err(format!(
            "the model did not drop the completion interrupt under iperf3 ({armed:?})"
        ));
    }
    shell.ask("uptime")?;
    let armed = sim.ask_ok("fault lost-interrupt eqn=0")?;
    println!("    fault lost-interrupt eqn=0: {}", armed.join(" "));
    let traninfo = shell.ask("traninfo")?;
    plain_line(&traninfo, "01:00.0 module: plugged")?;
    let head = "FAULT mlx5.eq.stall 01:00.0 eqn=0x0 pending=1 ci=";
    // Recorded after `traninfo` answered, or inside its answer on a slow
    // machine.
    let line = match plain_line(&traninfo, head) {
        Ok(l) => l.to_string(),
        Err(_) => shell.wait_for_line(head)?,
    };
    println!("    {line}");
    if !line.ends_with(" action=eq-poll outcome=recovered") {
        return Err(format!("lost EQ0 interrupt: {line}"));
    }
    if interrupts_lost(sim)? != lost + 2 {
        return Err("the model did not drop EQ0's interrupt".into());
    }
    // Past the record's line.
    shell.ask("uptime")?;
    let again = shell.ask("traninfo")?;
    plain_line(&again, "01:00.0 module: plugged")?;
    if again.contains("FAULT mlx5.eq.stall ") {
        return Err(format!("a second record for one lost interrupt:\n{again}"));
    }
    Ok(())
}

/// `traninfo` with its first register access (PMAOS) dropped: the stack
/// answers stock ping during the wait, the answer names the typed timeout
/// and carries its `FAULT mlx5.cmd.timeout` line, the module is still
/// read (the adapter is usable).
fn lost_port_command(
    net: &PeerNetwork,
    shell: &mut Shell,
    sim: &mut SimDevice,
    guest: &str,
) -> Result<(), String> {
    sim.ask_ok("fault no-completion 0x805")?;
    let wait = ask_while_pinging(net, shell, "traninfo", guest)?;
    println!(
        "    lost ACCESS_REGISTER: traninfo answered in {} ms, {} ping replies meanwhile",
        wait.waited.as_millis(),
        wait.during
    );
    let traninfo = wait.answer;
    let state = plain_line(&traninfo, "01:00.0 module: ")?;
    if !state.contains("ACCESS_REGISTER") || !state.contains("no completion after") {
        return Err(format!("no typed timeout in {state:?}:\n{traninfo}"));
    }
    plain_line(
        &traninfo,
        "FAULT mlx5.cmd.timeout 01:00.0 opcode=0x805 waited_ms=",
    )?;
    // The sequence went on after the lost access: the module was read.
    plain_line(&traninfo, "  vendor")?;
    let again = shell.ask("traninfo")?;
    plain_line(&again, "01:00.0 module: plugged")?;
    Ok(())
}

/// The VNIC's address in the peer subnet (the guest is `.2`).
const VNIC_HOST: u8 = 12;
/// Stock ping's requests to the VNIC (every 200 ms) across the recovery.
const RECOVERY_PINGS: u32 = 60;
/// Replies counted from this far after the stall (the transmit timeout
/// is found 1 s after the last progress, the periodic check then runs
/// the recovery) to the end of the pings, inside the 15 s wait.
const RECOVERY_WAIT_FROM: Duration = Duration::from_secs(4);

/// A transmit timeout on the port (`fault sq-stall`) whose recovery's
/// MODIFY_SQ the model drops: the periodic check runs the recovery
/// cooperatively, so a VNIC on the same adapter answers stock ping while
/// the command waits (a kernel blocked in it answers none); the lost
/// command is the typed `mlx5.cmd.timeout` record and the recovery
/// escalates past it.
fn lost_recovery_command(
    net: &PeerNetwork,
    config: &PeerConfig,
    shell: &mut Shell,
    sim: &mut SimDevice,
    guest: &str,
) -> Result<(), String> {
    let vnic_ip = config.ipv4(VNIC_HOST);
    let created = shell.ask(&format!("vnic create mac:auto,ip:{vnic_ip}/24"))?;
    let name = created
        .lines()
        .find_map(|l| l.split_once(": created ").map(|(n, _)| n.to_string()))
        .ok_or_else(|| format!("no VNIC created:\n{created}"))?;
    shell.ask("uptime")?;
    sim.ask_ok("fault no-completion 0x905")?;
    // Traffic on the port too: its stalled SQ holds WQEs (the timeout).
    let mut port_ping = net.netns().command("ping");
    port_ping.args(["-n", "-q", "-i", "0.2", "-w", "6", guest]);
    let port_pinger = std::thread::spawn(move || port_ping.output());
    let asked = std::time::SystemTime::now();
    sim.ask_ok("fault sq-stall")?;
    let pings = TimedPings::start(net, RECOVERY_PINGS, &vnic_ip);
    let _ = port_pinger.join();
    let out = pings.finish()?;
    let ended = std::time::SystemTime::now();
    let timeout = shell.wait_for_line("FAULT mlx5.cmd.timeout 01:00.0 opcode=0x905 ")?;
    println!("    {timeout}");
    let line = wait_for_outcome(shell, "FAULT mlx5.tx.timeout 01:00.0 ")?;
    println!("    {line}");
    let during = replies_between(&out, asked + RECOVERY_WAIT_FROM, ended);
    println!("    lost MODIFY_SQ in a queue recovery: {during} ping replies from {name} meanwhile");
    if during < MIN_REPLIES_DURING_WAIT {
        return Err(format!(
            "{during} ping replies from {name} while the recovery waited on a lost command (want >= {MIN_REPLIES_DURING_WAIT}):\n{out}"
        ));
    }
    if !line.contains(" action=port-reset ") && !line.contains(" action=function-reset ") {
        return Err(format!(
            "the lost recovery command did not escalate: {line}"
        ));
    }
    let deleted = shell.ask(&format!("vnic delete {name}"))?;
    println!("    {}", deleted.trim());
    Ok(())
}

/// The first console line since the last prompt that starts with
/// `prefix` and says how its fault ended: a fault the packet path finds
/// is printed at once with `outcome=pending`, and again when the recovery
/// step has its outcome.
pub(crate) fn wait_for_outcome(shell: &mut Shell, prefix: &str) -> Result<String, String> {
    let mut from = shell.ready;
    loop {
        let start = shell.session.expect_from(from, prefix)? - prefix.len();
        let end = shell.session.expect_from(start, "\n")? - 1;
        let serial = shell.session.serial();
        let before = &serial[..start];
        let line = serial[start..end].trim_end().to_string();
        let own_line = before.ends_with('\n') || before.ends_with(crate::systests_sim::PROMPT);
        if own_line && !line.ends_with("outcome=pending") {
            return Ok(line);
        }
        from = start + 1;
    }
}

/// Shell commands asked while the lost command is out.
const ASKS_DURING_WAIT: usize = 4;
/// The longest a shell answer may take meanwhile (a kernel blocked in the
/// recovery answers after the command timeout, 15 s).
const SHELL_ANSWER_MAX: Duration = Duration::from_secs(2);

/// An SQ error CQE under stock ping (`fault sq-bad-lkey`) whose recovery's
/// MODIFY_SQ the model drops (`fault no-completion 0x905`): the packet
/// path records it at once (`outcome=pending`) and leaves the recovery to
/// the recovery step, which starts the command and does not wait for it:
/// the shell answers `faults` (the record still pending) in under 2 s
/// while the command is out. After the command timeout
/// (`mlx5.cmd.timeout`) the recovery escalates as the policy says, and
/// the port answers stock ping again.
fn lost_poll_recovery_command(
    net: &PeerNetwork,
    shell: &mut Shell,
    sim: &mut SimDevice,
    guest: &str,
) -> Result<(), String> {
    let mut ping = net.netns().command("ping");
    ping.args(["-n", "-q", "-i", "0.2", "-w", "3", guest]);
    let pinger = std::thread::spawn(move || ping.output());
    std::thread::sleep(Duration::from_millis(500));
    shell.ask("uptime")?;
    sim.ask_ok("fault no-completion 0x905")?;
    sim.ask_ok("fault sq-bad-lkey")?;
    let pending = shell.wait_for_line("FAULT mlx5.sq.err 01:00.0 ")?;
    println!("    {pending}");
    if !pending.ends_with("action=queue-reset outcome=pending") {
        return Err(format!("the packet path's record: {pending}"));
    }
    let mut slowest = Duration::ZERO;
    for i in 0..ASKS_DURING_WAIT {
        let t = std::time::Instant::now();
        let faults = shell.ask("faults")?;
        let took = t.elapsed();
        slowest = slowest.max(took);
        if i == 0 {
            // The record is still pending: the recovery's command is out.
            let last = faults
                .lines()
                .rfind(|l| l.contains(" FAULT mlx5.sq.err "))
                .ok_or_else(|| format!("no mlx5.sq.err record in:\n{faults}"))?;
            if !last.ends_with("outcome=pending") {
                return Err(format!("recovery not outstanding while asked: {last}"));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "    lost MODIFY_SQ in a packet-path recovery: `faults` answered in at most {} ms",
        slowest.as_millis()
    );
    if slowest > SHELL_ANSWER_MAX {
        return Err(format!(
            "the shell took {slowest:?} to answer while the recovery's command was out"
        ));
    }
    let timeout = shell.wait_for_line("FAULT mlx5.cmd.timeout 01:00.0 opcode=0x905 ")?;
    println!("    {timeout}");
    let done = wait_for_outcome(shell, "FAULT mlx5.sq.err 01:00.0 ")?;
    println!("    {done}");
    if !done.contains(" action=port-reset ") && !done.contains(" action=function-reset ") {
        return Err(format!(
            "the lost recovery command did not escalate: {done}"
        ));
    }
    let _ = pinger.join();
    if done.ends_with("action=function-reset outcome=escalate") {
        shell.wait_for_line("mlx5 01:00.0: function reset: up again in ")?;
    }
    let _ = net.ping(guest, 1);
    let out = net.ping(guest, 3).map_err(|e| e.to_string())?;
    if !out.contains(" 0% packet loss") {
        return Err(format!("stock ping after the escalated recovery:\n{out}"));
    }
    Ok(())
}

/// The shell's answers while the background waits on a lost command (a
/// kernel blocked in the wait answers after the command timeout, 15 s).
const SHELL_LIMIT: Duration = Duration::from_secs(5);
/// After `link down`, until EQ0's work has the port-state read out.
const EVENT_OUT: Duration = Duration::from_secs(1);

/// `link down` on the model with the port-state read (ACCESS_REGISTER
/// PAOS) that EQ0's work issues for the event dropped: the read waits
/// cooperatively, so the shell answers `cpus` within [`SHELL_LIMIT`] and
/// before the `mlx5.cmd.timeout` record; `link up` then reads the port
/// again.
fn lost_event_read(shell: &mut Shell, sim: &mut SimDevice) -> Result<(), String> {
    shell.ask("uptime")?;
    sim.ask_ok("fault no-completion 0x805")?;
    sim.ask_ok("link down")?;
    std::thread::sleep(EVENT_OUT);
    let t = std::time::Instant::now();
    let cpus = shell.ask("cpus")?;
    let took = t.elapsed();
    println!(
        "    lost port-state read after a port event: cpus answered in {} ms",
        took.as_millis()
    );
    let record = "FAULT mlx5.cmd.timeout 01:00.0 opcode=0x805 ";
    if took > SHELL_LIMIT || cpus.contains(record) {
        return Err(format!(
            "the shell waited for EQ0's lost read ({took:?}):\n{cpus}"
        ));
    }
    let line = shell.wait_for_line(record)?;
    println!("    {line}");
    sim.ask_ok("link up")?;
    shell.wait_for_line("mlx5 01:00.0: link up")?;
    Ok(())
}

/// While the function reset's bring-up waits on its lost
/// SET_DRIVER_VERSION: `faults` says the reset is in progress and `cpus`
/// answers, each within [`SHELL_LIMIT`] and before the command's
/// `mlx5.cmd.timeout` record; the reset then completes.
fn shell_during_reset(shell: &mut Shell) -> Result<(), String> {
    let record = "FAULT mlx5.cmd.timeout 01:00.0 opcode=0x10d ";
    let started = std::time::Instant::now();
    // The reset starts in the round that recorded the fault, or (found
    // inside another wait) at the next one.
    let (faults, took) = loop {
        let t = std::time::Instant::now();
        let faults = shell.ask("faults")?;
        let took = t.elapsed();
        if faults.contains(record) || started.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "no `faults` answer during the reset (last after {took:?}):\n{faults}"
            ));
        }
        if faults.contains("01:00.0 function reset in progress") {
            break (faults, took);
        }
    };
    let t = std::time::Instant::now();
    let cpus = shell.ask("cpus")?;
    let cpus_took = t.elapsed();
    println!(
        "    lost SET_DRIVER_VERSION in the reset's bring-up: faults answered in {} ms, cpus in {} ms",
        took.as_millis(),
        cpus_took.as_millis()
    );
    if took > SHELL_LIMIT || cpus_took > SHELL_LIMIT || cpus.contains(record) {
        return Err(format!(
            "the shell waited for the reset ({took:?}, {cpus_took:?}):\n{faults}\n{cpus}"
        ));
    }
    let line = shell.wait_for_line(record)?;
    println!("    {line}");
    Ok(())
}
