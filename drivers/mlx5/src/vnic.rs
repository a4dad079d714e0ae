//! Hardware-steered VNICs: several network interfaces on one port, each a
//! MAC address (given, or generated locally administered), optionally on
//! a VLAN, with its own queues, each a [`NetDevice`] of its own (one
//! network stack each). The adapter, not software, decides which VNIC a
//! frame belongs to.
//!
//! - [`Nic`] is a cloneable handle to the shared part of the adapter (the
//!   command interface, UAR: any [`Control`]), the port's steering
//!   ([`Steering`]) and the VNIC registry behind one `spin::Mutex`
//!   (Send and Sync when the adapter is, so the kernel can keep VNICs in
//!   its statics). Only the control plane takes that lock (commands, flow
//!   rules, reports, queue recovery): no packet path does. Doorbells go
//!   through each queue's own MMIO handle, the clock and the DMA allocator
//!   are cloned handles, the link state is an atomic refreshed after every
//!   adapter call, and each completion EQ has its own small lock
//!   ([`CompEq`]). Calls do not nest: never call into a [`Nic`] or
//!   [`Vnic`] from inside [`Nic::with_adapter`] / [`Nic::with_steering`]
//!   (it would spin forever).
//! - [`Vnic`] is one VNIC: an [`QueueSet`] of its own (SQ, CQ and TIS, RQs
//!   and their CQs, Q counter, a TIR, or with several receive queues an RQT,
//!   indirect TIRs and a traffic-type table) over a [`NicCtl`] (the
//!   shared adapter seen through the handle), plus its flow rules: its
//!   (MAC, VLAN) unicast rule, broadcast on its VLAN, the multicast
//!   addresses its stack asked for. Untagged VNICs take only untagged
//!   frames ([`VlanMatch::Untagged`]), tagged ones only their VLAN
//!   ([`VlanMatch::Id`]), stripped on receive and inserted on transmit.
//!   Broadcast and shared multicast entries list every VNIC that should
//!   see them (the adapter replicates the frame); the vport's unicast list
//!   holds every VNIC MAC.
//! - A VNIC's receive path touches only its own CQs and RQs: the cost of a
//!   frame does not depend on how many VNICs there are. In interrupt mode
//!   a VNIC's `poll` drains the completion EQs its CQs report to into
//!   each EQ's pending list (under that EQ's lock) and takes only its own
//!   CQs' events, leaving the others for their VNICs.
//! - A promiscuous VNIC ([`NetDevice::set_promiscuous`]) also sees every
//!   frame the port receives, through a tap table in front of the MAC
//!   table ([`Steering::tap_join`]); the others keep receiving theirs.
//! - [`Vnic::destroy`] removes exactly the VNIC's flow entries and
//!   memberships, then its queues. A `Vnic` dropped without `destroy`
//!   keeps its rules and queues until the adapter is detached.
//! - Inspection: [`Nic::vnics_report`], [`Vnic::report_line`],
//!   [`Nic::flows_report`] (every entry as programmed next to what
//!   QUERY_FLOW_TABLE_ENTRY returns).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::str::FromStr;
use core::sync::atomic::{AtomicU64, Ordering};

use cxos_drivers::{
    FilterError, LinkState, NetDevice, NetStats, Offloads, Platform, Region, RxMeta, TxError,
    TxMeta,
};

use crate::cmd::{Command, Exec};
use crate::control::{Control, Resources};
use crate::cq::Cqn;
use crate::eq::{CompEq, Eqn};
use crate::error::{CmdError, Error, Missing};
use crate::flow::{BROADCAST, Destination, FlowError, FteView, QueryFte, TABLE_TYPE_NIC_RX};
use crate::flow_counter::Traffic;
use crate::queue_set::{CloseReport, EthConfig, OpenFailure, QueueSet};
use crate::steering::{DestList, Programmed, Steering, SteeringConfig, VlanMatch};
use crate::vport::Mac;
use spin::Mutex;

type Plat<C> = <C as Control>::P;

/// Settings of a [`Nic`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NicConfig {
    /// Template of every VNIC's queues (`rss_queues` and `vlan_strip` are
    /// set per VNIC; `flow_log_size` / `vlan_log_size` are unused: the
    /// steering comes from `steering`).
    pub eth: EthConfig,
    pub steering: SteeringConfig,
}

impl Default for NicConfig {
    fn default() -> Self {
        Self {
            eth: EthConfig {
                log_sq: 8,
                log_rq: 8,
                lso_bufs: 2,
                ..EthConfig::default()
            },
            steering: SteeringConfig {
                log_root: 8,
                log_vlan: 4,
            },
        }
    }
}

/// What a VNIC is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VnicSpec {
    /// None: a locally administered unicast MAC is generated.
    pub mac: Option<Mac>,
    /// 1..=4094: only frames tagged with it; None: only untagged frames.
    pub vlan: Option<u16>,
    /// Receive queues (a power of two, 1..=64); more than one: RSS.
    pub queues: u8,
}

impl Default for VnicSpec {
    fn default() -> Self {
        Self {
            mac: None,
            vlan: None,
            queues: 1,
        }
    }
}

/// Why a [`VnicSpec`] did not parse.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SpecError {
    BadMac(String),
    BadVlan(String),
    BadQueues(String),
    UnknownKey(String),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::BadMac(s) => write!(f, "bad MAC address '{s}'"),
            SpecError::BadVlan(s) => write!(f, "bad VLAN id '{s}' (1..=4094)"),
            SpecError::BadQueues(s) => write!(f, "bad queue count '{s}' (1, 2, 4 .. 64)"),
            SpecError::UnknownKey(s) => write!(f, "unknown VNIC setting '{s}'"),
        }
    }
}

fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in m.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(Mac(m))
}

impl FromStr for VnicSpec {
    type Err = SpecError;
    /// `mac:02:00:00:00:00:01,vlan:10,queues:2`: each optional, any order
    /// (`=` works as well as `:` after the key).
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut spec = VnicSpec::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = match item.find([':', '=']) {
                Some(i) => (&item[..i], &item[i + 1..]),
                None => (item, ""),
            };
            match key {
                "mac" => {
                    spec.mac = Some(parse_mac(value).ok_or(SpecError::BadMac(value.into()))?);
                }
                "vlan" => {
                    let v: u16 = value
                        .parse()
                        .map_err(|_| SpecError::BadVlan(value.into()))?;
                    if !(1..=4094).contains(&v) {
                        return Err(SpecError::BadVlan(value.into()));
                    }
                    spec.vlan = Some(v);
                }
                "queues" => {
                    let q: u8 = value
                        .parse()
                        .map_err(|_| SpecError::BadQueues(value.into()))?;
                    if !valid_queues(q) {
                        return Err(SpecError::BadQueues(value.into()));
                    }
                    spec.queues = q;
                }
                _ => return Err(SpecError::UnknownKey(item.into())),
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for VnicSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(m) = self.mac {
            write!(f, "mac:{m}")?;
            sep = ",";
        }
        if let Some(v) = self.vlan {
            write!(f, "{sep}vlan:{v}")?;
            sep = ",";
        }
        write!(f, "{sep}queues:{}", self.queues)
    }
}

fn valid_queues(q: u8) -> bool {
    (1..=64).contains(&q) && q.is_power_of_two()
}

/// A VNIC's number: counts up from 0, never reused while its [`Nic`]
/// lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct VnicId(pub u32);

impl fmt::Display for VnicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vnic{}", self.0)
    }
}

/// Why a VNIC was not created.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VnicError {
    /// Multicast or all-zero.
    BadMac(Mac),
    /// 0 or over 4094.
    BadVlan(u16),
    BadQueues(u8),
    /// Another VNIC has this (MAC, VLAN).
    InUse {
        mac: Mac,
        vlan: Option<u16>,
    },
    /// Its queues could not be created (everything undone).
    Open(Error),
    /// The steering refused its rules (everything undone).
    Flow(FlowError),
}

impl fmt::Display for VnicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VnicError::BadMac(m) => write!(f, "MAC {m} is not a unicast address"),
            VnicError::BadVlan(v) => write!(f, "VLAN {v} out of range (1..=4094)"),
            VnicError::BadQueues(q) => write!(f, "{q} receive queues: 1, 2, 4 .. 64"),
            VnicError::InUse { mac, vlan } => match vlan {
                Some(v) => write!(f, "{mac} on VLAN {v} is in use"),
                None => write!(f, "{mac} (untagged) is in use"),
            },
            VnicError::Open(e) => write!(f, "queues not created: {e}"),
            VnicError::Flow(e) => write!(f, "flow rules not installed: {e}"),
        }
    }
}

/// What the registry knows of one VNIC.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Registered {
    id: VnicId,
    mac: Mac,
    vlan: Option<u16>,
    queues: usize,
    dest: Destination,
    tir: u32,
    rqns: Vec<u32>,
    sqn: u32,
    cqs: Vec<Cqn>,
}

/// One VNIC as [`Nic::list`] and [`Vnic::info`] report it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VnicInfo {
    pub id: VnicId,
    pub mac: Mac,
    pub vlan: Option<u16>,
    pub queues: usize,
    pub rqns: Vec<u32>,
    pub tir: u32,
    pub sqn: u32,
    /// Where its unicast rule forwards (its TIR, or its traffic-type
    /// table with RSS).
    pub dest: Destination,
    /// Packet counters: 0 in [`Nic::list`] (they live in the [`Vnic`]).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

struct Inner<C: Control> {
    ctl: C,
    res: Resources,
    cfg: NicConfig,
    steering: Option<Steering>,
    vnics: Vec<Registered>,
    next_id: u32,
}

/// What every handle shares: the control plane behind the lock, and what
/// the packet paths need outside it.
struct Shared<C: Control> {
    inner: Mutex<Inner<C>>,
    /// The adapter's completion EQs, each with its own lock.
    eqs: Vec<Arc<CompEq<Plat<C>>>>,
    dma: <Plat<C> as Platform>::Dma,
    mmio: <Plat<C> as Platform>::Mmio,
    clock: <Plat<C> as Platform>::Clock,
    /// [`Control::link`] as of the last adapter call ([`link_word`]):
    /// `NetDevice::link` is asked on every poll.
    link: AtomicU64,
}

impl<C: Control> Shared<C> {
    /// Lock the control plane; the link state is refreshed when the guard
    /// goes (any adapter call may have re-read the port).
    fn lock(&self) -> ControlGuard<'_, C> {
        ControlGuard {
            guard: self.inner.lock(),
            link: &self.link,
        }
    }
}

struct ControlGuard<'a, C: Control> {
    guard: spin::MutexGuard<'a, Inner<C>>,
    link: &'a AtomicU64,
}

impl<C: Control> core::ops::Deref for ControlGuard<'_, C> {
    type Target = Inner<C>;
    fn deref(&self) -> &Inner<C> {
        &self.guard
    }
}

impl<C: Control> core::ops::DerefMut for ControlGuard<'_, C> {
    fn deref_mut(&mut self) -> &mut Inner<C> {
        &mut self.guard
    }
}

impl<C: Control> Drop for ControlGuard<'_, C> {
    fn drop(&mut self) {
        self.link
            .store(link_word(self.guard.ctl.link()), Ordering::Release);
    }
}

fn link_word(l: LinkState) -> u64 {
    ((l.up as u64) << 32) | l.speed_mbps as u64
}

fn link_state(w: u64) -> LinkState {
    LinkState {
        up: w >> 32 != 0,
        speed_mbps: w as u32,
    }
}

/// The shared part of an adapter with VNICs (see the module
/// documentation). Clones are handles to the same adapter.
pub struct Nic<C: Control> {
    shared: Arc<Shared<C>>,
}

impl<C: Control> Clone for Nic<C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<C: Control> fmt::Debug for Nic<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nic({} vnics)", self.count())
    }
}

/// A VNIC's view of the shared adapter: commands (under the adapter lock),
/// the platform handles and completion EQs (without it), and only its own
/// CQs' completion events.
pub struct NicCtl<C: Control> {
    nic: Arc<Shared<C>>,
    /// The VNIC's CQs (set once its queues exist).
    own: Vec<Cqn>,
}

impl<C: Control> fmt::Debug for NicCtl<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NicCtl({:?})", self.own)
    }
}

impl<C: Control> Exec for NicCtl<C> {
    fn exec<K: Command>(&mut self, cmd: &K) -> Result<K::Output, CmdError> {
        self.nic.lock().ctl.exec(cmd)
    }
}

impl<C: Control> Control for NicCtl<C> {
    type P = Plat<C>;
    fn dma(&self) -> &<Plat<C> as Platform>::Dma {
        &self.nic.dma
    }
    fn mmio(&self) -> &<Plat<C> as Platform>::Mmio {
        &self.nic.mmio
    }
    fn clock(&self) -> &<Plat<C> as Platform>::Clock {
        &self.nic.clock
    }
    fn poll_comp_eq(&mut self, index: usize, f: impl FnMut(Cqn)) -> usize {
        self.nic
            .eqs
            .get(index)
            .map_or(0, |eq| eq.poll_claim(&self.own, f))
    }
    fn shared_comp_eq(&self, index: usize) -> Option<Arc<CompEq<Plat<C>>>> {
        self.nic.eqs.get(index).cloned()
    }
    fn retire(&mut self, mem: Region<Plat<C>>) {
        self.nic.lock().ctl.retire(mem)
    }
    fn link(&self) -> LinkState {
        link_state(self.nic.link.load(Ordering::Acquire))
    }
    fn comp_eq_count(&self) -> usize {
        self.nic.eqs.len()
    }
    fn comp_eqn(&self, index: usize) -> Option<Eqn> {
        self.nic.eqs.get(index).map(|e| e.eqn)
    }
}

/// One entry of [`Nic::flows`]: as the driver programmed it and as the
/// adapter reports it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowCheck {
    pub programmed: Programmed,
    pub hw: Result<FteView, CmdError>,
}

impl FlowCheck {
    /// Whether the adapter holds what the driver programmed.
    pub fn matches(&self) -> bool {
        let p = &self.programmed;
        match &self.hw {
            Ok(h) => {
                h.group == p.group
                    && h.value == p.value
                    && h.dests == p.dests
                    && h.counters == p.counter.into_iter().collect::<Vec<_>>()
            }
            Err(_) => false,
        }
    }
}

impl<C: Control> Nic<C> {
    /// Take the adapter and create the port's steering (the root table;
    /// nothing is received until a VNIC exists).
    pub fn new(mut ctl: C, res: Resources, cfg: NicConfig) -> Result<Nic<C>, OpenFailure<C>> {
        let eqs: Vec<_> = (0..ctl.comp_eq_count())
            .map_while(|i| ctl.shared_comp_eq(i))
            .collect();
        if eqs.len() != ctl.comp_eq_count() {
            return Err(OpenFailure {
                error: Missing::SharedCompEq(eqs.len()).into(),
                control: ctl,
            });
        }
        let steering = match Steering::create(&mut ctl, cfg.steering) {
            Ok(s) => s,
            Err(e) => {
                return Err(OpenFailure {
                    error: e.into(),
                    control: ctl,
                });
            }
        };
        let (dma, mmio, clock) = (ctl.dma().clone(), ctl.mmio().clone(), ctl.clock().clone());
        let link = AtomicU64::new(link_word(ctl.link()));
        Ok(Nic {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    ctl,
                    res,
                    cfg,
                    steering: Some(steering),
                    vnics: Vec::new(),
                    next_id: 0,
                }),
                eqs,
                dma,
                mmio,
                clock,
                link,
            }),
        })
    }

    /// Run `f` on the adapter (EQ 0 service, health, reports).
    pub fn with_adapter<R>(&self, f: impl FnOnce(&mut C) -> R) -> R {
        f(&mut self.shared.lock().ctl)
    }

    /// Run `f` on the steering and the adapter (inspection, tests).
    pub fn with_steering<R>(&self, f: impl FnOnce(&mut Steering, &mut C) -> R) -> Option<R> {
        let mut g = self.shared.lock();
        let inner = &mut *g;
        let st = inner.steering.as_mut()?;
        Some(f(st, &mut inner.ctl))
    }

    /// The adapter's resources (port MAC, completion EQ, ...).
    pub fn resources(&self) -> Resources {
        self.shared.lock().res
    }

    /// Live VNICs.
    pub fn count(&self) -> usize {
        self.shared.lock().vnics.len()
    }

    /// A locally administered unicast MAC no VNIC uses, derived from the
    /// port's MAC (so two adapters generate different ones) and `id`.
    fn generate_mac(inner: &Inner<C>, id: u32) -> Mac {
        let p = inner.res.mac.0;
        let mut n = id;
        loop {
            let m = Mac([0x02, p[3], p[4], p[5], (n >> 8) as u8, n as u8 ^ 0x80]);
            if m != inner.res.mac && !inner.vnics.iter().any(|v| v.mac == m) {
                return m;
            }
            n = n.wrapping_add(1);
        }
    }

    /// Create a VNIC: its queues, its flow rules (unicast (MAC, VLAN) and
    /// broadcast on its VLAN), the vport's unicast list. On failure
    /// everything created is undone.
    pub fn create(&self, spec: VnicSpec) -> Result<Vnic<C>, VnicError> {
        if let Some(v) = spec.vlan
            && !(1..=4094).contains(&v)
        {
            return Err(VnicError::BadVlan(v));
        }
        if !valid_queues(spec.queues) {
            return Err(VnicError::BadQueues(spec.queues));
        }
        let (id, mac, res, cfg) = {
            let mut g = self.shared.lock();
            let id = g.next_id;
            let mac = match spec.mac {
                Some(m) => m,
                None => Self::generate_mac(&g, id),
            };
            if mac.0[0] & 1 != 0 || mac.0 == [0; 6] {
                return Err(VnicError::BadMac(mac));
            }
            if g.vnics.iter().any(|v| v.mac == mac && v.vlan == spec.vlan) {
                return Err(VnicError::InUse {
                    mac,
                    vlan: spec.vlan,
                });
            }
            g.next_id += 1;
            let mut res = g.res;
            res.mac = mac;
            let cfg = EthConfig {
                rss_queues: spec.queues,
                vlan_strip: spec.vlan.is_some(),
                ..g.cfg.eth
            };
            (VnicId(id), mac, res, cfg)
        };
        let ctl = NicCtl {
            nic: self.shared.clone(),
            own: Vec::new(),
        };
        let mut port = match QueueSet::open_queues(ctl, res, cfg) {
            Ok(p) => p,
            Err(f) => return Err(VnicError::Open(f.error)),
        };
        let mut cqs: Vec<Cqn> = port.tx_cq().map(|c| c.cqn).into_iter().collect();
        cqs.extend((0..port.rx_queues()).filter_map(|i| port.rx_cq_at(i).map(|c| c.cqn)));
        port.control_mut().own = cqs.clone();
        let Some(dest) = port.destination() else {
            let _ = port.close();
            return Err(VnicError::Open(Missing::Tir.into()));
        };
        let m = vlan_match(spec.vlan);
        let installed = self
            .with_steering(|st, ctl| {
                st.add_match(ctl, mac, m, dest)?;
                if let Err(e) = st.join(ctl, BROADCAST, m, dest) {
                    let _ = st.remove_match(ctl, mac, m);
                    return Err(e);
                }
                Ok(())
            })
            .unwrap_or(Err(FlowError::Unsupported));
        if let Err(e) = installed {
            let _ = port.close();
            return Err(VnicError::Flow(e));
        }
        let reg = Registered {
            id,
            mac,
            vlan: spec.vlan,
            queues: port.rx_queues(),
            dest,
            tir: port.tir().map_or(0, |t| t.0),
            rqns: (0..port.rx_queues())
                .filter_map(|i| port.rq_at(i).map(|r| r.rqn.0))
                .collect(),
            sqn: port.sq().map_or(0, |s| s.sqn.0),
            cqs,
        };
        {
            let mut g = self.shared.lock();
            // Room on every EQ for one pending event per CQ: the poll path
            // never allocates.
            let total: usize = g.vnics.iter().map(|v| v.cqs.len()).sum::<usize>() + reg.cqs.len();
            for eq in &self.shared.eqs {
                eq.reserve(total);
            }
            g.vnics.push(reg);
        }
        log::info!(target: "mlx5::vnic", "mlx5: {id} up: {mac} {} queues {}", vlan_text(spec.vlan), port.rx_queues());
        Ok(Vnic {
            port,
            nic: self.clone(),
            id,
            mac,
            vlan: spec.vlan,
            dest,
            groups: Vec::new(),
            promisc: false,
        })
    }

    /// The VNICs as the registry knows them (no packet counters).
    pub fn list(&self) -> Vec<VnicInfo> {
        self.shared
            .lock()
            .vnics
            .iter()
            .map(|r| VnicInfo {
                id: r.id,
                mac: r.mac,
                vlan: r.vlan,
                queues: r.queues,
                rqns: r.rqns.clone(),
                tir: r.tir,
                sqn: r.sqn,
                dest: r.dest,
                rx_packets: 0,
                rx_bytes: 0,
                tx_packets: 0,
                tx_bytes: 0,
            })
            .collect()
    }

    /// Frames and bytes the adapter steered to a VNIC's unicast rule (a
    /// command).
    pub fn flow_traffic(&self, id: VnicId) -> Result<Traffic, FlowError> {
        let (mac, vlan) = {
            let g = self.shared.lock();
            let r = g
                .vnics
                .iter()
                .find(|v| v.id == id)
                .ok_or(FlowError::NoEntry(crate::flow::FlowEntry(u32::MAX)))?;
            (r.mac, r.vlan)
        };
        self.with_steering(|st, ctl| st.traffic_of(ctl, mac, vlan_match(vlan)))
            .unwrap_or(Err(FlowError::Unsupported))
    }

    /// The shell's `vnics` (adapter side): one line per VNIC with its
    /// queues and what its unicast flow rule steered.
    pub fn vnics_report(&self) -> String {
        let mut s = String::new();
        for v in self.list() {
            let t = self.flow_traffic(v.id);
            let _ = write!(
                s,
                "{} {} {} queues {} rqn {:?} tir {} sqn {:#x} -> {}",
                v.id,
                v.mac,
                vlan_text(v.vlan),
                v.queues,
                v.rqns,
                v.tir,
                v.sqn,
                v.dest
            );
            match t {
                Ok(t) => {
                    let _ = writeln!(s, "; flow {} pkts {} B", t.packets, t.bytes);
                }
                Err(e) => {
                    let _ = writeln!(s, "; flow counter unreadable: {e}");
                }
            }
        }
        if s.is_empty() {
            s.push_str("no VNICs\n");
        }
        s
    }

    /// Every entry of the root and VLAN tables as the driver programmed
    /// it, with what QUERY_FLOW_TABLE_ENTRY returns for it.
    pub fn flows(&self) -> Vec<FlowCheck> {
        self.with_steering(|st, ctl| {
            st.programmed()
                .into_iter()
                .map(|p| {
                    let hw = ctl.exec(&QueryFte {
                        table_type: TABLE_TYPE_NIC_RX,
                        table: p.table,
                        index: p.index,
                    });
                    FlowCheck { programmed: p, hw }
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The shell's `flows`: tables and groups, then each entry as
    /// programmed and, under it, as the adapter reports it ("hw ok" when
    /// they agree, the adapter's view and MISMATCH when not).
    pub fn flows_report(&self) -> String {
        let mut s = String::new();
        let tables = self.with_steering(|st, _| st.tables()).unwrap_or_default();
        for t in &tables {
            let _ = writeln!(
                s,
                "table {} level {} size {}",
                t.table.0,
                t.level,
                1u32 << t.log_size
            );
            for (g, first, last, c) in &t.groups {
                let _ = writeln!(s, "  group {} [{first}..={last}] match {}", g.0, crit(c));
            }
        }
        let checks = self.flows();
        let bad = checks.iter().filter(|c| !c.matches()).count();
        let criteria = |g: crate::flow::Fgn| {
            tables
                .iter()
                .flat_map(|t| t.groups.iter())
                .find(|x| x.0 == g)
                .map(|x| x.3)
                .unwrap_or_default()
        };
        for c in &checks {
            let p = &c.programmed;
            let _ = writeln!(
                s,
                "table {} [{}] group {} {} -> {} counter {}",
                p.table.0,
                p.index,
                p.group.0,
                value_text(&p.value, &criteria(p.group)),
                DestList(&p.dests),
                p.counter.map_or(0, |c| c.0)
            );
            match &c.hw {
                Ok(h) if c.matches() => {
                    let _ = writeln!(s, "    hw ok (action {:#x})", h.action);
                }
                Ok(h) => {
                    let _ = writeln!(
                        s,
                        "    hw MISMATCH: group {} {} -> {} counters {:?} action {:#x}",
                        h.group.0,
                        value_text(&h.value, &criteria(h.group)),
                        DestList(&h.dests),
                        h.counters.iter().map(|c| c.0).collect::<Vec<_>>(),
                        h.action
                    );
                }
                Err(e) => {
                    let _ = writeln!(s, "    hw MISMATCH: query failed: {e}");
                }
            }
        }
        let _ = writeln!(
            s,
            "{} entries, {} as programmed, {} mismatched",
            checks.len(),
            checks.len() - bad,
            bad
        );
        s
    }

    /// Destroy the steering and hand the adapter back; `Err(self)` while
    /// VNICs (or other handles) exist.
    pub fn close(self) -> Result<(C, CloseReport), Nic<C>> {
        let shared = match Arc::try_unwrap(self.shared) {
            Ok(s) => s,
            Err(shared) => return Err(Nic { shared }),
        };
        // The EQ handles go before the adapter's detach destroys the EQs.
        drop(shared.eqs);
        let inner = shared.inner.into_inner();
        let mut ctl = inner.ctl;
        let mut rep = CloseReport::default();
        if let Some(st) = inner.steering
            && let Err(e) = st.destroy(&mut ctl)
        {
            rep.errors += 1;
            rep.first_error = Some(e);
        }
        Ok((ctl, rep))
    }
}

fn crit(c: &crate::flow::Criteria) -> String {
    let mut s = String::new();
    for (on, name) in [
        (c.dmac, "dmac"),
        (c.dmac_mcast, "dmac-multicast-bit"),
        (c.vlan, "cvlan_tag+first_vid"),
        (c.ethertype, "ethertype"),
        (c.ip_protocol, "ip_protocol"),
    ] {
        if on {
            if !s.is_empty() {
                s.push('+');
            }
            s.push_str(name);
        }
    }
    if s.is_empty() {
        s.push_str("nothing (catch-all)");
    }
    s
}

/// An entry's match value, read with its group's criteria: a VLAN group
/// entry without an id matches untagged frames; a catch-all matches any.
fn value_text(v: &crate::flow::MatchValue, c: &crate::flow::Criteria) -> String {
    let mut s = String::new();
    if let Some(m) = v.dmac {
        let _ = write!(s, "dmac {m} ");
    }
    if c.vlan {
        match v.vlan {
            Some(id) => {
                let _ = write!(s, "vlan {id} ");
            }
            None => s.push_str("untagged "),
        }
    }
    if let Some(t) = v.ethertype {
        let _ = write!(s, "ethertype {t:#06x} ");
    }
    if let Some(p) = v.ip_protocol {
        let _ = write!(s, "ip_protocol {p} ");
    }
    if s.is_empty() {
        s.push_str("any ");
    }
    s.pop();
    s
}

fn vlan_match(vlan: Option<u16>) -> VlanMatch {
    match vlan {
        Some(v) => VlanMatch::Id(v),
        None => VlanMatch::Untagged,
    }
}

fn vlan_text(vlan: Option<u16>) -> String {
    match vlan {
        Some(v) => alloc::format!("vlan {v}"),
        None => String::from("untagged"),
    }
}

/// One VNIC: its queues and its rules (see the module documentation).
pub struct Vnic<C: Control> {
    port: QueueSet<NicCtl<C>>,
    nic: Nic<C>,
    id: VnicId,
    mac: Mac,
    vlan: Option<u16>,
    dest: Destination,
    /// Multicast addresses its stack joined.
    groups: Vec<Mac>,
    /// Whether it sees every frame the port receives.
    promisc: bool,
}

impl<C: Control> fmt::Debug for Vnic<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vnic({} {} {})", self.id, self.mac, vlan_text(self.vlan))
    }
}

impl<C: Control> Vnic<C> {
    pub fn id(&self) -> VnicId {
        self.id
    }

    pub fn mac(&self) -> Mac {
        self.mac
    }

    pub fn vlan(&self) -> Option<u16> {
        self.vlan
    }

    /// Receive queues.
    pub fn queues(&self) -> usize {
        self.port.rx_queues()
    }

    /// Where its rules forward.
    pub fn destination(&self) -> Destination {
        self.dest
    }

    /// The shared adapter.
    pub fn nic(&self) -> &Nic<C> {
        &self.nic
    }

    /// Its data path (rings, queue numbers, counters).
    pub fn port(&self) -> &QueueSet<NicCtl<C>> {
        &self.port
    }

    pub fn port_mut(&mut self) -> &mut QueueSet<NicCtl<C>> {
        &mut self.port
    }

    /// The multicast addresses its stack joined.
    pub fn multicast(&self) -> &[Mac] {
        &self.groups
    }

    /// Whether it is promiscuous ([`NetDevice::set_promiscuous`]).
    pub fn promiscuous(&self) -> bool {
        self.promisc
    }

    fn vlan_match(&self) -> VlanMatch {
        vlan_match(self.vlan)
    }

    pub fn info(&self) -> VnicInfo {
        let s = self.port.net_stats();
        VnicInfo {
            id: self.id,
            mac: self.mac,
            vlan: self.vlan,
            queues: self.port.rx_queues(),
            rqns: (0..self.port.rx_queues())
                .filter_map(|i| self.port.rq_at(i).map(|r| r.rqn.0))
                .collect(),
            tir: self.port.tir().map_or(0, |t| t.0),
            sqn: self.port.sq().map_or(0, |q| q.sqn.0),
            dest: self.dest,
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
        }
    }

    /// One line for the shell's `vnics`.
    pub fn report_line(&self) -> String {
        let s = self.port.net_stats();
        alloc::format!(
            "{} {} {} queues {} rx {} pkts {} B tx {} pkts {} B no-buffer {} errors {}",
            self.id,
            self.mac,
            vlan_text(self.vlan),
            self.port.rx_queues(),
            s.rx_packets,
            s.rx_bytes,
            s.tx_packets,
            s.tx_bytes,
            s.rx_no_buffer,
            s.errors
        )
    }

    /// What its unicast rule's flow counter saw (a command).
    pub fn flow_traffic(&self) -> Result<Traffic, FlowError> {
        self.nic.flow_traffic(self.id)
    }

    /// Its queues, one line each (the shell's `rings`).
    pub fn rings(&self) -> String {
        self.port.rings()
    }

    /// Remove exactly its flow entries (unicast rule, its place in the
    /// broadcast and multicast entries), then destroy its queues.
    pub fn destroy(self) -> CloseReport {
        let Vnic {
            port,
            nic,
            id,
            mac,
            vlan,
            dest,
            groups,
            promisc,
        } = self;
        let m = vlan_match(vlan);
        let mut rep = CloseReport::default();
        let mut note = |r: Result<(), FlowError>| {
            if let Err(e) = r {
                rep.errors += 1;
                if let (None, FlowError::Command(c)) = (&rep.first_error, e) {
                    rep.first_error = Some(c);
                }
            }
        };
        let results = nic
            .with_steering(|st, ctl| {
                let mut out = Vec::new();
                if promisc {
                    out.push(st.tap_leave(ctl, dest));
                }
                for g in groups.iter().copied().chain([BROADCAST]) {
                    out.push(st.leave(ctl, g, m, dest));
                }
                out.push(st.remove_match(ctl, mac, m));
                out
            })
            .unwrap_or_default();
        for r in results {
            note(r);
        }
        {
            let mut g = nic.shared.lock();
            if let Some(i) = g.vnics.iter().position(|v| v.id == id) {
                let reg = g.vnics.remove(i);
                for eq in &nic.shared.eqs {
                    eq.forget(&reg.cqs);
                }
            }
        }
        let (_, qrep) = port.close();
        rep.errors += qrep.errors;
        if rep.first_error.is_none() {
            rep.first_error = qrep.first_error;
        }
        log::info!(target: "mlx5::vnic", "mlx5: {id} ({mac} {}) destroyed, {} errors", vlan_text(vlan), rep.errors);
        rep
    }
}

impl<C: Control> NetDevice for Vnic<C> {
    fn mac(&self) -> [u8; 6] {
        self.mac.0
    }
    fn mtu(&self) -> usize {
        self.port.config().mtu
    }
    fn link(&self) -> LinkState {
        NetDevice::link(&self.port)
    }
    fn offloads(&self) -> Offloads {
        let mut o = self.port.offloads();
        if self.vlan.is_some() {
            // The tag is the VNIC's business: the stack sees untagged
            // frames both ways. No LSO with an inserted tag.
            o.vlan_insert = false;
            o.vlan_strip = false;
            o.lso_max = 0;
        }
        o
    }
    #[inline]
    fn poll(&mut self) -> usize {
        self.port.poll()
    }
    #[inline]
    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let own = self.vlan;
        self.port.receive(|b, mut m| {
            // Its own VLAN's tag is the VNIC's business; another one
            // (promiscuous) stays visible.
            if own.is_some() && m.vlan.map(|t| t & 0xfff) == own {
                m.vlan = None;
            }
            f(b, m)
        })
    }
    fn tx_free(&self) -> usize {
        self.port.tx_free()
    }
    #[inline]
    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxError> {
        self.transmit_with(len, TxMeta::default(), f)
    }
    #[inline]
    fn transmit_with<R>(
        &mut self,
        len: usize,
        mut meta: TxMeta,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        if let Some(v) = self.vlan {
            if meta.lso.is_some() {
                return Err(TxError::Unsupported);
            }
            meta.vlan = Some(v);
        }
        self.port.transmit_with(len, meta, f)
    }
    #[inline]
    fn flush(&mut self) {
        self.port.flush()
    }
    fn stats(&self) -> NetStats {
        self.port.net_stats()
    }
    fn add_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        let mac = Mac(mac);
        if mac.0[0] & 1 == 0 || mac == BROADCAST {
            return Err(FilterError::Unsupported);
        }
        let (m, dest) = (self.vlan_match(), self.dest);
        let r = self
            .nic
            .with_steering(|st, ctl| st.join(ctl, mac, m, dest))
            .unwrap_or(Err(FlowError::Unsupported));
        r?;
        if !self.groups.contains(&mac) {
            self.groups.push(mac);
        }
        Ok(())
    }
    fn remove_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        let mac = Mac(mac);
        let Some(i) = self.groups.iter().position(|g| *g == mac) else {
            return Err(FilterError::Unsupported);
        };
        let (m, dest) = (self.vlan_match(), self.dest);
        let r = self
            .nic
            .with_steering(|st, ctl| st.leave(ctl, mac, m, dest))
            .unwrap_or(Err(FlowError::Unsupported));
        r?;
        self.groups.remove(i);
        Ok(())
    }
    /// Promiscuous: every frame the port receives (any MAC, any VLAN)
    /// reaches this VNIC too, through a tap table in front of the MAC
    /// table (the vport filter is opened while one exists).
    fn set_promiscuous(&mut self, on: bool) -> Result<(), FilterError> {
        if on == self.promisc {
            return Ok(());
        }
        let dest = self.dest;
        let r = self
            .nic
            .with_steering(|st, ctl| {
                if on {
                    st.tap_join(ctl, dest)
                } else {
                    st.tap_leave(ctl, dest)
                }
            })
            .unwrap_or(Err(FlowError::Unsupported));
        r?;
        self.promisc = on;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_round_trips() {
        let s: VnicSpec = "mac:02:00:00:00:00:01,vlan:10,queues:2".parse().unwrap();
        assert_eq!(
            s,
            VnicSpec {
                mac: Some(Mac([2, 0, 0, 0, 0, 1])),
                vlan: Some(10),
                queues: 2
            }
        );
        assert_eq!(alloc::format!("{s}").parse::<VnicSpec>().unwrap(), s);
        assert_eq!("".parse::<VnicSpec>().unwrap(), VnicSpec::default());
        assert_eq!(
            "vlan=20".parse::<VnicSpec>().unwrap().vlan,
            Some(20),
            "= works too"
        );
        for (bad, want) in [
            ("vlan:0", SpecError::BadVlan("0".into())),
            ("vlan:4095", SpecError::BadVlan("4095".into())),
            ("queues:3", SpecError::BadQueues("3".into())),
            ("queues:128", SpecError::BadQueues("128".into())),
            (
                "mac:02:00:00:00:00",
                SpecError::BadMac("02:00:00:00:00".into()),
            ),
            (
                "mac:02:00:00:00:00:001",
                SpecError::BadMac("02:00:00:00:00:001".into()),
            ),
            ("ip:dhcp", SpecError::UnknownKey("ip:dhcp".into())),
        ] {
            assert_eq!(bad.parse::<VnicSpec>(), Err(want), "{bad}");
        }
    }
}
