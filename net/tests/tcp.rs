//! TCP between the two stacks: a 100 MB transfer with every byte checked,
//! both directions over IPv4 and a shorter one over IPv6; the echo and
//! discard services.

mod common;

use common::{Pair, Pattern, Port};
use cxos_net::NetIf;
use cxos_net::app::App;
use cxos_net::smoltcp::iface::SocketHandle;
use cxos_net::smoltcp::socket::tcp;
use cxos_net::smoltcp::time::Duration;
use cxos_net::smoltcp::wire::IpAddress;
use cxos_net::tcp_service::TcpService;
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::Mode;

const A: &str = "10.0.0.1/24,ip6=fd00::1/64";
const B: &str = "10.0.0.2/24,ip6=fd00::2/64";
const BUF: usize = 256 * 1024;

fn connect(net: &mut NetIf<Port>, to: IpAddress, port: u16) -> SocketHandle {
    let h = net.tcp_socket(BUF, BUF);
    let local = net.ephemeral_port();
    let cx = net.iface.context();
    net.sockets
        .get_mut::<tcp::Socket>(h)
        .connect(cx, (to, port), local)
        .expect("connect");
    h
}

fn listen(net: &mut NetIf<Port>, port: u16) -> SocketHandle {
    let h = net.tcp_socket(BUF, BUF);
    net.sockets.get_mut::<tcp::Socket>(h).listen(port).unwrap();
    h
}

/// Send `total` pattern bytes from one stack to the other and check them
/// on arrival; returns the bytes received intact.
fn transfer(p: &mut Pair, from_a: bool, to: IpAddress, total: u64) -> u64 {
    let pat = Pattern::new();
    let (tx, rx) = if from_a {
        let r = listen(&mut p.b.net, 5001);
        (connect(&mut p.a.net, to, 5001), r)
    } else {
        let r = listen(&mut p.a.net, 5001);
        (connect(&mut p.b.net, to, 5001), r)
    };
    let (mut sent, mut got, mut bad) = (0u64, 0u64, false);
    let start = std::time::Instant::now();
    let finished = p.run_until(Duration::from_secs(600), |p| {
        let (snet, rnet) = if from_a {
            (&mut p.a.net, &mut p.b.net)
        } else {
            (&mut p.b.net, &mut p.a.net)
        };
        let s = snet.sockets.get_mut::<tcp::Socket>(tx);
        while sent < total && s.can_send() {
            let n = s
                .send(|buf| {
                    let n = buf.len().min((total - sent) as usize);
                    pat.fill(sent, &mut buf[..n]);
                    (n, n)
                })
                .unwrap();
            if n == 0 {
                break;
            }
            sent += n as u64;
        }
        if sent == total && s.may_send() {
            s.close();
        }
        let r = rnet.sockets.get_mut::<tcp::Socket>(rx);
        while r.can_recv() {
            let n = r
                .recv(|buf| {
                    if !pat.matches(got, buf) {
                        bad = true;
                    }
                    (buf.len(), buf.len())
                })
                .unwrap();
            got += n as u64;
        }
        bad || (got == total && !r.may_recv())
    });
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "transfer of {total} bytes: {:.2} s, {:.2} Gbit/s (debug build, model included)",
        secs,
        total as f64 * 8.0 / secs / 1e9
    );
    assert!(!bad, "corrupt data at or after byte {got}");
    assert!(finished, "stuck: sent {sent} received {got}");
    for (net, h) in [(&mut p.a.net, tx), (&mut p.b.net, rx)] {
        net.sockets.remove(h);
    }
    let _ = (&mut p.a.net, &mut p.b.net);
    got
}

#[test]
fn hundred_megabytes_checked_ipv4() {
    let mut p = Pair::new(A, B);
    let total = 100 * 1024 * 1024;
    assert_eq!(
        transfer(&mut p, true, IpAddress::v4(10, 0, 0, 2), total),
        total
    );
    let (sa, sb) = (p.a.net.stats(), p.b.net.stats());
    assert!(sa.phy.tx_frames > total / 1500, "{sa:?}");
    assert_eq!(sa.phy.rx_bad_checksum + sb.phy.rx_bad_checksum, 0);
    assert_eq!(sa.phy.rx_malformed + sb.phy.rx_malformed, 0);
    p.close();
}

#[test]
fn threaded_models_eight_megabytes_each_way() {
    let mut p = Pair::with(
        Personality::ConnectX6Dx,
        Personality::ConnectX4Lx,
        Mode::Threaded,
        EthConfig::default(),
        A,
        B,
    );
    let total = 8 * 1024 * 1024;
    assert_eq!(
        transfer(&mut p, true, IpAddress::v4(10, 0, 0, 2), total),
        total
    );
    let to_a = IpAddress::Ipv6("fd00::1".parse().unwrap());
    assert_eq!(transfer(&mut p, false, to_a, total), total);
    p.close();
}

#[test]
fn ten_megabytes_each_way_ipv6() {
    let mut p = Pair::new(A, B);
    let total = 10 * 1024 * 1024;
    let to_b = IpAddress::Ipv6("fd00::2".parse().unwrap());
    let to_a = IpAddress::Ipv6("fd00::1".parse().unwrap());
    assert_eq!(transfer(&mut p, true, to_b, total), total);
    assert_eq!(transfer(&mut p, false, to_a, total), total);
    p.close();
}

#[test]
fn echo_returns_every_byte_and_discard_swallows_them() {
    let mut p = Pair::new(A, B);
    let mut echo = TcpService::echo(&mut p.b.net).unwrap();
    let mut discard = TcpService::discard(&mut p.b.net).unwrap();
    let pat = Pattern::new();
    let mut out = String::new();
    // Two echo connections in turn, each 1 MB.
    for round in 0..2u64 {
        let h = connect(&mut p.a.net, IpAddress::v4(10, 0, 0, 2), 7);
        let total = 1024 * 1024u64;
        let (mut sent, mut back, mut bad) = (0u64, 0u64, false);
        let ok = p.run_until(Duration::from_secs(120), |p| {
            let now = p.now;
            let _ = echo.poll(&mut p.b.net, now, &mut out);
            let s = p.a.net.sockets.get_mut::<tcp::Socket>(h);
            while sent < total && s.can_send() {
                let n = s
                    .send(|b| {
                        let n = b.len().min((total - sent) as usize);
                        pat.fill(round + sent, &mut b[..n]);
                        (n, n)
                    })
                    .unwrap();
                sent += n as u64;
                if n == 0 {
                    break;
                }
            }
            while s.can_recv() {
                back += s
                    .recv(|b| {
                        bad |= !pat.matches(round + back, b);
                        (b.len(), b.len())
                    })
                    .unwrap() as u64;
            }
            if back == total && s.may_send() {
                s.close();
            }
            bad || (back == total && !s.is_open())
        });
        assert!(!bad, "echo returned wrong bytes");
        assert!(ok, "echo round {round}: sent {sent} back {back}");
        p.a.net.sockets.remove(h);
    }
    assert_eq!(echo.connections(), 2);
    assert_eq!(echo.bytes(), 2 * 1024 * 1024);
    // Discard: 3 MB in, nothing back.
    let h = connect(&mut p.a.net, IpAddress::v4(10, 0, 0, 2), 9);
    let total = 3 * 1024 * 1024u64;
    let mut sent = 0u64;
    let ok = p.run_until(Duration::from_secs(120), |p| {
        let now = p.now;
        let _ = discard.poll(&mut p.b.net, now, &mut out);
        let s = p.a.net.sockets.get_mut::<tcp::Socket>(h);
        while sent < total && s.can_send() {
            let n = s
                .send(|b| (b.len().min((total - sent) as usize), b.len()))
                .unwrap();
            sent += n as u64;
            if n == 0 {
                break;
            }
        }
        assert!(!s.can_recv(), "discard sent something back");
        if sent == total && s.may_send() {
            s.close();
        }
        discard.bytes() == total && !s.is_open()
    });
    assert!(ok, "discard: sent {sent}, swallowed {}", discard.bytes());
    let now = p.now;
    let v = echo.abort(&mut p.b.net, now, &mut out);
    assert!(v.ok);
    assert_eq!(
        v.summary,
        "tcp echo on port 7: 2 connections, 2097152 bytes"
    );
    let v = discard.abort(&mut p.b.net, now, &mut out);
    assert_eq!(
        v.summary,
        "tcp discard on port 9: 1 connections, 3145728 bytes"
    );
    assert!(out.contains("tcp discard on port 9"));
    // Ports are free again.
    assert!(TcpService::echo(&mut p.b.net).is_ok());
    p.close();
}
