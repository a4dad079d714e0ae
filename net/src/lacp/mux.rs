//! Mux machine with coupled control (802.1AX-2014 6.4.15, Figure 6-21):
//! attaches the port to its aggregator and turns collecting and
//! distributing on together once both ends agree.

use smoltcp::time::Instant;

use super::AGGREGATE_WAIT;
use super::port::{Port, Selected};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxState {
    Detached,
    Waiting,
    Attached,
    CollectingDistributing,
}

impl Port {
    /// Ready_N (6.4.8): this port has waited Aggregate_Wait_Time.
    pub(super) fn ready_n(&self, now: Instant) -> bool {
        self.mux == MuxState::Waiting && super::port::expired(self.wait_while, now)
    }

    /// Runs the Mux machine; `ready` is the aggregator's Ready (6.4.8):
    /// every port waiting for it has waited long enough.
    pub(super) fn run_mux(&mut self, now: Instant, ready: bool) {
        for _ in 0..6 {
            let selected = self.selected == Selected::Selected;
            let partner_sync = self.partner.state.synchronization();
            let next = match self.mux {
                MuxState::Detached if selected => MuxState::Waiting,
                MuxState::Waiting if !selected => MuxState::Detached,
                MuxState::Waiting if selected && ready => MuxState::Attached,
                MuxState::Attached if !selected => MuxState::Detached,
                MuxState::Attached if partner_sync => MuxState::CollectingDistributing,
                MuxState::CollectingDistributing if !selected || !partner_sync => {
                    MuxState::Attached
                }
                _ => break,
            };
            self.enter_mux(next, now);
        }
    }

    pub(super) fn enter_mux(&mut self, state: MuxState, now: Instant) {
        self.mux = state;
        let s = &mut self.actor.state;
        match state {
            MuxState::Detached => {
                // Detach_Mux_From_Aggregator, Disable_Collecting_Distributing.
                s.set_synchronization(false);
                s.set_collecting(false);
                s.set_distributing(false);
                self.wait_while = None;
                self.ntt = true;
            }
            MuxState::Waiting => self.wait_while = Some(now + AGGREGATE_WAIT),
            MuxState::Attached => {
                // Attach_Mux_To_Aggregator, Disable_Collecting_Distributing.
                s.set_synchronization(true);
                s.set_collecting(false);
                s.set_distributing(false);
                self.wait_while = None;
                self.ntt = true;
            }
            MuxState::CollectingDistributing => {
                // Enable_Collecting_Distributing.
                s.set_collecting(true);
                s.set_distributing(true);
                self.ntt = true;
            }
        }
    }
}
