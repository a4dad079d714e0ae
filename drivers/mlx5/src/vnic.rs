//! Hardware-steered VNICs: several network interfaces on one port, each a
//! MAC address (given, or generated locally administered), optionally on
//! a VLAN, with its own queues, each a [`NetDevice`] of its own (one
//! network stack each). The adapter, not software, decides which VNIC a
//! frame belongs to.
//!
//! - [`Nic`] is a cloneable handle to the shared part of the adapter (the
//!   command interface, UAR: any [`Control`]), the function's receive
//!   steering ([`crate::steering::Steering`]) and the VNIC registry behind one `spin::Mutex`
//!   (Send and Sync when the adapter is, so the kernel can keep VNICs in
//!   its statics). Only the control plane takes that lock (commands, flow
//!   rules, reports, queue recovery): no packet path does. Doorbells go
//!   through each queue's own MMIO handle, the clock and the DMA allocator
//!   are cloned handles, the link state is an atomic refreshed after every
//!   adapter call, and each completion EQ has its own small lock
//!   ([`crate::eq::CompEq`]). Calls do not nest: never call into a [`Nic`] or
//!   [`Vnic`] from inside [`Nic::with_adapter`] / [`Nic::with_steering`]
//!   (it would spin forever).
//! - [`Vnic`] is one VNIC: a [`QueueSet`] of its own (SQ, CQ and TIS, RQs
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
//!   table ([`crate::steering::Steering::tap_join`]); the others keep receiving theirs.
//! - [`Vnic::destroy`] removes exactly the VNIC's flow entries and
//!   memberships, then its queues. A `Vnic` dropped without `destroy` is
//!   destroyed the same way before its memory goes (the device never
//!   writes into freed buffers).
//! - Inspection, as values: [`Nic::list`], [`Vnic::info`], [`Vnic::rings`],
//!   [`Nic::flows_report`] (the tables, and every entry as programmed next
//!   to what QUERY_FLOW_TABLE_ENTRY returns).
//!
//! Files: this one (what a VNIC is, [`Vnic`] and its packet paths),
//! `nic` (the shared handle, [`NicCtl`], creating VNICs), `report` (what
//! the shell shows of VNICs and flows).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use cxos_drivers::{
    FilterError, LinkState, NetDevice, NetStats, Offloads, RxMeta, TxError, TxMeta,
};

use crate::control::Control;
use crate::eq::Eqn;
use crate::error::Error;
use crate::flow::{BROADCAST, Destination, FlowError};
use crate::flow_counter::Traffic;
use crate::queue_set::{CloseReport, QueueSet};
use crate::steering::VlanMatch;
use crate::vport::Mac;

mod nic;
mod ports;
mod report;
mod spread;

pub use nic::{CoopExec, IdleWork, Nic, NicConfig, NicCtl};
pub use report::{FlowCheck, FlowsReport, VnicInfo};
pub use spread::RxInbox;

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

/// Whether `q` receive queues is a VNIC the driver creates: a power of
/// two, 1..=64.
pub fn valid_queues(q: u8) -> bool {
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
    /// A completion EQ its CQs report to serves
    /// [`crate::eq::MAX_CLAIMED_CQS`] CQs already (everything undone).
    EqFull(Eqn),
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
            VnicError::EqFull(e) => write!(f, "{}", crate::eq::EqFull(*e)),
        }
    }
}

impl core::error::Error for VnicError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            VnicError::Open(e) => Some(e),
            VnicError::Flow(e) => Some(e),
            _ => None,
        }
    }
}

/// One VNIC: its queues and its rules (see the module documentation).
pub struct Vnic<C: Control> {
    qs: QueueSet<NicCtl<C>>,
    nic: Nic<C>,
    id: VnicId,
    mac: Mac,
    vlan: Option<u16>,
    dest: Destination,
    /// Multicast addresses its stack joined.
    groups: Vec<Mac>,
    /// Whether it sees every frame the port receives.
    promisc: bool,
    /// Its rules and queues are gone ([`Vnic::destroy`], or dropped).
    destroyed: bool,
    /// A receive helper of another VNIC ([`Nic::create_rx_helper`]): no
    /// rules, not in the registry.
    helper: bool,
    /// Frames of this VNIC that other CPUs' helpers received
    /// ([`Vnic::set_inbox`]), taken after its own.
    inbox: Option<alloc::boxed::Box<dyn RxInbox>>,
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
        self.qs.rx_queues()
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
    pub fn queue_set(&self) -> &QueueSet<NicCtl<C>> {
        &self.qs
    }

    pub fn queue_set_mut(&mut self) -> &mut QueueSet<NicCtl<C>> {
        &mut self.qs
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
    /// What its unicast rule's flow counter saw (a command).
    pub fn flow_traffic(&self) -> Result<Traffic, FlowError> {
        self.nic.flow_traffic(self.id)
    }

    /// Remove exactly its flow entries (unicast rule, its place in the
    /// broadcast and multicast entries), then destroy its queues.
    pub fn destroy(mut self) -> CloseReport {
        self.tear_down(Ending::Destroy)
    }

    /// Let go of a VNIC whose function was reset under it (its adapter is
    /// the failed shell the reset left): its objects went with the reset,
    /// so the destroy commands fail at once on the shell and nothing
    /// reaches the device; its memory is freed and it leaves the registry.
    /// Logs that, not the failed commands as errors. The report still
    /// counts them.
    pub fn release_after_reset(mut self) -> CloseReport {
        self.tear_down(Ending::FunctionReset)
    }

    /// What [`Vnic::destroy`] does, once (a dropped VNIC is destroyed the
    /// same way; afterwards its queues are empty).
    fn tear_down(&mut self, ending: Ending) -> CloseReport {
        let mut rep = CloseReport::default();
        if self.destroyed {
            return rep;
        }
        self.destroyed = true;
        if self.helper {
            return self.tear_down_helper(ending == Ending::FunctionReset);
        }
        let (id, mac, vlan, dest, promisc) =
            (self.id, self.mac, self.vlan, self.dest, self.promisc);
        let groups = core::mem::take(&mut self.groups);
        let m = vlan_match(vlan);
        let mut note = |r: Result<(), FlowError>| {
            if let Err(e) = r {
                rep.errors += 1;
                if let (None, FlowError::Command(c)) = (&rep.first_error, e) {
                    rep.first_error = Some(c);
                }
            }
        };
        let results = self
            .nic
            .with_steering_coop(|st, ctl| {
                let mut out = Vec::new();
                if promisc {
                    out.push(st.tap_leave(ctl, dest));
                }
                for g in groups.iter().copied().chain([BROADCAST]) {
                    out.push(st.leave(ctl, g, m, dest));
                }
                out.push(st.remove_match(ctl, mac, m));
                Ok(out)
            })
            .unwrap_or_else(|e| alloc::vec![Err(e)]);
        for r in results {
            note(r);
        }
        self.nic.unregister(id);
        let qrep = self.qs.teardown();
        rep.errors += qrep.errors;
        if rep.first_error.is_none() {
            rep.first_error = qrep.first_error;
        }
        // Receive helpers (the kernel's inbox holds them) go after the
        // VNIC's own queues and RSS table.
        if let Some(mut inbox) = self.inbox.take()
            && ending == Ending::FunctionReset
        {
            inbox.release_after_reset();
        }
        match ending {
            Ending::Destroy => {
                log::info!(target: "mlx5::vnic", "mlx5: {id} ({mac} {}) destroyed, {} errors", vlan_text(vlan), rep.errors)
            }
            Ending::FunctionReset => {
                log::info!(target: "mlx5::vnic", "mlx5: {id} ({mac} {}) released: its objects went with the function reset", vlan_text(vlan))
            }
        }
        rep
    }
}

/// Why a VNIC's rules and queues go ([`Vnic::destroy`],
/// [`Vnic::release_after_reset`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ending {
    Destroy,
    FunctionReset,
}

/// A VNIC dropped without [`Vnic::destroy`] is destroyed all the same: its
/// rules go first (no frame is steered to it any more), then its queues,
/// and only then is its memory freed, so the device never writes into
/// buffers that went back to the platform.
impl<C: Control> Drop for Vnic<C> {
    fn drop(&mut self) {
        if !self.destroyed {
            log::warn!(target: "mlx5::vnic", "mlx5: {} dropped without destroy: destroying", self.id);
            let _ = self.tear_down(Ending::Destroy);
        }
    }
}

impl<C: Control> NetDevice for Vnic<C> {
    fn mac(&self) -> [u8; 6] {
        self.mac.0
    }
    fn mtu(&self) -> usize {
        self.qs.config().mtu
    }
    fn link(&self) -> LinkState {
        NetDevice::link(&self.qs)
    }
    fn offloads(&self) -> Offloads {
        let mut o = self.qs.offloads();
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
        self.qs.poll()
    }
    #[inline]
    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        if self.inbox.is_some() {
            return self.receive_spread(f);
        }
        let own = self.vlan;
        self.qs.receive(|b, mut m| {
            // Its own VLAN's tag is the VNIC's business; another one
            // (promiscuous) stays visible.
            if own.is_some() && m.vlan.map(|t| t & 0xfff) == own {
                m.vlan = None;
            }
            f(b, m)
        })
    }
    fn tx_free(&self) -> usize {
        self.qs.tx_free()
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
        self.qs.transmit_with(len, meta, f)
    }
    /// The queue set's burst (eMPW sessions where the part has them),
    /// with the VNIC's tag.
    fn transmit_burst(
        &mut self,
        n: usize,
        len: usize,
        mut meta: TxMeta,
        write: impl FnMut(usize, &mut [u8]),
    ) -> Result<usize, TxError> {
        if let Some(v) = self.vlan {
            meta.vlan = Some(v);
        }
        NetDevice::transmit_burst(&mut self.qs, n, len, meta, write)
    }
    #[inline]
    fn transmit_then<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        match self.vlan {
            Some(v) => self.qs.transmit_then_tagged(len, v, f),
            None => self.qs.transmit_then(len, f),
        }
    }
    #[inline]
    fn flush(&mut self) {
        self.qs.flush()
    }
    fn stats(&self) -> NetStats {
        self.qs.net_stats()
    }
    fn add_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        let mac = Mac(mac);
        if mac.0[0] & 1 == 0 || mac == BROADCAST {
            return Err(FilterError::Unsupported);
        }
        let (m, dest) = (self.vlan_match(), self.dest);
        let r = self
            .nic
            .with_steering_coop(|st, ctl| st.join(ctl, mac, m, dest));
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
            .with_steering_coop(|st, ctl| st.leave(ctl, mac, m, dest));
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
        let r = self.nic.with_steering_coop(|st, ctl| {
            if on {
                st.tap_join(ctl, dest)
            } else {
                st.tap_leave(ctl, dest)
            }
        });
        r?;
        self.promisc = on;
        Ok(())
    }
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
