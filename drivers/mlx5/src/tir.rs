//! Transport interface receive (PRM "TIR"; `mlx5_ifc_tirc_bits`,
//! `create_tir_in/out`, `destroy_tir_in` in mlx5_ifc.h). Flow table
//! entries forward to a TIR. Every TIR the driver makes is indirect
//! (`disp_type` 1: an RQT and a Toeplitz hash): over the traffic's fields
//! for RSS ([`CreateTirIndirect`]), or over none for one RQ
//! ([`CreateTirSingle`]), whose RQ MODIFY_RQT can replace (a direct TIR's
//! `inline_rqn` cannot be changed).

use crate::cmd::{Command, SimpleCmd, op};
use crate::error::BadOutput;
use crate::layout::Field;
use crate::pd::Tdn;

/// A TIR number.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Tirn(pub u32);

/// `mlx5_ifc_tirc_bits` (0xf0 bytes).
pub mod tirc {
    use crate::layout::Field;
    /// disp_type: 0 direct, 1 indirect.
    pub const DISP_TYPE: Field = Field::new(0x04, 31, 28);
    pub const INLINE_RQN: Field = Field::new(0x1c, 23, 0);
    pub const INDIRECT_TABLE: Field = Field::new(0x20, 23, 0);
    pub const RX_HASH_FN: Field = Field::new(0x24, 31, 28);
    /// self_lb_block: 1 unicast, 2 multicast loopback blocked.
    pub const SELF_LB_BLOCK: Field = Field::new(0x24, 25, 24);
    pub const TRANSPORT_DOMAIN: Field = Field::new(0x24, 23, 0);
    /// rx_hash_toeplitz_key: 40 bytes, key order.
    pub const TOEPLITZ_KEY: usize = 0x28;
    /// rx_hash_field_selector_outer (`rx_hash_field_select`): l3_prot_type
    /// `[31]` (0 IPv4, 1 IPv6), l4_prot_type `[30]` (0 TCP, 1 UDP),
    /// selected_fields `[29:0]` (`MLX5_HASH_FIELD_SEL_*`).
    pub const HASH_L3: Field = Field::new(0x50, 31, 31);
    pub const HASH_L4: Field = Field::new(0x50, 30, 30);
    pub const HASH_FIELDS: Field = Field::new(0x50, 29, 0);
    pub const LEN: usize = 0xf0;
}

/// `MLX5_RX_HASH_FN_TOEPLITZ`.
pub const HASH_FN_TOEPLITZ: u32 = 2;
/// `MLX5_HASH_FIELD_SEL_*`.
pub const SEL_SRC_IP: u32 = 1 << 0;
pub const SEL_DST_IP: u32 = 1 << 1;
pub const SEL_L4_SPORT: u32 = 1 << 2;
pub const SEL_L4_DPORT: u32 = 1 << 3;

/// The traffic an indirect TIR hashes: IPv4 or IPv6, and TCP or UDP ports
/// (None: the addresses only).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HashedTraffic {
    pub ipv6: bool,
    /// Some(false) TCP, Some(true) UDP.
    pub udp: Option<bool>,
}

/// CREATE_TIR, indirect: Toeplitz hash over the traffic's addresses (and
/// ports), the RQ from the RQT.
#[derive(Clone, Copy, Debug)]
pub struct CreateTirIndirect {
    pub rqt: crate::rqt::Rqtn,
    pub td: Tdn,
    pub key: [u8; 40],
    pub traffic: HashedTraffic,
}

impl Command for CreateTirIndirect {
    type Output = Tirn;
    const OPCODE: u16 = op::CREATE_TIR;
    fn in_len(&self) -> usize {
        CTX + tirc::LEN
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        build_indirect(inbox, self.rqt, self.td);
        let f = |x: Field| x.within(CTX);
        let k = CTX + tirc::TOEPLITZ_KEY;
        inbox[k..k + 40].copy_from_slice(&self.key);
        f(tirc::HASH_L3).set(inbox, self.traffic.ipv6 as u32);
        let mut sel = SEL_SRC_IP | SEL_DST_IP;
        if let Some(udp) = self.traffic.udp {
            f(tirc::HASH_L4).set(inbox, udp as u32);
            sel |= SEL_L4_SPORT | SEL_L4_DPORT;
        }
        f(tirc::HASH_FIELDS).set(inbox, sel);
    }
    fn parse(&self, out: &[u8]) -> Result<Tirn, BadOutput> {
        Ok(Tirn(TIRN.get(out)))
    }
}

/// create_tir_in: tirc at 0x20.
pub const CTX: usize = 0x20;
/// tirn `[23:0]` of dword 0x08 in create_tir_out and destroy_tir_in.
pub const TIRN: Field = Field::new(0x08, 23, 0);

/// The part of `tirc` every indirect TIR has: `disp_type` 1, the RQT,
/// Toeplitz, the transport domain (the hash fields stay 0: none).
fn build_indirect(inbox: &mut [u8], rqt: crate::rqt::Rqtn, td: Tdn) {
    let f = |x: Field| x.within(CTX);
    f(tirc::DISP_TYPE).set(inbox, 1);
    f(tirc::INDIRECT_TABLE).set(inbox, rqt.0);
    f(tirc::RX_HASH_FN).set(inbox, HASH_FN_TOEPLITZ);
    f(tirc::TRANSPORT_DOMAIN).set(inbox, td.0);
}

/// CREATE_TIR dispatching everything to the single RQ of `rqt`: indirect,
/// Toeplitz over no fields (hash 0, entry 0). Unlike a direct TIR (whose
/// inline_rqn MODIFY_TIR cannot change), its RQ can be replaced with
/// MODIFY_RQT when the RQ is recreated.
#[derive(Clone, Copy, Debug)]
pub struct CreateTirSingle {
    pub rqt: crate::rqt::Rqtn,
    pub td: Tdn,
}

impl Command for CreateTirSingle {
    type Output = Tirn;
    const OPCODE: u16 = op::CREATE_TIR;
    fn in_len(&self) -> usize {
        CTX + tirc::LEN
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        build_indirect(inbox, self.rqt, self.td);
    }
    fn parse(&self, out: &[u8]) -> Result<Tirn, BadOutput> {
        Ok(Tirn(TIRN.get(out)))
    }
}

pub type DestroyTir = SimpleCmd<{ op::DESTROY_TIR }>;

pub fn destroy_tir(tirn: Tirn) -> DestroyTir {
    DestroyTir::new(0, Some((TIRN, tirn.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

    #[test]
    fn single_golden() {
        let b = encode(&CreateTirSingle {
            rqt: crate::rqt::Rqtn(0x0203),
            td: Tdn(0x0c),
        });
        assert_eq!(b.len(), 0x110);
        assert_eq!(&b[0..4], &[0x09, 0x00, 0, 0]);
        // tirc 0x04 disp_type [31:28] = 1 indirect -> 0x24.
        assert_eq!(&b[0x24..0x28], &[0x10, 0, 0, 0]);
        // tirc 0x20 indirect_table [23:0] -> 0x40.
        assert_eq!(&b[0x40..0x44], &[0, 0, 0x02, 0x03]);
        // tirc 0x24 rx_hash_fn [31:28] = 2 Toeplitz, transport_domain -> 0x44.
        assert_eq!(&b[0x44..0x48], &[0x20, 0, 0, 0x0c]);
        // tirc 0x50 hash field selector: no fields -> 0x70; no key.
        assert_eq!(&b[0x70..0x74], &[0, 0, 0, 0]);
        assert!(b[0x48..0x70].iter().all(|x| *x == 0));
        // create_tir_out: tirn [23:0] at 0x08 (icm_address_39_32 above it).
        let out = [0, 0, 0, 0, 0, 0, 0, 0, 0xee, 0, 0, 0x21, 0, 0, 0, 0];
        assert_eq!(
            CreateTirSingle {
                rqt: crate::rqt::Rqtn(0),
                td: Tdn(0)
            }
            .parse(&out),
            Ok(Tirn(0x21))
        );
        // destroy_tir_in: opcode 0x902, tirn at 0x08.
        assert_eq!(
            encode(&destroy_tir(Tirn(0x21)))[..12],
            [0x09, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x21]
        );
    }

    #[test]
    fn indirect_golden() {
        let mut key = [0u8; 40];
        key[0] = 0xaa;
        key[39] = 0x55;
        let b = encode(&CreateTirIndirect {
            rqt: crate::rqt::Rqtn(0x0102),
            td: Tdn(3),
            key,
            traffic: HashedTraffic {
                ipv6: true,
                udp: Some(true),
            },
        });
        // tirc 0x04 disp_type [31:28] = 1 -> 0x24.
        assert_eq!(&b[0x24..0x28], &[0x10, 0, 0, 0]);
        // tirc 0x20 indirect_table -> 0x40; 0x24 rx_hash_fn [31:28] = 2,
        // transport_domain -> 0x44.
        assert_eq!(&b[0x40..0x48], &[0, 0, 0x01, 0x02, 0x20, 0, 0, 3]);
        // key at tirc 0x28 -> 0x48..0x70.
        assert_eq!((b[0x48], b[0x6f]), (0xaa, 0x55));
        // outer selector at tirc 0x50 -> 0x70: IPv6 [31], UDP [30], fields
        // src/dst IP and ports = 0xf.
        assert_eq!(&b[0x70..0x74], &[0xc0, 0, 0, 0x0f]);
        let b = encode(&CreateTirIndirect {
            rqt: crate::rqt::Rqtn(1),
            td: Tdn(3),
            key,
            traffic: HashedTraffic {
                ipv6: false,
                udp: None,
            },
        });
        assert_eq!(&b[0x70..0x74], &[0, 0, 0, 0x03]);
    }
}
