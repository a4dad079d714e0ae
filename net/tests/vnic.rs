//! Hardware-steered VNICs end to end (issue 10, hosted): two simulated
//! adapters wired back to back, 20 VNICs on each (8 untagged, 6 on VLAN
//! 10, 6 on VLAN 20, some with 2 RSS queues), one cxos-net stack per VNIC,
//! all polled in one thread with a fake clock. Every pair pings both ways
//! and moves a TCP stream; frames to unknown MACs are dropped by the
//! adapter; a VNIC never sees another VLAN's (or untagged) frames;
//! broadcast reaches exactly the VNICs of its VLAN; deleting a VNIC
//! removes its flow entries (the model confirms) and frees its queues;
//! the model's sanitizer saw nothing wrong. Also: a VNIC on a VLAN takes
//! its address by DHCP (broadcast replicated to its VLAN's VNICs), and the
//! models on their own threads (completion events arriving while 12
//! stacks poll).

mod common;

use common::Pattern;
use cxos_drivers::NetDevice;
use cxos_net::app::{App, AppStatus};
use cxos_net::phy::L2_TEST_ETHERTYPE;
use cxos_net::ping::{Ping, PingConfig};
use cxos_net::smoltcp::iface::SocketHandle;
use cxos_net::smoltcp::socket::tcp;
use cxos_net::smoltcp::time::{Duration, Instant};
use cxos_net::smoltcp::wire::{IpAddress, Ipv4Address};
use cxos_net::{IfConfig, NetIf};
use mlx5::Adapter;
use mlx5::vnic::{Nic, Vnic, VnicSpec};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

type Dev = Vnic<Adapter<SimPlatform>>;

const N: usize = 20;

fn vlan_of(i: usize) -> Option<u16> {
    match i % 10 {
        0..=3 => None,
        4..=6 => Some(10),
        _ => Some(20),
    }
}

/// The address of VNIC `i` on side `b` (false: a): one subnet per VLAN.
fn addr(i: usize, b: bool) -> Ipv4Address {
    let net = match vlan_of(i) {
        None => 0,
        Some(v) => v as u8,
    };
    Ipv4Address::new(10, net, 0, 1 + i as u8 + if b { 100 } else { 0 })
}

struct Side {
    sim: SimPlatform,
    nic: Nic<Adapter<SimPlatform>>,
    nets: Vec<Option<NetIf<Dev>>>,
    dma_before: (usize, usize),
}

impl Side {
    /// `dhcp`: the VNIC of that index takes its address by DHCP.
    fn new(sim: SimPlatform, b: bool, n: usize, dhcp: Option<usize>, now: Instant) -> Side {
        common::logger();
        let dma_before = sim.dma_in_use();
        let nic = common::open_nic(&sim, 6);
        let mut nets = Vec::new();
        for i in 0..n {
            let spec = VnicSpec {
                mac: None,
                vlan: vlan_of(i),
                queues: if i % 4 == 3 { 2 } else { 1 },
            };
            let dev = nic.create(spec).unwrap_or_else(|e| panic!("vnic {i}: {e}"));
            let cfg: IfConfig = if dhcp == Some(i) {
                "dhcp".parse().unwrap()
            } else {
                format!("{}/24", addr(i, b)).parse().unwrap()
            };
            let net = match NetIf::new(&format!("vnic{i}"), dev, &cfg, now) {
                Ok(n) => n,
                Err(e) => panic!("NetIf::new: {}", e.error),
            };
            nets.push(Some(net));
        }
        Side {
            sim,
            nic,
            nets,
            dma_before,
        }
    }

    fn net(&mut self, i: usize) -> &mut NetIf<Dev> {
        self.nets[i].as_mut().expect("live VNIC")
    }

    fn poll(&mut self, now: Instant) -> bool {
        let mut progress = false;
        for n in self.nets.iter_mut().flatten() {
            progress |= n.poll(now);
        }
        progress
    }

    fn deadline(&mut self, now: Instant) -> Option<Instant> {
        self.nets
            .iter_mut()
            .flatten()
            .filter_map(|n| n.poll_delay(now).map(|d| now + d))
            .min()
    }

    /// L2 test frames each stack has seen so far.
    fn l2_seen(&self) -> Vec<u64> {
        self.nets
            .iter()
            .map(|n| {
                n.as_ref().map_or(0, |n| {
                    let s = n.stats().phy;
                    s.rx_l2_test + s.rx_l2_dropped
                })
            })
            .collect()
    }

    fn close(mut self) {
        for n in self.nets.drain(..).flatten() {
            let rep = n.into_device().destroy();
            assert_eq!(rep.errors, 0, "{rep:?}");
        }
        assert!(self.sim.flow_entries().is_empty());
        let (a, rep) = self.nic.close().expect("every VNIC destroyed");
        assert_eq!(rep.errors, 0, "{rep:?}");
        common::detach_clean(a, &self.sim, self.dma_before);
    }
}

struct World {
    a: Side,
    b: Side,
    now: Instant,
    mode: Mode,
}

impl World {
    fn new() -> World {
        World::with(
            Personality::ConnectX5,
            Personality::ConnectX4Lx,
            Mode::Synchronous,
            N,
        )
    }

    fn with(pa: Personality, pb: Personality, mode: Mode, n: usize) -> World {
        World::with_dhcp(pa, pb, mode, n, None)
    }

    /// `dhcp`: a's VNIC of that index is a DHCP client.
    fn with_dhcp(
        pa: Personality,
        pb: Personality,
        mode: Mode,
        n: usize,
        dhcp: Option<usize>,
    ) -> World {
        let (sa, sb) = SimPlatform::pair(pa, pb, mode);
        let now = Instant::from_millis(1_000);
        World {
            a: Side::new(sa, false, n, dhcp, now),
            b: Side::new(sb, true, n, None, now),
            now,
            mode,
        }
    }

    fn poll(&mut self) -> bool {
        let a = self.a.poll(self.now);
        let b = self.b.poll(self.now);
        a || b
    }

    /// Threaded model: both model threads are done
    /// ([`common::models_settled`]).
    fn models_settled(&self) -> bool {
        common::models_settled(&self.a.sim, &self.b.sim)
    }

    /// Poll everything until quiet, then move the clock to the next
    /// deadline (at least 1 ms, at most 100 ms). Threaded: the models
    /// settle (real time, bounded) before the clock moves; a fixed pause
    /// let the fake clock run ahead of a model thread waiting for a core,
    /// and a ping's 2 s passed in a few real milliseconds.
    fn step(&mut self, extra: Option<Instant>) {
        while self.poll() {}
        if self.mode == Mode::Threaded {
            let start = std::time::Instant::now();
            while !self.models_settled() && start.elapsed() < std::time::Duration::from_secs(10) {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            // What arrived meanwhile is taken at the current time.
            if self.poll() {
                return;
            }
        }
        let now = self.now;
        let next = [self.a.deadline(now), self.b.deadline(now), extra]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_millis(100));
        self.now = next
            .max(now + Duration::from_millis(1))
            .min(now + Duration::from_millis(100));
    }

    /// Poll without moving the clock until nothing moves.
    fn settle(&mut self) {
        for _ in 0..4 {
            while self.poll() {}
            if self.mode == Mode::Threaded {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

fn ping(w: &mut World, i: usize, from_b: bool) -> (bool, String) {
    let target = addr(i, !from_b);
    let cfg: PingConfig = format!("{target} -c 2 -i 0.2").parse().unwrap();
    let now = w.now;
    let side = if from_b { &mut w.b } else { &mut w.a };
    let mut app = Ping::new(side.net(i), cfg, now).unwrap();
    let mut out = String::new();
    let end = w.now + Duration::from_secs(30);
    loop {
        w.step(App::<Dev>::poll_at(&app, w.now));
        let now = w.now;
        let side = if from_b { &mut w.b } else { &mut w.a };
        if let AppStatus::Done(v) = app.poll(side.net(i), now, &mut out) {
            return (v.ok, out);
        }
        assert!(w.now < end, "ping {i} did not finish:\n{out}");
    }
}

/// A raw L2 test frame from VNIC `i` of side a to `dst` (the VNIC tags it
/// when it is on a VLAN).
fn send_l2(w: &mut World, i: usize, dst: [u8; 6]) {
    let net = w.a.net(i);
    let src = net.mac();
    net.phy_mut()
        .transmit_raw(64, |f| {
            f.fill(0);
            f[..6].copy_from_slice(&dst);
            f[6..12].copy_from_slice(&src);
            f[12..14].copy_from_slice(&L2_TEST_ETHERTYPE.to_be_bytes());
        })
        .unwrap();
    net.phy_mut().flush();
    w.settle();
}

#[test]
fn twenty_vnic_pairs_ping_and_transfer_with_vlan_isolation() {
    let mut w = World::new();
    // Every pair pings both ways (ARP by broadcast on its VLAN first).
    for i in 0..N {
        let (ok, out) = ping(&mut w, i, false);
        assert!(ok, "a{i} -> b{i}:\n{out}");
        let (ok, out) = ping(&mut w, i, true);
        assert!(ok, "b{i} -> a{i}:\n{out}");
    }

    // Every pair moves a TCP stream a -> b, all at once.
    const BYTES: u64 = 64 * 1024;
    let pattern = Pattern::new();
    let mut conns: Vec<(SocketHandle, SocketHandle, u64, u64)> = Vec::new();
    for i in 0..N {
        let srv = w.b.net(i).tcp_socket(16 * 1024, 16 * 1024);
        w.b.net(i)
            .sockets
            .get_mut::<tcp::Socket>(srv)
            .listen(5201)
            .unwrap();
        let net = w.a.net(i);
        let cli = net.tcp_socket(16 * 1024, 16 * 1024);
        let port = net.ephemeral_port();
        let cx = net.iface.context();
        net.sockets
            .get_mut::<tcp::Socket>(cli)
            .connect(cx, (IpAddress::Ipv4(addr(i, true)), 5201), port)
            .unwrap();
        conns.push((cli, srv, 0, 0));
    }
    let end = w.now + Duration::from_secs(120);
    loop {
        let mut done = true;
        for (i, (cli, srv, sent, got)) in conns.iter_mut().enumerate() {
            let s = w.a.net(i).sockets.get_mut::<tcp::Socket>(*cli);
            while *sent < BYTES && s.can_send() {
                let n = s
                    .send(|buf| {
                        let n = buf.len().min((BYTES - *sent) as usize);
                        pattern.fill(*sent, &mut buf[..n]);
                        (n, n)
                    })
                    .unwrap();
                if n == 0 {
                    break;
                }
                *sent += n as u64;
            }
            let r = w.b.net(i).sockets.get_mut::<tcp::Socket>(*srv);
            while r.can_recv() {
                let n = r
                    .recv(|buf| {
                        assert!(pattern.matches(*got, buf), "pair {i} data corrupt at {got}");
                        (buf.len(), buf.len())
                    })
                    .unwrap();
                *got += n as u64;
            }
            done &= *got == BYTES;
        }
        if done {
            break;
        }
        assert!(w.now < end, "transfers did not finish");
        w.step(None);
    }
    for i in 0..N {
        let tx = w.a.net(i).device().stats().tx_bytes;
        assert!(tx > BYTES, "vnic {i} sent {tx} bytes");
        let t = w.b.net(i).device().flow_traffic().unwrap();
        assert!(t.bytes > BYTES, "b{i}'s flow counter: {t:?}");
    }

    // VLAN isolation: from a's VNIC i, an L2 frame to each b VNIC's MAC
    // reaches it exactly when both are on the same VLAN; otherwise the
    // adapter drops it.
    let b_macs: Vec<[u8; 6]> = (0..N).map(|j| w.b.net(j).mac()).collect();
    for i in [0, 4, 7] {
        for (j, mac) in b_macs.iter().enumerate() {
            let before = w.b.l2_seen();
            let drops = w.b.sim.port_stats().rx_dropped_no_steering;
            send_l2(&mut w, i, *mac);
            let after = w.b.l2_seen();
            let reached: Vec<usize> = (0..N).filter(|&k| after[k] > before[k]).collect();
            if vlan_of(i) == vlan_of(j) {
                assert_eq!(reached, [j], "a{i} -> b{j}");
            } else {
                assert!(
                    reached.is_empty(),
                    "a{i} -> b{j} crossed VLANs: {reached:?}"
                );
                assert_eq!(w.b.sim.port_stats().rx_dropped_no_steering, drops + 1);
            }
        }
    }
    // Unknown MAC: dropped by the adapter (vport filter).
    let before = w.b.l2_seen();
    let drops = w.b.sim.port_stats().rx_dropped_vport_filter;
    send_l2(&mut w, 0, [0x02, 0x99, 0, 0, 0, 1]);
    send_l2(&mut w, 4, [0x02, 0x99, 0, 0, 0, 1]);
    assert_eq!(w.b.l2_seen(), before);
    assert_eq!(w.b.sim.port_stats().rx_dropped_vport_filter, drops + 2);
    // Broadcast from a VNIC reaches exactly the VNICs of its VLAN.
    for i in [1, 5, 8] {
        let before = w.b.l2_seen();
        send_l2(&mut w, i, [0xff; 6]);
        let after = w.b.l2_seen();
        let reached: Vec<usize> = (0..N).filter(|&k| after[k] > before[k]).collect();
        let want: Vec<usize> = (0..N).filter(|&k| vlan_of(k) == vlan_of(i)).collect();
        assert_eq!(reached, want, "broadcast from a{i}");
    }
    // Every entry the driver programmed is what the adapter holds.
    for side in [&w.a, &w.b] {
        let flows = side.nic.flows();
        assert!(
            flows.iter().all(|c| c.matches()),
            "{:?}",
            side.nic.flows_report()
        );
    }

    // Delete b's VNIC 5 (VLAN 10): its flow entries go (the model has no
    // entry forwarding to its TIR any more), its queues are freed, pings
    // to it fail, its neighbours keep working.
    let gone = w.b.nets[5].take().unwrap().into_device();
    let info = gone.info();
    let entries_before = w.b.sim.flow_entries().len();
    assert_eq!(gone.destroy().errors, 0);
    let (tirn, sqn) = (info.tir.unwrap().0, info.sqn.unwrap().0);
    let tir = mlx5_sim::harness::inspect::Dest::Tir(tirn);
    let entries = w.b.sim.flow_entries();
    assert!(entries.len() < entries_before);
    assert!(
        entries.iter().all(|e| !e.dests.contains(&tir)),
        "an entry still forwards to the deleted VNIC's TIR"
    );
    assert!(!w.b.sim.vport_filter().uc.contains(&info.mac.0));
    w.b.sim.with_model(|d| {
        assert!(d.nic.tirs.get(tirn).is_none());
        assert!(d.nic.sqs.get(sqn).is_none());
        for r in &info.rqns {
            assert!(d.nic.rqs.get(r.0).is_none());
        }
    });
    assert_eq!(w.b.nic.count(), N - 1);
    let (ok, _) = ping(&mut w, 5, false);
    assert!(!ok, "the deleted VNIC answered");
    for i in [4, 6] {
        let (ok, out) = ping(&mut w, i, false);
        assert!(ok, "a{i} -> b{i} after the delete:\n{out}");
    }
    for side in [&w.a, &w.b] {
        let s = side.nets.iter().flatten().map(|n| n.stats().phy);
        let (mal, csum) = s.fold((0, 0), |(m, c), p| {
            (m + p.rx_malformed, c + p.rx_bad_checksum)
        });
        assert_eq!((mal, csum), (0, 0));
    }
    let World { a, b, .. } = w;
    a.close();
    b.close();
}

#[test]
fn vnic_pairs_in_threaded_model_mode() {
    // The models run on their own threads: completion events arrive while
    // the stacks poll; every VNIC's poll takes only its own.
    let n = 6;
    let mut w = World::with(
        Personality::ConnectX6Dx,
        Personality::ConnectX5,
        Mode::Threaded,
        n,
    );
    for i in 0..n {
        let (ok, out) = ping(&mut w, i, i % 2 == 0);
        assert!(ok, "pair {i}:\n{out}");
    }
    for i in [0, 4, 7] {
        if i >= n {
            continue;
        }
        let before = w.b.l2_seen();
        send_l2(&mut w, i, [0xff; 6]);
        // Delivery is asynchronous: wait (bounded) for the expected count.
        let want: Vec<usize> = (0..n).filter(|&k| vlan_of(k) == vlan_of(i)).collect();
        let mut reached = Vec::new();
        for _ in 0..500 {
            w.settle();
            let after = w.b.l2_seen();
            reached = (0..n).filter(|&k| after[k] > before[k]).collect();
            if reached == want {
                break;
            }
        }
        assert_eq!(reached, want, "broadcast from a{i}");
    }
    let World { a, b, .. } = w;
    a.close();
    b.close();
}

#[test]
fn a_vnic_on_a_vlan_takes_its_address_by_dhcp() {
    // a's VNIC 4 (VLAN 10) asks by broadcast on VLAN 10; b's VNIC 4 serves.
    let n = 8;
    let mut w = World::with_dhcp(
        Personality::ConnectX5,
        Personality::ConnectX6Dx,
        Mode::Synchronous,
        n,
        Some(4),
    );
    let mut server = common::DhcpServer::new(w.b.net(4), &[addr(4, false)], 600);
    let end = w.now + Duration::from_secs(60);
    while w.a.net(4).lease().is_none() {
        assert!(w.now < end, "no lease");
        w.step(None);
        server.poll(w.b.net(4));
    }
    assert_eq!(w.a.net(4).ipv4().map(|c| c.address()), Some(addr(4, false)));
    assert_eq!((server.offers, server.acks), (1, 1));
    let (ok, out) = ping(&mut w, 4, true);
    assert!(ok, "{out}");
    let World { a, b, .. } = w;
    a.close();
    b.close();
}
