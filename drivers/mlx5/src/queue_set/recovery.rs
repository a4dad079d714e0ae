//! Queue faults and their recovery: an error CQE (or a completion the
//! driver refuses) is recorded as a [`QueueFault`] (fault record, console
//! line), the queue is taken out of use and moved to RST and back to RDY
//! ([`super::pending`]: off the packet path, never waiting for the
//! device), transmit buffers in flight go back to the free stack,
//! receive buffers are posted again; all counted in [`super::EthStats`].

use core::fmt;

use cxos_drivers::{Clock, Platform};

use super::QueueSet;
use super::pending::{Cycle, Plan, Target};
use crate::control::Control;
use crate::cq::Cq;
use crate::cqe;
use crate::error::CmdError;
use crate::fault::{FaultAction, FaultClass, FaultObject, FaultOutcome, FaultRecord, Verdict};
use crate::rq::Rqn;
use crate::sq::Sqn;

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
    /// A CQE naming another queue (`qpn`) than the one its CQ serves.
    WrongQueue { qpn: u32 },
    /// An asynchronous work queue error event (WQ catastrophic 0x05,
    /// invalid request 0x10, access error 0x11) naming the queue.
    AsyncEvent { event: u8 },
    /// WQEs outstanding and no completion for the transmit timeout.
    TxTimeout { pending: u16, wqe_counter: u16 },
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
            FaultCause::WrongQueue { qpn } => write!(f, "CQE for queue {qpn:#x}")?,
            FaultCause::AsyncEvent { event } => write!(f, "work queue error event {event:#x}")?,
            FaultCause::TxTimeout {
                pending,
                wqe_counter,
            } => write!(
                f,
                "transmit timeout: {pending} WQEs pending at {wqe_counter}"
            )?,
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

impl QueueFault {
    /// The fault record ([`crate::fault`]) of this queue fault.
    pub fn record(&self) -> FaultRecord {
        let (mut class, object) = match self.queue {
            QueueId::Sq(s) => (FaultClass::SqErr, FaultObject::Sq(s.0)),
            QueueId::Rq(r) => (FaultClass::RqErr, FaultObject::Rq(r.0)),
        };
        match self.cause {
            FaultCause::AsyncEvent { .. } => class = FaultClass::WqCatastrophic,
            FaultCause::TxTimeout { .. } => class = FaultClass::TxTimeout,
            _ => {}
        }
        let mut r = FaultRecord::new(class, object, self.at_ns);
        r = match self.cause {
            FaultCause::ErrorCqe {
                syndrome,
                vendor_syndrome,
                wqe_counter,
                ..
            } => r
                .syndromes(syndrome.into(), vendor_syndrome.into())
                .wqe_counter(wqe_counter),
            FaultCause::BadCompletion { wqe_counter } => r.wqe_counter(wqe_counter),
            FaultCause::BadOpcode(op) => r.detail("cqe_opcode", op.into()),
            FaultCause::WrongQueue { qpn } => r.detail("qpn", qpn.into()),
            FaultCause::AsyncEvent { event } => r.detail("event", event.into()),
            FaultCause::TxTimeout {
                pending,
                wqe_counter,
            } => r.wqe_counter(wqe_counter).detail("pending", pending.into()),
        };
        r = r.detail("returned", self.returned as u64);
        r.action(
            FaultAction::QueueReset,
            if self.recovered {
                FaultOutcome::Recovered
            } else {
                FaultOutcome::Escalate
            },
        )
    }
}

/// Why a queue could not be cycled back to RDY.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum CycleError {
    Cmd(CmdError),
    /// Receive frames are still handed out: their slots cannot be
    /// posted again yet.
    FramesOut,
    /// The device answered a command other than the one the step was
    /// waiting for (a driver bug: each step holds only its own).
    Stage,
}

impl From<CmdError> for CycleError {
    fn from(e: CmdError) -> Self {
        CycleError::Cmd(e)
    }
}

impl<C: Control> QueueSet<C> {
    /// Record how a queue fault went (console line, adapter log): a new
    /// record, or the `pending` one settled; count it, keep it as the
    /// last fault.
    #[cold]
    pub(super) fn record_outcome(
        &mut self,
        fault: QueueFault,
        pending: Option<FaultRecord>,
        action: FaultAction,
        outcome: FaultOutcome,
    ) {
        let mut r = fault.record().action(action, outcome);
        match pending {
            Some(p) => {
                r.seq = p.seq;
                self.ctl.settle_fault(r);
            }
            None => {
                self.ctl.record_fault(r);
                self.stats.faults += 1;
            }
        }
        match outcome {
            FaultOutcome::Recovered => self.stats.recoveries += 1,
            FaultOutcome::Failed | FaultOutcome::Escalate => self.stats.failed_recoveries += 1,
            FaultOutcome::Deferred | FaultOutcome::Reported | FaultOutcome::Pending => {}
        }
        self.last_fault = Some(fault);
    }

    /// A fault of the SQ. `now`: found by the periodic check, which may
    /// start commands; else by the packet path, which issues none.
    #[cold]
    pub(super) fn sq_fault(&mut self, cause: FaultCause, now: bool) {
        if let Some(sqn) = self.parts.sq.as_ref().map(|s| s.sqn) {
            self.queue_fault(Target::Sq(sqn), cause, false, now);
        }
    }

    /// A fault of receive queue `q` (as [`QueueSet::sq_fault`]).
    #[cold]
    pub(super) fn rq_fault(&mut self, q: usize, cause: FaultCause, now: bool) {
        if let Some(rqn) = self.rq_at(q).map(|r| r.rqn) {
            self.queue_fault(Target::Rq(q, rqn), cause, false, now);
        }
    }

    /// A fault of receive queue `q` found in the middle of a compressed
    /// session (the packet path): the ring's own structure (the title's
    /// count, where the mini-CQE arrays are) came from the device and
    /// cannot be trusted, so the consumer index cannot be brought back in
    /// step with what the device wrote by draining it; the CQ (and with
    /// it the RQ) is recreated instead ([`QueueSet::recreate_rx_cq`]).
    /// Outside a session, or while frames are handed out (they own
    /// buffers of the RQ that would go), this is [`QueueSet::rq_fault`].
    #[cold]
    pub(super) fn rx_ring_fault(&mut self, q: usize, cause: FaultCause) {
        if let Some(rqn) = self.rq_at(q).map(|r| r.rqn) {
            self.queue_fault(Target::Rq(q, rqn), cause, true, false);
        }
    }

    /// Every queue fault: the CQ drained (the ring recreated instead when
    /// `ring` allows), recorded once (a queue deferred or recovering
    /// already is not again), then as the policy says: recovered
    /// ([`QueueSet::begin_recovery`]), deferred to the end of the grace
    /// period (the periodic check), or escalated (port-level reset, else
    /// the function reset the record asks the owner for). A receive
    /// queue with frames handed out waits for them (deferred). Until its
    /// recovery ends the queue is out of use.
    fn queue_fault(&mut self, target: Target, cause: FaultCause, ring: bool, now: bool) {
        let (queue, q) = match target {
            Target::Sq(s) => (QueueId::Sq(s), 0),
            Target::Rq(q, r) => (QueueId::Rq(r), q),
        };
        let deferred = self.watch.is_deferred(queue);
        let frames_out =
            self.rq_at(q).is_some_and(|r| r.outstanding() != 0) && matches!(target, Target::Rq(..));
        let ring = ring
            && !deferred
            && !frames_out
            && self.parts.rx.get(q).is_some_and(|x| x.cq.in_session());
        if !ring {
            self.drain_cq_of(target);
        }
        if deferred || self.recovering(queue) {
            // Recorded once already; its recovery is on its way.
            return;
        }
        match target {
            Target::Sq(_) => {
                if let Some(sq) = self.parts.sq.as_mut() {
                    sq.stats.errors += 1;
                }
            }
            Target::Rq(q, _) => {
                if let Some(rq) = self.parts.rx.get_mut(q).and_then(|x| x.rq.as_mut()) {
                    rq.stats.errors += 1;
                }
            }
        }
        let at_ns = self.ctl.clock().now_ns();
        let fault = QueueFault {
            queue,
            cause,
            at_ns,
            returned: 0,
            recovered: false,
        };
        let object = match target {
            Target::Sq(s) => FaultObject::Sq(s.0),
            Target::Rq(_, r) => FaultObject::Rq(r.0),
        };
        let verdict = if frames_out {
            Verdict::Defer { until_ns: at_ns }
        } else {
            self.ctl.fault_verdict(object)
        };
        match verdict {
            Verdict::Recover => {
                let plan = if ring {
                    Plan::RxRing(q)
                } else {
                    Plan::Queue(Cycle::new(target))
                };
                self.begin_recovery(fault, plan, now);
            }
            Verdict::Defer { until_ns } => {
                if ring {
                    self.drain_cq_of(target);
                }
                self.halt_target(target);
                self.watch.defer(queue, q, cause, until_ns);
                self.record_outcome(fault, None, FaultAction::Deferred, FaultOutcome::Deferred);
            }
            Verdict::Escalate => match self.port_plan() {
                Some(p) => self.begin_recovery(fault, p, now),
                None => {
                    self.halt_target(target);
                    self.record_outcome(
                        fault,
                        None,
                        FaultAction::FunctionReset,
                        FaultOutcome::Escalate,
                    );
                }
            },
        }
    }

    fn drain_cq_of(&mut self, target: Target) {
        match target {
            Target::Sq(_) => drain(self.parts.tx_cq.as_mut()),
            Target::Rq(q, _) => drain(self.parts.rx.get_mut(q).map(|x| &mut x.cq)),
        }
    }
}

/// Consume the CQEs a CQ holds (at most one ring's worth: a device that
/// keeps writing cannot hold the caller here), publishing the consumer
/// index.
pub(super) fn drain<P: Platform>(cq: Option<&mut Cq<P>>) {
    if let Some(cq) = cq {
        for _ in 0..cq.entries() {
            if cq.pop().is_none() {
                break;
            }
        }
        cq.update_ci();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::fault::{FaultAction, FaultClass, FaultOutcome};

    /// The packet path issues no command: the poll that finds the error
    /// records it (`outcome=pending`), the SQ takes no more frames, and
    /// the recovery step cycles it; then the record says how it went.
    #[test]
    fn error_cqe_recovers_the_sq_and_returns_every_buffer() {
        let mut ctl = MockCtl::new();
        // QUERY_SQ reports ERR (sqc state [23:20] at out 0x20).
        ctl.ex
            .replies
            .push((op::QUERY_SQ, 0x20, vec![0x00, 0x30, 0, 0]));
        let mut port = QueueSet::open(ctl, res(), cfg(false)).unwrap();
        let p = port.control().p.clone();
        for _ in 0..5 {
            port.transmit(100, |b| b.fill(7)).unwrap();
        }
        port.flush();
        // The device: WQE 0 fails (local protection), the rest flushed.
        let cq = port.tx_cq().unwrap().ring_addr();
        error_cqe(&p, cq, 0, 0xd, 0x04, 0);
        error_cqe(&p, cq, 1, 0xd, 0x05, 4);
        let before = port.control().ex.log.len();
        port.poll();
        assert_eq!(port.control().ex.log.len(), before, "no command in poll");
        let rec = *port.control().faults.last().unwrap();
        assert_eq!(
            (rec.action, rec.outcome),
            (FaultAction::QueueReset, FaultOutcome::Pending)
        );
        assert_eq!(
            port.transmit(60, |_| ()).unwrap_err(),
            cxos_drivers::TxError::Busy,
            "nothing posted to an SQ in error"
        );
        assert_eq!(port.recoveries_pending(), 1);
        assert_eq!(port.run_pending_recoveries(), 0);
        let ops: Vec<u16> = port.control().ex.opcodes()[before..].to_vec();
        assert_eq!(ops, [op::QUERY_SQ, op::MODIFY_SQ, op::MODIFY_SQ]);
        let done = *port.control().faults.last().unwrap();
        assert_eq!(done.seq, rec.seq, "settled in place");
        assert_eq!(
            (done.action, done.outcome, done.detail),
            (
                FaultAction::QueueReset,
                FaultOutcome::Recovered,
                Some(("returned", 5))
            )
        );
        assert_eq!(port.control().faults.count(FaultClass::SqErr), 1);
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
        let s = port.stats_report().eth;
        assert_eq!((s.faults, s.recoveries, s.failed_recoveries), (1, 1, 0));
        // Traffic resumes from WQE 0.
        port.transmit(60, |_| ()).unwrap();
        port.flush();
        assert_eq!(&p.s.borrow().bar0[0x5800..0x5804], &[0, 0, 0, 0x0a]);
        let _ = port.close();
    }
}
