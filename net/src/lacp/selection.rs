//! Selection Logic (802.1AX-2014 6.4.14): which ports share the
//! aggregator.
//!
//! The standard gives every port an aggregator with the port's key and
//! lets ports with the same actor key and the same partner System ID and
//! key pick a common one. An aggregation here has one actor key, so it
//! has one aggregator: the first port to select it binds it to its
//! partner (System ID, key) and speed, and ports with another partner,
//! another speed, or an individual (non-aggregatable) link wait,
//! Unselected, until every port bound to the old partner has detached.
//! 6.4.14.1 allows fewer aggregators than ports: a port that finds no
//! suitable aggregator stays unselected.

use super::mux::MuxState;
use super::port::{Port, Selected};
use super::wire::SystemId;

/// What ports must have in common to share the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    partner_system: SystemId,
    partner_key: u16,
    speed_mbps: u32,
    individual: bool,
}

fn binding(port: &Port) -> Binding {
    Binding {
        partner_system: port.partner.system,
        partner_key: port.partner.key,
        speed_mbps: port.speed_mbps,
        individual: !(port.actor.state.aggregation() && port.partner.state.aggregation()),
    }
}

/// A port may select an aggregator once LACP runs on an operational link
/// and its partner values come from a LACPDU: a defaulted port has no
/// partner to agree with (and would bind the aggregator to the
/// administrative defaults). A partner with our own System ID is a loop
/// between two of our ports, which must not aggregate (6.4.14.1).
fn eligible(port: &Port, actor_system: SystemId) -> bool {
    port.enabled()
        && port.lacp_enabled
        && !port.actor.state.defaulted()
        && port.partner.system != actor_system
}

pub(super) fn run_selection(ports: &mut [Port], actor_system: SystemId) {
    let mut bound = ports
        .iter()
        .find(|p| p.selected == Selected::Selected)
        .map(binding);
    if bound.is_none() && ports.iter().any(|p| p.mux != MuxState::Detached) {
        // Ports of the previous binding are still detaching.
        return;
    }
    for port in ports.iter_mut() {
        if port.selected != Selected::Unselected || port.mux != MuxState::Detached {
            continue;
        }
        if !eligible(port, actor_system) {
            continue;
        }
        let mine = binding(port);
        match bound {
            None => {
                bound = Some(mine);
                port.selected = Selected::Selected;
            }
            Some(b) if b == mine && !b.individual => port.selected = Selected::Selected,
            Some(_) => {}
        }
    }
}
