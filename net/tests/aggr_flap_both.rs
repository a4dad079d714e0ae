//! Both members of an aggregation flapping fast and independently
//! (issue 19, "bad input", hosted, no model): two aggregations A and B
//! on an in-memory cable plant (A0-B0, A1-B1) and a simulated clock;
//! each cable goes down and up every 1 to 4 ticks on its own
//! deterministic schedule, now and then holding. After every step:
//! nothing panics; a member distributes only with its link up and the
//! partner in sync; a member whose link dropped left in that poll; every
//! client frame leaves on a distributing member, and with none
//! distributing transmit is refused and nothing goes out; a link that
//! has been up for [`STABLE_TICKS`] is distributing on A and carries
//! client frames (the aggregation keeps serving on whatever links are
//! valid). Afterwards both cables back for good: both members rejoin.
//!
//! A file of its own, beside `aggr_flap.rs`, whose one test counts heap
//! bytes and so must be alone in its binary.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use cxos_drivers::{FilterError, LinkState, NetDevice, NetStats, Offloads, RxMeta, TxError};
use cxos_net::aggr::{Aggr, SLOW_PROTOCOLS_MAC};
use cxos_net::lacp::{Config, HashPolicy, Mode, Rate};
use cxos_net::smoltcp::time::Instant;
use cxos_net::smoltcp::wire::EthernetAddress;

const TICK_MS: i64 = 10;
/// Frames a device's receive queue holds; more are dropped (a ring).
const RX_RING: usize = 64;

/// Marker PDUs kept per device.
const MARKER_LOG: usize = 4;

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0];
const A0: usize = 0;
const A1: usize = 1;
const B0: usize = 2;
const B1: usize = 3;

/// Devices, and cables between pairs of them.
#[derive(Default)]
struct Plant {
    rx: Vec<VecDeque<Vec<u8>>>,
    /// Client (non-Slow-Protocols) frames each device sent.
    client_tx: Vec<u64>,
    /// The last Marker PDUs each device sent.
    markers_tx: Vec<VecDeque<Vec<u8>>>,
    cables: Vec<([usize; 2], bool)>,
}

impl Plant {
    fn peer(&self, dev: usize) -> Option<usize> {
        self.cables.iter().find_map(|&(ends, up)| match ends {
            [a, b] if up && a == dev => Some(b),
            [a, b] if up && b == dev => Some(a),
            _ => None,
        })
    }
}

struct PlantDev {
    plant: Arc<Mutex<Plant>>,
    id: usize,
    mac: [u8; 6],
    queued: Vec<Vec<u8>>,
}

impl NetDevice for PlantDev {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        1500
    }

    fn link(&self) -> LinkState {
        let up = self.plant.lock().unwrap().peer(self.id).is_some();
        LinkState {
            up,
            speed_mbps: if up { 25_000 } else { 0 },
        }
    }

    fn offloads(&self) -> Offloads {
        Offloads::default()
    }

    fn poll(&mut self) -> usize {
        0
    }

    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let frame = self.plant.lock().unwrap().rx[self.id].pop_front()?;
        Some(f(&frame, RxMeta::default()))
    }

    fn tx_free(&self) -> usize {
        RX_RING - self.queued.len()
    }

    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxError> {
        if len == 0 || len > 1514 {
            return Err(TxError::BadLength(len));
        }
        if self.queued.len() >= RX_RING {
            return Err(TxError::Busy);
        }
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.queued.push(frame);
        Ok(r)
    }

    fn flush(&mut self) {
        let mut plant = self.plant.lock().unwrap();
        let peer = plant.peer(self.id);
        for frame in self.queued.drain(..) {
            // Slow Protocols, subtype Marker (802.1AX-2014 6.5.3.2).
            if frame[12..15] == [0x88, 0x09, 0x02] {
                let log = &mut plant.markers_tx[self.id];
                if log.len() == MARKER_LOG {
                    log.pop_front();
                }
                log.push_back(frame.clone());
            } else if frame[12..14] != [0x88, 0x09] {
                plant.client_tx[self.id] += 1;
            }
            if let Some(p) = peer
                && plant.rx[p].len() < RX_RING
            {
                plant.rx[p].push_back(frame);
            }
        }
    }

    fn stats(&self) -> NetStats {
        NetStats::default()
    }

    fn add_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        assert_eq!(mac, SLOW_PROTOCOLS_MAC);
        Ok(())
    }

    fn remove_multicast(&mut self, _mac: [u8; 6]) -> Result<(), FilterError> {
        Ok(())
    }
}

/// Ticks a link must have been up before A must distribute on it. A
/// link that comes up waits Aggregate_Wait_Time (2 s) on both ends; and
/// an aggregator is Ready only once every port waiting on it has waited
/// (802.1AX-2014 6.4.8), so the other link coming up just before this
/// one's wait ends holds it up to another 2 s, unless that link drops
/// first (it then leaves at once). Twice the wait, plus a few fast-rate
/// LACPDU exchanges: 4.5 s.
const STABLE_TICKS: u32 = 450;

struct World {
    plant: Arc<Mutex<Plant>>,
    clock: Arc<AtomicI64>,
    a: Aggr<PlantDev>,
    b: Aggr<PlantDev>,
    /// Steps since each of A's links (cables 0 and 1) last changed.
    steady: [u32; 2],
    /// Steps in which a link was stable and A served client frames on it
    /// (counted per link).
    served_stable: u64,
    /// Steps in which no member distributed and transmit was refused.
    refused: u64,
}

impl World {
    fn new() -> World {
        let plant = Arc::new(Mutex::new(Plant {
            rx: vec![VecDeque::with_capacity(RX_RING); 4],
            client_tx: vec![0; 4],
            markers_tx: vec![VecDeque::with_capacity(MARKER_LOG); 4],
            cables: vec![([A0, B0], true), ([A1, B1], true)],
        }));
        let clock = Arc::new(AtomicI64::new(0));
        World {
            a: aggr(&plant, &clock, MAC_A, 1, &[A0, A1]),
            b: aggr(&plant, &clock, MAC_B, 1, &[B0, B1]),
            plant,
            clock,
            steady: [0; 2],
            served_stable: 0,
            refused: 0,
        }
    }

    fn cable(&mut self, i: usize, up: bool) {
        let mut plant = self.plant.lock().unwrap();
        if plant.cables[i].1 != up {
            self.steady[i] = 0;
        }
        plant.cables[i].1 = up;
    }

    /// Whether member `i` of `aggr` distributes, and if so that it does
    /// with the partner `partner` in sync and its link up.
    fn check_member(aggr: &Aggr<PlantDev>, i: usize, partner: [u8; 6]) -> bool {
        let r = aggr.report(i).unwrap();
        let l = r.lacp.unwrap();
        assert_eq!(r.distributing, l.distributing && l.link_up);
        if r.distributing {
            assert!(r.link.up, "member {i} distributes with its link down");
            assert_eq!(
                l.partner.system.mac.0, partner,
                "member {i} distributes with another partner"
            );
            assert!(
                l.partner.state.synchronization() && l.actor.state.synchronization(),
                "member {i} distributes out of sync: {l:?}"
            );
        }
        r.distributing
    }

    fn step(&mut self) {
        self.clock.fetch_add(TICK_MS, Ordering::Relaxed);
        for x in [&mut self.a, &mut self.b] {
            x.poll();
            while x.receive(|f, _| f.len()).is_some() {}
        }
        let a = [
            Self::check_member(&self.a, 0, MAC_B),
            Self::check_member(&self.a, 1, MAC_B),
        ];
        Self::check_member(&self.b, 0, MAC_A);
        Self::check_member(&self.b, 1, MAC_A);
        let up = {
            let plant = self.plant.lock().unwrap();
            [plant.cables[0].1, plant.cables[1].1]
        };
        for i in 0..2 {
            // A member that lost its link left in this poll.
            if !up[i] {
                assert!(!a[i], "member {i} still distributes with its link down");
            }
            self.steady[i] = self.steady[i].saturating_add(1);
        }
        for i in 0..2 {
            // A link up and steady long enough is in use, whatever the
            // other link does.
            if up[i] && self.steady[i] >= STABLE_TICKS {
                assert!(
                    a[i],
                    "link {i} up for {} ticks (the other steady for {}), but A does not distribute on it",
                    self.steady[i],
                    self.steady[1 - i]
                );
            }
        }
        let mask = u8::from(a[0]) | u8::from(a[1]) << 1;
        let used = self.send_flows(mask);
        for (i, &link_up) in up.iter().enumerate() {
            if link_up && self.steady[i] >= STABLE_TICKS {
                assert!(
                    used & (1 << i) != 0,
                    "stable link {i} carried no client frame"
                );
                self.served_stable += 1;
            }
        }
    }

    /// One frame of each of 16 flows from A, each on a distributing
    /// member; with none distributing, each refused and none sent.
    /// Returns the members that sent (a bit mask).
    fn send_flows(&mut self, mask: u8) -> u8 {
        let mut used = 0;
        if mask == 0 {
            assert_eq!(self.a.tx_free(), 0, "room to send with no member");
        }
        for flow in 0..16 {
            let frame = udp_frame(flow);
            let before = self.plant.lock().unwrap().client_tx.clone();
            let sent = self.a.transmit(frame.len(), |b| b.copy_from_slice(&frame));
            self.a.flush();
            let after = self.plant.lock().unwrap().client_tx.clone();
            if mask == 0 {
                assert!(sent.is_err(), "frame of flow {flow} taken with no member");
                assert_eq!(before, after, "frame sent with no member distributing");
                self.refused += 1;
                continue;
            }
            assert!(sent.is_ok(), "flow {flow} refused with mask {mask:#b}");
            let moved: Vec<usize> = [A0, A1]
                .into_iter()
                .filter(|&d| after[d] != before[d])
                .collect();
            assert_eq!(moved.len(), 1, "frame of flow {flow} went out {moved:?}");
            let member = moved[0];
            assert!(
                mask & (1 << member) != 0,
                "flow {flow} left on member {member}, not distributing (mask {mask:#b})"
            );
            used |= 1 << member;
        }
        used
    }

    fn run_until(&mut self, limit_ms: i64, mut done: impl FnMut(&World) -> bool) -> bool {
        for _ in 0..limit_ms / TICK_MS {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }

    fn all_distributing(&self) -> bool {
        (0..2).all(|i| self.a.report(i).unwrap().distributing)
            && (0..2).all(|i| self.b.report(i).unwrap().distributing)
    }
}

fn aggr(
    plant: &Arc<Mutex<Plant>>,
    clock: &Arc<AtomicI64>,
    mac: [u8; 6],
    key: u16,
    ids: &[usize],
) -> Aggr<PlantDev> {
    let mut config = Config::new(EthernetAddress(mac));
    config.key = key;
    config.mode = Mode::Active;
    config.rate = Rate::Fast;
    config.policy = HashPolicy::L4;
    let members = ids
        .iter()
        .enumerate()
        .map(|(k, &id)| {
            let dev = PlantDev {
                plant: plant.clone(),
                id,
                mac,
                queued: Vec::new(),
            };
            let mut port_mac = mac;
            port_mac[5] = 1 + k as u8;
            (dev, port_mac)
        })
        .collect();
    let clock = clock.clone();
    Aggr::new(
        members,
        config,
        Box::new(move || Instant::from_millis(clock.load(Ordering::Relaxed))),
    )
    .unwrap_or_else(|(_, e)| panic!("Aggr::new: {e}"))
}

/// An Ethernet + IPv4 + UDP frame of flow `flow`, written by hand.
fn udp_frame(flow: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0x08, 0x00]);
    // IPv4: version/IHL, TOS, total length 28 + 18, id, flags/offset,
    // TTL, protocol 17, checksum (unchecked here), addresses.
    f.extend_from_slice(&[0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&(40_000 + flow).to_be_bytes());
    f.extend_from_slice(&5201u16.to_be_bytes());
    f.extend_from_slice(&[0, 26, 0, 0]);
    f.extend_from_slice(&[0x5a; 18]);
    f
}

/// A deterministic byte source.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Each link's schedule: ticks left in its current state.
struct Link {
    left: u64,
    up: bool,
}

/// Flaps both links for `steps` steps, independently: each stays down
/// or up for 1 to 4 ticks; one spell (up or down) in thirty holds for
/// [`STABLE_TICKS`] and a little more. Returns the link changes made.
fn flap(w: &mut World, rng: &mut XorShift, steps: usize) -> [u64; 2] {
    let mut links = [Link { left: 0, up: true }, Link { left: 0, up: true }];
    let mut changes = [0; 2];
    for _ in 0..steps {
        for (i, l) in links.iter_mut().enumerate() {
            if l.left == 0 {
                let r = rng.next();
                l.up = !l.up;
                l.left = if r.is_multiple_of(30) {
                    u64::from(STABLE_TICKS) + 20 + (r >> 8) % 100
                } else {
                    1 + (r >> 8) % 4
                };
                w.cable(i, l.up);
                changes[i] += 1;
            }
            l.left -= 1;
        }
        w.step();
    }
    changes
}

#[test]
fn both_members_flapping_fast() {
    let mut w = World::new();
    assert!(
        w.run_until(10_000, World::all_distributing),
        "A and B aggregate both links"
    );
    let before: Vec<u64> = (0..2)
        .map(|i| w.a.report(i).unwrap().lacp.unwrap().link_changes)
        .collect();
    // CXOS_FLAP_SEED=<n> replays another schedule.
    let seed = std::env::var("CXOS_FLAP_SEED").map_or(0x19_b0_7a_11, |s| s.parse().unwrap());
    let mut rng = XorShift(seed);
    let changes = flap(&mut w, &mut rng, 20_000);
    for i in 0..2 {
        let l = w.a.report(i).unwrap().lacp.unwrap();
        assert!(
            l.link_changes - before[i] == changes[i] && l.bad_pdus == 0,
            "member {i}: {} changes made, {l:?}",
            changes[i]
        );
        assert!(
            changes[i] > 400,
            "member {i} flapped only {} times",
            changes[i]
        );
    }
    // Both regimes were reached: no member at all, and a stable link serving.
    assert!(w.refused > 0, "never without a member");
    assert!(
        w.served_stable > 500,
        "served on a stable link {} steps",
        w.served_stable
    );

    // Both cables back for good: both members rejoin.
    w.cable(0, true);
    w.cable(1, true);
    assert!(
        w.run_until(5_000, World::all_distributing),
        "both members rejoin once their links hold"
    );
}
