//! The module (transceiver cage) registers: PMAOS (0x5012, `pmaos_reg`:
//! module admin/oper status and event generation) and MCIA (0x9014,
//! `mcia_reg`: a read of the module's EEPROM over its 2-wire bus). Both
//! name the cage by `module` (bits 0x08..0x10), which PMLP maps lane 0 of
//! the port to ([`MODULE`]).
//!
//! MCIA reads up to [`MCIA_MAX_BYTES`] (12 dwords, what firmware without
//! MCAM `mcia_32dwords` takes) from `device_address` of `page_number` at
//! `i2c_device_address` 0x50/0x51; a read that cannot be served completes
//! the command and reports why in `status` (PRM "MCIA" status values,
//! [`crate::module::mcia_status`]). Writes (`l`, op_mod write) are refused.
#![deny(unsafe_code)]

use crate::bits::{F, get, set};
use crate::function::Function;
use crate::module::{Plugged, error_name, mcia_status, oper};
use crate::phys_port::MODULE;
use crate::syndrome::{self as syn, CmdError};

/// `pmaos_reg` (16 bytes).
pub mod pmaos {
    use crate::bits::{F, f};
    pub const SIZE: usize = 0x10;
    pub const MODULE: F = f(0x08, 8);
    pub const ADMIN_STATUS: F = f(0x14, 4);
    pub const OPER_STATUS: F = f(0x1c, 4);
    pub const ASE: F = f(0x20, 1);
    pub const EE: F = f(0x21, 1);
    pub const E: F = f(0x3e, 2);
    /// `admin_status`: enabled, disabled by user, disabled once.
    pub const ENABLED: u64 = 1;
    pub const DISABLED: u64 = 2;
    pub const DISABLED_ONCE: u64 = 3;
}

/// `mcia_reg` (16 bytes of header and 128 of dwords).
pub mod mcia {
    use crate::bits::{F, f};
    pub const SIZE: usize = 0x90;
    pub const L: F = f(0x00, 1);
    pub const MODULE: F = f(0x08, 8);
    pub const STATUS: F = f(0x18, 8);
    pub const I2C_DEVICE_ADDRESS: F = f(0x20, 8);
    pub const PAGE_NUMBER: F = f(0x28, 8);
    pub const DEVICE_ADDRESS: F = f(0x30, 0x10);
    pub const SIZE_F: F = f(0x50, 0x10);
    /// Bytes read land here.
    pub const DWORDS: usize = 0x10;
}

/// Largest MCIA read (bytes).
pub const MCIA_MAX_BYTES: usize = 48;

/// The module field must name the port's cage.
fn check_module(data: &[u8], field: F) -> Result<(), CmdError> {
    if get(data, field) != MODULE as u64 {
        return Err(syn::REG_PORT);
    }
    Ok(())
}

pub fn access_pmaos(
    dev: &mut Function,
    write: bool,
    data: &[u8],
    o: &mut [u8],
) -> Result<(), CmdError> {
    check_module(data, pmaos::MODULE)?;
    if write {
        if get(data, pmaos::ASE) == 1 {
            let admin = get(data, pmaos::ADMIN_STATUS);
            if !matches!(
                admin,
                pmaos::ENABLED | pmaos::DISABLED | pmaos::DISABLED_ONCE
            ) {
                return Err(syn::REG_VALUE);
            }
            let before = dev.phys_port.view();
            let was = dev.phys_port.module_oper();
            dev.phys_port.module_enabled = admin == pmaos::ENABLED;
            if dev.phys_port.module_oper() != was {
                module_event(dev);
            }
            super::port::link_update(dev, before);
        }
        if get(data, pmaos::EE) == 1 {
            let e = get(data, pmaos::E) as u8;
            if e == 3 {
                return Err(syn::REG_VALUE);
            }
            dev.phys_port.module_events = e;
        }
    }
    let p = &dev.phys_port;
    set(o, pmaos::MODULE, MODULE as u64);
    set(
        o,
        pmaos::ADMIN_STATUS,
        if p.module_enabled {
            pmaos::ENABLED
        } else {
            pmaos::DISABLED
        },
    );
    set(o, pmaos::OPER_STATUS, p.module_oper() as u64);
    set(o, pmaos::E, p.module_events as u64);
    Ok(())
}

pub fn access_mcia(
    dev: &mut Function,
    write: bool,
    data: &[u8],
    o: &mut [u8],
) -> Result<(), CmdError> {
    check_module(data, mcia::MODULE)?;
    if write || get(data, mcia::L) != 0 {
        return Err(syn::REG_VALUE);
    }
    let i2c = get(data, mcia::I2C_DEVICE_ADDRESS) as u8;
    let page = get(data, mcia::PAGE_NUMBER) as u8;
    let offset = get(data, mcia::DEVICE_ADDRESS) as usize;
    let size = get(data, mcia::SIZE_F) as usize;
    if size == 0 || size > MCIA_MAX_BYTES || offset + size > 256 {
        return Err(syn::REG_VALUE);
    }
    set(o, mcia::MODULE, MODULE as u64);
    set(o, mcia::I2C_DEVICE_ADDRESS, i2c as u64);
    set(o, mcia::PAGE_NUMBER, page as u64);
    set(o, mcia::DEVICE_ADDRESS, offset as u64);
    set(o, mcia::SIZE_F, size as u64);
    let p = &dev.phys_port;
    let status = match &p.module {
        None => Err(mcia_status::MODULE_NOT_CONNECTED),
        Some(_) if !p.module_enabled => Err(mcia_status::MODULE_DISABLED),
        // A module whose bus is stuck does not answer.
        Some(Plugged { error: Some(2), .. }) => Err(mcia_status::I2C_ERROR),
        Some(m) => m
            .eeprom
            .read(i2c, page, offset, &mut o[mcia::DWORDS..mcia::DWORDS + size]),
    };
    if let Err(s) = status {
        o[mcia::DWORDS..mcia::DWORDS + size].fill(0);
        set(o, mcia::STATUS, s as u64);
    }
    dev.module_reads += 1;
    if dev.pull_module_at_read == Some(dev.module_reads) {
        dev.pull_module_at_read = None;
        dev.remove_module();
    }
    Ok(())
}

/// Raise a PORT_MODULE EQE (`struct mlx5_eqe_port_module`: module at data
/// byte 1, module_status byte 3, error_type byte 6) with the cage's state,
/// if PMAOS `e` asks for events (2: this one only).
pub fn module_event(dev: &mut Function) {
    let p = &mut dev.phys_port;
    if p.module_events == 0 {
        return;
    }
    if p.module_events == 2 {
        p.module_events = 0;
    }
    let status = p.module_oper();
    let mut d = [0u8; 28];
    d[1] = MODULE;
    d[3] = status;
    if status == oper::PLUGGED_ERROR {
        d[6] = p.module.as_ref().and_then(|m| m.error).unwrap_or(0);
        log::info!(
            target: "mlx5_sim::module",
            "module error {}",
            error_name(d[6])
        );
    }
    crate::cmd::eq::raise_event(dev, crate::cmd::eq::event::PORT_MODULE, 0, &d);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field positions by hand from mlx5_ifc.h `pmaos_reg` and `mcia_reg`.
    #[test]
    fn register_fields_land_where_ifc_puts_them() {
        let cases: &[(F, &[(usize, u8)])] = &[
            (pmaos::MODULE, &[(0x01, 0xff)]),
            (pmaos::ADMIN_STATUS, &[(0x02, 0x0f)]),
            (pmaos::OPER_STATUS, &[(0x03, 0x0f)]),
            (pmaos::ASE, &[(0x04, 0x80)]),
            (pmaos::EE, &[(0x04, 0x40)]),
            (pmaos::E, &[(0x07, 0x03)]),
            (mcia::L, &[(0x00, 0x80)]),
            (mcia::MODULE, &[(0x01, 0xff)]),
            (mcia::STATUS, &[(0x03, 0xff)]),
            (mcia::I2C_DEVICE_ADDRESS, &[(0x04, 0xff)]),
            (mcia::PAGE_NUMBER, &[(0x05, 0xff)]),
            (mcia::DEVICE_ADDRESS, &[(0x06, 0xff), (0x07, 0xff)]),
            (mcia::SIZE_F, &[(0x0a, 0xff), (0x0b, 0xff)]),
        ];
        for (field, bytes) in cases {
            let mut b = [0u8; 16];
            set(&mut b, *field, u64::MAX >> (64 - field.width));
            let mut want = [0u8; 16];
            for (at, v) in *bytes {
                want[*at] = *v;
            }
            assert_eq!(b, want, "{field:?}");
        }
    }
}
