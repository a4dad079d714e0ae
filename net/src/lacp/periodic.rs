//! Periodic Transmission machine (802.1AX-2014 6.4.13, Figure 6-19): how
//! often this port sends LACPDUs, chosen by the partner's LACP_Timeout.

use smoltcp::time::Instant;

use super::port::{Port, expired};
use super::{FAST_PERIODIC, SLOW_PERIODIC};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodicState {
    NoPeriodic,
    FastPeriodic,
    SlowPeriodic,
    PeriodicTx,
}

impl Port {
    pub(super) fn run_periodic(&mut self, now: Instant) {
        // The global transition: no LACP, no link, or two passive ends.
        let both_passive = !self.actor.state.lacp_activity() && !self.partner.state.lacp_activity();
        if !self.lacp_enabled || !self.enabled() || both_passive {
            self.periodic = PeriodicState::NoPeriodic;
            self.periodic_timer = None;
            return;
        }
        let partner_short = self.partner.state.lacp_timeout();
        // PERIODIC_TX always leaves, the others leave only on an expired
        // timer or a changed partner timeout: three steps are enough.
        for _ in 0..4 {
            let next = match self.periodic {
                PeriodicState::NoPeriodic => PeriodicState::FastPeriodic,
                PeriodicState::FastPeriodic if expired(self.periodic_timer, now) => {
                    PeriodicState::PeriodicTx
                }
                PeriodicState::FastPeriodic if !partner_short => PeriodicState::SlowPeriodic,
                PeriodicState::SlowPeriodic
                    if expired(self.periodic_timer, now) || partner_short =>
                {
                    PeriodicState::PeriodicTx
                }
                PeriodicState::PeriodicTx if partner_short => PeriodicState::FastPeriodic,
                PeriodicState::PeriodicTx => PeriodicState::SlowPeriodic,
                PeriodicState::FastPeriodic | PeriodicState::SlowPeriodic => break,
            };
            self.periodic = next;
            match next {
                PeriodicState::NoPeriodic => self.periodic_timer = None,
                PeriodicState::FastPeriodic => self.periodic_timer = Some(now + FAST_PERIODIC),
                PeriodicState::SlowPeriodic => self.periodic_timer = Some(now + SLOW_PERIODIC),
                PeriodicState::PeriodicTx => self.ntt = true,
            }
        }
    }
}
