//! HCA life-cycle commands (PRM "HCA Commands"): ENABLE_HCA, QUERY_ISSI,
//! SET_ISSI, INIT_HCA, SET_DRIVER_VERSION, TEARDOWN_HCA, DISABLE_HCA
//! (`mlx5_ifc_*_in_bits` / `*_out_bits` of the same names).

use crate::cmd::{Command, SimpleCmd, op};
use crate::error::BadOutput;
use crate::layout::Field;

/// enable_hca_in / disable_hca_in: function_id `[15:0]` of dword 0x08 (0:
/// this function).
pub type EnableHca = SimpleCmd<{ op::ENABLE_HCA }>;
pub type DisableHca = SimpleCmd<{ op::DISABLE_HCA }>;
pub const ENABLE_HCA: EnableHca = EnableHca::new(0, None);
pub const DISABLE_HCA: DisableHca = DisableHca::new(0, None);

/// query_issi_out: current_issi `[15:0]` of 0x08; supported_issi is a
/// bitmap ending at 0x6f (its last dword, 0x6c, holds ISSIs 0-31).
pub const QUERY_ISSI_OUT_CURRENT: Field = Field::new(0x08, 15, 0);
pub const QUERY_ISSI_OUT_SUPPORTED_DW0: Field = Field::new(0x6c, 31, 0);
pub const QUERY_ISSI_OUT_LEN: usize = 0x70;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IssiInfo {
    pub current: u16,
    /// Bit i set: ISSI i supported.
    pub supported: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct QueryIssi;

impl Command for QueryIssi {
    type Output = IssiInfo;
    const OPCODE: u16 = op::QUERY_ISSI;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        QUERY_ISSI_OUT_LEN
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, out: &[u8]) -> Result<IssiInfo, BadOutput> {
        Ok(IssiInfo {
            current: QUERY_ISSI_OUT_CURRENT.get(out) as u16,
            supported: QUERY_ISSI_OUT_SUPPORTED_DW0.get(out),
        })
    }
}

/// set_issi_in: current_issi `[15:0]` of dword 0x08.
pub type SetIssi = SimpleCmd<{ op::SET_ISSI }>;
pub const SET_ISSI_CURRENT: Field = Field::new(0x08, 15, 0);

pub fn set_issi(issi: u16) -> SetIssi {
    SetIssi::new(0, Some((SET_ISSI_CURRENT, issi as u32)))
}

/// INIT_HCA (`init_hca_in`, 0x20 bytes; sw_owner_id left 0).
#[derive(Clone, Copy, Debug)]
pub struct InitHca;

impl Command for InitHca {
    type Output = ();
    const OPCODE: u16 = op::INIT_HCA;
    fn in_len(&self) -> usize {
        0x20
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
    }
}

/// teardown_hca_in: profile `[15:0]` of dword 0x08 (0 graceful, 1 force).
pub type TeardownHca = SimpleCmd<{ op::TEARDOWN_HCA }>;
pub const TEARDOWN_PROFILE: Field = Field::new(0x08, 15, 0);
pub const TEARDOWN_GRACEFUL: TeardownHca = TeardownHca::new(0, Some((TEARDOWN_PROFILE, 0)));

/// SET_DRIVER_VERSION (`set_driver_version_in`, 0x50 bytes): a
/// NUL-padded ASCII string of up to 64 bytes at 0x10.
#[derive(Clone, Copy, Debug)]
pub struct SetDriverVersion<'a>(pub &'a str);

pub const DRIVER_VERSION_OFFSET: usize = 0x10;
pub const DRIVER_VERSION_LEN: usize = 0x40;

impl Command for SetDriverVersion<'_> {
    type Output = ();
    const OPCODE: u16 = op::SET_DRIVER_VERSION;
    fn in_len(&self) -> usize {
        DRIVER_VERSION_OFFSET + DRIVER_VERSION_LEN
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        let s = self.0.as_bytes();
        let n = s.len().min(DRIVER_VERSION_LEN - 1);
        inbox[DRIVER_VERSION_OFFSET..DRIVER_VERSION_OFFSET + n].copy_from_slice(&s[..n]);
    }
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

    #[test]
    fn enable_and_teardown_golden() {
        // enable_hca_in: opcode 0x104, function_id 0.
        assert_eq!(
            encode(&ENABLE_HCA),
            [0x01, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // teardown_hca_in: opcode 0x103, profile [15:0] at 0x08 = 0.
        assert_eq!(
            encode(&TEARDOWN_GRACEFUL),
            [0x01, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // set_issi_in: current_issi [15:0] at 0x08 (bytes 0x0a-0x0b).
        assert_eq!(
            encode(&set_issi(1)),
            [0x01, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0, 0, 0, 0]
        );
    }

    #[test]
    fn query_issi_parse() {
        let mut out = [0u8; 0x70];
        out[0x0b] = 1; // current_issi at 0x0a-0x0b
        out[0x6f] = 0x03; // ISSI 0 and 1 in the last byte of supported_issi
        assert_eq!(
            QueryIssi.parse(&out),
            Ok(IssiInfo {
                current: 1,
                supported: 3
            })
        );
    }

    #[test]
    fn driver_version_string() {
        let b = encode(&SetDriverVersion("cxos,mlx5,0.1.0"));
        assert_eq!(b.len(), 0x50);
        assert_eq!(&b[0..2], &[0x01, 0x0d]);
        assert_eq!(&b[0x10..0x1f], b"cxos,mlx5,0.1.0");
        assert!(b[0x1f..].iter().all(|&x| x == 0));
    }
}
