//! The physical port of the function: administrative and operational state,
//! protocols (speed) and MTU. PAOS/PTYS/PMTU/PMLP read and write it; link
//! changes raise port-change EQEs (type 0x09, sub_type 1 down / 4 active).
#![deny(unsafe_code)]

use crate::personality::Personality;

#[derive(Debug, Clone)]
pub struct PhysPort {
    /// PAOS admin_status: true = up (1), false = down (2).
    pub admin_up: bool,
    /// Something is plugged in and the far end is up (the test's `set_link`).
    pub carrier: bool,
    pub max_mtu: u16,
    pub admin_mtu: u16,
    pub eth_proto_cap: u32,
    pub ext_eth_proto_cap: u32,
    pub eth_proto_admin: u32,
    pub ext_eth_proto_admin: u32,
    /// Protocol the link runs at when up.
    pub eth_proto_run: u32,
    pub ext_eth_proto_run: u32,
    pub lanes: u8,
    /// PAOS ee/e: event generation requested by the driver.
    pub event_enable: u8,
    /// PFCC: pause and priority flow control.
    pub flow_control: crate::cmd::reg::pfcc::FlowControl,
}

/// Local port number of the function's port.
pub const LOCAL_PORT: u8 = 1;
/// Smallest MTU the port accepts.
pub const MIN_MTU: u16 = 68;

impl PhysPort {
    pub fn new(p: Personality) -> PhysPort {
        let c = p.caps();
        PhysPort {
            admin_up: true,
            carrier: true,
            max_mtu: c.max_mtu,
            admin_mtu: 1500,
            eth_proto_cap: c.eth_proto_cap,
            ext_eth_proto_cap: c.ext_eth_proto_cap,
            eth_proto_admin: c.eth_proto_cap,
            ext_eth_proto_admin: c.ext_eth_proto_cap,
            eth_proto_run: c.eth_proto_oper,
            ext_eth_proto_run: c.ext_eth_proto_oper,
            lanes: c.lanes,
            event_enable: 0,
            flow_control: Default::default(),
        }
    }

    /// Operational state: up when administratively up and the carrier is there.
    pub fn oper_up(&self) -> bool {
        self.admin_up && self.carrier
    }

    pub fn eth_proto_oper(&self) -> u32 {
        if self.oper_up() {
            self.eth_proto_run
        } else {
            0
        }
    }

    pub fn ext_eth_proto_oper(&self) -> u32 {
        if self.oper_up() {
            self.ext_eth_proto_run
        } else {
            0
        }
    }
}
