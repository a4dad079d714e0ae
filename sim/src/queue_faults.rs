//! Data-path fault injection: queues, CQs and EQs misbehaving as hardware
//! does when a driver hands it bad work, or when it loses track of an
//! EQ's consumer counter (control socket `fault sq-bad-lkey ...`, the
//! harness's [`crate::harness::Harness::inject_queue`]).
//!
//! - `sq-bad-lkey` / `sq-bad-addr` / `rq-bad-lkey` / `rq-bad-addr`: the
//!   queue's next `count` WQEs that carry data are treated as naming an
//!   lkey the mkey table does not hold / an address outside the key's
//!   range. The model refuses the access before touching memory (so the
//!   sanitizer records nothing) and answers as for any refused access:
//!   an error CQE with syndrome LOCAL_PROT (0x04; PRM "Completion Queue
//!   Error": a memory access outside the key's rights or range), the
//!   queue goes to ERR and flushes the rest (WR_FLUSH 0x05).
//! - `sq-bad-opcode`: the SQ's next `count` WQEs are read as carrying an
//!   opcode no Ethernet SQ takes (0xff); the model answers as for any such
//!   opcode: LOCAL_QP_OP (0x02), the SQ goes to ERR.
//! - `cq-overflow`: the CQ overruns as if its consumer counter had not
//!   moved: status CQ_OVERFLOW and a CQ error event with the "CQ overrun"
//!   syndrome (`cmd::cq::overrun`); it writes nothing more until
//!   destroyed. `cq-overflow rx`: the CQ of the first RQ in use.
//!   `cq-overflow-lost-event`: the same overrun, its event lost (only
//!   QUERY_CQ shows it).
//! - `wq-catastrophic`: the SQ or RQ goes to ERR and a WQ catastrophic
//!   error event (type 0x05, `struct mlx5_eqe_qp_srq`: type at data byte
//!   20, queue number at 24) names it. `wq-invalid-request` and
//!   `wq-access-error`: the same with the WQ invalid request (0x10) and
//!   WQ access error (0x11) events.
//! - `eq-stall`: the EQ's consumer counter is wrong (as after an arm
//!   doorbell carrying a bad one): it writes no EQEs and signals no
//!   interrupts (events are dropped and counted), and QUERY_EQ shows the
//!   wrong counter, until a doorbell writes a consumer counter again. EQEs
//!   written before the injection stay in the ring; the doorbell that
//!   consumes the last of them is taken as the bad arm (the stall holds),
//!   so whether it takes effect does not depend on timing. `eq-stall
//!   sticky`: no doorbell heals it (the EQ's context is broken); only
//!   destroying the EQ ends it, so the driver must recreate the EQ.
//! - `sq-stall`: the SQ stops being processed, without error, until it is
//!   moved to RST (the transmit-timeout case).
//! - `lost-interrupt [eqn=N] [count=K]`: the EQ's next `count` interrupts
//!   are lost: the EQE is written and the EQ disarmed as usual, the MSI-X
//!   message is not sent (an interrupt the platform dropped). `eqn=0` is
//!   the command / async EQ.
//!
//! Queue numbers default to the first completion-path object in use: the
//! lowest-numbered SQ / RQ in RDY, the CQ of that SQ, the EQ of that CQ
//! (never the command EQ, which no CQ uses).
#![deny(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use crate::cmd::cq::{self as cqmod, cqe};
use crate::cmd::sq::{STATE_ERR, STATE_RDY};
use crate::function::Function;

/// What the next WQEs of a queue are treated as carrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadWqe {
    Lkey,
    Addr,
    /// An opcode the queue does not take (SQ only).
    Opcode,
}

/// The opcode a `sq-bad-opcode` WQE is read with: reserved in every
/// `MLX5_OPCODE_*` list (qp.h), so refused as any unknown opcode is.
pub const BAD_OPCODE: u8 = 0xff;

/// A data-path fault, as the control socket names it; `None` queue
/// numbers take the default (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueFault {
    SqBad {
        what: BadWqe,
        sqn: Option<u32>,
        count: u32,
    },
    RqBad {
        what: BadWqe,
        rqn: Option<u32>,
        count: u32,
    },
    EqStall {
        eqn: Option<u8>,
        /// Survives doorbells: only DESTROY_EQ ends it.
        sticky: bool,
    },
    CqOverflow {
        cqn: Option<u32>,
    },
    /// `cq-overflow-lost-event`: the overrun without its event.
    CqOverflowLostEvent {
        cqn: Option<u32>,
    },
    /// `cq-overflow rx`: the receive CQ of the first RQ in use.
    RxCqOverflow,
    WqCatastrophic {
        sqn: Option<u32>,
        rqn: Option<u32>,
    },
    /// WQ invalid request (0x10) or WQ access error (0x11) event: `event`
    /// is one of [`EVENT_WQ_INVALID_REQUEST`], [`EVENT_WQ_ACCESS_ERROR`].
    WqError {
        event: u8,
        sqn: Option<u32>,
        rqn: Option<u32>,
    },
    SqStall {
        sqn: Option<u32>,
    },
    LostInterrupt {
        eqn: Option<u8>,
        count: u32,
    },
}

/// Most WQEs one injection may spoil.
pub const MAX_COUNT: u32 = 1 << 16;

/// `struct mlx5_eqe_qp_srq` `type`: `MLX5_EVENT_QUEUE_TYPE_RQ` /
/// `_SQ` (device.h).
const QUEUE_TYPE_RQ: u8 = 1;
const QUEUE_TYPE_SQ: u8 = 2;
/// `MLX5_EVENT_TYPE_WQ_CATAS_ERROR`, `_WQ_INVAL_REQ_ERROR`,
/// `_WQ_ACCESS_ERROR`.
const EVENT_WQ_CATASTROPHIC: u8 = 0x05;
pub const EVENT_WQ_INVALID_REQUEST: u8 = 0x10;
pub const EVENT_WQ_ACCESS_ERROR: u8 = 0x11;

/// Armed data-path faults.
#[derive(Debug, Default)]
pub struct QueueFaults {
    sq_bad: BTreeMap<u32, (BadWqe, u32)>,
    rq_bad: BTreeMap<u32, (BadWqe, u32)>,
    stalled_sqs: BTreeSet<u32>,
    /// Stalled EQs: the wrong consumer counter QUERY_EQ shows, and the
    /// producer counter the driver's doorbells must reach before one is
    /// taken as the bad arm (events already written when the stall was
    /// injected; `None` once reached or when there were none).
    stalled_eqs: BTreeMap<u8, (u32, Option<u32>)>,
    /// Stalled EQs no doorbell heals.
    sticky_eqs: BTreeSet<u8>,
    /// EQs whose next interrupts are lost, and how many.
    lost_interrupts: BTreeMap<u8, u32>,
    /// Interrupts `lost-interrupt` dropped.
    pub dropped_interrupts: u64,
    /// Events an EQ stall dropped.
    pub dropped_events: u64,
    /// WQEs refused by an injected fault.
    pub refused_wqes: u64,
}

fn num(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Parse `<kind> [key=value ...]` (the words after `fault`); `None` when
/// `kind` is not one of these faults.
pub fn parse<'a>(
    kind: &str,
    words: impl Iterator<Item = &'a str>,
) -> Option<Result<QueueFault, String>> {
    if kind == "cq-overflow" {
        let mut words = words.peekable();
        if words.peek() == Some(&"rx") {
            words.next();
            return Some(match words.next() {
                None => Ok(QueueFault::RxCqOverflow),
                Some(w) => Err(format!("unexpected '{w}' after rx")),
            });
        }
        return Some(parse_args(kind, &["cqn"], words));
    }
    if kind == "eq-stall" {
        // `sticky` is a bare word; the rest are key=value.
        let mut sticky = false;
        let rest: Vec<&str> = words
            .filter(|w| {
                let s = *w == "sticky";
                sticky |= s;
                !s
            })
            .collect();
        return Some(
            parse_args(kind, &["eqn"], rest.into_iter()).map(|f| match f {
                QueueFault::EqStall { eqn, .. } => QueueFault::EqStall { eqn, sticky },
                other => other,
            }),
        );
    }
    let keys: &[&str] = match kind {
        "sq-bad-lkey" | "sq-bad-addr" | "sq-bad-opcode" => &["sqn", "count"],
        "rq-bad-lkey" | "rq-bad-addr" => &["rqn", "count"],
        "eq-stall" => &["eqn"],
        "cq-overflow" | "cq-overflow-lost-event" => &["cqn"],
        "wq-catastrophic" | "wq-invalid-request" | "wq-access-error" => &["sqn", "rqn"],
        "sq-stall" => &["sqn"],
        "lost-interrupt" => &["eqn", "count"],
        _ => return None,
    };
    Some(parse_args(kind, keys, words))
}

fn parse_args<'a>(
    kind: &str,
    keys: &[&str],
    words: impl Iterator<Item = &'a str>,
) -> Result<QueueFault, String> {
    let mut vals: [Option<u64>; 2] = [None, None];
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("unexpected '{w}' (want {})", keys.join("=<n> ")))?;
        let i = keys
            .iter()
            .position(|x| *x == k)
            .ok_or_else(|| format!("unknown key '{k}' for {kind}"))?;
        if vals[i].is_some() {
            return Err(format!("{k} given twice"));
        }
        vals[i] = Some(num(v).ok_or_else(|| format!("bad {k} '{v}'"))?);
    }
    let q = |v: Option<u64>, k: &str| -> Result<Option<u32>, String> {
        match v {
            Some(n) if n > 0xff_ffff => Err(format!("bad {k} '{n:#x}' (24 bits)")),
            Some(n) => Ok(Some(n as u32)),
            None => Ok(None),
        }
    };
    let count = || -> Result<u32, String> {
        match vals[1] {
            None => Ok(1),
            Some(n) if n >= 1 && n <= u64::from(MAX_COUNT) => Ok(n as u32),
            Some(n) => Err(format!("bad count '{n}' (1..={MAX_COUNT})")),
        }
    };
    let what = if kind.ends_with("lkey") {
        BadWqe::Lkey
    } else if kind.ends_with("opcode") {
        BadWqe::Opcode
    } else {
        BadWqe::Addr
    };
    Ok(match kind {
        "sq-bad-lkey" | "sq-bad-addr" | "sq-bad-opcode" => QueueFault::SqBad {
            what,
            sqn: q(vals[0], "sqn")?,
            count: count()?,
        },
        "rq-bad-lkey" | "rq-bad-addr" => QueueFault::RqBad {
            what,
            rqn: q(vals[0], "rqn")?,
            count: count()?,
        },
        "lost-interrupt" => QueueFault::LostInterrupt {
            eqn: match vals[0] {
                Some(n) if n > 0xff => return Err(format!("bad eqn '{n:#x}'")),
                n => n.map(|n| n as u8),
            },
            count: count()?,
        },
        "eq-stall" => QueueFault::EqStall {
            eqn: match vals[0] {
                Some(n) if n > 0xff => return Err(format!("bad eqn '{n:#x}'")),
                n => n.map(|n| n as u8),
            },
            sticky: false,
        },
        "cq-overflow" => QueueFault::CqOverflow {
            cqn: q(vals[0], "cqn")?,
        },
        "cq-overflow-lost-event" => QueueFault::CqOverflowLostEvent {
            cqn: q(vals[0], "cqn")?,
        },
        "wq-catastrophic" | "wq-invalid-request" | "wq-access-error" => {
            if vals[0].is_some() && vals[1].is_some() {
                return Err("sqn= or rqn=, not both".into());
            }
            let (sqn, rqn) = (q(vals[0], "sqn")?, q(vals[1], "rqn")?);
            match kind {
                "wq-catastrophic" => QueueFault::WqCatastrophic { sqn, rqn },
                "wq-invalid-request" => QueueFault::WqError {
                    event: EVENT_WQ_INVALID_REQUEST,
                    sqn,
                    rqn,
                },
                _ => QueueFault::WqError {
                    event: EVENT_WQ_ACCESS_ERROR,
                    sqn,
                    rqn,
                },
            }
        }
        _ => QueueFault::SqStall {
            sqn: q(vals[0], "sqn")?,
        },
    })
}

/// The lowest-numbered queue of `map` (queue number to queue) whose
/// `state` is RDY.
fn first_rdy<Q>(map: &BTreeMap<u32, Q>, state: impl Fn(&Q) -> u8) -> Option<u32> {
    map.iter()
        .find(|(_, q)| state(q) == STATE_RDY)
        .map(|(n, _)| *n)
}

fn first_sq(dev: &Function) -> Option<u32> {
    first_rdy(&dev.nic.sqs.map, |s| s.state)
}

fn first_rq(dev: &Function) -> Option<u32> {
    first_rdy(&dev.nic.rqs.map, |r| r.state)
}

fn no(what: &str) -> String {
    format!("no {what} in use")
}

/// SQ `sqn`, or the first in use; an error unless it exists.
fn sq_in_use(dev: &Function, sqn: Option<u32>) -> Result<u32, String> {
    let sqn = sqn.or_else(|| first_sq(dev)).ok_or_else(|| no("SQ"))?;
    match dev.nic.sqs.get(sqn) {
        Some(_) => Ok(sqn),
        None => Err(format!("no SQ {sqn:#x}")),
    }
}

/// EQ `eqn`, or the EQ of the first CQ in use; an error unless it exists.
fn completion_eq(dev: &Function, eqn: Option<u8>) -> Result<u8, String> {
    let eqn = match eqn {
        Some(e) => e,
        None => first_cq(dev)
            .and_then(|c| dev.nic.cqs.get(c))
            .map(|c| c.eqn)
            .ok_or_else(|| no("completion EQ"))?,
    };
    match dev.eqs.get(eqn) {
        Some(_) => Ok(eqn),
        None => Err(format!("no EQ {eqn}")),
    }
}

fn first_cq(dev: &Function) -> Option<u32> {
    first_sq(dev)
        .and_then(|s| dev.nic.sqs.get(s))
        .map(|s| s.cqn)
        .or_else(|| {
            first_rq(dev)
                .and_then(|r| dev.nic.rqs.get(r))
                .map(|r| r.cqn)
        })
}

/// Arm `f`; returns what was armed (`sq-bad-lkey sqn=0x8 count=1`) or
/// why not.
pub fn inject(dev: &mut Function, f: QueueFault) -> Result<String, String> {
    match f {
        QueueFault::SqBad { what, sqn, count } => {
            let sqn = sq_in_use(dev, sqn)?;
            dev.faults.queues.sq_bad.insert(sqn, (what, count));
            Ok(format!("sq-bad-{} sqn={sqn:#x} count={count}", name(what)))
        }
        QueueFault::RqBad { what, rqn, count } => {
            let rqn = rqn.or_else(|| first_rq(dev)).ok_or_else(|| no("RQ"))?;
            if dev.nic.rqs.get(rqn).is_none() {
                return Err(format!("no RQ {rqn:#x}"));
            }
            dev.faults.queues.rq_bad.insert(rqn, (what, count));
            Ok(format!("rq-bad-{} rqn={rqn:#x} count={count}", name(what)))
        }
        QueueFault::EqStall { eqn, sticky } => {
            let eqn = completion_eq(dev, eqn)?;
            let eq = dev.eqs.get(eqn).ok_or_else(|| format!("no EQ {eqn}"))?;
            // The counter a bad arm doorbell left: half the counter space
            // away from the real one.
            let wrong = (eq.consumer ^ 0x80_0000) & 0xff_ffff;
            // EQEs the device wrote before the stall are still in the ring:
            // the driver consumes them and rings the doorbell, and that
            // doorbell is the arm that carries the wrong counter (otherwise
            // it would heal the stall at once, by chance of timing).
            let leftover = (eq.producer != eq.consumer).then_some(eq.producer);
            dev.faults.queues.stalled_eqs.insert(eqn, (wrong, leftover));
            if sticky {
                dev.faults.queues.sticky_eqs.insert(eqn);
                return Ok(format!("eq-stall eqn={eqn:#x} sticky"));
            }
            Ok(format!("eq-stall eqn={eqn:#x}"))
        }
        QueueFault::RxCqOverflow => {
            let cqn = first_rq(dev)
                .and_then(|r| dev.nic.rqs.get(r))
                .map(|r| r.cqn)
                .ok_or_else(|| no("RQ"))?;
            inject(dev, QueueFault::CqOverflow { cqn: Some(cqn) })
        }
        QueueFault::CqOverflow { cqn } => {
            let cqn = cqn.or_else(|| first_cq(dev)).ok_or_else(|| no("CQ"))?;
            if dev.nic.cqs.get(cqn).is_none() {
                return Err(format!("no CQ {cqn:#x}"));
            }
            cqmod::overrun(dev, cqn);
            Ok(format!("cq-overflow cqn={cqn:#x}"))
        }
        QueueFault::CqOverflowLostEvent { cqn } => {
            let cqn = cqn.or_else(|| first_cq(dev)).ok_or_else(|| no("CQ"))?;
            if !cqmod::overrun_state(dev, cqn) {
                return Err(format!("no CQ {cqn:#x}"));
            }
            Ok(format!("cq-overflow-lost-event cqn={cqn:#x}"))
        }
        QueueFault::WqCatastrophic { sqn, rqn } => wq_event(dev, EVENT_WQ_CATASTROPHIC, sqn, rqn),
        QueueFault::WqError { event, sqn, rqn } => wq_event(dev, event, sqn, rqn),
        QueueFault::SqStall { sqn } => {
            let sqn = sq_in_use(dev, sqn)?;
            dev.faults.queues.stalled_sqs.insert(sqn);
            Ok(format!("sq-stall sqn={sqn:#x}"))
        }
        QueueFault::LostInterrupt { eqn, count } => {
            let eqn = completion_eq(dev, eqn)?;
            dev.faults.queues.lost_interrupts.insert(eqn, count);
            Ok(format!("lost-interrupt eqn={eqn:#x} count={count}"))
        }
    }
}

/// The SQ or RQ goes to ERR and the work queue error event `event`
/// (`struct mlx5_eqe_qp_srq`) names it; defaults to the first SQ in use.
fn wq_event(
    dev: &mut Function,
    event: u8,
    sqn: Option<u32>,
    rqn: Option<u32>,
) -> Result<String, String> {
    let (ty, n) = match (sqn, rqn) {
        (None, Some(r)) => {
            let rq = dev
                .nic
                .rqs
                .map
                .get_mut(&r)
                .ok_or_else(|| format!("no RQ {r:#x}"))?;
            rq.state = STATE_ERR;
            (QUEUE_TYPE_RQ, r)
        }
        (s, _) => {
            let s = s.or_else(|| first_sq(dev)).ok_or_else(|| no("SQ"))?;
            let sq = dev
                .nic
                .sqs
                .map
                .get_mut(&s)
                .ok_or_else(|| format!("no SQ {s:#x}"))?;
            sq.state = STATE_ERR;
            (QUEUE_TYPE_SQ, s)
        }
    };
    let mut data = [0u8; 28];
    data[20] = ty;
    data[24..28].copy_from_slice(&n.to_be_bytes());
    crate::cmd::eq::raise_event(dev, event, 0, &data);
    let what = if ty == QUEUE_TYPE_SQ { "sqn" } else { "rqn" };
    let kind = match event {
        EVENT_WQ_INVALID_REQUEST => "wq-invalid-request",
        EVENT_WQ_ACCESS_ERROR => "wq-access-error",
        _ => "wq-catastrophic",
    };
    Ok(format!("{kind} {what}={n:#x}"))
}

fn name(w: BadWqe) -> &'static str {
    match w {
        BadWqe::Lkey => "lkey",
        BadWqe::Addr => "addr",
        BadWqe::Opcode => "opcode",
    }
}

impl QueueFaults {
    /// Spend one spoiled WQE of queue `n` if its fault is `opcode`'s kind
    /// (a bad opcode, or a bad lkey / address).
    fn take(map: &mut BTreeMap<u32, (BadWqe, u32)>, n: u32, opcode: bool) -> Option<u8> {
        let e = map.get_mut(&n)?;
        if (e.0 == BadWqe::Opcode) != opcode {
            return None;
        }
        e.1 -= 1;
        if e.1 == 0 {
            map.remove(&n);
        }
        Some(cqe::SYN_LOCAL_PROT)
    }

    /// The syndrome for SQ `sqn`'s next data WQE, when a fault spoils it.
    pub fn take_sq_wqe(&mut self, sqn: u32) -> Option<u8> {
        if self.sq_bad.is_empty() {
            return None;
        }
        let s = Self::take(&mut self.sq_bad, sqn, false);
        self.refused_wqes += s.is_some() as u64;
        s
    }

    /// The opcode SQ `sqn`'s next WQE is read with: `opcode`, or
    /// [`BAD_OPCODE`] when `sq-bad-opcode` spoils it.
    pub fn sq_opcode(&mut self, sqn: u32, opcode: u8) -> u8 {
        if self.sq_bad.is_empty() || Self::take(&mut self.sq_bad, sqn, true).is_none() {
            return opcode;
        }
        self.refused_wqes += 1;
        BAD_OPCODE
    }

    /// As [`QueueFaults::take_sq_wqe`] for RQ `rqn`.
    pub fn take_rq_wqe(&mut self, rqn: u32) -> Option<u8> {
        if self.rq_bad.is_empty() {
            return None;
        }
        let s = Self::take(&mut self.rq_bad, rqn, false);
        self.refused_wqes += s.is_some() as u64;
        s
    }

    pub fn sq_stalled(&self, sqn: u32) -> bool {
        !self.stalled_sqs.is_empty() && self.stalled_sqs.contains(&sqn)
    }

    /// SQ `sqn` went to RST: a stall ends (WQEs still to spoil stay
    /// armed: `count` spans the queue's recoveries).
    pub fn sq_reset(&mut self, sqn: u32) {
        self.stalled_sqs.remove(&sqn);
    }

    /// SQ `sqn` was destroyed: nothing armed against it outlives it (a
    /// new SQ may get the same number).
    pub fn sq_gone(&mut self, sqn: u32) {
        self.stalled_sqs.remove(&sqn);
        self.sq_bad.remove(&sqn);
    }

    /// RQ `rqn` was destroyed (as [`QueueFaults::sq_gone`]).
    pub fn rq_gone(&mut self, rqn: u32) {
        self.rq_bad.remove(&rqn);
    }

    /// Every SQ and RQ destroyed at once (DISABLE_HCA, function reset).
    pub fn queues_gone(&mut self) {
        self.stalled_sqs.clear();
        self.sq_bad.clear();
        self.rq_bad.clear();
    }

    /// The wrong consumer counter of a stalled EQ.
    pub fn eq_stalled(&self, eqn: u8) -> Option<u32> {
        if self.stalled_eqs.is_empty() {
            return None;
        }
        self.stalled_eqs.get(&eqn).map(|s| s.0)
    }

    /// A doorbell wrote EQ `eqn`'s consumer counter `ci`: a stall ends,
    /// unless the doorbell only consumes the events written before the
    /// stall (up to the bad arm). Returns whether the EQ is still stalled.
    pub fn eq_doorbell(&mut self, eqn: u8, ci: u32) -> bool {
        if self.stalled_eqs.is_empty() {
            return false;
        }
        if self.sticky_eqs.contains(&eqn) {
            return true;
        }
        match self.stalled_eqs.get_mut(&eqn) {
            Some((_, until @ Some(_))) => {
                if *until == Some(ci) {
                    *until = None;
                }
                true
            }
            Some((_, None)) => {
                self.stalled_eqs.remove(&eqn);
                false
            }
            None => false,
        }
    }

    /// EQ `eqn` was destroyed.
    pub fn eq_gone(&mut self, eqn: u8) {
        self.stalled_eqs.remove(&eqn);
        self.sticky_eqs.remove(&eqn);
        self.lost_interrupts.remove(&eqn);
    }

    /// Whether EQ `eqn`'s interrupt now is lost (`lost-interrupt`);
    /// spends one.
    pub fn take_lost_interrupt(&mut self, eqn: u8) -> bool {
        if self.lost_interrupts.is_empty() {
            return false;
        }
        let Some(left) = self.lost_interrupts.get_mut(&eqn) else {
            return false;
        };
        *left -= 1;
        if *left == 0 {
            self.lost_interrupts.remove(&eqn);
        }
        self.dropped_interrupts += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eq_stall_holds_through_the_doorbells_that_consume_earlier_events() {
        // Events up to producer 12 were in the ring when the stall was
        // injected: doorbells up to 12 keep it, the one after heals it.
        let mut q = QueueFaults::default();
        q.stalled_eqs.insert(3, (0x80_0005, Some(12)));
        assert!(q.eq_doorbell(3, 9));
        assert!(q.eq_doorbell(3, 12));
        assert_eq!(q.eq_stalled(3), Some(0x80_0005));
        assert!(!q.eq_doorbell(4, 1), "another EQ");
        assert!(!q.eq_doorbell(3, 12), "the next doorbell heals it");
        assert_eq!(q.eq_stalled(3), None);
        // No earlier events: the first doorbell heals it.
        q.stalled_eqs.insert(3, (0x80_0000, None));
        assert!(!q.eq_doorbell(3, 0));
        assert_eq!(q.eq_stalled(3), None);
        // Sticky: no doorbell heals it, destroying the EQ does.
        q.stalled_eqs.insert(3, (0x80_0000, None));
        q.sticky_eqs.insert(3);
        assert!(q.eq_doorbell(3, 0));
        assert!(q.eq_doorbell(3, 0x80_0000));
        assert_eq!(q.eq_stalled(3), Some(0x80_0000));
        q.eq_gone(3);
        assert_eq!(q.eq_stalled(3), None);
        assert!(!q.eq_doorbell(3, 0));
    }

    #[test]
    fn lost_interrupts_count_down_per_eq() {
        let mut q = QueueFaults::default();
        q.lost_interrupts.insert(0, 2);
        assert!(!q.take_lost_interrupt(1), "another EQ");
        assert!(q.take_lost_interrupt(0));
        assert!(q.take_lost_interrupt(0));
        assert!(!q.take_lost_interrupt(0), "spent");
        assert_eq!(q.dropped_interrupts, 2);
        q.lost_interrupts.insert(4, 1);
        q.eq_gone(4);
        assert!(!q.take_lost_interrupt(4));
    }

    fn p(line: &str) -> Option<Result<QueueFault, String>> {
        let mut w = line.split_whitespace();
        let k = w.next().unwrap();
        parse(k, w)
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            p("sq-bad-lkey"),
            Some(Ok(QueueFault::SqBad {
                what: BadWqe::Lkey,
                sqn: None,
                count: 1
            }))
        );
        assert_eq!(
            p("rq-bad-addr count=3 rqn=0x9"),
            Some(Ok(QueueFault::RqBad {
                what: BadWqe::Addr,
                rqn: Some(9),
                count: 3
            }))
        );
        assert_eq!(
            p("eq-stall eqn=5"),
            Some(Ok(QueueFault::EqStall {
                eqn: Some(5),
                sticky: false
            }))
        );
        assert_eq!(
            p("eq-stall sticky eqn=5"),
            Some(Ok(QueueFault::EqStall {
                eqn: Some(5),
                sticky: true
            }))
        );
        assert_eq!(
            p("cq-overflow"),
            Some(Ok(QueueFault::CqOverflow { cqn: None }))
        );
        assert_eq!(p("cq-overflow rx"), Some(Ok(QueueFault::RxCqOverflow)));
        assert!(p("cq-overflow rx 5").unwrap().is_err());
        assert_eq!(
            p("wq-catastrophic rqn=2"),
            Some(Ok(QueueFault::WqCatastrophic {
                sqn: None,
                rqn: Some(2)
            }))
        );
        assert_eq!(
            p("sq-stall sqn=1"),
            Some(Ok(QueueFault::SqStall { sqn: Some(1) }))
        );
        assert_eq!(
            p("sq-bad-opcode count=2"),
            Some(Ok(QueueFault::SqBad {
                what: BadWqe::Opcode,
                sqn: None,
                count: 2
            }))
        );
        assert_eq!(
            p("wq-invalid-request sqn=3"),
            Some(Ok(QueueFault::WqError {
                event: 0x10,
                sqn: Some(3),
                rqn: None
            }))
        );
        assert_eq!(
            p("wq-access-error rqn=4"),
            Some(Ok(QueueFault::WqError {
                event: 0x11,
                sqn: None,
                rqn: Some(4)
            }))
        );
        assert_eq!(p("rq-bad-opcode"), None);
        assert_eq!(
            p("cq-overflow-lost-event cqn=7"),
            Some(Ok(QueueFault::CqOverflowLostEvent { cqn: Some(7) }))
        );
        assert_eq!(
            p("lost-interrupt count=2 eqn=0"),
            Some(Ok(QueueFault::LostInterrupt {
                eqn: Some(0),
                count: 2
            }))
        );
        assert_eq!(
            p("lost-interrupt"),
            Some(Ok(QueueFault::LostInterrupt {
                eqn: None,
                count: 1
            }))
        );
        assert_eq!(p("health 8"), None);
    }

    #[test]
    fn refuses_bad_arguments() {
        for (line, why) in [
            ("sq-bad-lkey rqn=1", "unknown key 'rqn'"),
            ("sq-bad-lkey count=0", "bad count"),
            ("sq-bad-lkey count=70000", "bad count"),
            ("sq-bad-lkey sqn=0x1000000", "24 bits"),
            ("sq-bad-lkey sqn=1 sqn=2", "twice"),
            ("sq-bad-lkey 5", "unexpected '5'"),
            ("eq-stall eqn=256", "bad eqn"),
            ("eq-stall eqn=x", "bad eqn 'x'"),
            ("lost-interrupt eqn=300", "bad eqn"),
            ("lost-interrupt count=0", "bad count"),
            ("lost-interrupt sqn=1", "unknown key 'sqn'"),
            ("wq-catastrophic sqn=1 rqn=1", "not both"),
        ] {
            let e = p(line).unwrap().unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn wqe_faults_count_down() {
        let mut q = QueueFaults::default();
        q.sq_bad.insert(8, (BadWqe::Lkey, 2));
        assert_eq!(q.take_sq_wqe(9), None);
        assert_eq!(q.take_sq_wqe(8), Some(cqe::SYN_LOCAL_PROT));
        assert_eq!(q.take_sq_wqe(8), Some(cqe::SYN_LOCAL_PROT));
        assert_eq!(q.take_sq_wqe(8), None);
        assert_eq!(q.refused_wqes, 2);
        // A bad opcode is spent by the opcode read only.
        q.sq_bad.insert(8, (BadWqe::Opcode, 1));
        assert_eq!(q.take_sq_wqe(8), None);
        assert_eq!(q.sq_opcode(8, 0x0a), BAD_OPCODE);
        assert_eq!(q.sq_opcode(8, 0x0a), 0x0a);
        assert_eq!(q.refused_wqes, 3);
    }

    #[test]
    fn nothing_armed_outlives_its_queue() {
        let mut q = QueueFaults::default();
        q.sq_bad.insert(8, (BadWqe::Lkey, 2));
        q.rq_bad.insert(9, (BadWqe::Addr, 2));
        q.stalled_sqs.insert(8);
        // A reset to RST keeps the spoiled WQEs, ends the stall.
        q.sq_reset(8);
        assert!(!q.sq_stalled(8));
        assert_eq!(q.take_sq_wqe(8), Some(cqe::SYN_LOCAL_PROT));
        q.stalled_sqs.insert(8);
        q.sq_gone(8);
        q.rq_gone(9);
        assert_eq!((q.take_sq_wqe(8), q.take_rq_wqe(9)), (None, None));
        assert!(!q.sq_stalled(8));
        q.sq_bad.insert(8, (BadWqe::Lkey, 1));
        q.rq_bad.insert(9, (BadWqe::Lkey, 1));
        q.stalled_sqs.insert(8);
        q.queues_gone();
        assert_eq!((q.take_sq_wqe(8), q.take_rq_wqe(9)), (None, None));
        assert!(!q.sq_stalled(8));
    }
}
