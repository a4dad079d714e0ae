//! The Ethernet data path of one port: a transmit CQ and SQ (through a
//! TIS), a receive CQ and cyclic RQ (behind a direct TIR), a Q counter,
//! and the root NIC_RX flow table steering the port's MAC and broadcast
//! to that TIR. [`EthPort`] owns the adapter (any [`Control`]) and
//! implements [`cxos_drivers::NetDevice`] for it.
//!
//! Fast path ([`EthPort::transmit`], [`EthPort::receive`],
//! [`EthPort::poll`], [`EthPort::flush`]): no heap allocation (the free
//! transmit buffer stack is allocated at open with its full capacity), no
//! lock, and MMIO only for the one send doorbell per batch and CQ re-arms
//! (once per poll that saw an event, in interrupt mode). Interrupt-driven
//! and polled mode run the same code; only the EQ / arm step differs.
//!
//! Errors: an error CQE (or a completion the driver refuses) produces a
//! [`QueueFault`] report on the console (log target `mlx5::dp`), the queue
//! is moved to RST and back to RDY, transmit buffers in flight go back to
//! the free stack, receive buffers are posted again; all counted.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use cxos_drivers::{
    DmaRegion, LinkState, NetDevice, NetStats, Offloads, Platform, RxMeta, TxError,
};

use crate::adapter::Adapter;
use crate::cmd::Exec;
use crate::cq::{self, Cq, Cqe, Cqn};
use crate::eq::Eqn;
use crate::error::{CmdError, Error};
use crate::flow::{BROADCAST, Destination, FlowError, MacSteering};
use crate::pd::{Lkey, Pd, Tdn};
use crate::q_counter::{self, AllocQCounter, QCounterId, QueryQCounter};
use crate::rq::{self, CreateRq, ModifyRq, QueryRq, Rq, Rqn, RxError};
use crate::sq::{self, CreateSq, ModifySq, QuerySq, Sq, Sqn};
use crate::tir::{self, CreateTirDirect, Tirn};
use crate::tis::{self, CreateTis, Tisn};
use crate::uar::Uar;
use crate::vport::Mac;
use crate::wq::QueueState;
use crate::wqe::InlineMode;

/// What the data path needs from the adapter: commands, the platform (for
/// DMA memory and doorbells), completion events, and a place for memory
/// the device may still reference.
pub trait Control: Exec {
    type P: Platform;
    fn platform(&self) -> &Self::P;
    /// Pop completion events of completion EQ `index` (calling `f` with
    /// each CQN) and re-arm it.
    fn poll_comp_eq(&mut self, index: usize, f: impl FnMut(Cqn)) -> usize;
    /// Keep memory whose queue could not be destroyed.
    fn retire(&mut self, mem: <Self::P as Platform>::Dma);
    /// Link state as last read from the port registers.
    fn link(&self) -> LinkState;
}

impl<P: Platform> Control for Adapter<P> {
    type P = P;
    fn platform(&self) -> &P {
        Adapter::platform(self)
    }
    fn poll_comp_eq(&mut self, index: usize, f: impl FnMut(Cqn)) -> usize {
        Adapter::poll_comp_eq(self, index, f)
    }
    fn retire(&mut self, mem: P::Dma) {
        Adapter::retire(self, mem)
    }
    fn link(&self) -> LinkState {
        LinkState {
            up: self.link_up(),
            speed_mbps: if self.link_up() {
                self.port().speed_mbps
            } else {
                0
            },
        }
    }
}

type Dma<C> = <<C as Control>::P as Platform>::Dma;

/// What the adapter's bring-up provides to a data path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Resources {
    pub pd: Pd,
    pub td: Tdn,
    pub uar: Uar,
    pub lkey: Lkey,
    /// Completion EQ (number, and index for [`Control::poll_comp_eq`]).
    pub eqn: Eqn,
    pub eq_index: usize,
    pub inline: InlineMode,
    pub mac: Mac,
}

impl Resources {
    /// From an attached adapter (completion EQ 0).
    pub fn of<P: Platform>(a: &Adapter<P>) -> Result<Resources, Error> {
        let missing = || Error::Device("adapter not fully attached");
        let (eqn, _) = *a.comp_eqs().first().ok_or_else(missing)?;
        let inline =
            InlineMode::resolve(a.caps().eth.wqe_inline_mode, a.vport().min_wqe_inline_mode)
                .map_err(|_| Error::Device("inline mode the driver does not implement yet"))?;
        Ok(Resources {
            pd: a.pd().ok_or_else(missing)?,
            td: a.tdn().ok_or_else(missing)?,
            uar: a.uar().ok_or_else(missing)?,
            lkey: a.reserved_lkey().ok_or_else(missing)?,
            eqn,
            eq_index: 0,
            inline,
            mac: a.mac(),
        })
    }
}

/// Data path settings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EthConfig {
    /// IP MTU; receive and transmit buffers hold MTU + 18 bytes.
    pub mtu: usize,
    /// log2 of the SQ and transmit buffer count.
    pub log_sq: u8,
    /// log2 of the RQ and receive buffer count.
    pub log_rq: u8,
    /// A transmit completion is requested every this many WQEs (and at
    /// the end of every batch).
    pub cq_every: u16,
    /// Interrupt-driven (CQs armed, completion EQ consumed) or polled.
    pub interrupts: bool,
    /// log2 of the root flow table size.
    pub flow_log_size: u8,
}

impl Default for EthConfig {
    fn default() -> Self {
        Self {
            mtu: 1500,
            log_sq: 9,
            log_rq: 9,
            cq_every: 32,
            interrupts: true,
            flow_log_size: 4,
        }
    }
}

/// Ethernet header plus one VLAN tag.
pub const L2_OVERHEAD: usize = 18;

/// Which queue a fault hit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum QueueId {
    Sq(Sqn),
    Rq(Rqn),
}

/// What went wrong on a queue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultCause {
    /// An error CQE.
    ErrorCqe {
        opcode: u8,
        syndrome: u8,
        vendor_syndrome: u8,
        wqe_counter: u16,
    },
    /// A completion whose WQE counter cannot be right.
    BadCompletion { wqe_counter: u16 },
    /// A CQE opcode the queue does not expect.
    BadOpcode(u8),
}

/// One data-path fault, as printed on the console.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct QueueFault {
    pub queue: QueueId,
    pub cause: FaultCause,
    pub at_ns: u64,
    /// Buffers in flight handed back by the recovery.
    pub returned: usize,
    /// Whether RST -> RDY succeeded.
    pub recovered: bool,
}

impl fmt::Display for QueueFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.queue {
            QueueId::Sq(s) => write!(f, "sq {:#x}: ", s.0)?,
            QueueId::Rq(r) => write!(f, "rq {:#x}: ", r.0)?,
        }
        match self.cause {
            FaultCause::ErrorCqe {
                opcode,
                syndrome,
                vendor_syndrome,
                wqe_counter,
            } => write!(
                f,
                "error CQE opcode {opcode:#x} syndrome {syndrome:#x} ({}) vendor {vendor_syndrome:#x} wqe {wqe_counter}",
                cq::syndrome::name(syndrome)
            )?,
            FaultCause::BadCompletion { wqe_counter } => {
                write!(f, "completion for WQE {wqe_counter} not in flight")?
            }
            FaultCause::BadOpcode(op) => write!(f, "unexpected CQE opcode {op:#x}")?,
        }
        write!(
            f,
            "; {} buffers returned, queue {}",
            self.returned,
            if self.recovered {
                "recovered (RST -> RDY)"
            } else {
                "NOT recovered"
            }
        )
    }
}

/// Port-level data path counters (per-queue ones live in the queues).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EthStats {
    pub faults: u64,
    pub recoveries: u64,
    pub failed_recoveries: u64,
    /// Frames dropped for bad byte counts.
    pub rx_length_errors: u64,
    /// Q counter `out_of_buffer` at the last [`EthPort::refresh_counters`].
    pub rx_no_buffer: u64,
    pub tx_busy: u64,
}

/// Everything the data path created, each present once created: open
/// fills it in order, teardown empties it in reverse (also after a
/// failed open).
struct Parts<D: DmaRegion> {
    qc: Option<QCounterId>,
    tx_cq: Option<Cq<D>>,
    rx_cq: Option<Cq<D>>,
    tis: Option<Tisn>,
    sq: Option<Sq<D>>,
    tx_bufs: Option<D>,
    rq: Option<Rq<D>>,
    tir: Option<Tirn>,
    steering: Option<MacSteering>,
}

impl<D: DmaRegion> Default for Parts<D> {
    fn default() -> Self {
        Self {
            qc: None,
            tx_cq: None,
            rx_cq: None,
            tis: None,
            sq: None,
            tx_bufs: None,
            rq: None,
            tir: None,
            steering: None,
        }
    }
}

/// What closing the data path did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CloseReport {
    pub errors: u32,
    pub first_error: Option<CmdError>,
}

/// The data path of one Ethernet port.
pub struct EthPort<C: Control> {
    ctl: C,
    res: Resources,
    cfg: EthConfig,
    parts: Parts<Dma<C>>,
    tx_buf_size: usize,
    /// Free transmit buffer ids (capacity fixed at open).
    tx_free: Vec<u32>,
    /// Receive buffers recycled since the last commit.
    rx_uncommitted: usize,
    stats: EthStats,
    last_fault: Option<QueueFault>,
}

impl<C: Control> fmt::Debug for EthPort<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EthPort")
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

impl<C: Control> EthPort<C> {
    /// Create the queues, TIS/TIR, Q counter and steering, post every
    /// receive buffer, move SQ and RQ to RDY, arm the CQs (interrupt
    /// mode). On failure everything created is destroyed again.
    pub fn open(ctl: C, res: Resources, cfg: EthConfig) -> Result<Self, OpenFailure<C>> {
        let frame = cfg.mtu + L2_OVERHEAD;
        let mut port = EthPort {
            ctl,
            res,
            cfg,
            parts: Parts::default(),
            tx_buf_size: frame.div_ceil(64) * 64,
            tx_free: Vec::new(),
            rx_uncommitted: 0,
            stats: EthStats::default(),
            last_fault: None,
        };
        match port.build() {
            Ok(()) => {
                log::info!(target: "mlx5::dp", "mlx5: data path up: {}", port.rings().lines().next().unwrap_or(""));
                Ok(port)
            }
            Err(error) => {
                log::error!(target: "mlx5::dp", "mlx5: data path open failed: {error}");
                let _ = port.teardown();
                Err(OpenFailure {
                    error,
                    control: port.ctl,
                })
            }
        }
    }

    /// A CREATE that failed: memory the device may have seen (timeout) is
    /// retired, the rest dropped.
    fn failed_create(&mut self, e: CmdError, mem: impl IntoIterator<Item = Dma<C>>) -> Error {
        if matches!(e.failure, crate::error::CmdFailure::Timeout { .. }) {
            for m in mem {
                self.ctl.retire(m);
            }
        }
        e.into()
    }

    fn build(&mut self) -> Result<(), Error> {
        let r = self.res;
        let cfg = self.cfg;
        if cfg.mtu < 68
            || cfg.mtu + L2_OVERHEAD > sq::MAX_FRAME
            || !(1..=15).contains(&cfg.log_sq)
            || !(1..=15).contains(&cfg.log_rq)
        {
            return Err(Error::Device("data path configuration out of range"));
        }
        let qc = self.ctl.exec(&AllocQCounter)?;
        self.parts.qc = Some(qc);

        // As many CQEs as WQEs: a CQ never overflows.
        for rx in [false, true] {
            let log = if rx { cfg.log_rq } else { cfg.log_sq };
            let ring = cq::alloc_ring(self.ctl.platform(), log)?;
            let cmd = Cq::create_cmd(&ring, log, r.uar, r.eqn);
            let cqn = match self.ctl.exec(&cmd) {
                Ok(c) => c,
                Err(e) => return Err(self.failed_create(e, [ring.mem])),
            };
            let cq = Cq::new(cqn, r.eqn, ring, log, r.uar);
            if rx {
                self.parts.rx_cq = Some(cq);
            } else {
                self.parts.tx_cq = Some(cq);
            }
        }

        let tis = self.ctl.exec(&CreateTis {
            td: r.td,
            pd: r.pd,
            prio: 0,
        })?;
        self.parts.tis = Some(tis);

        let n_tx = 1usize << cfg.log_sq;
        let tx_bufs = self.ctl.platform().dma_alloc(n_tx * self.tx_buf_size)?;
        self.parts.tx_bufs = Some(tx_bufs);
        let ring = Sq::alloc_ring(self.ctl.platform(), cfg.log_sq)?;
        let tx_cqn = self.parts.tx_cq.as_ref().map(|c| c.cqn).unwrap_or(Cqn(0));
        let cmd = CreateSq {
            cqn: tx_cqn,
            tisn: tis,
            pd: r.pd,
            uar: r.uar,
            dbr_addr: ring.dbr_addr(),
            log_size: cfg.log_sq,
            inline: r.inline,
            pages: ring.pages(),
        };
        let sqn = match self.ctl.exec(&cmd) {
            Ok(s) => s,
            Err(e) => return Err(self.failed_create(e, [ring.mem])),
        };
        self.parts.sq = Some(Sq::new(
            sqn,
            ring,
            cfg.log_sq,
            r.uar,
            r.inline,
            cfg.cq_every,
        ));
        self.ctl.exec(&ModifySq {
            sqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        })?;
        self.tx_free = Vec::with_capacity(n_tx);
        self.tx_free.extend((0..n_tx as u32).rev());

        let (ring, bufs, buf_size) =
            Rq::alloc(self.ctl.platform(), cfg.log_rq, cfg.mtu + L2_OVERHEAD)?;
        let rx_cqn = self.parts.rx_cq.as_ref().map(|c| c.cqn).unwrap_or(Cqn(0));
        let cmd = CreateRq {
            cqn: rx_cqn,
            pd: r.pd,
            dbr_addr: ring.dbr_addr(),
            log_size: cfg.log_rq,
            counter_set_id: qc.0,
            pages: ring.pages(),
        };
        let rqn = match self.ctl.exec(&cmd) {
            Ok(q) => q,
            Err(e) => return Err(self.failed_create(e, [ring.mem, bufs])),
        };
        // Every WQE written and posted before the RQ becomes ready.
        self.parts.rq = Some(Rq::new(rqn, ring, bufs, buf_size, cfg.log_rq, r.lkey));
        self.ctl.exec(&ModifyRq {
            rqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        })?;

        let tir = self.ctl.exec(&CreateTirDirect { rqn, td: r.td })?;
        self.parts.tir = Some(tir);

        let mut steering = MacSteering::create(&mut self.ctl, cfg.flow_log_size)?;
        for mac in [r.mac, BROADCAST] {
            if let Err(e) = steering.add(&mut self.ctl, mac, Destination::Tir(tir)) {
                let _ = steering.destroy(&mut self.ctl);
                return Err(match e {
                    FlowError::Command(c) => c.into(),
                    _ => Error::Device("root flow table refused the port MAC"),
                });
            }
        }
        self.parts.steering = Some(steering);

        if cfg.interrupts {
            let p = self.ctl.platform();
            for cq in [self.parts.tx_cq.as_mut(), self.parts.rx_cq.as_mut()]
                .into_iter()
                .flatten()
            {
                cq.arm(p);
            }
        }
        Ok(())
    }

    /// Undo whatever exists, in reverse order of creation. Memory of a
    /// queue whose DESTROY failed is retired, not freed.
    fn teardown(&mut self) -> CloseReport {
        let mut rep = CloseReport::default();
        fn note(rep: &mut CloseReport, r: Result<(), CmdError>) -> bool {
            match r {
                Ok(()) => true,
                Err(e) => {
                    rep.errors += 1;
                    rep.first_error.get_or_insert(e);
                    false
                }
            }
        }
        if let Some(st) = self.parts.steering.take() {
            let r = st.destroy(&mut self.ctl);
            note(&mut rep, r);
        }
        if let Some(t) = self.parts.tir.take() {
            let r = self.ctl.exec(&tir::destroy_tir(t));
            note(&mut rep, r);
        }
        if let Some(q) = self.parts.rq.take() {
            let r = self.ctl.exec(&rq::destroy_rq(q.rqn));
            if !note(&mut rep, r) {
                let (ring, bufs) = q.into_parts();
                self.ctl.retire(ring.mem);
                self.ctl.retire(bufs);
            }
        }
        let mut sq_gone = true;
        if let Some(q) = self.parts.sq.take() {
            let r = self.ctl.exec(&sq::destroy_sq(q.sqn));
            if !note(&mut rep, r) {
                sq_gone = false;
                self.ctl.retire(q.into_ring().mem);
            }
        }
        if let Some(b) = self.parts.tx_bufs.take()
            && !sq_gone
        {
            self.ctl.retire(b);
        }
        self.tx_free.clear();
        if let Some(t) = self.parts.tis.take() {
            let r = self.ctl.exec(&tis::destroy_tis(t));
            note(&mut rep, r);
        }
        for cq in [self.parts.rx_cq.take(), self.parts.tx_cq.take()]
            .into_iter()
            .flatten()
        {
            let r = self.ctl.exec(&cq::destroy_cq(cq.cqn));
            if !note(&mut rep, r) {
                self.ctl.retire(cq.into_ring().mem);
            }
        }
        if let Some(q) = self.parts.qc.take() {
            let r = self.ctl.exec(&q_counter::dealloc_q_counter(q));
            note(&mut rep, r);
        }
        rep
    }

    /// Destroy the data path and hand the adapter back.
    pub fn close(mut self) -> (C, CloseReport) {
        let rep = self.teardown();
        if rep.errors > 0 {
            log::warn!(target: "mlx5::dp", "mlx5: data path closed with {} errors", rep.errors);
        }
        (self.ctl, rep)
    }

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

    pub fn sq(&self) -> Option<&Sq<Dma<C>>> {
        self.parts.sq.as_ref()
    }

    pub fn rq(&self) -> Option<&Rq<Dma<C>>> {
        self.parts.rq.as_ref()
    }

    pub fn tx_cq(&self) -> Option<&Cq<Dma<C>>> {
        self.parts.tx_cq.as_ref()
    }

    pub fn rx_cq(&self) -> Option<&Cq<Dma<C>>> {
        self.parts.rx_cq.as_ref()
    }

    pub fn tir(&self) -> Option<Tirn> {
        self.parts.tir
    }

    pub fn steering(&self) -> Option<&MacSteering> {
        self.parts.steering.as_ref()
    }

    /// The root table, for adding and removing (MAC -> TIR) entries.
    pub fn steering_mut(&mut self) -> (Option<&mut MacSteering>, &mut C) {
        (self.parts.steering.as_mut(), &mut self.ctl)
    }

    pub fn eth_stats(&self) -> EthStats {
        self.stats
    }

    pub fn last_fault(&self) -> Option<QueueFault> {
        self.last_fault
    }

    /// Fault injection for tests: the next transmitted WQE carries a bad
    /// lkey (the device answers with an error CQE).
    pub fn inject_bad_lkey(&mut self) {
        if let Some(sq) = self.parts.sq.as_mut() {
            sq.inject_bad_lkey();
        }
    }

    /// Read the Q counter (a command: not for the packet path).
    pub fn refresh_counters(&mut self) -> Result<q_counter::QCounters, CmdError> {
        let Some(id) = self.parts.qc else {
            return Ok(q_counter::QCounters::default());
        };
        let q = self.ctl.exec(&QueryQCounter { id, clear: false })?;
        self.stats.rx_no_buffer = q.out_of_buffer as u64;
        Ok(q)
    }

    fn report_fault(&mut self, fault: QueueFault) {
        log::error!(target: "mlx5::dp", "mlx5: FAULT: {fault}");
        self.stats.faults += 1;
        if fault.recovered {
            self.stats.recoveries += 1;
        } else {
            self.stats.failed_recoveries += 1;
        }
        self.last_fault = Some(fault);
    }

    /// Move a queue from whatever state the device reports to RST, run
    /// `reset` on the driver side, then back to RDY.
    fn cycle_sq(&mut self, sqn: Sqn) -> Result<usize, CmdError> {
        let state = self.ctl.exec(&QuerySq(sqn))?.state;
        if let Some(from) = state.filter(|s| *s != QueueState::Rst) {
            self.ctl.exec(&ModifySq {
                sqn,
                from,
                to: QueueState::Rst,
            })?;
        }
        // Flushed completions of the old ring are meaningless now.
        drain(self.parts.tx_cq.as_mut());
        let free = &mut self.tx_free;
        let returned = self
            .parts
            .sq
            .as_mut()
            .map(|sq| sq.reset(|id| free.push(id)))
            .unwrap_or(0);
        self.ctl.exec(&ModifySq {
            sqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        })?;
        Ok(returned)
    }

    fn recover_sq(&mut self, cause: FaultCause) {
        let Some(sqn) = self.parts.sq.as_ref().map(|s| s.sqn) else {
            return;
        };
        if let Some(sq) = self.parts.sq.as_mut() {
            sq.stats.errors += 1;
        }
        drain(self.parts.tx_cq.as_mut());
        let r = self.cycle_sq(sqn);
        let at_ns = self.ctl.platform().now_ns();
        self.report_fault(QueueFault {
            queue: QueueId::Sq(sqn),
            cause,
            at_ns,
            returned: *r.as_ref().unwrap_or(&0),
            recovered: r.is_ok(),
        });
    }

    fn cycle_rq(&mut self, rqn: Rqn) -> Result<usize, CmdError> {
        let state = self.ctl.exec(&QueryRq(rqn))?.state;
        if let Some(from) = state.filter(|s| *s != QueueState::Rst) {
            self.ctl.exec(&ModifyRq {
                rqn,
                from,
                to: QueueState::Rst,
            })?;
        }
        drain(self.parts.rx_cq.as_mut());
        let mut reposted = 0;
        if let Some(rq) = self.parts.rq.as_mut() {
            reposted = rq.entries();
            rq.reset();
        }
        self.ctl.exec(&ModifyRq {
            rqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        })?;
        if let Some(rq) = self.parts.rq.as_mut() {
            rq.commit();
        }
        self.rx_uncommitted = 0;
        Ok(reposted)
    }

    fn recover_rq(&mut self, cause: FaultCause) {
        let Some(rqn) = self.parts.rq.as_ref().map(|r| r.rqn) else {
            return;
        };
        if let Some(rq) = self.parts.rq.as_mut() {
            rq.stats.errors += 1;
        }
        drain(self.parts.rx_cq.as_mut());
        let r = self.cycle_rq(rqn);
        let at_ns = self.ctl.platform().now_ns();
        self.report_fault(QueueFault {
            queue: QueueId::Rq(rqn),
            cause,
            at_ns,
            returned: *r.as_ref().unwrap_or(&0),
            recovered: r.is_ok(),
        });
    }

    /// Reap transmit completions (and, in interrupt mode, the completion
    /// EQ, re-arming the CQs that had events). Returns completions seen.
    pub fn poll(&mut self) -> usize {
        let (mut tx_ev, mut rx_ev) = (false, false);
        if self.cfg.interrupts {
            let txc = self.parts.tx_cq.as_ref().map(|c| c.cqn);
            let rxc = self.parts.rx_cq.as_ref().map(|c| c.cqn);
            self.ctl.poll_comp_eq(self.res.eq_index, |cqn| {
                if Some(cqn) == txc {
                    tx_ev = true;
                } else if Some(cqn) == rxc {
                    rx_ev = true;
                }
            });
        }
        let mut n = 0;
        while let Some(cqe) = self.parts.tx_cq.as_mut().and_then(|c| c.pop()) {
            n += 1;
            if let Some(cause) = self.tx_completion(&cqe) {
                self.recover_sq(cause);
                break;
            }
        }
        let p = self.ctl.platform();
        if let Some(cq) = self.parts.tx_cq.as_mut() {
            if n > 0 {
                cq.update_ci();
            }
            if tx_ev {
                cq.event_seen();
                cq.arm(p);
            }
        }
        if rx_ev && let Some(cq) = self.parts.rx_cq.as_mut() {
            cq.event_seen();
            cq.arm(p);
        }
        n
    }

    /// One transmit CQE; `Some` when the queue needs recovery.
    #[inline]
    fn tx_completion(&mut self, cqe: &Cqe) -> Option<FaultCause> {
        if cqe.is_error() {
            return Some(FaultCause::ErrorCqe {
                opcode: cqe.opcode,
                syndrome: cqe.syndrome,
                vendor_syndrome: cqe.vendor_syndrome,
                wqe_counter: cqe.wqe_counter,
            });
        }
        if cqe.opcode != cq::opcode::REQ {
            return Some(FaultCause::BadOpcode(cqe.opcode));
        }
        let sq = self.parts.sq.as_mut()?;
        let free = &mut self.tx_free;
        match sq.complete(cqe, |id| free.push(id)) {
            Ok(_) => None,
            Err(_) => Some(FaultCause::BadCompletion {
                wqe_counter: cqe.wqe_counter,
            }),
        }
    }

    /// Write a frame of `len` bytes with `f` straight into a transmit
    /// buffer and queue its WQE (visible at [`EthPort::flush`]).
    #[inline]
    pub fn transmit<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        if len == 0 || len > self.max_frame() {
            return Err(TxError::BadLength(len));
        }
        let (Some(sq), Some(bufs)) = (self.parts.sq.as_mut(), self.parts.tx_bufs.as_ref()) else {
            return Err(TxError::Down);
        };
        let Some(id) = self.tx_free.pop() else {
            self.stats.tx_busy += 1;
            return Err(TxError::Busy);
        };
        let off = id as usize * self.tx_buf_size;
        let r = bufs.with_bytes_mut(off, len, f);
        match sq.post(bufs, off, len, self.res.lkey, id) {
            Ok(()) => Ok(r),
            Err(e) => {
                self.tx_free.push(id);
                Err(match e {
                    sq::TxError::Full => TxError::Busy,
                    sq::TxError::BadLength => TxError::BadLength(len),
                })
            }
        }
    }

    /// The next received frame, in place; its buffer is re-posted after
    /// `f` returns (doorbell record at [`EthPort::flush`] or every quarter
    /// ring).
    #[inline]
    pub fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let mut f = Some(f);
        loop {
            let cqe = self.parts.rx_cq.as_mut()?.pop()?;
            if cqe.is_error() {
                self.recover_rq(FaultCause::ErrorCqe {
                    opcode: cqe.opcode,
                    syndrome: cqe.syndrome,
                    vendor_syndrome: cqe.vendor_syndrome,
                    wqe_counter: cqe.wqe_counter,
                });
                return None;
            }
            if cqe.opcode != cq::opcode::RESP_SEND {
                self.recover_rq(FaultCause::BadOpcode(cqe.opcode));
                return None;
            }
            let rq = self.parts.rq.as_mut()?;
            let result = match rq.complete(&cqe) {
                Ok(frame) => {
                    let g = f.take()?;
                    let r = rq.with_frame(frame, |b| g(b, RxMeta::default()));
                    Some(r)
                }
                Err(RxError::Length { .. }) => {
                    self.stats.rx_length_errors += 1;
                    None
                }
                Err(RxError::WqeCounter { counter, .. }) => {
                    self.recover_rq(FaultCause::BadCompletion {
                        wqe_counter: counter,
                    });
                    return None;
                }
            };
            if let Some(rq) = self.parts.rq.as_mut() {
                rq.recycle(1);
                self.rx_uncommitted += 1;
                if self.rx_uncommitted >= rq.entries() / 4 {
                    self.commit_rx();
                }
            }
            if result.is_some() {
                return result;
            }
        }
    }

    fn commit_rx(&mut self) {
        if let Some(rq) = self.parts.rq.as_mut() {
            rq.commit();
        }
        if let Some(cq) = self.parts.rx_cq.as_ref() {
            cq.update_ci();
        }
        self.rx_uncommitted = 0;
    }

    /// One doorbell for every frame queued since the last flush, and the
    /// receive side's doorbell records.
    #[inline]
    pub fn flush(&mut self) {
        let p = self.ctl.platform();
        if let Some(sq) = self.parts.sq.as_mut() {
            sq.ring_doorbell(p);
        }
        if self.rx_uncommitted > 0 {
            self.commit_rx();
        }
    }

    pub fn tx_free(&self) -> usize {
        self.tx_free.len()
    }

    /// Counters as [`NetDevice::stats`] reports them.
    pub fn net_stats(&self) -> NetStats {
        let (mut s, z) = (NetStats::default(), Default::default());
        let sq = self.parts.sq.as_ref().map(|q| q.stats).unwrap_or(z);
        let rq = self.parts.rq.as_ref().map(|q| q.stats).unwrap_or_default();
        s.tx_packets = sq.packets;
        s.tx_bytes = sq.bytes;
        s.rx_packets = rq.packets;
        s.rx_bytes = rq.bytes;
        s.rx_no_buffer = self.stats.rx_no_buffer;
        s.errors = sq.errors + rq.errors + self.stats.rx_length_errors;
        s.recoveries = self.stats.recoveries;
        s
    }

    /// The shell's `rings`: one line per queue.
    pub fn rings(&self) -> String {
        let mut s = String::new();
        if let (Some(q), Some(c)) = (self.parts.sq.as_ref(), self.parts.tx_cq.as_ref()) {
            let _ = writeln!(
                s,
                "sq {:#x} cq {:#x} eq {} entries {} pc {} cc {} in_flight {} free_bufs {} inline {:?} doorbells {}",
                q.sqn.0,
                c.cqn.0,
                c.eqn.0,
                q.entries(),
                q.producer_counter(),
                q.consumer_counter(),
                q.in_flight(),
                self.tx_free.len(),
                q.inline_mode(),
                q.stats.doorbells
            );
        }
        if let (Some(q), Some(c)) = (self.parts.rq.as_ref(), self.parts.rx_cq.as_ref()) {
            let _ = writeln!(
                s,
                "rq {:#x} cq {:#x} eq {} entries {} buf {} posted {} cq_ci {} tir {:?} qcounter {:?}",
                q.rqn.0,
                c.cqn.0,
                c.eqn.0,
                q.entries(),
                q.buf_size(),
                q.posted(),
                c.consumer_index(),
                self.parts.tir.map(|t| t.0),
                self.parts.qc.map(|q| q.0)
            );
        }
        if let Some(st) = self.parts.steering.as_ref() {
            s.push_str(&st.report());
        }
        s
    }

    /// The shell's `stats`: per-queue counters, Q counter drops, faults.
    pub fn stats_report(&self) -> String {
        let mut s = String::new();
        if let Some(q) = self.parts.sq.as_ref() {
            let t = q.stats;
            let _ = writeln!(
                s,
                "tx: packets {} bytes {} doorbells {} completions {} busy {} errors {} recoveries {}",
                t.packets,
                t.bytes,
                t.doorbells,
                t.completions,
                self.stats.tx_busy,
                t.errors,
                t.recoveries
            );
        }
        if let Some(q) = self.parts.rq.as_ref() {
            let r = q.stats;
            let _ = writeln!(
                s,
                "rx: packets {} bytes {} no_buffer_drops {} length_errors {} errors {} recoveries {}",
                r.packets,
                r.bytes,
                self.stats.rx_no_buffer,
                self.stats.rx_length_errors,
                r.errors,
                r.recoveries
            );
        }
        let _ = writeln!(
            s,
            "faults {} recovered {} not recovered {}",
            self.stats.faults, self.stats.recoveries, self.stats.failed_recoveries
        );
        if let Some(f) = self.last_fault {
            let _ = writeln!(s, "last fault: {f}");
        }
        s
    }
}

/// Consume every CQE a CQ holds, publishing the consumer index.
fn drain<D: DmaRegion>(cq: Option<&mut Cq<D>>) {
    if let Some(cq) = cq {
        while cq.pop().is_some() {}
        cq.update_ci();
    }
}

impl<C: Control> NetDevice for EthPort<C> {
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
        Offloads::default()
    }
    fn poll(&mut self) -> usize {
        EthPort::poll(self)
    }
    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        EthPort::receive(self, f)
    }
    fn tx_free(&self) -> usize {
        EthPort::tx_free(self)
    }
    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxError> {
        EthPort::transmit(self, len, f)
    }
    fn flush(&mut self) {
        EthPort::flush(self)
    }
    fn stats(&self) -> NetStats {
        self.net_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::op;
    use crate::mock::{MockCtl, MockPlatform};
    use alloc::vec;
    use alloc::vec::Vec;

    const MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);

    fn res() -> Resources {
        Resources {
            pd: Pd(1),
            td: Tdn(2),
            uar: Uar(5),
            lkey: Lkey(0x100),
            eqn: Eqn(3),
            eq_index: 0,
            inline: InlineMode::L2,
            mac: MAC,
        }
    }

    fn cfg(interrupts: bool) -> EthConfig {
        EthConfig {
            log_sq: 3,
            log_rq: 3,
            cq_every: 4,
            interrupts,
            ..EthConfig::default()
        }
    }

    const OPEN_SEQUENCE: [u16; 14] = [
        op::ALLOC_Q_COUNTER,
        op::CREATE_CQ,
        op::CREATE_CQ,
        op::CREATE_TIS,
        op::CREATE_SQ,
        op::MODIFY_SQ,
        op::CREATE_RQ,
        op::MODIFY_RQ,
        op::CREATE_TIR,
        op::CREATE_FLOW_TABLE,
        op::CREATE_FLOW_GROUP,
        op::SET_FLOW_TABLE_ROOT,
        op::SET_FLOW_TABLE_ENTRY,
        op::SET_FLOW_TABLE_ENTRY,
    ];

    /// The device side of the mock: write a CQE, body first, op_own last.
    fn write_cqe(p: &MockPlatform, ring: u64, idx: usize, op_own: u8, counter: u16, bytes: u32) {
        let at = ring + (idx * 64) as u64;
        p.write(at + 0x2c, &bytes.to_be_bytes());
        p.write(at + 0x3c, &counter.to_be_bytes());
        p.write(at + 0x3f, &[op_own]);
    }

    fn error_cqe(p: &MockPlatform, ring: u64, idx: usize, op: u8, syndrome: u8, counter: u16) {
        let at = ring + (idx * 64) as u64;
        p.write(at + 0x37, &[syndrome]);
        write_cqe(p, ring, idx, op << 4, counter, 0);
    }

    #[test]
    fn open_and_close_run_the_prm_sequence_and_free_everything() {
        let port = EthPort::open(MockCtl::new(), res(), cfg(false)).unwrap();
        assert_eq!(port.control().ex.opcodes(), OPEN_SEQUENCE);
        let ex = &port.control().ex;
        // The RQ names the Q counter (id 1: the first object created).
        assert_eq!(ex.inputs(op::CREATE_RQ)[0][0x2c], 1);
        // The SQ goes through the TIS (id 4) and completes on CQ 2.
        let sq_in = ex.inputs(op::CREATE_SQ)[0];
        assert_eq!(&sq_in[0x28..0x2c], &[0, 0, 0, 2]);
        assert_eq!(&sq_in[0x4c..0x50], &[0, 0, 0, 4]);
        // Both flow entries forward to the TIR (id 9): the port MAC, then
        // broadcast.
        let ftes = ex.inputs(op::SET_FLOW_TABLE_ENTRY);
        assert_eq!(&ftes[0][0x88..0x8e], &MAC.0);
        assert_eq!(&ftes[1][0x88..0x8e], &[0xff; 6]);
        for f in &ftes {
            assert_eq!(&f[0x340..0x344], &[0x02, 0, 0, 9]);
        }
        // Every receive buffer posted before RDY.
        assert_eq!(port.rq().unwrap().posted(), 8);
        assert_eq!(port.tx_free(), 8);
        assert!(port.rings().contains("dmac 02:00:00:00:00:0a -> tir 9"));
        let (ctl, rep) = port.close();
        assert_eq!(rep, CloseReport::default());
        let closing: Vec<u16> = ctl.ex.opcodes()[OPEN_SEQUENCE.len()..].to_vec();
        assert_eq!(
            closing,
            [
                op::DELETE_FLOW_TABLE_ENTRY,
                op::DELETE_FLOW_TABLE_ENTRY,
                op::DESTROY_FLOW_GROUP,
                op::DESTROY_FLOW_TABLE,
                op::DESTROY_TIR,
                op::DESTROY_RQ,
                op::DESTROY_SQ,
                op::DESTROY_TIS,
                op::DESTROY_CQ,
                op::DESTROY_CQ,
                op::DEALLOC_Q_COUNTER
            ]
        );
        assert_eq!(ctl.p.live_regions(), 0);
    }

    #[test]
    fn a_failure_at_any_step_undoes_exactly_what_was_done() {
        let undo = |o: u16| match o {
            op::ALLOC_Q_COUNTER => Some(op::DEALLOC_Q_COUNTER),
            op::CREATE_CQ => Some(op::DESTROY_CQ),
            op::CREATE_TIS => Some(op::DESTROY_TIS),
            op::CREATE_SQ => Some(op::DESTROY_SQ),
            op::CREATE_RQ => Some(op::DESTROY_RQ),
            op::CREATE_TIR => Some(op::DESTROY_TIR),
            op::CREATE_FLOW_TABLE => Some(op::DESTROY_FLOW_TABLE),
            op::CREATE_FLOW_GROUP => Some(op::DESTROY_FLOW_GROUP),
            _ => None,
        };
        for failing in OPEN_SEQUENCE {
            let mut ctl = MockCtl::new();
            ctl.ex.fail_opcode = Some(failing);
            let f = EthPort::open(ctl, res(), cfg(true)).unwrap_err();
            assert_eq!(f.error.command().map(|c| c.opcode), Some(failing));
            let ops = f.control.ex.opcodes();
            let stop = ops.iter().position(|&o| o == failing).unwrap();
            for created in ops[..stop].iter().filter_map(|&o| undo(o)) {
                let made = ops[..stop]
                    .iter()
                    .filter(|&&o| undo(o) == Some(created))
                    .count();
                let undone = ops[stop..].iter().filter(|&&o| o == created).count();
                assert_eq!(made, undone, "{created:#x} after failing {failing:#x}");
            }
            assert_eq!(f.control.p.live_regions(), 0, "failing {failing:#x}");
        }
    }

    #[test]
    fn transmit_batch_rings_one_doorbell_and_completions_return_buffers() {
        let mut port = EthPort::open(MockCtl::new(), res(), cfg(false)).unwrap();
        let p = port.control().p.clone();
        let (ring, dbr) = port.sq().unwrap().ring_addr();
        for i in 0..3u8 {
            port.transmit(60, |b| b.fill(i)).unwrap();
        }
        assert_eq!(port.tx_free(), 5);
        assert_eq!(p.read(dbr + 4, 4), [0, 0, 0, 0], "not before flush");
        port.flush();
        assert_eq!(p.read(dbr + 4, 4), [0, 0, 0, 3]);
        // UAR 5 send doorbell: ctrl of WQE 2 (index 2, SEND, ds 4).
        assert_eq!(&p.s.borrow().bar0[0x5800..0x5804], &[0, 0, 0x02, 0x0a]);
        // WQE 1 inlines 18 bytes of frame 1.
        assert_eq!(p.read(ring + 64 + 0x1e, 2), [1, 1]);
        assert_eq!(port.transmit(0, |_| ()), Err(TxError::BadLength(0)));
        assert_eq!(port.transmit(1519, |_| ()), Err(TxError::BadLength(1519)));
        // The device completes WQE 2 (the only one that asked).
        let cq = port.tx_cq().unwrap().ring_addr();
        write_cqe(&p, cq, 0, 0x00, 2, 0);
        assert_eq!(port.poll(), 1);
        assert_eq!(port.tx_free(), 8);
        assert_eq!(p.read(port.tx_cq().unwrap().dbr_addr(), 4), [0, 0, 0, 1]);
        assert_eq!(port.net_stats().tx_packets, 3);
        assert_eq!(NetDevice::link(&port).speed_mbps, 100_000);
        assert_eq!(NetDevice::mac(&port), MAC.0);
        assert_eq!(NetDevice::offloads(&port), Offloads::default());
        // Busy when every buffer is in flight.
        for _ in 0..8 {
            port.transmit(64, |_| ()).unwrap();
        }
        assert_eq!(port.transmit(64, |_| ()), Err(TxError::Busy));
        let _ = port.close();
    }

    #[test]
    fn receive_in_place_and_recycle_in_batches() {
        let mut port = EthPort::open(MockCtl::new(), res(), cfg(false)).unwrap();
        let p = port.control().p.clone();
        let rq = port.rq().unwrap();
        let (_, rq_dbr) = rq.ring_addr();
        let b0 = rq.buf_addr(0);
        let cq = port.rx_cq().unwrap().ring_addr();
        let cq_dbr = port.rx_cq().unwrap().dbr_addr();
        assert!(port.receive(|_, _| ()).is_none());
        p.write(b0, &[0xde, 0xad, 0xbe, 0xef]);
        write_cqe(&p, cq, 0, 0x20, 0, 60);
        let got = port.receive(|b, _| (b.len(), b[..4].to_vec())).unwrap();
        assert_eq!(got, (60, vec![0xde, 0xad, 0xbe, 0xef]));
        // A byte count larger than the buffer: dropped and counted, the
        // buffer recycled; the next good frame is delivered.
        write_cqe(&p, cq, 1, 0x20, 1, 100_000);
        write_cqe(&p, cq, 2, 0x20, 2, 64);
        assert_eq!(port.receive(|b, _| b.len()), Some(64));
        assert_eq!(port.eth_stats().rx_length_errors, 1);
        // Three recycled: a quarter ring (2) is committed at once, the
        // third at flush.
        assert_eq!(p.read(rq_dbr, 4), [0, 0, 0, 10]);
        assert_eq!(p.read(cq_dbr, 4), [0, 0, 0, 2]);
        port.flush();
        assert_eq!(p.read(rq_dbr, 4), [0, 0, 0, 11]);
        assert_eq!(p.read(cq_dbr, 4), [0, 0, 0, 3]);
        // A completion for the wrong WQE is a fault: the RQ is cycled.
        write_cqe(&p, cq, 3, 0x20, 7, 64);
        assert!(port.receive(|_, _| ()).is_none());
        let f = port.last_fault().unwrap();
        assert_eq!(f.cause, FaultCause::BadCompletion { wqe_counter: 7 });
        assert!(f.recovered);
        let _ = port.close();
    }

    #[test]
    fn error_cqe_recovers_the_sq_and_returns_every_buffer() {
        let mut ctl = MockCtl::new();
        // QUERY_SQ reports ERR (sqc state [23:20] at out 0x20).
        ctl.ex
            .replies
            .push((op::QUERY_SQ, 0x20, vec![0x00, 0x30, 0, 0]));
        let mut port = EthPort::open(ctl, res(), cfg(false)).unwrap();
        let p = port.control().p.clone();
        port.inject_bad_lkey();
        for _ in 0..5 {
            port.transmit(100, |b| b.fill(7)).unwrap();
        }
        port.flush();
        let (ring, _) = port.sq().unwrap().ring_addr();
        assert_ne!(
            p.read(ring + 0x34, 4),
            [0, 0, 1, 0],
            "first WQE's lkey corrupted"
        );
        assert_eq!(p.read(ring + 64 + 0x34, 4), [0, 0, 1, 0]);
        // The device: WQE 0 fails (local protection), the rest flushed.
        let cq = port.tx_cq().unwrap().ring_addr();
        error_cqe(&p, cq, 0, 0xd, 0x04, 0);
        error_cqe(&p, cq, 1, 0xd, 0x05, 4);
        let before = port.control().ex.log.len();
        port.poll();
        let ops: Vec<u16> = port.control().ex.opcodes()[before..].to_vec();
        assert_eq!(ops, [op::QUERY_SQ, op::MODIFY_SQ, op::MODIFY_SQ]);
        let mods = port.control().ex.inputs(op::MODIFY_SQ);
        // ERR -> RST, then RST -> RDY (current state [31:28] of 0x08).
        assert_eq!(mods[1][0x08] >> 4, 3);
        assert_eq!(mods[1][0x21] >> 4, 0);
        assert_eq!(mods[2][0x08] >> 4, 0);
        assert_eq!(mods[2][0x21] >> 4, 1);
        let f = port.last_fault().unwrap();
        assert_eq!(
            f.cause,
            FaultCause::ErrorCqe {
                opcode: 0xd,
                syndrome: 0x04,
                vendor_syndrome: 0,
                wqe_counter: 0
            }
        );
        assert_eq!(f.returned, 5);
        assert!(f.recovered);
        assert!(alloc::format!("{f}").contains("local protection error"));
        assert_eq!(port.tx_free(), 8, "nothing leaked");
        assert_eq!(port.sq().unwrap().producer_counter(), 0);
        assert!(port.stats_report().contains("faults 1 recovered 1"));
        // Traffic resumes from WQE 0.
        port.transmit(60, |_| ()).unwrap();
        port.flush();
        assert_eq!(&p.s.borrow().bar0[0x5800..0x5804], &[0, 0, 0, 0x0a]);
        let _ = port.close();
    }

    #[test]
    fn interrupt_mode_consumes_the_eq_and_rearms_only_cqs_with_events() {
        let mut port = EthPort::open(MockCtl::new(), res(), cfg(true)).unwrap();
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
        let mut polled = EthPort::open(MockCtl::new(), res(), cfg(false)).unwrap();
        polled.poll();
        assert_eq!(polled.control().eq_polls, 0);
        assert_eq!(polled.tx_cq().unwrap().armed, 0);
    }

    #[test]
    fn the_packet_path_does_not_allocate() {
        use mlx5_sim::harness::thread_allocations;
        let mut port = EthPort::open(MockCtl::new(), res(), cfg(false)).unwrap();
        let p = port.control().p.clone();
        let txcq = port.tx_cq().unwrap().ring_addr();
        let rxcq = port.rx_cq().unwrap().ring_addr();
        // Warm up once (first uses of lazily initialised state).
        port.flush();
        let start = thread_allocations();
        let mut rx_ci = 0usize;
        for tx_ci in 0..1000usize {
            for _ in 0..4 {
                port.transmit(60, |b| b[0] = 1).unwrap();
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
