//! DHCPv4: a lease from a DHCP server run in the test (on the other
//! stack), its renewal, and its loss when the server goes silent; events
//! and status line along the way.

mod common;

use common::{DhcpServer, Pair};
use cxos_net::NetEvent;
use cxos_net::ping::Ping;
use cxos_net::smoltcp::time::Duration;
use cxos_net::smoltcp::wire::{Ipv4Address, Ipv4Cidr};

fn events(p: &mut Pair) -> Vec<NetEvent> {
    std::iter::from_fn(|| p.b.net.next_event()).collect()
}

#[test]
fn lease_acquired_renewed_and_lost() {
    let mut p = Pair::new("10.0.0.1/24", "dhcp");
    let mut server = DhcpServer::new(&mut p.a.net, &[Ipv4Address::new(10, 0, 0, 50)], 120);
    assert!(p.b.net.ipv4().is_none());
    assert!(p.b.net.status_line().contains("dhcp searching"));

    // Acquire.
    let got = p.run_until(Duration::from_secs(30), |p| {
        server.poll(&mut p.a.net);
        p.b.net.lease().is_some()
    });
    assert!(
        got,
        "no lease; server offers {} acks {}",
        server.offers, server.acks
    );
    let leased = Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 50), 24);
    let l = p.b.net.lease().unwrap().clone();
    assert_eq!(l.address, leased);
    assert_eq!(l.router, Some(Ipv4Address::new(10, 0, 0, 1)));
    assert_eq!(l.server, Ipv4Address::new(10, 0, 0, 1));
    assert_eq!(l.duration, Some(Duration::from_secs(120)));
    assert_eq!(p.b.net.ipv4(), Some(leased));
    assert_eq!((server.offers, server.acks), (1, 1));
    assert_eq!(events(&mut p), vec![NetEvent::LeaseAcquired(l.clone())]);
    let status = p.b.net.status_line();
    assert!(status.contains("10.0.0.50/24"), "{status}");
    assert!(status.contains("gw 10.0.0.1"), "{status}");
    assert!(
        status.contains("dhcp bound from 10.0.0.1 lease 120 s"),
        "{status}"
    );

    // The leased address works.
    let now = p.now;
    let mut ping = Ping::new(&mut p.b.net, "10.0.0.1 -c 2 -i 0.1".parse().unwrap(), now).unwrap();
    let (v, out) = p.run_app(false, &mut ping, Duration::from_secs(10));
    assert!(v.ok, "{out}");

    // Renewal at half the lease time: unicast REQUEST, ACK, same address.
    let acquired = l.acquired;
    let renewed = p.run_until(Duration::from_secs(100), |p| {
        server.poll(&mut p.a.net);
        server.acks == 2
    });
    assert!(renewed, "no renewal");
    p.run_until(Duration::from_millis(10), |_| false);
    let ev = events(&mut p);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let NetEvent::LeaseRenewed(r) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(r.address, leased);
    let t1 = r.acquired - acquired;
    assert!(
        t1 >= Duration::from_secs(59) && t1 <= Duration::from_secs(62),
        "renewed after {t1}"
    );
    assert_eq!(p.b.net.ipv4(), Some(leased));

    // The server goes silent: the lease runs out 120 s after the renewal.
    server.silent = true;
    let lost = p.run_until(Duration::from_secs(200), |p| {
        server.poll(&mut p.a.net);
        p.b.net.lease().is_none()
    });
    assert!(lost, "lease never expired");
    let gone = p.now - r.acquired;
    assert!(
        gone >= Duration::from_secs(119) && gone <= Duration::from_secs(122),
        "lost after {gone}"
    );
    assert_eq!(events(&mut p), vec![NetEvent::LeaseLost(leased)]);
    assert_eq!(p.b.net.ipv4(), None);
    assert!(p.b.net.status_line().contains("dhcp searching"));

    // The server comes back: a new lease.
    server.silent = false;
    let again = p.run_until(Duration::from_secs(60), |p| {
        server.poll(&mut p.a.net);
        p.b.net.lease().is_some()
    });
    assert!(again);
    assert!(matches!(events(&mut p)[..], [NetEvent::LeaseAcquired(_)]));
    p.close();
}

#[test]
fn reconfigure_from_dhcp_to_static_drops_the_lease() {
    let mut p = Pair::new("10.0.0.1/24", "dhcp");
    let mut server = DhcpServer::new(&mut p.a.net, &[Ipv4Address::new(10, 0, 0, 60)], 600);
    assert!(p.run_until(Duration::from_secs(30), |p| {
        server.poll(&mut p.a.net);
        p.b.net.lease().is_some()
    }));
    let _ = events(&mut p);
    p.b.net
        .reconfigure(&"10.0.0.7/24,gw=10.0.0.1".parse().unwrap());
    assert_eq!(
        events(&mut p),
        vec![NetEvent::LeaseLost(Ipv4Cidr::new(
            Ipv4Address::new(10, 0, 0, 60),
            24
        ))]
    );
    assert_eq!(
        p.b.net.ipv4(),
        Some(Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 7), 24))
    );
    assert!(p.b.net.lease().is_none());
    let now = p.now;
    let mut ping = Ping::new(&mut p.a.net, "10.0.0.7 -c 1".parse().unwrap(), now).unwrap();
    let (v, out) = p.run_app(true, &mut ping, Duration::from_secs(10));
    assert!(v.ok, "{out}");
    p.close();
}

#[test]
fn lease_cap_renews_early_and_the_server_is_known_at_once() {
    let mut p = Pair::new("10.0.0.1/24", "dhcp,lease=20");
    let mut server = DhcpServer::new(&mut p.a.net, &[Ipv4Address::new(10, 0, 0, 70)], 3600);
    assert!(p.run_until(Duration::from_secs(30), |p| {
        server.poll(&mut p.a.net);
        p.b.net.lease().is_some()
    }));
    let l = p.b.net.lease().unwrap().clone();
    assert_eq!(l.duration, Some(Duration::from_secs(20)), "capped");
    // The client asked the server for its MAC when it got the lease: the
    // server's first ping goes out and is answered with no ARP exchange.
    p.run_until(Duration::from_millis(5), |_| false);
    let before = p.a.net.stats().phy.tx_frames;
    let now = p.now;
    let mut ping = Ping::new(&mut p.a.net, "10.0.0.70 -c 1".parse().unwrap(), now).unwrap();
    let (v, out) = p.run_app(true, &mut ping, Duration::from_secs(5));
    assert!(v.ok, "{out}");
    assert_eq!(
        p.a.net.stats().phy.tx_frames - before,
        1,
        "only the echo request"
    );
    // Renewal at half the capped lease.
    let _ = events(&mut p);
    assert!(p.run_until(Duration::from_secs(15), |p| {
        server.poll(&mut p.a.net);
        server.acks == 2
    }));
    p.run_until(Duration::from_millis(10), |_| false);
    let ev = events(&mut p);
    let [NetEvent::LeaseRenewed(r)] = &ev[..] else {
        panic!("{ev:?}")
    };
    let t1 = r.acquired - l.acquired;
    assert!(
        t1 >= Duration::from_secs(9) && t1 <= Duration::from_secs(11),
        "{t1}"
    );
    p.close();
}
