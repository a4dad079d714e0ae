//! An in-memory cable plant for the aggregation tests (`aggr_flap.rs`,
//! `aggr_flap_both.rs`): devices whose frames cross cables that go up
//! and down, aggregations of them on a simulated clock, hand-written
//! client frames and a deterministic byte source. No model, no driver.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use cxos_drivers::{FilterError, LinkState, NetDevice, NetStats, Offloads, RxMeta, TxError};
use cxos_net::aggr::{Aggr, SLOW_PROTOCOLS_MAC};
use cxos_net::lacp::{Config, HashPolicy, Mode, Rate};
use cxos_net::smoltcp::time::Instant;
use cxos_net::smoltcp::wire::EthernetAddress;

pub const TICK_MS: i64 = 10;
/// Frames a device's receive queue holds; more are dropped (a ring).
pub const RX_RING: usize = 64;

/// Marker PDUs kept per device.
pub const MARKER_LOG: usize = 4;

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0];
pub const A0: usize = 0;
pub const A1: usize = 1;
pub const B0: usize = 2;
pub const B1: usize = 3;

/// Devices, and cables between pairs of them.
#[derive(Default)]
pub struct Plant {
    pub rx: Vec<VecDeque<Vec<u8>>>,
    /// Client (non-Slow-Protocols) frames each device sent.
    pub client_tx: Vec<u64>,
    /// The last Marker PDUs each device sent.
    pub markers_tx: Vec<VecDeque<Vec<u8>>>,
    pub cables: Vec<([usize; 2], bool)>,
}

impl Plant {
    /// `devices` devices, joined by `cables` (ends, up).
    pub fn new(devices: usize, cables: Vec<([usize; 2], bool)>) -> Arc<Mutex<Plant>> {
        Arc::new(Mutex::new(Plant {
            rx: vec![VecDeque::with_capacity(RX_RING); devices],
            client_tx: vec![0; devices],
            markers_tx: vec![VecDeque::with_capacity(MARKER_LOG); devices],
            cables,
        }))
    }

    pub fn peer(&self, dev: usize) -> Option<usize> {
        self.cables.iter().find_map(|&(ends, up)| match ends {
            [a, b] if up && a == dev => Some(b),
            [a, b] if up && b == dev => Some(a),
            _ => None,
        })
    }
}

pub struct PlantDev {
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

/// The simulated clock every aggregation of a plant reads.
#[derive(Clone, Default)]
pub struct Clock(Arc<AtomicI64>);

impl Clock {
    /// One step: [`TICK_MS`] on.
    pub fn tick(&self) {
        self.0.fetch_add(TICK_MS, Ordering::Relaxed);
    }
}

/// An aggregation (active, fast rate, L4 hash) of the devices `ids`, all
/// with the system MAC `mac`; member k's port MAC ends in 1 + k.
pub fn aggr(
    plant: &Arc<Mutex<Plant>>,
    clock: &Clock,
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
    let clock = clock.0.clone();
    Aggr::new(
        members,
        config,
        Box::new(move || Instant::from_millis(clock.load(Ordering::Relaxed))),
    )
    .unwrap_or_else(|(_, e)| panic!("Aggr::new: {e}"))
}

/// Whether member `i` of `aggr` distributes, and if so that it does
/// with the partner `partner` in sync and its link up.
pub fn check_member(aggr: &Aggr<PlantDev>, i: usize, partner: [u8; 6]) -> bool {
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

/// Whether both members of `a` and of `b` distribute.
pub fn all_distributing(a: &Aggr<PlantDev>, b: &Aggr<PlantDev>) -> bool {
    (0..2).all(|i| a.report(i).unwrap().distributing)
        && (0..2).all(|i| b.report(i).unwrap().distributing)
}

/// A world of aggregations that moves on one tick a step.
pub trait Stepped {
    fn step(&mut self);

    /// Steps until `done` holds (true) or `limit_ms` has passed (false).
    fn run_until(&mut self, limit_ms: i64, mut done: impl FnMut(&Self) -> bool) -> bool
    where
        Self: Sized,
    {
        for _ in 0..limit_ms / TICK_MS {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }
}

/// An Ethernet + IPv4 + UDP frame of flow `flow`, written by hand.
pub fn udp_frame(flow: u16) -> Vec<u8> {
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
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
