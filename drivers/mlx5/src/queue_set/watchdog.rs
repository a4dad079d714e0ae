//! Periodic fault checks of a queue set ([`QueueSet::check`]), off the
//! packet path: queue error events from EQ0 (CQ error, WQ errors),
//! recoveries deferred by the grace period, EQ stalls (QUERY_EQ's
//! consumer counter against the driver's, as illumos' `mlxcx_eq_check`
//! does), events left in a completion EQ's ring for a whole check period
//! (a lost interrupt: nothing polled them), lost interrupts of EQ0
//! (`cmd_engine::eq0_irq`: a drain found events its vector never
//! signalled), CQ overruns whose event was
//! lost (QUERY_CQ status), and the
//! transmit timeout (WQEs outstanding, no completion: poll the EQ first
//! for a lost interrupt, as Linux's `mlx5e_tx_timeout` does, then
//! recover the SQ). Every finding is a fault record ([`crate::fault`]).
//!
//! The periodic queries never wait for the device: each is started on one
//! call and collected on a later one ([`Control::start`] /
//! [`Control::collect`]), one at a time, so a lost command costs its
//! check (the command timeout records `mlx5.cmd.timeout`; the next period
//! starts over), not the caller's loop. What a query finds is then
//! handled as before, with commands run to completion: the recoveries
//! (re-arm and re-query, recreate an EQ or a CQ, reset a queue) only run
//! after a real fault and each command is bounded by the command timeout.

use alloc::vec::Vec;

use cxos_drivers::Clock;

use super::QueueSet;
use super::eq_recreate::RecreateError;
use super::recovery::{FaultCause, QueueFault, QueueId};
use crate::cmd_engine::{CmdPoll, Ticket};
use crate::control::{Control, Started};
use crate::cq::{self, Cq, CqInfo, Cqn, QueryCq};
use crate::eq::{EqInfo, Eqn, QueryEq};
use crate::error::CmdError;
use crate::fault::{
    FaultAction, FaultClass, FaultObject, FaultOutcome, FaultRecord, QueueEvent, Verdict,
};
use crate::rq::{QueryRq, Rqn};
use crate::sq::{self, CreateSq, ModifySq, QuerySq, Sq, SqConfig, Sqn};
use crate::wq::QueueState;

/// Least time between two checks (the owner may call more often).
pub const CHECK_INTERVAL_MS: u64 = 100;
/// Least time between two rounds of QUERY_EQ / QUERY_CQ (commands: kept
/// rarer than the command-free checks).
pub const QUERY_INTERVAL_MS: u64 = 1_000;
/// WQEs outstanding with no completion for this long: transmit timeout.
pub const TX_TIMEOUT_MS: u64 = 1_000;
/// Deferred recoveries kept (more are dropped: the queue stays in error
/// until its next fault, and the escalation path takes it).
const DEFERRED: usize = 16;
/// Queue events taken per check.
const EVENTS_PER_CHECK: usize = 16;
/// An EQ's consumer counter is 24 bits (`eqc.consumer_counter`).
const CI_MASK: u32 = 0x00ff_ffff;

/// A recovery postponed to `until_ns`.
#[derive(Clone, Copy, Debug)]
struct Deferred {
    queue: QueueId,
    /// Receive queue index (RQs).
    q: usize,
    cause: FaultCause,
    until_ns: u64,
}

/// A periodic query still to run this period.
#[derive(Clone, Copy, Debug)]
enum Probe {
    /// QUERY_EQ of the completion EQ at this index.
    Eq(usize),
    /// QUERY_EQ of EQ0.
    Eq0,
    Cq(Cqn),
}

/// The periodic query with the device.
#[derive(Debug)]
enum Outstanding {
    /// `ci`: the driver's consumer counter when it went out.
    Eq {
        idx: usize,
        ci: u32,
        t: Ticket<QueryEq>,
    },
    /// `ci` as for `Eq`.
    Eq0 {
        ci: u32,
        t: Ticket<QueryEq>,
    },
    Cq(Ticket<QueryCq>),
}

/// A periodic query's answer.
enum Answer {
    /// The EQ's index, number, the driver's consumer counter when the
    /// query went out, the answer.
    Eq(usize, Eqn, u32, Result<EqInfo, CmdError>),
    /// EQ0's number, the driver's consumer counter then, the answer.
    Eq0(Eqn, u32, Result<EqInfo, CmdError>),
    Cq(Cqn, Result<CqInfo, CmdError>),
}

/// State of the periodic checks.
#[derive(Debug, Default)]
pub(super) struct Watch {
    last_ns: u64,
    last_query_ns: u64,
    /// Queries left this period, next last.
    probes: Vec<Probe>,
    out: Option<Outstanding>,
    deferred: heapless::Vec<Deferred, DEFERRED>,
    /// SQ consumer counter at the last check and when it last moved.
    tx_seen: Option<(u16, u64)>,
    /// Per completion EQ (index), the consumer counter at the last check
    /// when an event was waiting in its ring.
    eq_pending: Vec<(usize, u32)>,
    pub checks: u64,
}

impl Watch {
    pub(super) fn is_deferred(&self, queue: QueueId) -> bool {
        self.deferred.iter().any(|d| d.queue == queue)
    }

    pub(super) fn defer(&mut self, queue: QueueId, q: usize, cause: FaultCause, until_ns: u64) {
        if !self.is_deferred(queue) {
            let _ = self.deferred.push(Deferred {
                queue,
                q,
                cause,
                until_ns,
            });
        }
    }
}

impl<C: Control> QueueSet<C> {
    /// Periodic fault checks (module documentation). Call it from the
    /// owner's loop every few tens of milliseconds; it does its work at
    /// most every [`CHECK_INTERVAL_MS`] (QUERY_EQ per completion EQ and
    /// QUERY_CQ per CQ at most every [`QUERY_INTERVAL_MS`]), never on the
    /// packet path.
    pub fn check(&mut self) {
        // Queue recoveries first; while one waits for the device the
        // checks (whose own recoveries would touch the same queues) wait
        // for it.
        if self.run_pending_recoveries() != 0 {
            return;
        }
        let now = self.ctl.clock().now_ns();
        if now.saturating_sub(self.watch.last_ns) < CHECK_INTERVAL_MS * 1_000_000 {
            return;
        }
        self.watch.last_ns = now;
        self.watch.checks += 1;
        // Before the queue events drain EQ0.
        self.ctl.eq0_check_interrupt();
        self.check_queue_events();
        self.check_eq_pending();
        self.run_deferred(now);
        // A period whose queries are not all answered yet (one is lost
        // until the command timeout) is not started again.
        if now.saturating_sub(self.watch.last_query_ns) >= QUERY_INTERVAL_MS * 1_000_000
            && self.watch.probes.is_empty()
            && self.watch.out.is_none()
        {
            self.watch.last_query_ns = now;
            // EQ0 (the adapter's) first, by the queue sets on the first
            // completion EQ: a stalled EQ0 writes no command completions,
            // so each query takes the command timeout.
            let mut probes: Vec<Probe> = Vec::new();
            if self.eq_indexes.contains(&0) {
                probes.push(Probe::Eq0);
            }
            probes.extend(self.eq_indexes.iter().map(|&i| Probe::Eq(i)));

            probes.extend(self.parts.tx_cq.iter().map(|c| Probe::Cq(c.cqn)));
            probes.extend(self.parts.rx.iter().map(|x| Probe::Cq(x.cq.cqn)));
            probes.reverse();
            self.watch.probes = probes;
        }
        self.run_queries();
        self.check_tx_timeout(now);
    }

    /// Whether a periodic query is with the device.
    pub fn query_outstanding(&self) -> bool {
        self.watch.out.is_some()
    }

    /// Collect the outstanding query if it is done, handle its answer and
    /// start the next; stop at the first one still with the device.
    fn run_queries(&mut self) {
        loop {
            let out = match self.watch.out.take() {
                Some(o) => o,
                None => match self.start_next() {
                    Some(o) => o,
                    None => return,
                },
            };
            let answer = match out {
                Outstanding::Eq { idx, ci, t } => {
                    let eqn = t.command().0;
                    match self.ctl.collect(t) {
                        CmdPoll::Pending(t) => {
                            self.watch.out = Some(Outstanding::Eq { idx, ci, t });
                            return;
                        }
                        CmdPoll::Done(r) => Answer::Eq(idx, eqn, ci, r),
                    }
                }
                Outstanding::Eq0 { ci, t } => {
                    let eqn = t.command().0;
                    match self.ctl.collect(t) {
                        CmdPoll::Pending(t) => {
                            self.watch.out = Some(Outstanding::Eq0 { ci, t });
                            return;
                        }
                        CmdPoll::Done(r) => Answer::Eq0(eqn, ci, r),
                    }
                }
                Outstanding::Cq(t) => {
                    let cqn = t.command().0;
                    match self.ctl.collect(t) {
                        CmdPoll::Pending(t) => {
                            self.watch.out = Some(Outstanding::Cq(t));
                            return;
                        }
                        CmdPoll::Done(r) => Answer::Cq(cqn, r),
                    }
                }
            };
            self.handle(answer);
        }
    }

    /// Start the next query of the period (answers that come at once are
    /// handled here); `None` when the period's queries are all done.
    fn start_next(&mut self) -> Option<Outstanding> {
        while let Some(p) = self.watch.probes.pop() {
            match p {
                Probe::Eq(idx) => {
                    let Some(eq) = self.ctl.shared_comp_eq(idx) else {
                        continue;
                    };
                    let eqn = eq.eqn();
                    let (ci, _) = eq.consumer_state();
                    match self.ctl.start(QueryEq(eqn)) {
                        Started::Out(t) => return Some(Outstanding::Eq { idx, ci, t }),
                        Started::Done(r) => self.handle(Answer::Eq(idx, eqn, ci, r)),
                    }
                }
                Probe::Eq0 => {
                    let Some((eqn, ci)) = self.ctl.eq0_state() else {
                        continue;
                    };
                    match self.ctl.start(QueryEq(eqn)) {
                        Started::Out(t) => return Some(Outstanding::Eq0 { ci, t }),
                        Started::Done(r) => self.handle(Answer::Eq0(eqn, ci, r)),
                    }
                }
                Probe::Cq(cqn) => {
                    // Gone since the period started (recovered meanwhile).
                    let mine = self.parts.tx_cq.iter().any(|c| c.cqn == cqn)
                        || self.parts.rx.iter().any(|x| x.cq.cqn == cqn);
                    if !mine {
                        continue;
                    }
                    match self.ctl.start(QueryCq(cqn)) {
                        Started::Out(t) => return Some(Outstanding::Cq(t)),
                        Started::Done(r) => self.handle(Answer::Cq(cqn, r)),
                    }
                }
            }
        }
        None
    }

    fn handle(&mut self, answer: Answer) {
        match answer {
            Answer::Eq(idx, eqn, ci, Ok(info)) => self.check_eq(idx, eqn, ci, info),
            Answer::Eq0(eqn, ci, Ok(info)) => self.check_eq0(eqn, ci, info),
            Answer::Cq(cqn, Ok(info)) => self.check_cq(cqn, info),
            // A failed query (its timeout is recorded by the command
            // engine): the next period asks again.
            Answer::Eq(_, _, _, Err(_)) | Answer::Eq0(_, _, Err(_)) | Answer::Cq(_, Err(_)) => {}
        }
    }

    /// Wait for the outstanding query (closing: its command slot must be
    /// given back); bounded by the command timeout.
    pub(super) fn finish_queries(&mut self) {
        self.watch.probes.clear();
        match self.watch.out.take() {
            Some(Outstanding::Eq { mut t, .. }) => {
                while let CmdPoll::Pending(next) = self.ctl.collect(t) {
                    t = next;
                    self.ctl.clock().relax();
                }
            }
            Some(Outstanding::Eq0 { mut t, .. }) => {
                while let CmdPoll::Pending(next) = self.ctl.collect(t) {
                    t = next;
                    self.ctl.clock().relax();
                }
            }
            Some(Outstanding::Cq(mut t)) => {
                while let CmdPoll::Pending(next) = self.ctl.collect(t) {
                    t = next;
                    self.ctl.clock().relax();
                }
            }
            None => {}
        }
    }

    /// Checks run so far.
    pub fn checks(&self) -> u64 {
        self.watch.checks
    }

    fn my_objects(&self) -> Vec<FaultObject> {
        let mut v = Vec::with_capacity(2 + 2 * self.parts.rx.len());
        if let Some(sq) = self.parts.sq.as_ref() {
            v.push(FaultObject::Sq(sq.sqn.0));
        }
        if let Some(cq) = self.parts.tx_cq.as_ref() {
            v.push(FaultObject::Cq(cq.cqn.0));
        }
        for x in &self.parts.rx {
            v.push(FaultObject::Cq(x.cq.cqn.0));
            if let Some(rq) = x.rq.as_ref() {
                v.push(FaultObject::Rq(rq.rqn.0));
            }
        }
        v
    }

    fn check_queue_events(&mut self) {
        let mine = self.my_objects();
        let events = self
            .ctl
            .take_queue_events(&|o| mine.contains(&o), EVENTS_PER_CHECK);
        for e in events {
            match e {
                QueueEvent::CqError { cqn, syndrome } => {
                    self.recover_cq(Cqn(cqn), syndrome.into(), "event")
                }
                QueueEvent::Wq { event, object } => {
                    let cause = FaultCause::AsyncEvent { event };
                    if self.already_ready(object) {
                        // The queue's flush completions arrived before the
                        // event and its recovery already ran: record the
                        // event with that outcome.
                        let now = self.ctl.clock().now_ns();
                        self.ctl.record_fault(
                            FaultRecord::new(FaultClass::WqCatastrophic, object, now)
                                .detail("event", event.into())
                                .detail("reset_on_cqe", 1)
                                .action(FaultAction::QueueReset, FaultOutcome::Recovered),
                        );
                        continue;
                    }
                    match object {
                        FaultObject::Sq(_) => self.sq_fault(cause, true),
                        FaultObject::Rq(n) => {
                            if let Some(q) = self.rx_index_of(n) {
                                self.rq_fault(q, cause, true);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Whether the queue `object` names is RDY on the device (and not
    /// waiting for a deferred recovery).
    fn already_ready(&mut self, object: FaultObject) -> bool {
        let state = match object {
            FaultObject::Sq(n) => {
                if self.watch.is_deferred(QueueId::Sq(Sqn(n)))
                    || self.recovering(QueueId::Sq(Sqn(n)))
                {
                    return false;
                }
                self.ctl.exec(&QuerySq(Sqn(n))).ok().and_then(|i| i.state)
            }
            FaultObject::Rq(n) => {
                if self.watch.is_deferred(QueueId::Rq(Rqn(n)))
                    || self.recovering(QueueId::Rq(Rqn(n)))
                {
                    return false;
                }
                self.ctl.exec(&QueryRq(Rqn(n))).ok().and_then(|i| i.state)
            }
            _ => None,
        };
        state == Some(QueueState::Rdy)
    }

    fn rx_index_of(&self, rqn: u32) -> Option<usize> {
        self.parts
            .rx
            .iter()
            .position(|x| x.rq.as_ref().is_some_and(|r| r.rqn.0 == rqn))
    }

    fn run_deferred(&mut self, now: u64) {
        let due: Vec<Deferred> = self
            .watch
            .deferred
            .iter()
            .filter(|d| d.until_ns <= now)
            .copied()
            .collect();
        self.watch.deferred.retain(|d| d.until_ns > now);
        for d in due {
            match d.queue {
                QueueId::Sq(_) => self.sq_fault(d.cause, true),
                QueueId::Rq(_) => self.rq_fault(d.q, d.cause, true),
            }
        }
    }

    /// QUERY_EQ's answer for the completion EQ at `idx`: a consumer
    /// counter other than the one the driver holds means the EQ lost track
    /// (a bad arm): re-arm it with the right one, then re-arm the queue
    /// set's CQs (their events may be lost) and poll. An EQ that does not
    /// take the arm is recreated ([`super::eq_recreate`]); only when that
    /// fails is the function reset. The device answered at some point
    /// between the query going out (the driver's counter then: `ci_out`)
    /// and now, and events were taken meanwhile: any counter in between
    /// is in step.
    fn check_eq(&mut self, idx: usize, eqn: Eqn, ci_out: u32, info: EqInfo) {
        let Some(eq) = self.ctl.shared_comp_eq(idx).filter(|e| e.eqn() == eqn) else {
            // Recreated since the query started.
            return;
        };
        let (ci, _) = eq.consumer_state();
        let since_out = |c: u32| c.wrapping_sub(ci_out) & CI_MASK;
        if info.status == 0 && since_out(info.consumer_counter) <= since_out(ci) {
            return;
        }
        eq.rearm();
        self.rearm_cqs(eqn);
        let fixed = self
            .ctl
            .exec(&QueryEq(eqn))
            .is_ok_and(|q| q.consumer_counter == ci && q.status == 0);
        let now = self.ctl.clock().now_ns();
        let rec = FaultRecord::new(FaultClass::EqStall, FaultObject::Eq(eqn.0.into()), now)
            .detail("device_ci", info.consumer_counter.into());
        if fixed {
            self.ctl.record_fault(
                rec.detail("ci", ci.into())
                    .action(FaultAction::EqRearm, FaultOutcome::Recovered),
            );
            self.poll();
            return;
        }
        match self.recreate_eq(idx) {
            Ok(new) => {
                self.rearm_cqs(new);
                self.ctl.record_fault(
                    rec.detail("new_eqn", new.0.into())
                        .action(FaultAction::EqRecreate, FaultOutcome::Recovered),
                );
                log::info!(target: "mlx5::dp", "EQ {} recreated as {}", eqn.0, new.0);
            }
            Err(e) => {
                let rec = match e {
                    RecreateError::Shared => rec.detail("shared", 1),
                    RecreateError::Failed(err) => {
                        log::error!(target: "mlx5::dp", "EQ {} recreate failed: {err}", eqn.0);
                        rec
                    }
                };
                self.ctl
                    .record_fault(rec.action(FaultAction::EqRecreate, FaultOutcome::Escalate));
            }
        }
        self.poll();
    }

    /// QUERY_EQ's answer for EQ0, as [`Self::check_eq`]: the query's own
    /// completion is an EQ0 event the driver may take before reading the
    /// answer, which the device wrote before it, so a device counter
    /// between the driver's then and now is in step. Out of step: re-arm
    /// EQ0 with the driver's counter and query again; EQ0 is not
    /// recreated (the command interface rides on it): still wrong, the
    /// function is reset.
    fn check_eq0(&mut self, eqn: Eqn, ci_out: u32, info: EqInfo) {
        let Some((now_eqn, ci)) = self.ctl.eq0_state().filter(|s| s.0 == eqn) else {
            return;
        };
        let since_out = |c: u32| c.wrapping_sub(ci_out) & CI_MASK;
        if info.status == 0 && since_out(info.consumer_counter) <= since_out(ci) {
            return;
        }
        self.ctl.eq0_rearm();
        let fixed = self.ctl.exec(&QueryEq(now_eqn)).is_ok_and(|q| {
            let ci = self.ctl.eq0_state().map_or(ci, |s| s.1);
            q.status == 0 && since_out(q.consumer_counter) <= since_out(ci)
        });
        let now = self.ctl.clock().now_ns();
        let rec = FaultRecord::new(FaultClass::EqStall, FaultObject::Eq(eqn.0.into()), now)
            .detail("device_ci", info.consumer_counter.into())
            .detail("ci", ci.into());
        if fixed {
            self.ctl
                .record_fault(rec.action(FaultAction::EqRearm, FaultOutcome::Recovered));
        } else {
            self.ctl
                .record_fault(rec.action(FaultAction::FunctionReset, FaultOutcome::Escalate));
        }
    }

    /// Interrupt mode: an event still waiting in a completion EQ's ring at
    /// the same consumer counter as at the last check sat a whole check
    /// period with nothing polling it, which an interrupt would have
    /// done: its interrupt was lost. Record it, take the events (which
    /// re-arms the EQ) and re-arm the CQs. One record per lost interrupt:
    /// once taken, the next event starts over.
    fn check_eq_pending(&mut self) {
        if !self.cfg.interrupts {
            return;
        }
        let mut stuck = Vec::new();
        let mut seen = Vec::with_capacity(self.eq_indexes.len());
        for &idx in &self.eq_indexes {
            let Some(eq) = self.ctl.shared_comp_eq(idx) else {
                continue;
            };
            let (ci, pending) = eq.consumer_state();
            if !pending {
                continue;
            }
            if self.watch.eq_pending.contains(&(idx, ci)) {
                stuck.push((eq.eqn(), ci));
            } else {
                seen.push((idx, ci));
            }
        }
        self.watch.eq_pending = seen;
        for (eqn, ci) in stuck {
            let now = self.ctl.clock().now_ns();
            self.ctl.record_fault(
                FaultRecord::new(FaultClass::EqStall, FaultObject::Eq(eqn.0.into()), now)
                    .detail("pending", 1)
                    .detail("ci", ci.into())
                    .action(FaultAction::EqPoll, FaultOutcome::Recovered),
            );
            self.poll();
            self.rearm_cqs(eqn);
        }
    }

    /// Arm every CQ of the queue set reporting to `eqn` (interrupt mode):
    /// a CQ with completions beyond its consumer index fires at once.
    fn rearm_cqs(&mut self, eqn: crate::eq::Eqn) {
        if !self.cfg.interrupts {
            return;
        }
        if let Some(cq) = self.parts.tx_cq.as_mut().filter(|c| c.eqn == eqn) {
            cq.arm();
        }
        for x in self.parts.rx.iter_mut().filter(|x| x.cq.eqn == eqn) {
            x.cq.arm();
        }
    }

    /// QUERY_CQ's answer: an overrun whose CQ error event was lost.
    fn check_cq(&mut self, cqn: Cqn, info: CqInfo) {
        if info.status == 0 {
            return;
        }
        // Its event may have arrived since the events were taken.
        self.check_queue_events();
        let still = self.parts.tx_cq.iter().any(|c| c.cqn == cqn)
            || self.parts.rx.iter().any(|x| x.cq.cqn == cqn);
        if still {
            self.recover_cq(cqn, info.status.into(), "query");
        }
    }

    /// A CQ overran (event or QUERY_CQ): record, then recreate it with
    /// its queue (the transmit CQ with the SQ; a receive CQ with its RQ,
    /// which takes the old RQ's place in the RQTs the TIRs dispatch
    /// through).
    fn recover_cq(&mut self, cqn: Cqn, syndrome: u32, how: &'static str) {
        let now = self.ctl.clock().now_ns();
        let rec = FaultRecord::new(FaultClass::CqOverflow, FaultObject::Cq(cqn.0), now)
            .syndromes(syndrome, 0);
        let rec = if how == "query" {
            rec.detail("lost_event", 1)
        } else {
            rec
        };
        let is_tx = self.parts.tx_cq.as_ref().is_some_and(|c| c.cqn == cqn);
        let rx = self.parts.rx.iter().position(|x| x.cq.cqn == cqn);
        if !is_tx && rx.is_none() {
            return;
        }
        if let Some(q) = rx
            && self.parts.rx[q]
                .rq
                .as_ref()
                .is_some_and(|r| r.outstanding() != 0)
        {
            // Frames still handed out own slots of the ring: the periodic
            // QUERY_CQ finds the overrun again once they are back.
            return;
        }
        match self.ctl.fault_verdict(FaultObject::Cq(cqn.0)) {
            Verdict::Recover => {}
            Verdict::Defer { .. } => {
                // The periodic QUERY_CQ finds it again after the grace
                // period.
                self.ctl
                    .record_fault(rec.action(FaultAction::Deferred, FaultOutcome::Deferred));
                self.stats.faults += 1;
                return;
            }
            Verdict::Escalate => {
                self.ctl
                    .record_fault(rec.action(FaultAction::FunctionReset, FaultOutcome::Escalate));
                self.stats.faults += 1;
                self.stats.failed_recoveries += 1;
                return;
            }
        }
        self.stats.faults += 1;
        let recreated = match rx {
            Some(q) => self.recreate_rx_cq(q),
            None => self.recreate_tx_cq(),
        };
        match recreated {
            Ok((new, returned)) => {
                self.stats.recoveries += 1;
                self.ctl.record_fault(
                    rec.detail("returned", returned as u64)
                        .action(FaultAction::CqRecreate, FaultOutcome::Recovered),
                );
                log::info!(target: "mlx5::dp", "CQ {:#x} recreated as {:#x}", cqn.0, new.0);
            }
            Err(e) => {
                self.stats.failed_recoveries += 1;
                log::error!(target: "mlx5::dp", "CQ {:#x} recreate failed: {e}", cqn.0);
                self.ctl
                    .record_fault(rec.action(FaultAction::CqRecreate, FaultOutcome::Escalate));
            }
        }
    }

    /// Destroy the SQ and its CQ, create both again (same SQ ring, a new
    /// CQ ring), SQ to RDY. Every transmit buffer in flight is free again.
    fn recreate_tx_cq(&mut self) -> Result<(Cqn, usize), crate::Error> {
        let (Some(old_cq), Some(mut old_sq), Some(tis)) = (
            self.parts.tx_cq.take(),
            self.parts.sq.take(),
            self.parts.tis,
        ) else {
            return Err(crate::error::Missing::CompEq.into());
        };
        if let Err(e) = self.ctl.exec(&sq::destroy_sq(old_sq.sqn)) {
            self.parts.tx_cq = Some(old_cq);
            self.parts.sq = Some(old_sq);
            return Err(e.into());
        }
        let returned = old_sq.reset();
        // The new SQ's counters go on from the old one's.
        let counted = old_sq.stats;
        let sq_ring = old_sq.into_ring();
        let (old_cqn, eqn) = (old_cq.cqn, old_cq.eqn);
        if self.ctl.exec(&cq::destroy_cq(old_cqn)).is_err() {
            // The device may still write into it.
            self.ctl.retire(old_cq.into_ring().mem);
        }
        let (r, cfg) = (self.res, self.cfg);
        let ring = match cq::alloc_ring(self.ctl.dma(), cfg.log_sq) {
            Ok(x) => x,
            Err(e) => {
                self.ctl.retire(sq_ring.mem);
                return Err(e);
            }
        };
        let mut cmd = Cq::<super::Plat<C>>::create_cmd(&ring, cfg.log_sq, r.uar, eqn);
        cmd.moderation = super::open::moderation(cfg.tx_cq_moderation, &r.caps);
        let cqn = match self.ctl.exec(&cmd) {
            Ok(c) => c,
            Err(e) => {
                self.ctl.retire(ring.mem);
                self.ctl.retire(sq_ring.mem);
                return Err(e.into());
            }
        };
        let mut new_cq = Cq::new(cqn, eqn, ring, cfg.log_sq, r.uar, self.ctl.mmio().clone());
        let created = self.ctl.exec(&CreateSq {
            cqn,
            tisn: tis,
            pd: r.pd,
            uar: r.uar,
            dbr_addr: sq_ring.dbr_addr(),
            log_size: cfg.log_sq,
            inline: r.inline,
            allow_mpw: self.res.caps.mpw,
            pages: sq_ring.pages(),
        });
        let sqn = match created {
            Ok(s) => s,
            Err(e) => {
                self.ctl.retire(sq_ring.mem);
                self.parts.tx_cq = Some(new_cq);
                return Err(e.into());
            }
        };
        let lso_bufs = if self.lso_max() > 0 { cfg.lso_bufs } else { 0 };
        let mut sq = Sq::new(
            sqn,
            sq_ring,
            cfg.log_sq,
            SqConfig {
                uar: r.uar,
                inline: r.inline,
                cq_every: cfg.cq_every,
                lkey: r.lkey,
                bufs: 1u16 << cfg.log_sq,
                lso_bufs: lso_bufs as u16,
                empw: self.sq_empw(),
                legacy_mpw: self.sq_legacy_mpw(),
                bf: self.sq_bf(),
            },
            self.ctl.mmio().clone(),
        );
        sq.stats = counted;
        self.ctl.exec(&ModifySq {
            sqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        })?;
        // Events of the new CQ are this queue set's.
        for &idx in &self.eq_indexes {
            if let Some(eq) = self.ctl.shared_comp_eq(idx).filter(|e| e.eqn() == eqn) {
                eq.forget(&[old_cqn]);
                // Room: the old CQ's claim was just given up.
                let _ = eq.claim(&[cqn]);
            }
        }
        self.ctl.cq_replaced(old_cqn, cqn);
        if self.cfg.interrupts {
            new_cq.arm();
        }
        self.parts.tx_cq = Some(new_cq);
        self.parts.sq = Some(sq);
        self.watch.tx_seen = None;
        Ok((cqn, returned))
    }

    /// WQEs outstanding and the SQ's consumer counter still for
    /// [`TX_TIMEOUT_MS`]: poll first (a lost interrupt), then recover the
    /// SQ.
    fn check_tx_timeout(&mut self, now: u64) {
        let Some(sq) = self.parts.sq.as_ref() else {
            return;
        };
        let (cc, pending) = (sq.consumer_counter(), sq.in_flight());
        if pending == 0 {
            self.watch.tx_seen = None;
            return;
        }
        let since = match self.watch.tx_seen {
            Some((c, t)) if c == cc => t,
            _ => {
                self.watch.tx_seen = Some((cc, now));
                return;
            }
        };
        if now.saturating_sub(since) < TX_TIMEOUT_MS * 1_000_000 {
            return;
        }
        self.watch.tx_seen = None;
        let sqn = sq.sqn;
        let cause = FaultCause::TxTimeout {
            pending: pending as u16,
            wqe_counter: cc,
        };
        // A lost interrupt: the completions are there, only unread.
        let found = self.poll_tx_cq_now();
        let fault = QueueFault {
            queue: QueueId::Sq(sqn),
            cause,
            at_ns: now,
            returned: found,
            recovered: found > 0,
        };
        if found > 0 {
            self.record_outcome(fault, None, FaultAction::EqPoll, FaultOutcome::Recovered);
            return;
        }
        self.sq_fault(cause, true);
    }

    /// Reap the transmit CQ without waiting for an event; re-arm it.
    fn poll_tx_cq_now(&mut self) -> usize {
        let before = self.parts.sq.as_ref().map_or(0, |s| s.in_flight());
        self.poll();
        if let Some(cq) = self.parts.tx_cq.as_mut()
            && self.cfg.interrupts
        {
            cq.arm();
        }
        let after = self.parts.sq.as_ref().map_or(0, |s| s.in_flight());
        before.saturating_sub(after)
    }
}
