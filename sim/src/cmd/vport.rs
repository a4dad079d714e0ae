//! The function's NIC vport: QUERY_VPORT_STATE, QUERY/MODIFY_NIC_VPORT_CONTEXT
//! (`query_vport_state_in/out`, `query_nic_vport_context_in/out`,
//! `modify_nic_vport_context_in`, `modify_nic_vport_field_select`,
//! `nic_vport_context`, `mac_address_layout` in mlx5_ifc.h).
#![deny(unsafe_code)]

use super::reserved;
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::personality::Personality;
use crate::syndrome::{self as syn, CmdError};

/// `nic_vport_context` fields (bit offsets inside the context).
pub mod ctx {
    use crate::bits::{F, f};
    pub const MIN_WQE_INLINE_MODE: F = f(0x5, 3);
    pub const DISABLE_MC_LOCAL_LB: F = f(0x1d, 1);
    pub const DISABLE_UC_LOCAL_LB: F = f(0x1e, 1);
    pub const ARM_CHANGE_EVENT: F = f(0x20, 1);
    pub const MTU: F = f(0x130, 0x10);
    pub const SYSTEM_IMAGE_GUID: F = f(0x140, 0x40);
    pub const PORT_GUID: F = f(0x180, 0x40);
    pub const NODE_GUID: F = f(0x1c0, 0x40);
    pub const PROMISC_UC: F = f(0x780, 1);
    pub const PROMISC_MC: F = f(0x781, 1);
    pub const PROMISC_ALL: F = f(0x782, 1);
    pub const ALLOWED_LIST_TYPE: F = f(0x785, 3);
    pub const ALLOWED_LIST_SIZE: F = f(0x794, 0xc);
    /// permanent_address (`mac_address_layout`) at bit 0x7a0: MAC bits
    /// 47:32 at byte 0xf6, 31:0 at byte 0xf8.
    pub const PERMANENT_MAC_HI: F = f(0x7b0, 0x10);
    pub const PERMANENT_MAC_LO: F = f(0x7c0, 0x20);
    /// current_uc_mac_address[] starts at byte 0x100 of the context.
    pub const LIST: usize = 0x100;
}

/// `modify_nic_vport_field_select` bits (at bit 0x60 of the input).
pub mod select {
    use crate::bits::{F, f};
    pub const AFFILIATION: F = f(0x72, 1);
    pub const DISABLE_UC_LOCAL_LB: F = f(0x74, 1);
    pub const DISABLE_MC_LOCAL_LB: F = f(0x75, 1);
    pub const NODE_GUID: F = f(0x76, 1);
    pub const PORT_GUID: F = f(0x77, 1);
    pub const MIN_INLINE: F = f(0x78, 1);
    pub const MTU: F = f(0x79, 1);
    pub const CHANGE_EVENT: F = f(0x7a, 1);
    pub const PROMISC: F = f(0x7b, 1);
    pub const PERMANENT_ADDRESS: F = f(0x7c, 1);
    pub const ADDRESSES_LIST: F = f(0x7d, 1);
    pub const ROCE_EN: F = f(0x7e, 1);
}

/// Context byte offset in the query output and in the modify input.
const QUERY_CTX: usize = 0x10;
const MODIFY_CTX: usize = 0x100;
pub const QUERY_OUT: usize = QUERY_CTX + ctx::LIST;
pub const MODIFY_IN: usize = MODIFY_CTX + ctx::LIST;

/// Allowed list types.
pub mod list_type {
    pub const UC: u8 = 0;
    pub const MC: u8 = 1;
    pub const VLAN: u8 = 2;
}

#[derive(Debug, Clone)]
pub struct Vport {
    pub mac: [u8; 6],
    pub mtu: u16,
    pub min_inline: u8,
    pub promisc_uc: bool,
    pub promisc_mc: bool,
    pub promisc_all: bool,
    pub disable_uc_local_lb: bool,
    pub disable_mc_local_lb: bool,
    pub arm_change_event: bool,
    pub uc: Vec<[u8; 6]>,
    pub mc: Vec<[u8; 6]>,
    pub vlans: Vec<u16>,
    /// What QUERY_VPORT_COUNTER reports.
    pub counters: VportCounters,
}

/// `traffic_counter`: packets and octets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub packets: u64,
    pub octets: u64,
}

impl Traffic {
    fn count(&mut self, len: usize) {
        self.packets += 1;
        self.octets += len as u64;
    }
}

/// The vport's traffic by destination class (`vport_counter` layout of
/// `query_vport_counter_out`): frames the vport sent (whether or not the
/// link carried them) and frames it accepted from the port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VportCounters {
    pub rx_unicast: Traffic,
    pub rx_multicast: Traffic,
    pub rx_broadcast: Traffic,
    pub tx_unicast: Traffic,
    pub tx_multicast: Traffic,
    pub tx_broadcast: Traffic,
}

impl VportCounters {
    pub fn count_rx(&mut self, frame: &[u8]) {
        match crate::wire::dest_class(frame) {
            (_, true) => self.rx_broadcast.count(frame.len()),
            (true, _) => self.rx_multicast.count(frame.len()),
            _ => self.rx_unicast.count(frame.len()),
        }
    }

    pub fn count_tx(&mut self, frame: &[u8]) {
        match crate::wire::dest_class(frame) {
            (_, true) => self.tx_broadcast.count(frame.len()),
            (true, _) => self.tx_multicast.count(frame.len()),
            _ => self.tx_unicast.count(frame.len()),
        }
    }
}

/// The default permanent MAC of a part: Mellanox OUI 0c:42:a1, one
/// address per part (tests that need several adapters of one part choose
/// their own with `SimPlatform::with_config`).
pub fn default_mac(p: Personality) -> [u8; 6] {
    let idx = Personality::ALL.iter().position(|q| *q == p).unwrap_or(0) as u8;
    [0x0c, 0x42, 0xa1, 0x5e, 0x00, 0x10 + idx]
}

impl Vport {
    pub fn new(p: Personality, mac: [u8; 6]) -> Vport {
        Vport {
            mac,
            mtu: 1500 + 22,
            min_inline: p.caps().vport_min_inline,
            promisc_uc: false,
            promisc_mc: false,
            promisc_all: false,
            disable_uc_local_lb: false,
            disable_mc_local_lb: false,
            arm_change_event: false,
            uc: Vec::new(),
            mc: Vec::new(),
            vlans: Vec::new(),
            counters: VportCounters::default(),
        }
    }
}

fn own_vport(inp: &[u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x41, 0xf)])?;
    if get(inp, f(0x40, 1)) != 0 || get(inp, f(0x50, 0x10)) != 0 {
        return Err(syn::BAD_FUNCTION);
    }
    Ok(())
}

/// QUERY_VPORT_STATE: admin_state at out bit 0x78, state at 0x7c
/// (0 down, 1 up; admin 2 = follow the uplink).
pub fn query_state(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    // op_mod: 0 vNIC vport, 1 e-switch vport, 2 uplink: one and the same port here.
    if crate::bits::be16(inp, 6) > 2 {
        return Err(syn::BAD_OP_MOD);
    }
    own_vport(inp)?;
    reserved(inp, &[f(0x60, 0x20)])?;
    set(out, f(0x78, 4), 2);
    set(out, f(0x7c, 4), dev.phys_port.oper_up() as u64);
    Ok(())
}

/// QUERY_VPORT_COUNTER (`query_vport_counter_in`: other_vport bit 0x40,
/// port_num 0x4c, vport_number 0x50, clear 0xc0; out: `vport_counter` at
/// byte 0x10, one `traffic_counter` {packets, octets} per class:
/// received_errors 0x10, transmit_errors 0x20, received_eth_broadcast
/// 0x70, transmitted_eth_broadcast 0x80, received_eth_unicast 0x90,
/// transmitted_eth_unicast 0xa0, received_eth_multicast 0xb0,
/// transmitted_eth_multicast 0xc0). The InfiniBand classes read 0.
pub fn query_counter(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x41, 0xb), f(0x60, 0x60), f(0xc1, 0x3f)])?;
    if get(inp, f(0x40, 1)) != 0 || get(inp, f(0x50, 0x10)) != 0 || get(inp, f(0x4c, 4)) > 1 {
        return Err(syn::BAD_FUNCTION);
    }
    let c = dev.vport.counters;
    for (at, t) in [
        (0x70, c.rx_broadcast),
        (0x80, c.tx_broadcast),
        (0x90, c.rx_unicast),
        (0xa0, c.tx_unicast),
        (0xb0, c.rx_multicast),
        (0xc0, c.tx_multicast),
    ] {
        crate::bits::put_be64(out, at, t.packets);
        crate::bits::put_be64(out, at + 8, t.octets);
    }
    if get(inp, f(0xc0, 1)) != 0 {
        dev.vport.counters = VportCounters::default();
    }
    Ok(())
}

fn mac_entry(buf: &mut [u8], at: usize, mac: &[u8; 6]) {
    // mac_address_layout: 2 reserved bytes, then the 6 address bytes.
    for (i, b) in mac.iter().enumerate() {
        if let Some(s) = buf.get_mut(at + 2 + i) {
            *s = *b;
        }
    }
}

/// QUERY_NIC_VPORT_CONTEXT (`query_nic_vport_context_in`: allowed_list_type
/// at bit 0x65). List entries are written as far as the output has room;
/// allowed_list_size always tells the full count.
pub fn query_context(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    own_vport(inp)?;
    reserved(inp, &[f(0x60, 5), f(0x68, 0x18)])?;
    let lt = get(inp, f(0x65, 3)) as u8;
    let v = &dev.vport;
    let c = |fld: F| fld.at(QUERY_CTX);
    set(out, c(ctx::MIN_WQE_INLINE_MODE), v.min_inline as u64);
    set(
        out,
        c(ctx::DISABLE_MC_LOCAL_LB),
        v.disable_mc_local_lb as u64,
    );
    set(
        out,
        c(ctx::DISABLE_UC_LOCAL_LB),
        v.disable_uc_local_lb as u64,
    );
    set(out, c(ctx::ARM_CHANGE_EVENT), v.arm_change_event as u64);
    set(out, c(ctx::MTU), v.mtu as u64);
    // One board: every port reports its GUIDs (node = the board's).
    let id = &dev.identity;
    set(out, c(ctx::SYSTEM_IMAGE_GUID), id.system_image_guid);
    set(out, c(ctx::NODE_GUID), id.system_image_guid);
    set(out, c(ctx::PORT_GUID), id.port_guid());
    set(out, c(ctx::PROMISC_UC), v.promisc_uc as u64);
    set(out, c(ctx::PROMISC_MC), v.promisc_mc as u64);
    set(out, c(ctx::PROMISC_ALL), v.promisc_all as u64);
    set(out, c(ctx::ALLOWED_LIST_TYPE), lt as u64);
    let m = v.mac;
    set(
        out,
        c(ctx::PERMANENT_MAC_HI),
        u16::from_be_bytes([m[0], m[1]]) as u64,
    );
    set(
        out,
        c(ctx::PERMANENT_MAC_LO),
        u32::from_be_bytes([m[2], m[3], m[4], m[5]]) as u64,
    );
    let base = QUERY_CTX + ctx::LIST;
    let count = match lt {
        list_type::UC | list_type::MC => {
            let list = if lt == list_type::UC { &v.uc } else { &v.mc };
            for (i, mac) in list.iter().enumerate() {
                mac_entry(out, base + 8 * i, mac);
            }
            list.len()
        }
        list_type::VLAN => {
            // vlan_layout: vlan id in bits 0x14..0x20.
            for (i, vid) in v.vlans.iter().enumerate() {
                set(out, f(0x14, 0xc).at(base + 8 * i), *vid as u64);
            }
            v.vlans.len()
        }
        _ => return Err(syn::VPORT_LIST),
    };
    set(out, c(ctx::ALLOWED_LIST_SIZE), count as u64);
    Ok(())
}

/// MODIFY_NIC_VPORT_CONTEXT.
pub fn modify_context(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    own_vport(inp)?;
    reserved(
        inp,
        &[f(0x60, 0x12), f(0x73, 1), f(0x7f, 1), f(0x80, 0x780)],
    )?;
    for unsupported in [
        select::AFFILIATION,
        select::NODE_GUID,
        select::PORT_GUID,
        select::ROCE_EN,
    ] {
        if get(inp, unsupported) != 0 {
            return Err(syn::VPORT_FIELD);
        }
    }
    let c = |fld: F| fld.at(MODIFY_CTX);
    // Validate everything before changing anything.
    let mtu = get(inp, c(ctx::MTU)) as u16;
    if get(inp, select::MTU) != 0
        && !(crate::phys_port::MIN_MTU..=dev.phys_port.max_mtu).contains(&mtu)
    {
        return Err(syn::VPORT_MTU);
    }
    if get(inp, select::MIN_INLINE) != 0 && get(inp, c(ctx::MIN_WQE_INLINE_MODE)) > 4 {
        return Err(syn::VPORT_FIELD);
    }
    let list = if get(inp, select::ADDRESSES_LIST) != 0 {
        let lt = get(inp, c(ctx::ALLOWED_LIST_TYPE)) as u8;
        let size = get(inp, c(ctx::ALLOWED_LIST_SIZE)) as usize;
        let log_max = match lt {
            list_type::UC => super::caps::hca_cap::LOG_MAX_CURRENT_UC_LIST,
            list_type::MC => super::caps::hca_cap::LOG_MAX_CURRENT_MC_LIST,
            list_type::VLAN => super::caps::hca_cap::LOG_MAX_VLAN_LIST,
            _ => return Err(syn::VPORT_LIST),
        };
        if size > 1usize << dev.caps.general(log_max) {
            return Err(syn::VPORT_LIST);
        }
        if inp.len() < MODIFY_IN + 8 * size {
            return Err(syn::CMD_LENGTHS);
        }
        Some((lt, size))
    } else {
        None
    };
    let v = &mut dev.vport;
    if get(inp, select::MTU) != 0 {
        v.mtu = mtu;
    }
    if get(inp, select::MIN_INLINE) != 0 {
        v.min_inline = get(inp, c(ctx::MIN_WQE_INLINE_MODE)) as u8;
    }
    if get(inp, select::PROMISC) != 0 {
        v.promisc_uc = get(inp, c(ctx::PROMISC_UC)) != 0;
        v.promisc_mc = get(inp, c(ctx::PROMISC_MC)) != 0;
        v.promisc_all = get(inp, c(ctx::PROMISC_ALL)) != 0;
    }
    if get(inp, select::DISABLE_UC_LOCAL_LB) != 0 {
        v.disable_uc_local_lb = get(inp, c(ctx::DISABLE_UC_LOCAL_LB)) != 0;
    }
    if get(inp, select::DISABLE_MC_LOCAL_LB) != 0 {
        v.disable_mc_local_lb = get(inp, c(ctx::DISABLE_MC_LOCAL_LB)) != 0;
    }
    if get(inp, select::CHANGE_EVENT) != 0 {
        v.arm_change_event = get(inp, c(ctx::ARM_CHANGE_EVENT)) != 0;
    }
    if get(inp, select::PERMANENT_ADDRESS) != 0 {
        let hi = (get(inp, c(ctx::PERMANENT_MAC_HI)) as u16).to_be_bytes();
        let lo = (get(inp, c(ctx::PERMANENT_MAC_LO)) as u32).to_be_bytes();
        v.mac = [hi[0], hi[1], lo[0], lo[1], lo[2], lo[3]];
    }
    if let Some((lt, size)) = list {
        let base = MODIFY_IN;
        match lt {
            list_type::VLAN => {
                v.vlans = (0..size)
                    .map(|i| get(inp, f(0x14, 0xc).at(base + 8 * i)) as u16)
                    .collect();
            }
            _ => {
                let macs: Vec<[u8; 6]> = (0..size)
                    .map(|i| {
                        let at = base + 8 * i + 2;
                        let mut m = [0u8; 6];
                        m.copy_from_slice(&inp[at..at + 6]);
                        m
                    })
                    .collect();
                if lt == list_type::UC {
                    v.uc = macs;
                } else {
                    v.mc = macs;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::footprint;

    /// `nic_vport_context` and `modify_nic_vport_field_select`, by hand.
    #[test]
    fn vport_fields_land_where_ifc_puts_them() {
        let golden: &[(F, &[(usize, u8)])] = &[
            (ctx::MIN_WQE_INLINE_MODE, &[(0x00, 0x07)]),
            (ctx::MTU, &[(0x26, 0xff), (0x27, 0xff)]),
            (ctx::PROMISC_UC, &[(0xf0, 0x80)]),
            (ctx::PROMISC_ALL, &[(0xf0, 0x20)]),
            (ctx::ALLOWED_LIST_TYPE, &[(0xf0, 0x07)]),
            (ctx::ALLOWED_LIST_SIZE, &[(0xf2, 0x0f), (0xf3, 0xff)]),
            (ctx::PERMANENT_MAC_HI, &[(0xf6, 0xff), (0xf7, 0xff)]),
            (select::MTU, &[(0x0f, 0x40)]),
            (select::PROMISC, &[(0x0f, 0x10)]),
            (select::ADDRESSES_LIST, &[(0x0f, 0x04)]),
        ];
        for (fld, want) in golden {
            assert_eq!(footprint(*fld), want.to_vec(), "{fld:?}");
        }
        assert_eq!(ctx::PERMANENT_MAC_LO.byte(), 0xf8);
    }
}
