//! MLCR (0x902b, `mlcr_reg`, 12 bytes): the port's identification LED.
//! A write sets `beacon_duration` in seconds (0 off, 0xffff until turned
//! off); a read reports it and `beacon_remain`, the seconds left.
#![deny(unsafe_code)]

use crate::bits::{get, set};
use crate::function::Function;
use crate::phys_port::Beacon;
use crate::syndrome::CmdError;

pub const SIZE: usize = 0x0c;
pub const BEACON_DURATION: crate::bits::F = crate::bits::f(0x30, 0x10);
pub const BEACON_REMAIN: crate::bits::F = crate::bits::f(0x50, 0x10);

pub fn access(dev: &mut Function, write: bool, data: &[u8], o: &mut [u8]) -> Result<(), CmdError> {
    if write {
        let secs = get(data, BEACON_DURATION) as u16;
        dev.phys_port.beacon = Beacon::from_duration(secs);
        dev.phys_port.beacon_duration = secs;
    }
    let b = dev.phys_port.beacon.now();
    let duration = if b == Beacon::Off {
        0
    } else {
        dev.phys_port.beacon_duration
    };
    set(o, BEACON_DURATION, duration as u64);
    set(o, BEACON_REMAIN, b.remain() as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mlx5_ifc.h `mlcr_reg`: beacon_duration at bytes 6-7, beacon_remain at
    /// bytes 10-11 (by hand).
    #[test]
    fn fields_land_where_ifc_puts_them() {
        let mut b = [0u8; SIZE];
        set(&mut b, BEACON_DURATION, 0x1234);
        set(&mut b, BEACON_REMAIN, 0x5678);
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]);
    }
}
