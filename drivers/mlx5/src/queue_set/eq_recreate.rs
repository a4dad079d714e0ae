//! EQ recreation: the middle step of EQ stall recovery, between re-arming
//! (which a broken EQ context does not take) and a function reset.
//!
//! Order (PRM "Event Queues": DESTROY_EQ is refused while a CQ reports to
//! the EQ): CREATE_EQ on the same MSI-X vector, MODIFY_CQ with field select
//! `c_eqn` for each CQ of the old EQ ([`crate::cq::ModifyCq::eqn`]), the new
//! EQ in the old one's place in the shared [`crate::eq::CompEq`] (claims
//! and pending events stay), DESTROY_EQ of the old one, then every CQ
//! armed again so completions written during the stall raise events.

use alloc::vec::Vec;

use super::QueueSet;
use crate::control::Control;
use crate::cq::{Cqn, ModifyCq};
use crate::eq::{self, CreateEq, Eq, Eqn};
use crate::error::Missing;

/// Why an EQ could not be recreated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum RecreateError {
    /// Another owner (a VNIC) has CQs on the EQ: only a function reset
    /// can move those.
    Shared,
    Failed(crate::Error),
}

impl<E: Into<crate::Error>> From<E> for RecreateError {
    fn from(e: E) -> Self {
        RecreateError::Failed(e.into())
    }
}

impl<C: Control> QueueSet<C> {
    /// Recreate completion EQ `idx` (module documentation); returns the
    /// new EQ number.
    pub(super) fn recreate_eq(&mut self, idx: usize) -> Result<Eqn, RecreateError> {
        let shared = self
            .ctl
            .shared_comp_eq(idx)
            .ok_or(RecreateError::Failed(Missing::CompEq.into()))?;
        let old = shared.eqn();
        let mine = self.cqs_on(old);
        if shared.claimed().iter().any(|c| !mine.contains(c)) {
            return Err(RecreateError::Shared);
        }
        let (log_size, uar, vector) = shared.geometry();
        let ring = eq::alloc_ring(self.ctl.dma(), log_size)?;
        let created = self.ctl.exec(&CreateEq {
            log_size,
            uar,
            vector,
            events: 0,
            pages: eq::ring_pages(&ring),
        });
        let new = match created {
            Ok(n) => n,
            Err(e) => {
                self.ctl.retire(ring);
                return Err(e.into());
            }
        };
        let new_eq = Eq::new(new, vector, ring, log_size, uar, self.ctl.mmio().clone());
        let mut moved = Vec::with_capacity(mine.len());
        for &cqn in &mine {
            if let Err(e) = self.ctl.exec(&ModifyCq::eqn(cqn, new)) {
                // Back where they were; the new EQ goes.
                for &c in &moved {
                    let _ = self.ctl.exec(&ModifyCq::eqn(c, old));
                }
                if self.ctl.exec(&eq::destroy_eq(new)).is_ok() {
                    drop(new_eq);
                } else {
                    self.ctl.retire(new_eq.into_ring());
                }
                return Err(e.into());
            }
            moved.push(cqn);
        }
        self.set_cq_eqn(old, new);
        if self.res.eqn == old {
            self.res.eqn = new;
        }
        new_eq.doorbell(true);
        let old_eq = shared.replace(new_eq);
        if self.ctl.exec(&eq::destroy_eq(old)).is_err() {
            // The device may still write into it.
            self.ctl.retire(old_eq.into_ring());
        }
        Ok(new)
    }

    /// The queue set's CQs reporting to `eqn`.
    fn cqs_on(&self, eqn: Eqn) -> Vec<Cqn> {
        let mut v: Vec<Cqn> = self
            .parts
            .tx_cq
            .iter()
            .filter(|c| c.eqn == eqn)
            .map(|c| c.cqn)
            .collect();
        v.extend(
            self.parts
                .rx
                .iter()
                .filter(|x| x.cq.eqn == eqn)
                .map(|x| x.cq.cqn),
        );
        v
    }

    fn set_cq_eqn(&mut self, old: Eqn, new: Eqn) {
        if let Some(c) = self.parts.tx_cq.as_mut().filter(|c| c.eqn == old) {
            c.eqn = new;
        }
        for x in self.parts.rx.iter_mut().filter(|x| x.cq.eqn == old) {
            x.cq.eqn = new;
        }
    }
}
