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
//! A recovery of the VNIC's own receive queue rewrites its RQT from its
//! own queues (`queue_set::rx_recreate`): the flows come back to the
//! VNIC's own queues, still received by the owner; spreading again is
//! the caller's choice.

use alloc::boxed::Box;
use alloc::vec::Vec;

use cxos_drivers::RxMeta;

use super::{Nic, Vnic, VnicError};
use crate::cmd::Exec;
use crate::control::Control;
use crate::error::{Error, Missing};
use crate::queue_set::CloseReport;
use crate::rq::Rqn;
use crate::rqt::ModifyRqt;

/// Frames of a VNIC received elsewhere, waiting for its owner.
pub trait RxInbox: Send {
    /// Hand the oldest waiting frame to `f`; false if none waits.
    fn take(&mut self, f: &mut dyn FnMut(&[u8], RxMeta)) -> bool;
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
        log::info!(target: "mlx5::vnic", "mlx5: {} receive helper on queue set {set}", of.id);
        Ok(Vnic {
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
        })
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
        let Some(rqt) = self.qs.rqt() else {
            return Err(VnicError::BadQueues(n as u8));
        };
        if helpers.len() >= n {
            return Err(VnicError::BadQueues(n as u8));
        }
        let mut rqns = Vec::with_capacity(n);
        for i in 0..n {
            let own = self.qs.rq_at(i).map(|r| r.rqn);
            let rqn = match (i, helpers.get(i.wrapping_sub(1))) {
                (1.., Some(h)) => *h,
                _ => own.ok_or(VnicError::Open(Missing::Tir.into()))?,
            };
            rqns.push(rqn);
        }
        self.qs
            .control_mut()
            .exec(&ModifyRqt { rqt, rqns })
            .map_err(|e| VnicError::Open(Error::Command(e)))
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
    pub(super) fn tear_down_helper(&mut self) -> CloseReport {
        self.nic.forget_cqs(&Nic::claimed_cqs(self.qs.control()));
        let rep = self.qs.teardown();
        log::info!(target: "mlx5::vnic", "mlx5: {} receive helper destroyed, {} errors", self.id, rep.errors);
        rep
    }
}
