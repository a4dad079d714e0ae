//! Recovery of an overrun receive CQ: an RQ names its CQ for life (the
//! PRM's MODIFY_RQ cannot change `rqc.cqn`), so a new CQ takes a new RQ,
//! and the new RQ takes the old one's place in the RQTs the TIRs dispatch
//! through (MODIFY_RQT): the one-entry table behind the queue set's
//! dispatch TIR for receive queue 0, the RSS table for every queue. The
//! TIRs, and the flow rules naming them, stay as they are. (The fault
//! that asks for it: `QueueSet::rx_ring_fault`, and a CQ overrun.)

use super::{Plat, QueueSet};
use crate::control::Control;
use crate::cq::{self, Cq, Cqn};
use crate::error::Missing;
use crate::rq::{self, CreateRq, ModifyRq, Rq, RqKind, Rqn};
use crate::rqt::ModifyRqt;
use crate::wq::QueueState;

impl<C: Control> QueueSet<C> {
    /// Create a new CQ (same EQ) and a new RQ on it for receive queue `q`,
    /// ready and posted; point the RQTs at it; destroy the old RQ and CQ.
    /// Returns the new CQ and the receive buffers the old RQ had posted
    /// (freed with it). On error the old queue stays in place and what was
    /// created for the new one is destroyed again.
    pub(super) fn recreate_rx_cq(&mut self, q: usize) -> Result<(Cqn, usize), crate::Error> {
        let Some(x) = self.parts.rx.get(q) else {
            return Err(Missing::CompEq.into());
        };
        let Some(old_rqn) = x.rq.as_ref().map(|r| r.rqn) else {
            return Err(Missing::CompEq.into());
        };
        let (old_cqn, eqn) = (x.cq.cqn, x.cq.eqn);
        let (r, geo) = (self.res, self.rx_geometry());

        let ring = cq::alloc_ring(self.ctl.dma(), geo.cq_log)?;
        let mut cmd = Cq::<Plat<C>>::create_cmd(&ring, geo.cq_log, r.uar, eqn);
        // As at open: a recreated CQ compresses as the first did.
        cmd.compression = super::open::rx_compression(&self.cfg, r.caps.cqe_compression);
        cmd.moderation = super::open::rx_moderation(&self.cfg, &r.caps);
        let cqn = match self.ctl.exec(&cmd) {
            Ok(c) => c,
            Err(e) => {
                self.ctl.retire(ring.mem);
                return Err(e.into());
            }
        };
        let mut new_cq = Cq::new(cqn, eqn, ring, geo.cq_log, r.uar, self.ctl.mmio().clone());
        self.set_cq_format(&mut new_cq, true);
        let undo_cq = |s: &mut Self, c: Cq<Plat<C>>| {
            if s.ctl.exec(&cq::destroy_cq(c.cqn)).is_err() {
                s.ctl.retire(c.into_ring().mem);
            }
        };
        let (wq, bufs, buf_size) =
            match Rq::<Plat<C>>::alloc(self.ctl.dma(), geo.log_wqes, geo.buf_size) {
                Ok(a) => a,
                Err(e) => {
                    undo_cq(self, new_cq);
                    return Err(e);
                }
            };
        let qc = self.parts.qc.map_or(0, |c| c.0);
        let created = self.ctl.exec(&CreateRq {
            cqn,
            pd: r.pd,
            dbr_addr: wq.dbr_addr(),
            log_size: geo.log_wqes,
            counter_set_id: qc,
            vlan_strip: self.vlan_strip(),
            kind: geo.kind,
            pages: wq.pages(),
        });
        let rqn = match created {
            Ok(n) => n,
            Err(e) => {
                self.ctl.retire(wq.mem);
                self.ctl.retire(bufs);
                undo_cq(self, new_cq);
                return Err(e.into());
            }
        };
        let mut new_rq = Rq::new(
            rqn,
            wq,
            bufs,
            buf_size,
            geo.log_wqes,
            r.lkey,
            self.ctl.mmio().clone(),
        );
        if let RqKind::Striding {
            log_strides,
            log_stride,
        } = geo.kind
        {
            new_rq = new_rq.striding(log_strides, log_stride);
        }
        let ready = self.ctl.exec(&ModifyRq {
            rqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        });
        let repointed = ready.and_then(|()| self.repoint_rqts(q, rqn));
        if let Err(e) = repointed {
            // Put the old RQ back wherever the new one got in.
            let _ = self.repoint_rqts(q, old_rqn);
            if q == 0 {
                let _ = self.repoint_borrower(rqn, old_rqn);
            }
            if self.ctl.exec(&rq::destroy_rq(rqn)).is_err() {
                let (w, b) = new_rq.into_parts();
                self.ctl.retire(w.mem);
                self.ctl.retire(b);
            }
            undo_cq(self, new_cq);
            return Err(e.into());
        }

        // Nothing dispatches to the old RQ any more.
        let x = &mut self.parts.rx[q];
        // The queue's counters go on from the old RQ's: a reader waiting
        // for them to grow must see the frames the new one receives.
        if let Some(old) = x.rq.as_ref() {
            new_rq.stats = old.stats;
            new_rq.stats.recoveries += 1;
        }
        let old_rq = x.rq.replace(new_rq);
        let old_cq = core::mem::replace(&mut x.cq, {
            if self.cfg.interrupts {
                new_cq.arm();
            }
            new_cq
        });
        x.uncommitted = 0;
        x.event = false;
        let mut returned = 0;
        if let Some(old) = old_rq {
            returned = old.posted();
            if self.ctl.exec(&rq::destroy_rq(old.rqn)).is_err() {
                let (w, b) = old.into_parts();
                self.ctl.retire(w.mem);
                self.ctl.retire(b);
            }
        }
        if self.ctl.exec(&cq::destroy_cq(old_cqn)).is_err() {
            // The device may still write into it.
            self.ctl.retire(old_cq.into_ring().mem);
        }
        for &idx in &self.eq_indexes {
            if let Some(eq) = self.ctl.shared_comp_eq(idx).filter(|e| e.eqn() == eqn) {
                eq.forget(&[old_cqn]);
                // Room: the old CQ's claim was just given up.
                let _ = eq.claim(&[cqn]);
            }
        }
        self.ctl.cq_replaced(old_cqn, cqn);
        Ok((cqn, returned))
    }

    /// Point the RQTs that list receive queue `q` at `rqn`.
    fn repoint_rqts(&mut self, q: usize, rqn: Rqn) -> Result<(), crate::error::CmdError> {
        if q == 0
            && let Some(old) = self.rq_at(0).map(|r| r.rqn)
        {
            self.repoint_borrower(old, rqn)?;
        }
        if q == 0
            && let Some(t) = self.parts.tir_rqt
        {
            self.ctl.exec(&ModifyRqt {
                rqt: t,
                rqns: alloc::vec![rqn],
            })?;
        }
        // Under the RSS table's lock, with the helpers' RQs as they are
        // now (`rss_lend`).
        self.write_rss(Some((q, rqn)))
    }
}
