//! Serving the device's page requests (PRM "Pages Management": the
//! page-request EQE's signed count, answered with MANAGE_PAGES give or
//! take in batches of [`pages::BATCH`]), written once over a
//! [`PageHost`]: the command engine itself, whose waits block (bring-up,
//! teardown, an owner that serves requests inline after each command),
//! or a [`crate::vnic::Nic`] whose owner serves them cooperatively
//! ([`crate::vnic::Nic::serve_pages_with`]: the adapter's lock is let go
//! while a MANAGE_PAGES is with the device).

use alloc::vec::Vec;

use cxos_drivers::{ConfigSpace, DmaRegion, Platform};

use crate::cmd::Command;
use crate::cmd_engine::{CmdEngine, MAX_PAGE_ROUNDS};
use crate::error::{CmdError, CmdFailure, DeviceError, Error};
use crate::pages::{self, GivePages, PagePool, TakePages};

/// Where page work runs: commands (waited for as the host waits), and the
/// engine's page state (pool, counts, limits) for short looks.
pub(crate) trait PageHost {
    type P: Platform;
    fn exec_page<C: Command>(&mut self, cmd: C) -> Result<C::Output, CmdError>;
    fn engine<R>(&mut self, f: impl FnOnce(&mut CmdEngine<Self::P>) -> R) -> R;
}

impl<P: Platform> PageHost for CmdEngine<P> {
    type P = P;
    fn exec_page<C: Command>(&mut self, cmd: C) -> Result<C::Output, CmdError> {
        self.exec(&cmd)
    }
    fn engine<R>(&mut self, f: impl FnOnce(&mut CmdEngine<P>) -> R) -> R {
        f(self)
    }
}

/// Serve the page requests collected from EQ0 (not re-entrantly: one
/// round of work at a time per engine), at most [`MAX_PAGE_ROUNDS`].
pub(crate) fn serve<H: PageHost>(h: &mut H) {
    let start = h.engine(|e| {
        if e.in_page_work || e.pending_pages == 0 || e.fault.is_some() {
            return false;
        }
        e.in_page_work = true;
        true
    });
    if !start {
        return;
    }
    let mut rounds = 0;
    loop {
        let next = h.engine(|e| {
            if e.pending_pages == 0 || e.fault.is_some() {
                return None;
            }
            if rounds == MAX_PAGE_ROUNDS {
                e.stats.page_rounds_cut += 1;
                return None;
            }
            let n = e.pending_pages;
            e.pending_pages = 0;
            if n > 0 && !e.accept_page_requests {
                e.stats.pages_refused += n as u64;
                log::warn!(target: "mlx5::pages", "{n} pages asked during teardown, refused");
                return Some(0);
            }
            Some(n)
        });
        let Some(n) = next else {
            break;
        };
        rounds += 1;
        if n == 0 {
            continue;
        }
        if let Err(e) = move_pages(h, n) {
            let pci = h.engine(|e| e.platform().config().pci_address());
            log::error!(
                target: "mlx5::pages",
                "mlx5 {pci}: page request of {n} failed: {e}"
            );
        }
    }
    h.engine(|e| e.in_page_work = false);
}

/// Tell the device no (MANAGE_PAGES allocation fail, no entries).
fn refuse<H: PageHost>(h: &mut H) {
    let _ = h.exec_page(GivePages {
        pages: &[],
        failed: true,
    });
}

/// Give `n` pages (n > 0) or take `-n` back (n < 0), in batches.
pub(crate) fn move_pages<H: PageHost>(h: &mut H, n: i64) -> Result<(), Error> {
    let (max_pages, room) = h.engine(|e| {
        let room = (e.max_total_pages as usize).saturating_sub(e.pages.held());
        (e.max_pages, room)
    });
    if n.unsigned_abs() > max_pages as u64 {
        // A count this large is a broken device; tell it no.
        if n > 0 {
            refuse(h);
        }
        return Err(DeviceError::PageRequest {
            pages: n,
            limit: max_pages,
        }
        .into());
    }
    let mut left = n.unsigned_abs() as usize;
    let mut refused = 0;
    if n > 0 && left > room {
        refused = left - room;
        left = room;
    }
    while left > 0 {
        let batch = left.min(pages::BATCH);
        if n > 0 {
            give_pages(h, batch)?;
        } else {
            let got = take_pages(h, batch)?;
            if got == 0 {
                break;
            }
        }
        left -= batch;
    }
    if refused > 0 {
        // Beyond the total cap: the device hears no (it stops asking
        // for these), the driver records it and keeps working.
        let (held, cap, pci) = h.engine(|e| {
            e.stats.page_cap_refusals += 1;
            e.stats.pages_refused += refused as u64;
            (
                e.pages.held(),
                e.max_total_pages,
                e.platform().config().pci_address(),
            )
        });
        log::warn!(
            target: "mlx5::pages",
            "mlx5 {pci}: mlx5.pages.cap: {refused} of {n} pages asked refused (holding {held}, cap {cap})"
        );
        refuse(h);
        return Err(DeviceError::PageCap {
            asked: n,
            held,
            cap,
        }
        .into());
    }
    Ok(())
}

fn give_pages<H: PageHost>(h: &mut H, n: usize) -> Result<(), Error> {
    let regions = match h.engine(|e| PagePool::alloc(e.platform().dma(), n)) {
        Ok(r) => r,
        Err(e) => {
            refuse(h);
            return Err(e.into());
        }
    };
    let addrs: Vec<u64> = regions.iter().map(|r| r.device_addr().get()).collect();
    match h.exec_page(GivePages {
        pages: &addrs,
        failed: false,
    }) {
        Ok(()) => {
            h.engine(|e| e.pages.insert(regions));
            Ok(())
        }
        Err(err) => {
            if matches!(err.failure, CmdFailure::Timeout { .. }) {
                // The device may have taken them: keep them until detach.
                h.engine(|e| e.pages.insert(regions));
            }
            Err(err.into())
        }
    }
}

/// MANAGE_PAGES take; returns how many came back.
pub(crate) fn take_pages<H: PageHost>(h: &mut H, n: usize) -> Result<usize, Error> {
    let addrs = h.exec_page(TakePages { count: n })?;
    let (ok, unknown, pci) = h.engine(|e| {
        let (ok, unknown) = e.pages.remove(&addrs);
        if unknown > 0 {
            e.stats.unknown_pages_returned += unknown as u64;
        }
        (ok, unknown, e.platform().config().pci_address())
    });
    if unknown > 0 {
        log::warn!(
            target: "mlx5::pages",
            "mlx5 {pci}: device returned {unknown} pages it was never given"
        );
    }
    Ok(ok)
}
