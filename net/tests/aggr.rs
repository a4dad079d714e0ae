//! Link aggregation end to end (issue 19, hosted): two 2-port boards in
//! the model, port 0 cabled to port 0 and port 1 to port 1, the mlx5
//! driver on all four functions, an aggregation (`cxos_net::aggr::Aggr`)
//! over each board's two ports with one MAC on both, and a stack on each
//! aggregation; one thread, a fake clock. Our LACP against itself:
//! both ends reach Collecting_Distributing on both links; ping both
//! ways; many flows spread over both members while one flow stays on one;
//! a cable pulled on one side leaves the aggregation at once on that side
//! (PORT_CHANGE) and by LACP timeout on the other, traffic continues on
//! the other link, and the link rejoins when it comes back.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use cxos_drivers::NetDevice;
use cxos_net::aggr::{Aggr, AggrVnic, SLOW_PROTOCOLS_MAC};
use cxos_net::app::{App, AppStatus};
use cxos_net::lacp::{self, HashPolicy, Mode as LacpMode, Rate};
use cxos_net::ping::{Ping, PingConfig};
use cxos_net::smoltcp::time::{Duration, Instant};
use cxos_net::smoltcp::wire::EthernetAddress;
use cxos_net::{IfConfig, NetIf};
use mlx5::Adapter;
use mlx5::vnic::{Nic, Vnic, VnicSpec};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

type Dev = Vnic<Adapter<SimPlatform>>;
type AggrNet = NetIf<Aggr<Dev>>;
type VnicNet = NetIf<AggrVnic<Dev>>;

const MAC_A: [u8; 6] = [0x0c, 0x42, 0xa1, 0x19, 0x0a, 0x10];
const MAC_B: [u8; 6] = [0x0c, 0x42, 0xa1, 0x19, 0x0b, 0x10];

struct Side {
    sims: Vec<SimPlatform>,
    nics: Vec<Nic<Adapter<SimPlatform>>>,
    net: Option<AggrNet>,
    dma_before: Vec<(usize, usize)>,
}

impl Side {
    fn new(sims: Vec<SimPlatform>, ip: &str, clock: &Arc<AtomicI64>, policy: HashPolicy) -> Side {
        common::logger();
        let dma_before: Vec<_> = sims.iter().map(|s| s.dma_in_use()).collect();
        let mac = sims[0].mac();
        let mut nics = Vec::new();
        let mut members = Vec::new();
        for sim in &sims {
            let nic = common::open_nic(sim, 7);
            // One MAC on both functions: the aggregation's.
            let member = nic
                .create(VnicSpec {
                    mac: Some(mlx5::Mac(mac)),
                    ..VnicSpec::default()
                })
                .expect("member VNIC");
            members.push((member, sim.mac()));
            nics.push(nic);
        }
        let mut config = lacp::Config::new(EthernetAddress(mac));
        config.mode = LacpMode::Active;
        config.rate = Rate::Fast;
        config.policy = policy;
        let c = clock.clone();
        let aggr = Aggr::new(
            members,
            config,
            Box::new(move || Instant::from_micros(c.load(Ordering::Relaxed))),
        )
        .unwrap_or_else(|(_, e)| panic!("Aggr::new: {e}"));
        let cfg: IfConfig = ip.parse().unwrap();
        let now = Instant::from_micros(clock.load(Ordering::Relaxed));
        let net = NetIf::new("aggr0", aggr, &cfg, now).unwrap_or_else(|e| panic!("{}", e.error));
        Side {
            sims,
            nics,
            net: Some(net),
            dma_before,
        }
    }

    fn net(&mut self) -> &mut AggrNet {
        self.net.as_mut().expect("open")
    }

    fn aggr(&self) -> &Aggr<Dev> {
        self.net.as_ref().expect("open").device()
    }

    /// Whether member `i` is Collecting_Distributing.
    fn distributing(&self, i: usize) -> bool {
        self.aggr().report(i).is_some_and(|r| r.distributing)
    }

    fn tx_frames(&self, i: usize) -> u64 {
        self.aggr().report(i).map_or(0, |r| r.counters.tx_frames)
    }

    fn rx_frames(&self, i: usize) -> u64 {
        self.aggr().report(i).map_or(0, |r| r.counters.rx_frames)
    }

    fn close(mut self) {
        let net = self.net.take().expect("open");
        let members = net.into_device().into_members();
        for m in members {
            let rep = m.destroy();
            assert_eq!(rep.errors, 0, "{rep:?}");
        }
        for (i, nic) in self.nics.into_iter().enumerate() {
            assert!(self.sims[i].flow_entries().is_empty());
            let (a, rep) = nic.close().expect("every VNIC destroyed");
            assert_eq!(rep.errors, 0, "{rep:?}");
            common::detach_clean(a, &self.sims[i], self.dma_before[i]);
        }
    }
}

struct World {
    a: Side,
    b: Side,
    clock: Arc<AtomicI64>,
    /// VNICs on a's and b's aggregations, in pairs (same index: same
    /// network).
    vnics: Vec<(VnicNet, VnicNet)>,
}

impl World {
    fn new(policy: HashPolicy) -> World {
        let a = SimPlatform::adapter(Personality::ConnectX4Lx, Mode::Synchronous, 2, 1, MAC_A);
        let b = SimPlatform::adapter(Personality::ConnectX5, Mode::Synchronous, 2, 3, MAC_B);
        SimPlatform::cable(&a[0], &b[0]);
        SimPlatform::cable(&a[1], &b[1]);
        let clock = Arc::new(AtomicI64::new(1_000_000));
        World {
            a: Side::new(a, "10.19.0.1/24", &clock, policy),
            b: Side::new(b, "10.19.0.2/24", &clock, policy),
            clock,
            vnics: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.clock.load(Ordering::Relaxed))
    }

    fn poll(&mut self) -> bool {
        // Port events (EQ 0), as the kernel's event service does.
        for nic in self.a.nics.iter().chain(self.b.nics.iter()) {
            nic.with_adapter(|a| a.poll().expect("events"));
        }
        let now = self.now();
        let a = self.a.net().poll(now);
        let b = self.b.net().poll(now);
        let mut v = false;
        for (x, y) in self.vnics.iter_mut() {
            v |= x.poll(now);
            v |= y.poll(now);
        }
        a || b || v
    }

    /// Poll until idle, then move the clock to the next deadline (1 ms to
    /// 100 ms ahead).
    fn step(&mut self, extra: Option<Instant>) {
        let mut rounds = 0;
        while self.poll() && rounds < 1000 {
            rounds += 1;
        }
        let now = self.now();
        let mut deadlines = vec![
            self.a.net().poll_delay(now).map(|d| now + d),
            self.b.net().poll_delay(now).map(|d| now + d),
            extra,
        ];
        for (x, y) in self.vnics.iter_mut() {
            deadlines.push(x.poll_delay(now).map(|d| now + d));
            deadlines.push(y.poll_delay(now).map(|d| now + d));
        }
        let next = deadlines
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_millis(100));
        let next = next
            .max(now + Duration::from_millis(1))
            .min(now + Duration::from_millis(100));
        self.clock.store(next.total_micros(), Ordering::Relaxed);
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&World) -> bool) -> bool {
        let end = self.now() + limit;
        while self.now() < end {
            if done(self) {
                return true;
            }
            self.step(None);
        }
        done(self)
    }

    fn all_distributing(&self) -> bool {
        (0..2).all(|i| self.a.distributing(i) && self.b.distributing(i))
    }

    fn ping(&mut self, from_b: bool, count: u32) -> (bool, String) {
        let to = if from_b { "10.19.0.1" } else { "10.19.0.2" };
        let cfg: PingConfig = format!("{to} -c {count} -i 0.2 -W 1").parse().unwrap();
        let now = self.now();
        let side = if from_b { &mut self.b } else { &mut self.a };
        let mut app = Ping::new(side.net(), cfg, now).unwrap();
        let mut out = String::new();
        let end = now + Duration::from_secs(60);
        loop {
            self.step(App::<Aggr<Dev>>::poll_at(&app, self.now()));
            let now = self.now();
            let side = if from_b { &mut self.b } else { &mut self.a };
            if let AppStatus::Done(v) = app.poll(side.net(), now, &mut out) {
                return (v.ok, out);
            }
            assert!(self.now() < end, "ping did not finish:\n{out}");
        }
    }

    /// A UDP frame from a to b with source port `sport` (valid IPv4 and
    /// UDP headers: what the L4 hash reads).
    fn send_udp(&mut self, sport: u16) {
        let (src, dst) = (MAC_A, MAC_B);
        let net = self.a.net();
        net.phy_mut()
            .transmit_raw(60, |f| {
                f.fill(0);
                f[..6].copy_from_slice(&dst);
                f[6..12].copy_from_slice(&src);
                f[12..14].copy_from_slice(&[0x08, 0x00]);
                // IPv4: version 4, IHL 5, total length 46, TTL 64, UDP.
                f[14] = 0x45;
                f[16..18].copy_from_slice(&46u16.to_be_bytes());
                f[22] = 64;
                f[23] = 17;
                f[26..30].copy_from_slice(&[10, 19, 0, 1]);
                f[30..34].copy_from_slice(&[10, 19, 0, 2]);
                // UDP: ports, length 26 (checksum 0: none).
                f[34..36].copy_from_slice(&sport.to_be_bytes());
                f[36..38].copy_from_slice(&9u16.to_be_bytes());
                f[38..40].copy_from_slice(&26u16.to_be_bytes());
            })
            .expect("room for a frame");
        net.phy_mut().flush();
    }

    /// A VNIC on both aggregations (a: `.1`, b: `.2` in `net`), tagged
    /// `vlan` or not; one MAC per side on both of its members.
    fn add_vnic(&mut self, vlan: Option<u16>, net: u8) {
        let now = self.now();
        let make = |side: &Side, host: u8| {
            let first = side.nics[0]
                .create(VnicSpec {
                    vlan,
                    ..VnicSpec::default()
                })
                .expect("VNIC on port 0");
            let mac = first.mac();
            let second = side.nics[1]
                .create(VnicSpec {
                    mac: Some(mac),
                    vlan,
                    ..VnicSpec::default()
                })
                .expect("VNIC on port 1");
            let dev = AggrVnic::new(vec![first, second], side.aggr().state())
                .unwrap_or_else(|(_, e)| panic!("{e}"));
            let cfg: IfConfig = format!("10.{net}.0.{host}/24").parse().unwrap();
            NetIf::new("vnic", dev, &cfg, now).unwrap_or_else(|e| panic!("{}", e.error))
        };
        let x = make(&self.a, 1);
        let y = make(&self.b, 2);
        self.vnics.push((x, y));
    }

    /// VNIC pair `i`: a's pings b's.
    fn ping_vnic(&mut self, i: usize, net: u8) -> (bool, String) {
        let cfg: PingConfig = format!("10.{net}.0.2 -c 3 -i 0.2 -W 1").parse().unwrap();
        let now = self.now();
        let mut app = Ping::new(&mut self.vnics[i].0, cfg, now).unwrap();
        let mut out = String::new();
        let end = now + Duration::from_secs(60);
        loop {
            self.step(App::<AggrVnic<Dev>>::poll_at(&app, self.now()));
            let now = self.now();
            if let AppStatus::Done(v) = app.poll(&mut self.vnics[i].0, now, &mut out) {
                return (v.ok, out);
            }
            assert!(self.now() < end, "ping did not finish:\n{out}");
        }
    }

    fn close(mut self) {
        for (x, y) in self.vnics.drain(..) {
            for m in x
                .into_device()
                .into_members()
                .into_iter()
                .chain(y.into_device().into_members())
            {
                let rep = m.destroy();
                assert_eq!(rep.errors, 0, "{rep:?}");
            }
        }
        self.a.close();
        self.b.close();
    }
}

#[test]
fn two_aggregations_negotiate_spread_flows_and_fail_over() {
    let mut w = World::new(HashPolicy::L4);
    assert_eq!(w.a.aggr().mac(), MAC_A);
    // Negotiation: fast LACPDUs, Aggregate_Wait_Time 2 s.
    let start = w.now();
    assert!(
        w.run_until(Duration::from_secs(10), World::all_distributing),
        "not Collecting_Distributing: {:?} {:?}",
        w.a.aggr().report(0),
        w.b.aggr().report(0)
    );
    let converged = w.now() - start;
    assert!(converged < Duration::from_secs(5), "{converged}");
    let r = w.a.aggr().report(0).unwrap().lacp.unwrap();
    assert_eq!(r.partner.system.mac, EthernetAddress(MAC_B), "{r:?}");
    assert_eq!(r.actor.system.mac, EthernetAddress(MAC_A));
    assert!(r.lacpdus_rx > 0 && r.lacpdus_tx > 0);
    assert!(w.a.net().device().link().up);
    assert_eq!(w.a.net().device().link().speed_mbps, 2 * 25_000);

    // Ping both ways over the aggregation.
    let (ok, out) = w.ping(false, 3);
    assert!(ok, "{out}");
    let (ok, out) = w.ping(true, 3);
    assert!(ok, "{out}");

    // One flow: every frame on one member.
    let before = [w.a.tx_frames(0), w.a.tx_frames(1)];
    for _ in 0..10 {
        w.send_udp(4000);
    }
    w.step(None);
    let d = [w.a.tx_frames(0) - before[0], w.a.tx_frames(1) - before[1]];
    assert!(d == [10, 0] || d == [0, 10], "one flow split: {d:?}");
    // Many flows: both members carry some, and b receives on both.
    let before = [w.a.tx_frames(0), w.a.tx_frames(1)];
    let rx_before = [w.b.rx_frames(0), w.b.rx_frames(1)];
    for port in 0..64 {
        w.send_udp(5000 + port);
        w.step(None);
    }
    let d = [w.a.tx_frames(0) - before[0], w.a.tx_frames(1) - before[1]];
    assert_eq!(d[0] + d[1], 64);
    assert!(d[0] >= 8 && d[1] >= 8, "flows not spread: {d:?}");
    let rx = [
        w.b.rx_frames(0) - rx_before[0],
        w.b.rx_frames(1) - rx_before[1],
    ];
    assert_eq!(rx, d, "b collects on the member each frame came on");

    // Port 0's cable pulled on a's side: a takes it out at once (link
    // down), b by LACP timeout (its port 0 still has carrier here).
    w.a.sims[0].set_link(false);
    w.step(None);
    assert!(!w.a.distributing(0) && w.a.distributing(1));
    // Until b times port 0 out (short timeout: 3 s) its replies hashed to
    // port 0 are lost, as on a real link whose far end kept carrier.
    let pulled = w.now();
    assert!(
        w.run_until(Duration::from_secs(5), |w| !w.b.distributing(0)),
        "b did not time port 0 out"
    );
    let timeout = w.now() - pulled;
    assert!(
        timeout <= Duration::from_millis(3_200),
        "LACP short timeout took {timeout}"
    );
    assert!(w.b.distributing(1));
    let (ok, out) = w.ping(false, 3);
    assert!(ok, "traffic continues on port 1: {out}");
    let before = w.a.tx_frames(0);
    for port in 0..16 {
        w.send_udp(6000 + port);
    }
    w.step(None);
    assert_eq!(w.a.tx_frames(0), before, "nothing on the failed member");
    let (ok, out) = w.ping(true, 3);
    assert!(ok, "b reaches a over port 1: {out}");

    // The cable back: port 0 rejoins on both sides.
    w.a.sims[0].set_link(true);
    assert!(
        w.run_until(Duration::from_secs(10), World::all_distributing),
        "port 0 did not rejoin"
    );
    let (ok, out) = w.ping(false, 3);
    assert!(ok, "{out}");
    w.close();
}

#[test]
fn members_steer_the_aggregations_mac_and_the_slow_protocols_group() {
    let mut w = World::new(HashPolicy::L2);
    assert!(w.run_until(Duration::from_secs(10), World::all_distributing));
    // Both functions steer 01:80:C2:00:00:02 to the member.
    for s in &w.a.sims {
        let macs: Vec<[u8; 6]> = s
            .flow_entries()
            .iter()
            .map(|e| {
                let b = e.value.dmac.to_be_bytes();
                [b[2], b[3], b[4], b[5], b[6], b[7]]
            })
            .collect();
        assert!(macs.contains(&SLOW_PROTOCOLS_MAC), "{macs:?}");
        assert!(
            macs.contains(&MAC_A),
            "the aggregation's MAC on every port: {macs:?}"
        );
    }
    let (ok, out) = w.ping(false, 2);
    assert!(ok, "{out}");
    w.close();
}

/// A Slow Protocols frame from `src` carrying `pdu` bytes after the
/// header (zero-padded to the minimum frame).
fn slow_frame(src: [u8; 6], pdu: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(SLOW_PROTOCOLS_MAC);
    f.extend(src);
    f.extend([0x88, 0x09]);
    f.extend(pdu);
    f.resize(f.len().max(60), 0);
    f
}

#[test]
fn bad_lacpdus_and_an_impostor_partner_are_counted_and_the_aggregation_keeps_serving() {
    use cxos_net::lacp::wire::{self, LacpduRepr, PortInfo, PortState, SlowPdu, SystemId};
    let mut w = World::new(HashPolicy::L4);
    assert!(w.run_until(Duration::from_secs(10), World::all_distributing));
    let stranger = [0x02, 0x00, 0x00, 0x00, 0x0e, 0x01];
    // Truncated, bad version, bad TLV length, an oversize frame, a
    // Marker with a bad length, an unknown subtype: counted, never fatal.
    let bad: Vec<Vec<u8>> = vec![
        slow_frame(stranger, &[0x01, 0x01, 0x01]),
        slow_frame(stranger, &[0x01, 0x07, 0x01, 0x14]),
        slow_frame(stranger, &[0x01, 0x01, 0x01, 0x99]),
        slow_frame(stranger, &[0x01; 1400]),
        slow_frame(stranger, &[0x02, 0x01, 0x01, 0x03]),
        slow_frame(stranger, &[0x0a, 0x01]),
    ];
    for f in &bad {
        w.a.sims[0].inject_rx(f);
        w.a.sims[1].inject_rx(f);
        w.step(None);
    }
    let r0 = w.a.aggr().report(0).unwrap().lacp.unwrap();
    let r1 = w.a.aggr().report(1).unwrap().lacp.unwrap();
    assert!(r0.bad_pdus >= 4 && r1.bad_pdus >= 4, "{r0:?}");
    assert!(r0.other_slow_rx >= 1);
    assert!(w.all_distributing(), "bad frames changed nothing");
    let (ok, out) = w.ping(false, 2);
    assert!(ok, "{out}");

    // An impostor on port 1: another system claims to be its partner
    // (in sync, collecting, distributing). Port 1 leaves a's aggregation
    // (its partner is not the aggregator's); port 0 keeps serving.
    let mut pdu = [0u8; wire::FRAME_LEN];
    let state = PortState::new()
        .with_lacp_activity(true)
        .with_lacp_timeout(true)
        .with_aggregation(true)
        .with_synchronization(true)
        .with_collecting(true)
        .with_distributing(true);
    let actor = PortInfo {
        system: SystemId {
            priority: 0x8000,
            mac: EthernetAddress(stranger),
        },
        key: 7,
        port_priority: 0x8000,
        port: 9,
        state,
    };
    let partner = w.a.aggr().report(1).unwrap().lacp.unwrap().actor;
    wire::emit_frame(
        EthernetAddress(stranger),
        &SlowPdu::Lacp(LacpduRepr {
            actor,
            partner,
            collector_max_delay: 0,
        }),
        &mut pdu,
    );
    w.a.sims[1].inject_rx(&pdu);
    // a alone (b has not answered yet): the first poll takes the frame,
    // the second runs the machines.
    let now = w.now();
    w.a.net().poll(now);
    w.a.net().poll(now);
    let r = w.a.aggr().report(1).unwrap().lacp.unwrap();
    assert_eq!(r.partner.system.mac, EthernetAddress(stranger));
    assert!(
        !w.a.distributing(1),
        "port 1 left on a partner change: {r:?}"
    );
    assert!(w.a.distributing(0));
    let (ok, out) = w.ping(false, 2);
    assert!(ok, "port 0 keeps serving: {out}");
    // The real partner's LACPDUs (b answers a's, which name the
    // stranger as partner) bring port 1 back.
    assert!(w.run_until(Duration::from_secs(10), World::all_distributing));
    w.close();
}

#[test]
fn vnics_on_the_aggregations_follow_its_members() {
    let mut w = World::new(HashPolicy::L4);
    w.add_vnic(None, 30);
    w.add_vnic(Some(10), 31);
    w.add_vnic(Some(20), 32);
    assert!(w.run_until(Duration::from_secs(10), World::all_distributing));
    assert!(w.vnics[0].0.device().link().up);
    for (i, net) in [(0, 30), (1, 31), (2, 32)] {
        let (ok, out) = w.ping_vnic(i, net);
        assert!(ok, "VNIC {i}: {out}");
    }
    // Tagged VNICs' frames carry their VLAN on the wire; each VNIC's MAC
    // is on both of a's functions.
    for s in &w.a.sims {
        let macs: Vec<u64> = s.flow_entries().iter().map(|e| e.value.dmac).collect();
        for (x, _) in &w.vnics {
            let m = x.mac();
            let m = u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]);
            assert!(macs.contains(&m), "VNIC MAC steered on every member");
        }
    }
    // Port 0 pulled on a's side: the VNICs follow the aggregation.
    w.a.sims[0].set_link(false);
    assert!(w.run_until(Duration::from_secs(5), |w| !w.b.distributing(0)));
    for (i, net) in [(0, 30), (1, 31), (2, 32)] {
        let (ok, out) = w.ping_vnic(i, net);
        assert!(ok, "VNIC {i} over port 1 alone: {out}");
    }
    w.a.sims[0].set_link(true);
    assert!(w.run_until(Duration::from_secs(10), World::all_distributing));
    w.close();
}

#[test]
fn lacp_frames_are_counted_apart_from_the_clients_traffic() {
    let mut w = World::new(HashPolicy::L4);
    assert!(w.run_until(Duration::from_secs(10), World::all_distributing));
    for side in [&w.a, &w.b] {
        for i in 0..2 {
            let r = side.aggr().report(i).unwrap();
            let l = r.lacp.unwrap();
            // Every LACPDU the machines made went out (no Markers here);
            // every one received was a Slow Protocols frame.
            assert_eq!(r.counters.lacp_tx_frames, l.lacpdus_tx, "{r:?}");
            assert_eq!(
                r.counters.lacp_rx_frames,
                l.lacpdus_rx + l.bad_pdus,
                "{r:?}"
            );
            assert!(r.counters.lacp_rx_frames > 0, "{r:?}");
            // No client traffic yet: the client counters stay at zero.
            assert_eq!(
                (r.counters.tx_frames, r.counters.rx_frames),
                (0, 0),
                "{r:?}"
            );
        }
    }
    // Fast periodic rate: an LACPDU a second, none of them client traffic.
    let before = w.a.aggr().report(0).unwrap().counters;
    w.run_until(Duration::from_secs(3), |_| false);
    let after = w.a.aggr().report(0).unwrap().counters;
    assert!(
        after.lacp_tx_frames >= before.lacp_tx_frames + 2,
        "{after:?}"
    );
    assert_eq!(after.tx_frames, 0, "{after:?}");
    let (ok, out) = w.ping(false, 3);
    assert!(ok, "{out}");
    w.close();
}

#[test]
fn a_vnic_created_on_an_aggregation_that_is_up_is_up() {
    let mut w = World::new(HashPolicy::L4);
    assert!(w.run_until(Duration::from_secs(10), World::all_distributing));
    w.add_vnic(Some(10), 33);
    let vnic = &w.vnics[0].0;
    assert_eq!(vnic.device().link(), w.a.aggr().link());
    let line = vnic.status_line();
    assert!(line.contains(" link up 50000Mb/s "), "{line}");
    w.close();
}
