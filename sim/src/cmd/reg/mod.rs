//! ACCESS_REGISTER (`access_register_in/out`, mlx5_ifc.h): op_mod 1 reads,
//! 0 writes; `register_id` at bit 0x50, `argument` at 0x60; register data
//! from byte 0x10 of input and output. Every register the model has is in
//! [`layout`]; each lives in its own file:
//!
//! - [`port`]: PAOS, PTYS, PMTU, PMLP (the physical port's state);
//! - [`module`]: PMAOS, MCIA (the transceiver module and its EEPROM);
//! - [`mlcr`]: MLCR (the identification LED);
//! - [`ppcnt`]: PPCNT (port counters);
//! - [`pfcc`]: PFCC (pause and priority flow control);
//! - [`dtor`]: DTOR (firmware default timeouts);
//! - [`host_endianness`]: HOST_ENDIANNESS (byte order of atomics).
//!
//! Registers of the port carry `local_port` at bits 0x08..0x10 of their
//! data, which must name the function's port (1).
#![deny(unsafe_code)]

pub mod dtor;
pub mod host_endianness;
pub mod mlcr;
pub mod module;
pub mod pfcc;
pub mod port;
pub mod ppcnt;

use super::reserved;
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::phys_port::LOCAL_PORT;
use crate::syndrome::{self as syn, CmdError};

pub use port::link_update;

/// Register ids (`MLX5_REG_*`, driver.h).
pub mod reg_id {
    pub const PMLP: u16 = 0x5002;
    pub const PMTU: u16 = 0x5003;
    pub const PTYS: u16 = 0x5004;
    pub const PAOS: u16 = 0x5006;
    pub const PFCC: u16 = 0x5007;
    pub const PPCNT: u16 = 0x5008;
    pub const PMAOS: u16 = 0x5012;
    pub const MCIA: u16 = 0x9014;
    pub const MLCR: u16 = 0x902b;
    pub const HOST_ENDIANNESS: u16 = 0x7004;
    pub const DTOR: u16 = 0xc00e;
}

/// ACCESS_REGISTER op_mod.
pub mod access {
    pub const WRITE: u16 = 0;
    pub const READ: u16 = 1;
}

/// Register data starts here in `access_register_in` and `_out`.
pub const DATA: usize = 0x10;
/// `local_port` of the port registers.
pub const LOCAL_PORT_F: F = f(0x8, 8);

/// (data size in bytes, whether it is a port register with `local_port`)
/// of every register the model has (mlx5_ifc.h `<name>_reg` sizes).
pub fn layout(id: u16) -> Option<(usize, bool)> {
    Some(match id {
        reg_id::PAOS => (port::paos::SIZE, true),
        reg_id::PTYS => (port::ptys::SIZE, true),
        reg_id::PMTU => (port::pmtu::SIZE, true),
        reg_id::PMLP => (port::pmlp::SIZE, true),
        reg_id::PPCNT => (ppcnt::SIZE, true),
        reg_id::PFCC => (pfcc::SIZE, true),
        reg_id::MLCR => (mlcr::SIZE, true),
        // The module registers name the cage, not the port.
        reg_id::PMAOS => (module::pmaos::SIZE, false),
        reg_id::MCIA => (module::mcia::SIZE, false),
        reg_id::HOST_ENDIANNESS => (host_endianness::SIZE, false),
        reg_id::DTOR => (dtor::SIZE, false),
        _ => return None,
    })
}

/// ACCESS_REGISTER.
pub fn access(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x10)])?;
    let id = get(inp, f(0x50, 0x10)) as u16;
    let Some((size, port_reg)) = layout(id) else {
        return Err(syn::REG_ID);
    };
    let op_mod = crate::bits::be16(inp, 6);
    if op_mod != access::READ && op_mod != access::WRITE {
        return Err(syn::BAD_OP_MOD);
    }
    if inp.len() < DATA + size {
        return Err(syn::REG_LENGTH);
    }
    if out.len() < DATA + size {
        return Err(syn::BAD_OUTPUT_LENGTH);
    }
    let data = &inp[DATA..DATA + size];
    if port_reg && get(data, LOCAL_PORT_F) != LOCAL_PORT as u64 {
        return Err(syn::REG_PORT);
    }
    let o = &mut out[DATA..DATA + size];
    if port_reg {
        set(o, LOCAL_PORT_F, LOCAL_PORT as u64);
    }
    let write = op_mod == access::WRITE;
    match id {
        reg_id::PAOS | reg_id::PTYS | reg_id::PMTU | reg_id::PMLP => {
            port::access(dev, id, write, data, o)
        }
        reg_id::PPCNT => ppcnt::access(dev, write, data, o),
        reg_id::PFCC => pfcc::access(dev, write, data, o),
        reg_id::MLCR => mlcr::access(dev, write, data, o),
        reg_id::PMAOS => module::access_pmaos(dev, write, data, o),
        reg_id::MCIA => module::access_mcia(dev, write, data, o),
        reg_id::HOST_ENDIANNESS => host_endianness::access(dev, write, data, o),
        reg_id::DTOR if write => Err(syn::REG_VALUE),
        reg_id::DTOR => {
            dtor::read(o);
            Ok(())
        }
        _ => Err(syn::REG_ID),
    }
}
