//! The transceiver module and the port's management registers beyond
//! PAOS/PTYS/PMTU/PMLP (PRM "Port Registers"; mlx5_ifc.h `pmaos_reg`,
//! `mcia_reg`, `mlcr_reg`, `ppcnt_reg` with
//! `eth_802_3_cntrs_grp_data_layout`; register ids from driver.h
//! `MLX5_REG_*`), the port-module event (`struct mlx5_eqe_port_module`),
//! and the typed errors of transceiver reads and speed settings.

use alloc::vec::Vec;
use core::fmt;

use crate::error::Error;
use crate::sff::SffError;

pub const REG_PPCNT: u16 = 0x5008;
pub const REG_PMAOS: u16 = 0x5012;
pub const REG_MCIA: u16 = 0x9014;
pub const REG_MLCR: u16 = 0x902b;

/// PMAOS, 16 bytes.
pub mod pmaos {
    use crate::layout::Field;
    pub const LEN: usize = 0x10;
    pub const MODULE: Field = Field::new(0x00, 23, 16);
    pub const ADMIN_STATUS: Field = Field::new(0x00, 11, 8);
    pub const OPER_STATUS: Field = Field::new(0x00, 3, 0);
    pub const ASE: Field = Field::new(0x04, 31, 31);
    pub const EE: Field = Field::new(0x04, 30, 30);
    pub const E: Field = Field::new(0x04, 1, 0);
}

/// MCIA, 16 bytes of header and 128 of data.
pub mod mcia {
    use crate::layout::Field;
    pub const LEN: usize = 0x90;
    pub const L: Field = Field::new(0x00, 31, 31);
    pub const MODULE: Field = Field::new(0x00, 23, 16);
    pub const STATUS: Field = Field::new(0x00, 7, 0);
    pub const I2C_DEVICE_ADDRESS: Field = Field::new(0x04, 31, 24);
    pub const PAGE_NUMBER: Field = Field::new(0x04, 23, 16);
    pub const DEVICE_ADDRESS: Field = Field::new(0x04, 15, 0);
    pub const SIZE: Field = Field::new(0x08, 15, 0);
    pub const DWORDS: usize = 0x10;
    /// Bytes per read without MCAM `mcia_32dwords` (12 dwords).
    pub const MAX_BYTES: usize = 48;
    /// 2-wire addresses: A0h (serial ID, QSFP pages) and A2h (SFP
    /// diagnostics), as 7-bit addresses.
    pub const I2C_LOW: u8 = 0x50;
    pub const I2C_HIGH: u8 = 0x51;
}

/// MLCR, 12 bytes.
pub mod mlcr {
    use crate::layout::Field;
    pub const LEN: usize = 0x0c;
    pub const LOCAL_PORT: Field = Field::new(0x00, 23, 16);
    pub const BEACON_DURATION: Field = Field::new(0x04, 15, 0);
    pub const BEACON_REMAIN: Field = Field::new(0x08, 15, 0);
    /// `beacon_duration`: until turned off.
    pub const FOREVER: u16 = 0xffff;
}

/// PPCNT, 256 bytes: grp `[5:0]` of dword 0, counter set from byte 8
/// (64-bit counters, high dword first).
pub mod ppcnt {
    use crate::layout::Field;
    pub const LEN: usize = 0x100;
    pub const LOCAL_PORT: Field = Field::new(0x00, 23, 16);
    pub const GRP: Field = Field::new(0x00, 5, 0);
    pub const SET: usize = 0x08;
    pub const GRP_IEEE_802_3: u32 = 0x00;

    /// The ACCESS_REGISTER read request for the IEEE 802.3 group of the
    /// port (`local_port` 1), [`LEN`] bytes.
    pub fn ieee_802_3_request() -> alloc::vec::Vec<u8> {
        let mut d = alloc::vec![0u8; LEN];
        LOCAL_PORT.set(&mut d, crate::port::LOCAL_PORT);
        GRP.set(&mut d, GRP_IEEE_802_3);
        d
    }
}

const _: () = assert!(pmaos::E.end() <= pmaos::LEN);
const _: () = assert!(mcia::SIZE.end() <= mcia::DWORDS);
const _: () = assert!(mcia::DWORDS + 128 == mcia::LEN);
const _: () = assert!(mlcr::BEACON_REMAIN.end() <= mlcr::LEN);

/// PMAOS `oper_status` / the event's `module_status`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ModuleState {
    Initializing,
    Plugged,
    Unplugged,
    /// Plugged with an error (`port_module_event_error_type`).
    Error(u8),
    Disabled,
    Unknown(u8),
}

impl ModuleState {
    pub fn of(status: u8, error_type: u8) -> ModuleState {
        match status {
            0 => ModuleState::Initializing,
            1 => ModuleState::Plugged,
            2 => ModuleState::Unplugged,
            3 => ModuleState::Error(error_type),
            4 => ModuleState::Disabled,
            s => ModuleState::Unknown(s),
        }
    }
}

/// `port_module_event_error_type` names (PRM "Port Module Event").
pub fn module_error_name(t: u8) -> &'static str {
    match t {
        0x0 => "power budget exceeded",
        0x1 => "long range for non-Mellanox cable",
        0x2 => "bus stuck",
        0x3 => "bad or unsupported EEPROM",
        0x4 => "part number list",
        0x5 => "unsupported cable",
        0x6 => "high temperature",
        0x7 => "bad cable",
        0xc => "PCIe system power slot exceeded",
        _ => "unknown error",
    }
}

impl fmt::Display for ModuleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ModuleState::Initializing => f.write_str("initializing"),
            ModuleState::Plugged => f.write_str("plugged"),
            ModuleState::Unplugged => f.write_str("unplugged"),
            ModuleState::Error(t) => write!(f, "error: {}", module_error_name(t)),
            ModuleState::Disabled => f.write_str("disabled"),
            ModuleState::Unknown(s) => write!(f, "status {s}"),
        }
    }
}

/// The event data of a PORT_MODULE EQE (`struct mlx5_eqe_port_module`:
/// module byte 1, module_status byte 3 `[3:0]`, error_type byte 6
/// `[3:0]`).
pub fn module_event(data: &[u8]) -> ModuleState {
    let at = |i: usize| data.get(i).copied().unwrap_or(0) & 0xf;
    ModuleState::of(at(3), at(6))
}

/// A PMAOS read request for module `module`.
pub fn pmaos_read(module: u8) -> [u8; pmaos::LEN] {
    let mut d = [0u8; pmaos::LEN];
    pmaos::MODULE.set(&mut d, module.into());
    d
}

/// An MCIA read of `size` (1..=48) bytes from `offset` of `page` at
/// 2-wire address `i2c`.
pub fn mcia_read(module: u8, i2c: u8, page: u8, offset: u16, size: u16) -> [u8; mcia::LEN] {
    let mut d = [0u8; mcia::LEN];
    mcia::MODULE.set(&mut d, module.into());
    mcia::I2C_DEVICE_ADDRESS.set(&mut d, i2c.into());
    mcia::PAGE_NUMBER.set(&mut d, page.into());
    mcia::DEVICE_ADDRESS.set(&mut d, offset.into());
    mcia::SIZE.set(&mut d, size.into());
    d
}

/// MLCR write: beacon for `secs` seconds (0 off, [`mlcr::FOREVER`] on).
pub fn mlcr_write(local_port: u32, secs: u16) -> [u8; mlcr::LEN] {
    let mut d = [0u8; mlcr::LEN];
    mlcr::LOCAL_PORT.set(&mut d, local_port);
    mlcr::BEACON_DURATION.set(&mut d, secs.into());
    d
}

/// The identification LED as asked for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Led {
    Off,
    On,
    /// Blink for this many seconds (1..=65534).
    Beacon(u16),
}

impl Led {
    pub fn duration(self) -> u16 {
        match self {
            Led::Off => 0,
            Led::On => mlcr::FOREVER,
            Led::Beacon(s) => s.clamp(1, mlcr::FOREVER - 1),
        }
    }
}

/// The advertised speed set (PTYS admin).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SpeedSetting {
    /// Every protocol the port can run (autonegotiation).
    Auto,
    /// Only the protocols of this speed (Mb/s).
    Forced(u32),
}

/// IEEE 802.3 counters of the port (PPCNT group 0).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Ieee8023 {
    pub frames_tx: u64,
    pub frames_rx: u64,
    pub fcs_errors: u64,
    pub octets_tx: u64,
    pub octets_rx: u64,
    pub multicast_tx: u64,
    pub broadcast_tx: u64,
    pub multicast_rx: u64,
    pub broadcast_rx: u64,
    pub too_long: u64,
}

impl Ieee8023 {
    /// From `eth_802_3_cntrs_grp_data_layout` (the PPCNT counter set):
    /// a_frames_transmitted_ok (0), a_frames_received_ok (1),
    /// a_frame_check_sequence_errors (2), a_octets_transmitted_ok (4),
    /// a_octets_received_ok (5), multicast / broadcast xmitted (6, 7) and
    /// received (8, 9), a_frame_too_long_errors (12).
    pub fn parse(d: &[u8]) -> Ieee8023 {
        let c = |i: usize| {
            let at = ppcnt::SET + 8 * i;
            d.get(at..at + 8).map_or(0, |b| {
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            })
        };
        Ieee8023 {
            frames_tx: c(0),
            frames_rx: c(1),
            fcs_errors: c(2),
            octets_tx: c(4),
            octets_rx: c(5),
            multicast_tx: c(6),
            broadcast_tx: c(7),
            multicast_rx: c(8),
            broadcast_rx: c(9),
            too_long: c(12),
        }
    }
}

/// MCIA `status` names (PRM "MCIA").
pub fn mcia_status_name(s: u8) -> &'static str {
    match s {
        0x1 => "no response from the module's EEPROM",
        0x2 => "module not supported",
        0x3 => "module not connected",
        0x9 => "I2C error",
        0x10 => "module disabled",
        _ => "unknown status",
    }
}

/// Why a transceiver read or a port setting failed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PortError {
    Adapter(Error),
    /// MCIA answered with a status.
    Mcia {
        status: u8,
        i2c: u8,
        page: u8,
        offset: u16,
    },
    /// The bytes read do not decode.
    Sff(SffError),
    /// A speed the port cannot run; the speeds it can (Mb/s).
    Speed {
        asked_mbps: u32,
        supported: Vec<u32>,
    },
    /// An IP MTU outside 68..=`max` (the port's largest frame less
    /// [`PORT_MTU_OVERHEAD`]).
    Mtu {
        asked: usize,
        max: usize,
    },
}

/// What the port MTU (PMTU) adds to the IP MTU: the Ethernet header, one
/// VLAN tag and the FCS (14 + 4 + 4), as Linux programs it.
pub const PORT_MTU_OVERHEAD: usize = 22;

impl From<Error> for PortError {
    fn from(e: Error) -> Self {
        PortError::Adapter(e)
    }
}

impl From<crate::error::CmdError> for PortError {
    fn from(e: crate::error::CmdError) -> Self {
        PortError::Adapter(Error::Command(e))
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::Adapter(e) => write!(f, "{e}"),
            PortError::Mcia {
                status,
                i2c,
                page,
                offset,
            } => write!(
                f,
                "MCIA status {status:#x} ({}) reading {i2c:#04x} page {page} byte {offset}",
                mcia_status_name(*status)
            ),
            PortError::Sff(e) => write!(f, "EEPROM: {e}"),
            PortError::Speed {
                asked_mbps,
                supported,
            } => {
                write!(
                    f,
                    "{} not supported; this port runs",
                    crate::port::Speed(*asked_mbps)
                )?;
                for s in supported {
                    write!(f, " {}", crate::port::Speed(*s))?;
                }
                Ok(())
            }
            PortError::Mtu { asked, max } => {
                write!(f, "MTU {asked} out of range: this port takes 68 to {max}")
            }
        }
    }
}

/// A module's memory as read: page 00h (256 bytes: A0h, or the QSFP
/// lower page and upper page 00h), A2h (SFP diagnostics) and page 03h
/// (bytes 128-255, paged QSFP) when the module has them.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ModuleImage {
    pub low: Vec<u8>,
    pub a2: Option<Vec<u8>>,
    pub page3: Option<Vec<u8>>,
    /// MCIA commands it took.
    pub commands: u32,
}

impl ModuleImage {
    pub fn decode(&self) -> Result<crate::sff::Transceiver, SffError> {
        crate::sff::decode(&self.low, self.a2.as_deref(), self.page3.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;
    use crate::port::AccessRegister;

    #[test]
    fn mcia_read_golden() {
        let d = mcia_read(0, 0x50, 3, 128, 48);
        let b = encode(&AccessRegister {
            reg: REG_MCIA,
            write: false,
            data: &d,
        });
        #[rustfmt::skip]
        let head = [
            0x08, 0x05, 0, 0,       // 0x00 opcode ACCESS_REGISTER
            0, 0, 0, 1,             // 0x04 op_mod 1 (read)
            0, 0, 0x90, 0x14,       // 0x08 register_id MCIA
            0, 0, 0, 0,             // 0x0c argument
            0, 0, 0, 0,             // mcia 0x00: l, module 0, status
            0x50, 0x03, 0x00, 0x80, // mcia 0x04: i2c 0x50 [31:24], page 3 [23:16], address 128 [15:0]
            0, 0, 0, 48,            // mcia 0x08: size [15:0]
            0, 0, 0, 0,             // mcia 0x0c
        ];
        assert_eq!(&b[..32], &head);
        assert_eq!(b.len(), 0x10 + 0x90);
    }

    #[test]
    fn mlcr_and_pmaos_golden() {
        // mlcr_reg: local_port [23:16] of dword 0, beacon_duration [15:0]
        // of dword 1.
        assert_eq!(mlcr_write(1, 30), [0, 1, 0, 0, 0, 0, 0, 30, 0, 0, 0, 0]);
        // pmaos_reg: module [23:16].
        assert_eq!(pmaos_read(2)[..4], [0, 2, 0, 0]);
        // The port module event: status 3 (error) byte 3, error type 5
        // byte 6.
        assert_eq!(
            module_event(&[0, 0, 0, 3, 0, 0, 5, 0]),
            ModuleState::Error(5)
        );
        assert_eq!(module_event(&[0, 0, 0, 2]), ModuleState::Unplugged);
        assert_eq!(module_event(&[]), ModuleState::Initializing);
    }

    #[test]
    fn ieee_802_3_counters_from_golden_bytes() {
        let mut d = [0u8; ppcnt::LEN];
        // a_frames_received_ok: counter 1 at byte 8 + 8; too long: 12.
        d[0x17] = 7;
        d[8 + 12 * 8 + 7] = 2;
        d[8 + 4 * 8 + 6] = 1; // octets tx 256
        let c = Ieee8023::parse(&d);
        assert_eq!((c.frames_rx, c.too_long, c.octets_tx), (7, 2, 256));
    }
}
