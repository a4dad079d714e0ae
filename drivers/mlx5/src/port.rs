//! Port registers through ACCESS_REGISTER (PRM "Port Registers";
//! `access_register_in/out_bits`, `paos_reg_bits`, `ptys_reg_bits`,
//! `pmtu_reg_bits`, `pmlp_reg_bits` in mlx5_ifc.h; register ids from
//! driver.h `MLX5_REG_*`).

use alloc::vec::Vec;
use core::fmt;

use crate::cmd::{Command, op};
use crate::error::BadOutput;
use crate::layout::Field;

pub const REG_PMLP: u16 = 0x5002;
pub const REG_PMTU: u16 = 0x5003;
pub const REG_PTYS: u16 = 0x5004;
pub const REG_PAOS: u16 = 0x5006;

/// access_register_in: register_id `[15:0]` of 0x08, argument at 0x0c,
/// register_data at 0x10; access_register_out: register_data at 0x10.
pub const REGISTER_ID: Field = Field::new(0x08, 15, 0);
pub const ARGUMENT: Field = Field::new(0x0c, 31, 0);
pub const DATA: usize = 0x10;
/// op_mod: 0 write, 1 read.
pub const OP_MOD_WRITE: u16 = 0;
pub const OP_MOD_READ: u16 = 1;

/// ACCESS_REGISTER: read or write one register; returns the register data.
#[derive(Clone, Copy, Debug)]
pub struct AccessRegister<'a> {
    pub reg: u16,
    pub write: bool,
    pub data: &'a [u8],
}

impl Command for AccessRegister<'_> {
    type Output = Vec<u8>;
    const OPCODE: u16 = op::ACCESS_REGISTER;
    fn op_mod(&self) -> u16 {
        if self.write {
            OP_MOD_WRITE
        } else {
            OP_MOD_READ
        }
    }
    fn in_len(&self) -> usize {
        DATA + self.data.len()
    }
    fn out_len(&self) -> usize {
        DATA + self.data.len()
    }
    fn build(&self, inbox: &mut [u8]) {
        REGISTER_ID.set(inbox, self.reg as u32);
        inbox[DATA..DATA + self.data.len()].copy_from_slice(self.data);
    }
    fn parse(&self, out: &[u8]) -> Result<Vec<u8>, BadOutput> {
        Ok(out[DATA..].to_vec())
    }
}

/// PAOS, 16 bytes.
pub mod paos {
    use crate::layout::Field;
    pub const LEN: usize = 0x10;
    pub const LOCAL_PORT: Field = Field::new(0x00, 23, 16);
    pub const ADMIN_STATUS: Field = Field::new(0x00, 11, 8);
    pub const OPER_STATUS: Field = Field::new(0x00, 3, 0);
    pub const ASE: Field = Field::new(0x04, 31, 31);
    pub const EE: Field = Field::new(0x04, 30, 30);
    pub const E: Field = Field::new(0x04, 1, 0);
    pub const STATUS_UP: u32 = 1;
    pub const STATUS_DOWN: u32 = 2;
}

/// PTYS, 64 bytes.
pub mod ptys {
    use crate::layout::Field;
    pub const LEN: usize = 0x40;
    pub const LOCAL_PORT: Field = Field::new(0x00, 23, 16);
    /// proto_mask `[2:0]`: bit 2 Ethernet.
    pub const PROTO_MASK: Field = Field::new(0x00, 2, 0);
    pub const PROTO_ETH: u32 = 1 << 2;
    pub const AN_STATUS: Field = Field::new(0x04, 31, 28);
    pub const EXT_ETH_PROTO_CAPABILITY: Field = Field::new(0x08, 31, 0);
    pub const ETH_PROTO_CAPABILITY: Field = Field::new(0x0c, 31, 0);
    pub const EXT_ETH_PROTO_ADMIN: Field = Field::new(0x14, 31, 0);
    pub const ETH_PROTO_ADMIN: Field = Field::new(0x18, 31, 0);
    pub const EXT_ETH_PROTO_OPER: Field = Field::new(0x20, 31, 0);
    pub const ETH_PROTO_OPER: Field = Field::new(0x24, 31, 0);
    pub const CONNECTOR_TYPE: Field = Field::new(0x2c, 3, 0);
}

/// PMTU, 16 bytes.
pub mod pmtu {
    use crate::layout::Field;
    pub const LEN: usize = 0x10;
    pub const LOCAL_PORT: Field = Field::new(0x00, 23, 16);
    pub const MAX_MTU: Field = Field::new(0x04, 31, 16);
    pub const ADMIN_MTU: Field = Field::new(0x08, 31, 16);
    pub const OPER_MTU: Field = Field::new(0x0c, 31, 16);
}

/// PMLP, 64 bytes.
pub mod pmlp {
    use crate::layout::Field;
    pub const LEN: usize = 0x40;
    pub const LOCAL_PORT: Field = Field::new(0x00, 23, 16);
    pub const WIDTH: Field = Field::new(0x00, 7, 0);
    /// lane0_module_mapping: module `[7:0]`.
    pub const LANE0_MODULE: Field = Field::new(0x04, 7, 0);
}

const _: () = assert!(paos::E.end() <= paos::LEN);
const _: () = assert!(ptys::CONNECTOR_TYPE.end() <= ptys::LEN);
const _: () = assert!(pmtu::OPER_MTU.end() <= pmtu::LEN);
const _: () = assert!(pmlp::LANE0_MODULE.end() <= pmlp::LEN);

/// The one Ethernet port of this function.
pub const LOCAL_PORT: u32 = 1;

/// A register read request for local port 1 (PTYS also names Ethernet).
pub fn read_request(reg: u16) -> Vec<u8> {
    let len = match reg {
        REG_PAOS => paos::LEN,
        REG_PMTU => pmtu::LEN,
        _ => ptys::LEN,
    };
    let mut d = alloc::vec![0u8; len];
    // local_port is [23:16] of dword 0 in all four registers.
    paos::LOCAL_PORT.set(&mut d, LOCAL_PORT);
    if reg == REG_PTYS {
        ptys::PROTO_MASK.set(&mut d, ptys::PROTO_ETH);
    }
    d
}

/// PAOS write: admin status up or down (ase = 1 applies it).
pub fn paos_admin(up: bool) -> [u8; paos::LEN] {
    let mut d = [0u8; paos::LEN];
    paos::LOCAL_PORT.set(&mut d, LOCAL_PORT);
    paos::ADMIN_STATUS.set(
        &mut d,
        if up {
            paos::STATUS_UP
        } else {
            paos::STATUS_DOWN
        },
    );
    paos::ASE.set(&mut d, 1);
    d
}

/// Speed in Mb/s of one bit of `eth_proto_*` (`enum mlx5e_link_mode`).
pub fn legacy_speed(bit: u32) -> u32 {
    match bit {
        24 => 100,
        0 | 1 | 25 => 1_000,
        2..=4 | 12..=14 | 26 => 10_000,
        5 => 20_000,
        27..=29 => 25_000,
        6 | 7 | 15 | 16 => 40_000,
        18 | 30 | 31 => 50_000,
        8 => 56_000,
        20..=23 => 100_000,
        _ => 0,
    }
}

/// Speed in Mb/s of one bit of `ext_eth_proto_*` (`enum
/// mlx5e_ext_link_mode`).
pub fn ext_speed(bit: u32) -> u32 {
    match bit {
        0 => 100,
        1 => 1_000,
        3 => 5_000,
        4 => 10_000,
        6 => 25_000,
        5 => 40_000,
        7 | 8 => 50_000,
        9..=11 => 100_000,
        12 | 13 => 200_000,
        15 | 16 => 400_000,
        19 => 800_000,
        _ => 0,
    }
}

/// Fastest speed in a protocol mask (Mb/s); 0 when none is known.
pub fn speed_of(ext_mask: u32, legacy_mask: u32) -> u32 {
    let pick = |mask: u32, f: fn(u32) -> u32| {
        (0..32)
            .filter(|b| mask & (1 << b) != 0)
            .map(f)
            .max()
            .unwrap_or(0)
    };
    if ext_mask != 0 {
        pick(ext_mask, ext_speed)
    } else {
        pick(legacy_mask, legacy_speed)
    }
}

/// Mb/s as the console shows it: `100M`, `25G`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Speed(pub u32);

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1000 && self.0.is_multiple_of(1000) {
            write!(f, "{}G", self.0 / 1000)
        } else {
            write!(f, "{}M", self.0)
        }
    }
}

/// Port state from PAOS, PTYS, PMTU and PMLP.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PortInfo {
    pub admin_up: bool,
    pub oper_up: bool,
    /// Mb/s of the operational protocol (0: none).
    pub speed_mbps: u32,
    pub eth_proto_capability: u32,
    pub ext_eth_proto_capability: u32,
    pub connector_type: u8,
    pub max_mtu: u16,
    pub admin_mtu: u16,
    pub oper_mtu: u16,
    pub module: u8,
    pub width: u8,
}

impl PortInfo {
    pub fn apply_paos(&mut self, d: &[u8]) {
        self.admin_up = paos::ADMIN_STATUS.get(d) == paos::STATUS_UP;
        self.oper_up = paos::OPER_STATUS.get(d) == paos::STATUS_UP;
    }

    pub fn apply_ptys(&mut self, d: &[u8]) {
        self.eth_proto_capability = ptys::ETH_PROTO_CAPABILITY.get(d);
        self.ext_eth_proto_capability = ptys::EXT_ETH_PROTO_CAPABILITY.get(d);
        self.speed_mbps = speed_of(ptys::EXT_ETH_PROTO_OPER.get(d), ptys::ETH_PROTO_OPER.get(d));
        self.connector_type = ptys::CONNECTOR_TYPE.get(d) as u8;
    }

    pub fn apply_pmtu(&mut self, d: &[u8]) {
        self.max_mtu = pmtu::MAX_MTU.get(d) as u16;
        self.admin_mtu = pmtu::ADMIN_MTU.get(d) as u16;
        self.oper_mtu = pmtu::OPER_MTU.get(d) as u16;
    }

    pub fn apply_pmlp(&mut self, d: &[u8]) {
        self.width = pmlp::WIDTH.get(d) as u8;
        self.module = pmlp::LANE0_MODULE.get(d) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;
    use alloc::format;

    #[test]
    fn access_register_paos_write_golden() {
        let data = paos_admin(true);
        let b = encode(&AccessRegister {
            reg: REG_PAOS,
            write: true,
            data: &data,
        });
        #[rustfmt::skip]
        let golden = [
            0x08, 0x05, 0, 0,       // 0x00 opcode ACCESS_REGISTER
            0, 0, 0, 0,             // 0x04 op_mod 0 (write)
            0, 0, 0x50, 0x06,       // 0x08 register_id PAOS
            0, 0, 0, 0,             // 0x0c argument
            0x00, 0x01, 0x01, 0x00, // paos 0x00: local_port 1 [23:16], admin_status 1 [11:8]
            0x80, 0, 0, 0,          // paos 0x04: ase [31]
            0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(b, golden);
    }

    #[test]
    fn ptys_read_request_names_ethernet() {
        let d = read_request(REG_PTYS);
        assert_eq!(d.len(), 0x40);
        // local_port 1 [23:16], proto_mask [2:0] = 4.
        assert_eq!(&d[..4], &[0x00, 0x01, 0x00, 0x04]);
        let b = encode(&AccessRegister {
            reg: REG_PTYS,
            write: false,
            data: &d,
        });
        assert_eq!(&b[4..12], &[0, 0, 0, 1, 0, 0, 0x50, 0x04]);
    }

    #[test]
    fn port_info_from_golden_registers() {
        let mut p = PortInfo::default();
        // paos 0x00: admin_status 1 [11:8], oper_status 1 [3:0].
        p.apply_paos(&[0x00, 0x01, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(p.admin_up && p.oper_up);
        let mut d = [0u8; 0x40];
        // ptys eth_proto_oper at 0x24: bit 27 (25GBASE_CR).
        d[0x24..0x28].copy_from_slice(&[0x08, 0, 0, 0]);
        // eth_proto_capability at 0x0c: bits 27-29.
        d[0x0c..0x10].copy_from_slice(&[0x38, 0, 0, 0]);
        p.apply_ptys(&d);
        assert_eq!(p.speed_mbps, 25_000);
        assert_eq!(format!("{}", Speed(p.speed_mbps)), "25G");
        // ext_eth_proto_oper at 0x20 wins when set: bit 9 (CAUI-4, 100G).
        d[0x20..0x24].copy_from_slice(&[0, 0, 0x02, 0]);
        p.apply_ptys(&d);
        assert_eq!(p.speed_mbps, 100_000);
        // pmtu: max_mtu [31:16] at 0x04, admin 0x08, oper 0x0c.
        let mut m = [0u8; 0x10];
        m[4..6].copy_from_slice(&[0x26, 0x00]); // 9728
        m[8..10].copy_from_slice(&[0x05, 0xee]); // 1518
        m[12..14].copy_from_slice(&[0x05, 0xee]);
        p.apply_pmtu(&m);
        assert_eq!((p.max_mtu, p.admin_mtu, p.oper_mtu), (9728, 1518, 1518));
        assert_eq!(format!("{}", Speed(100)), "100M");
    }
}
