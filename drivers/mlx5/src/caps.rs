//! Capabilities (PRM "QUERY_HCA_CAP", "SET_HCA_CAP"; `mlx5_ifc_cmd_hca_cap_bits`,
//! `per_protocol_networking_offload_caps_bits`, `flow_table_nic_cap_bits`,
//! `query_hca_cap_in/out_bits`, `set_hca_cap_in_bits`).

use alloc::vec::Vec;

use crate::cmd::{Command, op};
use crate::error::BadOutput;
use crate::layout::Field;

/// The capability block starts at 0x10 of query_hca_cap_out and
/// set_hca_cap_in and is 4 KiB long (`hca_cap_union`).
pub const CAP_OFFSET: usize = 0x10;
pub const CAP_LEN: usize = 0x1000;

/// Capability types (op_mod = type << 1 | current).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CapType {
    General = 0,
    EthernetOffloads = 1,
    NicFlowTable = 7,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CapMode {
    Max = 0,
    Current = 1,
}

/// QUERY_HCA_CAP: returns the 4 KiB capability block.
#[derive(Clone, Copy, Debug)]
pub struct QueryHcaCap {
    pub kind: CapType,
    pub mode: CapMode,
}

impl Command for QueryHcaCap {
    type Output = Vec<u8>;
    const OPCODE: u16 = op::QUERY_HCA_CAP;
    fn op_mod(&self) -> u16 {
        ((self.kind as u16) << 1) | self.mode as u16
    }
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        CAP_OFFSET + CAP_LEN
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, out: &[u8]) -> Result<Vec<u8>, BadOutput> {
        Ok(out[CAP_OFFSET..CAP_OFFSET + CAP_LEN].to_vec())
    }
}

/// SET_HCA_CAP with a complete capability block.
#[derive(Clone, Copy, Debug)]
pub struct SetHcaCap<'a> {
    pub kind: CapType,
    pub caps: &'a [u8],
}

impl Command for SetHcaCap<'_> {
    type Output = ();
    const OPCODE: u16 = op::SET_HCA_CAP;
    fn op_mod(&self) -> u16 {
        (self.kind as u16) << 1
    }
    fn in_len(&self) -> usize {
        CAP_OFFSET + CAP_LEN
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        let n = self.caps.len().min(CAP_LEN);
        inbox[CAP_OFFSET..CAP_OFFSET + n].copy_from_slice(&self.caps[..n]);
    }
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
    }
}

/// `cmd_hca_cap` fields (offsets inside the capability block).
pub mod general {
    use crate::layout::Field;
    pub const VHCA_ID: Field = Field::new(0x04, 15, 0);
    pub const LOG_MAX_CQ_SZ: Field = Field::new(0x18, 23, 16);
    pub const LOG_MAX_CQ: Field = Field::new(0x18, 4, 0);
    pub const LOG_MAX_EQ_SZ: Field = Field::new(0x1c, 31, 24);
    pub const LOG_MAX_EQ: Field = Field::new(0x1c, 3, 0);
    pub const VPORT_GROUP_MANAGER: Field = Field::new(0x34, 31, 31);
    pub const NIC_FLOW_TABLE: Field = Field::new(0x34, 25, 25);
    pub const PCAM_REG: Field = Field::new(0x34, 21, 21);
    pub const PORT_TYPE: Field = Field::new(0x34, 9, 8);
    pub const NUM_PORTS: Field = Field::new(0x34, 7, 0);
    pub const LOG_MAX_MSG: Field = Field::new(0x38, 28, 24);
    pub const CQE_VERSION: Field = Field::new(0x3c, 3, 0);
    pub const STRIDING_RQ: Field = Field::new(0x40, 30, 30);
    pub const CMDIF_CHECKSUM: Field = Field::new(0x40, 15, 14);
    pub const ETH_NET_OFFLOADS: Field = Field::new(0x40, 3, 3);
    /// cq_moderation (bit 0x222) and cq_period_start_from_cqe (bit 0x22b).
    pub const CQ_MODERATION: Field = Field::new(0x44, 29, 29);
    pub const CQ_PERIOD_START_FROM_CQE: Field = Field::new(0x44, 20, 20);
    pub const UAR_4K: Field = Field::new(0x48, 31, 31);
    pub const UAR_SZ: Field = Field::new(0x48, 21, 16);
    pub const LOG_PG_SZ: Field = Field::new(0x48, 7, 0);
    pub const BF: Field = Field::new(0x4c, 31, 31);
    pub const DRIVER_VERSION: Field = Field::new(0x4c, 30, 30);
    pub const LOG_BF_REG_SIZE: Field = Field::new(0x4c, 20, 16);
    pub const LOG_MAX_TRANSPORT_DOMAIN: Field = Field::new(0x64, 28, 24);
    pub const LOG_MAX_PD: Field = Field::new(0x64, 20, 16);
    pub const LOG_MAX_RQ: Field = Field::new(0x6c, 28, 24);
    pub const LOG_MAX_SQ: Field = Field::new(0x6c, 20, 16);
    pub const LOG_MAX_TIR: Field = Field::new(0x6c, 12, 8);
    pub const LOG_MAX_TIS: Field = Field::new(0x6c, 4, 0);
    pub const LOG_MAX_RQT: Field = Field::new(0x70, 20, 16);
    pub const LOG_MAX_RQT_SIZE: Field = Field::new(0x70, 12, 8);
    pub const LOG_MAX_STRIDE_SZ_RQ: Field = Field::new(0x74, 28, 24);
    pub const LOG_MIN_STRIDE_SZ_RQ: Field = Field::new(0x74, 20, 16);
    pub const LOG_MAX_CURRENT_MC_LIST: Field = Field::new(0x7c, 12, 8);
    pub const LOG_MAX_CURRENT_UC_LIST: Field = Field::new(0x7c, 4, 0);
    pub const MAX_NUM_EQS: Field = Field::new(0x8c, 15, 0);
    pub const LOG_UAR_PAGE_SZ: Field = Field::new(0x90, 15, 0);
    pub const CQE_COMPRESSION: Field = Field::new(0xb4, 0, 0);
    pub const LEN: usize = 0x100;
}

const _: () = assert!(general::CQE_COMPRESSION.end() <= general::LEN);
const _: () = assert!(general::LEN <= CAP_LEN);
const _: () = assert!(flow::NIC_RX + flow::LOG_MAX_FLOW.end() <= 0x80);

/// `per_protocol_networking_offload_caps` fields.
pub mod eth {
    use crate::layout::Field;
    pub const CSUM_CAP: Field = Field::new(0x00, 31, 31);
    pub const VLAN_CAP: Field = Field::new(0x00, 30, 30);
    pub const LRO_CAP: Field = Field::new(0x00, 29, 29);
    pub const WQE_VLAN_INSERT: Field = Field::new(0x00, 24, 24);
    pub const MAX_LSO_CAP: Field = Field::new(0x00, 20, 16);
    pub const MULTI_PKT_SEND_WQE: Field = Field::new(0x00, 15, 14);
    pub const WQE_INLINE_MODE: Field = Field::new(0x00, 13, 12);
    pub const RSS_IND_TBL_CAP: Field = Field::new(0x00, 11, 8);
    pub const SCATTER_FCS: Field = Field::new(0x00, 6, 6);
    pub const ENHANCED_MULTI_PKT_SEND_WQE: Field = Field::new(0x00, 5, 5);
}

/// `flow_table_nic_cap`: `flow_table_properties_nic_receive` at 0x40
/// (`flow_table_prop_layout`).
pub mod flow {
    use crate::layout::Field;
    pub const NIC_RX: usize = 0x40;
    pub const FT_SUPPORT: Field = Field::new(0x00, 31, 31);
    pub const LOG_MAX_FT_SIZE: Field = Field::new(0x04, 29, 24);
    pub const MAX_FT_LEVEL: Field = Field::new(0x04, 7, 0);
    pub const LOG_MAX_FT_NUM: Field = Field::new(0x0c, 7, 0);
    pub const LOG_MAX_FLOW: Field = Field::new(0x14, 7, 0);
}

/// Port types (`port_type`).
pub const PORT_TYPE_ETH: u8 = 1;

/// The general capabilities the driver uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct GeneralCaps {
    pub vhca_id: u16,
    pub log_max_cq_sz: u8,
    pub log_max_cq: u8,
    pub log_max_eq_sz: u8,
    pub log_max_eq: u8,
    pub max_num_eqs: u16,
    pub vport_group_manager: bool,
    pub nic_flow_table: bool,
    pub pcam_reg: bool,
    pub port_type: u8,
    pub num_ports: u8,
    pub log_max_msg: u8,
    pub cqe_version: u8,
    pub striding_rq: bool,
    pub cmdif_checksum: u8,
    pub eth_net_offloads: bool,
    pub uar_4k: bool,
    pub uar_sz: u8,
    pub log_pg_sz: u8,
    pub bf: bool,
    pub driver_version: bool,
    pub log_bf_reg_size: u8,
    pub log_max_transport_domain: u8,
    pub log_max_pd: u8,
    pub log_max_rq: u8,
    pub log_max_sq: u8,
    pub log_max_tir: u8,
    pub log_max_tis: u8,
    pub log_max_rqt: u8,
    pub log_max_rqt_size: u8,
    pub log_max_stride_sz_rq: u8,
    pub log_min_stride_sz_rq: u8,
    pub log_max_current_uc_list: u8,
    pub log_max_current_mc_list: u8,
    pub log_uar_page_sz: u16,
    pub cqe_compression: bool,
    pub cq_moderation: bool,
    pub cq_period_start_from_cqe: bool,
}

impl GeneralCaps {
    pub fn parse(c: &[u8]) -> GeneralCaps {
        use general::*;
        let g = |f: Field| f.get(c);
        GeneralCaps {
            vhca_id: g(VHCA_ID) as u16,
            log_max_cq_sz: g(LOG_MAX_CQ_SZ) as u8,
            log_max_cq: g(LOG_MAX_CQ) as u8,
            log_max_eq_sz: g(LOG_MAX_EQ_SZ) as u8,
            log_max_eq: g(LOG_MAX_EQ) as u8,
            max_num_eqs: g(MAX_NUM_EQS) as u16,
            vport_group_manager: g(VPORT_GROUP_MANAGER) != 0,
            nic_flow_table: g(NIC_FLOW_TABLE) != 0,
            pcam_reg: g(PCAM_REG) != 0,
            port_type: g(PORT_TYPE) as u8,
            num_ports: g(NUM_PORTS) as u8,
            log_max_msg: g(LOG_MAX_MSG) as u8,
            cqe_version: g(CQE_VERSION) as u8,
            striding_rq: g(STRIDING_RQ) != 0,
            cmdif_checksum: g(CMDIF_CHECKSUM) as u8,
            eth_net_offloads: g(ETH_NET_OFFLOADS) != 0,
            uar_4k: g(UAR_4K) != 0,
            uar_sz: g(UAR_SZ) as u8,
            log_pg_sz: g(LOG_PG_SZ) as u8,
            bf: g(BF) != 0,
            driver_version: g(DRIVER_VERSION) != 0,
            log_bf_reg_size: g(LOG_BF_REG_SIZE) as u8,
            log_max_transport_domain: g(LOG_MAX_TRANSPORT_DOMAIN) as u8,
            log_max_pd: g(LOG_MAX_PD) as u8,
            log_max_rq: g(LOG_MAX_RQ) as u8,
            log_max_sq: g(LOG_MAX_SQ) as u8,
            log_max_tir: g(LOG_MAX_TIR) as u8,
            log_max_tis: g(LOG_MAX_TIS) as u8,
            log_max_rqt: g(LOG_MAX_RQT) as u8,
            log_max_rqt_size: g(LOG_MAX_RQT_SIZE) as u8,
            log_max_stride_sz_rq: g(LOG_MAX_STRIDE_SZ_RQ) as u8,
            log_min_stride_sz_rq: g(LOG_MIN_STRIDE_SZ_RQ) as u8,
            log_max_current_uc_list: g(LOG_MAX_CURRENT_UC_LIST) as u8,
            log_max_current_mc_list: g(LOG_MAX_CURRENT_MC_LIST) as u8,
            log_uar_page_sz: g(LOG_UAR_PAGE_SZ) as u16,
            cqe_compression: g(CQE_COMPRESSION) != 0,
            cq_moderation: g(CQ_MODERATION) != 0,
            cq_period_start_from_cqe: g(CQ_PERIOD_START_FROM_CQE) != 0,
        }
    }

    /// How many EQs the function may create.
    pub fn max_eqs(&self) -> usize {
        if self.max_num_eqs != 0 {
            self.max_num_eqs as usize
        } else {
            1usize << self.log_max_eq
        }
    }
}

/// What the driver writes with SET_HCA_CAP: the current block with
/// command checksums off and 4 KiB UAR pages.
pub fn general_caps_to_set(current: &[u8]) -> Vec<u8> {
    let mut c = current.to_vec();
    general::CMDIF_CHECKSUM.set(&mut c, 0);
    general::LOG_UAR_PAGE_SZ.set(&mut c, 0);
    c
}

/// Ethernet offload capabilities.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EthCaps {
    pub csum: bool,
    pub vlan: bool,
    pub lro: bool,
    pub wqe_vlan_insert: bool,
    pub max_lso: u8,
    pub multi_pkt_send_wqe: u8,
    /// 0: L2 headers must be inlined; 1: vport context decides; 2: none.
    pub wqe_inline_mode: u8,
    pub rss_ind_tbl_cap: u8,
    pub scatter_fcs: bool,
    pub enhanced_multi_pkt_send_wqe: bool,
}

impl EthCaps {
    pub fn parse(c: &[u8]) -> EthCaps {
        use eth::*;
        EthCaps {
            csum: CSUM_CAP.get(c) != 0,
            vlan: VLAN_CAP.get(c) != 0,
            lro: LRO_CAP.get(c) != 0,
            wqe_vlan_insert: WQE_VLAN_INSERT.get(c) != 0,
            max_lso: MAX_LSO_CAP.get(c) as u8,
            multi_pkt_send_wqe: MULTI_PKT_SEND_WQE.get(c) as u8,
            wqe_inline_mode: WQE_INLINE_MODE.get(c) as u8,
            rss_ind_tbl_cap: RSS_IND_TBL_CAP.get(c) as u8,
            scatter_fcs: SCATTER_FCS.get(c) != 0,
            enhanced_multi_pkt_send_wqe: ENHANCED_MULTI_PKT_SEND_WQE.get(c) != 0,
        }
    }
}

/// NIC receive flow table properties.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FlowCaps {
    pub ft_support: bool,
    pub log_max_ft_size: u8,
    pub max_ft_level: u8,
    pub log_max_ft_num: u8,
    pub log_max_flow: u8,
}

impl FlowCaps {
    pub fn parse(c: &[u8]) -> FlowCaps {
        use flow::*;
        let b = NIC_RX;
        FlowCaps {
            ft_support: FT_SUPPORT.within(b).get(c) != 0,
            log_max_ft_size: LOG_MAX_FT_SIZE.within(b).get(c) as u8,
            max_ft_level: MAX_FT_LEVEL.within(b).get(c) as u8,
            log_max_ft_num: LOG_MAX_FT_NUM.within(b).get(c) as u8,
            log_max_flow: LOG_MAX_FLOW.within(b).get(c) as u8,
        }
    }
}

/// Everything the driver learned from QUERY_HCA_CAP.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Caps {
    pub general: GeneralCaps,
    pub general_max: GeneralCaps,
    pub eth: EthCaps,
    pub flow: FlowCaps,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;
    use alloc::vec;

    #[test]
    fn query_op_mod() {
        // op_mod = type << 1 | current.
        let q = QueryHcaCap {
            kind: CapType::EthernetOffloads,
            mode: CapMode::Current,
        };
        assert_eq!(encode(&q)[..8], [0x01, 0x00, 0, 0, 0, 0, 0x00, 0x03]);
        let q = QueryHcaCap {
            kind: CapType::NicFlowTable,
            mode: CapMode::Max,
        };
        assert_eq!(q.op_mod(), 0x0e);
    }

    #[test]
    fn general_caps_from_golden_bytes() {
        let mut c = vec![0u8; CAP_LEN];
        // cmd_hca_cap 0x34: vport_group_manager [31], nic_flow_table [25],
        // port_type [9:8] = 1 (Ethernet), num_ports [7:0] = 1.
        c[0x34..0x38].copy_from_slice(&[0x82, 0x00, 0x01, 0x01]);
        // 0x3c: cqe_version [3:0] = 1.
        c[0x3c..0x40].copy_from_slice(&[0x00, 0x00, 0x00, 0x01]);
        // 0x40: striding_rq [30], cmdif_checksum [15:14] = 3, eth_net_offloads [3].
        c[0x40..0x44].copy_from_slice(&[0x40, 0x00, 0xc0, 0x08]);
        // 0x48: log_pg_sz [7:0] = 12.
        c[0x48..0x4c].copy_from_slice(&[0x00, 0x00, 0x00, 0x0c]);
        // 0x1c: log_max_eq_sz [31:24] = 22, log_max_eq [3:0] = 4.
        c[0x1c..0x20].copy_from_slice(&[0x16, 0x00, 0x00, 0x04]);
        // 0x4c: driver_version [30].
        c[0x4c..0x50].copy_from_slice(&[0x40, 0x00, 0x00, 0x00]);
        // 0x90: log_uar_page_sz [15:0] = 3.
        c[0x90..0x94].copy_from_slice(&[0x00, 0x00, 0x00, 0x03]);
        // 0x74: log_max_stride_sz_rq [28:24] = 13, log_min [20:16] = 6.
        c[0x74..0x78].copy_from_slice(&[0x0d, 0x06, 0x00, 0x00]);
        let g = GeneralCaps::parse(&c);
        assert!(!g.cq_moderation && !g.cq_period_start_from_cqe);
        // 0x44: cq_moderation (bit 0x222) [29] = byte 0x44 0x20;
        // cq_period_start_from_cqe (bit 0x22b) [20] = byte 0x45 0x10.
        let mut m = c.clone();
        m[0x44] = 0x20;
        assert!(GeneralCaps::parse(&m).cq_moderation);
        m[0x44] = 0;
        m[0x45] = 0x10;
        assert!(GeneralCaps::parse(&m).cq_period_start_from_cqe);
        assert!(!GeneralCaps::parse(&m).cq_moderation);
        assert!(g.vport_group_manager && g.nic_flow_table && !g.pcam_reg);
        assert_eq!((g.port_type, g.num_ports, g.cqe_version), (1, 1, 1));
        assert!(g.striding_rq && g.eth_net_offloads && g.driver_version);
        assert_eq!(g.cmdif_checksum, 3);
        assert_eq!(g.log_pg_sz, 12);
        assert_eq!((g.log_max_eq_sz, g.log_max_eq), (22, 4));
        assert_eq!(g.max_eqs(), 16);
        assert_eq!(g.log_uar_page_sz, 3);
        assert_eq!((g.log_max_stride_sz_rq, g.log_min_stride_sz_rq), (13, 6));

        let set = general_caps_to_set(&c);
        // Only cmdif_checksum and log_uar_page_sz change.
        assert_eq!(&set[0x40..0x44], &[0x40, 0x00, 0x00, 0x08]);
        assert_eq!(&set[0x90..0x94], &[0, 0, 0, 0]);
        assert_eq!(&set[..0x40], &c[..0x40]);
    }

    #[test]
    fn eth_and_flow_caps_from_golden_bytes() {
        let mut c = vec![0u8; CAP_LEN];
        // per_protocol_networking_offload_caps 0x00: csum [31], vlan [30],
        // max_lso [20:16] = 16, wqe_inline_mode [13:12] = 2.
        c[0..4].copy_from_slice(&[0xc0, 0x10, 0x20, 0x00]);
        let e = EthCaps::parse(&c);
        assert!(e.csum && e.vlan && !e.lro);
        assert_eq!((e.max_lso, e.wqe_inline_mode), (16, 2));
        let mut c = vec![0u8; CAP_LEN];
        // flow_table_nic_cap 0x40 (nic receive): ft_support [31];
        // 0x44: log_max_ft_size [29:24] = 20, max_ft_level [7:0] = 64.
        c[0x40] = 0x80;
        c[0x44..0x48].copy_from_slice(&[0x14, 0, 0, 0x40]);
        let f = FlowCaps::parse(&c);
        assert!(f.ft_support);
        assert_eq!((f.log_max_ft_size, f.max_ft_level), (20, 64));
    }
}
