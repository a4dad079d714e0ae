//! Issue 21's system tests (SMP), on the provisioned QEMU (x2APIC under
//! TCG needs a recent one): `-smp 8` brings every application processor
//! up (with `msix=7` the adapter's six completion vectors serve eight
//! CPUs, and the attach says which share), `cpus` lists them, each one's timer fires, IPIs make a round trip,
//! `smp=N` limits the CPUs and a panic on an AP stops every CPU, an AP
//! that does not come up (`smp-fail=`, fault injection) is reported and
//! skipped, the xAPIC path works (`-cpu max,-x2apic`); `-smp 2`
//! with the model attached: one queue set per CPU (completion EQ i's
//! vector on CPU i), two VNICs owned by the two CPUs (one pinned with
//! `cpu:1`, one placed round-robin) each serve a stock iperf3 client at
//! the same time while each queue set's vector counts on its own CPU only;
//! then MSI-X vectors routed to CPU 1 arrive on CPU 1 while ping works
//! both ways.

use std::time::{Duration, Instant};

use crate::netns::{PeerConfig, PeerError, PeerNetwork};
use crate::qemu::{Boot, Machine, Verdict};
use crate::sim_device::SimDevice;
use crate::systests::{Context, SystemTest, expect_verdict};
use crate::systests_attach::{Shell, plain_line};
use crate::systests_net::{PEER_GUEST, Peer, iperf3_summary, peer_finish, static_cmdline};
use crate::systests_sim;

const TIMEOUT: Duration = Duration::from_secs(120);
/// How long the APs get to take their first timer interrupt (they tick
/// every 10 ms; this only bounds a hang).
const TICK_WAIT: Duration = Duration::from_secs(20);
const PINGS: u32 = 3;
/// The VNICs' addresses (`.n` of the namespace's subnet).
const VNIC_ADDRS: [u8; 2] = [60, 61];
/// Seconds each iperf3 client runs.
const IPERF_SECS: &str = "2";

pub fn all() -> Vec<SystemTest> {
    let t = |name, run| SystemTest {
        name,
        timeout: TIMEOUT,
        run,
    };
    vec![
        t("smp-cpus", cpus),
        t("smp-msix-ping", msix_ping),
        t("smp-subset", subset),
    ]
}

/// One `cpu <i> apic <id> <state>: <n> interrupts, timer <t>, idle <x>%`
/// line: (index, apic id, state, timer count).
fn cpu_lines(text: &str) -> Vec<(usize, u32, String, u64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cpu ")?;
            let mut w = rest.split_whitespace();
            let index = w.next()?.parse().ok()?;
            (w.next()? == "apic").then_some(())?;
            let apic = w.next()?.parse().ok()?;
            let state = w.next()?.strip_suffix(':')?.to_string();
            let timer = rest
                .split_once("timer ")?
                .1
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((index, apic, state, timer))
        })
        .collect()
}

/// The `cpus` lines again: (index, interrupts, timer, idle in tenths of
/// a percent).
fn cpu_loads(text: &str) -> Vec<(usize, u64, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cpu ")?;
            let index = rest.split_whitespace().next()?.parse().ok()?;
            let (_, tail) = rest.split_once(": ")?;
            let interrupts = tail.strip_suffix('%')?.split(" interrupts,").next()?;
            let timer = tail.split_once("timer ")?.1.split(',').next()?;
            let (whole, tenth) = tail
                .split_once("idle ")?
                .1
                .strip_suffix('%')?
                .split_once('.')?;
            let idle = whole.parse::<u64>().ok()? * 10 + tenth.parse::<u64>().ok()?;
            Some((index, interrupts.parse().ok()?, timer.parse().ok()?, idle))
        })
        .collect()
}

/// Two `cpus` answers a while apart: every CPU took interrupts in between
/// (its timer at least), counts at least its timer's, and its idle share
/// is a percentage; each AP (with nothing to do) was idle some of the time.
fn check_loads(before: &str, after: &str) -> Result<(), String> {
    let (b, a) = (cpu_loads(before), cpu_loads(after));
    if a.is_empty() || a.len() != b.len() {
        return Err(format!("`cpus` lines unreadable:\n{before}\n{after}"));
    }
    for ((i, b_irq, ..), (_, a_irq, a_timer, idle)) in b.iter().zip(&a) {
        if a_irq <= b_irq {
            return Err(format!(
                "cpu {i} took no interrupt between two `cpus` ({b_irq} -> {a_irq}):\n{after}"
            ));
        }
        if a_irq < a_timer {
            return Err(format!(
                "cpu {i} counts fewer interrupts than timer ticks:\n{after}"
            ));
        }
        if *idle > 1000 || (*i > 0 && *idle == 0) {
            return Err(format!("cpu {i}'s idle share is implausible:\n{after}"));
        }
    }
    Ok(())
}

/// `irq <vector> <role> <owner> cpu0=<n> cpu1=<m> ...: <total>` lines:
/// (vector, role, per-CPU counts).
pub(crate) fn irq_lines(text: &str) -> Vec<(String, String, Vec<u64>)> {
    text.lines()
        .filter_map(|l| {
            let (head, _) = l.strip_prefix("irq ")?.rsplit_once(": ")?;
            let mut w = head.split_whitespace();
            let vector = w.next()?.to_string();
            let role = w.next()?.to_string();
            let counts = w
                .filter_map(|x| x.strip_prefix("cpu")?.split_once('=')?.1.parse().ok())
                .collect();
            Some((vector, role, counts))
        })
        .collect()
}

fn boot(
    ctx: &Context,
    test: &SystemTest,
    cmdline: &str,
    cpus: &str,
) -> Result<crate::session::Session, String> {
    boot_with(ctx, test, cmdline, &["-smp", cpus])
}

/// [`boot`] with QEMU arguments of the caller's (a later `-cpu` replaces
/// the machine's `-cpu max`).
fn boot_with(
    ctx: &Context,
    test: &SystemTest,
    cmdline: &str,
    args: &[&str],
) -> Result<crate::session::Session, String> {
    let setup = systests_sim::setup(ctx)?;
    let machine = Machine::new(Boot::Pvh {
        kernel: ctx.kernel.clone(),
        cmdline: cmdline.to_string(),
    });
    systests_sim::spawn_qemu(&setup, ctx, test, &machine, args, false)
}

/// `cpus ping <cpu>` comes back.
fn ping_check(shell: &mut Shell, cpu: usize) -> Result<(), String> {
    let answer = shell.ask(&format!("cpus ping {cpu}"))?;
    plain_line(&answer, &format!("cpus: ping cpu {cpu}: round trip "))?;
    Ok(())
}

/// TLB shootdown: AP `cpu` caches a page's translation, the boot CPU
/// unmaps it, the AP's next read faults (a stale entry would still reach
/// it), the page mapped back shows its new contents.
fn tlb_check(shell: &mut Shell, cpu: usize) -> Result<(), String> {
    let answer = shell.ask(&format!("cpus tlb {cpu}"))?;
    let line = plain_line(
        &answer,
        &format!(
            "cpus: tlb cpu {cpu}: read, faulted after the unmap, read the new contents after the remap ("
        ),
    )?;
    let served = line
        .rsplit_once('(')
        .and_then(|(_, r)| r.split_whitespace().next()?.parse::<u64>().ok());
    if served.is_none_or(|n| n == 0) {
        return Err(format!("cpu {cpu} served no shootdown: {line}"));
    }
    Ok(())
}

/// The representative subset of the system tests in one `-smp 2` boot
/// with the model and a namespace peer: the adapter attaches (net0 with
/// two receive queues, its queue 1 lent to CPU 1), ping both
/// ways, stock iperf3 TCP both ways, two VNICs answer ping and one
/// carries iperf3 at the same time as the port, a send queue fault
/// (`sq-bad-lkey`) is recovered while traffic runs, and detach leaves
/// nothing held in the model.
fn subset(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let mut config = PeerConfig::new("systest");
    config.dhcp_lease_secs = None;
    let net = match PeerNetwork::create(&config) {
        Ok(net) => net,
        Err(PeerError::Skip(why)) => {
            println!("    skipped: {why}");
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    let vnics: Vec<(String, String)> = (1..=2)
        .map(|n| (format!("vnic{n}"), config.ipv4(20 + n)))
        .collect();
    // net0 with two receive queues: its queue 1 is lent to CPU 1.
    let mut cmdline = format!("{},queues=2", static_cmdline(&config));
    for (n, (_, addr)) in vnics.iter().enumerate() {
        cmdline.push_str(&format!(" vnic.{}=ip:{addr}/24", n + 1));
    }
    let setup = systests_sim::setup(ctx)?;
    let log = ctx.log_path(test).with_extension("sim.log");
    let sim = SimDevice::start_with(&setup.sim, "cx5", test.name, &log, &net.sim_options(None))?;
    let machine = systests_sim::machine(ctx, &sim, &cmdline);
    let session = systests_sim::spawn_qemu(&setup, ctx, test, &machine, &["-smp", "2"], false)?;
    let mut peer = Peer {
        net,
        sim,
        shell: Shell::start(session)?,
        mac: String::new(),
    };
    if cpu_lines(&peer.shell.ask("cpus")?).len() != 2 {
        return Err("`cpus` does not list two CPUs".into());
    }
    let phys = peer.shell.ask("phys")?;
    plain_line(&phys, "01:00.0 ")?;
    let guest = config.ipv4(PEER_GUEST);
    let want = format!("{PINGS} packets transmitted, {PINGS} received, 0% packet loss");
    let out = peer.net.ping(&guest, PINGS).map_err(|e| e.to_string())?;
    if !out.contains(&want) {
        return Err(format!("stock ping {guest}:\n{out}"));
    }
    let host = peer.net.host_ip();
    plain_line(&peer.shell.ask(&format!("ping {host} -c {PINGS}"))?, &want)?;
    traffic(&mut peer, &guest, &vnics)?;
    let spread = peer.shell.ask("vnics")?;
    let line = plain_line(&spread, "rx-spread net0 queue 1 on cpu 1 -> cpu 0: ")
        .map_err(|e| format!("net0's queue 1 not lent to CPU 1: {e}"))?;
    println!("    ({line})");
    // Detach: nothing held by the model, no violation.
    peer_finish(peer)
}

fn traffic(peer: &mut Peer, guest: &str, vnics: &[(String, String)]) -> Result<(), String> {
    for (name, addr) in vnics {
        let out = peer.net.ping(addr, PINGS).map_err(|e| e.to_string())?;
        if !out.contains(&format!("{PINGS} received, 0% packet loss")) {
            return Err(format!("{name} {addr} does not answer ping:\n{out}"));
        }
    }
    plain_line(&peer.shell.ask("serve iperf3")?, "service ")?;
    plain_line(
        &peer.shell.ask(&format!("serve iperf3 -I {}", vnics[0].0))?,
        "service ",
    )?;
    for (what, extra) in [
        ("host -> cxos TCP", &["-t", "2"][..]),
        ("cxos -> host TCP (-R)", &["-t", "2", "-R"][..]),
    ] {
        let json = peer
            .net
            .iperf3_client(guest, extra)
            .map_err(|e| format!("{what}: {e}"))?;
        let (bps, _) = iperf3_summary(&json).map_err(|e| format!("{what}: {e}"))?;
        println!("    ({what} on 2 CPUs: {:.1} Mbit/s)", bps / 1e6);
    }
    let port = peer
        .net
        .iperf3_client_start(guest, &["-t", "2"])
        .map_err(|e| e.to_string())?;
    let vnic = peer
        .net
        .iperf3_client_start(&vnics[0].1, &["-t", "2"])
        .map_err(|e| e.to_string())?;
    for (name, run) in [("net0", port), (vnics[0].0.as_str(), vnic)] {
        let json = run.finish().map_err(|e| format!("{name}: {e}"))?;
        iperf3_summary(&json).map_err(|e| format!("{name} (at once): {e}"))?;
    }

    let run = peer
        .net
        .iperf3_client_start(guest, &["-t", "4", "-b", "10M"])
        .map_err(|e| format!("iperf3 before the fault: {e}"))?;
    std::thread::sleep(Duration::from_millis(1500));
    peer.shell.ask("uptime")?;
    peer.sim.ask_ok("fault sq-bad-lkey")?;
    let line = crate::systests_faults::wait_for_outcome(&mut peer.shell, "FAULT mlx5.sq.err ")?;
    if !line.ends_with("outcome=recovered") {
        return Err(format!("sq-bad-lkey on 2 CPUs: not recovered: {line}"));
    }
    let json = run
        .finish()
        .map_err(|e| format!("iperf3 across the fault: {e}"))?;
    let bytes = serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v.pointer("/end/sum_received/bytes")?.as_u64())
        .unwrap_or(0);
    if bytes == 0 {
        return Err("iperf3 across the fault: nothing received".into());
    }
    Ok(())
}

/// `-smp 8`: all seven APs online (x2APIC), `cpus` lists eight CPUs whose
/// timers fire, interrupts rise and idle shares are percentages, ping
/// IPIs come back from CPUs 1, 3 and 7, `irq` counts per CPU; with the
/// model attached (when namespaces can be made) and `msix=7` (EQ0's vector
/// and six completion vectors for eight CPUs), the attach says which CPUs
/// share queue sets ([`SHARED_SETS`]), `irq` shows sets 0..5 on CPUs 0..5,
/// and queue sets 2 and 5 on CPUs 2 and 5 carry their VNICs' iperf3
/// ([`pinned_queue_sets`]; set 5 on CPU 5: more than four sets). Then xAPIC
/// with an AP that fails to start ([`xapic_failed_ap`]). Then `-smp 4
/// smp=2 smp-fail=1 test=smp-panic`: APIC id 1 fails, two CPUs started,
/// the panic on CPU 1 stops CPU 0, and the report shows both and the AP
/// that failed to start.
fn cpus(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let mut config = PeerConfig::new("systest");
    config.dhcp_lease_secs = None;
    let (mut shell, adapter) =
        match model_boot(ctx, test, &config, "msix=7", &[2, 5], &["-smp", "8"])? {
            Some(peer) => (peer.shell, Some((peer.net, peer.sim))),
            None => (Shell::start(boot(ctx, test, "", "8")?)?, None),
        };
    if !shell
        .session
        .serial()
        .contains("smp: 8 CPUs online (x2APIC)")
    {
        return Err(format!(
            "no `smp: 8 CPUs online (x2APIC)` log line:\n{}",
            shell.session.serial()
        ));
    }
    let started = Instant::now();
    let first = loop {
        let answer = shell.ask("cpus")?;
        let lines = cpu_lines(&answer);
        if lines.len() != 8
            || lines
                .iter()
                .enumerate()
                .any(|(i, (index, apic, state, _))| {
                    *index != i || *apic != i as u32 || state != "online"
                })
        {
            return Err(format!("`cpus` does not list CPUs 0-7 online:\n{answer}"));
        }
        if lines[1..].iter().all(|(.., timer)| *timer > 0) {
            break answer;
        }
        if started.elapsed() > TICK_WAIT {
            return Err(format!(
                "an AP's timer did not fire in {TICK_WAIT:?}:\n{answer}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for cpu in [1, 3, 7] {
        ping_check(&mut shell, cpu)?;
    }
    let answer = shell.ask("cpus ping 0")?;
    plain_line(&answer, "cpus: ping cpu 0: that is this CPU")?;
    for cpu in [1, 3] {
        tlb_check(&mut shell, cpu)?;
    }
    check_loads(&first, &shell.ask("cpus")?)?;
    let answer = shell.ask("irq")?;
    let irqs = irq_lines(&answer);
    let timer = irqs
        .iter()
        .find(|(_, role, counts)| role == "timer" && counts.len() == 8 && counts[1] > 0)
        .ok_or_else(|| format!("no per-CPU timer line in `irq`:\n{answer}"))?;
    if timer.2[1..].contains(&0) {
        return Err(format!("an AP took no timer interrupt:\n{answer}"));
    }
    for owner in ["ipi-ping", "ipi-tlb"] {
        let counts = owner_counts(&answer, owner);
        if counts.len() != 8 || counts[1] == 0 || counts[3] == 0 {
            return Err(format!("CPUs 1 and 3 show no {owner} interrupt:\n{answer}"));
        }
    }
    if let Some((net, sim)) = adapter {
        shared_sets(&mut shell)?;
        let mut peer = Peer {
            net,
            sim,
            shell,
            mac: String::new(),
        };
        pinned_queue_sets(&mut peer, &config, &[2, 5], 8)?;
        peer_finish(peer)?;
    } else {
        shell.session.send_line("poweroff")?;
        expect_verdict(
            Verdict::from_status(shell.session.wait_exit()?),
            Verdict::Pass,
        )?;
    }

    xapic_failed_ap(ctx, test)?;

    // APIC id 1 fails to start (fault injection), APIC id 2 takes CPU 1,
    // APIC id 3 is beyond the limit; the panic report lists the failed AP.
    let mut session = boot(ctx, test, "smp=2 smp-fail=1 test=smp-panic", "4")?;
    let status = session.wait_exit()?;
    let text = session.serial();
    for line in [
        "smp: CPU with APIC id 1 did not come up within 2000 ms; skipped",
        "smp: 2 CPUs online (x2APIC)",
        "APIC id 3 not started (limit 2 CPUs)",
        "PANIC at ",
        "test panic on CPU 1 (smp-panic)",
        "cpu 0 apic 0: stopped rip=",
        "cpu 1 apic 2: this CPU",
        "apic 1: failed (did not come up at boot)",
    ] {
        if !text.contains(line) {
            return Err(format!("smp-panic output lacks {line:?}:\n{text}"));
        }
    }
    if text.contains("cpu 2 apic") {
        return Err(format!("a CPU beyond smp=2 is listed:\n{text}"));
    }
    expect_verdict(Verdict::from_status(status), Verdict::Fail)?;

    // An AP's kernel stack overflows into the guard page below it: the
    // page fault is reported with the CPU and the stack named, and the
    // other CPU is stopped.
    let mut session = boot(ctx, test, "test=smp-overflow", "2")?;
    let status = session.wait_exit()?;
    let text = session.serial();
    for line in [
        "smp-overflow: CPU 1 recurses on its kernel stack",
        "stack overflow: cr2 is in the guard page below cpu 1's kernel stack",
        "cpu 0 apic 0: stopped rip=",
        "cpu 1 apic 1: this CPU",
    ] {
        if !text.contains(line) {
            return Err(format!("smp-overflow output lacks {line:?}:\n{text}"));
        }
    }
    let fault = text
        .lines()
        .find(|l| l.starts_with("EXCEPTION page-fault (vector 14) error="))
        .ok_or_else(|| format!("no page-fault report:\n{text}"))?;
    if !fault.ends_with(" cpu=1") {
        return Err(format!("the page fault is not reported on cpu 1: {fault}"));
    }
    expect_verdict(Verdict::from_status(status), Verdict::Fail)
}

/// What the attach says with eight CPUs and six completion vectors
/// (`msix=7`): CPUs 6 and 7 use the queue sets of CPUs 0 and 1.
const SHARED_SETS: &str = "8 CPUs, 6 completion vectors: CPUs 6..7 share the queue sets of CPUs 0..1 (CPU c uses set c mod 6)";

/// [`SHARED_SETS`] once in the boot log, and `irq` shows queue sets 0..5,
/// set i on CPU i, no more.
fn shared_sets(shell: &mut Shell) -> Result<(), String> {
    let serial = shell.session.serial();
    if serial.matches(SHARED_SETS).count() != 1 {
        return Err(format!("not once `mlx5 <pci>: {SHARED_SETS}`:\n{serial}"));
    }
    let answer = shell.ask("irq")?;
    let mut sets: Vec<(usize, usize)> = queue_set_vectors(&answer)
        .into_iter()
        .map(|(_, set, cpu)| (set, cpu))
        .collect();
    sets.sort_unstable();
    if sets != [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)] {
        return Err(format!(
            "`irq` does not show queue sets 0..5 on CPUs 0..5:\n{answer}"
        ));
    }
    Ok(())
}

/// The model and a namespace peer under a cxos with `args` (QEMU) and
/// `vnic<i>` pinned to CPU `pins[i]` (address `VNIC_ADDRS[i]`); `None`
/// where namespaces cannot be made (the caller boots without them).
fn model_boot(
    ctx: &Context,
    test: &SystemTest,
    config: &PeerConfig,
    cmdline: &str,
    pins: &[usize],
    args: &[&str],
) -> Result<Option<Peer>, String> {
    let net = match PeerNetwork::create(config) {
        Ok(net) => net,
        Err(PeerError::Skip(why)) => {
            println!("    (no adapter in this boot: {why})");
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    };
    let setup = systests_sim::setup(ctx)?;
    let log = ctx.log_path(test).with_extension("sim.log");
    let sim = SimDevice::start_with(&setup.sim, "cx5", test.name, &log, &net.sim_options(None))?;
    let mut line = format!("{cmdline} {}", static_cmdline(config));
    for (i, (cpu, n)) in pins.iter().zip(VNIC_ADDRS).enumerate() {
        line.push_str(&format!(" vnic.{i}=ip:{}/24,cpu:{cpu}", config.ipv4(n)));
    }
    let machine = systests_sim::machine(ctx, &sim, line.trim_start());
    let session = systests_sim::spawn_qemu(&setup, ctx, test, &machine, args, false)?;
    Ok(Some(Peer {
        net,
        sim,
        shell: Shell::start(session)?,
        mac: String::new(),
    }))
}

/// After [`model_boot`] with `pins`: `vnic<i>` is owned by CPU `pins[i]`,
/// whose queue set (the one numbered as the CPU) has its completion
/// vector there; every VNIC serves a stock iperf3 client at once, and
/// each pinned CPU's vector fires on it, no queue set's vector on any
/// other CPU than its own (`cpus` columns in `irq`).
fn pinned_queue_sets(
    peer: &mut Peer,
    config: &PeerConfig,
    pins: &[usize],
    cpus: usize,
) -> Result<(), String> {
    let vnics = peer.shell.ask("vnics")?;
    for (i, cpu) in pins.iter().enumerate() {
        let name = format!("vnic{i}");
        let line = plain_line(&vnics, &format!("{name} "))?;
        if !line.ends_with(&format!(" cpu {cpu}")) {
            return Err(format!("{name} is not owned by CPU {cpu}:\n{vnics}"));
        }
        let answer = peer.shell.ask(&format!("serve iperf3 -I {name}"))?;
        plain_line(&answer, "service ")?;
    }
    let before = peer.shell.ask("irq")?;
    let sets = queue_set_vectors(&before);
    for &cpu in pins {
        if !sets.iter().any(|(_, s, c)| (*s, *c) == (cpu, cpu)) {
            return Err(format!("queue set {cpu} is not on CPU {cpu}:\n{before}"));
        }
    }
    let runs = iperf3_at_once(peer, config, &VNIC_ADDRS[..pins.len()])?;
    let mut rates = Vec::new();
    for ((run, n), cpu) in runs.into_iter().zip(VNIC_ADDRS).zip(pins) {
        let json = run.finish().map_err(|e| format!(".{n}: {e}"))?;
        let (bps, _) = iperf3_summary(&json).map_err(|e| format!("iperf3 to .{n}: {e}"))?;
        rates.push(format!("CPU {cpu} {:.1} Mbit/s", bps / 1e6));
    }
    println!("    (iperf3 at once on {cpus} CPUs: {})", rates.join(", "));
    let after = peer.shell.ask("irq")?;
    let old = irq_lines(&before);
    for (vector, _, counts) in irq_lines(&after) {
        let Some((_, set, cpu)) = sets.iter().find(|(v, ..)| *v == vector) else {
            continue;
        };
        let prior = old
            .iter()
            .find(|(v, ..)| *v == vector)
            .map(|(.., c)| c.as_slice())
            .unwrap_or_default();
        if counts.len() != cpus || prior.len() != cpus {
            return Err(format!("no {cpus} per-CPU columns for {vector}:\n{after}"));
        }
        for (c, (a, b)) in counts.iter().zip(prior).enumerate() {
            if c != *cpu && a != b {
                return Err(format!(
                    "queue set {set}'s vector {vector} (CPU {cpu}) interrupted CPU {c}:\n{after}"
                ));
            }
        }
        if pins.contains(set) && counts[*cpu] == prior[*cpu] {
            return Err(format!(
                "queue set {set}'s vector {vector} did not fire on CPU {cpu} during iperf3:\n{after}"
            ));
        }
    }
    Ok(())
}

/// `-cpu max,-x2apic -smp 3 smp-fail=1`: the xAPIC path (memory-mapped
/// local APIC, IPIs through the ICR pair) with the AP of APIC id 1 made
/// to park in the start-up trampoline (the `smp-fail=` fault injection):
/// it is reported and skipped, `cpus` lists it as failed, APIC id 2 comes
/// up as CPU 1 in its place, its timer fires, and ping and TLB shootdown
/// IPIs reach it. With the model (when namespaces can be made): queue set
/// 1's MSI-X vector, bound to CPU 1 (APIC id 2, an xAPIC MSI destination),
/// fires there only while vnic0 on CPU 1 carries iperf3.
fn xapic_failed_ap(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let args = ["-smp", "3", "-cpu", "max,-x2apic"];
    let mut config = PeerConfig::new("systest");
    config.dhcp_lease_secs = None;
    let (mut shell, adapter) = match model_boot(ctx, test, &config, "smp-fail=1", &[1], &args)? {
        Some(peer) => (peer.shell, Some((peer.net, peer.sim))),
        None => (
            Shell::start(boot_with(ctx, test, "smp-fail=1", &args)?)?,
            None,
        ),
    };
    let serial = shell.session.serial();
    for line in [
        "smp: smp-fail=1: the AP with APIC id 1 parks in the trampoline (fault injection)",
        "smp: CPU with APIC id 1 did not come up within 2000 ms; skipped",
        "smp: 2 CPUs online (xAPIC)",
    ] {
        if !serial.contains(line) {
            return Err(format!("xAPIC, smp-fail=1: no {line:?}:\n{serial}"));
        }
    }
    let started = Instant::now();
    let first = loop {
        let answer = shell.ask("cpus")?;
        let lines = cpu_lines(&answer);
        let want = [(0, 0), (1, 2)];
        if lines.len() != 2
            || lines
                .iter()
                .zip(want)
                .any(|((index, apic, state, _), (i, id))| {
                    (*index, *apic) != (i, id) || state != "online"
                })
        {
            return Err(format!(
                "xAPIC: `cpus` does not list CPU 0 (APIC 0) and CPU 1 (APIC 2) online:\n{answer}"
            ));
        }
        plain_line(&answer, "apic 1 failed: did not come up at boot; skipped")?;
        if lines[1].3 > 0 {
            break answer;
        }
        if started.elapsed() > TICK_WAIT {
            return Err(format!(
                "xAPIC: CPU 1's timer did not fire in {TICK_WAIT:?}:\n{answer}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    ping_check(&mut shell, 1)?;
    tlb_check(&mut shell, 1)?;
    check_loads(&first, &shell.ask("cpus")?)?;
    let answer = shell.ask("irq")?;
    for owner in ["cpu-timer", "ipi-ping", "ipi-tlb"] {
        let counts = owner_counts(&answer, owner);
        if counts.len() != 2 || counts[1] == 0 {
            return Err(format!(
                "xAPIC: CPU 1 shows no {owner} interrupt:\n{answer}"
            ));
        }
    }
    if let Some((net, sim)) = adapter {
        let mut peer = Peer {
            net,
            sim,
            shell,
            mac: String::new(),
        };
        pinned_queue_sets(&mut peer, &config, &[1], 2)?;
        return peer_finish(peer);
    }
    shell.session.send_line("poweroff")?;
    expect_verdict(
        Verdict::from_status(shell.session.wait_exit()?),
        Verdict::Pass,
    )
}

/// The per-CPU counts of the `irq` line of the vector owned by `owner`.
fn owner_counts(text: &str, owner: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| Some(l.strip_prefix("irq ")?.rsplit_once(": ")?.0))
        .find(|head| head.split_whitespace().nth(2) == Some(owner))
        .map(|head| {
            head.split_whitespace()
                .filter_map(|w| w.strip_prefix("cpu")?.split_once('=')?.1.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `-smp 2` with the model and a namespace peer: the adapter attaches,
/// a pktgen service on CPU 1 finishes ([`generator_on_cpu1`]), every
/// MSI-X vector is routed to CPU 1 (`irq <v> cpu 1`), and pings
/// both ways work; the routed vectors' interrupts then arrive on CPU 1
/// only.
fn msix_ping(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let mut config = PeerConfig::new("systest");
    config.dhcp_lease_secs = None;
    let net = match PeerNetwork::create(&config) {
        Ok(net) => net,
        Err(PeerError::Skip(why)) => {
            println!("    skipped: {why}");
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    let setup = systests_sim::setup(ctx)?;
    let log = ctx.log_path(test).with_extension("sim.log");
    let sim = SimDevice::start_with(&setup.sim, "cx5", test.name, &log, &net.sim_options(None))?;
    // vnic0 pinned to CPU 1; vnic1 round-robin (vnic<N> to CPU (N+1) mod 2),
    // its second RSS queue lent to CPU 1.
    let cmdline = format!(
        "{} vnic.0=ip:{}/24,cpu:1 vnic.1=ip:{}/24,queues:2",
        static_cmdline(&config),
        config.ipv4(VNIC_ADDRS[0]),
        config.ipv4(VNIC_ADDRS[1])
    );
    let machine = systests_sim::machine(ctx, &sim, &cmdline);
    let session = systests_sim::spawn_qemu(&setup, ctx, test, &machine, &["-smp", "2"], false)?;
    let shell = Shell::start(session)?;
    let mut peer = Peer {
        net,
        sim,
        shell,
        mac: String::new(),
    };
    let answer = peer.shell.ask("cpus")?;
    if cpu_lines(&answer).len() != 2 {
        return Err(format!("`cpus` does not list two CPUs:\n{answer}"));
    }
    queue_sets(&mut peer, &config)?;
    generator_on_cpu1(&mut peer)?;
    let answer = peer.shell.ask("irq")?;
    let msix: Vec<String> = irq_lines(&answer)
        .into_iter()
        .filter(|(_, role, _)| role == "msi-x")
        .map(|(v, ..)| v)
        .collect();
    if msix.is_empty() {
        return Err(format!("no MSI-X vectors in `irq`:\n{answer}"));
    }
    for v in &msix {
        let answer = peer.shell.ask(&format!("irq {v} cpu 1"))?;
        plain_line(&answer, &format!("irq {v}: delivered to cpu 1"))?;
    }
    let answer = peer.shell.ask("irq 0x20 cpu 7")?;
    plain_line(&answer, "irq: no CPU 7 online")?;
    let counts = |text: &str| -> Vec<(String, Vec<u64>)> {
        irq_lines(text)
            .into_iter()
            .filter(|(v, ..)| msix.contains(v))
            .map(|(v, _, c)| (v, c))
            .collect()
    };
    let before = counts(&peer.shell.ask("irq")?);

    let guest = config.ipv4(PEER_GUEST);
    let out = peer.net.ping(&guest, PINGS).map_err(|e| e.to_string())?;
    let want = format!("{PINGS} packets transmitted, {PINGS} received, 0% packet loss");
    if !out.contains(&want) {
        return Err(format!("stock ping {guest}:\n{out}"));
    }
    let host = peer.net.host_ip();
    let answer = peer.shell.ask(&format!("ping {host} -c {PINGS}"))?;
    plain_line(&answer, &want)?;

    let text = peer.shell.ask("irq")?;
    let after = counts(&text);
    let mut on_cpu1 = 0;
    for ((v, b), (_, a)) in before.iter().zip(&after) {
        if a.len() != 2 || b.len() != 2 {
            return Err(format!("no per-CPU columns for {v}:\n{text}"));
        }
        if a[0] != b[0] {
            return Err(format!(
                "vector {v} routed to CPU 1 still interrupted CPU 0 ({} -> {}):\n{text}",
                b[0], a[0]
            ));
        }
        on_cpu1 += a[1] - b[1];
    }
    if on_cpu1 == 0 {
        return Err(format!(
            "no MSI-X interrupt arrived on CPU 1 during the pings:\n{text}"
        ));
    }
    peer_finish(peer)
}

/// A pktgen service pinned to CPU 1 (`-A 1`, on vnic0, which CPU 1
/// owns) runs for [`GENERATOR_SECS`] and reports. Meanwhile the boot
/// CPU's queue checks (every `mlx5::CHECK_INTERVAL_MS`) lend vnic0 out of
/// CPU 1's table; the generator, its ring full, waits for its completion
/// interrupt, which a check can take: CPU 1 must be woken when vnic0
/// comes back, or it sleeps with the generator stopped and never reports
/// (a hang `cargo xtask bench --pktgen-smp` hit in about one run in
/// three). Tens of checks fall inside the run.
fn generator_on_cpu1(peer: &mut Peer) -> Result<(), String> {
    let answer = peer.shell.ask(&format!(
        "serve pktgen -A 1 -I vnic0 -t {GENERATOR_SECS} -s 60 -b 32 --dst 02:00:00:00:00:99"
    ))?;
    plain_line(&answer, "service ")?;
    let line = peer.shell.wait_for_line("pktgen: sent ")?;
    if line.starts_with("pktgen: sent 0 frames") {
        return Err(format!("the generator on CPU 1 sent nothing: {line}"));
    }
    println!("    (pktgen on CPU 1: {line})");
    Ok(())
}

/// How long [`generator_on_cpu1`] runs.
const GENERATOR_SECS: u32 = 6;

/// `msix <pci> entry <e> vector <v> (comp eq <n> queue set <i> cpu <c>): <count>`
/// lines: (vector, queue set, CPU).
pub(crate) fn queue_set_vectors(text: &str) -> Vec<(String, usize, usize)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("msix ")?;
            let vector = rest.split(" vector ").nth(1)?.split_whitespace().next()?;
            let (_, qs) = rest.split_once(" queue set ")?;
            let mut w = qs.split_whitespace();
            let set = w.next()?.parse().ok()?;
            (w.next()? == "cpu").then_some(())?;
            let cpu = w
                .next()?
                .trim_end_matches(&[')', ':', ','][..])
                .parse()
                .ok()?;
            Some((vector.to_string(), set, cpu))
        })
        .collect()
}

/// One queue set per CPU: `vnics` shows vnic0 on CPU 1 (pinned) and
/// vnic1 on CPU 0 (round-robin); both serve a stock iperf3 client at the
/// same time; queue sets 0 and 1 have their vectors on CPUs 0 and 1, each
/// counted there during the runs and never on the other CPU.
fn queue_sets(peer: &mut Peer, config: &PeerConfig) -> Result<(), String> {
    let vnics = peer.shell.ask("vnics")?;
    for (name, cpu) in [("net0", 0), ("vnic0", 1), ("vnic1", 0)] {
        let line = plain_line(&vnics, &format!("{name} "))?;
        if !line.ends_with(&format!(" cpu {cpu}")) {
            return Err(format!("{name} is not owned by CPU {cpu}:\n{vnics}"));
        }
    }
    let irq = peer.shell.ask("irq")?;
    let sets = queue_set_vectors(&irq);
    for (set, cpu) in [(0, 0), (1, 1)] {
        if !sets.iter().any(|(_, s, c)| *s == set && *c == cpu) {
            return Err(format!("queue set {set} is not on CPU {cpu}:\n{irq}"));
        }
    }
    let counts = |text: &str| -> Vec<(String, Vec<u64>)> {
        irq_lines(text)
            .into_iter()
            .filter(|(v, ..)| sets.iter().any(|(x, ..)| x == v))
            .map(|(v, _, c)| (v, c))
            .collect()
    };
    let before = counts(&irq);
    serve_pinned(peer)?;
    let runs = iperf3_at_once(peer, config, &VNIC_ADDRS)?;
    let mut rates = Vec::new();
    for (run, n) in runs.into_iter().zip(VNIC_ADDRS) {
        let json = run.finish().map_err(|e| format!(".{n}: {e}"))?;
        let (bps, _) = crate::systests_net::iperf3_summary(&json)?;
        if bps <= 0.0 {
            return Err(format!("iperf3 to .{n} moved nothing:\n{json}"));
        }
        rates.push(bps / 1e6);
    }
    let text = peer.shell.ask("irq")?;
    let after = counts(&text);
    for ((v, b), (_, a)) in before.iter().zip(&after) {
        let Some((_, set, cpu)) = sets.iter().find(|(x, ..)| x == v) else {
            continue;
        };
        if a.len() != 2 || b.len() != 2 {
            return Err(format!("no per-CPU columns for {v}:\n{text}"));
        }
        let other = 1 - cpu.min(&1);
        if a[other] != b[other] {
            return Err(format!(
                "queue set {set}'s vector {v} interrupted CPU {other}, not only its CPU {cpu}:\n{text}"
            ));
        }
        if *set < 2 && a[*cpu] == b[*cpu] {
            return Err(format!(
                "queue set {set}'s vector {v} did not fire on CPU {cpu} during the iperf3 runs:\n{text}"
            ));
        }
    }
    // From the shell: pinned with `cpu <n>`, refused for a CPU not online.
    let answer = peer.shell.ask("vnic create vlan:77 cpu 7")?;
    plain_line(&answer, "vnic: vnic2 not created: no CPU 7 online")?;
    let answer = peer.shell.ask("vnic create vlan:77 cpu 1")?;
    plain_line(
        &answer,
        "vnic2: created mac:auto,vlan:77,queues:1,ip:none,cpu:1",
    )?;
    let vnics = peer.shell.ask("vnics")?;
    let line = plain_line(&vnics, "vnic2 ")?;
    if !line.ends_with(" cpu 1") {
        return Err(format!("vnic2 is not owned by CPU 1:\n{vnics}"));
    }
    let answer = peer.shell.ask("vnic delete 2")?;
    plain_line(&answer, "vnic2: deleted, 0 errors")?;
    let client = client_pinned(peer)?;
    let (handed, streams) = spread_rx(peer, config)?;
    println!(
        "    (iperf3 at once: vnic0 on CPU 1 {:.1} Mbit/s, vnic1 on CPU 0 {:.1} Mbit/s; \
         cxos iperf3 -c -P 2 -A 1: {client:.1} Mbit/s; vnic1 -P 16: {streams:.1} Mbit/s, \
         {handed} frames from CPU 1's receive queue handed to CPU 0)",
        rates[0], rates[1]
    );
    Ok(())
}

/// Start a stock iperf3 client (`-t IPERF_SECS`) to each VNIC address
/// `addrs` at once.
fn iperf3_at_once(
    peer: &Peer,
    config: &PeerConfig,
    addrs: &[u8],
) -> Result<Vec<crate::netns::Iperf3Run>, String> {
    addrs
        .iter()
        .map(|n| {
            peer.net
                .iperf3_client_start(&config.ipv4(*n), &["-t", IPERF_SECS])
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// `serve iperf3 -A <cpu>`: pinned to CPU 1 without `-I` it serves on
/// vnic0 (the interface CPU 1 owns; its id is from CPU 1's range), pinned
/// to CPU 0 with `-I vnic1` on vnic1; CPU 0 refuses vnic0 (CPU 1's).
fn serve_pinned(peer: &mut Peer) -> Result<(), String> {
    for args in ["-A 1", "-I vnic1 -A 0"] {
        let answer = peer.shell.ask(&format!("serve iperf3 {args}"))?;
        plain_line(&answer, "service ")?;
    }
    let list = peer.shell.ask("serve")?;
    for (on, cpu) in [("vnic0", 1u32), ("vnic1", 0)] {
        let id = list
            .lines()
            .find(|l| l.ends_with(&format!("iperf3 -s on {on}")))
            .and_then(|l| {
                l.strip_prefix("service ")?
                    .split(':')
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
            .ok_or_else(|| format!("no iperf3 service on {on}:\n{list}"))?;
        // App ids are numbered per CPU table, 100000 apart.
        if (id - 1) / 100_000 != cpu {
            return Err(format!(
                "service {id} on {on} is not in CPU {cpu}'s table:\n{list}"
            ));
        }
    }
    let answer = peer.shell.ask("serve iperf3 -I vnic0 -A 0")?;
    plain_line(&answer, "serve: -A 0: vnic0 is owned by CPU 1")?;
    let answer = peer.shell.ask("serve iperf3 -A 5")?;
    plain_line(&answer, "serve: -A 5: no CPU 5 online (see `cpus`)")?;
    Ok(())
}

/// cxos's own iperf3 client `-P 2 -A 1` against stock `iperf3 -s` in the
/// namespace: two streams from CPU 1's interface (vnic0: its transmit
/// count rises); the measured Mbit/s.
fn client_pinned(peer: &mut Peer) -> Result<f64, String> {
    let tx = |text: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with("vnic0 "))?;
        line.split_once(" tx ")?
            .1
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let before = peer.shell.ask("ifconfig vnic0")?;
    peer.net.iperf3_server(5201).map_err(|e| e.to_string())?;
    let host = peer.net.host_ip();
    let answer = peer
        .shell
        .ask(&format!("iperf3 -c {host} -P 2 -t 2 -A 1"))?;
    let (line, v) = crate::systests_net::client_json(&answer)?;
    let bps = v
        .get("receiver_bits_per_second")
        .and_then(|b| b.as_f64())
        .unwrap_or(0.0);
    if bps <= 0.0 || v.get("streams").and_then(|s| s.as_i64()) != Some(2) {
        return Err(format!(
            "iperf3 -c {host} -P 2 -A 1 did not run two streams: {line}"
        ));
    }
    let after = peer.shell.ask("ifconfig vnic0")?;
    match (tx(&before), tx(&after)) {
        (Some(b), Some(a)) if a > b + 100 => Ok(bps / 1e6),
        _ => Err(format!(
            "iperf3 -A 1 did not send from vnic0 (CPU 1's):\n{before}\n{after}"
        )),
    }
}

/// `rx-spread vnic<N> queue <i> on cpu <c> -> cpu <o>: <r> frames
/// received, <n> handed off, <d> dropped (ring full), <b> too big, <q>
/// queued`: r, n, d, b, q.
fn spread_counts(text: &str, what: &str) -> Option<[u64; 5]> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("rx-spread {what} ")))?;
    let (_, rest) = line.split_once(": ")?;
    let mut n = rest
        .split(", ")
        .filter_map(|p| p.split_whitespace().next()?.parse::<u64>().ok());
    Some([n.next()?, n.next()?, n.next()?, n.next()?, n.next()?])
}

/// The rx packet count of `vnics`' line for `name`.
fn queue_rx(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(&format!("{name} ")))?;
    line.split_once(" rx ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The drop counts of `ifconfig <name>` (malformed, csum, unsupported).
fn stack_drops(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(&format!("{name} ")))?;
    let rest = line.split_once(" drops ")?.1;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let at = |k: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == k)?;
        words.get(i + 1)?.parse().ok()
    };
    Some(at("malformed")? + at("csum")? + at("unsupported")?)
}

/// The rx packet count of `ifconfig <name>`.
fn rx_pkts(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(&format!("{name} ")))?;
    line.split_once(" rx ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// vnic1 (`queues:2`, owned by CPU 0) lends its second receive queue to
/// CPU 1: `vnics` shows it; stock iperf3 with sixteen streams to vnic1's
/// server (all sixteen flows hashing to queue 0 has odds of 2^-16): CPU 1
/// hands frames to CPU 0, whose stack (vnic1's) counts at least those
/// frames, and every stream's data arrives. Handed-off frames, Mbit/s.
fn spread_rx(peer: &mut Peer, config: &PeerConfig) -> Result<(u64, f64), String> {
    let what = "vnic1 queue 1";
    let vnics = peer.shell.ask("vnics")?;
    let line = plain_line(&vnics, &format!("rx-spread {what} "))?;
    if !line.starts_with(&format!("rx-spread {what} on cpu 1 -> cpu 0: ")) {
        return Err(format!("vnic1's queue 1 is not lent to CPU 1:\n{vnics}"));
    }
    let before = spread_counts(&vnics, what).ok_or_else(|| format!("no counts:\n{vnics}"))?;
    let addr = config.ipv4(VNIC_ADDRS[1]);
    let json = peer
        .net
        .iperf3_client(&addr, &["-t", IPERF_SECS, "-P", "16"])
        .map_err(|e| format!("iperf3 -P 16 to vnic1: {e}"))?;
    let (bps, _) = iperf3_summary(&json)?;
    let streams = serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| {
            let s = v.pointer("/end/streams")?.as_array()?.clone();
            Some(
                s.iter()
                    .filter(|x| {
                        x.pointer("/receiver/bytes")
                            .and_then(|b| b.as_u64())
                            .is_some_and(|b| b > 0)
                    })
                    .count(),
            )
        })
        .unwrap_or(0);
    if streams != 16 {
        return Err(format!(
            "{streams} of 16 streams to vnic1 carried data:\n{json}"
        ));
    }
    let vnics = peer.shell.ask("vnics")?;
    let after = spread_counts(&vnics, what).ok_or_else(|| format!("no counts:\n{vnics}"))?;
    let handed = after[1] - before[1];
    if handed < 100 {
        return Err(format!(
            "CPU 1 handed only {handed} frames of vnic1's flows to CPU 0:\n{vnics}"
        ));
    }
    // Every frame CPU 1's queue received is handed off, counted as
    // dropped, or still queued: none vanishes on the way.
    let [received, passed, full, big, queued] = after;
    if received != passed + full + big + queued {
        return Err(format!(
            "CPU 1 received {received} frames of vnic1 but accounts for {}:\n{vnics}",
            passed + full + big + queued
        ));
    }
    // vnic1's stack (CPU 0) took every frame of its own queue and every
    // one handed to it (`ifconfig` after `vnics`: later frames only add).
    let own = queue_rx(&vnics, "vnic1").ok_or_else(|| format!("no vnic1 line:\n{vnics}"))?;
    let ifc = peer.shell.ask("ifconfig vnic1")?;
    let took = rx_pkts(&ifc, "vnic1")
        .zip(stack_drops(&ifc, "vnic1"))
        .map(|(a, b)| a + b)
        .ok_or_else(|| format!("no counts:\n{ifc}"))?;
    if took < own + passed {
        return Err(format!(
            "vnic1's stack (CPU 0) took {took} frames, its own queue received {own} and CPU 1 handed it {passed}:\n{vnics}\n{ifc}"
        ));
    }
    Ok((handed, bps / 1e6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_irq_lines_are_read() {
        let text = "cpus\ncpu 0 apic 0 online: 12 interrupts, timer 3, idle 97.8%\n\
                    cpu 1 apic 1 online: 355 interrupts, timer 355, idle 99.6%\n";
        assert_eq!(
            cpu_lines(text),
            [
                (0, 0, "online".to_string(), 3),
                (1, 1, "online".to_string(), 355)
            ]
        );
        assert_eq!(cpu_loads(text), [(0, 12, 3, 978), (1, 355, 355, 996)]);
        let later = "cpu 0 apic 0 online: 14 interrupts, timer 4, idle 97.0%\n\
                     cpu 1 apic 1 online: 400 interrupts, timer 400, idle 99.5%\n";
        assert_eq!(check_loads(text, later), Ok(()));
        assert!(check_loads(later, later).is_err());
        let busy = later.replace("idle 99.5%", "idle 0.0%");
        assert!(check_loads(text, &busy).is_err());
        let text = "msix 01:00.0 entry 2 vector 0x31 (comp eq 8 queue set 1 cpu 1): 40\n\
                    msix 01:00.0 entry 0 vector 0x2f (eq0 7): 3\n";
        assert_eq!(queue_set_vectors(text), [("0x31".to_string(), 1, 1)]);
        let text = "irq 0x22 timer cpu-timer cpu0=0 cpu1=653: 653\nirq spurious: 0\n";
        assert_eq!(
            irq_lines(text),
            [("0x22".to_string(), "timer".to_string(), vec![0, 653])]
        );
        let text = "rx-spread vnic1 queue 1 on cpu 1 -> cpu 0: 124 frames received, \
                    120 handed off, 2 dropped (ring full), 1 too big, 1 queued\n";
        assert_eq!(
            spread_counts(text, "vnic1 queue 1"),
            Some([124, 120, 2, 1, 1])
        );
        let text = "vnic1 02:00:00:00:00:01 link up 100000Mb/s mtu 1500 10.0.0.61/24 rx 77 pkts 1 B tx 3 pkts";
        assert_eq!(rx_pkts(text, "vnic1"), Some(77));
        let text = "vnic1 02:5e:00:12:00:82 link up 100000Mb/s mtu 1500 10.33.0.61/24 rx 153506 pkts \
                    228591633 B tx 20295 pkts 1186280 B drops malformed 1 csum 2 unsupported 3 no-buffer 0";
        assert_eq!(stack_drops(text, "vnic1"), Some(6));
        let text = "vnic1 02:5e:00:12:00:82 untagged queues 2 rx 59384 pkts 87817319 B tx 20295 pkts cpu 0";
        assert_eq!(queue_rx(text, "vnic1"), Some(59384));
    }
}
