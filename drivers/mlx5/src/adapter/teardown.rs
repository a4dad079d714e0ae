//! Detach: the undo stack of attach run backwards (also after a failed
//! attach), a function level reset when the device may still hold driver
//! memory, every page taken back or accounted as lost.

use alloc::sync::Arc;

use cxos_drivers::{Clock, Msix, Platform};

use super::{Adapter, DetachReport, Undo};
use crate::eq;
use crate::error::{CmdError, CmdFailure, Error};
use crate::hca;
use crate::pages;
use crate::pd;
use crate::uar;

/// An adapter dropped without [`Adapter::detach`] is detached all the
/// same (its report only logged): the device must not keep writing into
/// pages, rings and buffers that go back to the platform. Data paths still
/// open on it lose their queues with it (TEARDOWN_HCA or a function level
/// reset) before their memory is freed, so a [`crate::QueueSet`] owning its
/// adapter may be dropped too (the adapter is its first field).
impl<P: Platform> Drop for Adapter<P> {
    fn drop(&mut self) {
        if self.dev.has_platform() {
            self.dropped = true;
            let pci = self.pci();
            log::warn!(target: "mlx5", "mlx5 {pci}: adapter dropped without detach: detaching");
            let r = self.tear_down();
            log::info!(
                target: "mlx5",
                "mlx5 {pci}: detached on drop ({} teardown errors, {} pages lost, reset {})",
                r.errors,
                r.pages_lost,
                r.reset
            );
        }
    }
}

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
        let report = self.tear_down();
        match self.dev.take_platform() {
            Some(p) => (p, report),
            None => unreachable!("only detach takes the platform"),
        }
    }

    /// Everything detach does but handing the platform back: the undo
    /// stack backwards, a function level reset when the device may still
    /// hold driver memory, then every page, ring and mailbox freed. Runs
    /// once: afterwards the undo stack is empty and the memory gone.
    fn tear_down(&mut self) -> DetachReport {
        let mut report = DetachReport::default();
        self.dev.accept_page_requests = false;
        let dropped = self.dropped;
        let mut forgotten = false;
        // A device reset underneath the driver (a hypervisor's DEVICE_RESET,
        // a guest reboot) no longer holds the command queue address, nor
        // any queue, page or buffer of ours: nothing to destroy, and every
        // command would only wait out its timeout.
        if !self.undo.is_empty()
            && crate::init_seg::cmdq_addr(self.dev.p().mmio()) != self.dev.cmdq.addr()
        {
            log::warn!(
                target: "mlx5",
                "mlx5 {}: the device was reset underneath the driver: freeing without commands",
                self.pci()
            );
            self.undo.retain(|u| matches!(u, Undo::MsixDisable));
            forgotten = true;
        }
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
        // memory: reset the function before freeing anything. So may one
        // whose teardown failed while the adapter was dropped with data
        // paths still open (their queues go with the reset).
        // (Busy slots: tickets never waited for.)
        if self.dev.cmdq.lost() > 0
            || self.dev.cmdq.busy() > 0
            || self.dev.is_failed()
            || self.fw_stuck
            || (dropped && report.errors > 0)
        {
            let reset = crate::identify::function_level_reset(self.dev.p());
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
        self.comp_eqs.clear();
        self.eq_graveyard.clear();
        // Pages of a device that was reset went with the reset, not lost.
        let released = self.dev.pages.release_all();
        report.pages_lost = if forgotten { 0 } else { released };
        if report.pages_lost > 0 {
            log::warn!(
                target: "mlx5::pages",
                "mlx5 {}: {} pages never returned by the device",
                self.pci(),
                report.pages_lost
            );
        }
        self.dev.eq0 = None;
        self.dev.graveyard.clear();
        report
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
                    if let Err(e) = self.dev.exec(&eq::destroy_eq(eq.eqn())) {
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
                self.dev.p().msix().msix_disable();
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
            self.dev.p().clock().delay_us(1000);
        }
        Ok(())
    }
}
