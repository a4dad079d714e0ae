//! The Ethernet data path of the function: the queue objects the commands
//! create ([`Nic`]), the transmit engine ([`tx`]: SQ doorbell -> WQEs ->
//! frames on the wire -> requester CQEs) and the receive engine ([`rx`]:
//! frame from the wire -> NIC_RX flow table -> TIR -> RQ -> responder CQE).
//!
//! Fast path rules: no allocation per frame (frame buffers come from the
//! wire's pool, WQEs are read into stack buffers, queue page lists are
//! shared `Arc`s), one doorbell-record read per doorbell or per empty RQ.
#![deny(unsafe_code)]

pub mod blueflame;
pub mod csum;
pub mod empw;
pub mod frame;
pub mod mini_cqe;
pub mod mpw;
pub mod rss;
pub mod rx;
pub mod tx;

use crate::cmd::{cq::Cqs, flow::Steering, rq::Rqs, rqt::Rqts, sq::Sqs, tir::Tirs, tis::Tises};
use crate::function::Function;
use crate::wire::Wire;

/// Queues, steering and the port's wire side.
#[derive(Debug, Default)]
pub struct Nic {
    pub cqs: Cqs,
    pub sqs: Sqs,
    pub rqs: Rqs,
    pub tises: Tises,
    pub tirs: Tirs,
    pub rqts: Rqts,
    pub flow: Steering,
    pub wire: Wire,
    /// SQs rung and not yet processed, in ring order.
    pub tx_pending: Vec<u32>,
    /// (UAR page, high dword) of 64-bit CQ arm doorbells whose low dword
    /// (the CQN) has not arrived yet; a Vec so arming never allocates.
    cq_arm_hi: Vec<(u32, u32)>,
    /// A large send gathered before segmentation (kept: no allocation per send).
    pub lso_buf: Vec<u8>,
    /// BlueFlame buffers being written.
    pub bf: blueflame::BlueFlame,
}

impl Nic {
    pub fn uses_uar(&self, uar: u32) -> bool {
        self.cqs.uses_uar(uar) || self.sqs.uses_uar(uar)
    }

    pub fn uses_q_counter(&self, id: u8) -> bool {
        self.rqs.map.values().any(|r| r.counter_set == id)
    }

    pub fn uses_pd(&self, pd: u32) -> bool {
        self.sqs.map.values().any(|s| s.wq.pd == pd)
            || self.rqs.map.values().any(|r| r.wq.pd == pd)
            || self.tises.uses_pd(pd)
    }

    pub fn uses_td(&self, td: u32) -> bool {
        self.tises.uses_td(td) || self.tirs.uses_td(td)
    }

    pub fn has_work(&self) -> bool {
        !self.tx_pending.is_empty()
    }
}

/// The fast path techniques the model saw used, for the control socket's
/// `stats`: `fastpath empw-sessions <n> compressed-sessions <n>
/// moderated-events <n> bf-doorbells <n> bf-mismatches <n> mpw-sessions
/// <n>`.
pub fn fast_path_line(nic: &Nic) -> String {
    let p = &nic.wire.stats;
    format!(
        "fastpath empw-sessions {} compressed-sessions {} moderated-events {} bf-doorbells {} bf-mismatches {} mpw-sessions {}",
        p.tx_empw_sessions,
        p.rx_compressed_sessions,
        p.cq_moderated_events,
        p.tx_bf_doorbells,
        p.tx_bf_mismatches,
        p.tx_mpw_sessions
    )
}

/// The transmit engine's own rate, for the control socket's `stats` and
/// the log at a client's disconnection: `tx-engine frames <n> busy-us <n>
/// peak frames <n> span-us <n> busy-us <n> pps <n> capacity-pps <n>`:
/// every frame the engine processed and its time on them, then the
/// stretch of work with the most frames ([`crate::wire::TxPeriod`]: no
/// pause of 100 ms in it), its frames per second of wall time and of the
/// engine's own time.
pub fn tx_engine_line(nic: &Nic) -> String {
    let c = &nic.wire.clock;
    let p = c.peak();
    format!(
        "tx-engine frames {} busy-us {} peak frames {} span-us {} busy-us {} pps {:.0} capacity-pps {:.0}",
        c.frames,
        c.busy.as_micros(),
        p.frames,
        p.span.as_micros(),
        p.busy.as_micros(),
        p.rate(),
        p.capacity()
    )
}

/// Why the port dropped received frames: `no-wqe <n> no-steering <n>
/// not-ready <n> link-down <n> bad-length <n> too-long <n> wqe-error <n>`
/// (the control socket's `wire` answer, after `port-drops`, also logged
/// at a client's disconnection).
pub fn rx_drop_reasons(p: &crate::wire::PortStats) -> String {
    format!(
        "no-wqe {} no-steering {} not-ready {} link-down {} bad-length {} too-long {} wqe-error {}",
        p.rx_dropped_no_wqe,
        p.rx_dropped_no_steering,
        p.rx_dropped_rq_not_ready,
        p.rx_dropped_link_down,
        p.rx_dropped_bad_length,
        p.rx_dropped_too_long,
        p.rx_dropped_wqe_error,
    )
}

/// UAR page offsets of the data path doorbells (PRM "UAR Page Layout").
pub mod uar_offset {
    /// CQ arm doorbell, 64-bit: sn << 28 | cmd << 24 | ci, then the CQN.
    pub const CQ_ARM: usize = 0x20;
    pub const CQ_ARM_LOW: usize = 0x24;
    /// Send doorbell (BlueFlame buffer 0 / 1): the first 8 bytes of the
    /// WQE's control segment; the second dword carries `sqn << 8 | ds`.
    pub const SEND_DB0: usize = 0x800;
    pub const SEND_DB0_LOW: usize = 0x804;
    pub const SEND_DB1: usize = 0x900;
    pub const SEND_DB1_LOW: usize = 0x904;
}

/// A data path doorbell write into UAR `page`; true when transmit work is
/// pending for [`run`]. Unknown offsets are not the data path's.
pub fn doorbell32(dev: &mut Function, page: u32, within: usize, value: u32) -> Option<bool> {
    use uar_offset::*;
    match within {
        CQ_ARM => {
            let latch = &mut dev.nic.cq_arm_hi;
            match latch.iter_mut().find(|(p, _)| *p == page) {
                Some(slot) => slot.1 = value,
                None => latch.push((page, value)),
            }
            Some(false)
        }
        CQ_ARM_LOW => {
            let latch = &mut dev.nic.cq_arm_hi;
            let hi = latch
                .iter()
                .position(|(p, _)| *p == page)
                .map(|i| latch.swap_remove(i).1);
            match hi {
                Some(hi) => crate::cmd::cq::arm_doorbell(dev, page, hi, value),
                None => {
                    log::debug!(target: "mlx5_sim::cq", "CQ arm low dword without high dword on UAR {page}: dropped");
                }
            }
            Some(false)
        }
        // The control segment's first 8 bytes, alone (the doorbell: the
        // high dword tells the model nothing the doorbell record does
        // not) or the start of a BlueFlame write of the WQE's first 64.
        w if blueflame::is_bf(w) => Some(blueflame::write(dev, page, w, value)),
        _ => None,
    }
}

/// Run pending transmit work (timed for [`crate::wire::TxClock`]).
pub fn run(dev: &mut Function) {
    if dev.nic.tx_pending.is_empty() {
        return;
    }
    let start = std::time::Instant::now();
    let before = dev.nic.wire.processed;
    while !dev.nic.tx_pending.is_empty() {
        let sqn = dev.nic.tx_pending.remove(0);
        tx::process(dev, sqn);
    }
    let w = &mut dev.nic.wire;
    let frames = w.processed - before;
    if frames != 0 {
        w.clock.ran(start, std::time::Instant::now(), frames);
    }
}

/// Tear down every data path object (DISABLE_HCA, TEARDOWN_HCA, reset).
pub fn teardown(dev: &mut Function) {
    crate::cmd::flow::destroy_all(dev);
    dev.nic.tirs.clear();
    dev.nic.rqts.clear();
    crate::cmd::rq::destroy_all(dev);
    crate::cmd::sq::destroy_all(dev);
    dev.nic.tises.clear();
    crate::cmd::cq::destroy_all(dev);
    dev.nic.cq_arm_hi.clear();
    dev.nic.wire.clear_outgoing();
}
