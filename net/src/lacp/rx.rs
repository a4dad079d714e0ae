//! Receive machine (802.1AX-2014 6.4.12, Figure 6-18): records what the
//! partner says, and times it out.

use smoltcp::time::Instant;

use super::port::{Port, Selected, expired};
use super::wire::LacpduRepr;
use super::{LONG_TIMEOUT, SHORT_TIMEOUT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxState {
    Initialize,
    PortDisabled,
    Expired,
    LacpDisabled,
    Defaulted,
    Current,
}

impl Port {
    /// Runs the Receive machine to a stable state at `now`, consuming the
    /// LACPDU received since the last run (if any).
    pub(super) fn run_rx(&mut self, now: Instant) {
        let mut pdu = self.pending_pdu.take();
        // The global transition of Figure 6-18.
        if !self.enabled() && !self.port_moved && self.rx != RxState::PortDisabled {
            self.enter_rx(RxState::PortDisabled, now);
        }
        // Every state either waits or leaves through a condition that its
        // successor cannot make true again without new input: a handful
        // of steps always reaches a stable state.
        for _ in 0..8 {
            let next = match self.rx {
                RxState::Initialize => Some(RxState::PortDisabled),
                RxState::PortDisabled if self.port_moved => Some(RxState::Initialize),
                RxState::PortDisabled if self.enabled() && self.lacp_enabled => {
                    Some(RxState::Expired)
                }
                RxState::PortDisabled if self.enabled() => Some(RxState::LacpDisabled),
                RxState::PortDisabled => None,
                RxState::LacpDisabled if self.lacp_enabled => Some(RxState::PortDisabled),
                RxState::LacpDisabled => None,
                RxState::Expired | RxState::Defaulted | RxState::Current if pdu.is_some() => {
                    Some(RxState::Current)
                }
                RxState::Expired if expired(self.current_while, now) => Some(RxState::Defaulted),
                RxState::Current if expired(self.current_while, now) => Some(RxState::Expired),
                RxState::Expired | RxState::Defaulted | RxState::Current => None,
            };
            let Some(next) = next else { break };
            match next {
                // Chosen only when a LACPDU is pending.
                RxState::Current => {
                    if let Some(input) = pdu.take() {
                        self.enter_rx_current(now, &input);
                    }
                }
                next => self.enter_rx(next, now),
            }
        }
    }

    /// BEGIN (6.4.8): INITIALIZE's actions.
    pub(super) fn enter_rx_initialize(&mut self) {
        self.rx = RxState::Initialize;
        self.selected = Selected::Unselected;
        self.record_default();
        self.actor.state.set_expired(false);
        self.port_moved = false;
    }

    fn enter_rx(&mut self, state: RxState, now: Instant) {
        self.rx = state;
        match state {
            RxState::Initialize => self.enter_rx_initialize(),
            RxState::PortDisabled => {
                self.partner.state.set_synchronization(false);
                self.current_while = None;
            }
            RxState::Expired => {
                self.partner.state.set_synchronization(false);
                self.partner.state.set_lacp_timeout(true);
                self.current_while = Some(now + SHORT_TIMEOUT);
                self.actor.state.set_expired(true);
            }
            RxState::LacpDisabled => {
                self.selected = Selected::Unselected;
                self.record_default();
                self.partner.state.set_aggregation(false);
                self.actor.state.set_expired(false);
            }
            RxState::Defaulted => {
                self.update_default_selected();
                self.record_default();
                self.actor.state.set_expired(false);
                self.current_while = None;
            }
            // Only entered with a LACPDU, through enter_rx_current.
            RxState::Current => {}
        }
    }

    fn enter_rx_current(&mut self, now: Instant, pdu: &LacpduRepr) {
        self.rx = RxState::Current;
        self.update_selected(pdu);
        self.update_ntt(pdu);
        self.record_pdu(pdu);
        let timeout = if self.actor.state.lacp_timeout() {
            SHORT_TIMEOUT
        } else {
            LONG_TIMEOUT
        };
        self.current_while = Some(now + timeout);
        self.actor.state.set_expired(false);
    }
}
