//! DTOR, the firmware's default timeouts (`dtor_reg`, 64 bytes; read-only).
//! Each timeout is a `default_timeout`: to_multiplier [31:29] (0 ms, 1 s,
//! 2 min, 3 h) and to_value [19:0]. Firmware that reports its command
//! timeouts in the initialization segment (`cmd_q_init_to` not 0) has it.
#![deny(unsafe_code)]

use crate::bits::{F, f, set};

pub const SIZE: usize = 0x40;

/// (bit offset in `dtor_reg`, multiplier, value) of every timeout the model
/// reports: PCIe toggle 2 s (0x20), health poll 2 s (0xa0), full crdump
/// 60 s (0xc0), fw reset 60 s (0xe0), flush on error 2 s (0x100), PCI sync
/// update 5 s (0x120), teardown 3 s (0x140), FSM reactivate 5 s (0x160),
/// reclaim pages 5 s (0x180), reclaim VF pages 120 s (0x1a0), reset unload
/// 300 s (0x1c0).
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

/// The register as firmware reports it.
pub fn read(o: &mut [u8]) {
    for &(at, mul, v) in TIMEOUTS {
        set(o, multiplier(at), mul);
        set(o, value(at), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dtor_reg` by hand: pcie_toggle_to at byte 4 (2 s: multiplier 1 in
    /// bits 31:29 = 0x20, value 2), reset_unload_to at byte 0x38 (300 s =
    /// 0x12c).
    #[test]
    fn timeouts_sit_where_ifc_puts_them() {
        let mut o = [0u8; SIZE];
        read(&mut o);
        assert_eq!(&o[0x04..0x08], &[0x20, 0x00, 0x00, 0x02]);
        assert_eq!(&o[0x38..0x3c], &[0x20, 0x00, 0x01, 0x2c]);
        assert_eq!(&o[0x00..0x04], &[0; 4], "reserved");
    }
}
