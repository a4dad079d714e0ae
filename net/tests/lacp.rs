//! LACP (net/src/lacp) against itself: two aggregations joined by
//! simulated links, driven by a simulated clock.

use cxos_net::lacp::wire::{self, FRAME_LEN, MarkerKind, MarkerRepr, SlowPdu};
use cxos_net::lacp::{
    Config, HashPolicy, Lacp, Mode, MuxState, PortId, Rate, RxState, Selected, SystemId,
};
use cxos_net::smoltcp::time::Instant;
use cxos_net::smoltcp::wire::EthernetAddress;

const TICK_MS: i64 = 10;
const SPEED: u32 = 25_000;

fn mac(last: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, last])
}

fn config(system: u8, mode: Mode, rate: Rate) -> Config {
    let mut c = Config::new(mac(system));
    c.mode = mode;
    c.rate = rate;
    c
}

/// Port `i` of `a` is wired to port `i` of `b`.
struct Sim {
    a: Lacp,
    b: Lacp,
    now_ms: i64,
    link_up: [bool; 2],
    /// Drop what `b` sends (a partner that stopped talking).
    mute_b: bool,
    /// (time, port) of every LACPDU `a` sent.
    a_sent: Vec<(i64, PortId)>,
    /// Time of the last LACPDU from `b` that reached `a`, per port.
    last_b_to_a: [i64; 2],
}

impl Sim {
    fn new(a: Config, b: Config) -> Sim {
        let mut sim = Sim {
            a: lacp(a, 0x10),
            b: lacp(b, 0x20),
            now_ms: 0,
            link_up: [false; 2],
            mute_b: false,
            a_sent: Vec::new(),
            last_b_to_a: [-1; 2],
        };
        sim.set_link(0, true);
        sim.set_link(1, true);
        sim
    }

    fn set_link(&mut self, i: usize, up: bool) {
        self.link_up[i] = up;
        self.a.on_link(PortId(i as u8), up, SPEED);
        self.b.on_link(PortId(i as u8), up, SPEED);
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.now_ms)
    }

    fn step(&mut self) {
        self.now_ms += TICK_MS;
        let now = self.now();
        for frame in self.a.poll(now) {
            if wire::parse_frame(frame.frame()) != wire::SlowFrame::NotSlow {
                self.a_sent.push((self.now_ms, frame.port));
            }
            if self.link_up[frame.port.0 as usize] {
                assert!(self.b.on_rx(frame.port, frame.frame()));
            }
        }
        for frame in self.b.poll(now) {
            let i = frame.port.0 as usize;
            if self.link_up[i] && !self.mute_b {
                self.last_b_to_a[i] = self.now_ms;
                assert!(self.a.on_rx(frame.port, frame.frame()));
            }
        }
    }

    /// Steps until `done` holds (returning the time) or `limit_ms` passes.
    fn run_until(&mut self, limit_ms: i64, mut done: impl FnMut(&Sim) -> bool) -> Option<i64> {
        let end = self.now_ms + limit_ms;
        while self.now_ms < end {
            self.step();
            if done(self) {
                return Some(self.now_ms);
            }
        }
        None
    }

    fn run_for(&mut self, ms: i64) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.step();
        }
    }

    fn both_aggregated(&self) -> bool {
        self.a.distributing_ports().len() == 2 && self.b.distributing_ports().len() == 2
    }
}

fn lacp(c: Config, port_mac_base: u8) -> Lacp {
    let mut l = Lacp::new(c);
    l.add_port(mac(port_mac_base)).unwrap();
    l.add_port(mac(port_mac_base + 1)).unwrap();
    l
}

fn ports(ids: &[u8]) -> Vec<PortId> {
    ids.iter().map(|&i| PortId(i)).collect()
}

fn converge(rate: Rate) -> Sim {
    let mut sim = Sim::new(config(1, Mode::Active, rate), config(2, Mode::Active, rate));
    let t = sim
        .run_until(10_000, Sim::both_aggregated)
        .expect("aggregation within 10 s");
    // Each end waits Aggregate_Wait_Time (2 s) in WAITING; the LACPDU
    // exchange itself is a few ticks, NTT-driven at either rate.
    assert!((2_000..=2_200).contains(&t), "converged at {t} ms");
    // One more exchange tells each end that the other distributes.
    sim.run_for(50);
    for (l, partner) in [(&sim.a, mac(2)), (&sim.b, mac(1))] {
        for i in 0..2 {
            let r = l.report(PortId(i)).unwrap();
            assert_eq!(
                r.partner.system,
                SystemId {
                    priority: 0x8000,
                    mac: partner
                }
            );
            assert_eq!(r.partner.port, u16::from(i) + 1);
            assert_eq!(
                (r.selected, r.mux_state),
                (Selected::Selected, MuxState::CollectingDistributing)
            );
            assert_eq!(r.rx_state, RxState::Current);
            assert!(r.collecting && r.distributing && r.actor.state.synchronization());
            assert!(r.partner.state.synchronization() && r.partner.state.distributing());
            assert!(r.lacpdus_rx > 0 && r.lacpdus_tx > 0 && r.bad_pdus == 0);
        }
    }
    sim
}

fn sent_on(sim: &Sim, port: u8, from_ms: i64) -> usize {
    sim.a_sent
        .iter()
        .filter(|(t, p)| *t > from_ms && p.0 == port)
        .count()
}

#[test]
fn fast_rate_aggregates_both_links_and_sends_every_second() {
    let mut sim = converge(Rate::Fast);
    let from = sim.now_ms;
    sim.run_for(20_000);
    assert!(sim.both_aggregated());
    // Partner asked for Short Timeout: one LACPDU per Fast_Periodic_Time.
    let n = sent_on(&sim, 0, from);
    assert!((19..=21).contains(&n), "{n} LACPDUs in 20 s");
}

#[test]
fn slow_rate_aggregates_and_sends_every_thirty_seconds() {
    let mut sim = converge(Rate::Slow);
    let from = sim.now_ms;
    sim.run_for(200_000);
    assert!(sim.both_aggregated());
    let n = sent_on(&sim, 1, from);
    assert!((6..=7).contains(&n), "{n} LACPDUs in 200 s");
    let r = sim.a.report(PortId(1)).unwrap();
    assert!(!r.actor.state.lacp_timeout() && !r.partner.state.lacp_timeout());
}

#[test]
fn link_down_removes_at_once_and_rejoins_after_wait() {
    for port in 0..2u8 {
        let mut sim = converge(Rate::Fast);
        sim.set_link(port as usize, false);
        // Out of the distributing set before any poll...
        let other = ports(&[1 - port]);
        assert_eq!(sim.a.distributing_ports().to_vec(), other);
        sim.step();
        // ...and detached at the next.
        let r = sim.a.report(PortId(port)).unwrap();
        assert_eq!(
            (r.mux_state, r.selected),
            (MuxState::Detached, Selected::Unselected)
        );
        assert_eq!(r.rx_state, RxState::PortDisabled);
        sim.run_for(5_000);
        assert_eq!(sim.a.distributing_ports().to_vec(), other);
        assert_eq!(sim.b.distributing_ports().to_vec(), other);
        let up = sim.now_ms;
        sim.set_link(port as usize, true);
        let t = sim
            .run_until(10_000, Sim::both_aggregated)
            .expect("rejoins");
        assert!(
            (up + 2_000..=up + 2_200).contains(&t),
            "rejoined {} ms after link up",
            t - up
        );
    }
}

#[test]
fn silent_partner_times_out_short_and_long() {
    for (rate, timeout_ms) in [(Rate::Fast, 3_000), (Rate::Slow, 90_000)] {
        let mut sim = converge(rate);
        sim.run_for(40_000);
        sim.mute_b = true;
        let t = sim
            .run_until(200_000, |s| s.a.distributing_ports().is_empty())
            .unwrap();
        // current_while restarts on each LACPDU: removal comes one
        // timeout after the last one that arrived.
        let last = sim.last_b_to_a[0].max(sim.last_b_to_a[1]);
        let after = t - last;
        assert!(
            (timeout_ms..=timeout_ms + 20).contains(&after),
            "{rate:?}: removed {after} ms after the last LACPDU"
        );
        let r = sim.a.report(PortId(0)).unwrap();
        assert_eq!(r.rx_state, RxState::Expired);
        assert!(r.actor.state.expired());
        // EXPIRED then DEFAULTED after a Short_Timeout_Time: detached.
        sim.run_for(3_100);
        let r = sim.a.report(PortId(0)).unwrap();
        assert_eq!(
            (r.rx_state, r.mux_state),
            (RxState::Defaulted, MuxState::Detached)
        );
        assert!(r.actor.state.defaulted());
        // The partner talks again: back after the wait.
        sim.mute_b = false;
        let back = sim.now_ms;
        let t = sim
            .run_until(40_000, |s| s.a.distributing_ports().len() == 2)
            .unwrap();
        assert!(
            t - back <= 2_200 + 1_000,
            "{rate:?}: back after {} ms",
            t - back
        );
    }
}

#[test]
fn partner_changing_system_id_reselects() {
    let mut sim = converge(Rate::Fast);
    // The box behind both links is replaced by another system.
    sim.b = lacp(config(3, Mode::Active, Rate::Fast), 0x30);
    sim.b.on_link(PortId(0), true, SPEED);
    sim.b.on_link(PortId(1), true, SPEED);
    let changed = sim.now_ms;
    // The first LACPDU of the new system unselects the ports at once.
    sim.step();
    sim.step();
    assert!(sim.a.distributing_ports().is_empty());
    let new = SystemId {
        priority: 0x8000,
        mac: mac(3),
    };
    let t = sim
        .run_until(10_000, |s| {
            s.both_aggregated()
                && (0..2).all(|i| s.a.report(PortId(i)).unwrap().partner.system == new)
        })
        .expect("aggregates with the new partner");
    assert!(t - changed >= 2_000, "{} ms", t - changed);
}

#[test]
fn partner_changing_system_id_on_one_link_keeps_the_other() {
    let mut sim = converge(Rate::Fast);
    // Link 1 now leads to a third system (a miscabling): it must leave
    // the aggregator, which stays bound to the partner of link 0.
    let mut third = lacp(config(3, Mode::Active, Rate::Fast), 0x30);
    third.on_link(PortId(1), true, SPEED);
    let mut t = sim.now_ms;
    for _ in 0..1_000 {
        t += TICK_MS;
        let now = Instant::from_millis(t);
        sim.now_ms = t;
        for f in sim.a.poll(now) {
            if f.port.0 == 0 {
                sim.b.on_rx(f.port, f.frame());
            } else {
                third.on_rx(f.port, f.frame());
            }
        }
        for f in sim.b.poll(now) {
            if f.port.0 == 0 {
                sim.a.on_rx(f.port, f.frame());
            }
        }
        for f in third.poll(now) {
            if f.port.0 == 1 {
                sim.a.on_rx(f.port, f.frame());
            }
        }
        assert!(sim.a.distributing_ports().contains(&PortId(0)));
    }
    assert_eq!(sim.a.distributing_ports().to_vec(), ports(&[0]));
    let r = sim.a.report(PortId(1)).unwrap();
    assert_eq!(r.partner.system.mac, mac(3));
    assert_eq!(r.selected, Selected::Unselected);
}

#[test]
fn passive_pairs_never_aggregate_and_active_passive_does() {
    let mut sim = Sim::new(
        config(1, Mode::Passive, Rate::Fast),
        config(2, Mode::Passive, Rate::Fast),
    );
    sim.run_for(60_000);
    assert!(sim.a.distributing_ports().is_empty() && sim.b.distributing_ports().is_empty());
    assert!(
        sim.a_sent.is_empty(),
        "a passive end talked to a silent partner"
    );
    for (active, passive) in [(Mode::Active, Mode::Passive), (Mode::Passive, Mode::Active)] {
        let mut sim = Sim::new(
            config(1, active, Rate::Fast),
            config(2, passive, Rate::Fast),
        );
        let t = sim
            .run_until(10_000, Sim::both_aggregated)
            .expect("active-passive aggregates");
        assert!(t <= 3_200, "{t} ms");
        // The passive end keeps answering once a second.
        let from = sim.now_ms;
        sim.run_for(10_000);
        assert!(sim.both_aggregated());
        assert!((9..=11).contains(&sent_on(&sim, 0, from)));
    }
}

#[test]
fn static_mode_distributes_while_link_up() {
    let mut l = lacp(config(1, Mode::Static, Rate::Fast), 0x10);
    let now = Instant::from_millis(10);
    assert!(l.poll(now).is_empty());
    assert!(l.distributing_ports().is_empty());
    l.on_link(PortId(0), true, SPEED);
    l.on_link(PortId(1), true, SPEED);
    assert!(l.poll(now).is_empty());
    assert_eq!(l.distributing_ports().to_vec(), ports(&[0, 1]));
    assert!(l.is_collecting(PortId(1)));
    l.on_link(PortId(1), false, 0);
    assert_eq!(l.distributing_ports().to_vec(), ports(&[0]));
    assert!(!l.is_collecting(PortId(1)));
    // LACPDUs from an active partner are consumed and change nothing.
    let mut peer = lacp(config(2, Mode::Active, Rate::Fast), 0x20);
    peer.on_link(PortId(0), true, SPEED);
    for ms in 0..5_000 {
        let now = Instant::from_millis(ms * TICK_MS);
        for f in peer.poll(now) {
            assert!(l.on_rx(f.port, f.frame()));
        }
        assert!(l.poll(now).is_empty());
    }
    assert_eq!(l.distributing_ports().to_vec(), ports(&[0]));
    assert!(l.report(PortId(0)).unwrap().lacpdus_rx > 0);
}

#[test]
fn marker_requests_are_answered_on_the_same_port() {
    let mut sim = converge(Rate::Fast);
    let request = MarkerRepr {
        kind: MarkerKind::Information,
        requester_port: 2,
        requester_system: mac(2),
        requester_transaction_id: 0xdead_beef,
    };
    let mut frame = [0u8; FRAME_LEN];
    wire::emit_frame(mac(0x21), &SlowPdu::Marker(request), &mut frame);
    assert!(sim.a.on_rx(PortId(1), &frame));
    let out = sim.a.poll(Instant::from_millis(sim.now_ms + 1));
    let responses: Vec<_> = out
        .iter()
        .filter_map(|f| match wire::parse_frame(f.frame()) {
            wire::SlowFrame::Pdu(SlowPdu::Marker(m)) => {
                Some((f.port, f.frame()[6..12].to_vec(), m))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        responses,
        vec![(PortId(1), mac(0x11).0.to_vec(), request.response())]
    );
    let r = sim.a.report(PortId(1)).unwrap();
    assert_eq!((r.markers_rx, r.marker_responses_tx), (1, 1));
    // A flood: one response a poll (the latest request), the overrun
    // counted.
    for id in 0..10 {
        let m = MarkerRepr {
            requester_transaction_id: id,
            ..request
        };
        wire::emit_frame(mac(0x21), &SlowPdu::Marker(m), &mut frame);
        assert!(sim.a.on_rx(PortId(1), &frame));
    }
    let out = sim.a.poll(Instant::from_millis(sim.now_ms + 2));
    let answered: Vec<u32> = out
        .iter()
        .filter_map(|f| match wire::parse_frame(f.frame()) {
            wire::SlowFrame::Pdu(SlowPdu::Marker(m)) => Some(m.requester_transaction_id),
            _ => None,
        })
        .collect();
    assert_eq!(answered, vec![9]);
    let r = sim.a.report(PortId(1)).unwrap();
    assert_eq!(
        (r.markers_rx, r.marker_responses_tx, r.bad_pdus),
        (11, 2, 9)
    );
    // A Marker Response is only counted.
    wire::emit_frame(mac(0x21), &SlowPdu::Marker(request.response()), &mut frame);
    assert!(sim.a.on_rx(PortId(1), &frame));
    assert!(
        sim.a
            .poll(Instant::from_millis(sim.now_ms + 2))
            .iter()
            .all(|f| {
                !matches!(
                    wire::parse_frame(f.frame()),
                    wire::SlowFrame::Pdu(SlowPdu::Marker(_))
                )
            })
    );
}

/// A deterministic byte source for the bad-input test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn bad_input_is_counted_and_the_aggregation_keeps_serving() {
    let mut sim = converge(Rate::Fast);
    // A valid LACPDU of b's to corrupt.
    let mut good = None;
    while good.is_none() {
        sim.now_ms += TICK_MS;
        good = sim.b.poll(sim.now()).into_iter().find(|f| f.port.0 == 0);
    }
    let good = good.unwrap().frame().to_vec();
    let mut bad: Vec<Vec<u8>> = vec![
        good[..good.len() - 1].to_vec(),
        good[..20].to_vec(),
        good[..15].to_vec(),
        [good.clone(), vec![0; 1]].concat(),
        [good.clone(), vec![0; 9000]].concat(),
    ];
    // Wrong TLV types and lengths, version, wrong destination.
    for (offset, value) in [
        (14 + 2, 9),
        (14 + 3, 0),
        (14 + 23, 255),
        (14 + 43, 0),
        (14 + 59, 1),
        (14 + 1, 0),
        (0, 0x02),
    ] {
        let mut f = good.clone();
        f[offset] = value;
        bad.push(f);
    }
    let known_bad = bad.len() as u64;
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for _ in 0..2_000 {
        // Random Slow Protocols frames of random length, LACP subtype.
        let len = 14 + (rng.next() % 200) as usize;
        let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        f[..14].copy_from_slice(&good[..14]);
        if len > 14 {
            f[14] = 1;
        }
        bad.push(f);
    }
    let before = sim.a.report(PortId(0)).unwrap().bad_pdus;
    for (i, f) in bad.iter().enumerate() {
        assert!(sim.a.on_rx(PortId(0), f), "frame {i} not consumed");
        if i % 20 == 0 {
            sim.step();
            assert!(
                sim.both_aggregated(),
                "lost the aggregation at bad frame {i}"
            );
        }
    }
    // Impossible actor states: distributing without collecting,
    // collecting out of sync. Counted apart; the aggregation does not
    // distribute on the claim of an unsynchronized partner.
    for state in [0x2d, 0x15] {
        let mut f = good.clone();
        f[14 + 18] = state;
        assert!(sim.a.on_rx(PortId(0), &f));
        sim.step();
        let sync = state & 0x08 != 0;
        assert_eq!(
            sim.a.distributing_ports().contains(&PortId(0)),
            sync,
            "{state:#x}"
        );
    }
    assert_eq!(sim.a.report(PortId(0)).unwrap().impossible_states, 2);
    let r = sim.a.report(PortId(0)).unwrap();
    assert!(
        r.bad_pdus - before >= known_bad,
        "{} bad of {known_bad}",
        r.bad_pdus - before
    );
    sim.run_for(10_000);
    assert!(sim.both_aggregated());
    // Not Slow Protocols: left for the clients, not counted.
    let mut ip = good.clone();
    ip[12..14].copy_from_slice(&[0x08, 0x00]);
    assert!(!sim.a.on_rx(PortId(0), &ip));
    assert!(!sim.a.on_rx(PortId(0), &[]));
    assert!(!sim.a.on_rx(PortId(0), &good[..10]));
    // Another Slow Protocol (OAM, subtype 3): consumed, counted apart.
    let mut oam = good.clone();
    oam[14] = 3;
    assert!(sim.a.on_rx(PortId(0), &oam));
    assert_eq!(sim.a.report(PortId(0)).unwrap().other_slow_rx, 1);
    // Unknown port: consumed, nothing else.
    assert!(sim.a.on_rx(PortId(3), &good));
    assert!(!sim.a.on_rx(PortId(3), &ip));
}

#[test]
fn fast_flapping_link_stays_out_until_stable() {
    let mut sim = converge(Rate::Fast);
    for i in 0..400 {
        sim.set_link(0, i % 2 == 1);
        for _ in 0..5 {
            sim.step();
            // Never back within Aggregate_Wait_Time of a flap; link 1 serves.
            assert_eq!(sim.a.distributing_ports().to_vec(), ports(&[1]));
            assert!(sim.b.distributing_ports().contains(&PortId(1)));
        }
    }
    sim.set_link(0, true);
    assert!(sim.run_until(5_000, Sim::both_aggregated).is_some());
    assert!(sim.a.report(PortId(0)).unwrap().link_changes >= 400);
}

#[test]
fn transmit_rate_limit_holds_under_a_flood() {
    let mut sim = converge(Rate::Fast);
    // Every 10 ms, a LACPDU whose view of us disagrees with our state:
    // update_NTT asks for an answer each time.
    let mut good = None;
    while good.is_none() {
        sim.now_ms += TICK_MS;
        good = sim.b.poll(sim.now()).into_iter().find(|f| f.port.0 == 0);
    }
    let good = good.unwrap().frame().to_vec();
    let from = sim.now_ms;
    for i in 0..1_000 {
        let mut f = good.clone();
        // Partner_State (PDU offset 38): flip our timeout bit back and forth.
        f[14 + 38] ^= (i % 2) as u8 * 0x02;
        sim.a.on_rx(PortId(0), &f);
        sim.step();
    }
    let sent: Vec<i64> = sim
        .a_sent
        .iter()
        .filter(|(t, p)| *t > from && p.0 == 0)
        .map(|(t, _)| *t)
        .collect();
    assert!(
        sent.len() >= 25,
        "only {} LACPDUs in 10 s of NTT",
        sent.len()
    );
    for w in sent.windows(4) {
        assert!(w[3] - w[0] >= 1_000, "4 LACPDUs within {} ms", w[3] - w[0]);
    }
    assert!(sim.both_aggregated());
}

/// An Ethernet + IPv4 + UDP/TCP frame, written by hand.
fn ip_frame(
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
    frag: u16,
) -> Vec<u8> {
    let l4_len = if proto == 6 { 20 } else { 8 };
    let total = 20 + l4_len + 16;
    let mut f = Vec::new();
    f.extend_from_slice(&mac(0x77).0);
    f.extend_from_slice(&mac(0x66).0);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1]);
    f.extend_from_slice(&frag.to_be_bytes());
    f.extend_from_slice(&[64, proto, 0, 0]);
    f.extend_from_slice(&src_ip);
    f.extend_from_slice(&dst_ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        f.extend_from_slice(&[0, (8 + 16) as u8, 0, 0]);
    }
    f.extend_from_slice(&[0xab; 16]);
    f
}

#[test]
fn hash_keeps_flows_on_one_port_and_spreads_many() {
    let mut sim = converge(Rate::Fast);
    for policy in ["L4", "L3", "L3,L4", "l2,l3,l4"] {
        let policy = HashPolicy::parse(policy).unwrap();
        let mut counts = [0usize; 2];
        for flow in 0..256u16 {
            let (src, sport) = ([10, 0, (flow >> 8) as u8, flow as u8], 40_000 + flow);
            let proto = if flow % 2 == 0 { 17 } else { 6 };
            let first = ip_frame(src, [10, 0, 0, 1], proto, sport, 5201, 0);
            let port = policy.hash(&first);
            // Every frame of the flow: same hash, whatever the payload.
            for n in 0..8u8 {
                let mut f = ip_frame(src, [10, 0, 0, 1], proto, sport, 5201, 0);
                *f.last_mut().unwrap() = n;
                assert_eq!(policy.hash(&f), port);
            }
            counts[(port % 2) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c >= 90), "{policy:?}: {counts:?}");
    }
    // L2 alone: one MAC pair is one port, whatever the addresses above.
    let l2 = HashPolicy::L2;
    let h = l2.hash(&ip_frame([1, 1, 1, 1], [2, 2, 2, 2], 17, 1, 2, 0));
    assert_eq!(
        h,
        l2.hash(&ip_frame([3, 3, 3, 3], [4, 4, 4, 4], 6, 5, 6, 0))
    );
    // Fragments of one datagram (MF set, then an offset) share a port.
    let l4 = HashPolicy::L4;
    let first = l4.hash(&ip_frame(
        [1, 1, 1, 1],
        [2, 2, 2, 2],
        17,
        1000,
        2000,
        0x2000,
    ));
    assert_eq!(
        first,
        l4.hash(&ip_frame([1, 1, 1, 1], [2, 2, 2, 2], 17, 7, 9, 0x0010))
    );
    assert!(HashPolicy::parse("L5").is_err() && HashPolicy::parse("").is_err());
    // tx_port: the same flow on the same port, and only on distributing
    // ports.
    let f = ip_frame([10, 1, 1, 1], [10, 0, 0, 1], 6, 33_000, 5201, 0);
    let p = sim.a.tx_port(&f).unwrap();
    assert!((0..100).all(|_| sim.a.tx_port(&f) == Some(p)));
    sim.set_link(p.0 as usize, false);
    assert_eq!(sim.a.tx_port(&f), Some(PortId(1 - p.0)));
    sim.set_link(1 - p.0 as usize, false);
    assert_eq!(sim.a.tx_port(&f), None);
}

#[test]
fn partner_port_moving_to_another_link_reinitializes_the_old_one() {
    let mut sim = converge(Rate::Fast);
    // Link 0 goes down; then b's port 0 (port number 1) is recabled to
    // a's port 1, and b's port 1 is left unplugged.
    sim.set_link(0, false);
    sim.step();
    let old = sim.a.report(PortId(0)).unwrap();
    assert_eq!(old.rx_state, RxState::PortDisabled);
    assert_eq!((old.partner.system.mac, old.partner.port), (mac(2), 1));
    sim.b.on_link(PortId(1), false, 0);
    sim.b.on_link(PortId(0), true, SPEED);
    let mut t = sim.now_ms;
    for _ in 0..500 {
        t += TICK_MS;
        let now = Instant::from_millis(t);
        for f in sim.a.poll(now) {
            if f.port.0 == 1 {
                sim.b.on_rx(PortId(0), f.frame());
            }
        }
        for f in sim.b.poll(now) {
            if f.port.0 == 0 {
                sim.a.on_rx(PortId(1), f.frame());
            }
        }
    }
    // port_moved: the disabled port forgot the partner port it lost.
    let r = sim.a.report(PortId(0)).unwrap();
    assert_eq!(r.rx_state, RxState::PortDisabled);
    assert_eq!(r.partner.system.mac, EthernetAddress([0; 6]));
    assert!(r.actor.state.defaulted());
    let r = sim.a.report(PortId(1)).unwrap();
    assert_eq!((r.partner.system.mac, r.partner.port), (mac(2), 1));
    assert_eq!(sim.a.distributing_ports().to_vec(), ports(&[1]));
}

#[test]
fn hash_reads_ipv6_and_vlan_tagged_frames() {
    let l3l4 = HashPolicy::parse("L3,L4").unwrap();
    let v6 = |last: u8, sport: u16| {
        let mut f = Vec::new();
        f.extend_from_slice(&mac(0x77).0);
        f.extend_from_slice(&mac(0x66).0);
        f.extend_from_slice(&[0x86, 0xdd]);
        // Version 6, payload length 8 + 4, next header UDP, hop limit 64.
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 12, 17, 64]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&[0x14, 0x51, 0, 12, 0, 0, 1, 2, 3, 4]);
        f
    };
    let spread: std::collections::HashSet<u32> = (0..64u16)
        .map(|i| l3l4.hash(&v6(2, 40_000 + i)) % 2)
        .collect();
    assert_eq!(spread.len(), 2, "64 IPv6 flows on one port");
    assert_eq!(l3l4.hash(&v6(2, 1)), l3l4.hash(&v6(2, 1)));
    assert_ne!(
        (0..16u8)
            .map(|i| l3l4.hash(&v6(i, 1)))
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1
    );
    // The same IPv4 flow behind an 802.1Q tag: hashed on its headers
    // (ports differ -> hashes differ), and one VLAN differs from another.
    let tagged = |vid: u8, sport: u16| {
        let f = ip_frame([10, 0, 0, 2], [10, 0, 0, 1], 17, sport, 5201, 0);
        [&f[..12], &[0x81, 0x00, 0x00, vid], &f[12..]].concat()
    };
    let l4 = HashPolicy::L4;
    assert_eq!(l4.hash(&tagged(5, 1)), l4.hash(&tagged(5, 1)));
    let by_port: std::collections::HashSet<u32> =
        (0..16u16).map(|p| l4.hash(&tagged(5, p))).collect();
    assert!(by_port.len() > 1, "the tagged frame's ports were not read");
    assert_ne!(l4.hash(&tagged(5, 1)), l4.hash(&tagged(6, 1)));
}

#[test]
fn a_caller_sleeping_until_poll_at_sees_the_same_protocol() {
    // Event-driven: each side is polled only when poll_at says so (or
    // when a frame arrives), never on a fixed tick.
    let mut a = lacp(config(1, Mode::Active, Rate::Fast), 0x10);
    let mut b = lacp(config(2, Mode::Active, Rate::Fast), 0x20);
    for l in [&mut a, &mut b] {
        l.on_link(PortId(0), true, SPEED);
        l.on_link(PortId(1), true, SPEED);
    }
    let mut now = Instant::from_millis(0);
    let mut polls = 0;
    let mut aggregated_at = None;
    let mut a_sent = 0;
    while now < Instant::from_millis(30_000) {
        polls += 1;
        assert!(polls < 2_000, "poll_at keeps asking for polls");
        for f in a.poll(now) {
            a_sent += 1;
            b.on_rx(f.port, f.frame());
        }
        for f in b.poll(now) {
            a.on_rx(f.port, f.frame());
        }
        if aggregated_at.is_none()
            && a.distributing_ports().len() == 2
            && b.distributing_ports().len() == 2
        {
            aggregated_at = Some(now.total_millis());
        }
        let next = [a.poll_at(), b.poll_at()]
            .into_iter()
            .flatten()
            .min()
            .expect("timers run");
        now = next.max(now + cxos_net::smoltcp::time::Duration::from_millis(1));
    }
    let t = aggregated_at.expect("aggregated");
    assert!((2_000..=2_010).contains(&t), "aggregated at {t} ms");
    // About one LACPDU a second per port, plus the handshake.
    assert!((56..=70).contains(&a_sent), "{a_sent} LACPDUs");
    // A passive port with a silent partner: EXPIRED (current_while
    // runs), then DEFAULTED with no timer, and the NTT that DETACHED set
    // cannot be sent: nothing to wake up for.
    let mut p = lacp(config(3, Mode::Passive, Rate::Fast), 0x30);
    p.on_link(PortId(0), true, SPEED);
    assert!(p.poll(Instant::from_millis(1)).is_empty());
    assert_eq!(p.poll_at(), Some(Instant::from_millis(3_001)));
    assert!(p.poll(Instant::from_millis(5_000)).is_empty());
    assert_eq!(p.poll_at(), None);
}

#[test]
fn a_loop_between_two_of_our_ports_never_aggregates() {
    let mut l = lacp(config(1, Mode::Active, Rate::Fast), 0x10);
    l.on_link(PortId(0), true, SPEED);
    l.on_link(PortId(1), true, SPEED);
    for ms in 0..1_000 {
        for f in l.poll(Instant::from_millis(ms * TICK_MS)) {
            let other = PortId(1 - f.port.0);
            let frame = f.frame().to_vec();
            assert!(l.on_rx(other, &frame));
        }
        assert!(l.distributing_ports().is_empty());
    }
    let r = l.report(PortId(0)).unwrap();
    assert_eq!(r.partner.system.mac, mac(1));
    assert_eq!(r.selected, Selected::Unselected);
}

#[test]
fn a_link_of_another_speed_stays_out_of_the_aggregator() {
    let mut sim = converge(Rate::Fast);
    // Port 1 renegotiates to 10G on both ends while port 0 stays at 25G.
    sim.a.on_link(PortId(1), true, 10_000);
    sim.b.on_link(PortId(1), true, 10_000);
    for _ in 0..1_000 {
        sim.step();
        assert_eq!(sim.a.distributing_ports().to_vec(), ports(&[0]));
        assert_eq!(sim.b.distributing_ports().to_vec(), ports(&[0]));
    }
    let r = sim.a.report(PortId(1)).unwrap();
    assert_eq!(
        (r.selected, r.mux_state),
        (Selected::Unselected, MuxState::Detached)
    );
    assert_eq!(r.rx_state, RxState::Current);
    // Port 0 goes: the aggregator is free, and port 1 takes it after the wait.
    sim.set_link(0, false);
    let down = sim.now_ms;
    let t = sim
        .run_until(10_000, |s| {
            s.a.distributing_ports().to_vec() == ports(&[1])
                && s.b.distributing_ports().to_vec() == ports(&[1])
        })
        .expect("port 1 takes over");
    assert!(t - down >= 2_000, "{} ms", t - down);
}

#[test]
fn a_link_flapping_from_the_start_does_not_hold_the_other_back() {
    let mut sim = Sim::new(
        config(1, Mode::Active, Rate::Fast),
        config(2, Mode::Active, Rate::Fast),
    );
    // Link 0 is up 300 ms, down 200 ms, for ever; link 1 is steady. Each
    // time link 0 drops it leaves WAITING, so Ready (6.4.8: every waiting
    // port has waited) becomes true for link 1 then.
    let mut joined = None;
    for i in 0..2_000 {
        if i % 50 == 0 {
            sim.set_link(0, true);
        } else if i % 50 == 30 {
            sim.set_link(0, false);
        }
        sim.step();
        assert!(!sim.a.distributing_ports().contains(&PortId(0)));
        let both = sim.a.distributing_ports().contains(&PortId(1))
            && sim.b.distributing_ports().contains(&PortId(1));
        if both && joined.is_none() {
            joined = Some(sim.now_ms);
        }
        if joined.is_some() {
            assert!(sim.a.distributing_ports().contains(&PortId(1)));
        }
    }
    let t = joined.expect("link 1 aggregates");
    // Its own Aggregate_Wait_Time, then at most until link 0 next drops.
    assert!((2_000..=2_400).contains(&t), "link 1 joined at {t} ms");
}

#[test]
fn an_individual_partner_gets_one_link_only() {
    // b's LACPDUs reach a with Aggregation cleared (Actor_State bit 2,
    // PDU offset 18): b's links are individual, so a's aggregator takes
    // one of them and the other waits.
    let mut sim = Sim::new(
        config(1, Mode::Active, Rate::Fast),
        config(2, Mode::Active, Rate::Fast),
    );
    for _ in 0..1_000 {
        sim.now_ms += TICK_MS;
        let now = sim.now();
        for f in sim.a.poll(now) {
            sim.b.on_rx(f.port, f.frame());
        }
        for f in sim.b.poll(now) {
            let mut frame = f.frame().to_vec();
            frame[14 + 18] &= !0x04;
            assert!(sim.a.on_rx(f.port, &frame));
        }
    }
    assert_eq!(sim.a.distributing_ports().len(), 1);
    let selected: Vec<Selected> = (0..2)
        .map(|i| sim.a.report(PortId(i)).unwrap().selected)
        .collect();
    assert_eq!(
        selected
            .iter()
            .filter(|s| **s == Selected::Selected)
            .count(),
        1,
        "{selected:?}"
    );
    for i in 0..2 {
        assert!(!sim.a.report(PortId(i)).unwrap().partner.state.aggregation());
    }
}

/// `frame` with byte `at` set to `v`.
fn with(mut frame: Vec<u8>, at: usize, v: u8) -> Vec<u8> {
    frame[at] = v;
    frame
}

#[test]
fn each_hash_policy_reads_only_its_headers_and_spreads_flows() {
    // Offsets in ip_frame's frames: source MAC 6..12, source IPv4
    // address 26..30, source port 34..36.
    const SRC_MAC: usize = 11;
    const SRC_IP: usize = 29;
    const SRC_PORT: usize = 35;
    let base = || ip_frame([10, 0, 0, 9], [10, 0, 0, 1], 17, 40_000, 5201, 0);
    for (policy, own, others) in [
        (HashPolicy::L2, SRC_MAC, [SRC_IP, SRC_PORT]),
        (HashPolicy::L3, SRC_IP, [SRC_MAC, SRC_PORT]),
        (HashPolicy::L4, SRC_PORT, [SRC_MAC, SRC_IP]),
    ] {
        // 256 flows differing in the policy's own header: spread over 2
        // and over 4 ports, each flow on one port whatever its payload.
        let mut two = [0usize; 2];
        let mut four = [0usize; 4];
        for v in 0..=255u8 {
            let f = with(base(), own, v);
            let h = policy.hash(&f);
            for n in 0..4u8 {
                let mut g = f.clone();
                *g.last_mut().unwrap() = n;
                assert_eq!(policy.hash(&g), h, "{policy:?}: payload moved a flow");
            }
            two[h as usize % 2] += 1;
            four[h as usize % 4] += 1;
        }
        assert!(two.iter().all(|&c| c >= 100), "{policy:?}: {two:?}");
        assert!(four.iter().all(|&c| c >= 40), "{policy:?}: {four:?}");
        // Headers the policy does not name do not move a flow.
        let h = policy.hash(&base());
        for at in others {
            for v in 0..=255u8 {
                assert_eq!(
                    policy.hash(&with(base(), at, v)),
                    h,
                    "{policy:?} read byte {at}"
                );
            }
        }
    }
}
