//! Detach: the undo stack of attach run backwards (also after a failed
//! attach), a function level reset when the device may still hold driver
//! memory, every page taken back or accounted as lost.

use alloc::sync::Arc;

use cxos_drivers::{Clock, ConfigSpace, Msix, Platform};

use super::{Adapter, DetachReport, Undo};
use crate::cmd_engine::CmdEngine;
use crate::eq;
use crate::error::{CmdError, CmdFailure, Error};
use crate::hca;
use crate::pages;
use crate::pd;
use crate::uar;

impl<P: Platform> Adapter<P> {
    /// Detach: undo everything attach did, in reverse, and hand the
    /// platform back.
    pub fn detach(self) -> (P, DetachReport) {
        let pci = self.pci();
        let (p, report) = self.unwind();
        log::info!(
            target: "mlx5",
            "mlx5 {pci}: detached ({} teardown errors, {} pages lost)",
            report.errors,
            report.pages_lost
        );
        (p, report)
    }

    pub(super) fn unwind(mut self) -> (P, DetachReport) {
        let mut report = DetachReport::default();
        self.dev.accept_page_requests = false;
        while let Some(u) = self.undo.pop() {
            if let Err(e) = self.run_undo(u) {
                report.errors += 1;
                if report.first_error.is_none() {
                    report.first_error = Some(e);
                }
                if !self.dev.is_failed() {
                    log::warn!(target: "mlx5", "mlx5 {}: teardown {:?}: {}", self.pci(), u, e);
                }
            }
        }
        // A device that lost a command or failed may still reference our
        // memory: reset the function before freeing anything.
        // (Busy slots: tickets never waited for.)
        if self.dev.cmdq.lost() > 0
            || self.dev.cmdq.busy() > 0
            || self.dev.is_failed()
            || self.fw_stuck
        {
            let reset = crate::identify::function_level_reset(&self.dev.p);
            log::warn!(
                target: "mlx5",
                "mlx5 {}: {}",
                self.pci(),
                if reset {
                    "function level reset after lost commands or failure"
                } else {
                    "no function level reset available; freeing memory anyway"
                }
            );
            report.reset = reset;
        }
        let Adapter {
            dev,
            comp_eqs,
            eq_graveyard,
            ..
        } = self;
        drop(comp_eqs);
        drop(eq_graveyard);
        let CmdEngine {
            p,
            cmdq,
            eq0,
            mut pages,
            graveyard,
            ..
        } = dev;
        report.pages_lost = pages.release_all();
        if report.pages_lost > 0 {
            log::warn!(
                target: "mlx5::pages",
                "mlx5 {}: {} pages never returned by the device",
                p.config().pci_address(),
                report.pages_lost
            );
        }
        drop(eq0);
        drop(graveyard);
        drop(cmdq);
        drop(pages);
        (p, report)
    }

    fn run_undo(&mut self, u: Undo) -> Result<(), Error> {
        match u {
            Undo::PortAdminDown => self.write_paos(false),
            Undo::DeallocTd(td) => {
                self.td = None;
                Ok(self.dev.exec(&pd::dealloc_transport_domain(td))?)
            }
            Undo::DeallocPd(pdn) => {
                self.pd = None;
                Ok(self.dev.exec(&pd::dealloc_pd(pdn))?)
            }
            Undo::DestroyCompEqs => {
                let mut first = Ok(());
                while let Some(eq) = self.comp_eqs.pop() {
                    if let Err(e) = self.dev.exec(&eq::destroy_eq(eq.eqn)) {
                        match Arc::try_unwrap(eq) {
                            Ok(eq) => self.dev.graveyard.push(eq.into_eq().into_ring()),
                            Err(shared) => self.eq_graveyard.push(shared),
                        }
                        if first.is_ok() {
                            first = Err(e.into());
                        }
                    }
                }
                first
            }
            Undo::DestroyEq0 => {
                // DESTROY_EQ of the command EQ itself completes by polling.
                self.dev.cmdq.use_events(false);
                let Some(eq0) = self.dev.eq0.take() else {
                    return Ok(());
                };
                let r = self.dev.exec(&eq::destroy_eq(eq0.eqn));
                if r.is_err() {
                    self.dev.graveyard.push(eq0.into_ring());
                }
                Ok(r?)
            }
            Undo::MsixDisable => {
                self.dev.p.msix().msix_disable();
                self.vectors = 0;
                Ok(())
            }
            Undo::DeallocUar(u) => {
                self.uar = None;
                Ok(self.dev.exec(&uar::dealloc_uar(u))?)
            }
            Undo::TeardownHca => Ok(self.dev.exec(&hca::TEARDOWN_GRACEFUL)?),
            Undo::ReclaimPages => self.reclaim_pages(),
            Undo::DisableHca => Ok(self.dev.exec(&hca::DISABLE_HCA)?),
        }
    }

    /// Take every page back, with a bounded number of empty rounds.
    fn reclaim_pages(&mut self) -> Result<(), Error> {
        let mut empty_rounds = 0;
        while self.dev.pages.held() > 0 {
            let want = self.dev.pages.held().min(pages::BATCH);
            match self.dev.take_pages(want) {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(Error::Command(CmdError {
                    failure: CmdFailure::AdapterFailed,
                    ..
                })) => return Err(Error::AdapterFailed),
                Err(e) => {
                    if empty_rounds >= self.config.reclaim_retries {
                        return Err(e);
                    }
                }
            }
            empty_rounds += 1;
            if empty_rounds > self.config.reclaim_retries {
                break;
            }
            self.dev.p.clock().delay_us(1000);
        }
        Ok(())
    }
}
