//! System test of issue 10's kernel side: hardware-steered VNICs in cxos
//! under QEMU against the model on the peer network's TAP, with VLAN
//! sub-interfaces on the host side.
//!
//! cxos creates [`VNICS`] VNICs from the command line (untagged, VLAN 10
//! and VLAN 20; static and DHCP), the namespace pings every one, two stock
//! iperf3 clients run at once against `serve iperf3` on two VNICs, and
//! cxos detaches with nothing lost.

use std::time::{Duration, Instant};

use crate::netns::{PeerConfig, PeerError, PeerNetwork};
use crate::sim_device::SimDevice;
use crate::systests::{Context, SystemTest};
use crate::systests_attach::{Shell, detach_clean, expect_model_clean, plain_line};
use crate::systests_sim;

/// Hard limit of the whole run (it takes ~60 s under TCG here).
const TIMEOUT: Duration = Duration::from_secs(180);
const PCI: &str = "01:00.0";
/// How many VNICs cxos creates besides net0.
const VNICS: u32 = 20;
/// The kernel's command line buffer (boot/src/info.rs MAX_CMDLINE).
const MAX_CMDLINE: usize = 1024;
const VLAN_A: u16 = 10;
const VLAN_B: u16 = 20;
/// The VNIC with an explicit MAC (the others' are generated); it also
/// has [`RSS_QUEUES`] receive queues.
const GIVEN_MAC: &str = "02:aa:00:00:00:20";
const RSS_QUEUES: u32 = 2;
/// A definition the kernel refuses (reported, no VNIC).
const BAD_DEF: &str = "vlan:4095";

pub fn all() -> Vec<SystemTest> {
    vec![SystemTest {
        name: "vnic-twenty-peer",
        timeout: TIMEOUT,
        run: twenty_vnics,
    }]
}

/// One VNIC of the test: number, VLAN, static address (`None`: DHCP).
#[derive(Debug, Clone)]
struct Plan {
    n: u32,
    vlan: Option<u16>,
    fixed: Option<String>,
}

/// VNIC `n` is untagged, on VLAN 10 or on VLAN 20 by `n % 3`, static when
/// `n` is even (`.<20+n>` of its subnet), DHCP when odd.
fn plans(config: &PeerConfig) -> Vec<Plan> {
    (0..VNICS)
        .map(|n| {
            let vlan = [None, Some(VLAN_A), Some(VLAN_B)][(n % 3) as usize];
            let host = 20 + n as u8;
            let fixed = (n % 2 == 0).then(|| match vlan {
                None => config.ipv4(host),
                Some(v) => config.vlan_ipv4(v, host).expect("the VLAN has a subnet"),
            });
            Plan { n, vlan, fixed }
        })
        .collect()
}

fn cmdline(config: &PeerConfig, plans: &[Plan]) -> String {
    let mut line = format!("net.0={}/24", config.ipv4(2));
    for p in plans {
        line.push_str(&format!(" vnic.{}=", p.n));
        if p.n == 0 {
            line.push_str(&format!("mac:{GIVEN_MAC},queues:{RSS_QUEUES},"));
        }
        if let Some(v) = p.vlan {
            line.push_str(&format!("vlan:{v},"));
        }
        match &p.fixed {
            Some(a) => line.push_str(&format!("ip:{a}/24")),
            None => line.push_str("ip:dhcp"),
        }
        if p.n == 4 {
            // A gateway item after ip: (cxos-net's IfConfig syntax).
            let gw = config.vlan_ipv4(VLAN_A, 1).unwrap_or_default();
            line.push_str(&format!(",gw={gw}"));
        }
    }
    line.push_str(&format!(" vnic.63={BAD_DEF}"));
    line
}

/// The address in `vnic<N>: dhcp lease <a.b.c.d/n> gw ...`.
fn leased(line: &str) -> Option<String> {
    let rest = line.split(": dhcp lease ").nth(1)?;
    let cidr = rest.split_whitespace().next()?;
    Some(cidr.split('/').next()?.to_string())
}

/// `ping -c 3` from the namespace to every address at once; the ones that
/// did not answer every request, with ping's output.
fn ping_all(net: &PeerNetwork, addrs: &[(String, String)]) -> Result<Vec<String>, String> {
    let children = addrs
        .iter()
        .map(|(name, addr)| {
            let child = net
                .netns()
                .command("ping")
                .args(["-n", "-c", "3", "-i", "0.3", "-W", "3", addr])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start ping: {e}"))?;
            Ok((name, addr, child))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut bad = Vec::new();
    for (name, addr, child) in children {
        let out = child
            .wait_with_output()
            .map_err(|e| format!("ping {addr}: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains("3 packets transmitted, 3 received, 0% packet loss") {
            bad.push(format!("{name} {addr}: {text}"));
        }
    }
    Ok(bad)
}

fn iperf3_bps(json: &str) -> Result<f64, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    v.pointer("/end/sum_received/bits_per_second")
        .and_then(|b| b.as_f64())
        .filter(|b| *b > 0.0)
        .ok_or_else(|| format!("no sum_received in {json}"))
}

/// Issue 10, system: 20 VNICs (7 untagged, 7 on VLAN 10, 6 on VLAN 20;
/// half static, half DHCP from the namespace's dnsmasq on the TAP and its
/// VLAN sub-interfaces) from the command line; every one answers the
/// namespace's ping; `vnics`, `flows` (driver == adapter for every entry)
/// and `rings` show them; `ping -I vnic<N>` goes out tagged; `ifconfig
/// vnic<N>` gives one a new address; two stock
/// iperf3 clients at once against `serve iperf3` on two VNICs (untagged
/// and VLAN 10); `vnic delete` takes one away (it stops answering) and
/// `vnic create` adds one from the shell; detach loses nothing.
fn twenty_vnics(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let started = Instant::now();
    let config = PeerConfig {
        vlans: vec![(VLAN_A, [10, 33, 10]), (VLAN_B, [10, 33, 20])],
        ..PeerConfig::new("vnic")
    };
    let net = match PeerNetwork::create(&config) {
        Ok(net) => net,
        Err(PeerError::Skip(why)) => {
            println!("    skipped: {why}");
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    let result = run(ctx, test, &config, &net, started);
    if result.is_err() {
        let _ = net.keep_logs(&ctx.log_path(test).with_extension("netns"));
    }
    result
}

fn run(
    ctx: &Context,
    test: &SystemTest,
    config: &PeerConfig,
    net: &PeerNetwork,
    started: Instant,
) -> Result<(), String> {
    let plans = plans(config);
    let line = cmdline(config, &plans);
    if line.len() >= MAX_CMDLINE {
        return Err(format!("command line too long ({} bytes)", line.len()));
    }
    let setup = systests_sim::setup(ctx)?;
    let log = ctx.log_path(test).with_extension("sim.log");
    let pcap = ctx.log_path(test).with_extension("pcap");
    let mut sim = SimDevice::start_with(
        &setup.sim,
        "cx5",
        test.name,
        &log,
        &net.sim_options(Some(pcap)),
    )?;
    let machine = systests_sim::machine(ctx, &sim, &line);
    let session = systests_sim::spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
    let mut shell = Shell::start(session)?;
    let booted = started.elapsed();
    let serial = shell.session.serial().to_string();
    plain_line(
        &serial,
        &format!("cmdline: bad value '{BAD_DEF}' for 'vnic.63', using no VNIC"),
    )?;
    for p in &plans {
        plain_line(&serial, &format!("vnic{} ", p.n))?;
    }
    if serial.contains(": not created: ") {
        return Err(format!("a VNIC was not created:\n{serial}"));
    }

    // Every VNIC's address: static, or the lease it reports.
    let mut addrs: Vec<(String, String)> = Vec::new();
    for p in &plans {
        let name = format!("vnic{}", p.n);
        let addr = match &p.fixed {
            Some(a) => a.clone(),
            None => {
                let needle = format!("{name}: dhcp lease ");
                let at = shell.session.expect(&needle)? - needle.len();
                let end = shell.session.expect_from(at, "\n")?;
                let line = shell.session.serial()[at..end].to_string();
                let addr = leased(&line).ok_or_else(|| format!("lease line: {line}"))?;
                let prefix = match p.vlan {
                    None => config.ipv4(100),
                    Some(v) => config.vlan_ipv4(v, 100).unwrap_or_default(),
                };
                // The lease comes from the subnet of the VNIC's VLAN.
                let subnet = &prefix[..prefix.rfind('.').unwrap_or(0)];
                if !addr.starts_with(&format!("{subnet}.")) {
                    return Err(format!("{name} on {:?} leased {addr}: {line}", p.vlan));
                }
                addr
            }
        };
        addrs.push((name, addr));
    }
    let leases_at = started.elapsed();

    let bad = ping_all(net, &addrs)?;
    if !bad.is_empty() {
        return Err(format!("VNICs not answering:\n{}", bad.join("\n")));
    }
    let pinged_at = started.elapsed();

    let vnics = shell.ask("vnics")?;
    plain_line(&vnics, "net0 ")?;
    for (name, addr) in &addrs {
        let l = plain_line(&vnics, &format!("{name} "))?;
        if !l.contains(&format!("ipv4 {addr}/24")) {
            return Err(format!("vnics line of {name} lacks {addr}: {l}"));
        }
    }
    let tagged = plain_line(&vnics, "vnic1 ")?;
    if !tagged.contains(&format!(" vlan {VLAN_A} ")) {
        return Err(format!("vnic1 is on VLAN {VLAN_A}: {tagged}"));
    }
    let given = plain_line(&vnics, "vnic0 ")?;
    if !given.contains(GIVEN_MAC) || !given.contains(&format!(" queues {RSS_QUEUES} ")) {
        return Err(format!(
            "vnic0 has MAC {GIVEN_MAC} and {RSS_QUEUES} queues: {given}"
        ));
    }
    let flows = shell.ask("flows")?;
    // `<n> entries, <n> as programmed, 0 mismatched` (QUERY_FLOW_TABLE_ENTRY
    // of every entry the driver programmed).
    let summary = flows
        .lines()
        .find(|l| l.contains(" entries, "))
        .ok_or_else(|| format!("flows has no summary:\n{flows}"))?;
    let entries = summary.split_whitespace().next().unwrap_or("");
    if flows.contains("MISMATCH")
        || !summary.ends_with(&format!(
            "{entries} entries, {entries} as programmed, 0 mismatched"
        ))
        || entries.parse::<u32>().unwrap_or(0) < VNICS
    {
        return Err(format!("flows: driver and adapter disagree:\n{flows}"));
    }
    let rings = shell.ask("rings")?;
    plain_line(&rings, &format!("port {PCI}:"))?;
    plain_line(&rings, &format!("  vnic{}:", VNICS - 1))?;

    // cxos's own ping from a tagged VNIC to its VLAN's host side.
    let host_a = config.vlan_ipv4(VLAN_A, 1).unwrap_or_default();
    let answer = shell.ask(&format!("ping -I vnic4 {host_a} -c 2"))?;
    plain_line(&answer, "2 packets transmitted, 2 received, 0% packet loss")?;

    // Two stock clients at once against servers on two VNICs (`-s`
    // implied, `-I` before or after it). vnic0 spreads over its 2
    // receive queues (RSS): 2 streams.
    let (first, second) = (&addrs[0], &addrs[4]);
    for command in [
        format!("serve iperf3 -I {}", first.0),
        format!("serve iperf3 -s -I {}", second.0),
    ] {
        let answer = shell.ask(&command)?;
        plain_line(&answer, "service ")?;
    }
    let run_a = net
        .iperf3_client_start(&first.1, &["-t", "3", "-P", "2"])
        .map_err(|e| e.to_string())?;
    let run_b = net
        .iperf3_client_start(&second.1, &["-t", "3"])
        .map_err(|e| e.to_string())?;
    let json_a = run_a.finish().map_err(|e| format!("{}: {e}", first.0))?;
    let json_b = run_b.finish().map_err(|e| format!("{}: {e}", second.0))?;
    let (bps_a, bps_b) = (iperf3_bps(&json_a)?, iperf3_bps(&json_b)?);
    let services = shell.ask("serve")?;
    for (name, _) in [first, second] {
        if !services.contains(&format!("iperf3 -s on {name}")) {
            return Err(format!("serve does not list {name}'s server:\n{services}"));
        }
    }
    // Both servers print per-second interval lines (the kernel wakes at
    // the apps' poll_at deadlines): at least one `[  5]   1.0x-2.0x   sec`
    // line each (a server's boundaries follow its own start).
    let intervals = shell
        .session
        .serial()
        .lines()
        .filter(|l| {
            l.split_once(']')
                .is_some_and(|(_, r)| r.trim_start().starts_with("1.0") && r.contains(" sec "))
        })
        .count();
    if intervals < 2 {
        return Err(format!(
            "{intervals} iperf3 interval lines for the second second from two servers"
        ));
    }

    // A new static address for a running VNIC (`ifconfig vnic<N> ...`).
    let moved = config.vlan_ipv4(VLAN_B, 42).unwrap_or_default();
    let answer = shell.ask(&format!("ifconfig vnic2 {moved}/24"))?;
    let status = plain_line(&answer, "vnic2 ")?;
    if !status.contains(&format!(" {moved}/24")) {
        return Err(format!("ifconfig vnic2: {status}"));
    }
    let answer = shell.ask("ifconfig vnic2")?;
    let shown = plain_line(&answer, "vnic2 ")?;
    if !shown.contains(&format!(" {moved}/24")) {
        return Err(format!("ifconfig vnic2 shows: {shown}"));
    }
    let bad = ping_all(net, &[("vnic2".into(), moved.clone())])?;
    if !bad.is_empty() {
        return Err(format!("after ifconfig vnic2: {}", bad.join("\n")));
    }

    // Delete one: it stops answering; create one from the shell.
    let last = &addrs[(VNICS - 1) as usize];
    let answer = shell.ask(&format!("vnic delete {}", VNICS - 1))?;
    plain_line(&answer, &format!("vnic{}: deleted, 0 errors", VNICS - 1))?;
    let out = net
        .netns()
        .command("ping")
        .args(["-n", "-c", "1", "-W", "1", &last.1])
        .output()
        .map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&out.stdout).contains(" 1 received") {
        return Err(format!("{} still answers after vnic delete", last.0));
    }
    let fresh = config.vlan_ipv4(VLAN_B, 99).unwrap_or_default();
    let answer = shell.ask(&format!("vnic create vlan:{VLAN_B},ip:{fresh}/24"))?;
    plain_line(&answer, &format!("vnic{}: created ", VNICS - 1))?;
    let bad = ping_all(net, &[("new".into(), fresh.clone())])?;
    if !bad.is_empty() {
        return Err(format!(
            "the VNIC created from the shell: {}",
            bad.join("\n")
        ));
    }
    // Refused: a (MAC, VLAN) another VNIC has, and a bad definition.
    let answer = shell.ask(&format!("vnic create mac:{GIVEN_MAC},ip:none"))?;
    plain_line(&answer, &format!("vnic: vnic{VNICS} not created: "))?;
    let answer = shell.ask("vnic create vlan:5000")?;
    plain_line(&answer, "vnic: ")?;
    let list = shell.ask("vnic list")?;
    if list
        .lines()
        .filter(|l| l.starts_with("vnic") && l.ends_with(" up"))
        .count()
        != VNICS as usize
    {
        return Err(format!("vnic list:\n{list}"));
    }

    detach_clean(&mut shell, &sim)?;
    expect_model_clean(&sim)?;
    shell.poweroff(&mut sim)?;
    println!(
        "    (boot+{VNICS} VNICs {:.1} s, leases {:.1} s, all pinged {:.1} s, total {:.1} s; \
         iperf3 at once: {} {:.0} Mbit/s, {} {:.0} Mbit/s)",
        booted.as_secs_f64(),
        leases_at.as_secs_f64(),
        pinged_at.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        first.0,
        bps_a / 1e6,
        second.0,
        bps_b / 1e6
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_mixes_vlans_and_addressing() {
        let config = PeerConfig {
            vlans: vec![(VLAN_A, [10, 33, 10]), (VLAN_B, [10, 33, 20])],
            ..PeerConfig::new("t")
        };
        let p = plans(&config);
        assert_eq!(p.len(), 20);
        assert_eq!(p.iter().filter(|p| p.vlan.is_none()).count(), 7);
        assert_eq!(p.iter().filter(|p| p.vlan == Some(VLAN_B)).count(), 6);
        assert_eq!(p[4].fixed.as_deref(), Some("10.33.10.24"));
        assert_eq!(p[1].fixed, None);
        let line = cmdline(&config, &p);
        assert!(line.len() < MAX_CMDLINE, "{}", line.len());
        assert!(line.starts_with(
            "net.0=10.33.0.2/24 vnic.0=mac:02:aa:00:00:00:20,queues:2,ip:10.33.0.20/24 vnic.1=vlan:10,ip:dhcp"
        ));
        assert_eq!(
            leased("vnic3: dhcp lease 10.33.0.150/24 gw none from 10.33.0.1 for 120 s").as_deref(),
            Some("10.33.0.150")
        );
    }
}
