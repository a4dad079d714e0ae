//! The per-port variables of 802.1AX-2014 6.4.7 and 6.4.9 and the
//! functions of 6.4.11 that the machines share (recordPDU, recordDefault,
//! update_Selected, update_Default_Selected, update_NTT).

use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

use super::mux::MuxState;
use super::periodic::PeriodicState;
use super::rx::RxState;
use super::wire::{LacpduRepr, MarkerRepr, PortInfo, PortState};

/// Selected (6.4.8): whether the Selection Logic has picked the
/// aggregator for this port. The standard's third value, STANDBY (selected
/// but held back by a limit on an aggregator's members), never arises
/// here: the one aggregator takes every port that matches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    Unselected,
    Selected,
}

/// Counters and state of one port, for `aggr show -L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortReport {
    pub mac: EthernetAddress,
    pub link_up: bool,
    pub speed_mbps: u32,
    /// Actor_Oper values this port sends.
    pub actor: PortInfo,
    /// Partner_Oper values: from the last LACPDU, or the defaults.
    pub partner: PortInfo,
    pub selected: Selected,
    pub rx_state: RxState,
    pub periodic_state: PeriodicState,
    pub mux_state: MuxState,
    pub collecting: bool,
    pub distributing: bool,
    pub lacpdus_rx: u64,
    pub lacpdus_tx: u64,
    pub markers_rx: u64,
    pub marker_responses_tx: u64,
    /// Malformed Slow Protocols frames, Marker requests dropped because
    /// one was already waiting.
    pub bad_pdus: u64,
    /// LACPDUs whose sender claimed a state no Mux machine produces
    /// ([`super::PortState::is_possible`]).
    pub impossible_states: u64,
    /// Slow Protocols frames of other subtypes (802.3 OAM...).
    pub other_slow_rx: u64,
    pub link_changes: u64,
}

#[derive(Debug)]
pub(super) struct Port {
    pub mac: EthernetAddress,
    pub link_up: bool,
    pub speed_mbps: u32,
    /// port_enabled (6.4.7) and LACP_Enabled (6.4.8): LACP runs on the port.
    pub lacp_enabled: bool,
    /// port_moved (6.4.8): the partner port showed up on another of our
    /// ports while this one is disabled.
    pub port_moved: bool,
    pub actor: PortInfo,
    pub partner: PortInfo,
    pub partner_admin: PortInfo,
    pub selected: Selected,
    /// NTT (6.4.7): a LACPDU must be sent.
    pub ntt: bool,
    pub rx: RxState,
    pub current_while: Option<Instant>,
    pub periodic: PeriodicState,
    pub periodic_timer: Option<Instant>,
    pub mux: MuxState,
    pub wait_while: Option<Instant>,
    /// Times of the last three LACPDUs, oldest first: the transmit rate
    /// limit (6.4.16).
    pub tx_times: [Option<Instant>; 3],
    /// The LACPDU received since the last poll; a newer one replaces it,
    /// as each LACPDU carries the sender's whole state.
    pub pending_pdu: Option<LacpduRepr>,
    /// The Marker request waiting for its response.
    pub pending_marker: Option<MarkerRepr>,
    pub lacpdus_rx: u64,
    pub lacpdus_tx: u64,
    pub markers_rx: u64,
    pub marker_responses_tx: u64,
    pub bad_pdus: u64,
    pub impossible_states: u64,
    pub other_slow_rx: u64,
    pub link_changes: u64,
}

impl Port {
    pub fn new(mac: EthernetAddress, actor: PortInfo, partner_admin: PortInfo) -> Port {
        Port {
            mac,
            link_up: false,
            speed_mbps: 0,
            lacp_enabled: true,
            port_moved: false,
            actor,
            partner: partner_admin,
            partner_admin,
            selected: Selected::Unselected,
            ntt: false,
            rx: RxState::Initialize,
            current_while: None,
            periodic: PeriodicState::NoPeriodic,
            periodic_timer: None,
            mux: MuxState::Detached,
            wait_while: None,
            tx_times: [None; 3],
            pending_pdu: None,
            pending_marker: None,
            lacpdus_rx: 0,
            lacpdus_tx: 0,
            markers_rx: 0,
            marker_responses_tx: 0,
            bad_pdus: 0,
            impossible_states: 0,
            other_slow_rx: 0,
            link_changes: 0,
        }
    }

    /// port_enabled (6.4.7): the MAC is operational.
    pub fn enabled(&self) -> bool {
        self.link_up
    }

    pub fn report(&self) -> PortReport {
        PortReport {
            mac: self.mac,
            link_up: self.link_up,
            speed_mbps: self.speed_mbps,
            actor: self.actor,
            partner: self.partner,
            selected: self.selected,
            rx_state: self.rx,
            periodic_state: self.periodic,
            mux_state: self.mux,
            collecting: self.actor.state.collecting(),
            distributing: self.actor.state.distributing(),
            lacpdus_rx: self.lacpdus_rx,
            lacpdus_tx: self.lacpdus_tx,
            markers_rx: self.markers_rx,
            marker_responses_tx: self.marker_responses_tx,
            bad_pdus: self.bad_pdus,
            impossible_states: self.impossible_states,
            other_slow_rx: self.other_slow_rx,
            link_changes: self.link_changes,
        }
    }

    /// recordDefault (6.4.9): the partner is the administrative default.
    pub fn record_default(&mut self) {
        self.partner = self.partner_admin;
        self.actor.state.set_defaulted(true);
    }

    /// recordPDU (6.4.9): the sender's actor values become our partner's,
    /// and the partner is in sync if it has our values right (or is an
    /// individual link) and says so, and one end is active.
    pub fn record_pdu(&mut self, pdu: &LacpduRepr) {
        let us = &self.actor;
        let matches_us =
            pdu.partner.same_port(us) && pdu.partner.state.aggregation() == us.state.aggregation();
        let they = pdu.actor.state;
        let agreed = (matches_us && they.synchronization())
            || (!they.aggregation() && they.synchronization());
        let someone_active =
            they.lacp_activity() || (us.state.lacp_activity() && pdu.partner.state.lacp_activity());
        self.partner = pdu.actor;
        self.partner
            .state
            .set_synchronization(agreed && someone_active);
        self.actor.state.set_defaulted(false);
    }

    /// update_Selected (6.4.9): a different partner port, or a change of
    /// its Aggregation bit, means the aggregator must be chosen again.
    pub fn update_selected(&mut self, pdu: &LacpduRepr) {
        let p = &self.partner;
        if !pdu.actor.same_port(p) || pdu.actor.state.aggregation() != p.state.aggregation() {
            self.selected = Selected::Unselected;
        }
    }

    /// update_Default_Selected (6.4.9): the same test against the
    /// administrative partner values.
    pub fn update_default_selected(&mut self) {
        let (a, p) = (&self.partner_admin, &self.partner);
        if !a.same_port(p) || a.state.aggregation() != p.state.aggregation() {
            self.selected = Selected::Unselected;
        }
    }

    /// update_NTT (6.4.9): answer at once when the partner has our values
    /// wrong.
    pub fn update_ntt(&mut self, pdu: &LacpduRepr) {
        let (seen, us) = (pdu.partner.state, self.actor.state);
        if !pdu.partner.same_port(&self.actor)
            || seen.lacp_activity() != us.lacp_activity()
            || seen.lacp_timeout() != us.lacp_timeout()
            || seen.synchronization() != us.synchronization()
            || seen.aggregation() != us.aggregation()
        {
            self.ntt = true;
        }
    }
}

/// `deadline` has passed at `now` (a stopped timer never expires).
pub(super) fn expired(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| now >= d)
}

/// Partner_Admin_Port_State default: passive, aggregatable, short
/// timeout, out of sync. Passive so that a passive actor with a silent
/// partner stays silent (6.4.13); short timeout so that an active actor
/// keeps asking once a second until a partner appears; out of sync so a
/// defaulted port never distributes.
pub(super) fn default_partner_state() -> PortState {
    PortState::new()
        .with_aggregation(true)
        .with_lacp_timeout(true)
}
