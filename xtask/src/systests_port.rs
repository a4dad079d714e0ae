//! Issue 16's system test: port management in one boot, walking the
//! seed sequence with the model on a namespace peer. Stock iperf3 runs
//! from the namespace while the module is pulled (the console reports the
//! module unplugged and the link down) and a 10G DAC goes in (link up 10G,
//! the run completes); then a 1000BASE-T module (link up 1G); `traninfo`
//! shows the module's vendor, part and serial number as the model's image
//! has them (sim/src/module/inventory.rs); `led` states read back through
//! the model's control socket; the PPCNT 802.3 counters `stats` shows move
//! with traffic, between the model's own counts, and agree with the
//! namespace TAP's own counts (frames exactly, octets within FCS and
//! padding); `snoop` sees the frames
//! the namespace sends to a foreign MAC only while `promisc net0 on`;
//! `mtu net0 9000` at run time, then stock `ping -M do -s 8972` and
//! iperf3 with jumbo frames from the namespace, and a frame above the
//! port MTU injected on the wire counted as too long with no queue fault.

use std::time::{Duration, Instant};

use crate::netns::PeerConfig;
use crate::systests::{Context, SystemTest};
use crate::systests_attach::plain_line;
use crate::systests_net::{PEER_GUEST, number_after, peer_boot, peer_finish, static_cmdline};
use crate::systests_sim::expect_reply;

const PCI: &str = "01:00.0";

pub fn all() -> Vec<SystemTest> {
    vec![SystemTest {
        name: "port-module-led-counters",
        timeout: Duration::from_secs(120),
        run: module_sequence,
    }]
}

/// `stats`' `802.3: rx frames <n>`.
fn ppcnt_rx(shell: &mut crate::systests_attach::Shell) -> Result<u64, String> {
    let stats = shell.ask("stats")?;
    let line = stats
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with("802.3: rx frames "))
        .ok_or_else(|| format!("no 802.3 rx line in:\n{stats}"))?;
    number_after(line, "frames").ok_or_else(|| format!("not understood: {line}"))
}

/// `stats`' 802.3 lines: (rx frames, rx octets, tx frames, tx octets).
fn ppcnt_both(shell: &mut crate::systests_attach::Shell) -> Result<[u64; 4], String> {
    let stats = shell.ask("stats")?;
    let mut out = [0; 4];
    for (dir, at) in [("rx", 0), ("tx", 2)] {
        let line = stats
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(&format!("802.3: {dir} frames ")))
            .ok_or_else(|| format!("no 802.3 {dir} line in:\n{stats}"))?;
        match (number_after(line, "frames"), number_after(line, "octets")) {
            (Some(f), Some(o)) => (out[at], out[at + 1]) = (f, o),
            _ => return Err(format!("not understood: {line}")),
        }
    }
    Ok(out)
}

/// The namespace TAP's own counters (the peer's view of the wire, as
/// `ip -s link` shows them): (tx packets, tx bytes, rx packets, rx bytes).
/// The TAP's tx is what the namespace sent towards cxos.
fn tap_counts(ns: &crate::netns::Netns) -> Result<[u64; 4], String> {
    let mut out = [0; 4];
    for (i, f) in ["tx_packets", "tx_bytes", "rx_packets", "rx_bytes"]
        .iter()
        .enumerate()
    {
        let path = format!("/sys/class/net/{}/statistics/{f}", crate::netns::TAP);
        let v = ns.run("cat", &[&path]).map_err(|e| e.to_string())?;
        out[i] = v
            .trim()
            .parse()
            .map_err(|_| format!("{path}: not a number: {v}"))?;
    }
    Ok(out)
}

/// PPCNT and the TAP read at a quiet moment: the TAP's counters the same
/// before and after the shell's `stats`, so no frame crossed the wire
/// while PPCNT was read.
fn quiet_sample(peer: &mut crate::systests_net::Peer) -> Result<([u64; 4], [u64; 4]), String> {
    for _ in 0..10 {
        let tap = tap_counts(peer.net.netns())?;
        let ppcnt = ppcnt_both(&mut peer.shell)?;
        if tap_counts(peer.net.netns())? == tap {
            return Ok((ppcnt, tap));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err("the wire never went quiet for a PPCNT read".into())
}

/// PPCNT against the peer's own counts, over 20 pings from the namespace.
/// Frames: equal both ways. The TAP counts where the namespace's kernel
/// hands a frame to the model (tx) or takes one from it (rx), the MAC
/// where the frame enters or leaves the port; between the two the only
/// frames one side has counted and the other not are those in flight in
/// the model's wire, and at two quiet samples there are none (the link
/// stays up, so the model drops nothing between them). Octets: the MAC
/// counts a frame as it is on the wire, with its 4-byte FCS and padded to
/// the 64-byte minimum; the TAP counts the bytes the stack handed over,
/// without either. So PPCNT's octets are the TAP's plus at most 22 per
/// frame (4 of FCS and up to 18 of padding for the shortest frame the
/// stack sends, a 42-byte ARP) and at least the TAP's.
fn ppcnt_agrees_with_the_peer(
    peer: &mut crate::systests_net::Peer,
    guest: &str,
) -> Result<String, String> {
    let (p0, t0) = quiet_sample(peer)?;
    let out = peer
        .net
        .netns()
        .run("ping", &["-c", "20", "-i", "0.1", guest])
        .map_err(|e| e.to_string())?;
    if !out.contains("20 received") {
        return Err(format!("20 pings:\n{out}"));
    }
    let (p1, t1) = quiet_sample(peer)?;
    let d = |a: [u64; 4], b: [u64; 4], i: usize| b[i].wrapping_sub(a[i]);
    let (rx, rx_oct, tx, tx_oct) = (d(p0, p1, 0), d(p0, p1, 1), d(p0, p1, 2), d(p0, p1, 3));
    let (ns_tx, ns_tx_b, ns_rx, ns_rx_b) = (d(t0, t1, 0), d(t0, t1, 1), d(t0, t1, 2), d(t0, t1, 3));
    let what = format!(
        "PPCNT rx {rx} frames {rx_oct} octets, tx {tx} frames {tx_oct} octets; \
         the namespace's TAP sent {ns_tx} frames {ns_tx_b} bytes, received {ns_rx} frames \
         {ns_rx_b} bytes"
    );
    let octets_ok = |oct: u64, bytes: u64, frames: u64| bytes <= oct && oct <= bytes + 22 * frames;
    if rx < 20
        || tx < 20
        || rx != ns_tx
        || tx != ns_rx
        || !octets_ok(rx_oct, ns_tx_b, rx)
        || !octets_ok(tx_oct, ns_rx_b, tx)
    {
        return Err(format!("802.3 counters disagree with the peer: {what}"));
    }
    Ok(what)
}

/// The model's `wire` line `port rx frames <n>`.
fn model_rx(sim: &crate::sim_device::SimDevice) -> Result<u64, String> {
    let lines = sim.ask_ok("wire")?;
    let line = lines
        .iter()
        .find(|l| l.starts_with("port rx frames "))
        .ok_or_else(|| format!("no port rx line in {lines:?}"))?;
    number_after(line, "frames").ok_or_else(|| format!("not understood: {line}"))
}

/// `stats`' `802.3: ... too-long <n>` and whether every `faults <n>` line
/// says 0.
fn too_long_and_faults(shell: &mut crate::systests_attach::Shell) -> Result<(u64, bool), String> {
    let stats = shell.ask("stats")?;
    let line = stats
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with("802.3: rx frames "))
        .ok_or_else(|| format!("no 802.3 rx line in:\n{stats}"))?;
    let n = number_after(line, "too-long").ok_or_else(|| format!("not understood: {line}"))?;
    let faults: Vec<&str> = stats
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("faults "))
        .collect();
    let clean = !faults.is_empty() && faults.iter().all(|l| l.starts_with("faults 0 "));
    Ok((n, clean))
}

/// The model's `wire` line `port rx frames <n> bytes <b>`.
fn model_rx_bytes(sim: &crate::sim_device::SimDevice) -> Result<(u64, u64), String> {
    let lines = sim.ask_ok("wire")?;
    let line = lines
        .iter()
        .find(|l| l.starts_with("port rx frames "))
        .ok_or_else(|| format!("no port rx line in {lines:?}"))?;
    match (number_after(line, "frames"), number_after(line, "bytes")) {
        (Some(f), Some(b)) => Ok((f, b)),
        _ => Err(format!("not understood: {line}")),
    }
}

/// Runtime MTU: a size above the part's limit is refused with the limit
/// named; `mtu net0 9000`; the TAP goes to 9000 too; stock `ping -M do -s
/// 8972` (9000-byte IP packets, no fragmentation) and a short iperf3
/// whose frames average jumbo size on the model's wire; a 9100-byte frame
/// injected on the wire is dropped by the MAC (PMTU 9022) as too long,
/// with no queue fault. The figure line.
fn mtu_jumbo(peer: &mut crate::systests_net::Peer, guest: &str) -> Result<String, String> {
    plain_line(
        &peer.shell.ask("mtu net0 20000")?,
        "mtu: net0: MTU 20000 out of range: this port takes 1280 to ",
    )?;
    let t = Instant::now();
    plain_line(
        &peer.shell.ask("mtu net0 9000")?,
        "net0: mtu 1500 -> 9000 (port MTU 9022)",
    )?;
    let change = t.elapsed();
    peer.net
        .netns()
        .ip(&["link", "set", crate::netns::TAP, "mtu", "9000"])
        .map_err(|e| e.to_string())?;
    // smoltcp's new interface starts with an empty neighbour cache: the
    // reply to a first packet waits for ARP (and smoltcp drops it).
    let _ = peer.net.ping(guest, 1);
    let out = peer
        .net
        .netns()
        .run(
            "ping",
            &["-n", "-c", "3", "-W", "2", "-M", "do", "-s", "8972", guest],
        )
        .map_err(|e| e.to_string())?;
    if !out.contains(" 0% packet loss") || !out.contains("8980 bytes from") {
        return Err(format!("jumbo ping:\n{out}"));
    }
    let (f0, b0) = model_rx_bytes(&peer.sim)?;
    let json = peer
        .net
        .iperf3_client(guest, &["-t", "2"])
        .map_err(|e| e.to_string())?;
    let (bps, _) = crate::systests_net::iperf3_summary(&json)?;
    let (f1, b1) = model_rx_bytes(&peer.sim)?;
    let avg = (b1 - b0) / (f1 - f0).max(1);
    if avg < 4000 {
        return Err(format!(
            "iperf3 at MTU 9000: {} frames of {avg} bytes on average reached the port",
            f1 - f0
        ));
    }
    let (before, _) = too_long_and_faults(&mut peer.shell)?;
    let mut frame = vec![0xffu8; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x88, 0xb5]);
    frame.resize(9100, 0x5a);
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    expect_reply(
        &peer.sim.ask_ok(&format!("inject {hex}"))?,
        "ok injected 9100 bytes",
    )?;
    let (after, clean) = too_long_and_faults(&mut peer.shell)?;
    if after != before + 1 || !clean {
        return Err(format!(
            "a 9100-byte frame at PMTU 9022: too-long {before} -> {after}, no faults: {clean}"
        ));
    }
    // A VNIC's MTU: at most the port's, at creation and at run time.
    plain_line(
        &peer.shell.ask("vnic create mac:auto,ip:none,mtu=9100")?,
        "vnic: vnic",
    )
    .and_then(|l| {
        l.contains("MTU 9100 above the port's 9000")
            .then_some(())
            .ok_or_else(|| format!("not the port's limit: {l}"))
    })?;
    let created = peer.shell.ask("vnic create mac:auto,ip:none,mtu=4000")?;
    let name = created
        .lines()
        .find_map(|l| l.split_once(": created ").map(|(n, _)| n.to_string()))
        .ok_or_else(|| format!("no VNIC created:\n{created}"))?;
    plain_line(
        &peer.shell.ask(&format!("mtu {name} 9100"))?,
        &format!("mtu: {name}: MTU 9100 above the port's 9000"),
    )?;
    plain_line(
        &peer.shell.ask(&format!("mtu {name} 8000"))?,
        &format!("{name}: mtu 4000 -> 8000"),
    )?;
    let shown = peer.shell.ask(&format!("ifconfig {name}"))?;
    if !shown.contains(" mtu 8000 ") {
        return Err(format!("ifconfig {name} after mtu 8000:\n{shown}"));
    }
    peer.shell.ask(&format!("vnic delete {name}"))?;
    Ok(format!(
        "mtu net0 1500 -> 9000 at run time: {} ms (shell round trip); iperf3 at MTU 9000 {:.1} Mbit/s, {avg} B/frame",
        change.as_millis(),
        bps / 1e6
    ))
}

/// A MAC no one has: the namespace sends to it through a static
/// neighbour entry.
const FOREIGN_MAC: &str = "02:00:00:00:be:ef";

/// `snoop` in the foreground while the namespace pings an address bound
/// to [`FOREIGN_MAC`]; Ctrl-C ends it. Its output. With `until`
/// (`(text, n)`), the namespace pings every 200 ms until snoop has printed
/// `n` lines holding `text` (the session's timeout bounds the wait: a
/// loaded machine may start snoop after the first pings went out);
/// without, it sends 3 pings.
fn snoop_foreign_pings(
    shell: &mut crate::systests_attach::Shell,
    ns: &crate::netns::Netns,
    foreign: &str,
    until: Option<(&str, usize)>,
) -> Result<String, String> {
    shell.session.send_line("snoop")?;
    // The shell echoes the line and its newline, then starts the app.
    let mut from = shell.session.expect_from(shell.ready, "snoop\n")?;
    std::thread::sleep(Duration::from_millis(300));
    match until {
        // The pings get no answer: only the frames matter.
        None => {
            let _ = ns.ping(foreign, 3);
            std::thread::sleep(Duration::from_millis(500));
        }
        Some((text, n)) => {
            let mut ping = ns.command("ping");
            ping.args(["-n", "-q", "-i", "0.2", "-w", "60", foreign])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            let mut pinger = ping.spawn().map_err(|e| format!("ping: {e}"))?;
            let mut seen = 0;
            let waited = (|| {
                while seen < n {
                    from = shell.session.expect_from(from, text)?;
                    seen += 1;
                }
                Ok::<(), String>(())
            })();
            let _ = pinger.kill();
            let _ = pinger.wait();
            waited.map_err(|e| format!("snoop printed {seen} of {n} lines {text:?}: {e}"))?;
        }
    }
    shell.session.send_line("\u{3}")?;
    let end = shell
        .session
        .expect_from(shell.ready, crate::systests_sim::PROMPT)?;
    let out = shell.session.serial()[shell.ready..end].to_string();
    shell.ready = end;
    plain_line(&out, "^C")?;
    Ok(out)
}

/// `promisc` and `snoop`: frames the namespace `ns` sends out of `ifname`
/// (its address `host_ip`) to a foreign MAC are seen only while net0 is
/// promiscuous (also the acceptance suite's check).
pub(crate) fn promisc_snoop(
    shell: &mut crate::systests_attach::Shell,
    ns: &crate::netns::Netns,
    ifname: &str,
    host_ip: &str,
    config: &PeerConfig,
) -> Result<(), String> {
    let foreign = config.ipv4(9);
    ns.ip(&[
        "neigh",
        "replace",
        &foreign,
        "lladdr",
        FOREIGN_MAC,
        "dev",
        ifname,
    ])
    .map_err(|e| e.to_string())?;
    let to_foreign = format!("> {FOREIGN_MAC}, length ");
    let off = snoop_foreign_pings(shell, ns, &foreign, None)?;
    if off.contains(&to_foreign) {
        return Err(format!("snoop saw foreign frames without promisc:\n{off}"));
    }
    plain_line(&shell.ask("promisc net0 on")?, "net0: promiscuous on")?;
    let echo = format!("{to_foreign}98: IPv4 {host_ip} > {foreign}: ICMP echo request, id ");
    let on = snoop_foreign_pings(shell, ns, &foreign, Some((&echo, 3)))?;
    let seen = on.lines().filter(|l| l.contains(&echo)).count();
    if seen < 3 {
        return Err(format!(
            "snoop with promisc on saw {seen} of the 3 echo requests to {FOREIGN_MAC}:\n{on}"
        ));
    }
    if !on
        .lines()
        .any(|l| l.ends_with(" dropped") && l.contains(" frames captured, "))
    {
        return Err(format!("no snoop summary line:\n{on}"));
    }
    plain_line(&shell.ask("promisc off net0")?, "net0: promiscuous off")?;
    Ok(())
}

/// The command-line form at run time: `ifconfig net0 <its addresses>,
/// mtu=1500,speed=auto,led=off` applies the MTU and the port settings as
/// `mtu`, `speed` and `led` do, and the interface keeps its neighbours:
/// the namespace's first ping after the change is answered (cxos does
/// not lose its reply to a new ARP exchange). The namespace's own ARP
/// entry is made fresh first, so that it pings without asking again.
fn ifconfig_port_settings(
    peer: &mut crate::systests_net::Peer,
    guest: &str,
    config: &PeerConfig,
) -> Result<(), String> {
    let ping_once = |ns: &crate::netns::Netns| -> Result<(), String> {
        match ns.run("ping", &["-c", "1", "-W", "3", guest]) {
            Ok(out) if out.contains("1 received") => Ok(()),
            Ok(out) => Err(out),
            Err(e) => Err(e.to_string()),
        }
    };
    let ns = peer.net.netns();
    ns.run("ip", &["neigh", "flush", "dev", crate::netns::TAP])
        .map_err(|e| e.to_string())?;
    ping_once(ns).map_err(|e| format!("ping before the change: {e}"))?;
    let addrs = static_cmdline(config);
    let addrs = addrs.strip_prefix("net.0=").unwrap_or(&addrs);
    let reply = peer.shell.ask(&format!(
        "ifconfig net0 {addrs},mtu=1500,speed=auto,led=off"
    ))?;
    plain_line(&reply, "net0: mtu 9000 -> 1500 (port MTU 1522)")?;
    plain_line(&reply, &format!("mlx5 {PCI}: advertising every speed"))?;
    plain_line(&reply, &format!("mlx5 {PCI}: led off"))?;
    expect_reply(&peer.sim.ask_ok("led")?, "ok led off")?;
    ping_once(peer.net.netns())
        .map_err(|e| format!("the first ping after ifconfig ...,mtu=1500 was not answered: {e}"))
}

fn module_sequence(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let config = PeerConfig::new("systest");
    // The port settings' command-line form: the LED on from the start.
    let cmdline = format!("{},speed=auto,led=on", static_cmdline(&config));
    let Some(mut peer) = peer_boot(ctx, test, false, &cmdline)? else {
        return Ok(());
    };
    expect_reply(&peer.sim.ask_ok("led")?, "ok led on")?;
    let guest = config.ipv4(PEER_GUEST);
    plain_line(&peer.shell.ask("serve iperf3")?, "service ")?;
    // cx5: a QSFP28 cage with a 100G DAC.
    let phys = peer.shell.ask("phys")?;
    plain_line(&phys, PCI)?;
    if !phys.contains("module Mellanox MCP1600-C001 (100GBASE-CR4)") {
        return Err(format!("phys does not show the 100G DAC:\n{phys}"));
    }
    let mut figures = Vec::new();
    let run = peer
        .net
        .iperf3_client_start(&guest, &["-t", "6"])
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(1500));
    let swap = (|| -> Result<Duration, String> {
        expect_reply(&peer.sim.ask_ok("module remove")?, "ok removed, link down")?;
        peer.shell
            .wait_for_line(&format!("mlx5 {PCI}: module unplugged"))?;
        peer.shell
            .wait_for_line(&format!("mlx5 {PCI}: link down"))?;
        let t = Instant::now();
        // An SFP+ DAC through the QSA: 10G.
        expect_reply(
            &peer.sim.ask_ok("module insert 10g-dac")?,
            "ok inserted 10g-dac, link up 10G",
        )?;
        peer.shell.wait_for_line(&format!(
            "mlx5 {PCI}: module plugged: Mellanox MC3309130-001 (10GBASE-CR)"
        ))?;
        peer.shell
            .wait_for_line(&format!("mlx5 {PCI}: link up 10G"))?;
        Ok(t.elapsed())
    })();
    let report = run.finish().map_err(|e| e.to_string());
    let up_after = swap?;
    let (bps, _) = crate::systests_net::iperf3_summary(&report?)?;
    figures.push(format!(
        "module insert -> console link up 10G: {} ms; iperf3 through the swap {:.1} Mbit/s",
        up_after.as_millis(),
        bps / 1e6
    ));
    // Traffic flows again at 10G.
    let out = peer.net.ping(&guest, 2).map_err(|e| e.to_string())?;
    if !out.contains("2 received") {
        return Err(format!("no traffic after the 10G DAC went in:\n{out}"));
    }
    peer.shell.ask("uptime")?;
    // A 1000BASE-T module: 1G.
    expect_reply(&peer.sim.ask_ok("module remove")?, "ok removed, link down")?;
    peer.shell
        .wait_for_line(&format!("mlx5 {PCI}: module unplugged"))?;
    let t = Instant::now();
    expect_reply(
        &peer.sim.ask_ok("module insert 1g-copper")?,
        "ok inserted 1g-copper, link up 1G",
    )?;
    peer.shell.wait_for_line(&format!(
        "mlx5 {PCI}: module plugged: FINISAR CORP. FCLF8522P2BTL (1000BASE-T)"
    ))?;
    peer.shell
        .wait_for_line(&format!("mlx5 {PCI}: link up 1G"))?;
    figures.push(format!(
        "module insert -> console link up 1G: {} ms",
        t.elapsed().as_millis()
    ));
    // traninfo: the fields of sim/src/module/inventory.rs copper_1g().
    let info = peer.shell.ask(&format!("traninfo {PCI}"))?;
    for want in [
        "  vendor          FINISAR CORP.",
        "  vendor oui      00:90:65",
        "  part number     FCLF8522P2BTL",
        "  serial number   PUQ3LQ5",
        "  date code       190318",
        "  media           1000BASE-T",
        "  connector       RJ45 (0x22)",
    ] {
        plain_line(&info, want)?;
    }
    let hex = peer.shell.ask(&format!("traninfo -x {PCI}"))?;
    plain_line(&hex, "  0000: 03 04 22 ")?;
    let phys = peer.shell.ask("phys")?;
    if !phys.contains("module FINISAR CORP. FCLF8522P2BTL (1000BASE-T)") {
        return Err(format!("phys does not show the 1G module:\n{phys}"));
    }
    // LED states, as the model has them.
    plain_line(
        &peer.shell.ask(&format!("led {PCI} beacon 30"))?,
        &format!("mlx5 {PCI}: led beacon "),
    )?;
    let led = peer.sim.ask_ok("led")?;
    if !matches!(
        led.last().map(String::as_str),
        Some("ok led beacon 30s" | "ok led beacon 29s")
    ) {
        return Err(format!("model LED after beacon 30: {led:?}"));
    }
    peer.shell.ask(&format!("led on {PCI}"))?;
    expect_reply(&peer.sim.ask_ok("led")?, "ok led on")?;
    peer.shell.ask(&format!("led {PCI} off"))?;
    expect_reply(&peer.sim.ask_ok("led")?, "ok led off")?;
    // A speed the port does not run is refused with the ones it does.
    plain_line(
        &peer.shell.ask(&format!("speed {PCI} 400G"))?,
        "speed: 400G not supported; this port runs 1G 10G 25G 40G 50G 100G",
    )?;
    // The MAC's 802.3 counters move with traffic and sit between the
    // model's counts read before and after.
    let before = ppcnt_rx(&mut peer.shell)?;
    let out = peer.net.ping(&guest, 3).map_err(|e| e.to_string())?;
    if !out.contains("3 received") {
        return Err(format!("ping at 1G:\n{out}"));
    }
    let low = model_rx(&peer.sim)?;
    let now = ppcnt_rx(&mut peer.shell)?;
    let high = model_rx(&peer.sim)?;
    if now < before + 3 || now < low || now > high {
        return Err(format!(
            "802.3 rx frames {before} -> {now} after 3 pings; the model counted {low}..{high}"
        ));
    }
    figures.push(ppcnt_agrees_with_the_peer(&mut peer, &guest)?);
    figures.push(mtu_jumbo(&mut peer, &guest)?);
    ifconfig_port_settings(&mut peer, &guest, &config)?;
    let host_ip = peer.net.host_ip();
    promisc_snoop(
        &mut peer.shell,
        peer.net.netns(),
        crate::netns::TAP,
        &host_ip,
        &config,
    )?;
    // A module reporting an error: the console names it, the link drops.
    expect_reply(
        &peer.sim.ask_ok("module error high-temperature")?,
        "ok error high-temperature, link down",
    )?;
    peer.shell
        .wait_for_line(&format!("mlx5 {PCI}: module error: high temperature"))?;
    peer.shell
        .wait_for_line(&format!("mlx5 {PCI}: link down"))?;
    // ... recorded as a fault of port 1, and counted once.
    let line = peer
        .shell
        .wait_for_line(&format!("FAULT mlx5.module.error {PCI} port=1 syndrome="))?;
    if !line.ends_with(" action=none outcome=reported") {
        return Err(format!("module error record: {line}"));
    }
    let faults = peer.shell.ask("faults")?;
    let count = plain_line(&faults, "  mlx5.module.error ")?;
    if count.split_whitespace().last() != Some("1") {
        return Err(format!(
            "`faults` does not count one module error:\n{faults}"
        ));
    }
    peer_finish(peer)?;
    for f in figures {
        println!("    ({f})");
    }
    Ok(())
}
