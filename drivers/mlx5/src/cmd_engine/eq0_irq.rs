//! Lost interrupts on EQ0 (the command and asynchronous-event EQ).
//!
//! A waiting command and the owner's poll both drain EQ0 when an event
//! is waiting even without an interrupt (a command after `EQ_PEEK_NS`,
//! the owner's poll at once), and both take the vector's pending flag, so
//! a lost EQ0 interrupt costs latency, never an event, and no flag tells
//! it apart from one another loop took. The vector's interrupt count
//! ([`Msix::msix_count`]), which no reader takes, does: EQ0 is armed at
//! count `c`; a drain that finds events while the count is still `c` is
//! suspect (the interrupt is lost, or late). EQ0 is then left unarmed, so
//! no later event fires on it and hides the missing interrupt (an EQ
//! fires once per arm). A late interrupt moves the count and the next
//! drain or check re-arms EQ0 with nothing recorded; still `c` after
//! [`LATE_IRQ_NS`], the periodic check ([`CmdEngine::check_eq0_interrupt`])
//! records `mlx5.eq.stall <eqn> pending=1 ci=<n> action=eq-poll
//! outcome=recovered` (the completion EQs' lost-interrupt record), drains
//! EQ0 and arms it again.

use cxos_drivers::{Clock, Msix, Platform};

use super::CmdEngine;
use crate::fault::{FaultAction, FaultClass, FaultObject, FaultOutcome, FaultRecord};

/// How long a suspect interrupt may be late before it counts as lost:
/// far beyond any delivery delay, even of an emulated MSI-X on a loaded
/// host, so a late interrupt is never recorded.
pub const LATE_IRQ_NS: u64 = 1_000_000_000;

/// The consumer counter is 24 bits (`eqc.consumer_counter`).
const CI_MASK: u32 = 0x00ff_ffff;

/// EQ0's interrupt bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Eq0Irq {
    /// The vector's count when EQ0 was last armed.
    armed_at: u64,
    suspect: Option<Suspect>,
}

/// A drain found events with no interrupt since EQ0 was armed.
#[derive(Clone, Copy, Debug)]
struct Suspect {
    /// The vector's count then.
    irqs: u64,
    since_ns: u64,
    /// EQ0's consumer counter at the first of those events.
    ci: u32,
}

impl<P: Platform> CmdEngine<P> {
    /// Before a drain or check: a suspect whose interrupt came after all
    /// (late, not lost) is dropped and EQ0 armed again.
    pub(super) fn eq0_irq_late(&mut self) {
        let Some(s) = self.eq0_irq.suspect else {
            return;
        };
        let Some(eq0) = self.eq0.as_ref() else {
            return;
        };
        let irqs = self.p().msix().msix_count(eq0.vector);
        if irqs != s.irqs {
            self.eq0_irq.suspect = None;
            self.eq0_irq.armed_at = irqs;
            eq0.doorbell(true);
        }
    }

    /// After a drain that took `taken` events from EQ0 starting at
    /// consumer counter `ci`: whether to arm EQ0 again (module
    /// documentation). The count is read before the arm, so an interrupt
    /// for a later event always moves it past `armed_at`.
    pub(super) fn eq0_irq_arm_after(&mut self, vector: u16, taken: usize, ci: u32) -> bool {
        if self.eq0_irq.suspect.is_some() {
            return false;
        }
        let irqs = self.p().msix().msix_count(vector);
        if taken > 0 && irqs == self.eq0_irq.armed_at {
            let since_ns = self.p().clock().now_ns();
            self.eq0_irq.suspect = Some(Suspect {
                irqs,
                since_ns,
                ci: ci & CI_MASK,
            });
            return false;
        }
        self.eq0_irq.armed_at = irqs;
        true
    }

    /// The periodic check of EQ0's interrupts (module documentation): a
    /// suspect whose vector stayed silent for [`LATE_IRQ_NS`] is a lost
    /// interrupt: record it, drain EQ0, arm it again.
    pub(crate) fn check_eq0_interrupt(&mut self) {
        self.eq0_irq_late();
        let Some(s) = self.eq0_irq.suspect else {
            return;
        };
        let Some((eqn, vector)) = self.eq0.as_ref().map(|e| (e.eqn, e.vector)) else {
            return;
        };
        let now = self.p().clock().now_ns();
        if now.saturating_sub(s.since_ns) < LATE_IRQ_NS {
            return;
        }
        self.record_fault(
            FaultRecord::new(FaultClass::EqStall, FaultObject::Eq(eqn.0.into()), now)
                .detail("pending", 1)
                .detail("ci", s.ci.into())
                .action(FaultAction::EqPoll, FaultOutcome::Recovered),
        );
        // Still suspect: the drain leaves EQ0 unarmed; armed below with
        // the count read first.
        self.drain_eq0(true);
        self.eq0_irq.suspect = None;
        if let Some(eq0) = self.eq0.as_ref() {
            self.eq0_irq.armed_at = self.p().msix().msix_count(vector);
            eq0.doorbell(true);
        }
    }
}
