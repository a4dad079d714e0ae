//! A link aggregation as one [`NetDevice`] over member ports (issue 19):
//! the stack above sees one MAC and one link; [`Lacp`] decides which
//! members carry traffic. Every member device is created with the
//! aggregation's MAC (one address programmed on every member's vport and
//! steering) and joins the Slow Protocols group (01:80:C2:00:00:02) so
//! LACPDUs reach the driver.
//!
//! Transmit: the hash policy needs the frame's headers before a member is
//! chosen, but the stack writes the frame only inside the transmit call,
//! into the buffer of the device it was given. Two ways out: a flow key
//! passed down by the stack (smoltcp's `phy::TxToken` carries none, so
//! it would mean parsing in the stack instead, and every app's raw
//! frames would need one too), or writing the frame into a staging
//! buffer, hashing it there, then copying it into the chosen member's
//! send queue. The second is taken: it is correct for every frame
//! whoever wrote it (ARP, LACP-unaware apps, L2 test frames), the hash
//! reads headers already in cache, and the copy is one `memcpy` of at
//! most one frame (an LSO frame: up to the device's `lso_max`) into a
//! buffer the driver would otherwise have had the stack write directly.
//! The staging buffer is allocated once and grows to the largest frame.
//!
//! A member carries transmit only while LACP has it Collecting_Distributing
//! (or, without LACP, while its link is up); a link down (the member's
//! `link()`, i.e. PORT_CHANGE), an LACP timeout or a partner change takes
//! it out at the next poll. Received frames are taken from every member in
//! turn; a member's client frames are delivered only while it is
//! collecting, LACP's own frames never reach the stack.

mod members;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use core::time::Duration as CoreDuration;

use cxos_drivers::{
    FilterError, LinkState, NetDevice, NetStats, Offloads, RxMeta, TxError, TxMeta,
};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

use crate::lacp::{self, HashPolicy, Lacp, PortId, PortReport};
use members::{Members, forward_to_members};

/// The Slow Protocols multicast address (IEEE 802.3 annex 57A).
pub const SLOW_PROTOCOLS_MAC: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x02];

/// The clock the LACP machines run on (the stack's).
pub type Clock = Box<dyn Fn() -> Instant + Send>;

/// Per-member counters of the aggregation's own traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounters {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Client frames received while the member was not collecting.
    pub rx_not_collecting: u64,
    /// LACP frames that could not be sent (no room on the member).
    pub lacp_tx_dropped: u64,
    /// Slow Protocols frames (LACPDUs, Markers) sent and received: not in
    /// the client counters above.
    pub lacp_tx_frames: u64,
    pub lacp_rx_frames: u64,
}

/// What the aggregation keeps per member besides its device. Member `i`
/// is LACP's port `PortId(i)`.
#[derive(Default)]
struct MemberState {
    link: LinkState,
    counters: MemberCounters,
}

/// A member's state for `aggr show`.
#[derive(Debug, Clone, Copy)]
pub struct MemberReport {
    pub link: LinkState,
    pub distributing: bool,
    pub counters: MemberCounters,
    pub lacp: Option<PortReport>,
}

/// What [`Aggr::new`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggrError {
    /// No members, or more than [`lacp::MAX_PORTS`].
    Members(usize),
    /// A member does not carry the aggregation's MAC.
    MacMismatch,
    /// A member cannot join the Slow Protocols group.
    Filter(FilterError),
}

impl core::fmt::Display for AggrError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AggrError::Members(n) => write!(f, "{n} members (1 to {} allowed)", lacp::MAX_PORTS),
            AggrError::MacMismatch => f.write_str("members must carry the aggregation's MAC"),
            AggrError::Filter(e) => write!(f, "cannot receive LACPDUs: {e:?}"),
        }
    }
}

/// What an aggregation's clients (VNICs on it, [`AggrVnic`]) read of its
/// state after each of its polls: which members carry transmit, which
/// deliver what they receive, and the hash policy. Bit `i` is member `i`.
#[derive(Debug)]
pub struct AggrState {
    distributing: AtomicU8,
    collecting: AtomicU8,
    /// Sum of the distributing members' speeds (Mb/s).
    speed_mbps: AtomicU32,
    policy: HashPolicy,
}

impl AggrState {
    fn mask(a: &AtomicU8) -> u8 {
        a.load(Ordering::Acquire)
    }

    /// The member (index) that carries `frame`: the policy's hash over the
    /// distributing members in member order, as [`Lacp::tx_port`] picks.
    pub fn member_for(&self, frame: &[u8]) -> Option<usize> {
        let mask = Self::mask(&self.distributing);
        let n = mask.count_ones() as usize;
        if n == 0 {
            return None;
        }
        let k = self.policy.hash(frame) as usize % n;
        (0..8).filter(|i| mask & (1 << i) != 0).nth(k)
    }

    pub fn is_collecting(&self, member: usize) -> bool {
        member < 8 && Self::mask(&self.collecting) & (1 << member) != 0
    }

    pub fn is_distributing(&self, member: usize) -> bool {
        member < 8 && Self::mask(&self.distributing) & (1 << member) != 0
    }
}

/// A link aggregation over member devices of type `D`.
pub struct Aggr<D: NetDevice> {
    members: Members<D>,
    state_of: Vec<MemberState>,
    lacp: Lacp,
    state: Arc<AggrState>,
    mac: [u8; 6],
    clock: Clock,
}

impl<D: NetDevice> core::fmt::Debug for Aggr<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Aggr")
            .field("mac", &self.mac)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

fn port(i: usize) -> PortId {
    // Members are at most lacp::MAX_PORTS.
    PortId(i as u8)
}

impl<D: NetDevice> Aggr<D> {
    /// An aggregation of `members` (each created with the aggregation's
    /// MAC, `config.system.mac`), whose individual MACs (the sources of
    /// their LACPDUs) are `port_macs`, in the same order. On error the
    /// members are handed back.
    pub fn new(
        members: Vec<(D, [u8; 6])>,
        config: lacp::Config,
        clock: Clock,
    ) -> Result<Aggr<D>, (Vec<D>, AggrError)> {
        let back = |m: Vec<(D, [u8; 6])>, e| (m.into_iter().map(|(d, _)| d).collect(), e);
        if members.is_empty() || members.len() > lacp::MAX_PORTS {
            let n = members.len();
            return Err(back(members, AggrError::Members(n)));
        }
        let mac = config.system.mac.0;
        if members.iter().any(|(d, _)| d.mac() != mac) {
            return Err(back(members, AggrError::MacMismatch));
        }
        let mut lacp = Lacp::new(config);
        let mut members = members;
        for (d, _) in members.iter_mut() {
            if config.mode != lacp::Mode::Static
                && let Err(e) = d.add_multicast(SLOW_PROTOCOLS_MAC)
            {
                return Err(back(members, AggrError::Filter(e)));
            }
        }
        let mut devs = Vec::with_capacity(members.len());
        let mut state_of = Vec::with_capacity(members.len());
        for (dev, port_mac) in members {
            // MAX_PORTS was checked above: never too many, and port
            // numbers follow member order.
            let _ = lacp.add_port(EthernetAddress(port_mac));
            devs.push(dev);
            state_of.push(MemberState::default());
        }
        let state = Arc::new(AggrState {
            distributing: AtomicU8::new(0),
            collecting: AtomicU8::new(0),
            speed_mbps: AtomicU32::new(0),
            policy: config.policy,
        });
        let mut aggr = Aggr {
            members: Members::new(devs),
            state_of,
            lacp,
            state,
            mac,
            clock,
        };
        aggr.run_lacp();
        Ok(aggr)
    }

    /// What VNICs on this aggregation follow ([`AggrVnic`]).
    pub fn state(&self) -> Arc<AggrState> {
        self.state.clone()
    }

    /// The members back (the aggregation deleted): they leave the Slow
    /// Protocols group; VNICs on it see their link go down.
    pub fn into_members(self) -> Vec<D> {
        self.state.distributing.store(0, Ordering::Release);
        self.state.collecting.store(0, Ordering::Release);
        let static_mode = self.lacp.config().mode == lacp::Mode::Static;
        let mut devs = self.members.into_inner();
        if !static_mode {
            for d in devs.iter_mut() {
                let _ = d.remove_multicast(SLOW_PROTOCOLS_MAC);
            }
        }
        devs
    }

    pub fn lacp(&self) -> &Lacp {
        &self.lacp
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn member(&self, i: usize) -> Option<&D> {
        self.members.get(i)
    }

    pub fn member_mut(&mut self, i: usize) -> Option<&mut D> {
        self.members.get_mut(i)
    }

    /// Member `i`'s link, LACP state and counters.
    pub fn report(&self, i: usize) -> Option<MemberReport> {
        let m = self.state_of.get(i)?;
        Some(MemberReport {
            link: m.link,
            distributing: self.lacp.distributing_ports().contains(&port(i)),
            counters: m.counters,
            lacp: self.lacp.report(port(i)),
        })
    }

    /// Members' links into LACP, LACP's machines run, its frames sent.
    fn run_lacp(&mut self) {
        for (i, (dev, m)) in self
            .members
            .iter()
            .zip(self.state_of.iter_mut())
            .enumerate()
        {
            let link = dev.link();
            if link != m.link {
                m.link = link;
                self.lacp.on_link(port(i), link.up, link.speed_mbps);
            }
        }
        let now = (self.clock)();
        let sent = self.lacp.poll(now);
        let (mut dist, mut coll, mut speed) = (0u8, 0u8, 0u32);
        let ports = self.lacp.distributing_ports();
        for (i, m) in self.state_of.iter().enumerate() {
            if ports.contains(&port(i)) {
                dist |= 1 << i;
                speed = speed.saturating_add(m.link.speed_mbps);
            }
            if self.lacp.is_collecting(port(i)) {
                coll |= 1 << i;
            }
        }
        self.state.distributing.store(dist, Ordering::Release);
        self.state.collecting.store(coll, Ordering::Release);
        self.state.speed_mbps.store(speed, Ordering::Release);
        for frame in sent {
            let i = usize::from(frame.port.0);
            let (Some(dev), Some(m)) = (self.members.get_mut(i), self.state_of.get_mut(i)) else {
                continue;
            };
            let bytes = frame.frame();
            if dev
                .transmit(bytes.len(), |b| b.copy_from_slice(bytes))
                .is_ok()
            {
                m.counters.lacp_tx_frames += 1;
                dev.flush();
            } else {
                m.counters.lacp_tx_dropped += 1;
            }
        }
    }

    /// Sends on the member the hash policy picks among the distributing
    /// ones.
    fn send_staged<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        let lacp = &self.lacp;
        let (r, i) = self.members.send_staged(len, f, |frame| {
            lacp.tx_port(frame).map(|p| usize::from(p.0))
        })?;
        let m = &mut self.state_of[i];
        m.counters.tx_frames += 1;
        m.counters.tx_bytes += len as u64;
        Ok(r)
    }
}

impl<D: NetDevice> NetDevice for Aggr<D> {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Up while any member distributes; the speed is the sum of theirs.
    fn link(&self) -> LinkState {
        let ports = self.lacp.distributing_ports();
        let speed = self
            .state_of
            .iter()
            .enumerate()
            .filter(|(i, _)| ports.contains(&port(*i)))
            .map(|(_, m)| m.link.speed_mbps)
            .fold(0u32, u32::saturating_add);
        LinkState {
            up: !ports.is_empty(),
            speed_mbps: speed,
        }
    }

    fn poll(&mut self) -> usize {
        let n = self.members.poll();
        self.run_lacp();
        n
    }

    /// Client frames of collecting members; LACP keeps its own frames.
    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let (lacp, state_of) = (&mut self.lacp, &mut self.state_of);
        self.members.receive(f, |i, frame| {
            let id = port(i);
            if lacp.on_rx(id, frame) {
                if let Some(m) = state_of.get_mut(i) {
                    m.counters.lacp_rx_frames += 1;
                }
                return false;
            }
            let Some(m) = state_of.get_mut(i) else {
                return false;
            };
            if !lacp.is_collecting(id) {
                m.counters.rx_not_collecting += 1;
                return false;
            }
            m.counters.rx_frames += 1;
            m.counters.rx_bytes += frame.len() as u64;
            true
        })
    }

    fn tx_free(&self) -> usize {
        let ports = self.lacp.distributing_ports();
        self.members.tx_free(|i| ports.contains(&port(i)))
    }

    fn poll_within(&self) -> Option<CoreDuration> {
        let at = self.lacp.poll_at()?;
        let us = at.total_micros() - (self.clock)().total_micros();
        Some(CoreDuration::from_micros(us.max(0) as u64))
    }

    forward_to_members!();
}

/// A VNIC on an aggregation: one device per member (the same MAC and VLAN
/// on every member's steering) and its own stack above; it follows the
/// aggregation's [`AggrState`]: transmit hashed onto the distributing
/// members (staged like the aggregation's own, see the module docs),
/// receive delivered from the collecting ones. The aggregation's LACP
/// runs in [`Aggr`]; a VNIC only reads its outcome.
pub struct AggrVnic<D: NetDevice> {
    members: Members<D>,
    state: Arc<AggrState>,
}

impl<D: NetDevice> core::fmt::Debug for AggrVnic<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AggrVnic")
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl<D: NetDevice> AggrVnic<D> {
    /// A VNIC over `members` (in the aggregation's member order, each with
    /// the VNIC's MAC) following `state`.
    pub fn new(members: Vec<D>, state: Arc<AggrState>) -> Result<AggrVnic<D>, (Vec<D>, AggrError)> {
        if members.is_empty() || members.len() > lacp::MAX_PORTS {
            let n = members.len();
            return Err((members, AggrError::Members(n)));
        }
        let mac = members[0].mac();
        if members.iter().any(|d| d.mac() != mac) {
            return Err((members, AggrError::MacMismatch));
        }
        Ok(AggrVnic {
            members: Members::new(members),
            state,
        })
    }

    pub fn into_members(self) -> Vec<D> {
        self.members.into_inner()
    }

    pub fn member(&self, i: usize) -> Option<&D> {
        self.members.get(i)
    }

    pub fn member_mut(&mut self, i: usize) -> Option<&mut D> {
        self.members.get_mut(i)
    }

    fn send_staged<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        let state = &self.state;
        let (r, _) = self
            .members
            .send_staged(len, f, |frame| state.member_for(frame))?;
        Ok(r)
    }
}

impl<D: NetDevice> NetDevice for AggrVnic<D> {
    fn mac(&self) -> [u8; 6] {
        // new() refuses an empty member list.
        self.members.get(0).map_or([0; 6], |d| d.mac())
    }

    fn link(&self) -> LinkState {
        let up = (0..self.members.len()).any(|i| self.state.is_distributing(i));
        LinkState {
            up,
            speed_mbps: if up {
                self.state.speed_mbps.load(Ordering::Acquire)
            } else {
                0
            },
        }
    }

    fn poll(&mut self) -> usize {
        self.members.poll()
    }

    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let state = &self.state;
        self.members.receive(f, |i, _| state.is_collecting(i))
    }

    fn tx_free(&self) -> usize {
        self.members.tx_free(|i| self.state.is_distributing(i))
    }

    forward_to_members!();
}
