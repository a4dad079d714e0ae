//! Lost interrupts of a completion EQ that its owner polls anyway.
//!
//! An armed EQ sends one interrupt for the first event written after the
//! arm, and every poll that takes events arms it again ([`super::CompEq`]),
//! so each poll that took events matches exactly one interrupt the device
//! sent on the EQ's vector. An owner that polls on its own timers (a
//! network stack) takes the events of a lost interrupt a little later and
//! nothing else shows it; the vector's interrupt count
//! ([`cxos_drivers::Msix::msix_count`]) does: it falls behind the polls
//! that took events by one for good.
//!
//! `polls - interrupts` (the lead) only moves for a moment otherwise: up
//! while an interrupt is on its way after its poll, down while an event
//! whose interrupt arrived waits in the ring. With no event waiting, and
//! the count read before the polls, it is never below its settled value,
//! so the lowest such lead is the baseline (more interrupts than polls,
//! from a vector shared with another EQ or an arm with events already
//! waiting, lower it for good); once neither has moved for a quiet time it
//! is exact, and its rise above the baseline is the interrupts lost.

/// The accounting, kept with the EQ (shared by every queue set on it, so
/// one of them records a loss).
#[derive(Debug, Default)]
pub(super) struct IrqAccount {
    /// Polls that took events.
    pub(super) polls: u64,
    /// Polls and vector count as last seen, and since when unchanged.
    seen: Option<(u64, u64, u64)>,
    /// The settled lead (polls minus interrupts) with no loss in it.
    base: Option<i64>,
}

impl IrqAccount {
    /// Compare with the vector's count `irqs` (read before this call) at
    /// `now_ns`, `waiting`: an event is in the ring (see the module
    /// documentation); the interrupts lost since the last loss found.
    pub(super) fn settle(&mut self, irqs: u64, waiting: bool, now_ns: u64, quiet_ns: u64) -> u64 {
        let quiet = match self.seen {
            Some((p, i, since)) if (p, i) == (self.polls, irqs) => {
                now_ns.saturating_sub(since) >= quiet_ns
            }
            _ => {
                self.seen = Some((self.polls, irqs, now_ns));
                false
            }
        };
        if waiting {
            return 0;
        }
        let lead = self.polls.wrapping_sub(irqs) as i64;
        let base = match self.base {
            Some(b) if b <= lead => b,
            _ => {
                self.base = Some(lead);
                return 0;
            }
        };
        if !quiet || lead == base {
            return 0;
        }
        self.base = Some(lead);
        (lead - base) as u64
    }

    /// A lost interrupt found and recorded another way (events left in
    /// the ring a whole period) was just polled: not to be counted again.
    pub(super) fn accounted(&mut self) {
        if let Some(b) = self.base.as_mut() {
            *b += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: u64 = 1_000;

    #[test]
    fn a_late_interrupt_is_not_lost_a_missing_one_is() {
        let mut a = IrqAccount::default();
        // The offset between the counts is arbitrary; busy from the start.
        a.polls = 10;
        assert_eq!(a.settle(500, false, 0, Q), 0, "baseline");
        // An interrupt counted, its event not polled yet: not a sample.
        assert_eq!(a.settle(501, true, 1, Q), 0);
        a.polls += 1;
        // A poll before its interrupt: ahead by one, not quiet.
        a.polls += 1;
        assert_eq!(a.settle(501, false, 2, Q), 0);
        assert_eq!(a.settle(502, false, 3, Q), 0, "it came");
        assert_eq!(a.settle(502, false, 3 + Q, Q), 0, "quiet, in step");
        // A poll whose interrupt never comes.
        a.polls += 1;
        assert_eq!(a.settle(502, false, 2 * Q, Q), 0);
        assert_eq!(a.settle(502, false, 3 * Q - 1, Q), 0, "not quiet yet");
        assert_eq!(a.settle(502, false, 3 * Q, Q), 1, "lost");
        assert_eq!(a.settle(502, false, 9 * Q, Q), 0, "counted once");
        // Extra interrupts lower the baseline; a loss after them counts.
        assert_eq!(a.settle(505, false, 9 * Q, Q), 0);
        a.polls += 2;
        assert_eq!(a.settle(506, false, 10 * Q, Q), 0);
        assert_eq!(a.settle(506, false, 12 * Q, Q), 1);
    }

    #[test]
    fn a_loss_found_by_the_pending_check_is_not_counted_again() {
        let mut a = IrqAccount::default();
        assert_eq!(a.settle(7, false, 0, Q), 0);
        a.polls += 1;
        a.accounted();
        assert_eq!(a.settle(7, false, Q, Q), 0);
        assert_eq!(a.settle(7, false, 3 * Q, Q), 0);
    }
}
