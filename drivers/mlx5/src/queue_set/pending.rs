//! Queue recoveries as steps that never wait for the device. The packet
//! path ([`QueueSet::poll`], the receive paths) issues no command: a
//! queue fault it finds is recorded at once (`outcome=pending`), the
//! queue is taken out of use (nothing more is posted to it, nothing taken
//! from it) and the recovery is left here. The owner's recovery step
//! ([`QueueSet::run_pending_recoveries`], also the first thing
//! [`QueueSet::check`] does) moves it on: each command is started
//! ([`Control::start`]) and looked at on a later step
//! ([`Control::collect`]), so a slow or lost command holds the recovery,
//! not the owner's loop. When it ends, its record is settled with the
//! outcome (`crate::fault::FaultLog::settle`).
//!
//! A queue reset is QUERY_SQ/RQ, MODIFY to RST, the driver's side (CQ
//! drained, buffers returned / reposted), MODIFY to RDY; a port-level
//! reset (escalation) is that for every queue in turn. Recreating a
//! receive ring (a compressed session the driver cannot drain) runs its
//! commands to completion in one step.

use alloc::vec::Vec;

use super::QueueSet;
use super::recovery::{CycleError, QueueFault, QueueId, drain};
use crate::cmd::Command;
use crate::cmd_engine::{CmdPoll, Ticket};
use crate::control::{Control, Started};
use crate::error::CmdError;
use crate::fault::{FaultAction, FaultObject, FaultOutcome, FaultRecord, Verdict};
use crate::rq::{ModifyRq, QueryRq, Rqn};
use crate::sq::{ModifySq, QuerySq, Sqn};
use crate::wq::QueueState;

/// One queue to cycle ERR -> RST -> RDY (an RQ with its index).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Target {
    Sq(Sqn),
    Rq(usize, Rqn),
}

/// A command of a queue cycle with the device.
#[derive(Debug)]
enum Out {
    QuerySq(Ticket<QuerySq>),
    ModifySq(Ticket<ModifySq>),
    QueryRq(Ticket<QueryRq>),
    ModifyRq(Ticket<ModifyRq>),
}

/// Where a queue cycle is.
#[derive(Debug)]
enum Stage {
    Start,
    /// The query of the queue's state.
    Query(Out),
    /// The MODIFY to RST.
    ToRst(Out),
    /// The MODIFY to RDY (`n`: buffers the driver side returned).
    ToRdy(Out, usize),
}

/// A queue cycle in progress.
#[derive(Debug)]
pub(super) struct Cycle {
    target: Target,
    stage: Stage,
}

impl Cycle {
    pub(super) fn new(target: Target) -> Cycle {
        Cycle {
            target,
            stage: Stage::Start,
        }
    }
}

/// What a recovery does.
#[derive(Debug)]
pub(super) enum Plan {
    /// Reset the faulted queue.
    Queue(Cycle),
    /// Recreate receive queue `q`'s CQ and RQ.
    RxRing(usize),
    /// Reset every queue of the queue set in turn (`left`, next last).
    Port {
        left: Vec<Target>,
        cur: Option<Cycle>,
        returned: usize,
        ok: bool,
    },
}

impl Plan {
    fn action(&self) -> FaultAction {
        match self {
            Plan::Queue(_) => FaultAction::QueueReset,
            Plan::RxRing(_) => FaultAction::CqRecreate,
            Plan::Port { .. } => FaultAction::PortReset,
        }
    }
}

/// A queue recovery in progress.
#[derive(Debug)]
pub(super) struct Recovery {
    fault: QueueFault,
    /// The `pending` record, once made.
    record: Option<FaultRecord>,
    plan: Plan,
}

/// A step's result.
enum Step<T> {
    Wait,
    Done(T),
}

impl<C: Control> QueueSet<C> {
    /// Recover after `fault` by `plan`. `now` (the periodic check): start
    /// it at once, recorded once when it ends in this call; else (the
    /// packet path) leave it for the recovery step. Either way, a
    /// recovery still going is recorded as pending now, the owner asked
    /// for its step, and the queues it works on are out of use.
    pub(super) fn begin_recovery(&mut self, fault: QueueFault, plan: Plan, now: bool) {
        self.halt(&plan);
        let mut r = Recovery {
            fault,
            record: None,
            plan,
        };
        if now && self.advance(&mut r) {
            return;
        }
        r.record = Some(
            self.ctl.record_fault(
                fault
                    .record()
                    .action(r.plan.action(), FaultOutcome::Pending),
            ),
        );
        self.stats.faults += 1;
        self.last_fault = Some(fault);
        self.recoveries.push(r);
        self.ctl.recovery_wanted();
    }

    /// Move the pending queue recoveries on as far as the device allows
    /// without waiting for it (a receive ring's recreation excepted);
    /// returns how many are still going. Call it from the owner's loop
    /// outside the packet path, soon after the packet path asked for it
    /// ([`Control::recovery_wanted`]) and again while any is going;
    /// [`QueueSet::check`] runs it first too. One recovery at a time, in
    /// the order they were found.
    pub fn run_pending_recoveries(&mut self) -> usize {
        while !self.recoveries.is_empty() {
            let mut r = self.recoveries.remove(0);
            if !self.advance(&mut r) {
                self.recoveries.insert(0, r);
                break;
            }
        }
        self.recoveries.len()
    }

    /// Queue recoveries still going.
    pub fn recoveries_pending(&self) -> usize {
        self.recoveries.len()
    }

    /// Whether a recovery of `queue` is going.
    pub(super) fn recovering(&self, queue: QueueId) -> bool {
        self.recoveries.iter().any(|r| r.fault.queue == queue)
    }

    /// One step of `r`; true when it ended (and is recorded).
    fn advance(&mut self, r: &mut Recovery) -> bool {
        loop {
            let failed = match &mut r.plan {
                Plan::Queue(c) => match self.step_cycle(c) {
                    Step::Wait => return false,
                    Step::Done(Ok(n)) => {
                        let target = c.target;
                        self.resume(target);
                        self.finish(r, n, FaultOutcome::Recovered);
                        return true;
                    }
                    Step::Done(Err(_)) => true,
                },
                Plan::RxRing(q) => {
                    let q = *q;
                    match self.recreate_rx_cq(q) {
                        Ok((_, n)) => {
                            if let Some(x) = self.parts.rx.get_mut(q) {
                                x.halted = false;
                            }
                            self.finish(r, n, FaultOutcome::Recovered);
                            return true;
                        }
                        Err(_) => true,
                    }
                }
                Plan::Port {
                    left,
                    cur,
                    returned,
                    ok,
                } => {
                    loop {
                        let c = match cur {
                            Some(c) => c,
                            None => match left.pop() {
                                Some(t) => cur.insert(Cycle::new(t)),
                                None => break,
                            },
                        };
                        match self.step_cycle(c) {
                            Step::Wait => return false,
                            Step::Done(Ok(n)) => *returned += n,
                            Step::Done(Err(_)) => *ok = false,
                        }
                        *cur = None;
                    }
                    let (n, ok) = (*returned, *ok);
                    if ok {
                        self.resume_all();
                    }
                    let outcome = if ok {
                        FaultOutcome::Recovered
                    } else {
                        FaultOutcome::Escalate
                    };
                    self.finish(r, n, outcome);
                    return true;
                }
            };
            debug_assert!(failed);
            // The queue's own recovery failed: the port-level reset if the
            // policy allows, else the function reset (the owner's).
            match self.port_plan() {
                Some(p) => {
                    self.halt(&p);
                    r.plan = p;
                }
                None => {
                    r.fault.returned = 0;
                    r.fault.recovered = false;
                    self.record_outcome(
                        r.fault,
                        r.record,
                        FaultAction::FunctionReset,
                        FaultOutcome::Escalate,
                    );
                    return true;
                }
            }
        }
    }

    /// Record how `r` ended (its plan's action).
    fn finish(&mut self, r: &mut Recovery, returned: usize, outcome: FaultOutcome) {
        r.fault.returned = returned;
        r.fault.recovered = outcome == FaultOutcome::Recovered;
        let action = r.plan.action();
        self.record_outcome(r.fault, r.record, action, outcome);
    }

    /// A port-level reset of the queue set if the policy allows it (it
    /// counts them per queue set: the port's and each VNIC's are their
    /// own).
    pub(super) fn port_plan(&mut self) -> Option<Plan> {
        let set = self
            .parts
            .tis
            .map(|t| t.0)
            .or(self.parts.tir.map(|t| t.0))
            .unwrap_or(0);
        if self.ctl.fault_verdict(FaultObject::QueueSet(set)) != Verdict::Recover {
            return None;
        }
        let mut left: Vec<Target> = Vec::with_capacity(1 + self.parts.rx.len());
        left.extend(self.parts.sq.as_ref().map(|s| Target::Sq(s.sqn)));
        for q in 0..self.parts.rx.len() {
            left.extend(self.rq_at(q).map(|r| Target::Rq(q, r.rqn)));
        }
        left.reverse();
        Some(Plan::Port {
            left,
            cur: None,
            returned: 0,
            ok: true,
        })
    }

    /// Take the queues `plan` works on out of use: nothing is posted to
    /// them or taken from them until it ends well.
    fn halt(&mut self, plan: &Plan) {
        match plan {
            Plan::Queue(c) => self.halt_target(c.target),
            Plan::RxRing(q) => self.halt_target_rx(*q),
            Plan::Port { .. } => {
                self.tx_halted = true;
                for q in 0..self.parts.rx.len() {
                    self.halt_target_rx(q);
                }
            }
        }
    }

    pub(super) fn halt_target(&mut self, t: Target) {
        match t {
            Target::Sq(_) => self.tx_halted = true,
            Target::Rq(q, _) => self.halt_target_rx(q),
        }
    }

    fn halt_target_rx(&mut self, q: usize) {
        if let Some(x) = self.parts.rx.get_mut(q) {
            x.halted = true;
            // Recycled and not yet posted: the reset posts every buffer.
            x.uncommitted = 0;
        }
    }

    fn resume(&mut self, t: Target) {
        match t {
            Target::Sq(_) => self.tx_halted = false,
            Target::Rq(q, _) => {
                if let Some(x) = self.parts.rx.get_mut(q) {
                    x.halted = false;
                }
            }
        }
    }

    fn resume_all(&mut self) {
        self.tx_halted = false;
        for x in self.parts.rx.iter_mut() {
            x.halted = false;
        }
    }

    /// Start `cmd`: `Ok(out)` while the device has it.
    fn start_cmd<K: Command>(
        &mut self,
        cmd: K,
        out: fn(Ticket<K>) -> Out,
    ) -> Result<Result<K::Output, CmdError>, Out> {
        match self.ctl.start(cmd) {
            Started::Out(t) => Err(out(t)),
            Started::Done(r) => Ok(r),
        }
    }

    /// Start moving the cycled queue from `from` to `to` (MODIFY_SQ or
    /// MODIFY_RQ): `Err` with the ticket while the device works on it.
    fn start_modify(
        &mut self,
        t: Target,
        from: QueueState,
        to: QueueState,
    ) -> Result<Result<(), CmdError>, Out> {
        match t {
            Target::Sq(sqn) => self
                .start_cmd(ModifySq { sqn, from, to }, Out::ModifySq)
                .map(|r| r.map(|_| ())),
            Target::Rq(_, rqn) => self
                .start_cmd(ModifyRq { rqn, from, to }, Out::ModifyRq)
                .map(|r| r.map(|_| ())),
        }
    }

    /// One step of queue cycle `c`: as far as the device has answered.
    fn step_cycle(&mut self, c: &mut Cycle) -> Step<Result<usize, CycleError>> {
        loop {
            let stage = core::mem::replace(&mut c.stage, Stage::Start);
            let next = match stage {
                Stage::Start => self.cycle_start(c.target),
                Stage::Query(out) => match self.collect_out(out) {
                    Err(out) => {
                        c.stage = Stage::Query(out);
                        return Step::Wait;
                    }
                    Ok(Answer::State(Ok(state))) => self.cycle_to_rst(c.target, state),
                    Ok(Answer::State(Err(e)) | Answer::Modified(Err(e))) => {
                        return Step::Done(Err(e.into()));
                    }
                    Ok(Answer::Modified(Ok(()))) => unreachable_stage(),
                },
                Stage::ToRst(out) => match self.collect_out(out) {
                    Err(out) => {
                        c.stage = Stage::ToRst(out);
                        return Step::Wait;
                    }
                    Ok(Answer::Modified(Ok(()))) => self.cycle_to_rdy(c.target),
                    Ok(Answer::Modified(Err(e)) | Answer::State(Err(e))) => {
                        return Step::Done(Err(e.into()));
                    }
                    Ok(Answer::State(Ok(_))) => unreachable_stage(),
                },
                Stage::ToRdy(out, n) => match self.collect_out(out) {
                    Err(out) => {
                        c.stage = Stage::ToRdy(out, n);
                        return Step::Wait;
                    }
                    Ok(Answer::Modified(Ok(()))) => {
                        self.cycle_ready(c.target);
                        return Step::Done(Ok(n));
                    }
                    Ok(Answer::Modified(Err(e)) | Answer::State(Err(e))) => {
                        return Step::Done(Err(e.into()));
                    }
                    Ok(Answer::State(Ok(_))) => unreachable_stage(),
                },
            };
            match next {
                Ok(s) => c.stage = s,
                Err(e) => return Step::Done(e),
            }
        }
    }

    /// The query; a queue replaced meanwhile (a CQ recovery made a new
    /// one) is done already.
    fn cycle_start(&mut self, t: Target) -> Result<Stage, Result<usize, CycleError>> {
        let state = match t {
            Target::Sq(sqn) => {
                if self.parts.sq.as_ref().map(|s| s.sqn) != Some(sqn) {
                    return Err(Ok(0));
                }
                match self.start_cmd(QuerySq(sqn), Out::QuerySq) {
                    Err(out) => return Ok(Stage::Query(out)),
                    Ok(r) => r.map(|i| i.state),
                }
            }
            Target::Rq(q, rqn) => {
                let Some(rq) = self.rq_at(q) else {
                    return Err(Ok(0));
                };
                if rq.rqn != rqn {
                    return Err(Ok(0));
                }
                if rq.outstanding() != 0 {
                    return Err(Err(CycleError::FramesOut));
                }
                match self.start_cmd(QueryRq(rqn), Out::QueryRq) {
                    Err(out) => return Ok(Stage::Query(out)),
                    Ok(r) => r.map(|i| i.state),
                }
            }
        };
        match state {
            Ok(s) => self.cycle_to_rst(t, s),
            Err(e) => Err(Err(e.into())),
        }
    }

    /// The queue's state known: to RST unless there already.
    fn cycle_to_rst(
        &mut self,
        t: Target,
        state: Option<QueueState>,
    ) -> Result<Stage, Result<usize, CycleError>> {
        let Some(from) = state.filter(|s| *s != QueueState::Rst) else {
            return self.cycle_to_rdy(t);
        };
        let started = self.start_modify(t, from, QueueState::Rst);
        match started {
            Err(out) => Ok(Stage::ToRst(out)),
            Ok(Ok(())) => self.cycle_to_rdy(t),
            Ok(Err(e)) => Err(Err(e.into())),
        }
    }

    /// In RST: the driver's side (completions of the old ring dropped,
    /// transmit buffers back, receive buffers all posted again), then to
    /// RDY.
    fn cycle_to_rdy(&mut self, t: Target) -> Result<Stage, Result<usize, CycleError>> {
        let n = match t {
            Target::Sq(_) => {
                drain(self.parts.tx_cq.as_mut());
                self.parts.sq.as_mut().map_or(0, |sq| sq.reset())
            }
            Target::Rq(q, _) => {
                let Some(x) = self.parts.rx.get_mut(q) else {
                    return Err(Ok(0));
                };
                drain(Some(&mut x.cq));
                match x.rq.as_mut() {
                    Some(rq) => {
                        // Checked at the start; a frame handed out since
                        // cannot be (the queue is out of use).
                        if !rq.reset() {
                            return Err(Err(CycleError::FramesOut));
                        }
                        rq.entries()
                    }
                    None => 0,
                }
            }
        };
        let started = self.start_modify(t, QueueState::Rst, QueueState::Rdy);
        match started {
            Err(out) => Ok(Stage::ToRdy(out, n)),
            Ok(Ok(())) => {
                self.cycle_ready(t);
                Err(Ok(n))
            }
            Ok(Err(e)) => Err(Err(e.into())),
        }
    }

    /// RDY again: a receive queue's buffers are posted.
    fn cycle_ready(&mut self, t: Target) {
        if let Target::Rq(q, _) = t
            && let Some(x) = self.parts.rx.get_mut(q)
        {
            if let Some(rq) = x.rq.as_mut() {
                rq.commit();
            }
            x.uncommitted = 0;
        }
    }

    /// Look once at `out`: `Err` while the device still has it.
    fn collect_out(&mut self, out: Out) -> Result<Answer, Out> {
        match out {
            Out::QuerySq(t) => match self.ctl.collect(t) {
                CmdPoll::Pending(t) => Err(Out::QuerySq(t)),
                CmdPoll::Done(r) => Ok(Answer::State(r.map(|i| i.state))),
            },
            Out::QueryRq(t) => match self.ctl.collect(t) {
                CmdPoll::Pending(t) => Err(Out::QueryRq(t)),
                CmdPoll::Done(r) => Ok(Answer::State(r.map(|i| i.state))),
            },
            Out::ModifySq(t) => match self.ctl.collect(t) {
                CmdPoll::Pending(t) => Err(Out::ModifySq(t)),
                CmdPoll::Done(r) => Ok(Answer::Modified(r.map(|_| ()))),
            },
            Out::ModifyRq(t) => match self.ctl.collect(t) {
                CmdPoll::Pending(t) => Err(Out::ModifyRq(t)),
                CmdPoll::Done(r) => Ok(Answer::Modified(r.map(|_| ()))),
            },
        }
    }

    /// Closing: wait for the commands the recoveries have out (their
    /// command slots must be given back; bounded by the command timeout)
    /// and drop the recoveries.
    pub(super) fn finish_recoveries(&mut self) {
        for r in core::mem::take(&mut self.recoveries) {
            let cycle = match r.plan {
                Plan::Queue(c) => Some(c),
                Plan::Port { cur, .. } => cur,
                Plan::RxRing(_) => None,
            };
            let out = match cycle.map(|c| c.stage) {
                Some(Stage::Query(o) | Stage::ToRst(o) | Stage::ToRdy(o, _)) => o,
                _ => continue,
            };
            let mut out = out;
            while let Err(o) = self.collect_out(out) {
                out = o;
                cxos_drivers::Clock::relax(self.ctl.clock());
            }
        }
    }
}

/// A cycle command's answer.
enum Answer {
    /// A query: the queue's state.
    State(Result<Option<QueueState>, CmdError>),
    /// A MODIFY.
    Modified(Result<(), CmdError>),
}

/// A query's answer where a MODIFY's is due or the other way round: each
/// stage holds only its own command.
fn unreachable_stage() -> Result<Stage, Result<usize, CycleError>> {
    Err(Err(CycleError::Stage))
}
