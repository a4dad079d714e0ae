//! RSS table entries lent to other queue sets (issue 21's receive
//! helpers, `crate::vnic::Vnic::spread_rx`): entry `i` (1..) of the RSS
//! RQT (PRM "RQ Table", `rqtc.rq_num[]`) lists a helper's RQ in place of
//! this queue set's receive queue `i`. The loan lives here, not in the
//! caller, so that every rewrite of the table (an RQ recreated after a
//! CQ overrun, `rx_recreate`) lists the helpers again rather than this
//! queue set's own queues.

use alloc::vec::Vec;

use super::QueueSet;
use crate::control::Control;
use crate::error::CmdError;
use crate::rq::Rqn;
use crate::rqt::{ModifyRqt, QueryRqt, Rqtn};

/// Both sides of a loan.
#[derive(Default)]
pub(super) struct Loan {
    /// RSS table entries 1.. lent to these RQs.
    lent: Vec<Rqn>,
    /// The table (of that many entries) this queue set's RQ 0 may be
    /// listed in.
    borrower: Option<(Rqtn, usize)>,
}

impl<C: Control> QueueSet<C> {
    /// Lend receive queue 0 to the RSS table `rqt` of `size` entries:
    /// recreating it repoints that table too.
    pub fn lend_to(&mut self, rqt: Rqtn, size: usize) {
        self.loan.borrower = Some((rqt, size));
    }

    /// The borrower's table lists `to` wherever it listed `from`.
    pub(super) fn repoint_borrower(&mut self, from: Rqn, to: Rqn) -> Result<(), CmdError> {
        let Some((rqt, size)) = self.loan.borrower else {
            return Ok(());
        };
        let mut rqns = self.ctl.exec(&QueryRqt { rqt, size })?;
        if !rqns.contains(&from) {
            return Ok(());
        }
        for r in rqns.iter_mut().filter(|r| **r == from) {
            *r = to;
        }
        self.ctl.exec(&ModifyRqt { rqt, rqns })
    }

    /// The RSS table's entries now: receive queue `i`'s RQ, or the RQ lent
    /// for entry `i`; `replace` names an RQ about to take queue `q`'s
    /// place. An entry without an RQ of its own (none is missing in an
    /// open queue set) takes queue 0's.
    pub(super) fn rss_entries(&self, replace: Option<(usize, Rqn)>) -> Vec<Rqn> {
        let own = |i: usize| match replace {
            Some((q, r)) if q == i => Some(r),
            _ => self
                .parts
                .rx
                .get(i)
                .and_then(|x| x.rq.as_ref().map(|r| r.rqn)),
        };
        let first = own(0);
        (0..self.parts.rx.len())
            .map(|i| {
                i.checked_sub(1)
                    .and_then(|k| self.loan.lent.get(k).copied())
                    .or_else(|| own(i))
                    .or(first)
                    .unwrap_or(Rqn(0))
            })
            .collect()
    }

    /// Lend RSS table entries 1..=`rqns.len()` to `rqns` (empty: take them
    /// all back) and rewrite the table. The caller checks that the table
    /// has room (entry 0 always stays this queue set's); without an RSS
    /// table this records nothing.
    pub fn lend_rss(&mut self, rqns: Vec<Rqn>) -> Result<(), CmdError> {
        let Some(rqt) = self.parts.rqt else {
            return Ok(());
        };
        let before = core::mem::replace(&mut self.loan.lent, rqns);
        let rqns = self.rss_entries(None);
        let done = self.ctl.exec(&ModifyRqt { rqt, rqns });
        if done.is_err() {
            // The device's table is what it was.
            self.loan.lent = before;
        }
        done
    }

    /// The RQs lent RSS table entries 1.. ([`QueueSet::lend_rss`]).
    pub fn rss_lent(&self) -> &[Rqn] {
        &self.loan.lent
    }
}
