//! Link aggregation: IEEE 802.1AX-2014 LACP (clause 6.4) over up to
//! [`MAX_PORTS`] member ports, the Marker Responder (6.5), static
//! aggregation without LACP, and the transmit hash policy.
//!
//! [`Lacp`] is what an aggregation `NetDevice` drives: it reports link
//! changes ([`Lacp::on_link`]), offers every received frame
//! ([`Lacp::on_rx`] keeps the Slow Protocols ones), calls [`Lacp::poll`]
//! with the current time and sends what it returns, and sends each
//! client frame on [`Lacp::tx_port`]. Time is an argument, so the machines
//! are deterministic and tested on the host with a simulated clock; the
//! per-poll path does not allocate.
//!
//! Files by idea: [`wire`] (LACPDU and Marker PDU), `port` (per-port
//! variables and the shared functions of 6.4.9), one file per state
//! machine (`rx` 6.4.12, `periodic` 6.4.13, `selection` 6.4.14, `mux`
//! 6.4.15, `tx` 6.4.16 with the Marker Responder), and [`hash`].
//!
//! Where this differs from the standard's full model, and why:
//! - One aggregator per [`Lacp`] (one actor key), bound to one partner
//!   System ID and key; ports that match another partner stay
//!   unselected (`selection`).
//! - A port whose partner is defaulted (no LACPDU heard) does not select
//!   the aggregator: with the default partner values it could never
//!   reach Collecting_Distributing, and it would bind the aggregator to
//!   nobody.
//! - A link change (down, up, speed) unselects the port, so a link that
//!   comes back rejoins through WAITING (Aggregate_Wait_Time).
//! - The Mux machine is the coupled-control one (Figure 6-21); the
//!   Churn Detection machines (6.4.17) only report and are not
//!   implemented; LACPDUs are Version 1 ([`wire`]).

pub mod hash;
mod mux;
mod periodic;
mod port;
mod rx;
mod selection;
mod tx;
pub mod wire;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::EthernetAddress;

pub use hash::{BadPolicy, HashPolicy};
pub use mux::MuxState;
pub use periodic::PeriodicState;
pub use port::{PortReport, Selected};
pub use rx::RxState;
pub use tx::MAX_TX_PER_FAST_PERIODIC;
pub use wire::{PortInfo, PortState, SystemId};

use port::Port;
use wire::{FRAME_LEN, SlowFrame, SlowPdu};

/// Member ports of one aggregation (a 2-port adapter, or two of them).
pub const MAX_PORTS: usize = 4;

// Timer constants of 802.1AX-2014 6.4.4.
pub const FAST_PERIODIC: Duration = Duration::from_secs(1);
pub const SLOW_PERIODIC: Duration = Duration::from_secs(30);
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(3);
pub const LONG_TIMEOUT: Duration = Duration::from_secs(90);
pub const AGGREGATE_WAIT: Duration = Duration::from_secs(2);

/// A member port: its index in the order of [`Lacp::add_port`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u8);

impl PortId {
    fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// LACP_Activity, or no LACP at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send LACPDUs whatever the partner does.
    Active,
    /// Send LACPDUs only to an active partner: two passive ends never
    /// aggregate.
    Passive,
    /// No LACP: a member distributes while its link is up.
    Static,
}

/// The LACP_Timeout this end asks for, which sets the partner's rate:
/// `Fast` is Short Timeout (the partner sends every second, 3 s to
/// expire), `Slow` is Long Timeout (every 30 s, 90 s to expire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Fast,
    Slow,
}

/// Administrative values of an aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Actor_System and Actor_System_Priority: the aggregation's MAC.
    pub system: SystemId,
    /// Actor_Admin_Port_Key of every member.
    pub key: u16,
    pub port_priority: u16,
    pub mode: Mode,
    pub rate: Rate,
    pub policy: HashPolicy,
}

impl Config {
    /// Active, fast, L4, system priority and port priority 0x8000, key 1.
    pub fn new(mac: EthernetAddress) -> Config {
        Config {
            system: SystemId {
                priority: 0x8000,
                mac,
            },
            key: 1,
            port_priority: 0x8000,
            mode: Mode::Active,
            rate: Rate::Fast,
            policy: HashPolicy::L4,
        }
    }
}

/// [`Lacp::add_port`] beyond [`MAX_PORTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPorts;

/// A frame [`Lacp::poll`] asks to send.
#[derive(Debug, Clone)]
pub struct TxFrame {
    pub port: PortId,
    buf: [u8; FRAME_LEN],
}

impl TxFrame {
    pub fn frame(&self) -> &[u8] {
        &self.buf
    }
}

/// What one poll sends: at most a LACPDU and a Marker Response per port.
pub type Transmit = heapless::Vec<TxFrame, { 2 * MAX_PORTS }>;

/// The LACP side of one aggregation.
#[derive(Debug)]
pub struct Lacp {
    config: Config,
    ports: heapless::Vec<Port, MAX_PORTS>,
}

/// Logs the 1st, 2nd, 4th, 8th... occurrence: bounded logging of bad
/// input whatever its rate.
fn log_bounded(count: u64, port: PortId, what: &dyn core::fmt::Debug) {
    if count.is_power_of_two() {
        log::warn!("lacp port {}: {:?} (#{})", port.0, what, count);
    }
}

impl Lacp {
    pub fn new(config: Config) -> Lacp {
        Lacp {
            config,
            ports: heapless::Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Adds a member whose individual MAC (the source of its LACPDUs,
    /// 802.1AX-2014 6.2.11) is `mac`; its link starts down.
    pub fn add_port(&mut self, mac: EthernetAddress) -> Result<PortId, TooManyPorts> {
        let index = self.ports.len();
        let number = u16::try_from(index + 1).map_err(|_| TooManyPorts)?;
        let c = &self.config;
        let actor = PortInfo {
            system: c.system,
            key: c.key,
            port_priority: c.port_priority,
            port: number,
            state: PortState::new()
                .with_lacp_activity(c.mode == Mode::Active)
                .with_lacp_timeout(c.rate == Rate::Fast)
                .with_aggregation(true),
        };
        let partner_admin = PortInfo {
            state: port::default_partner_state(),
            ..PortInfo::default()
        };
        let mut port = Port::new(mac, actor, partner_admin);
        port.lacp_enabled = c.mode != Mode::Static;
        // BEGIN: INITIALIZE and DETACHED's actions (the latter sets NTT,
        // so an active port speaks as soon as its link is up).
        port.enter_rx_initialize();
        port.enter_mux(MuxState::Detached, Instant::ZERO);
        self.ports.push(port).map_err(|_| TooManyPorts)?;
        Ok(PortId(index as u8))
    }

    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// The link of `port` went up or down, or changed speed. A changed
    /// link leaves the aggregator at once (Selected = UNSELECTED: its
    /// speed is part of what members share, and a down link has none)
    /// and rejoins through WAITING, so a flapping link is not used
    /// until it has been up for Aggregate_Wait_Time.
    pub fn on_link(&mut self, port: PortId, up: bool, speed_mbps: u32) {
        let Some(p) = self.ports.get_mut(port.index()) else {
            return;
        };
        let speed_mbps = if up { speed_mbps } else { 0 };
        if p.link_up == up && p.speed_mbps == speed_mbps {
            return;
        }
        p.link_changes += 1;
        p.link_up = up;
        p.speed_mbps = speed_mbps;
        p.selected = Selected::Unselected;
        if !up {
            p.pending_pdu = None;
            p.pending_marker = None;
            if self.config.mode == Mode::Static {
                p.actor.state.set_collecting(false);
                p.actor.state.set_distributing(false);
            }
        }
    }

    /// Offers a received frame. Returns true if it was a Slow Protocols
    /// frame, which LACP consumes (counted, and acted upon at the next
    /// poll if well formed); false if it is for the aggregation's clients.
    pub fn on_rx(&mut self, port: PortId, frame: &[u8]) -> bool {
        let parsed = wire::parse_frame(frame);
        if parsed == SlowFrame::NotSlow {
            return false;
        }
        let static_mode = self.config.mode == Mode::Static;
        let Some(p) = self.ports.get_mut(port.index()) else {
            return true;
        };
        match parsed {
            SlowFrame::NotSlow => return false,
            SlowFrame::OtherSubtype(_) => p.other_slow_rx += 1,
            SlowFrame::Bad(e) => {
                p.bad_pdus += 1;
                log_bounded(p.bad_pdus, port, &e);
            }
            SlowFrame::Pdu(SlowPdu::Lacp(pdu)) => {
                p.lacpdus_rx += 1;
                // A sender claiming a state its own Mux machine cannot
                // produce (6.4.15) is counted and logged, and the LACPDU
                // still used: every decision here reads the partner's
                // Synchronization bit, which is safe whatever the other
                // bits say. Only the sender's own state is checked: its
                // view of us legitimately keeps Collecting/Distributing
                // with Synchronization cleared (PORT_DISABLED and EXPIRED
                // clear only that bit, 6.4.12).
                if !pdu.actor.state.is_possible() {
                    p.impossible_states += 1;
                    log_bounded(p.impossible_states, port, &pdu.actor.state);
                }
                if p.link_up && !static_mode {
                    p.pending_pdu = Some(pdu);
                    self.note_port_moved(port, &pdu.actor);
                }
            }
            SlowFrame::Pdu(SlowPdu::Marker(marker)) => {
                p.markers_rx += 1;
                // This end never sends Marker requests: a Response is
                // only counted.
                if marker.kind == wire::MarkerKind::Information && p.link_up {
                    if p.pending_marker.is_some() {
                        p.bad_pdus += 1;
                        log_bounded(p.bad_pdus, port, &"marker request overrun");
                    }
                    p.pending_marker = Some(marker);
                }
            }
        }
        true
    }

    /// port_moved (6.4.8): the partner port seen on `port` was the partner
    /// of another, now disabled, port, which must forget it.
    fn note_port_moved(&mut self, port: PortId, sender: &PortInfo) {
        for (i, q) in self.ports.iter_mut().enumerate() {
            let moved = q.rx == RxState::PortDisabled
                && !q.actor.state.defaulted()
                && q.partner.system == sender.system
                && q.partner.port == sender.port;
            if i != port.index() && moved {
                q.port_moved = true;
            }
        }
    }

    /// Runs every machine at `now` and returns the frames to send.
    pub fn poll(&mut self, now: Instant) -> Transmit {
        let mut out = Transmit::new();
        if self.config.mode == Mode::Static {
            for p in self.ports.iter_mut() {
                p.run_rx(now);
                let up = p.link_up;
                p.actor.state.set_synchronization(up);
                p.actor.state.set_collecting(up);
                p.actor.state.set_distributing(up);
                p.selected = if up {
                    Selected::Selected
                } else {
                    Selected::Unselected
                };
            }
        } else {
            for p in self.ports.iter_mut() {
                p.run_rx(now);
                p.run_periodic(now);
            }
            // Twice: ports freed by the first Mux pass (a partner change)
            // select again in the same poll.
            for _ in 0..2 {
                selection::run_selection(&mut self.ports, self.config.system);
                let waiting = self
                    .ports
                    .iter()
                    .filter(|p| p.selected == Selected::Selected && p.mux == MuxState::Waiting);
                let ready = waiting.clone().count() > 0 && waiting.clone().all(|p| p.ready_n(now));
                for p in self.ports.iter_mut() {
                    p.run_mux(now, ready);
                }
            }
        }
        for (i, p) in self.ports.iter_mut().enumerate() {
            let id = PortId(i as u8);
            let pdus = [
                p.run_tx(now).map(SlowPdu::Lacp),
                p.run_marker_responder().map(SlowPdu::Marker),
            ];
            for pdu in pdus.into_iter().flatten() {
                let mut frame = TxFrame {
                    port: id,
                    buf: [0; FRAME_LEN],
                };
                wire::emit_frame(p.mac, &pdu, &mut frame.buf);
                // Capacity is two frames per port: never full.
                let _ = out.push(frame);
            }
        }
        out
    }

    /// The earliest time a poll has work to do (a timer expires, or a
    /// rate-limited LACPDU may go), for a caller that sleeps.
    pub fn poll_at(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for p in self.ports.iter() {
            consider(p.current_while);
            consider(p.periodic_timer);
            consider(p.wait_while);
            if p.pending_marker.is_some() || p.pending_pdu.is_some() {
                consider(Some(Instant::ZERO));
            }
            if p.ntt && p.can_send() {
                consider(Some(
                    p.tx_times[0].map_or(Instant::ZERO, |t| t + FAST_PERIODIC),
                ));
            }
        }
        next
    }

    /// Ports that may carry client frames (Collecting_Distributing, or up
    /// in static mode), in port order.
    pub fn distributing_ports(&self) -> heapless::Vec<PortId, MAX_PORTS> {
        self.ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.link_up && p.actor.state.distributing())
            .map(|(i, _)| PortId(i as u8))
            .collect()
    }

    /// Whether client frames received on `port` belong to the aggregation.
    pub fn is_collecting(&self, port: PortId) -> bool {
        self.ports
            .get(port.index())
            .is_some_and(|p| p.link_up && p.actor.state.collecting())
    }

    /// The port that carries `frame` under the configured hash policy, or
    /// None when no port is distributing.
    pub fn tx_port(&self, frame: &[u8]) -> Option<PortId> {
        let ports = self.distributing_ports();
        if ports.is_empty() {
            return None;
        }
        let h = self.config.policy.hash(frame) as usize;
        Some(ports[h % ports.len()])
    }

    pub fn report(&self, port: PortId) -> Option<PortReport> {
        self.ports.get(port.index()).map(Port::report)
    }
}
