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

/// The Slow Protocols multicast address (IEEE 802.3 annex 57A).
pub const SLOW_PROTOCOLS_MAC: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x02];

/// Frames LACP keeps (or a non-collecting member drops) in one
/// [`NetDevice::receive`] call before it gives up for this call: bounded
/// work whatever the wire sends.
const RX_SKIP_BUDGET: usize = 64;

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

struct Member<D> {
    dev: D,
    id: PortId,
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
    members: Vec<Member<D>>,
    lacp: Lacp,
    state: Arc<AggrState>,
    mac: [u8; 6],
    clock: Clock,
    /// The member the next receive starts at (members take turns).
    rx_next: usize,
    stage: Vec<u8>,
}

impl<D: NetDevice> core::fmt::Debug for Aggr<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Aggr")
            .field("mac", &self.mac)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
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
        let mut list = Vec::with_capacity(members.len());
        let mut members = members;
        for (d, _) in members.iter_mut() {
            if config.mode != lacp::Mode::Static
                && let Err(e) = d.add_multicast(SLOW_PROTOCOLS_MAC)
            {
                return Err(back(members, AggrError::Filter(e)));
            }
        }
        for (dev, port_mac) in members {
            // MAX_PORTS was checked above: never too many.
            let id = lacp
                .add_port(EthernetAddress(port_mac))
                .unwrap_or(PortId(0));
            list.push(Member {
                dev,
                id,
                link: LinkState::default(),
                counters: MemberCounters::default(),
            });
        }
        let state = Arc::new(AggrState {
            distributing: AtomicU8::new(0),
            collecting: AtomicU8::new(0),
            speed_mbps: AtomicU32::new(0),
            policy: config.policy,
        });
        let mut aggr = Aggr {
            members: list,
            lacp,
            state,
            mac,
            clock,
            rx_next: 0,
            stage: Vec::new(),
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
        self.members
            .into_iter()
            .map(|mut m| {
                if !static_mode {
                    let _ = m.dev.remove_multicast(SLOW_PROTOCOLS_MAC);
                }
                m.dev
            })
            .collect()
    }

    pub fn lacp(&self) -> &Lacp {
        &self.lacp
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn member(&self, i: usize) -> Option<&D> {
        self.members.get(i).map(|m| &m.dev)
    }

    pub fn member_mut(&mut self, i: usize) -> Option<&mut D> {
        self.members.get_mut(i).map(|m| &mut m.dev)
    }

    /// Member `i`'s link, LACP state and counters.
    pub fn report(&self, i: usize) -> Option<MemberReport> {
        let m = self.members.get(i)?;
        Some(MemberReport {
            link: m.link,
            distributing: self.lacp.distributing_ports().contains(&m.id),
            counters: m.counters,
            lacp: self.lacp.report(m.id),
        })
    }

    /// Members' links into LACP, LACP's machines run, its frames sent.
    fn run_lacp(&mut self) {
        for m in self.members.iter_mut() {
            let link = m.dev.link();
            if link != m.link {
                m.link = link;
                self.lacp.on_link(m.id, link.up, link.speed_mbps);
            }
        }
        let now = (self.clock)();
        let sent = self.lacp.poll(now);
        let (mut dist, mut coll, mut speed) = (0u8, 0u8, 0u32);
        let ports = self.lacp.distributing_ports();
        for (i, m) in self.members.iter().enumerate() {
            if ports.contains(&m.id) {
                dist |= 1 << i;
                speed = speed.saturating_add(m.link.speed_mbps);
            }
            if self.lacp.is_collecting(m.id) {
                coll |= 1 << i;
            }
        }
        self.state.distributing.store(dist, Ordering::Release);
        self.state.collecting.store(coll, Ordering::Release);
        self.state.speed_mbps.store(speed, Ordering::Release);
        for frame in sent {
            let Some(m) = self.members.iter_mut().find(|m| m.id == frame.port) else {
                continue;
            };
            let bytes = frame.frame();
            let sent = m
                .dev
                .transmit(bytes.len(), |b| b.copy_from_slice(bytes))
                .is_ok();
            if sent {
                m.counters.lacp_tx_frames += 1;
                m.dev.flush();
            } else {
                m.counters.lacp_tx_dropped += 1;
            }
        }
    }

    /// The member that carries `frame` (hash policy over the distributing
    /// members).
    fn member_for(&self, frame: &[u8]) -> Option<usize> {
        let port = self.lacp.tx_port(frame)?;
        self.members.iter().position(|m| m.id == port)
    }

    /// Stages `len` bytes written by `f`, then sends them on the member
    /// the hash picks, with `meta` (asked for before or after writing).
    fn send_staged<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        // Frame and headers of the largest LSO frame, at most.
        let max = self.mtu() + 64 + self.offloads().lso_max as usize;
        if len == 0 || len > max {
            return Err(TxError::BadLength(len));
        }
        if self.stage.len() < len {
            self.stage.resize(len, 0);
        }
        let (r, meta) = f(&mut self.stage[..len]);
        let frame = &self.stage[..len];
        let Some(i) = self.member_for(frame) else {
            return Err(TxError::Down);
        };
        let m = &mut self.members[i];
        m.dev
            .transmit_with(len, meta, |b| b.copy_from_slice(frame))?;
        m.counters.tx_frames += 1;
        m.counters.tx_bytes += len as u64;
        Ok(r)
    }
}

/// What one member's receive call found.
enum Rx<R> {
    Client(R),
    Skipped,
}

impl<D: NetDevice> NetDevice for Aggr<D> {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.dev.mtu())
            .min()
            .unwrap_or(1500)
    }

    /// Up while any member distributes; the speed is the sum of theirs.
    fn link(&self) -> LinkState {
        let ports = self.lacp.distributing_ports();
        let speed = self
            .members
            .iter()
            .filter(|m| ports.contains(&m.id))
            .map(|m| m.link.speed_mbps)
            .fold(0u32, u32::saturating_add);
        LinkState {
            up: !ports.is_empty(),
            speed_mbps: speed,
        }
    }

    /// What every member offers.
    fn offloads(&self) -> Offloads {
        let mut it = self.members.iter().map(|m| m.dev.offloads());
        let Some(first) = it.next() else {
            return Offloads::default();
        };
        it.fold(first, |a, b| Offloads {
            tx_ipv4_csum: a.tx_ipv4_csum && b.tx_ipv4_csum,
            tx_l4_csum: a.tx_l4_csum && b.tx_l4_csum,
            rx_csum: a.rx_csum && b.rx_csum,
            lso_max: a.lso_max.min(b.lso_max),
            vlan_insert: a.vlan_insert && b.vlan_insert,
            vlan_strip: a.vlan_strip && b.vlan_strip,
        })
    }

    fn poll(&mut self) -> usize {
        let n: usize = self.members.iter_mut().map(|m| m.dev.poll()).sum();
        self.run_lacp();
        n
    }

    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let count = self.members.len();
        let mut f = Some(f);
        let mut skipped = 0;
        for k in 0..count {
            let i = (self.rx_next + k) % count;
            loop {
                let m = &mut self.members[i];
                let (id, lacp, counters) = (m.id, &mut self.lacp, &mut m.counters);
                let got = m.dev.receive(|frame, meta| {
                    if lacp.on_rx(id, frame) {
                        counters.lacp_rx_frames += 1;
                        return Rx::Skipped;
                    }
                    if !lacp.is_collecting(id) {
                        counters.rx_not_collecting += 1;
                        return Rx::Skipped;
                    }
                    counters.rx_frames += 1;
                    counters.rx_bytes += frame.len() as u64;
                    match f.take() {
                        Some(f) => Rx::Client(f(frame, meta)),
                        None => Rx::Skipped,
                    }
                });
                match got {
                    None => break,
                    Some(Rx::Client(r)) => {
                        self.rx_next = (i + 1) % count;
                        return Some(r);
                    }
                    Some(Rx::Skipped) => {
                        skipped += 1;
                        if skipped >= RX_SKIP_BUDGET {
                            return None;
                        }
                    }
                }
            }
        }
        None
    }

    /// Room for one more frame on every distributing member (the hash may
    /// pick any of them).
    fn tx_free(&self) -> usize {
        let ports = self.lacp.distributing_ports();
        self.members
            .iter()
            .filter(|m| ports.contains(&m.id))
            .map(|m| m.dev.tx_free())
            .min()
            .unwrap_or(0)
    }

    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxError> {
        self.send_staged(len, |b| (f(b), TxMeta::default()))
    }

    fn transmit_with<R>(
        &mut self,
        len: usize,
        meta: TxMeta,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        self.send_staged(len, |b| (f(b), meta))
    }

    fn transmit_then<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        self.send_staged(len, f)
    }

    fn flush(&mut self) {
        for m in self.members.iter_mut() {
            m.dev.flush();
        }
    }

    fn stats(&self) -> NetStats {
        let mut s = NetStats::default();
        for m in &self.members {
            let t = m.dev.stats();
            s.tx_packets += t.tx_packets;
            s.tx_bytes += t.tx_bytes;
            s.rx_packets += t.rx_packets;
            s.rx_bytes += t.rx_bytes;
            s.rx_no_buffer += t.rx_no_buffer;
            s.errors += t.errors;
            s.recoveries += t.recoveries;
        }
        s
    }

    fn add_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        self.members
            .iter_mut()
            .try_for_each(|m| m.dev.add_multicast(mac))
    }

    fn remove_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        self.members
            .iter_mut()
            .try_for_each(|m| m.dev.remove_multicast(mac))
    }

    fn set_promiscuous(&mut self, on: bool) -> Result<(), FilterError> {
        self.members
            .iter_mut()
            .try_for_each(|m| m.dev.set_promiscuous(on))
    }

    fn set_all_multicast(&mut self, on: bool) -> Result<(), FilterError> {
        self.members
            .iter_mut()
            .try_for_each(|m| m.dev.set_all_multicast(on))
    }

    fn poll_within(&self) -> Option<CoreDuration> {
        let at = self.lacp.poll_at()?;
        let us = at.total_micros() - (self.clock)().total_micros();
        Some(CoreDuration::from_micros(us.max(0) as u64))
    }
}

/// A VNIC on an aggregation: one device per member (the same MAC and VLAN
/// on every member's steering) and its own stack above; it follows the
/// aggregation's [`AggrState`]: transmit hashed onto the distributing
/// members (staged like the aggregation's own, see the module docs),
/// receive delivered from the collecting ones. The aggregation's LACP
/// runs in [`Aggr`]; a VNIC only reads its outcome.
pub struct AggrVnic<D: NetDevice> {
    members: Vec<D>,
    state: Arc<AggrState>,
    rx_next: usize,
    stage: Vec<u8>,
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
            members,
            state,
            rx_next: 0,
            stage: Vec::new(),
        })
    }

    pub fn into_members(self) -> Vec<D> {
        self.members
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
        let max = self.mtu() + 64 + self.offloads().lso_max as usize;
        if len == 0 || len > max {
            return Err(TxError::BadLength(len));
        }
        if self.stage.len() < len {
            self.stage.resize(len, 0);
        }
        let (r, meta) = f(&mut self.stage[..len]);
        let frame = &self.stage[..len];
        let i = self
            .state
            .member_for(frame)
            .filter(|&i| i < self.members.len())
            .ok_or(TxError::Down)?;
        self.members[i].transmit_with(len, meta, |b| b.copy_from_slice(frame))?;
        Ok(r)
    }
}

impl<D: NetDevice> NetDevice for AggrVnic<D> {
    fn mac(&self) -> [u8; 6] {
        self.members[0].mac()
    }

    fn mtu(&self) -> usize {
        self.members.iter().map(|m| m.mtu()).min().unwrap_or(1500)
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

    fn offloads(&self) -> Offloads {
        let mut it = self.members.iter().map(|m| m.offloads());
        let Some(first) = it.next() else {
            return Offloads::default();
        };
        it.fold(first, |a, b| Offloads {
            tx_ipv4_csum: a.tx_ipv4_csum && b.tx_ipv4_csum,
            tx_l4_csum: a.tx_l4_csum && b.tx_l4_csum,
            rx_csum: a.rx_csum && b.rx_csum,
            lso_max: a.lso_max.min(b.lso_max),
            vlan_insert: a.vlan_insert && b.vlan_insert,
            vlan_strip: a.vlan_strip && b.vlan_strip,
        })
    }

    fn poll(&mut self) -> usize {
        self.members.iter_mut().map(|m| m.poll()).sum()
    }

    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let count = self.members.len();
        let mut f = Some(f);
        let mut skipped = 0;
        for k in 0..count {
            let i = (self.rx_next + k) % count;
            let collecting = self.state.is_collecting(i);
            loop {
                let got = self.members[i].receive(|frame, meta| {
                    if !collecting {
                        return Rx::Skipped;
                    }
                    match f.take() {
                        Some(f) => Rx::Client(f(frame, meta)),
                        None => Rx::Skipped,
                    }
                });
                match got {
                    None => break,
                    Some(Rx::Client(r)) => {
                        self.rx_next = (i + 1) % count;
                        return Some(r);
                    }
                    Some(Rx::Skipped) => {
                        skipped += 1;
                        if skipped >= RX_SKIP_BUDGET {
                            return None;
                        }
                    }
                }
            }
        }
        None
    }

    fn tx_free(&self) -> usize {
        (0..self.members.len())
            .filter(|&i| self.state.is_distributing(i))
            .map(|i| self.members[i].tx_free())
            .min()
            .unwrap_or(0)
    }

    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxError> {
        self.send_staged(len, |b| (f(b), TxMeta::default()))
    }

    fn transmit_with<R>(
        &mut self,
        len: usize,
        meta: TxMeta,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        self.send_staged(len, |b| (f(b), meta))
    }

    fn transmit_then<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        self.send_staged(len, f)
    }

    fn flush(&mut self) {
        for m in self.members.iter_mut() {
            m.flush();
        }
    }

    fn stats(&self) -> NetStats {
        let mut s = NetStats::default();
        for m in &self.members {
            let t = m.stats();
            s.tx_packets += t.tx_packets;
            s.tx_bytes += t.tx_bytes;
            s.rx_packets += t.rx_packets;
            s.rx_bytes += t.rx_bytes;
            s.rx_no_buffer += t.rx_no_buffer;
            s.errors += t.errors;
            s.recoveries += t.recoveries;
        }
        s
    }

    fn add_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        self.members
            .iter_mut()
            .try_for_each(|m| m.add_multicast(mac))
    }

    fn remove_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        self.members
            .iter_mut()
            .try_for_each(|m| m.remove_multicast(mac))
    }

    fn set_promiscuous(&mut self, on: bool) -> Result<(), FilterError> {
        self.members
            .iter_mut()
            .try_for_each(|m| m.set_promiscuous(on))
    }

    fn set_all_multicast(&mut self, on: bool) -> Result<(), FilterError> {
        self.members
            .iter_mut()
            .try_for_each(|m| m.set_all_multicast(on))
    }
}
