//! Malformed, corrupt and unsupported frames injected at an adapter's port
//! are counted by the Phy, never crash anything, never get an answer, and
//! the stack keeps working. Also: the plain `phy::Device` path (copying
//! receive) used with smoltcp's own `Interface::poll`.

mod common;

use common::{Node, Pair};
use cxos_net::phy::{FrameClass, Phy, PhyStats, Trust, classify};
use cxos_net::ping::Ping;
use cxos_net::smoltcp::iface::{Config, Interface, SocketSet};
use cxos_net::smoltcp::time::{Duration, Instant};
use cxos_net::smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

const A: &str = "10.0.0.1/24,ip6=fd00::1/64";
const B: &str = "10.0.0.2/24,ip6=fd00::2/64";
const IP_A: [u8; 4] = [10, 0, 0, 1];
const IP_B: [u8; 4] = [10, 0, 0, 2];

/// RFC 1071 internet checksum.
fn csum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for c in chunks {
        for &b in *c {
            match odd.take() {
                Some(h) => sum += u16::from_be_bytes([h, b]) as u32,
                None => odd = Some(b),
            }
        }
    }
    if let Some(h) = odd {
        sum += u16::from_be_bytes([h, 0]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

/// IPv4 header (20 bytes, checksum filled) + payload.
fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&IP_A);
    h.extend_from_slice(&IP_B);
    let c = csum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn icmp_echo(seq: u16) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0, 0x12, 0x34];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"abcdefghijklmnop");
    let c = csum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// A TCP SYN to port 5555 with its checksum right.
fn tcp_syn() -> Vec<u8> {
    let mut t = vec![
        0x30, 0x39, 0x15, 0xb3, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let len = (t.len() as u16).to_be_bytes();
    let pseudo = [&IP_A[..], &IP_B[..], &[0, 6], &len[..]].concat();
    let c = csum(&[&pseudo, &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

fn udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut u = vec![0x30, 0x39];
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let pseudo = [&IP_A[..], &IP_B[..], &[0, 17], &len.to_be_bytes()[..]].concat();
    let c = csum(&[&pseudo, &u]);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

fn settle(p: &mut Pair) {
    for _ in 0..20 {
        p.poll();
    }
}

#[test]
fn malformed_frames_are_counted_and_dropped_and_the_stack_survives() {
    let mut p = Pair::new(A, B);
    // Resolve neighbours first so replies (if any) would go out at once.
    let now = p.now;
    let mut ping = Ping::new(&mut p.a.net, "10.0.0.2 -c 1".parse().unwrap(), now).unwrap();
    assert!(p.run_app(true, &mut ping, Duration::from_secs(10)).0.ok);
    settle(&mut p);
    let (mac_a, mac_b) = (p.a.net.mac(), p.b.net.mac());
    let frame = |ethertype: u16, payload: &[u8]| eth(mac_b, mac_a, ethertype, payload);

    // The builders are right: a well-formed echo request is answered.
    let before_b = p.b.net.stats().phy;
    let before_a = p.a.net.stats().phy;
    p.b.sim.inject_rx(&frame(0x0800, &ipv4(1, &icmp_echo(7))));
    settle(&mut p);
    assert_eq!(p.b.net.stats().phy.rx_frames, before_b.rx_frames + 1);
    assert_eq!(
        p.b.net.stats().phy.tx_frames,
        before_b.tx_frames + 1,
        "echo reply"
    );
    assert_eq!(p.a.net.stats().phy.rx_frames, before_a.rx_frames + 1);

    let before = p.b.net.stats().phy;
    let mut bad_ip_version = ipv4(1, &icmp_echo(1));
    bad_ip_version[0] = 0x55;
    let mut bad_ip_len = ipv4(1, &icmp_echo(2));
    bad_ip_len[2..4].copy_from_slice(&900u16.to_be_bytes());
    let mut bad_ip_csum = ipv4(1, &icmp_echo(3));
    bad_ip_csum[10] ^= 0xff;
    let mut bad_icmp_csum = icmp_echo(4);
    bad_icmp_csum[2] ^= 0x01;
    let mut bad_tcp_csum = tcp_syn();
    bad_tcp_csum[16] ^= 0x40;
    let mut bad_tcp_offset = tcp_syn();
    bad_tcp_offset[12] = 0xf0; // 60-byte header in a 20-byte segment
    let mut bad_udp_len = udp(7777, b"hello");
    bad_udp_len[4..6].copy_from_slice(&200u16.to_be_bytes());
    let mut bad_udp_csum = udp(7777, b"hello");
    bad_udp_csum[8] ^= 0x20; // payload changed under the checksum
    let mut fragment = ipv4(17, &udp(7777, b"frag"));
    fragment[6] = 0x20; // more fragments
    fragment[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&[&fragment[..20]]);
    fragment[10..12].copy_from_slice(&c.to_be_bytes());
    let ipv6_too_long = {
        let mut h = vec![0x60, 0, 0, 0, 0x04, 0x00, 58, 64];
        h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h.extend_from_slice(&[128, 0, 0, 0]);
        h
    };
    let ipv6_truncated_hbh = {
        let mut h = vec![0x60, 0, 0, 0, 0, 8, 0, 64];
        h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h.extend_from_slice(&[58, 3, 0, 0, 0, 0, 0, 0]); // says 32 bytes, has 8
        h
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ipv4, empty", frame(0x0800, &[])),
        ("ipv4 version 5", frame(0x0800, &bad_ip_version)),
        ("ipv4 total length beyond frame", frame(0x0800, &bad_ip_len)),
        ("ipv4 header checksum", frame(0x0800, &bad_ip_csum)),
        ("icmp checksum", frame(0x0800, &ipv4(1, &bad_icmp_csum))),
        ("tcp checksum", frame(0x0800, &ipv4(6, &bad_tcp_csum))),
        ("tcp data offset", frame(0x0800, &ipv4(6, &bad_tcp_offset))),
        ("udp length", frame(0x0800, &ipv4(17, &bad_udp_len))),
        ("udp checksum", frame(0x0800, &ipv4(17, &bad_udp_csum))),
        ("ipv4 fragment", frame(0x0800, &fragment)),
        (
            "arp address lengths",
            frame(0x0806, &[0, 1, 8, 0, 8, 4, 0, 1, 1, 2, 3]),
        ),
        (
            "arp unknown operation",
            frame(
                0x0806,
                &[
                    0, 1, 8, 0, 6, 4, 0, 9, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0,
                    0, 2,
                ],
            ),
        ),
        ("ipv6 payload beyond frame", frame(0x86dd, &ipv6_too_long)),
        (
            "ipv6 truncated hop-by-hop",
            frame(0x86dd, &ipv6_truncated_hbh),
        ),
        ("vlan tagged", frame(0x8100, &[0, 5, 8, 0])),
        ("unknown ethertype", frame(0x1234, &[1, 2, 3])),
        ("l2 test, nobody listening", frame(0x88b5, b"CXL2")),
    ];
    for (what, f) in &cases {
        p.b.sim.inject_rx(f);
        settle(&mut p);
        // Nothing is answered (no RST, no ICMP error, no echo reply).
        assert_eq!(
            p.b.net.stats().phy.tx_frames,
            before.tx_frames,
            "{what}: the stack answered"
        );
    }
    let after = p.b.net.stats().phy;
    let delta = PhyStats {
        rx_malformed: after.rx_malformed - before.rx_malformed,
        rx_bad_checksum: after.rx_bad_checksum - before.rx_bad_checksum,
        rx_unsupported: after.rx_unsupported - before.rx_unsupported,
        rx_l2_dropped: after.rx_l2_dropped - before.rx_l2_dropped,
        rx_frames: after.rx_frames - before.rx_frames,
        ..PhyStats::default()
    };
    assert_eq!(
        delta,
        PhyStats {
            rx_malformed: 9,
            rx_bad_checksum: 4,
            rx_unsupported: 3,
            rx_l2_dropped: 1,
            ..PhyStats::default()
        },
        "{after:?}"
    );
    assert!(
        p.b.net
            .status_line()
            .contains("drops malformed 9 csum 4 unsupported 3")
    );
    // Still alive, both ways.
    let now = p.now;
    let mut ping = Ping::new(&mut p.a.net, "10.0.0.2 -c 2 -i 0.1".parse().unwrap(), now).unwrap();
    assert!(p.run_app(true, &mut ping, Duration::from_secs(10)).0.ok);
    let mut ping = Ping::new(&mut p.b.net, "fd00::1 -c 2 -i 0.1".parse().unwrap(), now).unwrap();
    assert!(p.run_app(false, &mut ping, Duration::from_secs(10)).0.ok);
    p.close();
}

#[test]
fn classify_trusts_only_what_the_adapter_vouched_for() {
    let mac = [2, 0, 0, 0, 0, 1];
    let mut bad_tcp = tcp_syn();
    bad_tcp[16] ^= 0x40;
    let f = eth(mac, mac, 0x0800, &ipv4(6, &bad_tcp));
    let none = Trust::default();
    let l4 = Trust { l3: true, l4: true };
    assert_eq!(classify(&f, none), FrameClass::BadChecksum);
    // The adapter said the TCP checksum was good: not verified again.
    assert_eq!(classify(&f, l4), FrameClass::Stack { dhcp_client: false });
    // ICMP is always verified here, whatever the adapter says.
    let mut bad_icmp = icmp_echo(1);
    bad_icmp[3] ^= 1;
    let f = eth(mac, mac, 0x0800, &ipv4(1, &bad_icmp));
    assert_eq!(classify(&f, l4), FrameClass::BadChecksum);
    let f = eth(mac, mac, 0x0800, &ipv4(17, &udp(68, b"x")));
    assert_eq!(classify(&f, none), FrameClass::Stack { dhcp_client: true });
    // Every truncation of a good frame is malformed or passes, never panics.
    let good = eth(mac, mac, 0x0800, &ipv4(6, &tcp_syn()));
    for n in 0..good.len() {
        let _ = classify(&good[..n], none);
    }
}

#[test]
fn plain_phy_device_with_smoltcp_interface_poll() {
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX5,
        Personality::ConnectX5,
        Mode::Synchronous,
    );
    let mut now = Instant::from_millis(1_000);
    let mut a = Node::new(sa, EthConfig::default(), "10.0.0.1/24", now);
    // b: smoltcp's own Interface::poll over a bare Phy.
    let port = common::open_port(&sb, EthConfig::default());
    let mut phy = Phy::new(port);
    let mac_b = cxos_drivers::NetDevice::mac(phy.device());
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress(mac_b))),
        &mut phy,
        now,
    );
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(Ipv4Address::new(10, 0, 0, 2).into(), 24))
            .unwrap();
    });
    let mut sockets = SocketSet::new(Vec::new());
    let mut ping = Ping::new(&mut a.net, "10.0.0.2 -c 3 -i 0.1".parse().unwrap(), now).unwrap();
    let mut out = String::new();
    let verdict = loop {
        let pa = a.net.poll(now);
        iface.poll(now, &mut phy, &mut sockets);
        phy.flush();
        if let cxos_net::app::AppStatus::Done(v) =
            cxos_net::app::App::poll(&mut ping, &mut a.net, now, &mut out)
        {
            break v;
        }
        if !pa {
            now += Duration::from_millis(5);
        }
        assert!(now < Instant::from_secs(30), "{out}");
    };
    assert!(verdict.ok, "{out}");
    let st = phy.stats();
    // ARP request + 3 echo requests in, ARP reply + 3 echo replies out.
    assert!(st.rx_frames >= 4 && st.tx_frames >= 4, "{st:?}");
    let port = phy.into_device();
    let (ad, rep) = port.close();
    assert_eq!(rep.errors, 0);
    ad.detach();
    a.close();
}
