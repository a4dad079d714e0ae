//! Lost interrupts of a completion EQ that its owner polls anyway.
//!
//! An armed EQ sends one interrupt for the first event written after the
//! arm, and every poll that takes events arms it again ([`super::CompEq`]),
//! so each poll that took events matches exactly one interrupt the device
//! sent on the EQ's vector. An owner that polls on its own timers (a
//! network stack) takes the events of a lost interrupt a little later and
//! nothing else shows it; the vector's interrupt count
//! ([`cxos_drivers::Msix::msix_count`]) does: it falls behind the polls
//! that took events by one for good. Behind by one for a moment is only a
//! poll that came before its interrupt arrived, so the two are compared
//! only once neither has moved for a quiet time; the difference then is
//! exact, and its growth since the last comparison is the interrupts lost.
//! More interrupts than polls (a vector shared with another EQ, an arm
//! with events already waiting) lower the baseline.

/// The accounting, kept with the EQ (shared by every queue set on it, so
/// one of them records a loss).
#[derive(Debug, Default)]
pub(super) struct IrqAccount {
    /// Polls that took events.
    pub(super) polls: u64,
    /// Polls and vector count as last seen, and since when unchanged.
    seen: Option<(u64, u64, u64)>,
    /// Polls minus interrupts at the last quiet comparison.
    base: Option<i64>,
}

impl IrqAccount {
    /// Compare with the vector's count `irqs` at `now_ns` (see the module
    /// documentation); the interrupts lost since the last comparison.
    pub(super) fn settle(&mut self, irqs: u64, now_ns: u64, quiet_ns: u64) -> u64 {
        match self.seen {
            Some((p, i, since)) if (p, i) == (self.polls, irqs) => {
                if now_ns.saturating_sub(since) < quiet_ns {
                    return 0;
                }
            }
            _ => {
                self.seen = Some((self.polls, irqs, now_ns));
                return 0;
            }
        }
        let behind = self.polls.wrapping_sub(irqs) as i64;
        let base = *self.base.get_or_insert(behind);
        self.base = Some(behind);
        behind.saturating_sub(base).max(0) as u64
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
        // The offset between the counts is arbitrary.
        a.polls = 10;
        assert_eq!(a.settle(500, 0, Q), 0);
        assert_eq!(a.settle(500, Q, Q), 0, "baseline");
        // A poll before its interrupt: behind by one, not quiet yet.
        a.polls += 1;
        assert_eq!(a.settle(500, Q + 1, Q), 0);
        assert_eq!(a.settle(501, Q + 2, Q), 0, "it came");
        assert_eq!(a.settle(501, 3 * Q, Q), 0, "quiet, in step");
        // A poll whose interrupt never comes.
        a.polls += 1;
        assert_eq!(a.settle(501, 3 * Q + 1, Q), 0);
        assert_eq!(a.settle(501, 4 * Q, Q), 0, "not quiet long enough");
        assert_eq!(a.settle(501, 4 * Q + 1, Q), 1, "lost");
        assert_eq!(a.settle(501, 9 * Q, Q), 0, "counted once");
        // Extra interrupts lower the baseline; a loss after them counts.
        assert_eq!(a.settle(504, 9 * Q, Q), 0);
        assert_eq!(a.settle(504, 11 * Q, Q), 0);
        a.polls += 2;
        assert_eq!(a.settle(505, 11 * Q, Q), 0);
        assert_eq!(a.settle(505, 13 * Q, Q), 1);
    }

    #[test]
    fn a_loss_found_by_the_pending_check_is_not_counted_again() {
        let mut a = IrqAccount::default();
        assert_eq!(a.settle(7, 0, Q), 0);
        assert_eq!(a.settle(7, Q, Q), 0);
        a.polls += 1;
        a.accounted();
        assert_eq!(a.settle(7, Q, Q), 0);
        assert_eq!(a.settle(7, 3 * Q, Q), 0);
    }
}
