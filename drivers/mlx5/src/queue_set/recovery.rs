//! Queue faults and their recovery: an error CQE (or a completion the
//! driver refuses) is reported as a [`QueueFault`] (console, log target
//! `mlx5::dp`), the queue is moved to RST and back to RDY, transmit
//! buffers in flight go back to the free stack, receive buffers are
//! posted again; all counted in [`super::EthStats`].

use core::fmt;

use cxos_drivers::{Clock, Platform};

use super::QueueSet;
use crate::control::Control;
use crate::cq::Cq;
use crate::cqe;
use crate::error::CmdError;
use crate::fault::{FaultAction, FaultClass, FaultObject, FaultOutcome, FaultRecord, Verdict};
use crate::rq::{ModifyRq, QueryRq, Rqn};
use crate::sq::{ModifySq, QuerySq, Sqn};
use crate::wq::QueueState;

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
}

impl From<CmdError> for CycleError {
    fn from(e: CmdError) -> Self {
        CycleError::Cmd(e)
    }
}

impl<C: Control> QueueSet<C> {
    /// Record a queue fault (console line, adapter log) with what was
    /// done, count it, keep it as the last fault.
    #[cold]
    pub(super) fn report_fault(
        &mut self,
        fault: QueueFault,
        action: FaultAction,
        outcome: FaultOutcome,
    ) {
        self.ctl
            .record_fault(fault.record().action(action, outcome));
        self.stats.faults += 1;
        match outcome {
            FaultOutcome::Recovered => self.stats.recoveries += 1,
            FaultOutcome::Failed | FaultOutcome::Escalate => self.stats.failed_recoveries += 1,
            FaultOutcome::Deferred | FaultOutcome::Reported => {}
        }
        self.last_fault = Some(fault);
    }

    /// Move a queue from whatever state the device reports to RST, run
    /// `reset` on the driver side, then back to RDY.
    pub(super) fn cycle_sq(&mut self, sqn: Sqn) -> Result<usize, CycleError> {
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
        let returned = self.parts.sq.as_mut().map(|sq| sq.reset()).unwrap_or(0);
        self.ctl.exec(&ModifySq {
            sqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        })?;
        Ok(returned)
    }

    /// Recover the SQ after `cause`, as the policy allows: now, after the
    /// grace period (the periodic check), or by escalation.
    pub(super) fn recover_sq(&mut self, cause: FaultCause) {
        let Some(sqn) = self.parts.sq.as_ref().map(|s| s.sqn) else {
            return;
        };
        drain(self.parts.tx_cq.as_mut());
        if self.watch.is_deferred(QueueId::Sq(sqn)) {
            // Recorded once already; the periodic check recovers it.
            return;
        }
        if let Some(sq) = self.parts.sq.as_mut() {
            sq.stats.errors += 1;
        }
        let at_ns = self.ctl.clock().now_ns();
        let fault = |returned, recovered| QueueFault {
            queue: QueueId::Sq(sqn),
            cause,
            at_ns,
            returned,
            recovered,
        };
        match self.ctl.fault_verdict(FaultObject::Sq(sqn.0)) {
            Verdict::Recover => match self.cycle_sq(sqn) {
                Ok(n) => self.report_fault(
                    fault(n, true),
                    FaultAction::QueueReset,
                    FaultOutcome::Recovered,
                ),
                Err(_) => self.escalate(fault(0, false)),
            },
            Verdict::Defer { until_ns } => {
                self.watch.defer(QueueId::Sq(sqn), 0, cause, until_ns);
                self.report_fault(
                    fault(0, false),
                    FaultAction::Deferred,
                    FaultOutcome::Deferred,
                );
            }
            Verdict::Escalate => self.escalate(fault(0, false)),
        }
    }

    pub(super) fn cycle_rq(&mut self, q: usize, rqn: Rqn) -> Result<usize, CycleError> {
        if self
            .parts
            .rx
            .get(q)
            .and_then(|x| x.rq.as_ref())
            .is_some_and(|rq| rq.outstanding() != 0)
        {
            return Err(CycleError::FramesOut);
        }
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
                if !rq.reset() {
                    // Checked above; a frame handed out since cannot be.
                    return Err(CycleError::FramesOut);
                }
                reposted = rq.entries();
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

    /// Recover receive queue `q` after `cause` (as [`QueueSet::recover_sq`];
    /// while frames are handed out the recovery waits for them).
    pub(super) fn recover_rq(&mut self, q: usize, cause: FaultCause) {
        let Some(x) = self.parts.rx.get_mut(q) else {
            return;
        };
        let Some(rqn) = x.rq.as_ref().map(|r| r.rqn) else {
            return;
        };
        drain(Some(&mut x.cq));
        if self.watch.is_deferred(QueueId::Rq(rqn)) {
            return;
        }
        if let Some(rq) = x.rq.as_mut() {
            rq.stats.errors += 1;
        }
        let at_ns = self.ctl.clock().now_ns();
        let fault = |returned, recovered| QueueFault {
            queue: QueueId::Rq(rqn),
            cause,
            at_ns,
            returned,
            recovered,
        };
        let frames_out = x.rq.as_ref().is_some_and(|r| r.outstanding() != 0);
        if frames_out {
            self.watch.defer(QueueId::Rq(rqn), q, cause, at_ns);
            self.report_fault(
                fault(0, false),
                FaultAction::Deferred,
                FaultOutcome::Deferred,
            );
            return;
        }
        match self.ctl.fault_verdict(FaultObject::Rq(rqn.0)) {
            Verdict::Recover => match self.cycle_rq(q, rqn) {
                Ok(n) => self.report_fault(
                    fault(n, true),
                    FaultAction::QueueReset,
                    FaultOutcome::Recovered,
                ),
                Err(_) => self.escalate(fault(0, false)),
            },
            Verdict::Defer { until_ns } => {
                self.watch.defer(QueueId::Rq(rqn), q, cause, until_ns);
                self.report_fault(
                    fault(0, false),
                    FaultAction::Deferred,
                    FaultOutcome::Deferred,
                );
            }
            Verdict::Escalate => self.escalate(fault(0, false)),
        }
    }

    /// Queue recovery failed or repeats too often: reset every queue of
    /// the queue set (port level) if the policy allows, else ask for a
    /// function reset (the record's `escalate` outcome, taken by the
    /// adapter's owner). The policy counts port-level resets per queue
    /// set: the port's and each VNIC's are their own.
    pub(super) fn escalate(&mut self, mut fault: QueueFault) {
        let set = self
            .parts
            .tis
            .map(|t| t.0)
            .or(self.parts.tir.map(|t| t.0))
            .unwrap_or(0);
        if self.ctl.fault_verdict(FaultObject::QueueSet(set)) == Verdict::Recover {
            let mut returned = 0;
            let mut ok = true;
            if let Some(sqn) = self.parts.sq.as_ref().map(|s| s.sqn) {
                match self.cycle_sq(sqn) {
                    Ok(n) => returned += n,
                    Err(_) => ok = false,
                }
            }
            for q in 0..self.parts.rx.len() {
                if let Some(rqn) = self.rq_at(q).map(|r| r.rqn) {
                    match self.cycle_rq(q, rqn) {
                        Ok(n) => returned += n,
                        Err(_) => ok = false,
                    }
                }
            }
            fault.returned = returned;
            fault.recovered = ok;
            let outcome = if ok {
                FaultOutcome::Recovered
            } else {
                FaultOutcome::Escalate
            };
            self.report_fault(fault, FaultAction::PortReset, outcome);
        } else {
            self.report_fault(fault, FaultAction::FunctionReset, FaultOutcome::Escalate);
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
        let s = port.stats_report().eth;
        assert_eq!((s.faults, s.recoveries, s.failed_recoveries), (1, 1, 0));
        // Traffic resumes from WQE 0.
        port.transmit(60, |_| ()).unwrap();
        port.flush();
        assert_eq!(&p.s.borrow().bar0[0x5800..0x5804], &[0, 0, 0, 0x0a]);
        let _ = port.close();
    }
}
