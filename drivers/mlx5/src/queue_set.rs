//! A queue set: one Ethernet data path over the function's port. A
//! transmit CQ and SQ (through a TIS; MTU buffers plus a few 64 KiB LSO
//! buffers), one or more receive queues (a CQ and an RQ each, striding
//! where the part has it, cyclic elsewhere) behind a direct TIR or, with
//! RSS, an RQT, indirect TIRs per traffic type and a traffic-type flow
//! table, a Q counter, and (when it owns them) the function's receive
//! steering tables ([`Steering`]: its MAC and broadcast, multicast
//! addresses, promiscuous / all-multicast modes). A VNIC is a queue set
//! whose rules live in the shared steering ([`crate::vnic`]); with SMP,
//! each CPU will get a queue set of its own.
//! [`QueueSet`] owns the adapter (any [`Control`]) and implements
//! [`cxos_drivers::NetDevice`] for it, offloads included
//! ([`QueueSet::offloads`]).
//!
//! Files: [`config`](EthConfig) (settings and derived sizes), `open`
//! (open, close), `tx`, `rx` (the packet paths), `recovery` (queue
//! faults), `report` (what `rings` and `stats` show).
//!
//! Fast path ([`QueueSet::transmit`], [`QueueSet::transmit_with`], [`QueueSet::receive`],
//! [`QueueSet::poll`], [`QueueSet::flush`]): no heap allocation (transmit
//! buffers are used in order and come back in order, counted by the SQ),
//! no lock, and MMIO only for the one send doorbell per batch and CQ
//! re-arms (once per poll that saw an event, in interrupt mode).
//! Interrupt-driven and polled mode run the same code; only the EQ / arm
//! step differs.
//!
//! Errors: an error CQE (or a completion the driver refuses) produces a
//! [`QueueFault`] record on the console at once; the queue is taken out
//! of use and its recovery left to the owner's recovery step
//! ([`QueueSet::run_pending_recoveries`]: the packet path never issues a
//! command), which moves it to RST and back to RDY; transmit buffers in
//! flight go back to the free stack, receive buffers are posted again;
//! all counted.

use alloc::vec::Vec;
use core::fmt;

use cxos_drivers::{
    FilterError, LinkState, NetDevice, NetStats, Offloads, Platform, Region, RxMeta, TxError,
    TxMeta,
};

use crate::control::{Control, Resources};
use crate::cq::Cq;
use crate::error::{CmdError, Error};
use crate::flow::{Destination, FlowError};
use crate::flow_counter::Traffic;
use crate::q_counter::{self, QCounterId, QueryQCounter};
use crate::rq::{self, Rq};
use crate::rqt::Rqtn;
use crate::rss::{HASHED_TIRS, TrafficTable};
use crate::sq::Sq;
use crate::steering::Steering;
use crate::tir::Tirn;
use crate::tis::Tisn;
use crate::vport::Mac;
use crate::wqe::InlineMode;

mod burst;
mod config;
mod eq_recreate;
mod mtu;
mod open;
mod pending;
mod recovery;
mod report;
mod rss_lend;
mod rx;
mod rx_burst;
mod rx_recreate;
mod tuning;
mod tx;
mod watchdog;

pub use config::{EthConfig, L2_OVERHEAD, LSO_BUF_SIZE, LSO_HEADROOM, RqChoice};
pub use recovery::{FaultCause, QueueFault, QueueId};
pub use report::{QueueSetStats, RingsReport, RqRing, RssRing, SqRing};
use rx::commit_rx;
pub use rx_burst::RxInfo;
pub use tuning::Tuning;
pub use watchdog::{CHECK_INTERVAL_MS, TX_TIMEOUT_MS};

type Dma<C> = Region<<C as Control>::P>;
type Plat<C> = <C as Control>::P;

/// Counters of the queue set as a whole (per-queue ones live in the
/// queues).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EthStats {
    pub faults: u64,
    pub recoveries: u64,
    pub failed_recoveries: u64,
    /// Frames dropped for bad byte counts.
    pub rx_length_errors: u64,
    /// Q counter `out_of_buffer` at the last [`QueueSet::refresh_counters`].
    pub rx_no_buffer: u64,
    pub tx_busy: u64,
    /// Receive frames the device verified every checksum of / found a bad
    /// checksum in / stripped a VLAN tag from.
    pub rx_csum_ok: u64,
    pub rx_csum_bad: u64,
    pub rx_vlan_stripped: u64,
}

/// Everything the data path created, each present once created: open
/// fills it in order, teardown empties it in reverse (also after a
/// failed open).
struct Parts<P: Platform> {
    qc: Option<QCounterId>,
    tx_cq: Option<Cq<P>>,
    tis: Option<Tisn>,
    sq: Option<Sq<P>>,
    tx_bufs: Option<Region<P>>,
    lso_bufs: Option<Region<P>>,
    /// Receive queues: CQ first, RQ once created.
    rx: Vec<RxQueue<P>>,
    /// Direct TIR to receive queue 0 (everything without RSS; non-IP
    /// traffic with it).
    tir: Option<Tirn>,
    /// The one-entry RQT behind `tir` (so a recreated receive queue 0 can
    /// be put in its place with MODIFY_RQT).
    tir_rqt: Option<Rqtn>,
    rqt: Option<Rqtn>,
    /// Indirect TIRs, with RSS.
    rss: heapless::Vec<Tirn, HASHED_TIRS>,
    traffic: Option<TrafficTable>,
    steering: Option<Steering>,
}

impl<P: Platform> Default for Parts<P> {
    fn default() -> Self {
        Self {
            qc: None,
            tx_cq: None,
            tis: None,
            sq: None,
            tx_bufs: None,
            lso_bufs: None,
            rx: Vec::new(),
            tir: None,
            tir_rqt: None,
            rqt: None,
            rss: heapless::Vec::new(),
            traffic: None,
            steering: None,
        }
    }
}

/// One receive queue: its CQ, its RQ, and receive buffers recycled since
/// the last doorbell-record update.
struct RxQueue<P: Platform> {
    cq: Cq<P>,
    rq: Option<Rq<P>>,
    uncommitted: usize,
    /// The completion EQ reported this CQ since the last re-arm.
    event: bool,
    /// In error, its recovery pending ([`pending`]): out of use.
    halted: bool,
}

/// What closing the data path did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CloseReport {
    pub errors: u32,
    pub first_error: Option<CmdError>,
}

/// A set of queues with its TIR/TIS and steering hook: one Ethernet data
/// path (see the module documentation).
pub struct QueueSet<C: Control> {
    /// First field, so it is dropped first: a queue set dropped with its
    /// adapter (not closed) has the adapter detach itself (its queues
    /// destroyed by the device) before `parts` frees their memory.
    ctl: C,
    res: Resources,
    cfg: EthConfig,
    parts: Parts<Plat<C>>,
    tx_buf_size: usize,
    /// Receive queue to look at first (round robin).
    rx_next: usize,
    /// Completion EQ indexes the queue set's CQs use (interrupt mode).
    eq_indexes: Vec<usize>,
    stats: EthStats,
    last_fault: Option<QueueFault>,
    /// Periodic fault checks and deferred recoveries ([`QueueSet::check`]).
    watch: watchdog::Watch,
    /// Queue recoveries going ([`QueueSet::run_pending_recoveries`]).
    recoveries: Vec<pending::Recovery>,
    /// The SQ is in error, its recovery pending: nothing is posted to it.
    tx_halted: bool,
    /// Whether the queue set creates (and owns) the adapter's steering; a
    /// VNIC's does not: its rules live in the shared steering of
    /// [`crate::vnic::Nic`].
    own_steering: bool,
    /// RSS table entries lent to other queue sets' RQs, or the table this
    /// one's RQ is lent to (`rss_lend`).
    loan: rss_lend::Loan,
}

impl<C: Control> fmt::Debug for QueueSet<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueSet")
            .field("res", &self.res)
            .field("cfg", &self.cfg)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A failed open: the error and the control handed back.
pub struct OpenFailure<C> {
    pub error: Error,
    pub control: C,
}

impl<C> fmt::Debug for OpenFailure<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenFailure({})", self.error)
    }
}

impl<C: Control> QueueSet<C> {
    pub fn control(&self) -> &C {
        &self.ctl
    }

    pub fn control_mut(&mut self) -> &mut C {
        &mut self.ctl
    }

    pub fn resources(&self) -> &Resources {
        &self.res
    }

    pub fn config(&self) -> &EthConfig {
        &self.cfg
    }

    /// Largest frame (Ethernet header included) transmit and receive take.
    pub fn max_frame(&self) -> usize {
        self.cfg.mtu + L2_OVERHEAD
    }

    pub fn sq(&self) -> Option<&Sq<Plat<C>>> {
        self.parts.sq.as_ref()
    }

    /// Receive queue 0's RQ.
    pub fn rq(&self) -> Option<&Rq<Plat<C>>> {
        self.rq_at(0)
    }

    pub fn rq_at(&self, i: usize) -> Option<&Rq<Plat<C>>> {
        self.parts.rx.get(i).and_then(|q| q.rq.as_ref())
    }

    pub fn rx_cq_at(&self, i: usize) -> Option<&Cq<Plat<C>>> {
        self.parts.rx.get(i).map(|q| &q.cq)
    }

    /// Receive queues (RSS spreads over them).
    pub fn rx_queues(&self) -> usize {
        self.parts.rx.len()
    }

    /// The RQT and indirect TIRs of an RSS port.
    pub fn rqt(&self) -> Option<Rqtn> {
        self.parts.rqt
    }

    pub fn rss_tirs(&self) -> &[Tirn] {
        &self.parts.rss
    }

    /// Where the queue set's steering rules forward: the traffic-type table
    /// with RSS, the TIR without.
    pub fn destination(&self) -> Option<Destination> {
        match (&self.parts.traffic, self.parts.tir) {
            (Some(t), _) => Some(Destination::Table(t.table)),
            (None, Some(t)) => Some(Destination::Tir(t)),
            _ => None,
        }
    }

    pub fn tx_cq(&self) -> Option<&Cq<Plat<C>>> {
        self.parts.tx_cq.as_ref()
    }

    /// The completion EQs (indexes for `Control::poll_comp_eq`) its CQs
    /// report to, its own queue set's first: whoever polls this queue set
    /// must be woken by their vectors.
    pub fn eq_indexes(&self) -> &[usize] {
        &self.eq_indexes
    }

    /// Receive queue 0's CQ.
    pub fn rx_cq(&self) -> Option<&Cq<Plat<C>>> {
        self.rx_cq_at(0)
    }

    pub fn tir(&self) -> Option<Tirn> {
        self.parts.tir
    }

    pub fn steering(&self) -> Option<&Steering> {
        self.parts.steering.as_ref()
    }

    /// The steering the queue set owns, for adding and removing (MAC, VLAN) -> TIR
    /// rules (VNICs), with the adapter to run the commands on.
    pub fn steering_mut(&mut self) -> (Option<&mut Steering>, &mut C) {
        (self.parts.steering.as_mut(), &mut self.ctl)
    }

    /// Run `f` on the steering and the adapter; the queue set's destination
    /// is passed.
    fn with_steering<R>(
        &mut self,
        f: impl FnOnce(&mut Steering, &mut C, Destination) -> Result<R, FlowError>,
    ) -> Result<R, FlowError> {
        let Some(to) = self.destination() else {
            return Err(FlowError::Unsupported);
        };
        let Some(st) = self.parts.steering.as_mut() else {
            return Err(FlowError::Unsupported);
        };
        f(st, &mut self.ctl, to)
    }

    /// Receive frames for multicast `mac` (vport list + a flow entry to
    /// the queue set's TIR). Adding it twice is not an error.
    pub fn add_multicast(&mut self, mac: Mac) -> Result<(), FlowError> {
        self.with_steering(|st, c, to| match st.add_rule(c, mac, None, to) {
            Ok(_) | Err(FlowError::Duplicate(_)) => Ok(()),
            Err(e) => Err(e),
        })
    }

    pub fn remove_multicast(&mut self, mac: Mac) -> Result<(), FlowError> {
        self.with_steering(|st, c, _| st.remove_rule(c, mac, None))
    }

    /// Promiscuous mode: every frame reaches the port.
    pub fn set_promisc(&mut self, on: bool) -> Result<(), FlowError> {
        self.with_steering(|st, c, to| st.set_promisc(c, on.then_some(to)))
    }

    /// All-multicast mode: every multicast frame reaches the port.
    pub fn set_allmulti(&mut self, on: bool) -> Result<(), FlowError> {
        self.with_steering(|st, c, to| st.set_allmulti(c, on.then_some(to)))
    }

    /// What the flow counter of the queue set's rule for (`mac`, `vlan`) saw.
    pub fn flow_traffic(&mut self, mac: Mac, vlan: Option<u16>) -> Result<Traffic, FlowError> {
        self.with_steering(|st, c, _| st.traffic(c, mac, vlan))
    }

    pub fn eth_stats(&self) -> EthStats {
        self.stats
    }

    pub fn last_fault(&self) -> Option<QueueFault> {
        self.last_fault
    }

    /// Read the Q counter (a command: not for the packet path).
    pub fn refresh_counters(&mut self) -> Result<q_counter::QCounters, CmdError> {
        let Some(id) = self.parts.qc else {
            return Ok(q_counter::QCounters::default());
        };
        let q = self.ctl.exec(&QueryQCounter { id, clear: false })?;
        self.apply_counters(&q);
        Ok(q)
    }

    /// The Q counter [`QueueSet::refresh_counters`] reads (`None`: none).
    pub fn q_counter(&self) -> Option<QCounterId> {
        self.parts.qc
    }

    /// Take what a QUERY_Q_COUNTER of [`QueueSet::q_counter`] issued
    /// elsewhere returned (a caller that does not block on the command,
    /// e.g. through `Nic::exec_with`), as [`QueueSet::refresh_counters`]
    /// does.
    pub fn apply_counters(&mut self, q: &q_counter::QCounters) {
        self.stats.rx_no_buffer = q.out_of_buffer as u64;
    }

    /// Largest LSO payload the queue set sends (0: no LSO).
    pub fn lso_max(&self) -> usize {
        let log = self.res.caps.log_max_lso;
        if self.cfg.lso_bufs == 0 || log < 12 {
            return 0;
        }
        (1usize << log.min(16)) - LSO_HEADROOM
    }

    /// Whether received VLAN tags are stripped.
    pub fn vlan_strip(&self) -> bool {
        self.cfg.vlan_strip && self.res.caps.vlan_strip
    }

    /// Whether transmit VLAN insertion works: by the Ethernet segment's
    /// `insert`, or by the driver writing the tag into inlined headers.
    pub fn vlan_insert(&self) -> bool {
        self.res.caps.vlan_insert || self.res.inline != InlineMode::None
    }

    /// What [`NetDevice::offloads`] advertises.
    pub fn offloads(&self) -> Offloads {
        let c = self.res.caps;
        Offloads {
            tx_ipv4_csum: c.csum,
            tx_l4_csum: c.csum,
            rx_csum: c.csum,
            lso_max: self.lso_max() as u32,
            vlan_insert: self.vlan_insert(),
            vlan_strip: self.vlan_strip(),
        }
    }

    /// One doorbell for every frame queued since the last flush, and the
    /// receive side's doorbell records.
    #[inline]
    pub fn flush(&mut self) {
        if let Some(sq) = self.parts.sq.as_mut() {
            sq.ring_doorbell();
        }
        for x in self.parts.rx.iter_mut() {
            if x.uncommitted > 0 && !x.halted {
                commit_rx(x);
            }
        }
    }

    pub fn tx_free(&self) -> usize {
        self.parts.sq.as_ref().map_or(0, |q| q.free_buffers())
    }

    /// Counters as [`NetDevice::stats`] reports them.
    pub fn net_stats(&self) -> NetStats {
        let (mut s, z) = (NetStats::default(), Default::default());
        let sq = self.parts.sq.as_ref().map(|q| q.stats).unwrap_or(z);
        let rq = self.rx_stats();
        s.tx_packets = sq.packets;
        s.tx_bytes = sq.bytes;
        s.rx_packets = rq.packets;
        s.rx_bytes = rq.bytes;
        s.rx_no_buffer = self.stats.rx_no_buffer;
        s.errors = sq.errors + rq.errors + self.stats.rx_length_errors;
        s.recoveries = self.stats.recoveries;
        s
    }

    /// Receive counters summed over the receive queues.
    pub fn rx_stats(&self) -> rq::RqStats {
        let mut t = rq::RqStats::default();
        for r in self.parts.rx.iter().filter_map(|x| x.rq.as_ref()) {
            t.packets += r.stats.packets;
            t.bytes += r.stats.bytes;
            t.errors += r.stats.errors;
            t.recoveries += r.stats.recoveries;
            t.fillers += r.stats.fillers;
            t.wqes_done += r.stats.wqes_done;
        }
        t
    }
}

impl<C: Control> NetDevice for QueueSet<C> {
    fn mac(&self) -> [u8; 6] {
        self.res.mac.0
    }
    fn mtu(&self) -> usize {
        self.cfg.mtu
    }
    fn link(&self) -> LinkState {
        self.ctl.link()
    }
    fn offloads(&self) -> Offloads {
        QueueSet::offloads(self)
    }
    fn poll(&mut self) -> usize {
        QueueSet::poll(self)
    }
    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        QueueSet::receive(self, f)
    }
    fn tx_free(&self) -> usize {
        QueueSet::tx_free(self)
    }
    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxError> {
        QueueSet::transmit(self, len, f)
    }
    fn transmit_with<R>(
        &mut self,
        len: usize,
        meta: TxMeta,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        QueueSet::transmit_with(self, len, meta, f)
    }
    fn transmit_then<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        QueueSet::transmit_then(self, len, f)
    }
    fn flush(&mut self) {
        QueueSet::flush(self)
    }
    fn transmit_burst(
        &mut self,
        n: usize,
        len: usize,
        meta: TxMeta,
        mut write: impl FnMut(usize, &mut [u8]),
    ) -> Result<usize, TxError> {
        if len == 0 || len > self.max_frame() {
            return Err(TxError::BadLength(len));
        }
        QueueSet::transmit_burst(self, n, meta, |i, b| match b.get_mut(..len) {
            Some(f) => {
                write(i, f);
                len
            }
            None => 0,
        })
    }
    fn receive_burst(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        QueueSet::receive_burst(self, max, |b, _| f(b))
    }
    fn stats(&self) -> NetStats {
        self.net_stats()
    }
    fn add_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        if mac[0] & 1 == 0 {
            return Err(FilterError::Unsupported);
        }
        Ok(QueueSet::add_multicast(self, Mac(mac))?)
    }
    fn remove_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        Ok(QueueSet::remove_multicast(self, Mac(mac))?)
    }
    fn set_promiscuous(&mut self, on: bool) -> Result<(), FilterError> {
        Ok(QueueSet::set_promisc(self, on)?)
    }
    fn set_all_multicast(&mut self, on: bool) -> Result<(), FilterError> {
        Ok(QueueSet::set_allmulti(self, on)?)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! What the queue set's unit tests share: a mock adapter's resources,
    //! a small configuration, the open sequence, CQEs as the device writes
    //! them.
    pub use super::*;
    pub use crate::cmd::op;
    pub use crate::control::DataPathCaps;
    pub use crate::eq::Eqn;
    pub use crate::mock::{MockCtl, MockPlatform};
    pub use crate::pd::{Lkey, Pd, Tdn};
    pub use crate::uar::Uar;
    pub use alloc::vec;
    pub use alloc::vec::Vec;
    pub use cxos_drivers::{L3Proto, L4Proto};

    pub const MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);

    pub fn res() -> Resources {
        Resources {
            pd: Pd(1),
            td: Tdn(2),
            uar: Uar(5),
            lkey: Lkey(0x100),
            eqn: Eqn(3),
            eq_index: 0,
            inline: InlineMode::L2,
            mac: MAC,
            caps: DataPathCaps {
                csum: true,
                vlan_strip: true,
                vlan_insert: true,
                log_max_lso: 16,
                ..DataPathCaps::default()
            },
        }
    }

    pub fn cfg(interrupts: bool) -> EthConfig {
        EthConfig {
            log_sq: 3,
            log_rq: 3,
            cq_every: 4,
            interrupts,
            ..EthConfig::default()
        }
    }

    pub const OPEN_SEQUENCE: [u16; 20] = [
        op::ALLOC_Q_COUNTER,
        op::CREATE_CQ,
        op::CREATE_CQ,
        op::CREATE_TIS,
        op::CREATE_SQ,
        op::MODIFY_SQ,
        op::CREATE_RQ,
        op::MODIFY_RQ,
        op::CREATE_RQT,
        op::CREATE_TIR,
        op::CREATE_FLOW_TABLE,
        op::CREATE_FLOW_GROUP,
        op::CREATE_FLOW_GROUP,
        op::CREATE_FLOW_GROUP,
        op::SET_FLOW_TABLE_ROOT,
        op::ALLOC_FLOW_COUNTER,
        op::SET_FLOW_TABLE_ENTRY,
        op::MODIFY_NIC_VPORT_CONTEXT,
        op::ALLOC_FLOW_COUNTER,
        op::SET_FLOW_TABLE_ENTRY,
    ];

    /// The device side of the mock: write a CQE, body first, op_own last;
    /// `qpn` (0x38) names the queue the CQ serves.
    pub fn write_cqe(
        p: &MockPlatform,
        ring: u64,
        idx: usize,
        op_own: u8,
        counter: u16,
        bytes: u32,
    ) {
        let at = ring + (idx * 64) as u64;
        let qpn = p.s.borrow().cq_qpn.get(&ring).copied().unwrap_or(0);
        p.write(at + 0x38, &qpn.to_be_bytes());
        p.write(at + 0x2c, &bytes.to_be_bytes());
        p.write(at + 0x3c, &counter.to_be_bytes());
        p.write(at + 0x3f, &[op_own]);
    }

    pub fn error_cqe(p: &MockPlatform, ring: u64, idx: usize, op: u8, syndrome: u8, counter: u16) {
        let at = ring + (idx * 64) as u64;
        p.write(at + 0x37, &[syndrome]);
        write_cqe(p, ring, idx, op << 4, counter, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;

    #[test]
    fn interrupt_mode_consumes_the_eq_and_rearms_only_cqs_with_events() {
        let mut port = QueueSet::open(MockCtl::new(), res(), cfg(true)).unwrap();
        let p = port.control().p.clone();
        let tx = port.tx_cq().unwrap();
        let rx = port.rx_cq().unwrap();
        let (txc, rxc) = (tx.cqn, rx.cqn);
        // Armed at open: arm word sn 0 in dbr dword 1, UAR 0x20 got rx CQN
        // last.
        assert_eq!((tx.armed, rx.armed), (1, 1));
        assert_eq!(&p.s.borrow().bar0[0x5024..0x5028], &rxc.0.to_be_bytes());
        port.poll();
        assert_eq!(port.tx_cq().unwrap().armed, 1, "no event, no MMIO");
        port.control_mut().events.push(txc);
        port.poll();
        assert_eq!(port.tx_cq().unwrap().armed, 2);
        assert_eq!(port.rx_cq().unwrap().armed, 1);
        // Second arm carries sn 1.
        let dbr = port.tx_cq().unwrap().dbr_addr();
        assert_eq!(p.read(dbr + 4, 4), [0x10, 0, 0, 0]);
        port.control_mut().events.push(rxc);
        port.poll();
        assert_eq!(port.rx_cq().unwrap().armed, 2);
        assert_eq!(port.control().eq_polls, 3);
        // Polled mode never touches the EQ.
        let mut polled = QueueSet::open(MockCtl::new(), res(), cfg(false)).unwrap();
        polled.poll();
        assert_eq!(polled.control().eq_polls, 0);
        assert_eq!(polled.tx_cq().unwrap().armed, 0);
    }

    #[test]
    fn a_cqe_naming_another_queue_is_a_fault_on_both_paths() {
        let mut port = QueueSet::open(MockCtl::new(), res(), cfg(false)).unwrap();
        let p = port.control().p.clone();
        let sqn = port.sq().unwrap().sqn.0;
        let rqn = port.rq().unwrap().rqn.0;
        // Receive: a good frame, then one whose qpn (0x38) names the SQ.
        let rxcq = port.rx_cq().unwrap().ring_addr();
        write_cqe(&p, rxcq, 0, 0x20, 0, 60);
        assert_eq!(port.receive(|b, _| b.len()), Some(60));
        write_cqe(&p, rxcq, 1, 0x20, 1, 60);
        p.write(rxcq + 64 + 0x38, &sqn.to_be_bytes());
        assert!(port.receive(|_, _| ()).is_none());
        assert_eq!(port.run_pending_recoveries(), 0);
        let f = port.last_fault().unwrap();
        assert_eq!(f.cause, FaultCause::WrongQueue { qpn: sqn });
        assert_eq!(f.queue, QueueId::Rq(port.rq().unwrap().rqn));
        assert!(f.recovered);
        // Transmit: a completion of a WQE in flight naming the RQ.
        port.transmit(60, |b| b[0] = 1).unwrap();
        port.flush();
        let txcq = port.tx_cq().unwrap().ring_addr();
        write_cqe(&p, txcq, 0, 0x00, 0, 0);
        p.write(txcq + 0x38, &rqn.to_be_bytes());
        port.poll();
        assert_eq!(port.run_pending_recoveries(), 0);
        let f = port.last_fault().unwrap();
        assert_eq!(f.cause, FaultCause::WrongQueue { qpn: rqn });
        assert_eq!(f.returned, 1, "the buffer in flight came back");
        assert_eq!(port.tx_free(), 8);
        assert_eq!(port.eth_stats().faults, 2);
        assert!(
            alloc::format!("{f}").contains(&alloc::format!("CQE for queue {rqn:#x}")),
            "{f}"
        );
        let _ = port.close();
    }

    #[test]
    fn the_packet_path_does_not_allocate() {
        use mlx5_sim::harness::thread_allocations;
        let mut port = QueueSet::open(MockCtl::new(), res(), cfg(false)).unwrap();
        let p = port.control().p.clone();
        let txcq = port.tx_cq().unwrap().ring_addr();
        let rxcq = port.rx_cq().unwrap().ring_addr();
        // Warm up once (first uses of lazily initialised state).
        port.flush();
        let start = thread_allocations();
        let mut rx_ci = 0usize;
        for tx_ci in 0..1000usize {
            // Plain and with every offload (headers parsed, tag and
            // checksum flags written): nothing allocates.
            let meta = TxMeta {
                csum: true,
                vlan: Some(5),
                ..TxMeta::default()
            };
            for _ in 0..2 {
                port.transmit(60, |b| b[0] = 1).unwrap();
                port.transmit_with(60, meta, |b| {
                    b[12..16].copy_from_slice(&[0x08, 0x00, 0x45, 0]);
                    b[23] = 6;
                })
                .unwrap();
            }
            port.flush();
            // The device completes the batch and delivers two frames.
            let pc = port.sq().unwrap().producer_counter();
            let owner = ((tx_ci >> 3) & 1) as u8;
            write_cqe(&p, txcq, tx_ci & 7, owner, pc.wrapping_sub(1), 0);
            for _ in 0..2 {
                let owner = ((rx_ci >> 3) & 1) as u8;
                write_cqe(&p, rxcq, rx_ci & 7, 0x20 | owner, rx_ci as u16, 60);
                rx_ci += 1;
            }
            assert_eq!(port.poll(), 1, "round {tx_ci}");
            assert_eq!(port.receive(|b, _| b.len()), Some(60));
            assert_eq!(port.receive(|b, _| b.len()), Some(60));
            port.flush();
        }
        assert_eq!(thread_allocations() - start, 0);
        assert_eq!(port.net_stats().tx_packets, 4000);
        assert_eq!(port.net_stats().rx_packets, 2000);
        assert_eq!(port.tx_free(), 8);
    }
}
