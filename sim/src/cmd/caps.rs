//! Capabilities: QUERY_HCA_CAP / SET_HCA_CAP (`query_hca_cap_in`,
//! `set_hca_cap_in`, `hca_cap_union` in mlx5_ifc.h). The capability area is
//! 4096 bytes at byte 0x10 of the output (query) or input (set).
//!
//! Types: 0 general (`cmd_hca_cap`), 1 Ethernet offloads
//! (`per_protocol_networking_offload_caps`), 7 NIC flow table
//! (`flow_table_nic_cap`). op_mod = type << 1 | (0 max, 1 current).
#![deny(unsafe_code)]

use super::reserved;
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::personality::Personality;
use crate::syndrome::{self as syn, CmdError};

pub const CAP_BYTES: usize = 4096;
pub const CAP_OFFSET: usize = 0x10;
/// `query_hca_cap_out`: header, reserved 8 bytes, capability.
pub const QUERY_OUT: usize = CAP_OFFSET + CAP_BYTES;

/// Capability types the model has.
pub mod cap_type {
    pub const GENERAL: u16 = 0;
    pub const ETHERNET: u16 = 1;
    pub const NIC_FLOW_TABLE: u16 = 7;
}

/// `cmd_hca_cap` fields (bit offsets from mlx5_ifc.h).
pub mod hca_cap {
    use crate::bits::{F, f};
    pub const LOG_MAX_QP_SZ: F = f(0x88, 8);
    pub const LOG_MAX_QP: F = f(0x9b, 5);
    pub const LOG_MAX_CQ_SZ: F = f(0xc8, 8);
    pub const LOG_MAX_CQ: F = f(0xdb, 5);
    pub const LOG_MAX_EQ_SZ: F = f(0xe0, 8);
    pub const LOG_MAX_MKEY: F = f(0xea, 6);
    pub const LOG_MAX_EQ: F = f(0xfc, 4);
    pub const MAX_INDIRECTION: F = f(0x100, 8);
    pub const LOG_MAX_MRW_SZ: F = f(0x109, 7);
    pub const LOG_MAX_KLM_LIST_SIZE: F = f(0x11a, 6);
    pub const CACHE_LINE_128BYTE: F = f(0x164, 1);
    pub const MAX_QP_CNT: F = f(0x186, 10);
    pub const PKEY_TABLE_SIZE: F = f(0x190, 16);
    pub const NIC_FLOW_TABLE: F = f(0x1a6, 1);
    pub const PORT_MODULE_EVENT: F = f(0x1b0, 1);
    pub const PORT_TYPE: F = f(0x1b6, 2);
    pub const NUM_PORTS: F = f(0x1b8, 8);
    pub const LOG_MAX_MSG: F = f(0x1c3, 5);
    pub const MAX_TC: F = f(0x1cc, 4);
    pub const CQE_VERSION: F = f(0x1fc, 4);
    pub const STRIDING_RQ: F = f(0x201, 1);
    pub const CMDIF_CHECKSUM: F = f(0x210, 2);
    pub const ETH_NET_OFFLOADS: F = f(0x21c, 1);
    pub const CQ_MODERATION: F = f(0x222, 1);
    pub const CQ_PERIOD_START_FROM_CQE: F = f(0x22b, 1);
    pub const UAR_4K: F = f(0x240, 1);
    pub const UAR_SZ: F = f(0x24a, 6);
    pub const LOG_PG_SZ: F = f(0x258, 8);
    pub const BF: F = f(0x260, 1);
    pub const DRIVER_VERSION: F = f(0x261, 1);
    pub const LOG_BF_REG_SIZE: F = f(0x26b, 5);
    pub const MAX_WQE_SZ_SQ: F = f(0x290, 16);
    pub const MAX_WQE_SZ_RQ: F = f(0x2b0, 16);
    pub const LOG_MAX_TRANSPORT_DOMAIN: F = f(0x323, 5);
    pub const LOG_MAX_PD: F = f(0x32b, 5);
    pub const LOG_MAX_RQ: F = f(0x363, 5);
    pub const LOG_MAX_SQ: F = f(0x36b, 5);
    pub const LOG_MAX_TIR: F = f(0x373, 5);
    pub const LOG_MAX_TIS: F = f(0x37b, 5);
    pub const BASIC_CYCLIC_RCV_WQE: F = f(0x380, 1);
    pub const LOG_MAX_RMP: F = f(0x383, 5);
    pub const LOG_MAX_RQT: F = f(0x38b, 5);
    pub const LOG_MAX_RQT_SIZE: F = f(0x393, 5);
    pub const LOG_MAX_TIS_PER_SQ: F = f(0x39b, 5);
    pub const LOG_MAX_STRIDE_SZ_RQ: F = f(0x3a3, 5);
    pub const LOG_MIN_STRIDE_SZ_RQ: F = f(0x3ab, 5);
    pub const LOG_MAX_STRIDE_SZ_SQ: F = f(0x3b3, 5);
    pub const LOG_MIN_STRIDE_SZ_SQ: F = f(0x3bb, 5);
    pub const LOG_MAX_WQ_SZ: F = f(0x3db, 5);
    pub const LOG_MAX_VLAN_LIST: F = f(0x3eb, 5);
    pub const LOG_MAX_CURRENT_MC_LIST: F = f(0x3f3, 5);
    pub const LOG_MAX_CURRENT_UC_LIST: F = f(0x3fb, 5);
    pub const LOG_UAR_PAGE_SZ: F = f(0x490, 16);
    pub const DEVICE_FREQUENCY_MHZ: F = f(0x4c0, 32);
    pub const DEVICE_FREQUENCY_KHZ: F = f(0x4e0, 32);
    pub const NUM_OF_UARS_PER_PAGE: F = f(0x520, 32);
    pub const MINI_CQE_RESP_STRIDE_INDEX: F = f(0x5bc, 1);
    pub const CQE_COMPRESSION: F = f(0x5bf, 1);
    pub const CQE_COMPRESSION_TIMEOUT: F = f(0x5c0, 16);
    pub const CQE_COMPRESSION_MAX_NUM: F = f(0x5d0, 16);
}

/// `per_protocol_networking_offload_caps` fields.
pub mod eth {
    use crate::bits::{F, f};
    pub const CSUM_CAP: F = f(0x0, 1);
    pub const VLAN_CAP: F = f(0x1, 1);
    pub const LRO_CAP: F = f(0x2, 1);
    pub const WQE_VLAN_INSERT: F = f(0x7, 1);
    pub const SELF_LB_EN_MODIFIABLE: F = f(0x8, 1);
    pub const MAX_LSO_CAP: F = f(0xb, 5);
    pub const MULTI_PKT_SEND_WQE: F = f(0x10, 2);
    pub const WQE_INLINE_MODE: F = f(0x12, 2);
    pub const RSS_IND_TBL_CAP: F = f(0x14, 4);
    pub const SCATTER_FCS: F = f(0x19, 1);
    pub const ENHANCED_MULTI_PKT_SEND_WQE: F = f(0x1a, 1);
    pub const LRO_MIN_MSS_SIZE: F = f(0x50, 16);
}

/// `flow_table_nic_cap`: `flow_table_properties_nic_receive`
/// (`flow_table_prop_layout`) at bit 0x200, transmit at bit 0xa00.
pub mod ft {
    use crate::bits::{F, f};
    pub const RX: usize = 0x200;
    pub const TX: usize = 0xa00;
    pub const FT_SUPPORT: F = f(0x0, 1);
    pub const FLOW_COUNTER: F = f(0x2, 1);
    pub const FLOW_MODIFY_EN: F = f(0x3, 1);
    pub const MODIFY_ROOT: F = f(0x4, 1);
    pub const IDENTIFIED_MISS_TABLE_MODE: F = f(0x5, 1);
    pub const FLOW_TABLE_MODIFY: F = f(0x6, 1);
    pub const LOG_MAX_FT_SIZE: F = f(0x22, 6);
    pub const MAX_FT_LEVEL: F = f(0x38, 8);
    pub const LOG_MAX_FT_NUM: F = f(0x78, 8);
    pub const LOG_MAX_FLOW_COUNTER: F = f(0x90, 8);
    pub const LOG_MAX_DESTINATION: F = f(0x98, 8);
    pub const LOG_MAX_FLOW: F = f(0xb8, 8);
    /// `ft_field_support` (`flow_table_fields_supported`) at bit 0x100:
    /// the outer fields the model's flow groups match on (`cmd::flow`):
    /// dmac, smac, ether_type, ip_version, first_prio / cfi / vid,
    /// ipv4_ttl, sip, dip, frag, ip_protocol, ip_ecn, ip_dscp, UDP and TCP
    /// ports, tcp_flags (bits 0..7 and 0xc..0x16 of the set).
    pub const FIELDS: [F; 19] = [
        f(0x100, 1),
        f(0x101, 1),
        f(0x102, 1),
        f(0x103, 1),
        f(0x104, 1),
        f(0x105, 1),
        f(0x106, 1),
        f(0x107, 1),
        f(0x10c, 1),
        f(0x10d, 1),
        f(0x10e, 1),
        f(0x10f, 1),
        f(0x110, 1),
        f(0x111, 1),
        f(0x112, 1),
        f(0x113, 1),
        f(0x114, 1),
        f(0x115, 1),
        f(0x116, 1),
    ];
}

/// Max and current capability areas of one function.
#[derive(Debug, Clone)]
pub struct Caps {
    personality: Personality,
    max: [Vec<u8>; 3],
    cur: [Vec<u8>; 3],
    /// A function without BlueFlame ([`Caps::without_blueflame`]).
    no_blueflame: bool,
}

/// Settable `cmd_hca_cap` fields (SET_HCA_CAP general): the value must not
/// exceed the maximum. Every other field of the input is ignored, as drivers
/// send back the whole current area with a few fields changed.
const SETTABLE: [F; 6] = [
    hca_cap::LOG_MAX_QP,
    hca_cap::PKEY_TABLE_SIZE,
    hca_cap::CMDIF_CHECKSUM,
    hca_cap::LOG_UAR_PAGE_SZ,
    hca_cap::UAR_4K,
    hca_cap::CACHE_LINE_128BYTE,
];

fn slot(t: u16) -> Option<usize> {
    match t {
        cap_type::GENERAL => Some(0),
        cap_type::ETHERNET => Some(1),
        cap_type::NIC_FLOW_TABLE => Some(2),
        _ => None,
    }
}

impl Caps {
    pub fn new(p: Personality) -> Caps {
        let max = [general(p), ethernet(p), flow_table(p)];
        Caps {
            personality: p,
            cur: max.clone(),
            max,
            no_blueflame: false,
        }
    }

    /// The part as a function without BlueFlame reports it (firmware
    /// that gives a function no BlueFlame registers, e.g. some VFs):
    /// `cmd_hca_cap.bf` and `log_bf_reg_size` 0, in the maximum and the
    /// current values, and across resets. The UAR page's doorbell at
    /// 0x800 still works; a BlueFlame write there is a driver bug
    /// (`crate::datapath::blueflame`).
    pub fn without_blueflame(&mut self) {
        self.no_blueflame = true;
        for area in [&mut self.max[0], &mut self.cur[0]] {
            set(area, hca_cap::BF, 0);
            set(area, hca_cap::LOG_BF_REG_SIZE, 0);
        }
    }

    /// Current values back to the defaults (function torn down).
    pub fn reset_current(&mut self) {
        let fresh = Caps::new(self.personality);
        self.cur = fresh.cur;
        if self.no_blueflame {
            self.without_blueflame();
        }
    }

    pub fn current(&self, t: u16) -> Option<&[u8]> {
        slot(t).map(|s| &self.cur[s][..])
    }

    pub fn max(&self, t: u16) -> Option<&[u8]> {
        slot(t).map(|s| &self.max[s][..])
    }

    /// Change a current value directly (tests shrinking a limit to reach
    /// it; variants of a part). Unknown types are ignored.
    pub fn set_current(&mut self, t: u16, fld: F, value: u64) {
        if let Some(s) = slot(t) {
            set(&mut self.cur[s], fld, value);
        }
    }

    pub fn general(&self, fld: F) -> u64 {
        get(&self.cur[0], fld)
    }
}

fn general(p: Personality) -> Vec<u8> {
    let c = p.caps();
    let mut b = vec![0u8; CAP_BYTES];
    let s = |b: &mut Vec<u8>, fld: F, v: u64| set(b, fld, v);
    s(&mut b, hca_cap::LOG_MAX_QP_SZ, 15);
    s(&mut b, hca_cap::LOG_MAX_QP, 18);
    s(&mut b, hca_cap::LOG_MAX_CQ_SZ, c.log_max_cq_sz as u64);
    s(&mut b, hca_cap::LOG_MAX_CQ, c.log_max_cq as u64);
    s(&mut b, hca_cap::LOG_MAX_EQ_SZ, c.log_max_eq_sz as u64);
    s(&mut b, hca_cap::LOG_MAX_MKEY, 24);
    s(&mut b, hca_cap::LOG_MAX_EQ, c.log_max_eq as u64);
    s(&mut b, hca_cap::MAX_INDIRECTION, 4);
    s(&mut b, hca_cap::LOG_MAX_MRW_SZ, 64);
    s(&mut b, hca_cap::LOG_MAX_KLM_LIST_SIZE, 16);
    s(&mut b, hca_cap::CACHE_LINE_128BYTE, 1);
    s(&mut b, hca_cap::MAX_QP_CNT, c.max_qp_cnt as u64);
    s(&mut b, hca_cap::PKEY_TABLE_SIZE, 0);
    s(&mut b, hca_cap::NIC_FLOW_TABLE, 1);
    s(&mut b, hca_cap::PORT_MODULE_EVENT, 1);
    // port_type 1 = Ethernet; one port per function.
    s(&mut b, hca_cap::PORT_TYPE, 1);
    s(&mut b, hca_cap::NUM_PORTS, 1);
    s(&mut b, hca_cap::LOG_MAX_MSG, 30);
    s(&mut b, hca_cap::MAX_TC, 8);
    s(&mut b, hca_cap::CQE_VERSION, 1);
    s(&mut b, hca_cap::STRIDING_RQ, c.striding_rq as u64);
    s(&mut b, hca_cap::CQE_COMPRESSION, c.cqe_compression as u64);
    if c.cqe_compression {
        // Sessions close at the end of a burst, never by a timer; the
        // timeout (units of 1 us) is reported as the PRM's default.
        s(&mut b, hca_cap::CQE_COMPRESSION_TIMEOUT, 0x60);
        s(
            &mut b,
            hca_cap::CQE_COMPRESSION_MAX_NUM,
            crate::datapath::mini_cqe::MAX_SESSION as u64,
        );
    }
    // Command signatures not supported: cmdif_checksum stays 0.
    s(&mut b, hca_cap::CMDIF_CHECKSUM, 0);
    s(&mut b, hca_cap::ETH_NET_OFFLOADS, 1);
    s(&mut b, hca_cap::CQ_MODERATION, 1);
    // Every part times the period from the first CQE as well as from the
    // last event (`cq_period_mode`); switching it by MODIFY_CQ
    // (`cq_period_mode_modify`) is not offered.
    s(&mut b, hca_cap::CQ_PERIOD_START_FROM_CQE, 1);
    s(&mut b, hca_cap::UAR_4K, 1);
    s(&mut b, hca_cap::UAR_SZ, 0);
    s(&mut b, hca_cap::LOG_PG_SZ, 12);
    s(&mut b, hca_cap::BF, 1);
    s(&mut b, hca_cap::DRIVER_VERSION, 1);
    s(&mut b, hca_cap::LOG_BF_REG_SIZE, 9);
    s(&mut b, hca_cap::MAX_WQE_SZ_SQ, 1024);
    s(&mut b, hca_cap::MAX_WQE_SZ_RQ, 512);
    s(
        &mut b,
        hca_cap::LOG_MAX_TRANSPORT_DOMAIN,
        c.log_max_transport_domain as u64,
    );
    s(&mut b, hca_cap::LOG_MAX_PD, c.log_max_pd as u64);
    s(&mut b, hca_cap::LOG_MAX_RQ, c.log_max_rq as u64);
    s(&mut b, hca_cap::LOG_MAX_SQ, c.log_max_sq as u64);
    s(&mut b, hca_cap::LOG_MAX_TIR, 16);
    s(&mut b, hca_cap::LOG_MAX_TIS, 16);
    s(&mut b, hca_cap::BASIC_CYCLIC_RCV_WQE, 1);
    s(&mut b, hca_cap::LOG_MAX_RMP, 16);
    s(&mut b, hca_cap::LOG_MAX_RQT, 16);
    s(&mut b, hca_cap::LOG_MAX_RQT_SIZE, c.rss_ind_tbl_cap as u64);
    s(&mut b, hca_cap::LOG_MAX_TIS_PER_SQ, 0);
    if c.striding_rq {
        s(&mut b, hca_cap::LOG_MAX_STRIDE_SZ_RQ, 13);
        s(&mut b, hca_cap::LOG_MIN_STRIDE_SZ_RQ, 6);
    }
    s(&mut b, hca_cap::LOG_MAX_STRIDE_SZ_SQ, 13);
    s(&mut b, hca_cap::LOG_MIN_STRIDE_SZ_SQ, 6);
    s(&mut b, hca_cap::LOG_MAX_WQ_SZ, c.log_max_wq_sz as u64);
    s(&mut b, hca_cap::LOG_MAX_VLAN_LIST, 8);
    s(&mut b, hca_cap::LOG_MAX_CURRENT_MC_LIST, 7);
    s(&mut b, hca_cap::LOG_MAX_CURRENT_UC_LIST, 7);
    s(&mut b, hca_cap::LOG_UAR_PAGE_SZ, 0);
    // The internal timer counts nanoseconds: a 1 GHz device clock.
    s(&mut b, hca_cap::DEVICE_FREQUENCY_MHZ, 1000);
    s(&mut b, hca_cap::DEVICE_FREQUENCY_KHZ, 1_000_000);
    s(&mut b, hca_cap::NUM_OF_UARS_PER_PAGE, 1);
    b
}

fn ethernet(p: Personality) -> Vec<u8> {
    let c = p.caps();
    let mut b = vec![0u8; CAP_BYTES];
    set(&mut b, eth::CSUM_CAP, 1);
    set(&mut b, eth::VLAN_CAP, 1);
    set(&mut b, eth::WQE_VLAN_INSERT, 1);
    set(&mut b, eth::SELF_LB_EN_MODIFIABLE, 1);
    set(&mut b, eth::MAX_LSO_CAP, c.max_lso_cap as u64);
    set(&mut b, eth::WQE_INLINE_MODE, c.wqe_inline_mode as u64);
    set(&mut b, eth::RSS_IND_TBL_CAP, c.rss_ind_tbl_cap as u64);
    set(
        &mut b,
        eth::ENHANCED_MULTI_PKT_SEND_WQE,
        c.enhanced_mpw as u64,
    );
    set(&mut b, eth::MULTI_PKT_SEND_WQE, c.legacy_mpw as u64);
    b
}

fn flow_table(_p: Personality) -> Vec<u8> {
    let mut b = vec![0u8; CAP_BYTES];
    // NIC receive only: transmit flow tables are not modelled.
    for base in [ft::RX] {
        let at = |fld: F| F {
            bit: fld.bit + base,
            width: fld.width,
        };
        set(&mut b, at(ft::FT_SUPPORT), 1);
        set(&mut b, at(ft::FLOW_COUNTER), 1);
        set(&mut b, at(ft::FLOW_MODIFY_EN), 1);
        set(&mut b, at(ft::MODIFY_ROOT), 1);
        set(&mut b, at(ft::IDENTIFIED_MISS_TABLE_MODE), 1);
        set(&mut b, at(ft::FLOW_TABLE_MODIFY), 1);
        set(&mut b, at(ft::LOG_MAX_FT_SIZE), 16);
        // Real parts report enough levels for Linux's NIC receive
        // namespace tree, whose last (anchor) table sits at level 66 in
        // 6.12; 128 leaves room as a later tree grows.
        set(&mut b, at(ft::MAX_FT_LEVEL), 128);
        set(&mut b, at(ft::LOG_MAX_FT_NUM), 8);
        set(&mut b, at(ft::LOG_MAX_FLOW_COUNTER), 16);
        set(&mut b, at(ft::LOG_MAX_DESTINATION), 5);
        set(&mut b, at(ft::LOG_MAX_FLOW), 16);
        for fld in ft::FIELDS {
            set(&mut b, at(fld), 1);
        }
    }
    b
}

/// `query_hca_cap_in`: other_function bit 0x40, ec_vf_function 0x41,
/// function_id 0x50; reserved 0x42..0x50, 0x60..0x80.
fn own_function(inp: &[u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x42, 0xe), f(0x60, 0x20)])?;
    if get(inp, f(0x40, 2)) != 0 || get(inp, f(0x50, 0x10)) != 0 {
        return Err(syn::BAD_FUNCTION);
    }
    Ok(())
}

pub fn query_hca_cap(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    own_function(inp)?;
    let op_mod = crate::bits::be16(inp, 6);
    let t = op_mod >> 1;
    let area = if op_mod & 1 == 1 {
        dev.caps.current(t)
    } else {
        dev.caps.max(t)
    };
    let Some(area) = area else {
        return Err(syn::CAP_TYPE);
    };
    out[CAP_OFFSET..QUERY_OUT].copy_from_slice(area);
    Ok(())
}

fn apply_set(dev: &mut Function, inp: &[u8]) -> Result<(), CmdError> {
    let op_mod = crate::bits::be16(inp, 6);
    if op_mod & 1 != 0 {
        return Err(syn::BAD_OP_MOD);
    }
    if op_mod >> 1 != cap_type::GENERAL {
        return Err(syn::CAP_TYPE);
    }
    let area = &inp[CAP_OFFSET..CAP_OFFSET + CAP_BYTES];
    for fld in SETTABLE {
        if get(area, fld) > get(&dev.caps.max[0], fld) {
            return Err(syn::CAP_VALUE);
        }
    }
    for fld in SETTABLE {
        let v = get(area, fld);
        set(&mut dev.caps.cur[0], fld, v);
    }
    Ok(())
}

pub fn set_hca_cap(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    own_function(inp)?;
    if dev.hca.initialized {
        return Err(syn::ALREADY_INITIALIZED);
    }
    apply_set(dev, inp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::footprint;

    /// Byte offsets and masks worked out by hand from the `reserved_at_*`
    /// anchors of `cmd_hca_cap` and `per_protocol_networking_offload_caps`.
    #[test]
    fn cap_fields_land_where_ifc_puts_them() {
        let golden: &[(F, &[(usize, u8)])] = &[
            (hca_cap::LOG_MAX_EQ, &[(0x1f, 0x0f)]),
            (hca_cap::LOG_MAX_EQ_SZ, &[(0x1c, 0xff)]),
            (hca_cap::LOG_MAX_CQ_SZ, &[(0x19, 0xff)]),
            (hca_cap::MAX_QP_CNT, &[(0x30, 0x03), (0x31, 0xff)]),
            (hca_cap::PORT_TYPE, &[(0x36, 0x03)]),
            (hca_cap::NUM_PORTS, &[(0x37, 0xff)]),
            (hca_cap::CQE_VERSION, &[(0x3f, 0x0f)]),
            (hca_cap::STRIDING_RQ, &[(0x40, 0x40)]),
            (hca_cap::CMDIF_CHECKSUM, &[(0x42, 0xc0)]),
            (hca_cap::LOG_PG_SZ, &[(0x4b, 0xff)]),
            (hca_cap::LOG_MAX_PD, &[(0x65, 0x1f)]),
            (hca_cap::LOG_MAX_WQ_SZ, &[(0x7b, 0x1f)]),
            (hca_cap::LOG_MAX_CURRENT_UC_LIST, &[(0x7f, 0x1f)]),
            (hca_cap::LOG_UAR_PAGE_SZ, &[(0x92, 0xff), (0x93, 0xff)]),
            (hca_cap::CQE_COMPRESSION, &[(0xb7, 0x01)]),
            (hca_cap::CQ_MODERATION, &[(0x44, 0x20)]),
            (hca_cap::CQ_PERIOD_START_FROM_CQE, &[(0x45, 0x10)]),
            (eth::WQE_INLINE_MODE, &[(0x02, 0x30)]),
            (eth::MULTI_PKT_SEND_WQE, &[(0x02, 0xc0)]),
            (eth::ENHANCED_MULTI_PKT_SEND_WQE, &[(0x03, 0x20)]),
            (eth::MAX_LSO_CAP, &[(0x01, 0x1f)]),
        ];
        for (fld, want) in golden {
            assert_eq!(footprint(*fld), want.to_vec(), "{fld:?}");
        }
    }

    #[test]
    fn nic_flow_table_receive_properties_start_at_byte_0x40() {
        let caps = Caps::new(Personality::ConnectX5);
        let ft = caps.max(cap_type::NIC_FLOW_TABLE).unwrap();
        // flow_table_prop_layout: ft_support is the MSB of its first byte;
        // log_max_ft_size bits 0x22..0x28 (byte 4 low 6 bits); max_ft_level byte 7.
        assert_eq!(ft[0x40] & 0x80, 0x80);
        assert_eq!(ft[0x44] & 0x3f, 16);
        assert_eq!(ft[0x47], 128);
        // flow_table_properties_nic_transmit at bit 0xa00: not modelled, 0.
        assert_eq!(ft[0x140] & 0x80, 0);
        assert_eq!(caps.max(5), None);
    }
}
