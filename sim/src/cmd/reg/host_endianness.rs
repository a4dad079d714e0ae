//! HOST_ENDIANNESS (`register_host_endianness`, 16 bytes): `he` at bit 0,
//! the byte order of atomic responses. Only RDMA atomics use it; the model
//! keeps the value and reports it back.
#![deny(unsafe_code)]

use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::syndrome::CmdError;

pub const SIZE: usize = 0x10;
pub const HE: F = f(0x0, 1);

pub fn access(dev: &mut Function, write: bool, data: &[u8], o: &mut [u8]) -> Result<(), CmdError> {
    if write {
        super::reserved(data, &[f(0x1, 0x7f)])?;
        dev.host_endianness = get(data, HE) as u8;
    }
    set(o, HE, dev.host_endianness as u64);
    Ok(())
}
