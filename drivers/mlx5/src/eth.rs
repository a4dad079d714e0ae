//! The Ethernet data path of one port: a transmit CQ and SQ (through a
//! TIS; MTU buffers plus a few 64 KiB LSO buffers), one or more receive
//! queues (a CQ and an RQ each, striding where the part has it, cyclic
//! elsewhere) behind a direct TIR or, with RSS, an RQT, indirect TIRs
//! per traffic type and a traffic-type flow table, a Q counter, and the
//! port's steering ([`PortSteering`]: its MAC and broadcast, multicast
//! addresses, VNIC rules, promiscuous / all-multicast modes).
//! [`EthPort`] owns the adapter (any [`Control`]) and implements
//! [`cxos_drivers::NetDevice`] for it, offloads included
//! ([`EthPort::offloads`]).
//!
//! Fast path ([`EthPort::transmit`], [`EthPort::transmit_with`], [`EthPort::receive`],
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
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use cxos_drivers::{
    Clock, DmaAlloc, DmaRegion, FilterError, L3Proto, L4Proto, LinkState, NetDevice, NetStats,
    Offloads, Platform, Region, RxMeta, TxError, TxMeta,
};

use crate::adapter::Adapter;
use crate::cmd::Exec;
use crate::cq::{self, Cq, Cqn};
use crate::cqe::{self, Cqe};
use crate::eq::{CompEq, Eqn};
use crate::error::{BadConfig, CmdError, Error, Missing, Unsupported};
use crate::flow::{BROADCAST, Destination, FlowError};
use crate::flow_counter::Traffic;
use crate::pd::{Lkey, Pd, Tdn};
use crate::q_counter::{self, AllocQCounter, QCounterId, QueryQCounter};
use crate::rq::{self, CreateRq, ModifyRq, QueryRq, Rq, RqKind, Rqn, RxError};
use crate::rqt::{self, CreateRqt, Rqtn};
use crate::sq::{self, CreateSq, ModifySq, QuerySq, Sq, Sqn, TxOpts};
use crate::steering::{PortSteering, SteeringConfig};
use crate::steering::{RssTirs, TrafficTable};
use crate::tir::{self, CreateTirDirect, CreateTirIndirect, HashedTraffic, Tirn};
use crate::tis::{self, CreateTis, Tisn};
use crate::uar::Uar;
use crate::vport::Mac;
use crate::wq::QueueState;
use crate::wqe::InlineMode;

/// What the data path needs from the adapter: commands, the platform's
/// DMA allocator, MMIO and clock handles (cloned into the queues, so the
/// packet path reaches none of them through the adapter), completion
/// events, and a place for memory the device may still reference.
pub trait Control: Exec {
    type P: Platform;
    fn dma(&self) -> &<Self::P as Platform>::Dma;
    fn mmio(&self) -> &<Self::P as Platform>::Mmio;
    fn clock(&self) -> &<Self::P as Platform>::Clock;
    /// Pop completion events of completion EQ `index` (calling `f` with
    /// each CQN) and re-arm it.
    fn poll_comp_eq(&mut self, index: usize, f: impl FnMut(Cqn)) -> usize;
    /// Completion EQ `index` as a shared handle (its own lock), for data
    /// paths that share the adapter and poll their EQs without it (VNICs);
    /// `None` when there is no such EQ or it cannot be shared.
    fn shared_comp_eq(&self, index: usize) -> Option<Arc<CompEq<Self::P>>>;
    /// Keep memory whose queue could not be destroyed.
    fn retire(&mut self, mem: Region<Self::P>);
    /// Link state as last read from the port registers.
    fn link(&self) -> LinkState;
    /// Completion EQs there are, and the number of the one at `index`
    /// (receive queues spread over them).
    fn comp_eq_count(&self) -> usize {
        1
    }
    fn comp_eqn(&self, index: usize) -> Option<Eqn> {
        let _ = index;
        None
    }
}

impl<P: Platform> Control for Adapter<P> {
    type P = P;
    fn dma(&self) -> &P::Dma {
        self.platform().dma()
    }
    fn mmio(&self) -> &P::Mmio {
        self.platform().mmio()
    }
    fn clock(&self) -> &P::Clock {
        self.platform().clock()
    }
    fn poll_comp_eq(&mut self, index: usize, f: impl FnMut(Cqn)) -> usize {
        Adapter::poll_comp_eq(self, index, f)
    }
    fn shared_comp_eq(&self, index: usize) -> Option<Arc<CompEq<P>>> {
        Adapter::shared_comp_eq(self, index)
    }
    fn retire(&mut self, mem: Region<P>) {
        Adapter::retire(self, mem)
    }
    fn comp_eq_count(&self) -> usize {
        self.comp_eqs().len()
    }
    fn comp_eqn(&self, index: usize) -> Option<Eqn> {
        self.comp_eqs().get(index).map(|e| e.0)
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

type Dma<C> = Region<<C as Control>::P>;
type Plat<C> = <C as Control>::P;

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
    /// What the part offers the data path.
    pub caps: PortCaps,
}

/// Data path capabilities of the part (`per_protocol_networking_offload_caps`
/// and `cmd_hca_cap`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PortCaps {
    /// `csum_cap`: transmit checksum insertion, receive verification.
    pub csum: bool,
    /// `vlan_cap`: receive VLAN stripping.
    pub vlan_strip: bool,
    /// `wqe_vlan_insert`: the Ethernet segment's `insert`.
    pub vlan_insert: bool,
    /// `max_lso_cap`: log2 of the largest LSO message (0: none).
    pub log_max_lso: u8,
    /// `striding_rq` and the stride sizes it takes (log2 bytes).
    pub striding_rq: bool,
    pub log_min_stride: u8,
    pub log_max_stride: u8,
}

impl PortCaps {
    pub fn of(c: &crate::caps::Caps) -> PortCaps {
        let on = c.general.eth_net_offloads;
        PortCaps {
            csum: on && c.eth.csum,
            vlan_strip: on && c.eth.vlan,
            vlan_insert: on && c.eth.wqe_vlan_insert,
            log_max_lso: if on { c.eth.max_lso } else { 0 },
            striding_rq: c.general.striding_rq,
            log_min_stride: c.general.log_min_stride_sz_rq,
            log_max_stride: c.general.log_max_stride_sz_rq,
        }
    }
}

impl Resources {
    /// From an attached adapter (completion EQ 0).
    pub fn of<P: Platform>(a: &Adapter<P>) -> Result<Resources, Error> {
        let (eqn, _) = *a.comp_eqs().first().ok_or(Missing::CompEq)?;
        let inline =
            InlineMode::resolve(a.caps().eth.wqe_inline_mode, a.vport().min_wqe_inline_mode)
                .map_err(Unsupported::InlineMode)?;
        Ok(Resources {
            pd: a.pd().ok_or(Missing::Pd)?,
            td: a.tdn().ok_or(Missing::TransportDomain)?,
            uar: a.uar().ok_or(Missing::Uar)?,
            lkey: a.reserved_lkey().ok_or(Missing::ReservedLkey)?,
            eqn,
            eq_index: 0,
            inline,
            mac: a.mac(),
            caps: PortCaps::of(a.caps()),
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
    /// log2 of the root flow table size (2^n - 2 MACs: the port's,
    /// broadcast, multicast groups, VNICs).
    pub flow_log_size: u8,
    /// log2 of each per-MAC VLAN table's size (2^n - 1 VLANs per MAC).
    pub vlan_log_size: u8,
    /// Strip VLAN tags on receive into [`RxMeta::vlan`] (when the part
    /// can); off: tagged frames arrive as they were on the wire.
    pub vlan_strip: bool,
    /// 64 KiB transmit buffers for LSO frames (0: no LSO).
    pub lso_bufs: u8,
    /// Receive queues (each with its own CQ, spread over the completion
    /// EQs); more than one spreads flows by RSS (rounded down to a power
    /// of two).
    pub rss_queues: u8,
    /// The Toeplitz key of the RSS TIRs.
    pub rss_key: [u8; 40],
    /// Cyclic or striding (multi-packet) receive queues.
    pub rq_kind: RqChoice,
}

/// Which receive queue kind [`EthPort::open`] creates.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum RqChoice {
    /// Striding where the part has it (`striding_rq`), cyclic elsewhere.
    #[default]
    Auto,
    Cyclic,
    /// Striding, or the open fails on a part without it.
    Striding,
}

impl Default for EthConfig {
    fn default() -> Self {
        Self {
            mtu: 1500,
            log_sq: 9,
            log_rq: 9,
            cq_every: 32,
            interrupts: true,
            flow_log_size: 6,
            vlan_log_size: 4,
            vlan_strip: false,
            lso_bufs: 4,
            rss_queues: 1,
            rss_key: crate::rss::DEFAULT_KEY,
            rq_kind: RqChoice::Auto,
        }
    }
}

/// Ethernet header plus one VLAN tag.
pub const L2_OVERHEAD: usize = 18;
/// One LSO transmit buffer: the largest LSO frame, 64-byte aligned.
pub const LSO_BUF_SIZE: usize = sq::MAX_LSO_FRAME.div_ceil(64) * 64;
/// Header room kept out of the LSO payload limit (any Ethernet + IP + TCP
/// headers fit).
pub const LSO_HEADROOM: usize = 256;

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
                cqe::syndrome::name(syndrome)
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
    rqt: Option<Rqtn>,
    /// Indirect TIRs, with RSS.
    rss: Vec<Tirn>,
    traffic: Option<TrafficTable>,
    steering: Option<PortSteering>,
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
            rqt: None,
            rss: Vec::new(),
            traffic: None,
            steering: None,
        }
    }
}

/// Receive queue sizes ([`EthPort::rx_geometry`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct RxGeometry {
    kind: RqKind,
    log_wqes: u8,
    buf_size: usize,
    cq_log: u8,
}

/// One receive queue: its CQ, its RQ, and receive buffers recycled since
/// the last doorbell-record update.
struct RxQueue<P: Platform> {
    cq: Cq<P>,
    rq: Option<Rq<P>>,
    uncommitted: usize,
    /// The completion EQ reported this CQ since the last re-arm.
    event: bool,
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
    parts: Parts<Plat<C>>,
    tx_buf_size: usize,
    /// Free transmit buffer ids (capacity fixed at open): ids below
    /// `n_tx` are MTU buffers, the rest LSO buffers.
    tx_free: Vec<u32>,
    lso_free: Vec<u32>,
    n_tx: u32,
    /// Receive queue to look at first (round robin).
    rx_next: usize,
    /// Completion EQ indexes the port's CQs use (interrupt mode).
    eq_indexes: Vec<usize>,
    stats: EthStats,
    last_fault: Option<QueueFault>,
    /// Whether the port creates (and owns) the adapter's steering; a VNIC's
    /// port does not: its rules live in the shared steering of
    /// [`crate::vnic::Nic`].
    own_steering: bool,
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
        Self::open_with(ctl, res, cfg, true)
    }

    /// [`EthPort::open`] without steering: queues, TIS/TIR (RQT and
    /// traffic table with RSS) only; nothing reaches the port until
    /// someone adds a rule to [`EthPort::destination`] (a VNIC).
    pub(crate) fn open_queues(
        ctl: C,
        res: Resources,
        cfg: EthConfig,
    ) -> Result<Self, OpenFailure<C>> {
        Self::open_with(ctl, res, cfg, false)
    }

    fn open_with(
        ctl: C,
        res: Resources,
        cfg: EthConfig,
        own_steering: bool,
    ) -> Result<Self, OpenFailure<C>> {
        let frame = cfg.mtu + L2_OVERHEAD;
        let mut port = EthPort {
            ctl,
            res,
            cfg,
            parts: Parts::default(),
            tx_buf_size: frame.div_ceil(64) * 64,
            tx_free: Vec::new(),
            lso_free: Vec::new(),
            n_tx: 0,
            rx_next: 0,
            eq_indexes: Vec::new(),
            stats: EthStats::default(),
            last_fault: None,
            own_steering,
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
        if cfg.mtu < 68 || cfg.mtu + L2_OVERHEAD > sq::MAX_FRAME {
            return Err(BadConfig::Mtu(cfg.mtu).into());
        }
        if !(1..=15).contains(&cfg.log_sq) {
            return Err(BadConfig::LogSq(cfg.log_sq).into());
        }
        if !(1..=15).contains(&cfg.log_rq) {
            return Err(BadConfig::LogRq(cfg.log_rq).into());
        }
        let qc = self.ctl.exec(&AllocQCounter)?;
        self.parts.qc = Some(qc);

        // As many CQEs as WQEs: a CQ never overflows. Receive queue i
        // completes on completion EQ i mod the EQ count.
        let n_rx = self.rx_queue_target();
        let n_eqs = self.ctl.comp_eq_count().max(1);
        self.parts.rx = Vec::with_capacity(n_rx);
        self.eq_indexes = Vec::with_capacity(n_eqs.min(n_rx) + 1);
        self.eq_indexes.push(r.eq_index);
        for i in 0..=n_rx {
            let rx = i > 0;
            let log = if rx {
                self.rx_geometry().cq_log
            } else {
                cfg.log_sq
            };
            let (eq_index, eqn) = if rx && n_rx > 1 {
                let k = (i - 1) % n_eqs;
                match self.ctl.comp_eqn(k) {
                    Some(e) => (k, e),
                    None => (r.eq_index, r.eqn),
                }
            } else {
                (r.eq_index, r.eqn)
            };
            if !self.eq_indexes.contains(&eq_index) {
                self.eq_indexes.push(eq_index);
            }
            let ring = cq::alloc_ring(self.ctl.dma(), log)?;
            let cmd = Cq::<Plat<C>>::create_cmd(&ring, log, r.uar, eqn);
            let cqn = match self.ctl.exec(&cmd) {
                Ok(c) => c,
                Err(e) => return Err(self.failed_create(e, [ring.mem])),
            };
            let cq = Cq::new(cqn, eqn, ring, log, r.uar, self.ctl.mmio().clone());
            if rx {
                self.parts.rx.push(RxQueue {
                    cq,
                    rq: None,
                    uncommitted: 0,
                    event: false,
                });
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
        let tx_bufs = self.ctl.dma().dma_alloc(n_tx * self.tx_buf_size)?;
        self.parts.tx_bufs = Some(tx_bufs);
        let ring = Sq::<Plat<C>>::alloc_ring(self.ctl.dma(), cfg.log_sq)?;
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
            self.ctl.mmio().clone(),
        ));
        self.ctl.exec(&ModifySq {
            sqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        })?;
        self.tx_free = Vec::with_capacity(n_tx);
        self.tx_free.extend((0..n_tx as u32).rev());
        self.n_tx = n_tx as u32;
        if self.lso_max() > 0 {
            let n = cfg.lso_bufs as usize;
            self.parts.lso_bufs = Some(self.ctl.dma().dma_alloc(n * LSO_BUF_SIZE)?);
            self.lso_free = Vec::with_capacity(n);
            self.lso_free.extend((0..n as u32).rev());
        }

        let mut rqns = Vec::with_capacity(n_rx);
        let geo = self.rx_geometry();
        if geo.kind == RqKind::Cyclic && cfg.rq_kind == RqChoice::Striding {
            return Err(Unsupported::StridingRq.into());
        }
        for i in 0..n_rx {
            let (ring, bufs, buf_size) =
                Rq::<Plat<C>>::alloc(self.ctl.dma(), geo.log_wqes, geo.buf_size)?;
            let cmd = CreateRq {
                cqn: self.parts.rx[i].cq.cqn,
                pd: r.pd,
                dbr_addr: ring.dbr_addr(),
                log_size: geo.log_wqes,
                counter_set_id: qc.0,
                vlan_strip: self.vlan_strip(),
                kind: geo.kind,
                pages: ring.pages(),
            };
            let rqn = match self.ctl.exec(&cmd) {
                Ok(q) => q,
                Err(e) => return Err(self.failed_create(e, [ring.mem, bufs])),
            };
            // Every WQE written and posted before the RQ becomes ready.
            let mut rq = Rq::new(
                rqn,
                ring,
                bufs,
                buf_size,
                geo.log_wqes,
                r.lkey,
                self.ctl.mmio().clone(),
            );
            if let RqKind::Striding {
                log_strides,
                log_stride,
            } = geo.kind
            {
                rq = rq.striding(log_strides, log_stride);
            }
            self.parts.rx[i].rq = Some(rq);
            self.ctl.exec(&ModifyRq {
                rqn,
                from: QueueState::Rst,
                to: QueueState::Rdy,
            })?;
            rqns.push(rqn);
        }

        let tir = self.ctl.exec(&CreateTirDirect {
            rqn: rqns[0],
            td: r.td,
        })?;
        self.parts.tir = Some(tir);
        let mut to = Destination::Tir(tir);
        if n_rx > 1 {
            let rqt = self.ctl.exec(&CreateRqt { rqns })?;
            self.parts.rqt = Some(rqt);
            let mut tirs = [tir; 6];
            for (k, (ipv6, udp)) in [
                (false, Some(false)),
                (false, Some(true)),
                (true, Some(false)),
                (true, Some(true)),
                (false, None),
                (true, None),
            ]
            .into_iter()
            .enumerate()
            {
                let t = self.ctl.exec(&CreateTirIndirect {
                    rqt,
                    td: r.td,
                    key: cfg.rss_key,
                    traffic: HashedTraffic { ipv6, udp },
                })?;
                self.parts.rss.push(t);
                tirs[k] = t;
            }
            let tt = TrafficTable::create(
                &mut self.ctl,
                &RssTirs {
                    ipv4_tcp: tirs[0],
                    ipv4_udp: tirs[1],
                    ipv6_tcp: tirs[2],
                    ipv6_udp: tirs[3],
                    ipv4: tirs[4],
                    ipv6: tirs[5],
                    other: tir,
                },
            )?;
            to = Destination::Table(tt.table);
            self.parts.traffic = Some(tt);
        }

        if self.own_steering {
            let scfg = SteeringConfig {
                log_root: cfg.flow_log_size,
                log_vlan: cfg.vlan_log_size,
            };
            let mut steering = PortSteering::create(&mut self.ctl, scfg)?;
            for mac in [r.mac, BROADCAST] {
                if let Err(e) = steering.add_rule(&mut self.ctl, mac, None, to) {
                    let _ = steering.destroy(&mut self.ctl);
                    return Err(e.into());
                }
            }
            self.parts.steering = Some(steering);
        }

        if cfg.interrupts {
            if let Some(cq) = self.parts.tx_cq.as_mut() {
                cq.arm();
            }
            for q in self.parts.rx.iter_mut() {
                q.cq.arm();
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
        if let Some(t) = self.parts.traffic.take() {
            let r = t.destroy(&mut self.ctl);
            note(&mut rep, r);
        }
        while let Some(t) = self.parts.rss.pop() {
            let r = self.ctl.exec(&tir::destroy_tir(t));
            note(&mut rep, r);
        }
        if let Some(t) = self.parts.tir.take() {
            let r = self.ctl.exec(&tir::destroy_tir(t));
            note(&mut rep, r);
        }
        if let Some(t) = self.parts.rqt.take() {
            let r = self.ctl.exec(&rqt::destroy_rqt(t));
            note(&mut rep, r);
        }
        for i in (0..self.parts.rx.len()).rev() {
            if let Some(q) = self.parts.rx[i].rq.take() {
                let r = self.ctl.exec(&rq::destroy_rq(q.rqn));
                if !note(&mut rep, r) {
                    let (ring, bufs) = q.into_parts();
                    self.ctl.retire(ring.mem);
                    self.ctl.retire(bufs);
                }
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
        for b in [self.parts.tx_bufs.take(), self.parts.lso_bufs.take()]
            .into_iter()
            .flatten()
        {
            if !sq_gone {
                self.ctl.retire(b);
            }
        }
        self.tx_free.clear();
        self.lso_free.clear();
        if let Some(t) = self.parts.tis.take() {
            let r = self.ctl.exec(&tis::destroy_tis(t));
            note(&mut rep, r);
        }
        let mut cqs: Vec<Cq<Plat<C>>> = Vec::new();
        while let Some(q) = self.parts.rx.pop() {
            cqs.push(q.cq);
        }
        cqs.extend(self.parts.tx_cq.take());
        for cq in cqs {
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

    /// The receive queues' kind and sizes. Cyclic: 2^log_rq buffers of
    /// MTU + 18 bytes, a CQE per buffer. Striding: WQEs of 512 strides of
    /// 64 bytes (or the part's smallest stride), as many as take about the
    /// cyclic ring's memory (at least 4), a CQE per stride.
    fn rx_geometry(&self) -> RxGeometry {
        let cfg = self.cfg;
        let c = self.res.caps;
        let frame = cfg.mtu + L2_OVERHEAD;
        let striding = match cfg.rq_kind {
            RqChoice::Cyclic => false,
            RqChoice::Auto | RqChoice::Striding => c.striding_rq,
        };
        let log_stride = c.log_min_stride.max(crate::wq::LOG_STRIDE_SZ_BASE);
        let log_strides = crate::wq::LOG_NUM_STRIDES_BASE;
        let wqe = 1usize << (log_strides + log_stride);
        if !striding || frame > wqe || (c.log_max_stride != 0 && log_stride > c.log_max_stride) {
            return RxGeometry {
                kind: RqKind::Cyclic,
                log_wqes: cfg.log_rq,
                buf_size: frame,
                cq_log: cfg.log_rq,
            };
        }
        let cyclic_bytes = (frame.div_ceil(64) * 64) << cfg.log_rq;
        let log_wqes = (cyclic_bytes / wqe).max(4).ilog2() as u8;
        RxGeometry {
            kind: RqKind::Striding {
                log_strides,
                log_stride,
            },
            log_wqes,
            buf_size: wqe,
            cq_log: (log_wqes + log_strides).min(22),
        }
    }

    /// Receive queues the configuration asks for: a power of two, at
    /// least one, no more than the RQT may hold.
    fn rx_queue_target(&self) -> usize {
        let n = (self.cfg.rss_queues.max(1) as usize).min(64);
        1 << n.ilog2()
    }

    /// The RQT and indirect TIRs of an RSS port.
    pub fn rqt(&self) -> Option<Rqtn> {
        self.parts.rqt
    }

    pub fn rss_tirs(&self) -> &[Tirn] {
        &self.parts.rss
    }

    /// Where the port's steering rules forward: the traffic-type table
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

    /// Receive queue 0's CQ.
    pub fn rx_cq(&self) -> Option<&Cq<Plat<C>>> {
        self.rx_cq_at(0)
    }

    pub fn tir(&self) -> Option<Tirn> {
        self.parts.tir
    }

    pub fn steering(&self) -> Option<&PortSteering> {
        self.parts.steering.as_ref()
    }

    /// The port's steering, for adding and removing (MAC, VLAN) -> TIR
    /// rules (VNICs), with the adapter to run the commands on.
    pub fn steering_mut(&mut self) -> (Option<&mut PortSteering>, &mut C) {
        (self.parts.steering.as_mut(), &mut self.ctl)
    }

    /// Run `f` on the steering and the adapter; the port's destination
    /// is passed.
    fn with_steering<R>(
        &mut self,
        f: impl FnOnce(&mut PortSteering, &mut C, Destination) -> Result<R, FlowError>,
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
    /// the port's TIR). Adding it twice is not an error.
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

    /// What the flow counter of the port's rule for (`mac`, `vlan`) saw.
    pub fn flow_traffic(&mut self, mac: Mac, vlan: Option<u16>) -> Result<Traffic, FlowError> {
        self.with_steering(|st, c, _| st.traffic(c, mac, vlan))
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
        let (free, lso, n_tx) = (&mut self.tx_free, &mut self.lso_free, self.n_tx);
        let returned = self
            .parts
            .sq
            .as_mut()
            .map(|sq| sq.reset(|id| give_back(free, lso, n_tx, id)))
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
        let at_ns = self.ctl.clock().now_ns();
        self.report_fault(QueueFault {
            queue: QueueId::Sq(sqn),
            cause,
            at_ns,
            returned: *r.as_ref().unwrap_or(&0),
            recovered: r.is_ok(),
        });
    }

    fn cycle_rq(&mut self, q: usize, rqn: Rqn) -> Result<usize, CmdError> {
        let state = self.ctl.exec(&QueryRq(rqn))?.state;
        if let Some(from) = state.filter(|s| *s != QueueState::Rst) {
            self.ctl.exec(&ModifyRq {
                rqn,
                from,
                to: QueueState::Rst,
            })?;
        }
        let mut reposted = 0;
        if let Some(x) = self.parts.rx.get_mut(q) {
            drain(Some(&mut x.cq));
            if let Some(rq) = x.rq.as_mut() {
                reposted = rq.entries();
                rq.reset();
            }
        }
        self.ctl.exec(&ModifyRq {
            rqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        })?;
        if let Some(x) = self.parts.rx.get_mut(q) {
            if let Some(rq) = x.rq.as_mut() {
                rq.commit();
            }
            x.uncommitted = 0;
        }
        Ok(reposted)
    }

    fn recover_rq(&mut self, q: usize, cause: FaultCause) {
        let Some(x) = self.parts.rx.get_mut(q) else {
            return;
        };
        let Some(rq) = x.rq.as_mut() else {
            return;
        };
        rq.stats.errors += 1;
        let rqn = rq.rqn;
        drain(Some(&mut x.cq));
        let r = self.cycle_rq(q, rqn);
        let at_ns = self.ctl.clock().now_ns();
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
        let mut tx_ev = false;
        if self.cfg.interrupts {
            let txc = self.parts.tx_cq.as_ref().map(|c| c.cqn);
            let rx = &mut self.parts.rx;
            for &idx in &self.eq_indexes {
                self.ctl.poll_comp_eq(idx, |cqn| {
                    if Some(cqn) == txc {
                        tx_ev = true;
                    } else if let Some(q) = rx.iter_mut().find(|q| q.cq.cqn == cqn) {
                        q.event = true;
                    }
                });
            }
        }
        let mut n = 0;
        while let Some(cqe) = self.parts.tx_cq.as_mut().and_then(|c| c.pop()) {
            n += 1;
            if let Some(cause) = self.tx_completion(&cqe) {
                self.recover_sq(cause);
                break;
            }
        }
        if let Some(cq) = self.parts.tx_cq.as_mut() {
            if n > 0 {
                cq.update_ci();
            }
            if tx_ev {
                cq.event_seen();
                cq.arm();
            }
        }
        for q in self.parts.rx.iter_mut().filter(|q| q.event) {
            q.event = false;
            q.cq.event_seen();
            q.cq.arm();
        }
        n
    }

    /// One transmit CQE; `Some` when the queue needs recovery.
    #[inline]
    fn tx_completion(&mut self, cqe: &Cqe) -> Option<FaultCause> {
        if cqe.is_error() {
            return Some(FaultCause::ErrorCqe {
                opcode: cqe.opcode(),
                syndrome: cqe.syndrome(),
                vendor_syndrome: cqe.vendor_syndrome(),
                wqe_counter: cqe.wqe_counter(),
            });
        }
        if cqe.opcode() != cqe::opcode::REQ {
            return Some(FaultCause::BadOpcode(cqe.opcode()));
        }
        let sq = self.parts.sq.as_mut()?;
        let (free, lso, n_tx) = (&mut self.tx_free, &mut self.lso_free, self.n_tx);
        match sq.complete(cqe, |id| give_back(free, lso, n_tx, id)) {
            Ok(_) => None,
            Err(_) => Some(FaultCause::BadCompletion {
                wqe_counter: cqe.wqe_counter(),
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
        self.transmit_with(len, TxMeta::default(), f)
    }

    /// [`EthPort::transmit`] with offloads ([`NetDevice::transmit_with`]):
    /// an LSO frame goes into one of the LSO buffers and may be up to
    /// [`EthPort::lso_max`] payload bytes long.
    #[inline]
    pub fn transmit_with<R>(
        &mut self,
        len: usize,
        meta: TxMeta,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        let caps = self.res.caps;
        if (meta.csum && !caps.csum)
            || (meta.vlan.is_some() && !self.vlan_insert())
            || (meta.lso.is_some() && self.lso_max() == 0)
        {
            return Err(TxError::Unsupported);
        }
        // A tag the device inserts makes the frame on the wire 4 bytes
        // longer: the untagged frame (or each LSO segment) must leave room.
        let tag = if meta.vlan.is_some() { 4 } else { 0 };
        let max = match meta.lso {
            Some(l) => {
                if l.mss as usize + l.header_len as usize + tag > self.max_frame() {
                    return Err(TxError::BadLength(len));
                }
                (l.header_len as usize + self.lso_max()).min(sq::MAX_LSO_FRAME)
            }
            None => self.max_frame() - tag,
        };
        if len == 0 || len > max {
            return Err(TxError::BadLength(len));
        }
        let lso = meta.lso.is_some();
        let (Some(sq), Some(bufs)) = (
            self.parts.sq.as_mut(),
            if lso {
                self.parts.lso_bufs.as_ref()
            } else {
                self.parts.tx_bufs.as_ref()
            },
        ) else {
            return Err(TxError::Down);
        };
        let popped = if lso {
            self.lso_free.pop()
        } else {
            self.tx_free.pop()
        };
        let Some(slot) = popped else {
            self.stats.tx_busy += 1;
            return Err(TxError::Busy);
        };
        let (off, id) = if lso {
            (slot as usize * LSO_BUF_SIZE, self.n_tx + slot)
        } else {
            (slot as usize * self.tx_buf_size, slot)
        };
        let r = bufs.with_bytes_mut(off, len, f);
        let opts = TxOpts {
            csum: meta.csum,
            vlan: meta.vlan,
            mss: meta.lso.map(|l| l.mss),
            header_len: meta.lso.map_or(0, |l| l.header_len),
        };
        match sq.post_with(bufs, off, len, self.res.lkey, id, opts) {
            Ok(()) => Ok(r),
            Err(e) => {
                give_back(&mut self.tx_free, &mut self.lso_free, self.n_tx, id);
                Err(match e {
                    sq::TxError::Full => TxError::Busy,
                    sq::TxError::BadLength => TxError::BadLength(len),
                    sq::TxError::BadLso => TxError::BadLso,
                })
            }
        }
    }

    /// Largest LSO payload the port sends (0: no LSO).
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

    /// Per-frame receive information from a responder CQE.
    #[inline]
    fn rx_meta(&mut self, cqe: &Cqe) -> RxMeta {
        let mut m = RxMeta::default();
        if self.vlan_strip() && cqe.has_vlan() {
            m.vlan = Some(cqe.vlan_tci());
            self.stats.rx_vlan_stripped += 1;
        }
        m.rss_hash = cqe.rss_hash();
        if !self.res.caps.csum {
            return m;
        }
        m.l3 = cqe.l3();
        m.l4 = cqe.l4();
        m.l3_csum_ok = m.l3 == L3Proto::Ipv4 && cqe.l3_ok();
        m.l4_csum_ok = m.l4 != L4Proto::Other && cqe.l4_ok();
        m.csum_ok = m.l4_csum_ok && (m.l3 == L3Proto::Ipv6 || m.l3_csum_ok);
        if m.csum_ok {
            self.stats.rx_csum_ok += 1;
        } else if m.l4 != L4Proto::Other || (m.l3 == L3Proto::Ipv4 && !m.l3_csum_ok) {
            self.stats.rx_csum_bad += 1;
        }
        m
    }

    /// The next received frame, in place; its buffer is re-posted after
    /// `f` returns (doorbell record at [`EthPort::flush`] or every quarter
    /// ring).
    #[inline]
    pub fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let n = self.parts.rx.len();
        let mut f = Some(f);
        for k in 0..n {
            let q = if n == 1 { 0 } else { (self.rx_next + k) % n };
            if let Some(r) = self.receive_on(q, &mut f) {
                if n > 1 {
                    self.rx_next = (q + 1) % n;
                }
                return Some(r);
            }
            f.as_ref()?;
        }
        None
    }

    /// The next frame of receive queue `q`, if it has one.
    #[inline]
    fn receive_on<R, F: FnOnce(&[u8], RxMeta) -> R>(
        &mut self,
        q: usize,
        f: &mut Option<F>,
    ) -> Option<R> {
        loop {
            let cqe = self.parts.rx.get_mut(q)?.cq.pop()?;
            if cqe.is_error() {
                self.recover_rq(
                    q,
                    FaultCause::ErrorCqe {
                        opcode: cqe.opcode(),
                        syndrome: cqe.syndrome(),
                        vendor_syndrome: cqe.vendor_syndrome(),
                        wqe_counter: cqe.wqe_counter(),
                    },
                );
                return None;
            }
            if cqe.opcode() != cqe::opcode::RESP_SEND {
                self.recover_rq(q, FaultCause::BadOpcode(cqe.opcode()));
                return None;
            }
            let mut meta = self.rx_meta(&cqe);
            meta.queue = q as u16;
            let x = self.parts.rx.get_mut(q)?;
            let rq = x.rq.as_mut()?;
            let (result, releases) = match rq.complete(&cqe) {
                Ok(frame) => {
                    let g = f.take()?;
                    let r = rq.with_frame(frame, |b| g(b, meta));
                    (Some(r), frame.releases)
                }
                Err(RxError::Length { releases, .. }) => {
                    self.stats.rx_length_errors += 1;
                    (None, releases)
                }
                Err(RxError::Filler { releases }) => (None, releases),
                Err(RxError::WqeCounter { counter, .. }) => {
                    self.recover_rq(
                        q,
                        FaultCause::BadCompletion {
                            wqe_counter: counter,
                        },
                    );
                    return None;
                }
            };
            if releases > 0
                && let Some(rq) = x.rq.as_mut()
            {
                rq.recycle(releases as usize);
                x.uncommitted += releases as usize;
                if x.uncommitted >= rq.entries() / 4 {
                    commit_rx(x);
                }
            }
            if result.is_some() {
                return result;
            }
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
            if x.uncommitted > 0 {
                commit_rx(x);
            }
        }
    }

    pub fn tx_free(&self) -> usize {
        self.tx_free.len()
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
        for (i, x) in self.parts.rx.iter().enumerate() {
            let (Some(q), c) = (x.rq.as_ref(), &x.cq) else {
                continue;
            };
            let _ = writeln!(
                s,
                "rq{i} {:#x} cq {:#x} eq {} entries {} buf {} posted {} cq_ci {} packets {} tir {:?} qcounter {:?}",
                q.rqn.0,
                c.cqn.0,
                c.eqn.0,
                q.entries(),
                q.buf_size(),
                q.posted(),
                c.consumer_index(),
                q.stats.packets,
                self.parts.tir.map(|t| t.0),
                self.parts.qc.map(|q| q.0)
            );
        }
        if let Some(rqt) = self.parts.rqt {
            let _ = writeln!(
                s,
                "rss: rqt {} over {} queues, indirect tirs {:?}, traffic table {:?}",
                rqt.0,
                self.parts.rx.len(),
                self.parts.rss.iter().map(|t| t.0).collect::<Vec<_>>(),
                self.parts.traffic.as_ref().map(|t| t.table.0)
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
        if !self.parts.rx.is_empty() {
            let r = self.rx_stats();
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
        let t = self.parts.sq.as_ref().map(|q| q.stats).unwrap_or_default();
        let r = self.rx_stats();
        let _ = writeln!(
            s,
            "offloads: tx csum {} vlan {} lso {}; rx csum_ok {} csum_bad {} vlan_stripped {}; striding fillers {} wqes {}",
            t.csum,
            t.vlan_insert,
            t.lso,
            self.stats.rx_csum_ok,
            self.stats.rx_csum_bad,
            self.stats.rx_vlan_stripped,
            r.fillers,
            r.wqes_done
        );
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

/// Return transmit buffer `id` to its free stack.
#[inline]
fn give_back(free: &mut Vec<u32>, lso: &mut Vec<u32>, n_tx: u32, id: u32) {
    if id < n_tx {
        free.push(id);
    } else {
        lso.push(id - n_tx);
    }
}

/// Post a receive queue's recycled buffers (doorbell record) and publish
/// its CQ's consumer index.
#[inline]
fn commit_rx<P: Platform>(x: &mut RxQueue<P>) {
    if let Some(rq) = x.rq.as_mut() {
        rq.commit();
    }
    x.cq.update_ci();
    x.uncommitted = 0;
}

/// Consume every CQE a CQ holds, publishing the consumer index.
fn drain<P: Platform>(cq: Option<&mut Cq<P>>) {
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
        EthPort::offloads(self)
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
    fn transmit_with<R>(
        &mut self,
        len: usize,
        meta: TxMeta,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        EthPort::transmit_with(self, len, meta, f)
    }
    fn flush(&mut self) {
        EthPort::flush(self)
    }
    fn stats(&self) -> NetStats {
        self.net_stats()
    }
    fn add_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        if mac[0] & 1 == 0 {
            return Err(FilterError::Unsupported);
        }
        Ok(EthPort::add_multicast(self, Mac(mac))?)
    }
    fn remove_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        Ok(EthPort::remove_multicast(self, Mac(mac))?)
    }
    fn set_promiscuous(&mut self, on: bool) -> Result<(), FilterError> {
        Ok(EthPort::set_promisc(self, on)?)
    }
    fn set_all_multicast(&mut self, on: bool) -> Result<(), FilterError> {
        Ok(EthPort::set_allmulti(self, on)?)
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
            caps: PortCaps {
                csum: true,
                vlan_strip: true,
                vlan_insert: true,
                log_max_lso: 16,
                ..PortCaps::default()
            },
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

    const OPEN_SEQUENCE: [u16; 19] = [
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
        op::CREATE_FLOW_GROUP,
        op::CREATE_FLOW_GROUP,
        op::SET_FLOW_TABLE_ROOT,
        op::ALLOC_FLOW_COUNTER,
        op::SET_FLOW_TABLE_ENTRY,
        op::MODIFY_NIC_VPORT_CONTEXT,
        op::ALLOC_FLOW_COUNTER,
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
        // Both flow entries forward to the TIR (id 9) and count: the port
        // MAC, then broadcast.
        let ftes = ex.inputs(op::SET_FLOW_TABLE_ENTRY);
        assert_eq!(&ftes[0][0x88..0x8e], &MAC.0);
        assert_eq!(&ftes[1][0x88..0x8e], &[0xff; 6]);
        for f in &ftes {
            assert_eq!(&f[0x340..0x344], &[0x02, 0, 0, 9]);
            assert_eq!(&f[0x4c..0x50], &[0, 0, 0, 0x0c]);
        }
        // The vport's unicast list gets the port MAC (the multicast list
        // is cleared: broadcast needs no entry).
        let lists = ex.inputs(op::MODIFY_NIC_VPORT_CONTEXT);
        assert_eq!(&lists[0][0x1f0..0x1f4], &[0, 0, 0, 1]);
        assert_eq!(&lists[0][0x202..0x208], &MAC.0);
        // Every receive buffer posted before RDY.
        assert_eq!(port.rq().unwrap().posted(), 8);
        assert_eq!(port.tx_free(), 8);
        assert!(
            port.rings().contains("dmac 02:00:00:00:00:0a -> tir 9"),
            "{}",
            port.rings()
        );
        let (ctl, rep) = port.close();
        assert_eq!(rep, CloseReport::default());
        let closing: Vec<u16> = ctl.ex.opcodes()[OPEN_SEQUENCE.len()..].to_vec();
        assert_eq!(
            closing,
            [
                op::DELETE_FLOW_TABLE_ENTRY,
                op::DEALLOC_FLOW_COUNTER,
                op::DELETE_FLOW_TABLE_ENTRY,
                op::DEALLOC_FLOW_COUNTER,
                op::DESTROY_FLOW_GROUP,
                op::DESTROY_FLOW_GROUP,
                op::DESTROY_FLOW_GROUP,
                op::DESTROY_FLOW_TABLE,
                op::MODIFY_NIC_VPORT_CONTEXT,
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
    fn rss_open_builds_rqt_indirect_tirs_and_the_traffic_table() {
        let c = EthConfig {
            rss_queues: 4,
            ..cfg(false)
        };
        let port = EthPort::open(MockCtl::new(), res(), c).unwrap();
        assert_eq!(port.rx_queues(), 4);
        let ex = &port.control().ex;
        assert_eq!(ex.inputs(op::CREATE_RQ).len(), 4);
        // CQs: the SQ's and one per receive queue.
        assert_eq!(ex.inputs(op::CREATE_CQ).len(), 5);
        // The RQT lists the four RQs in queue order (rq_num list at 0x110).
        let rqt = ex.inputs(op::CREATE_RQT)[0];
        assert_eq!(&rqt[0x38..0x3c], &[0, 0, 0, 4]);
        for i in 0..4 {
            let rqn = port.rq_at(i).unwrap().rqn.0;
            assert_eq!(&rqt[0x110 + 4 * i..0x114 + 4 * i], &rqn.to_be_bytes());
        }
        // One direct and six indirect TIRs with the configured key.
        let tirs = ex.inputs(op::CREATE_TIR);
        assert_eq!(tirs.len(), 7);
        for t in &tirs[1..] {
            assert_eq!(t[0x24] >> 4, 1, "indirect");
            assert_eq!(&t[0x48..0x70], &crate::rss::DEFAULT_KEY);
        }
        // The traffic-type table is level 3; the port's root entries
        // forward to it (destination type 1).
        let tables = ex.inputs(op::CREATE_FLOW_TABLE);
        assert_eq!(tables[0][0x19], 3);
        let tt = port.destination().unwrap();
        assert!(matches!(tt, Destination::Table(_)));
        let ftes = ex.inputs(op::SET_FLOW_TABLE_ENTRY);
        // 7 traffic-type entries, then the MAC and broadcast.
        assert_eq!(ftes.len(), 9);
        assert_eq!(ftes[7][0x340], 0x01);
        assert_eq!(ftes[8][0x340], 0x01);
        let (ctl, rep) = port.close();
        assert_eq!(rep, CloseReport::default());
        let count = |o: u16| ctl.ex.opcodes().iter().filter(|&&x| x == o).count();
        assert_eq!(count(op::CREATE_TIR), count(op::DESTROY_TIR));
        assert_eq!(count(op::CREATE_RQ), count(op::DESTROY_RQ));
        assert_eq!(count(op::CREATE_CQ), count(op::DESTROY_CQ));
        assert_eq!(count(op::CREATE_RQT), count(op::DESTROY_RQT));
        assert_eq!(count(op::CREATE_FLOW_TABLE), count(op::DESTROY_FLOW_TABLE));
        assert_eq!(count(op::CREATE_FLOW_GROUP), count(op::DESTROY_FLOW_GROUP));
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
            op::ALLOC_FLOW_COUNTER => Some(op::DEALLOC_FLOW_COUNTER),
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
        assert_eq!(
            NetDevice::offloads(&port),
            Offloads {
                tx_ipv4_csum: true,
                tx_l4_csum: true,
                rx_csum: true,
                lso_max: 65536 - 256,
                vlan_insert: true,
                vlan_strip: false,
            }
        );
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
    fn receive_meta_from_the_cqe_checksum_flags_types_and_vlan() {
        let c = EthConfig {
            vlan_strip: true,
            ..cfg(false)
        };
        let mut port = EthPort::open(MockCtl::new(), res(), c).unwrap();
        let p = port.control().p.clone();
        let cq = port.rx_cq().unwrap().ring_addr();
        // (hds_ip_ext 0x1c, l4_l3_hdr_type 0x1d, vlan_info 0x1e) -> meta
        let cases: [(u8, u8, u16, RxMeta); 5] = [
            // IPv4 (l3 2 in [3:2]) TCP ack+data (4 in [6:4]), L3 and L4
            // OK, stripped tag 0x0064 ([0] set).
            (
                0x06,
                0x49,
                0x0064,
                RxMeta {
                    csum_ok: true,
                    vlan: Some(0x64),
                    l3: L3Proto::Ipv4,
                    l4: L4Proto::Tcp,
                    l3_csum_ok: true,
                    l4_csum_ok: true,
                    ..RxMeta::default()
                },
            ),
            // IPv6 (1) UDP (2), L4 OK: good (IPv6 has no header checksum).
            (
                0x04,
                0x24,
                0,
                RxMeta {
                    csum_ok: true,
                    l3: L3Proto::Ipv6,
                    l4: L4Proto::Udp,
                    l4_csum_ok: true,
                    ..RxMeta::default()
                },
            ),
            // IPv4 UDP with a bad UDP checksum: L3 OK only.
            (
                0x02,
                0x28,
                0,
                RxMeta {
                    l3: L3Proto::Ipv4,
                    l4: L4Proto::Udp,
                    l3_csum_ok: true,
                    ..RxMeta::default()
                },
            ),
            // IPv4 TCP with a bad header checksum: L4 OK alone is not
            // enough.
            (
                0x04,
                0x18,
                0,
                RxMeta {
                    l3: L3Proto::Ipv4,
                    l4: L4Proto::Tcp,
                    l4_csum_ok: true,
                    ..RxMeta::default()
                },
            ),
            // Not IP: the OK bits mean nothing.
            (0x07, 0x00, 0, RxMeta::default()),
        ];
        for (i, (ok, ht, vlan, want)) in cases.into_iter().enumerate() {
            let at = cq + (i * 64) as u64;
            p.write(at + 0x1c, &[ok, ht]);
            p.write(at + 0x1e, &vlan.to_be_bytes());
            write_cqe(&p, cq, i, 0x20, i as u16, 60);
            let got = port.receive(|_, m| m).unwrap();
            assert_eq!(got, want, "case {i}");
        }
        let s = port.eth_stats();
        assert_eq!((s.rx_csum_ok, s.rx_csum_bad, s.rx_vlan_stripped), (2, 2, 1));
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
