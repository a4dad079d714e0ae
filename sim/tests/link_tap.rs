//! The in-process model on a TAP device in a network namespace the test
//! creates (root only; skipped with a visible line otherwise): stock `ping`
//! in the namespace reaches the mlx5 driver over the model, and the test
//! answers ARP and the echo request with frames it sends through the
//! driver, in both model modes; the pcap capture holds both directions.
#![cfg(feature = "tap")]

mod wires;

use cxos_drivers::NetDevice;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::link::{TapDevice, pcap};
use wires::*;

const NS_IP: [u8; 4] = [10, 77, 0, 1];
const OUR_IP: [u8; 4] = [10, 77, 0, 2];

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn is_arp_request_for_us(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1] && f[38..42] == OUR_IP
}

fn is_echo_request_to_us(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 1 && f[30..34] == OUR_IP && {
        let ihl = (f[14] & 0xf) as usize * 4;
        f.get(14 + ihl) == Some(&8)
    }
}

/// The ARP reply (RFC 826) to `req`: we are OUR_IP at `mac`.
fn arp_reply(req: &[u8], mac: [u8; 6]) -> Vec<u8> {
    let mut r = vec![0u8; 60];
    r[0..6].copy_from_slice(&req[6..12]);
    r[6..12].copy_from_slice(&mac);
    r[12..14].copy_from_slice(&[0x08, 0x06]);
    r[14..20].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    r[20..22].copy_from_slice(&[0, 2]);
    r[22..28].copy_from_slice(&mac);
    r[28..32].copy_from_slice(&OUR_IP);
    r[32..38].copy_from_slice(&req[22..28]);
    r[38..42].copy_from_slice(&req[28..32]);
    r
}

/// The echo reply (RFC 792) to `req`, checksums recomputed.
fn echo_reply(req: &[u8]) -> Vec<u8> {
    let mut r = req.to_vec();
    r[0..6].copy_from_slice(&req[6..12]);
    r[6..12].copy_from_slice(&req[0..6]);
    let ihl = (r[14] & 0xf) as usize * 4;
    let total = u16::from_be_bytes([r[16], r[17]]) as usize;
    r[26..30].copy_from_slice(&req[30..34]);
    r[30..34].copy_from_slice(&req[26..30]);
    r[22] = 64;
    r[24..26].fill(0);
    let c = checksum(&r[14..14 + ihl]);
    r[24..26].copy_from_slice(&c.to_be_bytes());
    let icmp = 14 + ihl..14 + total;
    r[icmp.start] = 0;
    r[icmp.start + 2..icmp.start + 4].fill(0);
    let c = checksum(&r[icmp.clone()]);
    r[icmp.start + 2..icmp.start + 4].copy_from_slice(&c.to_be_bytes());
    r
}

#[test]
fn stock_ping_in_a_namespace_reaches_the_driver_over_a_tap() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let ns = match cxos_testnet::prepare("sim-tap", &["ping"]) {
            Ok(ns) => ns,
            Err(skip) => return skip.report(),
        };
        let name = cxos_testnet::unique_ifname("cxs");
        // Made here, moved into the namespace before it carries anything.
        let tap = TapDevice::open(&name).unwrap();
        ns.adopt_link(&name).unwrap();
        ns.add_addr(&name, "10.77.0.1/24").unwrap();
        ns.link_up(&name).unwrap();
        let ns_mac = ns.mac_of(&name).unwrap();

        let sim = SimPlatform::new(Personality::ConnectX6Dx, mode);
        let cap = ns.dir().join("sim.pcap");
        sim.capture(&cap).unwrap();
        sim.attach_tap(tap).unwrap();
        let mut port = open(sim.clone());
        let mac = port.mac();

        std::thread::scope(|s| {
            let ping = s.spawn(|| ns.run("ping", &["-n", "-c", "1", "-W", "20", "10.77.0.2"]));
            let req = collect_matching(&mut port, 1, is_arp_request_for_us).remove(0);
            assert_eq!(req[28..32], NS_IP);
            send(&mut port, &[arp_reply(&req, mac)]);
            let echo = collect_matching(&mut port, 1, is_echo_request_to_us).remove(0);
            send(&mut port, &[echo_reply(&echo)]);
            let out = ping.join().unwrap().unwrap();
            assert!(out.contains("1 received"), "{mode:?}: {out}");
        });
        let mac_text = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(ns.neighbour("10.77.0.2"), Some(mac_text));

        // The writer counts a frame after writing it to the TAP.
        let link = settled(
            || sim.link_stats().unwrap(),
            |l| l.connected && l.tx_frames >= 2 && l.rx_frames >= 2,
        );
        assert!(
            link.connected && link.tx_frames >= 2 && link.rx_frames >= 2,
            "{link:?}"
        );
        assert_eq!(link.tx_errors, 0);
        let (_, records) = pcap::parse(&std::fs::read(&cap).unwrap()).unwrap();
        let from_ns = ns_mac.replace(':', "");
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert!(
            records
                .iter()
                .any(|r| is_arp_request_for_us(&r.data) && hex(&r.data[6..12]) == from_ns),
            "no ARP request from the namespace in the capture"
        );
        assert!(
            records
                .iter()
                .any(|r| r.data[12..14] == [0x08, 0x06] && r.data[6..12] == mac),
            "no ARP reply in the capture"
        );
        close(port);
        assert!(sim.sanitizer_violations().is_empty());
        sim.detach_link();
        drop(ns);
        // The TAP went with its namespace and its handle.
        let here = std::process::Command::new("ip")
            .arg("link")
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&here.stdout).contains(&name));
    }
}
