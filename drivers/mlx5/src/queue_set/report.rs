//! What a queue set reports of itself, as values: its rings
//! ([`RingsReport`], the shell's `rings`) and counters
//! ([`QueueSetStats`], the shell's `stats`). The kernel turns them into
//! text.

use alloc::vec::Vec;

use super::{EthStats, QueueFault, QueueSet};
use crate::control::Control;
use crate::cq::Cqn;
use crate::eq::Eqn;
use crate::flow::Ftn;
use crate::q_counter::QCounterId;
use crate::rq::{RqStats, Rqn};
use crate::rqt::Rqtn;
use crate::sq::{SqStats, Sqn};
use crate::steering::SteeringReport;
use crate::tir::Tirn;
use crate::wqe::InlineMode;

/// The send queue and its CQ.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SqRing {
    pub sqn: Sqn,
    pub cqn: Cqn,
    pub eqn: Eqn,
    pub entries: usize,
    /// Producer and consumer counters (WQEBBs).
    pub pc: u16,
    pub cc: u16,
    pub in_flight: usize,
    /// Free transmit buffers.
    pub free_bufs: usize,
    pub inline: InlineMode,
    pub doorbells: u64,
}

/// One receive queue and its CQ.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RqRing {
    /// Its place among the queue set's receive queues.
    pub index: usize,
    pub rqn: Rqn,
    pub cqn: Cqn,
    pub eqn: Eqn,
    pub entries: usize,
    /// Bytes per WQE buffer.
    pub buf_size: usize,
    pub posted: usize,
    /// The CQ's consumer index.
    pub cq_ci: u32,
    pub packets: u64,
    /// The direct TIR and the Q counter of the queue set.
    pub tir: Option<Tirn>,
    pub q_counter: Option<QCounterId>,
}

/// RSS: the RQT over the receive queues, the indirect TIRs and the
/// traffic-type table.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RssRing {
    pub rqt: Rqtn,
    pub queues: usize,
    pub tirs: Vec<Tirn>,
    pub traffic_table: Option<Ftn>,
}

/// The queue set's rings, and the steering it owns.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RingsReport {
    pub sq: Option<SqRing>,
    pub rqs: Vec<RqRing>,
    pub rss: Option<RssRing>,
    pub steering: Option<SteeringReport>,
}

/// The queue set's counters: the SQ's, the receive queues' summed (`None`
/// without them), its own, and the last fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct QueueSetStats {
    pub tx: Option<SqStats>,
    pub rx: Option<RqStats>,
    pub eth: EthStats,
    pub last_fault: Option<QueueFault>,
}

impl<C: Control> QueueSet<C> {
    /// The shell's `rings`: every queue, RSS, the steering.
    pub fn rings(&self) -> RingsReport {
        let sq = match (self.parts.sq.as_ref(), self.parts.tx_cq.as_ref()) {
            (Some(q), Some(c)) => Some(SqRing {
                sqn: q.sqn,
                cqn: c.cqn,
                eqn: c.eqn,
                entries: q.entries(),
                pc: q.producer_counter(),
                cc: q.consumer_counter(),
                in_flight: q.in_flight(),
                free_bufs: q.free_buffers(),
                inline: q.inline_mode(),
                doorbells: q.stats.doorbells,
            }),
            _ => None,
        };
        let rqs = self
            .parts
            .rx
            .iter()
            .enumerate()
            .filter_map(|(index, x)| {
                let (q, c) = (x.rq.as_ref()?, &x.cq);
                Some(RqRing {
                    index,
                    rqn: q.rqn,
                    cqn: c.cqn,
                    eqn: c.eqn,
                    entries: q.entries(),
                    buf_size: q.buf_size(),
                    posted: q.posted(),
                    cq_ci: c.consumer_index(),
                    packets: q.stats.packets,
                    tir: self.parts.tir,
                    q_counter: self.parts.qc,
                })
            })
            .collect();
        let rss = self.parts.rqt.map(|rqt| RssRing {
            rqt,
            queues: self.parts.rx.len(),
            tirs: self.parts.rss.to_vec(),
            traffic_table: self.parts.traffic.as_ref().map(|t| t.table),
        });
        RingsReport {
            sq,
            rqs,
            rss,
            steering: self.parts.steering.as_ref().map(|s| s.report()),
        }
    }

    /// The shell's `stats`: per-queue counters, Q counter drops, faults.
    pub fn stats_report(&self) -> QueueSetStats {
        QueueSetStats {
            tx: self.parts.sq.as_ref().map(|q| q.stats),
            rx: (!self.parts.rx.is_empty()).then(|| self.rx_stats()),
            eth: self.stats,
            last_fault: self.last_fault,
        }
    }
}
