//! The physical port's registers: PAOS (0x5006, `paos_reg`: admin and
//! operational state, event generation), PTYS (0x5004, `ptys_reg`:
//! protocols), PMTU (0x5003, `pmtu_reg`) and PMLP (0x5002, `pmlp_reg`:
//! lanes). Port-change events when the operational state or the speed
//! changes ([`link_update`]).
#![deny(unsafe_code)]

use super::reg_id;
use crate::bits::{f, get, set};
use crate::function::Function;
use crate::phys_port::{LOCAL_PORT, LinkView, MIN_MTU, MODULE};
use crate::syndrome::{self as syn, CmdError};

/// `paos_reg` (16 bytes).
pub mod paos {
    use crate::bits::{F, f};
    pub const SIZE: usize = 0x10;
    pub const ADMIN_STATUS: F = f(0x14, 4);
    pub const OPER_STATUS: F = f(0x1c, 4);
    pub const ASE: F = f(0x20, 1);
    pub const EE: F = f(0x21, 1);
    pub const E: F = f(0x3e, 2);
    pub const UP: u64 = 1;
    pub const DOWN: u64 = 2;
}

/// `ptys_reg` (64 bytes).
pub mod ptys {
    use crate::bits::{F, f};
    pub const SIZE: usize = 0x40;
    pub const PROTO_MASK: F = f(0x1d, 3);
    pub const AN_STATUS: F = f(0x20, 4);
    pub const EXT_ETH_PROTO_CAPABILITY: F = f(0x40, 0x20);
    pub const ETH_PROTO_CAPABILITY: F = f(0x60, 0x20);
    pub const EXT_ETH_PROTO_ADMIN: F = f(0xa0, 0x20);
    pub const ETH_PROTO_ADMIN: F = f(0xc0, 0x20);
    pub const EXT_ETH_PROTO_OPER: F = f(0x100, 0x20);
    pub const ETH_PROTO_OPER: F = f(0x120, 0x20);
    pub const CONNECTOR_TYPE: F = f(0x17c, 4);
    /// `MLX5_PTYS_EN`.
    pub const EN: u64 = 1 << 2;
    /// `MLX5E_PORT_NONE`: no module.
    pub const CONNECTOR_NONE: u64 = 1;
    /// `MLX5_AN_COMPLETE`.
    pub const AN_COMPLETE: u64 = 1;
}

/// `pmtu_reg` (16 bytes).
pub mod pmtu {
    use crate::bits::{F, f};
    pub const SIZE: usize = 0x10;
    pub const MAX_MTU: F = f(0x20, 0x10);
    pub const ADMIN_MTU: F = f(0x40, 0x10);
    pub const OPER_MTU: F = f(0x60, 0x10);
}

/// `pmlp_reg` (64 bytes): width at bit 0x18, lane i mapping at byte 4 + 4i
/// (module in bits 7:0, tx lane 11:8, rx lane 19:16: the model's mapping).
pub mod pmlp {
    use crate::bits::{F, f};
    pub const SIZE: usize = 0x40;
    pub const WIDTH: F = f(0x18, 8);
}

/// `register_host_endianness` (16 bytes): he at bit 0, the byte order of
/// atomic responses (RDMA only; kept, no effect on Ethernet).
pub mod host_endianness {
    use crate::bits::{F, f};
    pub const SIZE: usize = 0x10;
    pub const HE: F = f(0x0, 1);
}

/// `dtor_reg` (64 bytes): the firmware's default timeouts, each a
/// `default_timeout` (to_multiplier [31:29]: 0 ms, 1 s, 2 min, 3 h;
/// to_value [19:0]). Read-only.
pub mod dtor {
    use crate::bits::{F, f};
    pub const SIZE: usize = 0x40;
    /// (field bit offset, multiplier, value) of every timeout the model
    /// reports: PCIe toggle 2 s, health poll 2 s, full crdump 60 s, fw reset
    /// 60 s, flush on error 2 s, PCI sync update 5 s, teardown 3 s, FSM
    /// reactivate 5 s, reclaim pages 5 s, reclaim VF pages 120 s, reset
    /// unload 300 s.
    pub const TIMEOUTS: &[(usize, u64, u64)] = &[
        (0x20, 1, 2),
        (0xa0, 1, 2),
        (0xc0, 1, 60),
        (0xe0, 1, 60),
        (0x100, 1, 2),
        (0x120, 1, 5),
        (0x140, 1, 3),
        (0x160, 1, 5),
        (0x180, 1, 5),
        (0x1a0, 1, 120),
        (0x1c0, 1, 300),
    ];
    pub const fn multiplier(at: usize) -> F {
        f(at, 3)
    }
    pub const fn value(at: usize) -> F {
        f(at + 0xc, 0x14)
    }
}

/// Read or write one port register; `o` is the register's output data
/// (local_port already set).
pub fn access(
    dev: &mut Function,
    id: u16,
    write: bool,
    data: &[u8],
    o: &mut [u8],
) -> Result<(), CmdError> {
    if write {
        match id {
            reg_id::PAOS => write_paos(dev, data)?,
            reg_id::PTYS => write_ptys(dev, data)?,
            reg_id::PMTU => write_pmtu(dev, data)?,
            _ => return Err(syn::REG_VALUE),
        }
    }
    let p = &dev.phys_port;
    match id {
        reg_id::PAOS => {
            set(
                o,
                paos::ADMIN_STATUS,
                if p.admin_up { paos::UP } else { paos::DOWN },
            );
            set(
                o,
                paos::OPER_STATUS,
                if p.oper_up() { paos::UP } else { paos::DOWN },
            );
            set(o, paos::E, p.event_enable as u64);
        }
        reg_id::PTYS => {
            if get(data, ptys::PROTO_MASK) & ptys::EN == 0 {
                return Err(syn::REG_VALUE);
            }
            set(o, ptys::PROTO_MASK, ptys::EN);
            set(
                o,
                ptys::EXT_ETH_PROTO_CAPABILITY,
                p.ext_eth_proto_cap as u64,
            );
            set(o, ptys::ETH_PROTO_CAPABILITY, p.eth_proto_cap as u64);
            set(o, ptys::EXT_ETH_PROTO_ADMIN, p.ext_eth_proto_admin as u64);
            set(o, ptys::ETH_PROTO_ADMIN, p.eth_proto_admin as u64);
            let v = p.view();
            set(o, ptys::EXT_ETH_PROTO_OPER, v.ext as u64);
            set(o, ptys::ETH_PROTO_OPER, v.legacy as u64);
            if v.up {
                set(o, ptys::AN_STATUS, ptys::AN_COMPLETE);
            }
            let connector = p
                .module
                .as_ref()
                .map_or(ptys::CONNECTOR_NONE, |m| m.connector_type as u64);
            set(o, ptys::CONNECTOR_TYPE, connector);
        }
        reg_id::PMTU => {
            set(o, pmtu::MAX_MTU, p.max_mtu as u64);
            set(o, pmtu::ADMIN_MTU, p.admin_mtu as u64);
            set(o, pmtu::OPER_MTU, p.admin_mtu as u64);
        }
        _ => {
            set(o, pmlp::WIDTH, p.lanes as u64);
            for lane in 0..p.lanes as usize {
                let map = ((lane as u64) << 16) | ((lane as u64) << 8) | MODULE as u64;
                set(o, f(0x20 * (lane + 1), 0x20), map);
            }
        }
    }
    Ok(())
}

fn write_paos(dev: &mut Function, data: &[u8]) -> Result<(), CmdError> {
    if get(data, paos::EE) != 0 {
        let e = get(data, paos::E);
        if e > 2 {
            return Err(syn::REG_VALUE);
        }
        dev.phys_port.event_enable = e as u8;
    }
    if get(data, paos::ASE) != 0 {
        let admin = get(data, paos::ADMIN_STATUS);
        if admin != paos::UP && admin != paos::DOWN {
            return Err(syn::REG_VALUE);
        }
        let before = dev.phys_port.view();
        dev.phys_port.admin_up = admin == paos::UP;
        link_update(dev, before);
    }
    Ok(())
}

fn write_ptys(dev: &mut Function, data: &[u8]) -> Result<(), CmdError> {
    if get(data, ptys::PROTO_MASK) & ptys::EN == 0 {
        return Err(syn::REG_VALUE);
    }
    let admin = get(data, ptys::ETH_PROTO_ADMIN) as u32;
    let ext_admin = get(data, ptys::EXT_ETH_PROTO_ADMIN) as u32;
    let p = &dev.phys_port;
    if admin & !p.eth_proto_cap != 0
        || ext_admin & !p.ext_eth_proto_cap != 0
        || (admin == 0 && ext_admin == 0)
    {
        return Err(syn::REG_VALUE);
    }
    let before = p.view();
    let p = &mut dev.phys_port;
    p.eth_proto_admin = admin;
    p.ext_eth_proto_admin = ext_admin;
    // The link retrains at the fastest protocol the admin set, the
    // capability and the module share (none: it stays down).
    link_update(dev, before);
    Ok(())
}

fn write_pmtu(dev: &mut Function, data: &[u8]) -> Result<(), CmdError> {
    let mtu = get(data, pmtu::ADMIN_MTU) as u16;
    if !(MIN_MTU..=dev.phys_port.max_mtu).contains(&mtu) {
        return Err(syn::PMTU_VALUE);
    }
    dev.phys_port.admin_mtu = mtu;
    Ok(())
}

/// Raise the port-change EQEs (`struct mlx5_eqe_port_state`: port number
/// in bits 7:4 of data byte 8) that take the link from `before` to what it
/// is now: down (sub_type 1) when it went down or retrained at another
/// speed, active (4) when it came up or retrained.
pub fn link_update(dev: &mut Function, before: LinkView) {
    let now = dev.phys_port.view();
    if now == before {
        return;
    }
    let mut data = [0u8; 28];
    data[8] = LOCAL_PORT << 4;
    if before.up {
        dev.nic.wire.stats.link_down_events += 1;
        crate::cmd::eq::raise_event(
            dev,
            crate::cmd::eq::event::PORT_CHANGE,
            crate::cmd::eq::port_sub::DOWN,
            &data,
        );
    }
    if now.up {
        crate::cmd::eq::raise_event(
            dev,
            crate::cmd::eq::event::PORT_CHANGE,
            crate::cmd::eq::port_sub::ACTIVE,
            &data,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{F, footprint};

    /// `paos_reg`, `ptys_reg`, `pmtu_reg`, `pmlp_reg`, by hand.
    #[test]
    fn register_fields_land_where_ifc_puts_them() {
        let golden: &[(F, &[(usize, u8)])] = &[
            (super::super::LOCAL_PORT_F, &[(0x01, 0xff)]),
            (paos::ADMIN_STATUS, &[(0x02, 0x0f)]),
            (paos::OPER_STATUS, &[(0x03, 0x0f)]),
            (paos::ASE, &[(0x04, 0x80)]),
            (paos::EE, &[(0x04, 0x40)]),
            (paos::E, &[(0x07, 0x03)]),
            (ptys::PROTO_MASK, &[(0x03, 0x07)]),
            (ptys::AN_STATUS, &[(0x04, 0xf0)]),
            (ptys::CONNECTOR_TYPE, &[(0x2f, 0x0f)]),
            (pmtu::MAX_MTU, &[(0x04, 0xff), (0x05, 0xff)]),
            (pmtu::ADMIN_MTU, &[(0x08, 0xff), (0x09, 0xff)]),
            (pmtu::OPER_MTU, &[(0x0c, 0xff), (0x0d, 0xff)]),
            (pmlp::WIDTH, &[(0x03, 0xff)]),
        ];
        for (fld, want) in golden {
            assert_eq!(footprint(*fld), want.to_vec(), "{fld:?}");
        }
        // 32-bit protocol masks: capability @0x0c (ext @0x08), admin @0x18
        // (ext @0x14), oper @0x24 (ext @0x20).
        for (fld, byte) in [
            (ptys::EXT_ETH_PROTO_CAPABILITY, 0x08),
            (ptys::ETH_PROTO_CAPABILITY, 0x0c),
            (ptys::EXT_ETH_PROTO_ADMIN, 0x14),
            (ptys::ETH_PROTO_ADMIN, 0x18),
            (ptys::EXT_ETH_PROTO_OPER, 0x20),
            (ptys::ETH_PROTO_OPER, 0x24),
        ] {
            assert_eq!(fld.byte(), byte);
            assert_eq!(fld.width, 32);
        }
    }
}
