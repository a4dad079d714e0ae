//! Function reset recovery: firmware reported a fatal condition (a health
//! syndrome, a health counter that stopped, an internal error event) or a
//! queue-level recovery escalated. The function is reset (PCIe function
//! level reset through config space: what the PRM's "HCA Driver
//! Start-up" expects before the command queue address is written again,
//! and what the model implements), brought up again from scratch by
//! [`Adapter::attach`], and what the user configured on the function
//! ([`Configured`], recorded by the setters as they succeed) is replayed
//! on the new adapter. The old adapter is left an empty shell: marked
//! failed (every command through it fails fast, without touching the
//! device), without its platform, holding only memory the reset made
//! safe to free. The data path above it (steering, VNICs) is rebuilt by
//! its owner ([`crate::restore`]).
//!
//! A device that keeps failing is not reset in a loop: [`ResetPolicy`]
//! allows `max_resets` within `window_ms`; beyond that the function stays
//! failed.

use alloc::sync::Arc;
use alloc::vec::Vec;

use cxos_drivers::{Clock, Msix, PciAddress, Platform, Region};

use super::{Adapter, AttachFailure, Config};
use crate::eq::{CompEq, Eq};
use crate::fault::{FaultAction, FaultClass, FaultLog, FaultObject, FaultOutcome, FaultRecord};
use crate::health::FaultKind;
use crate::identify::FlrPending;
use crate::module::{Led, PortError, SpeedSetting};
use crate::pages::PagePool;
use crate::vnic::IdleWork;

/// What the user set on the function through the adapter, replayed after
/// a function reset: the port MTU (PMTU, as an IP MTU), the
/// identification LED, the advertised speeds. `None`: never set (the
/// attach defaults are right).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Configured {
    pub port_mtu: Option<usize>,
    pub led: Option<Led>,
    pub speed: Option<SpeedSetting>,
}

/// How many function resets a window allows before the function is given
/// up (Linux's fw_fatal reporter refuses to recover again within its
/// grace period; a device that fails again right after each reset would
/// otherwise keep the driver resetting it forever).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ResetPolicy {
    pub max_resets: u32,
    pub window_ms: u64,
}

impl Default for ResetPolicy {
    fn default() -> Self {
        Self {
            max_resets: 3,
            window_ms: 60_000,
        }
    }
}

/// Most resets remembered (the policy never needs more).
const HISTORY: usize = 8;

/// When the last function resets happened (ns), oldest first; handed from
/// each adapter to the one that replaces it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ResetHistory {
    at_ns: [u64; HISTORY],
    len: usize,
    /// Every reset since the first attach.
    pub total: u64,
}

impl ResetHistory {
    fn push(&mut self, now_ns: u64) {
        if self.len == HISTORY {
            self.at_ns.copy_within(1.., 0);
            self.len -= 1;
        }
        self.at_ns[self.len] = now_ns;
        self.len += 1;
        self.total += 1;
    }

    /// Resets within `window_ms` before `now_ns`.
    pub fn recent(&self, now_ns: u64, window_ms: u64) -> u32 {
        let since = now_ns.saturating_sub(window_ms.saturating_mul(1_000_000));
        self.at_ns[..self.len]
            .iter()
            .filter(|t| **t >= since)
            .count() as u32
    }
}

/// Why a function reset did not produce a working adapter.
#[derive(Debug)]
pub enum ResetError<P> {
    /// [`ResetPolicy`]: too many resets in the window; the adapter stays
    /// failed (and keeps its platform).
    Limit { resets: u32, window_ms: u64 },
    /// The function cannot do FLR; the adapter stays failed.
    NoFlr,
    /// The reset was done, bring-up failed: the platform is handed back.
    Attach(alloc::boxed::Box<AttachFailure<P>>),
}

impl<P> core::fmt::Display for ResetError<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ResetError::Limit { resets, window_ms } => write!(
                f,
                "{resets} function resets within {} s: giving up",
                window_ms / 1000
            ),
            ResetError::NoFlr => f.write_str("the function cannot do a function level reset"),
            ResetError::Attach(a) => write!(f, "bring-up after the reset failed: {}", a.error),
        }
    }
}

/// What a successful function reset did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ResetReport {
    /// Pages the old function held: gone with the reset (freed, not lost).
    pub pages_released: usize,
    /// From the reset to the new adapter attached, in nanoseconds.
    pub took_ns: u64,
    /// Resets within the policy's window, this one included.
    pub recent: u32,
}

impl<P: Platform> Adapter<P> {
    /// What the user configured through this adapter (see [`Configured`]).
    pub fn configured(&self) -> Configured {
        self.configured
    }

    /// Function resets so far (this function, since its first attach).
    pub fn reset_history(&self) -> ResetHistory {
        self.resets
    }

    /// Whether [`Adapter::reset_function`] would go ahead now.
    pub fn reset_allowed(&self) -> bool {
        let now = self.clock_now();
        self.resets.recent(now, self.config.reset.window_ms) < self.config.reset.max_resets
    }

    fn clock_now(&self) -> u64 {
        if self.dev.has_platform() {
            self.dev.p().clock().now_ns()
        } else {
            0
        }
    }

    /// Reset the function and bring it up again; returns the new adapter
    /// (with this one's configuration, [`Configured`] replayed) and what
    /// was done. This adapter is left an empty, failed shell (see the
    /// module documentation); drop it once nothing refers to it.
    /// [`Adapter::begin_reset`] then [`ResetStart::finish`], waiting with
    /// the clock.
    pub fn reset_function(&mut self) -> Result<(Adapter<P>, ResetReport), ResetError<P>> {
        self.begin_reset()?.finish(None)
    }

    /// The first half of [`Adapter::reset_function`], issuing no command:
    /// the policy checked, the FLR initiated, and the platform, the
    /// configuration, the fault log and the memory the device may still
    /// reference until the FLR is over taken out of this adapter (an
    /// empty, failed shell from here). [`ResetStart::finish`] brings the
    /// function up again; it needs nothing of this adapter, so its caller
    /// may run it without this adapter's locks.
    pub fn begin_reset(&mut self) -> Result<ResetStart<P>, ResetError<P>> {
        // What asked for the reset: the record that escalated (a queue's,
        // or the health record `fail` made), else the health fault.
        let now = self.clock_now();
        let trigger = self
            .dev
            .fault_log_mut()
            .take_escalation()
            .unwrap_or_else(|| {
                let r = FaultRecord::new(FaultClass::Health, FaultObject::Function, now);
                match self.dev.fault {
                    Some(f) => r.syndromes(f.health.synd.into(), f.health.ext_synd.into()),
                    None => r,
                }
            });
        // Every command through this adapter fails fast from here on.
        if !self.dev.is_failed() {
            self.dev.fail(FaultKind::Escalated);
        }
        let give_up = |a: &mut Self, e: ResetError<P>, detail: (&'static str, u64)| {
            a.record_fault(
                trigger
                    .detail(detail.0, detail.1)
                    .action(FaultAction::MarkFailed, FaultOutcome::Failed),
            );
            Err(e)
        };
        if !self.dev.has_platform() {
            return Err(ResetError::NoFlr);
        }
        let t0 = self.dev.p().clock().now_ns();
        let policy = self.config.reset;
        let recent = self.resets.recent(t0, policy.window_ms);
        if recent >= policy.max_resets {
            let e = ResetError::Limit {
                resets: recent,
                window_ms: policy.window_ms,
            };
            return give_up(self, e, ("resets", recent.into()));
        }
        // The platform's MSI-X state follows the function's (FLR clears
        // the enable bit): the new adapter enables it again.
        self.dev.p().msix().msix_disable();
        let Some(flr) = crate::identify::flr_initiate(self.dev.p()) else {
            return give_up(self, ResetError::NoFlr, ("flr", 0));
        };
        // The device forgets everything: nothing to undo, no page to take
        // back once the FLR is over. What the data path above still holds
        // is freed as it goes.
        self.undo.clear();
        self.fw_stuck = false;
        let old = OldMemory {
            pages: core::mem::take(&mut self.dev.pages),
            eq0: self.dev.eq0.take(),
            graveyard: core::mem::take(&mut self.dev.graveyard),
            comp_eqs: core::mem::take(&mut self.comp_eqs),
            eq_graveyard: core::mem::take(&mut self.eq_graveyard),
        };
        self.vectors = 0;
        let Some(platform) = self.dev.take_platform() else {
            return Err(ResetError::NoFlr);
        };
        let mut history = self.resets;
        history.push(t0);
        // The function's fault history goes on (the per-object recovery
        // history named objects that are gone).
        let mut log = core::mem::take(self.dev.fault_log_mut());
        log.forget_all();
        Ok(ResetStart {
            platform,
            flr,
            old,
            config: self.config,
            configured: self.configured,
            history,
            log,
            trigger,
            t0,
            recent,
            pci: self.pci,
        })
    }

    /// Set what `c` records (each setting that is there), recording it
    /// again on this adapter.
    pub fn replay(&mut self, c: &Configured) -> Result<(), PortError> {
        let mut first = Ok(());
        if let Some(m) = c.port_mtu
            && let Err(e) = self.set_port_mtu(m)
        {
            first = first.and(Err(e));
        }
        if let Some(s) = c.speed
            && let Err(e) = self.set_speed(s)
        {
            first = first.and(Err(e));
        }
        if let Some(l) = c.led
            && let Err(e) = self.set_led(l)
        {
            first = first.and(Err(e));
        }
        first
    }
}

/// What the device may reference until an initiated FLR is over: freed
/// by [`ResetStart::finish`] after it.
#[derive(Debug)]
struct OldMemory<P: Platform> {
    pages: PagePool<Region<P>>,
    eq0: Option<Eq<P>>,
    graveyard: Vec<Region<P>>,
    comp_eqs: Vec<Arc<CompEq<P>>>,
    eq_graveyard: Vec<Arc<CompEq<P>>>,
}

/// A function reset between its two halves ([`Adapter::begin_reset`],
/// [`ResetStart::finish`]): the FLR initiated, the platform and what the
/// new adapter inherits out of the old one.
#[derive(Debug)]
#[must_use = "a begun function reset is finished with ResetStart::finish"]
pub struct ResetStart<P: Platform> {
    platform: P,
    flr: FlrPending,
    old: OldMemory<P>,
    config: Config,
    configured: Configured,
    history: ResetHistory,
    log: FaultLog,
    trigger: FaultRecord,
    t0: u64,
    recent: u32,
    pci: PciAddress,
}

impl<P: Platform> ResetStart<P> {
    /// The second half of [`Adapter::reset_function`]: the FLR's wait, the
    /// old memory freed, bring-up from scratch ([`Adapter::attach_with`])
    /// and [`Configured`] replayed. `idle` runs between two looks at the
    /// device in every wait (the FLR's, firmware's, each command's;
    /// `None`: the clock's); it stays the new adapter's idle work until
    /// [`Adapter::set_idle`] takes it away, which the caller does before
    /// it shares the adapter.
    pub fn finish(
        self,
        mut idle: Option<IdleWork>,
    ) -> Result<(Adapter<P>, ResetReport), ResetError<P>> {
        let ResetStart {
            platform,
            flr,
            old,
            config,
            configured,
            history,
            mut log,
            trigger,
            t0,
            recent,
            pci,
        } = self;
        let clock = platform.clock().clone();
        match idle.as_mut() {
            Some(f) => {
                let flr_at = clock.now_ns();
                while clock.now_ns().saturating_sub(flr_at) < crate::identify::FLR_WAIT_NS {
                    f();
                }
            }
            None => clock.delay_us(crate::identify::FLR_WAIT_NS / 1000),
        }
        crate::identify::flr_complete(&platform, flr);
        let OldMemory {
            mut pages,
            eq0,
            graveyard,
            comp_eqs,
            eq_graveyard,
        } = old;
        let pages_released = pages.release_all();
        drop((eq0, graveyard, comp_eqs, eq_graveyard));
        match Adapter::attach_with(platform, config, idle) {
            Ok(mut a) => {
                a.resets = history;
                // The function's log goes on, with what the bring-up
                // recorded (a lost command's timeout) after it.
                let during = core::mem::replace(a.dev.fault_log_mut(), log);
                for r in during.records() {
                    a.dev.fault_log_mut().push(*r);
                }
                if let Err(e) = a.replay(&configured) {
                    log::warn!(target: "mlx5", "mlx5 {}: after the reset: {e}", a.pci());
                }
                let took_ns = a.dev.p().clock().now_ns().saturating_sub(t0);
                a.record_fault(
                    trigger
                        .detail("reset_ms", took_ns / 1_000_000)
                        .action(FaultAction::FunctionReset, FaultOutcome::Recovered),
                );
                Ok((
                    a,
                    ResetReport {
                        pages_released,
                        took_ns,
                        recent: recent + 1,
                    },
                ))
            }
            Err(f) => {
                let mut r = trigger
                    .detail("attach_step", f.error.step as u64)
                    .action(FaultAction::MarkFailed, FaultOutcome::Failed);
                r.pci = pci;
                let r = log.push(r);
                log::error!(target: crate::fault::LOG_TARGET, "{r}");
                Err(ResetError::Attach(alloc::boxed::Box::new(f)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_counts_the_window_and_keeps_the_total() {
        let mut h = ResetHistory::default();
        let s = 1_000_000_000u64;
        for i in 0..10 {
            h.push(i * 10 * s);
        }
        assert_eq!(h.total, 10);
        // Resets at 20..90 s remembered; at 90 s, a 25 s window holds 70, 80, 90.
        assert_eq!(h.recent(90 * s, 25_000), 3);
        assert_eq!(h.recent(1000 * s, 60_000), 0);
    }
}
