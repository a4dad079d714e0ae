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
use crate::fault::{FaultAction, FaultClass, FaultObject, FaultOutcome, FaultRecord};
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
        let (class, object) = match self.queue {
            QueueId::Sq(s) => (FaultClass::SqErr, FaultObject::Sq(s.0)),
            QueueId::Rq(r) => (FaultClass::RqErr, FaultObject::Rq(r.0)),
        };
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
        };
        if r.detail.is_none() {
            r = r.detail("returned", self.returned as u64);
        }
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

impl<C: Control> QueueSet<C> {
    pub(super) fn report_fault(&mut self, fault: QueueFault) {
        self.ctl.record_fault(fault.record());
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
        let returned = self.parts.sq.as_mut().map(|sq| sq.reset()).unwrap_or(0);
        self.ctl.exec(&ModifySq {
            sqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        })?;
        Ok(returned)
    }

    pub(super) fn recover_sq(&mut self, cause: FaultCause) {
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

    pub(super) fn recover_rq(&mut self, q: usize, cause: FaultCause) {
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
        let s = port.stats_report().eth;
        assert_eq!((s.faults, s.recoveries, s.failed_recoveries), (1, 1, 0));
        // Traffic resumes from WQE 0.
        port.transmit(60, |_| ()).unwrap();
        port.flush();
        assert_eq!(&p.s.borrow().bar0[0x5800..0x5804], &[0, 0, 0, 0x0a]);
        let _ = port.close();
    }
}
