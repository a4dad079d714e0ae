//! System tests of the kernel's network side: the port's data path
//! (`EthPort`) opened after attach, its completion vector, the shell's
//! `rings` and `stats`, and an idle kernel that sleeps instead of
//! spinning.
//!
//! The model and QEMU are launched as in [`crate::systests_attach`].

use std::time::{Duration, Instant};

use crate::netns::{PeerConfig, PeerError, PeerNetwork};
use crate::qemu::Verdict;
use crate::session::Session;
use crate::sim_device::{SimDevice, SimOptions};
use crate::systests::{Context, SystemTest, expect_verdict};
use crate::systests_attach::{
    Shell, boot, detach_clean, expect_model_clean, msix_counts, plain_line,
};
use crate::systests_sim::{self, PROMPT, expect_reply};

/// One boot with an attach is ~1 s here; the limit covers a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(60);
const PCI: &str = "01:00.0";
/// How long the idle kernel is watched.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// A guest that spins keeps QEMU's TCG thread at ~100 % of a core; one
/// that halts costs a few percent. The threshold sits far from both.
const IDLE_CPU_LIMIT: f64 = 0.5;

/// The network tests, in the order they run.
pub fn all() -> Vec<SystemTest> {
    let t = |name, run| SystemTest {
        name,
        timeout: TIMEOUT,
        run,
    };
    vec![
        t("net-port-rings-stats", port_rings_stats),
        t("net-shell-commands", shell_commands),
        t("net-test-verdict-fail", test_verdict_fail),
        t("net-two-vms", two_vms_ping),
        t("net-peer-ping", peer_ping),
        t("net-peer-arp-broadcast", peer_arp_broadcast),
        t("net-peer-iperf3", peer_iperf3),
        t("net-peer-link-flap", peer_link_flap),
        t("net-peer-dhcp", peer_dhcp),
        SystemTest {
            name: "net-run-main-job",
            timeout: crate::mainjob::TIMEOUT,
            run: main_job,
        },
    ]
}

/// `mlx5 01:00.0: port open: mtu 1500, <n> tx / <n> rx buffers, comp eq
/// <eqn> on MSI-X entry <i>`: (eqn, entry).
fn port_open_line(text: &str) -> Result<(u32, u16), String> {
    let line = plain_line(text, &format!("mlx5 {PCI}: port open: "))?;
    let rest = line
        .split_once(", comp eq ")
        .map(|(_, r)| r)
        .ok_or_else(|| format!("port line without a completion EQ: {line}"))?;
    let (eqn, entry) = rest
        .split_once(" on MSI-X entry ")
        .ok_or_else(|| format!("port line without an MSI-X entry: {line}"))?;
    match (eqn.parse(), entry.parse()) {
        (Ok(e), Ok(i)) => Ok((e, i)),
        _ => Err(format!(
            "port line not understood (vector not bound?): {line}"
        )),
    }
}

/// CPU time (user + system, in clock ticks) of process `pid`.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line (proc(5)).
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .ok_or("unexpected /proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("no field {i} in /proc/{pid}/stat"))
    };
    Ok(get(11)? + get(12)?)
}

/// Share of one CPU QEMU used while the kernel sat at its prompt.
fn idle_cpu_share(shell: &Shell) -> Result<f64, String> {
    // SC_CLK_TCK is 100 on Linux (proc(5): USER_HZ).
    const TICKS_PER_SECOND: f64 = 100.0;
    let pid = shell.session.id();
    let (t0, c0) = (Instant::now(), cpu_ticks(pid)?);
    std::thread::sleep(IDLE_WINDOW);
    let (t1, c1) = (Instant::now(), cpu_ticks(pid)?);
    let cpu = (c1 - c0) as f64 / TICKS_PER_SECOND;
    Ok(cpu / (t1 - t0).as_secs_f64())
}

/// Step 1 of the net work: after attach the port's data path is open with
/// its completion EQ on its own MSI-X entry; `rings` and `stats` report
/// the queues and counters; the idle kernel halts (QEMU far below one
/// CPU); detach closes the data path with nothing lost and attach opens
/// it again.
fn port_rings_stats(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let (_setup, mut sim, mut shell) = boot(ctx, test, "cx5", "")?;
    let (eqn, entry) = port_open_line(shell.session.serial())?;
    if entry == 0 {
        return Err("the completion EQ shares MSI-X entry 0 with EQ0".into());
    }

    let rings = shell.ask("rings")?;
    plain_line(&rings, &format!("port {PCI}:"))?;
    let sq = plain_line(&rings, "  sq 0x")?;
    for want in [format!(" eq {eqn} "), " in_flight 0 ".to_string()] {
        if !sq.contains(&want) {
            return Err(format!("sq line lacks {want:?}: {sq}"));
        }
    }
    // `rq 0x..` or, with several receive queues, `rq0 0x..`.
    let rq = plain_line(&rings, "  rq")?;
    if !rq.contains(&format!(" eq {eqn} ")) || !rq.contains(" posted ") {
        return Err(format!("rq line: {rq}"));
    }

    let stats = shell.ask("stats")?;
    plain_line(&stats, &format!("port {PCI}:"))?;
    plain_line(&stats, "  tx: packets 0 bytes 0 ")?;
    plain_line(&stats, "  rx: packets ")?;
    plain_line(&stats, "  faults 0 recovered 0 not recovered 0")?;

    let irq = shell.ask("irq")?;
    let comp = format!("msix {PCI} entry {entry} vector ");
    let line = plain_line(&irq, &comp)?;
    if !line.contains(&format!("(comp eq {eqn}")) {
        return Err(format!(
            "entry {entry} is not the completion EQ {eqn}: {line}"
        ));
    }
    if msix_counts(&irq, PCI).is_empty() {
        return Err(format!("no MSI-X lines:\n{irq}"));
    }

    let share = idle_cpu_share(&shell)?;
    if share > IDLE_CPU_LIMIT {
        return Err(format!(
            "idle kernel kept QEMU at {:.0} % of a CPU for {} s (busy spin?)",
            share * 100.0,
            IDLE_WINDOW.as_secs()
        ));
    }

    detach_clean(&mut shell, &sim)?;
    let rings = shell.ask("rings")?;
    plain_line(&rings, &format!("port {PCI}: not attached"))?;
    let answer = shell.ask(&format!("attach {PCI}"))?;
    port_open_line(&answer)?;
    let answer = shell.ask("rings 02:00.0")?;
    plain_line(&answer, "rings: no adapter at 02:00.0")?;
    let answer = shell.ask("stats 1:0")?;
    plain_line(&answer, "usage: stats [<pci>]")?;
    detach_clean(&mut shell, &sim)?;
    expect_model_clean(&sim)?;
    expect_reply(&sim.ask_ok("sanitizer")?, "ok 0 violations")?;
    shell.poweroff(&mut sim)?;
    println!(
        "    (idle QEMU at {:.1} % of a CPU; comp eq {eqn} on entry {entry})",
        share * 100.0
    );
    Ok(())
}

/// The number after `word` in `line` (`tx: packets 12 bytes ...`).
pub(crate) fn number_after(line: &str, word: &str) -> Option<u64> {
    let mut words = line.split_whitespace();
    words.by_ref().find(|w| *w == word)?;
    words.next()?.parse().ok()
}

/// The shell's network commands on one VM whose model has no wire (what
/// it sends goes nowhere): `ifconfig` shows and sets the address,
/// `ping` to an absent host transmits (ARP) through the data path, its
/// transmit completions raise the completion vector, the summary reports
/// the loss; Ctrl-C stops an endless ping and the prompt returns; bad
/// arguments are refused. Options go anywhere, as with the stock tools:
/// `ifconfig net0`, `ip addr show dev net0`, `ping -c 1 -I net0 <addr>`,
/// `-I <address>`, `serve iperf3` with or without `-s`, `-I` before or
/// after it, `-B <address>`, `serve echo -p <port>`.
fn shell_commands(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let (_setup, mut sim, mut shell) = boot(ctx, test, "cx5", "net.0=10.0.0.2/24,ip6=fd00::2/64")?;
    let (_, entry) = port_open_line(shell.session.serial())?;
    let boot_status = plain_line(shell.session.serial(), "net0 ")?.to_string();
    if !boot_status.contains("10.0.0.2/24") || !boot_status.contains("fd00::2/64") {
        return Err(format!(
            "net0 does not have the command line's addresses: {boot_status}"
        ));
    }
    let answer = shell.ask("ifconfig")?;
    plain_line(&answer, "net0 ")?;
    let answer = shell.ask("ifconfig net0 10.0.0.3/24,gw=10.0.0.1")?;
    let line = plain_line(&answer, "net0 ")?;
    if !line.contains("10.0.0.3/24") {
        return Err(format!("ifconfig did not set the address: {line}"));
    }
    let answer = shell.ask("ifconfig net0 10.0.0.300/24")?;
    plain_line(&answer, "ifconfig: ")?;
    let answer = shell.ask("ip net0")?;
    plain_line(&answer, "usage: ip ")?;
    for command in ["ifconfig net0", "ip addr show dev net0", "ip a"] {
        let answer = shell.ask(command)?;
        let line = plain_line(&answer, "net0 ")?;
        if !line.contains("10.0.0.3/24") {
            return Err(format!("{command}: {line}"));
        }
    }
    let answer = shell.ask("ifconfig net5")?;
    plain_line(&answer, "ifconfig: no interface net5")?;

    let answer = shell.ask("ping 10.0.0.9 -c 2 -W 1")?;
    let summary = plain_line(&answer, "2 packets transmitted, 0 received")?;
    if !summary.contains("100% packet loss") {
        return Err(format!("ping summary: {summary}"));
    }
    plain_line(&answer, "failed: ")?;
    // Options before the address, -I in the middle or naming an address.
    for command in [
        "ping -c 1 -I net0 -W 1 10.0.0.9",
        "ping 10.0.0.9 -W 1 -c 1 -I 10.0.0.3",
    ] {
        let answer = shell.ask(command)?;
        plain_line(&answer, "1 packets transmitted, 0 received")
            .map_err(|e| format!("{command}: {e}"))?;
    }
    let answer = shell.ask("ping 10.0.0.9 -c 1 -I 10.0.0.99")?;
    plain_line(&answer, "ping: no interface with address 10.0.0.99")?;
    let stats = shell.ask("stats")?;
    let tx = plain_line(&stats, "  tx: packets ")?;
    if number_after(tx, "packets").unwrap_or(0) == 0 {
        return Err(format!("nothing went out through the data path: {tx}"));
    }
    let irq = shell.ask("irq")?;
    match msix_counts(&irq, PCI).iter().find(|(e, _)| *e == entry) {
        Some((_, n)) if *n > 0 => {}
        _ => {
            return Err(format!(
                "the completion vector (entry {entry}) never fired:\n{irq}"
            ));
        }
    }

    // An endless ping, stopped by Ctrl-C.
    shell.session.send_line("ping 10.0.0.9")?;
    shell.session.expect_from(shell.ready, "PING 10.0.0.9")?;
    // Ctrl-C and the line end typed with it: one prompt comes back.
    shell.session.send_line("\u{3}")?;
    let end = shell.session.expect_from(shell.ready, PROMPT)?;
    let answer = shell.session.serial()[shell.ready..end].to_string();
    shell.ready = end;
    plain_line(&answer, "^C")?;
    plain_line(&answer, "--- 10.0.0.9 ping statistics ---")?;
    let answer = shell.ask("ping")?;
    let usage = plain_line(&answer, "ping: ")?;
    if usage.starts_with("ping: ping:") {
        return Err(format!("doubled prefix: {usage}"));
    }
    let answer = shell.ask("serve")?;
    plain_line(&answer, "serve: no services")?;
    serve_options(&mut shell)?;
    detach_clean(&mut shell, &sim)?;
    let answer = shell.ask("ifconfig")?;
    plain_line(&answer, &format!("net0: {PCI} not attached"))?;
    let answer = shell.ask("ping 10.0.0.9 -c 1")?;
    plain_line(&answer, "ping: no interface net0")?;
    shell.poweroff(&mut sim)
}

/// `serve` like the stock servers: iperf3 serves with or without `-s`,
/// `-I` anywhere, `-B` picks the interface holding the address; echo takes
/// `-p`; each is listed as what runs, and stops.
fn serve_options(shell: &mut Shell) -> Result<(), String> {
    let services = [
        ("serve iperf3 -I net0", "iperf3 -s on net0"),
        (
            "serve iperf3 -s -I net0 -p 5202",
            "iperf3 -s -p 5202 on net0",
        ),
        (
            "serve iperf3 -I net0 -s -p 5203",
            "iperf3 -s -p 5203 on net0",
        ),
        (
            "serve iperf3 -p 5204 -B 10.0.0.3",
            "iperf3 -s -p 5204 -B 10.0.0.3 on net0",
        ),
        ("serve echo -p 7007 -I net0", "echo -p 7007 on net0"),
    ];
    for (command, _) in services {
        let answer = shell.ask(command)?;
        plain_line(&answer, "service ").map_err(|e| format!("{command}: {e}"))?;
    }
    let answer = shell.ask("serve iperf3 -B 10.0.0.99")?;
    plain_line(&answer, "serve: no interface with address 10.0.0.99")?;
    let list = shell.ask("serve")?;
    let mut ids = Vec::new();
    for (command, listed) in services {
        let line = list
            .lines()
            .find(|l| l.starts_with("service ") && l.ends_with(&format!(": {listed}")))
            .ok_or_else(|| format!("`{command}` is not listed as {listed:?}:\n{list}"))?;
        let id = line["service ".len()..].split(':').next().unwrap_or("");
        ids.push(id.to_string());
    }
    for id in ids {
        let answer = shell.ask(&format!("serve stop {id}"))?;
        plain_line(&answer, &format!("service {id} stopped"))?;
    }
    let answer = shell.ask("serve")?;
    plain_line(&answer, "serve: no services")?;
    Ok(())
}

/// `test=ping:...` whose host never answers: the verdict line, every
/// adapter detached, the tally, and QEMU's failure status; a bad app
/// argument fails the same way.
fn test_verdict_fail(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let setup = crate::systests_sim::setup(ctx)?;
    for (cmdline, verdict) in [
        (
            "net.0=10.0.0.2/24 test=ping:10.0.0.9,-c,1,-W,1",
            "test: ping 10.0.0.9 -c 1 -W 1 ... FAILED: ",
        ),
        (
            "net.0=10.0.0.2/24 test=ping:nowhere",
            "test: ping nowhere ... FAILED: ",
        ),
    ] {
        let mut sim = crate::systests_sim::start_sim(&setup, ctx, test, "cx5")?;
        let machine = crate::systests_sim::machine(ctx, &sim, cmdline);
        let mut session = crate::systests_sim::spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
        let status = session.wait_exit()?;
        let text = session.serial();
        plain_line(text, "test: net0 ready after ")?;
        plain_line(text, verdict)?;
        plain_line(text, "mlx5 01:00.0: detached: 0 pages lost, 0 errors")?;
        plain_line(text, "test: 0 passed, 1 failed")?;
        crate::systests::expect_verdict(
            crate::qemu::Verdict::from_status(status),
            crate::qemu::Verdict::Fail,
        )?;
        sim.expect_clean_exit()?;
    }
    Ok(())
}

/// Addresses of the two VMs on the wire (a documentation-free private
/// range: the traffic never leaves the two models).
const VM_A: (&str, &str) = ("10.0.0.1", "fd00::1");
const VM_B: (&str, &str) = ("10.0.0.2", "fd00::2");
const PINGS: u32 = 3;

/// Starts one model of a two-VM test, joined to `wire`.
pub(crate) fn start_wired_sim(
    ctx: &Context,
    setup: &systests_sim::Setup,
    test: &SystemTest,
    personality: &str,
    side: &str,
    wire: &std::path::Path,
) -> Result<SimDevice, String> {
    let log = ctx.log_path(test).with_extension(format!("sim-{side}.log"));
    let options = SimOptions {
        wire: Some(format!("unix:{}", wire.display())),
        ..SimOptions::default()
    }
    // The wire's headers, for a post-mortem.
    .test_capture(ctx.log_path(test).with_extension(format!("{side}.pcap")));
    SimDevice::start_with(
        &setup.sim,
        personality,
        &format!("{}-{side}", test.name),
        &log,
        &options,
    )
}

/// Boots the kernel on `sim` with `cmdline`; serial log `<test>.<side>.log`.
pub(crate) fn spawn_vm(
    ctx: &Context,
    setup: &systests_sim::Setup,
    test: &SystemTest,
    sim: &SimDevice,
    side: &str,
    cmdline: &str,
) -> Result<Session, String> {
    let machine = systests_sim::machine(ctx, sim, cmdline);
    let command = systests_sim::qemu_command(setup, &machine, &[], false);
    let log = ctx.log_path(test).with_extension(format!("{side}.log"));
    Session::spawn(command, &log, test.timeout).map_err(|e| e.to_string())
}

/// The MAC of `pci` from its attach line (`..., MAC xx:..:xx, link ...`).
fn mac_of(text: &str, pci: &str) -> Result<String, String> {
    let prefix = format!("mlx5 {pci}: ");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .find_map(|l| Some(l.split_once(", MAC ")?.1.split(',').next()?.to_string()))
        .ok_or_else(|| format!("no MAC for {pci} on the console"))
}

/// Frames `l2send` sends from B to A.
const L2_FRAMES: u32 = 50;

/// Issue 8 test 5 (and the apps of issue 7 between two kernels): two VMs,
/// each with its own model, the models joined back to back by the
/// unix-socket wire. VM A sits at its shell with a static address, runs
/// the iperf3 and echo services and waits in `l2recv`; VM B boots with
/// `test=...`: pings A over IPv4 and IPv6 (ARP, NDP and echo replies all
/// answered by A's stack), sends raw frames to A, runs iperf3 against A's
/// server both ways, then detaches and exits with the verdict. A's
/// `l2recv` got every frame and A detaches cleanly too.
fn two_vms_ping(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let setup = systests_sim::setup(ctx)?;
    let wire = std::env::temp_dir().join(format!("cxos-{}-wire.sock", std::process::id()));
    let _ = std::fs::remove_file(&wire);
    // Different parts: different permanent MACs on the one wire.
    let mut sim_a = start_wired_sim(ctx, &setup, test, "cx5", "a", &wire)?;
    let mut sim_b = start_wired_sim(ctx, &setup, test, "cx4lx", "b", &wire)?;

    let cmdline_a = format!("net.0={}/24,ip6={}/64", VM_A.0, VM_A.1);
    let session_a = spawn_vm(ctx, &setup, test, &sim_a, "a", &cmdline_a)?;
    let mut shell_a = Shell::start(session_a)?;
    let status_a = plain_line(shell_a.session.serial(), "net0 ")?.to_string();
    if !status_a.contains(&format!("{}/24", VM_A.0)) {
        return Err(format!("A's interface lacks its address: {status_a}"));
    }
    let mac_a = mac_of(shell_a.session.serial(), PCI)?;
    for service in ["iperf3", "echo"] {
        let answer = shell_a.ask(&format!("serve {service}"))?;
        plain_line(&answer, "service ")?;
    }
    let answer = shell_a.ask("serve")?;
    if answer.lines().filter(|l| l.starts_with("service ")).count() != 2 {
        return Err(format!("`serve` does not list both services:\n{answer}"));
    }
    // A waits for B's frames in the foreground (its prompt comes back
    // when they are all in).
    let l2recv = format!("l2recv {L2_FRAMES} -W 50");
    shell_a.session.send_line(&l2recv)?;
    // Listening before B boots: the shell echoes the line and its
    // newline, then starts it.
    shell_a
        .session
        .expect_from(shell_a.ready, &format!("{l2recv}\n"))?;

    let cmdline_b = format!(
        "net.0={}/24,ip6={}/64 test=ping:{a4},-c,{PINGS}+ping:{a6},-c,{PINGS}\
         +l2send:{mac_a},{L2_FRAMES}+iperf3:-c,{a4},-t,2+iperf3:-c,{a4},-t,2,-R",
        VM_B.0,
        VM_B.1,
        a4 = VM_A.0,
        a6 = VM_A.1,
    );
    let mut session_b = spawn_vm(ctx, &setup, test, &sim_b, "b", &cmdline_b)?;
    let status = session_b.wait_exit()?;
    let text_b = session_b.serial().to_string();
    let summary = format!("{PINGS} packets transmitted, {PINGS} received, 0% packet loss");
    let summaries = text_b.lines().filter(|l| l.starts_with(&summary)).count();
    if summaries != 2 {
        return Err(format!(
            "B printed {summaries} of 2 `{summary}` lines:\n{text_b}"
        ));
    }
    for from in [VM_A.0, VM_A.1] {
        let reply = format!("bytes from {from}: icmp_seq=");
        if !text_b.lines().any(|l| l.contains(&reply)) {
            return Err(format!("B shows no reply from {from}:\n{text_b}"));
        }
    }
    plain_line(&text_b, "mlx5 01:00.0: detached: 0 pages lost, 0 errors")?;
    plain_line(&text_b, "test: 5 passed, 0 failed")?;
    expect_verdict(Verdict::from_status(status), Verdict::Pass)?;
    sim_b.expect_clean_exit()?;
    let iperf = text_b
        .lines()
        .filter(|l| l.starts_with("test: iperf3 ") && l.contains(" ... ok: "))
        .map(|l| l.split_once(" ... ok: ").map_or("", |(_, s)| s))
        .collect::<Vec<_>>();

    // A's l2recv ended with every frame; its prompt is back.
    let end = shell_a.session.expect_from(shell_a.ready, PROMPT)?;
    let l2 = shell_a.session.serial()[shell_a.ready..end].to_string();
    shell_a.ready = end;
    if l2.lines().any(|l| l.starts_with("failed: ")) {
        return Err(format!("A's l2recv failed:\n{l2}"));
    }
    // A answered: its stack counted the frames.
    let stats = shell_a.ask("stats")?;
    let rx = plain_line(&stats, "  rx: packets ")?;
    let packets = number_after(rx, "packets").unwrap_or(0);
    if packets < u64::from(2 * PINGS + L2_FRAMES) {
        return Err(format!(
            "A received {packets} frames, fewer than the echo requests and raw frames"
        ));
    }
    // B's TCP windows (256 KiB, sent at once by smoltcp) each found
    // receive WQEs: a ring that held fewer frames dropped some, and the
    // sender's go-back-N held the transfer to a few Mbit/s.
    let port = sim_a.ask_ok("wire")?;
    let no_wqe = crate::sim_device::stat(&port, "port-drops", "no-wqe");
    if no_wqe != Some(0) {
        return Err(format!(
            "A's model dropped frames for want of a receive WQE ({no_wqe:?}):\n{}",
            port.join("\n")
        ));
    }
    detach_clean(&mut shell_a, &sim_a)?;
    expect_reply(&sim_a.ask_ok("sanitizer")?, "ok 0 violations")?;
    shell_a.poweroff(&mut sim_a)?;
    let _ = std::fs::remove_file(&wire);
    for line in iperf {
        println!("    ({line})");
    }
    Ok(())
}

// ---- issue 9: the peer network (a namespace with the model's TAP) ----

/// cxos's static addresses in the peer network (the host side is `.1`).
pub(crate) const PEER_GUEST: u8 = 2;

/// cxos at its prompt with the model wired into a fresh peer network;
/// `None` (after printing the visible skip line) where that cannot be
/// had (not root).
pub(crate) struct Peer {
    pub(crate) net: PeerNetwork,
    pub(crate) sim: SimDevice,
    pub(crate) shell: Shell,
    /// cxos's MAC, lowercase.
    pub(crate) mac: String,
}

pub(crate) fn peer_boot(
    ctx: &Context,
    test: &SystemTest,
    dhcp: bool,
    cmdline: &str,
) -> Result<Option<Peer>, String> {
    let mut config = PeerConfig::new("systest");
    if !dhcp {
        config.dhcp_lease_secs = None;
    }
    let net = match PeerNetwork::create(&config) {
        Ok(net) => net,
        Err(PeerError::Skip(why)) => {
            println!("    skipped: {why}");
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    };
    let setup = systests_sim::setup(ctx)?;
    let log = ctx.log_path(test).with_extension("sim.log");
    let pcap = ctx.log_path(test).with_extension("pcap");
    let sim = SimDevice::start_with(
        &setup.sim,
        "cx5",
        test.name,
        &log,
        &net.sim_options(Some(pcap)),
    )?;
    let machine = systests_sim::machine(ctx, &sim, cmdline);
    let session = systests_sim::spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
    let shell = Shell::start(session)?;
    let mac = mac_of(shell.session.serial(), PCI)?.to_lowercase();
    Ok(Some(Peer {
        net,
        sim,
        shell,
        mac,
    }))
}

/// The static command line of the peer tests: `.2/24` with the host as
/// gateway, and `::2/64`.
pub(crate) fn static_cmdline(config: &PeerConfig) -> String {
    format!(
        "net.0={}/24,gw={},ip6={}/64",
        config.ipv4(PEER_GUEST),
        config.ipv4(1),
        config.ipv6(u16::from(PEER_GUEST))
    )
}

/// `stats`' port receive counter.
fn rx_packets(shell: &mut Shell) -> Result<u64, String> {
    let stats = shell.ask("stats")?;
    let rx = plain_line(&stats, "  rx: packets ")?;
    number_after(rx, "packets").ok_or_else(|| format!("rx line not understood: {rx}"))
}

/// Powers cxos off and checks the model: nothing held, no violation.
pub(crate) fn peer_finish(mut peer: Peer) -> Result<(), String> {
    detach_clean(&mut peer.shell, &peer.sim)?;
    peer.shell.poweroff(&mut peer.sim)?;
    drop(peer.net);
    Ok(())
}

/// Issue 9 test 1: stock ping in the namespace -> cxos and cxos's ping ->
/// the host side, IPv4 and IPv6.
fn peer_ping(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let config = PeerConfig::new("systest");
    let Some(mut peer) = peer_boot(ctx, test, false, &static_cmdline(&config))? else {
        return Ok(());
    };
    for addr in [config.ipv4(PEER_GUEST), config.ipv6(u16::from(PEER_GUEST))] {
        let out = peer.net.ping(&addr, PINGS).map_err(|e| e.to_string())?;
        let want = format!("{PINGS} packets transmitted, {PINGS} received, 0% packet loss");
        if !out.contains(&want) {
            return Err(format!("stock ping {addr}:\n{out}"));
        }
    }
    for addr in [peer.net.host_ip(), peer.net.host_ip6()] {
        let answer = peer.shell.ask(&format!("ping {addr} -c {PINGS}"))?;
        plain_line(
            &answer,
            &format!("{PINGS} packets transmitted, {PINGS} received, 0% packet loss"),
        )?;
        plain_line(&answer, &format!("64 bytes from {addr}: icmp_seq=1 "))?;
    }
    peer_finish(peer)
}

/// Issue 9 test 2: tshark in the namespace sees cxos answer ARP (the
/// reply comes from cxos's MAC), and broadcast frames from the namespace
/// reach cxos (its receive counter grows by at least as many).
fn peer_arp_broadcast(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    const BROADCASTS: u64 = 5;
    let config = PeerConfig::new("systest");
    let Some(mut peer) = peer_boot(ctx, test, false, &static_cmdline(&config))? else {
        return Ok(());
    };
    let guest = config.ipv4(PEER_GUEST);
    let capture = peer.net.capture("arp").map_err(|e| e.to_string())?;
    // An ARP request for cxos: the host may have learnt cxos's MAC from
    // cxos's own request for its gateway, so forget it first.
    peer.net
        .netns()
        .ip(&["neigh", "flush", "dev", crate::netns::TAP])
        .map_err(|e| e.to_string())?;
    peer.net.ping(&guest, 1).map_err(|e| e.to_string())?;
    let before = rx_packets(&mut peer.shell)?;
    // Broadcast pings: cxos's stack need not answer them, but the port
    // must receive every one.
    let mut ping = peer.net.netns().command("ping");
    ping.args([
        "-b",
        "-n",
        "-c",
        &BROADCASTS.to_string(),
        "-i",
        "0.2",
        "-W",
        "1",
    ])
    .arg(config.ipv4(255));
    let _ = ping.output();
    let after = rx_packets(&mut peer.shell)?;
    let file = capture.stop().map_err(|e| e.to_string())?;
    let replies =
        cxos_testnet::Capture::read(&file, "arp.opcode == 2", &["eth.src", "arp.src.proto_ipv4"])
            .map_err(|e| e.to_string())?;
    if !replies.iter().any(|r| {
        r.first().is_some_and(|m| m.eq_ignore_ascii_case(&peer.mac)) && r.get(1) == Some(&guest)
    }) {
        return Err(format!(
            "no ARP reply from cxos ({} for {guest}) in the capture: {replies:?}",
            peer.mac
        ));
    }
    if after < before + BROADCASTS {
        return Err(format!(
            "cxos received {} frames while {BROADCASTS} broadcasts were sent",
            after - before
        ));
    }
    peer_finish(peer)
}

/// The receiver's throughput in bits/s from stock iperf3's `--json`
/// report, with its retransmits (TCP) or lost packets (UDP).
pub(crate) fn iperf3_summary(json: &str) -> Result<(f64, u64), String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("iperf3 JSON: {e}: {json}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("iperf3 reported an error: {e}"));
    }
    let end = v.get("end").ok_or("iperf3 JSON without `end`")?;
    let (bps, extra) = if let Some(r) = end.get("sum_received") {
        let retr = end
            .get("sum_sent")
            .and_then(|s| s.get("retransmits"))
            .and_then(|r| r.as_u64())
            .unwrap_or(0);
        (r.get("bits_per_second").and_then(|b| b.as_f64()), retr)
    } else {
        let sum = end.get("sum").ok_or("iperf3 JSON without `end.sum`")?;
        (
            sum.get("bits_per_second").and_then(|b| b.as_f64()),
            sum.get("lost_packets")
                .and_then(|l| l.as_u64())
                .unwrap_or(0),
        )
    };
    let bps = bps.ok_or("iperf3 JSON without bits_per_second")?;
    if bps <= 0.0 {
        return Err(format!("iperf3 measured no throughput: {json}"));
    }
    Ok((bps, extra))
}

/// Issue 9 test 3: stock `iperf3 -c` against cxos's server (TCP, 2 s,
/// with and without `-R`, and one UDP run), verdicts from stock iperf3's
/// `--json` report; cxos's client against stock `iperf3 -s`.
fn peer_iperf3(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let config = PeerConfig::new("systest");
    let Some(mut peer) = peer_boot(ctx, test, false, &static_cmdline(&config))? else {
        return Ok(());
    };
    let guest = config.ipv4(PEER_GUEST);
    let answer = peer.shell.ask("serve iperf3")?;
    plain_line(&answer, "service ")?;
    let mut figures = Vec::new();
    for (what, extra) in [
        ("host -> cxos TCP", &["-t", "2"][..]),
        ("cxos -> host TCP (-R)", &["-t", "2", "-R"][..]),
        ("host -> cxos UDP 10M", &["-t", "2", "-u", "-b", "10M"][..]),
    ] {
        let json = peer
            .net
            .iperf3_client(&guest, extra)
            .map_err(|e| format!("{what}: {e}"))?;
        let (bps, extra) = iperf3_summary(&json).map_err(|e| format!("{what}: {e}"))?;
        figures.push(format!(
            "{what}: {:.1} Mbit/s ({extra} retransmits/lost)",
            bps / 1e6
        ));
    }
    peer.net.iperf3_server(5201).map_err(|e| e.to_string())?;
    let answer = peer
        .shell
        .ask(&format!("iperf3 -c {} -t 2", peer.net.host_ip()))?;
    if answer.lines().any(|l| l.starts_with("failed: ")) {
        return Err(format!(
            "cxos's client against stock iperf3 -s failed:\n{answer}"
        ));
    }
    // The answer may also hold the lines cxos's own server printed for the
    // host's earlier runs: the client's line is the one with its role.
    let (json_line, v) = client_json(&answer)?;
    let bps = v
        .get("receiver_bits_per_second")
        .and_then(|b| b.as_f64())
        .unwrap_or(0.0);
    if bps <= 0.0 {
        return Err(format!("cxos's client measured nothing: {json_line}"));
    }
    figures.push(format!(
        "cxos client -> stock server TCP: {:.1} Mbit/s",
        bps / 1e6
    ));
    peer_finish(peer)?;
    for f in figures {
        println!("    ({f})");
    }
    Ok(())
}

/// Issue 9 test 4: `link down` then `link up` on the model's control
/// socket while stock iperf3 runs against cxos: the console reports both
/// and the run completes once the link is back.
fn peer_link_flap(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let config = PeerConfig::new("systest");
    let Some(mut peer) = peer_boot(ctx, test, false, &static_cmdline(&config))? else {
        return Ok(());
    };
    let guest = config.ipv4(PEER_GUEST);
    let answer = peer.shell.ask("serve iperf3")?;
    plain_line(&answer, "service ")?;
    let outcome = std::thread::scope(|scope| -> Result<String, String> {
        let client = scope.spawn(|| peer.net.iperf3_client(&guest, &["-t", "5"]));
        std::thread::sleep(Duration::from_millis(1500));
        let flap = (|| -> Result<(), String> {
            expect_reply(&peer.sim.ask_ok("link down")?, "ok link down")?;
            std::thread::sleep(Duration::from_millis(1000));
            expect_reply(&peer.sim.ask_ok("link up")?, "ok link up")
        })();
        let json = client
            .join()
            .map_err(|_| "the iperf3 thread panicked".to_string())?
            .map_err(|e| e.to_string());
        flap?;
        json
    })?;
    let (bps, retransmits) = iperf3_summary(&outcome)?;
    peer.shell
        .wait_for_line(&format!("mlx5 {PCI}: link down"))?;
    peer.shell.wait_for_line(&format!("mlx5 {PCI}: link up "))?;
    peer_finish(peer)?;
    println!(
        "    (through the flap: {:.1} Mbit/s, {retransmits} retransmits)",
        bps / 1e6
    );
    Ok(())
}

/// Issue 9 test 5: with `net.0=dhcp` cxos takes its address from dnsmasq
/// (the console's lease line, dnsmasq's lease file, `ifconfig`, and a
/// stock ping to the leased address).
fn peer_dhcp(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    // dnsmasq leases for at least 120 s; cxos uses at most 10 s of it, so
    // it renews (unicast to the server) 5 s after the lease.
    let Some(mut peer) = peer_boot(ctx, test, true, "net.0=dhcp,lease=10")? else {
        return Ok(());
    };
    let line = peer.shell.wait_for_line("net0: dhcp lease ")?;
    let leased = peer
        .net
        .wait_for_lease(&peer.mac, Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    if !line.starts_with(&format!(
        "net0: dhcp lease {leased}/24 gw {}",
        peer.net.host_ip()
    )) {
        return Err(format!("lease line {line:?}, dnsmasq leased {leased}"));
    }
    let answer = peer.shell.ask("ifconfig")?;
    let status = plain_line(&answer, "net0 ")?;
    if !status.contains(&format!("{leased}/24")) {
        return Err(format!("ifconfig does not show the lease: {status}"));
    }
    // dnsmasq's ACK taught the host cxos's MAC, but not cxos the host's:
    // smoltcp drops the first echo reply while it resolves the host, so
    // only the later ones are required.
    let out = peer.net.ping(&leased, PINGS).map_err(|e| e.to_string())?;
    if !out.contains(&format!("{} received", PINGS - 1))
        && !out.contains(&format!("{PINGS} received"))
    {
        return Err(format!("stock ping {leased}:\n{out}"));
    }
    let renewed = peer.shell.wait_for_line("net0: dhcp lease renewed ")?;
    if !renewed.starts_with(&format!("net0: dhcp lease renewed {leased}/24")) {
        return Err(format!(
            "renewed a different address: {renewed} (leased {leased})"
        ));
    }
    let answer = peer.shell.ask("ifconfig")?;
    let status = plain_line(&answer, "net0 ")?;
    if !status.contains(&format!("{leased}/24")) {
        return Err(format!("the address changed with the renewal: {status}"));
    }
    peer_finish(peer)
}

/// Issue 9 test 6: `cargo xtask run`'s main job end to end (the same
/// function, its console into the test's log directory instead of the
/// terminal) exits 0: DHCP, stock iperf3 both ways, the kernel's verdict,
/// the model's clean exit.
fn main_job(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: crate::run::RunArgs,
    }
    let args = Cli::try_parse_from(["run"]).map_err(|e| e.to_string())?.run;
    let setup = systests_sim::setup(ctx)?;
    let logs = ctx.log_path(test).with_extension("d");
    let mut out = Vec::new();
    let result = crate::mainjob::main_job(&setup, &ctx.kernel, &args, &logs, false, &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let _ = std::fs::write(
        ctx.log_path(test),
        format!(
            "{text}\n(console: {})\n",
            logs.join("console.log").display()
        ),
    );
    match result {
        Err(crate::mainjob::JobError::Skip(why)) => {
            println!("    skipped: {why}");
            Ok(())
        }
        Err(crate::mainjob::JobError::Failed(why)) => Err(format!("{why}\n{text}")),
        Ok(0) => {
            for line in text
                .lines()
                .filter(|l| l.contains(" TCP ") && l.contains("Mbit/s"))
            {
                println!("    ({})", line.trim_start_matches("xtask: ").trim());
            }
            Ok(())
        }
        Ok(code) => Err(format!("the main job exited {code}:\n{text}")),
    }
}

/// The `iperf3-json:` line of cxos's iperf3 client in a console answer
/// (lines of its server's earlier tests skipped), and its parsed object.
pub fn client_json(answer: &str) -> Result<(&str, serde_json::Value), String> {
    let mut seen = Vec::new();
    for line in answer.lines().filter(|l| l.starts_with("iperf3-json: ")) {
        let v: serde_json::Value = serde_json::from_str(line.trim_start_matches("iperf3-json: "))
            .map_err(|e| format!("cxos's iperf3-json line: {e}: {line}"))?;
        if v.get("role").and_then(|r| r.as_str()) == Some("client") {
            return Ok((line, v));
        }
        seen.push(line);
    }
    Err(format!(
        "no iperf3-json line of the client in:\n{answer}\n(other iperf3-json lines: {seen:?})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_line_is_found_past_the_servers_lines() {
        let answer = "iperf3-json: {\"role\":\"server\",\"receiver_bits_per_second\":1.0}\n\
                      iperf3: done\n\
                      iperf3-json: {\"role\":\"client\",\"receiver_bits_per_second\":2.0}\n";
        let (_, v) = client_json(answer).unwrap();
        assert_eq!(v["receiver_bits_per_second"].as_f64(), Some(2.0));
        assert!(client_json("iperf3-json: {\"role\":\"server\"}").is_err());
        assert!(client_json("iperf3-json: {").is_err());
    }

    #[test]
    fn port_open_line_is_read() {
        let text = "mlx5 01:00.0: port open: mtu 1500, 512 tx / 512 rx buffers, comp eq 1 on MSI-X entry 1\n";
        assert_eq!(port_open_line(text), Ok((1, 1)));
        let unbound = "mlx5 01:00.0: port open: mtu 1500, 512 tx / 512 rx buffers, comp eq 1 on MSI-X entry 1 (not bound: polled)\n";
        assert!(port_open_line(unbound).is_err());
        assert!(port_open_line("mlx5 01:00.0: port not opened: x\n").is_err());
    }

    #[test]
    fn own_cpu_time_is_read() {
        let ticks = cpu_ticks(std::process::id()).unwrap();
        // Reading it twice never goes backwards.
        assert!(cpu_ticks(std::process::id()).unwrap() >= ticks);
    }

    #[test]
    fn table_is_valid() {
        crate::systests::validate(&all()).unwrap();
    }
}
