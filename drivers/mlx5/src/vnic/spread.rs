//! Receive spreading over CPUs (issue 21): an RSS VNIC polled by one CPU
//! lends receive queues to other CPUs. Each lent queue is a receive
//! helper ([`Nic::create_rx_helper`]): a queue set of its own whose CQs
//! report to another queue set's completion EQ (so its interrupts reach
//! that EQ's CPU), with no flow rule of its own. The VNIC's RSS indirection
//! table (RQT, PRM "RQ Table") then lists the helpers' RQs in place of its
//! own further queues ([`Vnic::spread_rx`]): the adapter's hash spreads
//! the VNIC's flows over its queue 0 and the helpers. Whoever polls a
//! helper passes its frames to the VNIC's owner, which takes them through
//! [`Vnic::set_inbox`] after its own (the kernel's bounded hand-off ring).
//!
//! The loan is the queue set's (`QueueSet::lend_rss`): a recovery that
//! recreates one of the VNIC's own RQs rewrites the table with the
//! helpers still in it. A helper shares the loan of the table it is lent
//! to (`QueueSet::lend_to`): recreating its RQ points that table and the
//! loan at the new RQ before the old one goes (the device refuses to
//! destroy a listed RQ), under the table's lock, so whichever CPU writes
//! the table next writes the helpers' RQs as they are now (the contract:
//! `queue_set/rss_lend.rs`). The VNIC's periodic check
//! ([`Vnic::check_queues`]) checks its helpers too (through the inbox).
//! An MTU change ([`Vnic::set_mtu`]) resizes the helpers with the VNIC;
//! a VNIC released after a function reset releases its helpers the same
//! way ([`RxInbox::release_after_reset`]).

use alloc::boxed::Box;
use alloc::vec::Vec;

use cxos_drivers::RxMeta;

use super::{Nic, Vnic, VnicError};
use crate::control::Control;
use crate::error::Error;
use crate::queue_set::{CloseReport, L2_OVERHEAD};
use crate::rq::Rqn;
use crate::sq::MAX_FRAME;

/// Frames of a VNIC received elsewhere, waiting for its owner, and the
/// receive helpers that take them.
pub trait RxInbox: Send {
    /// Hand the oldest waiting frame to `f`; false if none waits.
    fn take(&mut self, f: &mut dyn FnMut(&[u8], RxMeta)) -> bool;
    /// Run each helper's periodic queue check (its recoveries by the same
    /// policy as the VNIC's). A helper's recreated RQ takes its old one's
    /// place in the VNIC's RSS table and loan itself (`QueueSet::lend_to`),
    /// wherever its recovery runs.
    fn check(&mut self);
    /// The VNIC's MTU changed to `mtu`, receive buffers for `rx_mtu`: the
    /// helpers' buffers (and whatever carries their frames) follow.
    fn set_mtu(&mut self, mtu: usize, rx_mtu: usize) -> Result<(), Error>;
    /// The function was reset under the VNIC: release the helpers
    /// ([`Vnic::release_after_reset`]) rather than destroy them.
    fn release_after_reset(&mut self);
}

impl<C: Control> Nic<C> {
    /// A receive helper of `of` on queue set `set`: one receive queue (and
    /// the send side every queue set has, idle) whose CQs report to
    /// completion EQ `set`, the VNIC's buffer sizes, no flow rule. Frames
    /// reach it once `of` lists its RQ ([`Vnic::spread_rx`]).
    pub fn create_rx_helper(&self, of: &Vnic<C>, set: usize) -> Result<Vnic<C>, VnicError> {
        let mut res = *of.qs.resources();
        if let Some((i, eqn)) = self.eq_of_set(set) {
            res.eq_index = i;
            res.eqn = eqn;
        }
        let mut cfg = *of.qs.config();
        cfg.rss_queues = 1;
        let (qs, _) = self.open_claimed(res, cfg)?;
        let mut h = Vnic {
            qs,
            nic: self.clone(),
            id: of.id,
            mac: of.mac,
            vlan: of.vlan,
            dest: of.dest,
            groups: Vec::new(),
            promisc: false,
            destroyed: false,
            helper: true,
            inbox: None,
        };
        h.qs.lend_to(&of.qs);
        // Receive buffers as large as the VNIC's (the port's MTU may be
        // above its own).
        let rx_mtu = of.rx_mtu();
        if rx_mtu > cfg.mtu {
            h.qs.set_mtu(cfg.mtu, rx_mtu).map_err(VnicError::Open)?;
        }
        log::info!(target: "mlx5::vnic", "mlx5: {} receive helper on queue set {set}", of.id);
        Ok(h)
    }
}

impl<C: Control> Vnic<C> {
    /// Whether this is a receive helper ([`Nic::create_rx_helper`]).
    pub fn is_rx_helper(&self) -> bool {
        self.helper
    }

    /// A helper's receive queue (the one its owner lists).
    pub fn helper_rqn(&self) -> Option<Rqn> {
        self.qs.rq_at(0).map(|r| r.rqn)
    }

    /// Point the RSS table at the helpers' receive queues `helpers` in
    /// place of this VNIC's queues 1..: the table keeps its size, queue 0
    /// stays its own, a queue without a helper keeps its own RQ. Needs an
    /// RSS VNIC with more queues than `helpers`.
    pub fn spread_rx(&mut self, helpers: &[Rqn]) -> Result<(), VnicError> {
        let n = self.qs.rx_queues();
        if self.qs.rqt().is_none() {
            return Err(VnicError::BadQueues(n as u8));
        }
        if helpers.len() >= n {
            return Err(VnicError::BadQueues(n as u8));
        }
        self.qs
            .lend_rss(helpers.to_vec())
            .map_err(|e| VnicError::Open(Error::Command(e)))
    }

    /// The MTU its receive buffers take (at least its own MTU).
    fn rx_mtu(&self) -> usize {
        let own = self.qs.config().mtu;
        self.qs.rq_at(0).map_or(own, |r| {
            r.buf_size()
                .saturating_sub(L2_OVERHEAD)
                .min(MAX_FRAME - L2_OVERHEAD)
                .max(own)
        })
    }

    /// The periodic queue check (`QueueSet::check`) of the VNIC and of
    /// its receive helpers.
    pub fn check_queues(&mut self) {
        self.qs.check();
        if let Some(i) = self.inbox.as_mut() {
            i.check();
        }
    }

    /// MTU `mtu`, receive buffers for `rx_mtu` (`QueueSet::set_mtu`), its
    /// receive helpers' too.
    pub fn set_mtu(&mut self, mtu: usize, rx_mtu: usize) -> Result<(), Error> {
        self.qs.set_mtu(mtu, rx_mtu)?;
        match self.inbox.as_mut() {
            Some(i) => i.set_mtu(mtu, rx_mtu),
            None => Ok(()),
        }
    }

    /// Take frames received elsewhere for this VNIC from `inbox` after
    /// its own (`None`: none); the one it had.
    pub fn set_inbox(&mut self, inbox: Option<Box<dyn RxInbox>>) -> Option<Box<dyn RxInbox>> {
        core::mem::replace(&mut self.inbox, inbox)
    }

    /// `receive` of a VNIC with an inbox: its own frames first, then the
    /// handed-off ones (out of line: the plain VNIC's path stays as it
    /// was).
    #[cold]
    #[inline(never)]
    pub(super) fn receive_spread<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let own = self.vlan;
        // Its own VLAN's tag is the VNIC's business (as `receive`).
        let untag = move |mut m: RxMeta| {
            if own.is_some() && m.vlan.map(|t| t & 0xfff) == own {
                m.vlan = None;
            }
            m
        };
        let mut f = Some(f);
        if let Some(r) = self.qs.receive(|b, m| f.take().map(|f| f(b, untag(m)))) {
            return r;
        }
        self.take_handed_off(|b, m| f.take().map(|f| f(b, untag(m))))
            .flatten()
    }

    /// The oldest frame from the inbox, to `f`.
    fn take_handed_off<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let inbox = self.inbox.as_mut()?;
        let mut f = Some(f);
        let mut out = None;
        inbox.take(&mut |b, m| {
            if let Some(f) = f.take() {
                out = Some(f(b, m));
            }
        });
        out
    }

    /// A helper's teardown: no rules, no registry entry; its CQs' claims
    /// go, then its queues.
    pub(super) fn tear_down_helper(&mut self, after_reset: bool) -> CloseReport {
        self.nic.forget_cqs(&Nic::claimed_cqs(self.qs.control()));
        let rep = self.qs.teardown();
        if after_reset {
            log::info!(target: "mlx5::vnic", "mlx5: {} receive helper released: its objects went with the function reset", self.id);
        } else {
            log::info!(target: "mlx5::vnic", "mlx5: {} receive helper destroyed, {} errors", self.id, rep.errors);
        }
        rep
    }
}
