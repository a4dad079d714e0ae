//! RSS table entries lent to other queue sets (issue 21's receive
//! helpers, `crate::vnic::Vnic::spread_rx`): entry `i` (1..) of the RSS
//! RQT (PRM "RQ Table", `rqtc.rq_num[]`) lists a helper's RQ in place of
//! this queue set's receive queue `i`. The loan lives with the queue set,
//! not the caller, so that every rewrite of the table (an RQ recreated
//! after a CQ overrun, `rx_recreate`) lists the helpers again rather than
//! this queue set's own queues.
//!
//! The table has several writers on several CPUs: the queue set that owns
//! it (its recoveries, a new loan) and each helper, whose recreated RQ
//! takes its old one's place (QUERY_RQT, MODIFY_RQT: the device refuses
//! to destroy a listed RQ), each recovered where it runs. So the loan is
//! shared state, [`RssShare`], held by the owner and every helper, and
//! the contract for one table is:
//!
//! - every writer holds the share's lock from reading what it builds the
//!   new list from (its own RQs and the lent ones, or QUERY_RQT) to
//!   MODIFY_RQT's answer: two read-modify-writes of the table never
//!   interleave (a helper's QUERY_RQT/MODIFY_RQT could otherwise put back
//!   an owner's RQ the owner just replaced and destroyed);
//! - the lent list is changed under that lock by whoever changes an entry:
//!   a helper swapping its RQ in the table swaps it in the list too, so
//!   the owner's next rewrite lists every helper's RQ as it is now, never
//!   one already destroyed, whether or not the owner has checked its
//!   helpers since;
//! - the lock is a control-path lock (recovery, a new loan), never taken
//!   on a packet path. It is held across the command's cooperative wait,
//!   so the idle work run meanwhile must not write an RSS table (it
//!   polls: it never recovers a queue).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::{Mutex, MutexGuard};

use super::QueueSet;
use crate::control::Control;
use crate::error::CmdError;
use crate::rq::Rqn;
use crate::rqt::{ModifyRqt, QueryRqt, Rqtn};

/// One RSS table's loan, shared by the queue set that owns the table and
/// the helpers it is lent to (module documentation: the lock's contract).
#[derive(Debug, Default)]
pub(crate) struct RssShare {
    /// Entries 1..=`len` lent to these RQs. Its lock is the table's.
    lent: Mutex<Vec<Rqn>>,
    /// Writers that found the table's lock held (another writer at work).
    contended: AtomicU64,
}

impl RssShare {
    /// The table's lock.
    fn write_lock(&self) -> MutexGuard<'_, Vec<Rqn>> {
        if let Some(g) = self.lent.try_lock() {
            return g;
        }
        self.contended.fetch_add(1, Ordering::Relaxed);
        self.lent.lock()
    }

    /// Writers that had to wait for another one.
    #[cfg(test)]
    fn contended(&self) -> u64 {
        self.contended.load(Ordering::Relaxed)
    }
}

/// The table a helper's receive queue 0 is listed in.
#[derive(Debug)]
struct Borrowed {
    rqt: Rqtn,
    size: usize,
    share: Arc<RssShare>,
}

/// Both sides of a loan.
#[derive(Debug, Default)]
pub(super) struct Loan {
    /// This queue set's RSS table's loan (empty while not lent).
    share: Arc<RssShare>,
    /// The table this queue set's RQ 0 may be listed in.
    borrower: Option<Borrowed>,
}

/// Between a helper's QUERY_RQT and its MODIFY_RQT (tests: another
/// writer's turn).
#[cfg(test)]
pub(crate) static BETWEEN_QUERY_AND_MODIFY: Mutex<Option<alloc::boxed::Box<dyn Fn() + Send>>> =
    Mutex::new(None);

impl<C: Control> QueueSet<C> {
    /// Lend receive queue 0 to `owner`'s RSS table (a receive helper of
    /// `owner`): recreating it repoints that table too. Nothing when
    /// `owner` has no RSS table.
    pub fn lend_to(&mut self, owner: &QueueSet<C>) {
        self.loan.borrower = owner.parts.rqt.map(|rqt| Borrowed {
            rqt,
            size: owner.parts.rx.len(),
            share: owner.loan.share.clone(),
        });
    }

    /// The borrower's table lists `to` wherever it listed `from`, and so
    /// does its loan (under the table's lock: module documentation).
    pub(super) fn repoint_borrower(&mut self, from: Rqn, to: Rqn) -> Result<(), CmdError> {
        let Some(b) = self.loan.borrower.as_ref() else {
            return Ok(());
        };
        let (rqt, size, share) = (b.rqt, b.size, b.share.clone());
        let mut lent = share.write_lock();
        let mut rqns = self.ctl.exec(&QueryRqt { rqt, size })?;
        #[cfg(test)]
        if let Some(f) = BETWEEN_QUERY_AND_MODIFY.lock().as_ref() {
            f();
        }
        if rqns.contains(&from) {
            for r in rqns.iter_mut().filter(|r| **r == from) {
                *r = to;
            }
            self.ctl.exec(&ModifyRqt { rqt, rqns })?;
        }
        // `from` goes (or, undoing, `to` never came): the owner's next
        // rewrite takes the other.
        for r in lent.iter_mut().filter(|r| **r == from) {
            *r = to;
        }
        Ok(())
    }

    /// The RSS table's entries from receive queue `i`'s RQ, or the RQ lent
    /// for entry `i` (`lent`, the share's list under its lock); `replace`
    /// names an RQ about to take queue `q`'s place. An entry without an RQ
    /// of its own (none is missing in an open queue set) takes queue 0's.
    fn rss_entries(&self, lent: &[Rqn], replace: Option<(usize, Rqn)>) -> Vec<Rqn> {
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
                    .and_then(|k| lent.get(k).copied())
                    .or_else(|| own(i))
                    .or(first)
                    .unwrap_or(Rqn(0))
            })
            .collect()
    }

    /// Rewrite the RSS table (if any) as it is now, `replace` as in
    /// `rss_entries`: under its lock, with the lent RQs as the helpers
    /// left them.
    pub(super) fn write_rss(&mut self, replace: Option<(usize, Rqn)>) -> Result<(), CmdError> {
        let Some(rqt) = self.parts.rqt else {
            return Ok(());
        };
        let share = self.loan.share.clone();
        let lent = share.write_lock();
        let rqns = self.rss_entries(&lent, replace);
        self.ctl.exec(&ModifyRqt { rqt, rqns })
    }

    /// Lend RSS table entries 1..=`rqns.len()` to `rqns` (empty: take them
    /// all back) and rewrite the table. The caller checks that the table
    /// has room (entry 0 always stays this queue set's) and that `rqns`
    /// are the helpers' RQs now (they are not recovering meanwhile: a new
    /// loan, or one taken back); without an RSS table this records
    /// nothing.
    pub fn lend_rss(&mut self, rqns: Vec<Rqn>) -> Result<(), CmdError> {
        let Some(rqt) = self.parts.rqt else {
            return Ok(());
        };
        let share = self.loan.share.clone();
        let mut lent = share.write_lock();
        let before = core::mem::replace(&mut *lent, rqns);
        let entries = self.rss_entries(&lent, None);
        let done = self.ctl.exec(&ModifyRqt { rqt, rqns: entries });
        if done.is_err() {
            // The device's table is what it was.
            *lent = before;
        }
        done
    }

    /// The RQs lent RSS table entries 1.. now ([`QueueSet::lend_rss`], as
    /// the helpers have changed them since).
    pub fn rss_lent(&self) -> Vec<Rqn> {
        self.loan.share.lent.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use alloc::boxed::Box;
    use alloc::vec;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    use mlx5_sim::Personality;
    use mlx5_sim::harness::{Mode, SimPlatform};

    use super::*;
    use crate::vnic::{Nic, NicConfig, VnicSpec};
    use crate::{Adapter, Config, EthConfig, Resources};

    /// Two CPUs write one VNIC's RSS table at once, in the model's
    /// threaded mode: a receive helper recreating its RQ on one thread
    /// (QUERY_RQT, MODIFY_RQT), the VNIC recreating its own queue 0 on
    /// another, started between the helper's query and its modify (the
    /// hook) and let on only once it waits for the table's lock (or is
    /// done). The VNIC's rewrite waits for the helper's: both recoveries
    /// succeed and the table lists both new RQs. Without the lock the
    /// helper's MODIFY_RQT lists the VNIC's queue 0 as it queried it, an
    /// RQ the VNIC has destroyed by then (refused: the helper's recovery
    /// fails).
    #[test]
    fn a_helper_and_its_vnic_recreating_rqs_at_once_take_turns_at_the_table() {
        let sim = SimPlatform::new_loopback(Personality::ConnectX5, Mode::Threaded);
        let dma_before = sim.dma_in_use();
        let config = Config {
            cmd_timeout_ms: Some(5_000),
            fw_init_timeout_ms: Some(5_000),
            ..Config::default()
        };
        let a = Adapter::attach(sim.clone(), config)
            .unwrap_or_else(|f| panic!("attach failed: {}", f.error));
        let r = Resources::of(&a).expect("resources");
        let cfg = NicConfig {
            eth: EthConfig {
                log_sq: 5,
                log_rq: 5,
                lso_bufs: 0,
                interrupts: false,
                ..EthConfig::default()
            },
            ..NicConfig::default()
        };
        let nic = Nic::new(a, r, cfg).unwrap_or_else(|f| panic!("Nic::new failed: {}", f.error));
        let spec = VnicSpec {
            queues: 2,
            ..VnicSpec::default()
        };
        let mut main = nic.create_on(spec, 0).unwrap();
        let mut helper = nic.create_rx_helper(&main, 1).unwrap();
        let h_old = helper.helper_rqn().unwrap();
        main.spread_rx(&[h_old]).unwrap();
        let rqt = main.queue_set().rqt().unwrap().0;
        let own_old = main.queue_set().rq_at(0).unwrap().rqn;
        assert_eq!(sim.rqt(rqt), Some(vec![own_old.0, h_old.0]));

        let share = main.queue_set().loan.share.clone();
        let owner_done = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let (go, went) = mpsc::channel::<()>();
        {
            let (share, owner_done, fired, go) =
                (share.clone(), owner_done.clone(), fired.clone(), go.clone());
            *BETWEEN_QUERY_AND_MODIFY.lock() = Some(Box::new(move || {
                if fired.swap(true, Ordering::AcqRel) {
                    return;
                }
                let _ = go.send(());
                while !owner_done.load(Ordering::Acquire) && share.contended() == 0 {
                    std::thread::yield_now();
                }
            }));
        }
        let (by_helper, by_owner) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let r = helper.queue_set_mut().recreate_rx_cq(0);
                // No hook (a failure before it): the owner goes anyway.
                let _ = go.send(());
                r
            });
            went.recv().unwrap();
            let o = main.queue_set_mut().recreate_rx_cq(0);
            owner_done.store(true, Ordering::Release);
            (h.join().unwrap(), o)
        });
        *BETWEEN_QUERY_AND_MODIFY.lock() = None;
        assert!(
            fired.load(Ordering::Acquire),
            "the helper reached MODIFY_RQT"
        );
        by_helper.expect("the helper's RQ recreated");
        by_owner.expect("the VNIC's queue 0 recreated");
        assert_eq!(share.contended(), 1, "the VNIC waited for the helper");
        let h_new = helper.helper_rqn().unwrap();
        let own_new = main.queue_set().rq_at(0).unwrap().rqn;
        assert!(h_new != h_old && own_new != own_old);
        assert_eq!(sim.rqt(rqt), Some(vec![own_new.0, h_new.0]));
        assert_eq!(main.queue_set().rss_lent(), vec![h_new]);

        assert_eq!(main.destroy().errors, 0);
        assert_eq!(helper.destroy().errors, 0);
        let (a, rep) = nic.close().expect("no VNIC left");
        assert_eq!(rep.errors, 0, "{rep:?}");
        let (_, drep) = a.detach();
        assert_eq!(drep.errors, 0, "{drep:?}");
        assert_eq!(sim.dma_in_use(), dma_before, "all DMA memory freed");
        assert!(sim.sanitizer_violations().is_empty());
    }
}
