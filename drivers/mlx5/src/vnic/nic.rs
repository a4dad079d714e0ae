//! The shared part of an adapter with VNICs ([`Nic`]): the control plane
//! behind one lock (commands, the steering, the VNIC registry), the
//! completion EQs and platform handles the packet paths use without it;
//! and a VNIC's view of it ([`NicCtl`]).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use cxos_drivers::{Clock, LinkState, Platform, Region};
use spin::Mutex;

use super::{Vnic, VnicError, VnicId, VnicInfo, VnicSpec, valid_queues, vlan_match, vlan_text};
use crate::cmd::{Command, Exec};
use crate::cmd_engine::CmdPoll;
use crate::control::{Control, Resources};
use crate::cq::Cqn;
use crate::eq::{CompEq, EqFull, Eqn};
use crate::error::{CmdError, Missing};
use crate::flow::{BROADCAST, Destination, FlowError};
use crate::flow_counter::Traffic;
use crate::queue_set::{CloseReport, EthConfig, OpenFailure, QueueSet};
use crate::rq::Rqn;
use crate::sq::Sqn;
use crate::steering::{Steering, SteeringConfig};
use crate::tir::Tirn;
use crate::vport::Mac;

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

/// What the registry knows of one VNIC.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Registered {
    id: VnicId,
    mac: Mac,
    vlan: Option<u16>,
    queues: usize,
    dest: Destination,
    tir: Option<Tirn>,
    rqns: Vec<Rqn>,
    sqn: Option<Sqn>,
    cqs: Vec<Cqn>,
}

struct Inner<C: Control> {
    ctl: C,
    res: Resources,
    cfg: NicConfig,
    steering: Option<Steering>,
    /// The steering is out with a change waiting for the device
    /// ([`Nic::with_steering_coop`]).
    steering_out: bool,
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
    /// The owner's work between two looks at a command a VNIC's queues,
    /// the steering or a port sequence wait for ([`Nic::set_idle`]);
    /// taken out while it runs, so a command it issues waits with only
    /// the clock's `relax`.
    idle: Mutex<Option<IdleWork>>,
    /// Asks the owner for its recovery step ([`Nic::set_recovery_wake`]).
    recovery_wake: Mutex<Option<fn()>>,
}

/// What [`Nic::set_idle`] takes.
pub type IdleWork = alloc::boxed::Box<dyn FnMut() + Send>;

impl<C: Control> Shared<C> {
    /// Between two looks at a command (the control-plane lock free): the
    /// owner's idle work, or, without one or nested inside it, the
    /// clock's `relax`.
    fn idle(&self) {
        let work = self.idle.lock().take();
        match work {
            Some(mut f) => {
                f();
                let mut slot = self.idle.lock();
                if slot.is_none() {
                    *slot = Some(f);
                }
            }
            None => self.clock.relax(),
        }
    }

    /// [`Nic::exec_with`] with the owner's idle work.
    fn exec_coop<K: Command>(&self, cmd: &K) -> Result<K::Output, CmdError> {
        exec_with(self, cmd, || self.idle())
    }
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

/// A VNIC's commands (queue changes, recovery, MTU) wait cooperatively:
/// the control-plane lock is let go while the device has one and the
/// owner's idle work runs ([`Nic::set_idle`]).
impl<C: Control> Exec for NicCtl<C> {
    fn exec<K: Command>(&mut self, cmd: &K) -> Result<K::Output, CmdError> {
        self.nic.exec_coop(cmd)
    }
}

/// Commands run through a [`Nic`] with the control-plane lock taken only
/// to submit and to look (never while the device has the command), and
/// `idle` called between two looks: what the port sequences run over
/// (`Nic::read_module_with` and the others).
pub struct CoopExec<'a, C: Control, F: FnMut()> {
    nic: &'a Nic<C>,
    idle: F,
}

impl<C: Control, F: FnMut()> fmt::Debug for CoopExec<'_, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CoopExec({:?})", self.nic)
    }
}

impl<'a, C: Control, F: FnMut()> CoopExec<'a, C, F> {
    pub fn new(nic: &'a Nic<C>, idle: F) -> Self {
        Self { nic, idle }
    }
}

impl<C: Control, F: FnMut()> Exec for CoopExec<'_, C, F> {
    fn exec<K: Command>(&mut self, cmd: &K) -> Result<K::Output, CmdError> {
        exec_with(&self.nic.shared, cmd, &mut self.idle)
    }
}

/// Commands through the shared adapter with the owner's idle work
/// ([`Nic::with_steering_coop`]).
pub(crate) struct SharedExec<'a, C: Control>(&'a Shared<C>);

impl<C: Control> Exec for SharedExec<'_, C> {
    fn exec<K: Command>(&mut self, cmd: &K) -> Result<K::Output, CmdError> {
        self.0.exec_coop(cmd)
    }
}

/// Submit `cmd` under the lock, look at it under the lock, `idle` between
/// two looks with the lock free.
fn exec_with<C: Control, K: Command>(
    shared: &Shared<C>,
    cmd: K,
    mut idle: impl FnMut(),
) -> Result<K::Output, CmdError> {
    let started = shared.lock().ctl.start(cmd);
    let mut t = match started {
        crate::control::Started::Out(t) => t,
        crate::control::Started::Done(r) => return r,
    };
    loop {
        let polled = shared.lock().ctl.collect(t);
        match polled {
            CmdPoll::Done(r) => return r,
            CmdPoll::Pending(next) => t = next,
        }
        idle();
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
    fn record_fault(&mut self, r: crate::fault::FaultRecord) -> crate::fault::FaultRecord {
        self.nic.lock().ctl.record_fault(r)
    }
    fn settle_fault(&mut self, r: crate::fault::FaultRecord) -> crate::fault::FaultRecord {
        self.nic.lock().ctl.settle_fault(r)
    }
    fn recovery_wanted(&mut self) {
        let wake = *self.nic.recovery_wake.lock();
        if let Some(f) = wake {
            f();
        }
    }
    fn fault_verdict(&mut self, object: crate::fault::FaultObject) -> crate::fault::Verdict {
        self.nic.lock().ctl.fault_verdict(object)
    }
    fn take_queue_events(
        &mut self,
        mine: &dyn Fn(crate::fault::FaultObject) -> bool,
        max: usize,
    ) -> heapless::Vec<crate::fault::QueueEvent, { crate::fault::QUEUE_EVENTS }> {
        self.nic.lock().ctl.take_queue_events(mine, max)
    }
    fn cq_replaced(&mut self, old: Cqn, new: Cqn) {
        for c in self.own.iter_mut().filter(|c| **c == old) {
            *c = new;
        }
    }
    fn comp_eq_count(&self) -> usize {
        self.nic.eqs.len()
    }
    fn comp_eqn(&self, index: usize) -> Option<Eqn> {
        self.nic.eqs.get(index).map(|e| e.eqn())
    }
    fn eq0_state(&self) -> Option<(Eqn, u32)> {
        self.nic.lock().ctl.eq0_state()
    }
    fn eq0_rearm(&mut self) {
        self.nic.lock().ctl.eq0_rearm()
    }
    fn eq0_check_interrupt(&mut self) {
        self.nic.lock().ctl.eq0_check_interrupt()
    }
    fn start<K: Command>(&mut self, cmd: K) -> crate::control::Started<K> {
        self.nic.lock().ctl.start(cmd)
    }
    fn collect<K: Command>(&mut self, t: crate::Ticket<K>) -> CmdPoll<K> {
        self.nic.lock().ctl.collect(t)
    }
}

impl<C: Control> Nic<C> {
    /// Take the adapter and create the function's steering (the root table;
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
                    steering_out: false,
                    vnics: Vec::new(),
                    next_id: 0,
                }),
                eqs,
                dma,
                mmio,
                clock,
                link,
                idle: Mutex::new(None),
                recovery_wake: Mutex::new(None),
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

    /// Run `f` on the steering with its commands waiting cooperatively
    /// (the idle work of [`Nic::set_idle`] between two looks): the
    /// steering is taken out of the control plane for the change, so no
    /// lock is held while the device has a command. Another steering
    /// change meanwhile (from the idle work) is refused with
    /// [`FlowError::Busy`]; inspection sees no steering.
    pub(crate) fn with_steering_coop<R>(
        &self,
        f: impl FnOnce(&mut Steering, &mut SharedExec<'_, C>) -> Result<R, FlowError>,
    ) -> Result<R, FlowError> {
        let mut st = {
            let mut g = self.shared.lock();
            if g.steering_out {
                return Err(FlowError::Busy);
            }
            let st = g.steering.take().ok_or(FlowError::Unsupported)?;
            g.steering_out = true;
            st
        };
        let r = f(&mut st, &mut SharedExec(&self.shared));
        let mut g = self.shared.lock();
        g.steering = Some(st);
        g.steering_out = false;
        r
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
    /// everything created is undone. Its CQs report to queue set 0
    /// ([`Nic::create_on`]).
    pub fn create(&self, spec: VnicSpec) -> Result<Vnic<C>, VnicError> {
        self.create_on(spec, 0)
    }

    /// How many queue sets VNICs can be spread over: one per completion
    /// EQ (each EQ has its own MSI-X vector, which the platform can bind
    /// to its own CPU).
    pub fn queue_sets(&self) -> usize {
        self.shared.eqs.len().max(1)
    }

    /// [`Nic::create`] on queue set `set` (taken modulo
    /// [`Nic::queue_sets`]): the send CQ and the first receive CQ report to
    /// completion EQ `set`, further RSS receive queues to the EQs after it
    /// (a VNIC polled by one CPU binds `set` to that CPU's EQ and asks for
    /// one receive queue, or accepts that its RSS queues wake other EQs'
    /// vectors).
    pub fn create_on(&self, spec: VnicSpec, set: usize) -> Result<Vnic<C>, VnicError> {
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
            if let Some(eq) = self.shared.eqs.get(set % self.shared.eqs.len().max(1)) {
                res.eq_index = set % self.shared.eqs.len();
                res.eqn = eq.eqn();
            }
            let cfg = EthConfig {
                rss_queues: spec.queues,
                vlan_strip: spec.vlan.is_some(),
                ..g.cfg.eth
            };
            (VnicId(id), mac, res, cfg)
        };
        let (qs, cqs) = self.open_claimed(res, cfg)?;
        let Some(dest) = qs.destination() else {
            self.forget_cqs(&cqs);
            let _ = qs.close();
            return Err(VnicError::Open(Missing::Tir.into()));
        };
        let m = vlan_match(spec.vlan);
        let installed = self.with_steering_coop(|st, ctl| {
            st.add_match(ctl, mac, m, dest)?;
            if let Err(e) = st.join(ctl, BROADCAST, m, dest) {
                let _ = st.remove_match(ctl, mac, m);
                return Err(e);
            }
            Ok(())
        });
        if let Err(e) = installed {
            for eq in &self.shared.eqs {
                eq.forget(&cqs);
            }
            let _ = qs.close();
            return Err(VnicError::Flow(e));
        }
        let reg = Registered {
            id,
            mac,
            vlan: spec.vlan,
            queues: qs.rx_queues(),
            dest,
            tir: qs.tir(),
            rqns: (0..qs.rx_queues())
                .filter_map(|i| qs.rq_at(i).map(|r| r.rqn))
                .collect(),
            sqn: qs.sq().map(|s| s.sqn),
            cqs,
        };
        self.shared.lock().vnics.push(reg);
        log::info!(target: "mlx5::vnic", "mlx5: {id} up: {mac} {} queues {}", vlan_text(spec.vlan), qs.rx_queues());
        Ok(Vnic {
            qs,
            nic: self.clone(),
            id,
            mac,
            vlan: spec.vlan,
            dest,
            groups: Vec::new(),
            promisc: false,
            destroyed: false,
            helper: false,
            inbox: None,
        })
    }

    /// Open a queue set with `res` and `cfg` and claim its CQs' events on
    /// their EQs (before any frame can reach it); its CQs.
    pub(super) fn open_claimed(
        &self,
        res: Resources,
        cfg: EthConfig,
    ) -> Result<(QueueSet<NicCtl<C>>, Vec<Cqn>), VnicError> {
        let ctl = NicCtl {
            nic: self.shared.clone(),
            own: Vec::new(),
        };
        let mut qs = match QueueSet::open_queues(ctl, res, cfg) {
            Ok(p) => p,
            Err(f) => return Err(VnicError::Open(f.error)),
        };
        let mut cqs: Vec<(Cqn, Eqn)> = qs.tx_cq().map(|c| (c.cqn, c.eqn)).into_iter().collect();
        cqs.extend((0..qs.rx_queues()).filter_map(|i| qs.rx_cq_at(i).map(|c| (c.cqn, c.eqn))));
        let (cqs, eqns): (Vec<Cqn>, Vec<Eqn>) = cqs.into_iter().unzip();
        qs.control_mut().own = cqs.clone();
        // Each CQ's events are claimed on its EQ before any frame can
        // reach the VNIC (the flow rules come next).
        let mut claimed = Ok(());
        for eq in &self.shared.eqs {
            let mine: Vec<Cqn> = cqs
                .iter()
                .zip(&eqns)
                .filter(|(_, e)| **e == eq.eqn())
                .map(|(c, _)| *c)
                .collect();
            if let Err(e) = eq.claim(&mine) {
                claimed = Err(e);
                break;
            }
        }
        if let Err(EqFull(eqn)) = claimed {
            for eq in &self.shared.eqs {
                eq.forget(&cqs);
            }
            let _ = qs.close();
            return Err(VnicError::EqFull(eqn));
        }
        Ok((qs, cqs))
    }

    /// Completion EQ `set` (modulo [`Nic::queue_sets`]): its index and
    /// number.
    pub(super) fn eq_of_set(&self, set: usize) -> Option<(usize, Eqn)> {
        let n = self.shared.eqs.len();
        let i = set % n.max(1);
        self.shared.eqs.get(i).map(|eq| (i, eq.eqn()))
    }

    /// The CQs a VNIC's queue set claimed ([`Nic::open_claimed`]).
    pub(super) fn claimed_cqs(ctl: &NicCtl<C>) -> Vec<Cqn> {
        ctl.own.clone()
    }

    /// Let go of the claims [`Nic::open_claimed`] made.
    pub(super) fn forget_cqs(&self, cqs: &[Cqn]) {
        for eq in &self.shared.eqs {
            eq.forget(cqs);
        }
    }

    /// Frames and bytes the adapter steered to a VNIC's unicast rule (a
    /// command).
    pub fn flow_traffic(&self, id: VnicId) -> Result<Traffic, FlowError> {
        let clock = self.shared.clock.clone();
        self.flow_traffic_with(id, || clock.relax())
    }

    /// [`Nic::flow_traffic`], the counter query run with
    /// [`Nic::exec_with`] (`idle` between two looks, the lock let go).
    pub fn flow_traffic_with(&self, id: VnicId, idle: impl FnMut()) -> Result<Traffic, FlowError> {
        let (mac, vlan) = {
            let g = self.shared.lock();
            let r = g
                .vnics
                .iter()
                .find(|v| v.id == id)
                .ok_or(FlowError::NoEntry(crate::flow::FlowEntry(u32::MAX)))?;
            (r.mac, r.vlan)
        };
        let counter = self
            .with_steering(|st, _| st.counter_of(mac, vlan_match(vlan)))
            .ok_or(FlowError::Unsupported)?
            .ok_or(FlowError::NoEntry(crate::flow::FlowEntry(u32::MAX)))?;
        Ok(self.exec_with(
            crate::flow_counter::QueryFlowCounter {
                id: counter,
                clear: false,
            },
            idle,
        )?)
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
                rx_no_buffer: 0,
                errors: 0,
            })
            .collect()
    }

    /// Take a destroyed VNIC out of the registry and its CQs' pending
    /// events out of the EQs.
    pub(super) fn unregister(&self, id: VnicId) {
        let mut g = self.shared.lock();
        if let Some(i) = g.vnics.iter().position(|v| v.id == id) {
            let reg = g.vnics.remove(i);
            for eq in &self.shared.eqs {
                eq.forget(&reg.cqs);
            }
        }
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

impl<C: Control> Nic<C> {
    /// Run `cmd` without holding the control-plane lock while the device
    /// has it: submitted under the lock ([`Control::start`]), then looked
    /// at under it ([`Control::collect`]), with `idle` called between two looks
    /// with the lock released (the caller's other work: timers, interrupt
    /// work, network stacks; and a short sleep). The outcome is
    /// [`crate::Adapter::exec`]'s, timeout included. `idle` may use this `Nic`
    /// (other commands, reports), but must not replace the adapter under
    /// it (a function reset) while the command is out.
    pub fn exec_with<K: Command>(&self, cmd: K, idle: impl FnMut()) -> Result<K::Output, CmdError> {
        exec_with(&self.shared, cmd, idle)
    }

    /// Set the work to run between two looks at a command the VNICs'
    /// queues, the steering or a port sequence wait for (the lock free):
    /// the owner's timers, interrupt work and other devices. Without it
    /// (or while it runs) waiting is the clock's `relax`. It may use this
    /// `Nic`, but must not replace the adapter under it (a function reset).
    pub fn set_idle(&self, work: IdleWork) {
        *self.shared.idle.lock() = Some(work);
    }

    /// Set what a VNIC's packet path calls when it left a queue recovery
    /// for the owner (`QueueSet::run_pending_recoveries`): the owner runs
    /// it soon, outside the packet path.
    pub fn set_recovery_wake(&self, wake: fn()) {
        *self.shared.recovery_wake.lock() = Some(wake);
    }

    /// Run `cmd` as [`Nic::exec_with`] with the idle work of
    /// [`Nic::set_idle`].
    pub fn exec_coop<K: Command>(&self, cmd: K) -> Result<K::Output, CmdError> {
        exec_with(&self.shared, cmd, || self.shared.idle())
    }
}
