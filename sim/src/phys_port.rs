//! The physical port of the function: administrative and operational
//! state, protocols (speed), MTU, the cage and the module in it, and the
//! port's LED. PAOS/PTYS/PMTU/PMLP/PMAOS/MCIA/MLCR read and write it; link
//! changes raise port-change EQEs (type 0x09, sub_type 1 down / 4 active),
//! module changes port-module EQEs (type 0x16).
//!
//! The link is up when the port is administratively up, a module is
//! plugged, enabled and not in error, the far end is there (the control
//! socket's `link up|down`, the peer's cable) and the module, the port's
//! capability and the PTYS admin set share a protocol; it runs at the
//! fastest of those.
#![deny(unsafe_code)]

use std::time::{Duration, Instant};

use crate::module::{Cage, ModuleKind, Plugged, oper};
use crate::personality::{Personality, fastest};

/// The port's beacon LED (MLCR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beacon {
    Off,
    /// `beacon_duration` 0xffff: until turned off.
    On,
    /// Blinking until this instant.
    Until(Instant),
}

/// MLCR `beacon_duration` meaning "until turned off".
pub const BEACON_FOREVER: u16 = 0xffff;

impl Beacon {
    /// Off once its time is up.
    pub fn now(self) -> Beacon {
        match self {
            Beacon::Until(t) if Instant::now() >= t => Beacon::Off,
            b => b,
        }
    }

    /// Seconds left as MLCR's `beacon_remain` reports them (0xffff: on).
    pub fn remain(self) -> u16 {
        match self.now() {
            Beacon::Off => 0,
            Beacon::On => BEACON_FOREVER,
            Beacon::Until(t) => {
                let left = t.saturating_duration_since(Instant::now());
                left.as_secs()
                    .saturating_add(u64::from(left.subsec_nanos() > 0)) as u16
            }
        }
    }

    pub fn from_duration(secs: u16) -> Beacon {
        match secs {
            0 => Beacon::Off,
            BEACON_FOREVER => Beacon::On,
            s => Beacon::Until(Instant::now() + Duration::from_secs(u64::from(s))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PhysPort {
    /// PAOS admin_status: true = up (1), false = down (2).
    pub admin_up: bool,
    /// The far end is there (the control socket's `link up|down`, the
    /// peer's cable).
    pub far_end_up: bool,
    pub max_mtu: u16,
    /// PMTU admin (= operational) MTU: the largest frame the MAC takes,
    /// Ethernet header, VLAN tag and FCS included.
    pub admin_mtu: u16,
    pub eth_proto_cap: u32,
    pub ext_eth_proto_cap: u32,
    pub eth_proto_admin: u32,
    pub ext_eth_proto_admin: u32,
    pub lanes: u8,
    /// PAOS ee/e: event generation requested by the driver.
    pub event_enable: u8,
    /// PFCC: pause and priority flow control.
    pub flow_control: crate::cmd::reg::pfcc::FlowControl,
    pub cage: Cage,
    pub module: Option<Plugged>,
    /// PMAOS admin_status: the module enabled (1) or disabled (2, 3).
    pub module_enabled: bool,
    /// PMAOS e: 0 no module events, 1 events, 2 the next one only.
    pub module_events: u8,
    pub beacon: Beacon,
    /// The last `beacon_duration` written (MLCR reads it back while on).
    pub beacon_duration: u16,
}

/// Local port number of the function's port.
pub const LOCAL_PORT: u8 = 1;
/// Module number of the port's cage (PMLP lane 0's module).
pub const MODULE: u8 = 0;
/// Smallest MTU the port accepts.
pub const MIN_MTU: u16 = 68;

/// What the link looks like: operational state and the running protocol
/// (legacy, extended); a port-change event is due when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkView {
    pub up: bool,
    pub legacy: u32,
    pub ext: u32,
}

impl PhysPort {
    pub fn new(p: Personality) -> PhysPort {
        PhysPort::with_module(p, Some(ModuleKind::default_for(p)))
    }

    pub fn with_module(p: Personality, module: Option<ModuleKind>) -> PhysPort {
        let c = p.caps();
        PhysPort {
            admin_up: true,
            far_end_up: true,
            max_mtu: c.max_mtu,
            // Until a driver programs PMTU the MAC takes the largest frame
            // the port can (drivers set it at open: Linux, cxos).
            admin_mtu: c.max_mtu,
            eth_proto_cap: c.eth_proto_cap,
            ext_eth_proto_cap: c.ext_eth_proto_cap,
            eth_proto_admin: c.eth_proto_cap,
            ext_eth_proto_admin: c.ext_eth_proto_cap,
            lanes: c.lanes,
            event_enable: 0,
            flow_control: Default::default(),
            cage: Cage::of(p),
            module: module.map(Plugged::of),
            module_enabled: true,
            module_events: 1,
            beacon: Beacon::Off,
            beacon_duration: 0,
        }
    }

    /// The PTYS capability (legacy, extended).
    pub fn caps(&self) -> (u32, u32) {
        (self.eth_proto_cap, self.ext_eth_proto_cap)
    }

    /// PMAOS oper_status of the cage.
    pub fn module_oper(&self) -> u8 {
        match &self.module {
            None => oper::UNPLUGGED,
            Some(m) if m.error.is_some() => oper::PLUGGED_ERROR,
            Some(_) if !self.module_enabled => oper::PLUGGED_DISABLED,
            Some(_) => oper::PLUGGED_ENABLED,
        }
    }

    /// The protocol the link would run at (legacy, extended; one of them
    /// set), whatever the state: the fastest the module, the capability
    /// and the admin set share. The extended family is used when the part
    /// has it and the admin set names extended protocols.
    pub fn protocol(&self) -> (u32, u32) {
        let Some(m) = &self.module else {
            return (0, 0);
        };
        let (ml, mx) = m.protocols;
        if self.ext_eth_proto_cap != 0 && self.ext_eth_proto_admin != 0 {
            (
                0,
                fastest(true, self.ext_eth_proto_admin & self.ext_eth_proto_cap & mx),
            )
        } else {
            (
                fastest(false, self.eth_proto_admin & self.eth_proto_cap & ml),
                0,
            )
        }
    }

    /// Operational state: up when administratively up, the module works,
    /// the far end is there and a protocol is shared.
    pub fn oper_up(&self) -> bool {
        let (l, x) = self.protocol();
        self.admin_up
            && self.far_end_up
            && self.module_oper() == oper::PLUGGED_ENABLED
            && (l | x) != 0
    }

    pub fn view(&self) -> LinkView {
        let up = self.oper_up();
        let (legacy, ext) = if up { self.protocol() } else { (0, 0) };
        LinkView { up, legacy, ext }
    }

    pub fn eth_proto_oper(&self) -> u32 {
        self.view().legacy
    }

    pub fn ext_eth_proto_oper(&self) -> u32 {
        self.view().ext
    }

    /// Link speed in Mb/s (0 when down).
    pub fn speed_mbps(&self) -> u32 {
        let v = self.view();
        let bit = |m: u32| 31 - m.leading_zeros();
        if v.ext != 0 {
            crate::personality::proto_speed(true, bit(v.ext))
        } else if v.legacy != 0 {
            crate::personality::proto_speed(false, bit(v.legacy))
        } else {
            0
        }
    }

    /// Whether a cable is there for the wire's other end to see (a module
    /// plugged and not in error).
    pub fn cable_present(&self) -> bool {
        matches!(&self.module, Some(m) if m.error.is_none())
    }
}
