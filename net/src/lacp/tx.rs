//! Transmit machine (802.1AX-2014 6.4.16) and the Marker Responder
//! (6.5.4.2): what a port sends on a poll.

use smoltcp::time::Instant;

use super::FAST_PERIODIC;
use super::periodic::PeriodicState;
use super::port::Port;
use super::wire::{LacpduRepr, MarkerRepr};

/// At most this many LACPDUs in any Fast_Periodic_Time (6.4.16).
pub const MAX_TX_PER_FAST_PERIODIC: usize = 3;

impl Port {
    /// The rate limit of 6.4.16: a fourth LACPDU waits until the first
    /// of the last three is a Fast_Periodic_Time old.
    fn tx_allowed(&self, now: Instant) -> bool {
        match self.tx_times[0] {
            Some(oldest) if self.tx_times.iter().all(Option::is_some) => {
                now >= oldest + FAST_PERIODIC
            }
            _ => true,
        }
    }

    /// LACP runs on an operational link and the Periodic machine is not
    /// in NO_PERIODIC (two passive ends stay silent).
    pub(super) fn can_send(&self) -> bool {
        self.lacp_enabled && self.enabled() && self.periodic != PeriodicState::NoPeriodic
    }

    /// The LACPDU to send now, if NTT is set, LACP runs and the rate limit
    /// allows it; clears NTT. A passive port whose partner is passive
    /// too (NO_PERIODIC) stays silent.
    pub(super) fn run_tx(&mut self, now: Instant) -> Option<LacpduRepr> {
        if !self.ntt || !self.can_send() || !self.tx_allowed(now) {
            return None;
        }
        self.ntt = false;
        self.tx_times.rotate_left(1);
        self.tx_times[MAX_TX_PER_FAST_PERIODIC - 1] = Some(now);
        self.lacpdus_tx += 1;
        Some(LacpduRepr {
            actor: self.actor,
            partner: self.partner,
            collector_max_delay: 0,
        })
    }

    /// The Marker Response owed to the last Marker request.
    pub(super) fn run_marker_responder(&mut self) -> Option<MarkerRepr> {
        if !self.enabled() {
            self.pending_marker = None;
            return None;
        }
        let request = self.pending_marker.take()?;
        self.marker_responses_tx += 1;
        Some(request.response())
    }
}
