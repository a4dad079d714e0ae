//! The five parts the model can be, and what differs between them.
//!
//! Values are the model's choices, made to be plausible for each part and,
//! above all, to differ where the parts differ so that a driver reading
//! capabilities (not device ids) is tested on every path: inline mode,
//! striding RQ, queue size limits, port speeds (legacy vs extended PTYS
//! protocols), firmware version.
//!
//! What the model advertises, it implements as the PRM says; a feature it
//! does not implement has its capability read 0, so a driver that reads
//! capabilities (cxos, Linux's mlx5_core) never turns it on. Off on every
//! personality, though the real part has it:
//!
//! | capability (mlx5_ifc.h) | real parts | why off |
//! |---|---|---|
//! | `lro_cap`, `lro_*` | all | no large receive offload |
//! | `scatter_fcs` | all | the FCS is never delivered |
//! | `tunnel_stateless_*`, `swp*` | CX4 Lx / CX5 and later | no inner-header offloads |
//! | `umr_ptr_rlky`, `reg_umr_sq`, `umr_extended_translation_offset` | all | no UMR WQEs: Linux then uses the cyclic (legacy) RQ, never the striding one |
//! | `flow_table_properties_nic_transmit.*` | all | NIC transmit flow tables are not modelled |
//! | `atomic`, `roce`, `pg` (ODP), `ipoib_*`, `qos`, `dct`, `crypto`, `ipsec_offload`, `tls_*`, `macsec` | part-dependent | not an Ethernet NIC function's data path |
//! | `pcam_reg` / `mcam_reg` / `qcam_reg` | all | the feature masks of PCAM/MCAM/QCAM are not modelled, so optional port registers stay unused |
//!
//! Enhanced multi-packet send (`enhanced_multi_pkt_send_wqe`, CX5 and
//! later) is on: the transmit engine executes ENHANCED_MPSW WQEs
//! (`crate::datapath::empw`). Linux 6.12 sends its TX MPWQE sessions
//! whenever the bit is set; cxos uses it for transmit bursts.
//!
//! Legacy multi-packet send (`multi_pkt_send_wqe`, ConnectX-4 Lx only) is
//! on there: the transmit engine executes MPW sessions (LSO opcode with
//! opcode modifier 1) on SQs created with `allow_multi_pkt_send_wqe`
//! (`crate::datapath::mpw`). Linux's Ethernet driver never sends them;
//! cxos uses them for transmit bursts on that part.
//!
//! CQE compression (`cqe_compression`, CX4 Lx and later) is on: the
//! model builds compressed sessions from the responder CQEs of a burst
//! of received frames (`crate::datapath::mini_cqe`).
//!
//! Striding RQ (`striding_rq`, CX5 and later) is on: the receive engine
//! implements it and cxos uses it. Linux uses a striding RQ only with UMR,
//! so against this model it runs the cyclic RQ on every part.
#![deny(unsafe_code)]

/// A ConnectX part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Personality {
    ConnectX4,
    ConnectX4Lx,
    ConnectX5,
    ConnectX6,
    ConnectX6Dx,
}

/// PTYS legacy `eth_proto` bits (`enum mlx5e_link_mode`, port.h).
pub mod eth_proto {
    pub const P1000BASE_T: u32 = 1 << 25;
    pub const P10GBASE_CR: u32 = 1 << 12;
    pub const P10GBASE_SR: u32 = 1 << 13;
    pub const P40GBASE_CR4: u32 = 1 << 6;
    pub const P40GBASE_SR4: u32 = 1 << 15;
    pub const P50GBASE_CR2: u32 = 1 << 30;
    pub const P100GBASE_CR4: u32 = 1 << 20;
    pub const P100GBASE_SR4: u32 = 1 << 21;
    pub const P25GBASE_CR: u32 = 1 << 27;
    pub const P25GBASE_SR: u32 = 1 << 29;
}

/// PTYS extended `ext_eth_proto` bits (`enum mlx5e_ext_link_mode`, port.h).
pub mod ext_eth_proto {
    pub const P1000BASE_X_SGMII: u32 = 1 << 1;
    pub const P10GBASE_XFI: u32 = 1 << 4;
    pub const P40GBASE_XLAUI_4: u32 = 1 << 5;
    pub const P25GAUI_1: u32 = 1 << 6;
    pub const P50GAUI_1: u32 = 1 << 8;
    pub const CAUI_4_100G: u32 = 1 << 9;
    pub const P100GAUI_2: u32 = 1 << 10;
    pub const P200GAUI_4: u32 = 1 << 12;
}

/// Speed in Mb/s of PTYS protocol bit `bit` (`enum mlx5e_link_mode`, or
/// `enum mlx5e_ext_link_mode` when `ext`); 0 for bits the model never
/// sets.
pub fn proto_speed(ext: bool, bit: u32) -> u32 {
    match (ext, bit) {
        (false, 25) | (true, 1) => 1_000,
        (false, 12 | 13) | (true, 4) => 10_000,
        (false, 27 | 29) | (true, 6) => 25_000,
        (false, 6 | 15) | (true, 5) => 40_000,
        (false, 30) | (true, 8) => 50_000,
        (false, 20 | 21) | (true, 9 | 10) => 100_000,
        (true, 12) => 200_000,
        _ => 0,
    }
}

/// The fastest protocol of `mask` (one bit), 0 when empty.
pub fn fastest(ext: bool, mask: u32) -> u32 {
    (0..32)
        .filter(|b| mask & (1 << b) != 0)
        .max_by_key(|b| (proto_speed(ext, *b), *b))
        .map_or(0, |b| 1 << b)
}

/// Capability values of one part (the "max" set; "current" starts equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartCaps {
    /// `per_protocol_networking_offload_caps.wqe_inline_mode`: 0 L2 headers
    /// required, 1 as the vport context says, 2 no inline required.
    pub wqe_inline_mode: u8,
    /// `nic_vport_context.min_wqe_inline_mode` reported when mode is 1.
    pub vport_min_inline: u8,
    pub striding_rq: bool,
    /// `cmd_hca_cap.cqe_compression` (CX4 Lx and later).
    pub cqe_compression: bool,
    /// `per_protocol_networking_offload_caps.enhanced_multi_pkt_send_wqe`
    /// (CX5 and later).
    pub enhanced_mpw: bool,
    /// `per_protocol_networking_offload_caps.multi_pkt_send_wqe` (legacy
    /// MPW: ConnectX-4 Lx).
    pub legacy_mpw: bool,
    pub log_max_eq: u8,
    pub log_max_eq_sz: u8,
    pub log_max_cq: u8,
    pub log_max_cq_sz: u8,
    pub log_max_wq_sz: u8,
    pub log_max_sq: u8,
    pub log_max_rq: u8,
    pub log_max_pd: u8,
    pub log_max_transport_domain: u8,
    pub max_qp_cnt: u16,
    pub max_lso_cap: u8,
    pub rss_ind_tbl_cap: u8,
    pub max_mtu: u16,
    /// Legacy PTYS protocols supported (0 when the part reports extended only).
    pub eth_proto_cap: u32,
    /// Extended PTYS protocols (0 before ConnectX-6).
    pub ext_eth_proto_cap: u32,
    /// Lanes of the port (PMLP width).
    pub lanes: u8,
    /// Pages asked for by QUERY_PAGES boot / init, and later regular ones.
    pub boot_pages: u32,
    pub init_pages: u32,
}

impl Personality {
    pub const ALL: [Personality; 5] = [
        Personality::ConnectX4,
        Personality::ConnectX4Lx,
        Personality::ConnectX5,
        Personality::ConnectX6,
        Personality::ConnectX6Dx,
    ];

    /// PCI device id (vendor 0x15b3).
    pub fn device_id(self) -> u16 {
        match self {
            Self::ConnectX4 => 0x1013,
            Self::ConnectX4Lx => 0x1015,
            Self::ConnectX5 => 0x1017,
            Self::ConnectX6 => 0x101b,
            Self::ConnectX6Dx => 0x101d,
        }
    }

    /// Marketing name, as the driver's id table spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConnectX4 => "ConnectX-4",
            Self::ConnectX4Lx => "ConnectX-4 Lx",
            Self::ConnectX5 => "ConnectX-5",
            Self::ConnectX6 => "ConnectX-6",
            Self::ConnectX6Dx => "ConnectX-6 Dx",
        }
    }

    /// Short name for command lines (`cx4`, `cx4lx`, ...).
    pub fn short_name(self) -> &'static str {
        match self {
            Self::ConnectX4 => "cx4",
            Self::ConnectX4Lx => "cx4lx",
            Self::ConnectX5 => "cx5",
            Self::ConnectX6 => "cx6",
            Self::ConnectX6Dx => "cx6dx",
        }
    }

    pub fn from_short_name(s: &str) -> Option<Personality> {
        Self::ALL.into_iter().find(|p| p.short_name() == s)
    }

    /// Firmware version (major, minor, subminor): the major number is the
    /// part's firmware branch (12 CX4, 14 CX4 Lx, 16 CX5, 20 CX6, 22 CX6 Dx).
    pub fn fw_version(self) -> (u16, u16, u16) {
        match self {
            Self::ConnectX4 => (12, 28, 2006),
            Self::ConnectX4Lx => (14, 32, 1010),
            Self::ConnectX5 => (16, 35, 2000),
            Self::ConnectX6 => (20, 39, 1002),
            Self::ConnectX6Dx => (22, 39, 1002),
        }
    }

    /// Ports a board of this part comes with at most: every modelled
    /// part ships in a 2-port form (e.g. MCX4121A, MCX516A, MCX623106A),
    /// one PCI function per port (`mlx5-sim --ports 2`).
    pub fn max_ports(self) -> u8 {
        2
    }

    /// PCI subsystem device id (the model's choice, one per part).
    pub fn subsystem_id(self) -> u16 {
        match self {
            Self::ConnectX4 => 0x0008,
            Self::ConnectX4Lx => 0x0001,
            Self::ConnectX5 => 0x0007,
            Self::ConnectX6 => 0x0002,
            Self::ConnectX6Dx => 0x0016,
        }
    }

    /// The Mellanox PSID (board id) the model reports in QUERY_ADAPTER.
    pub fn psid(self) -> &'static str {
        match self {
            Self::ConnectX4 => "MT_2150110033",
            Self::ConnectX4Lx => "MT_2420110034",
            Self::ConnectX5 => "MT_0000000008",
            Self::ConnectX6 => "MT_0000000223",
            Self::ConnectX6Dx => "MT_0000000359",
        }
    }

    pub fn caps(self) -> PartCaps {
        use eth_proto as e;
        use ext_eth_proto as x;
        let base = PartCaps {
            wqe_inline_mode: 2,
            vport_min_inline: 0,
            striding_rq: true,
            cqe_compression: true,
            enhanced_mpw: true,
            legacy_mpw: false,
            log_max_eq: 7,
            log_max_eq_sz: 22,
            log_max_cq: 24,
            log_max_cq_sz: 22,
            log_max_wq_sz: 16,
            log_max_sq: 23,
            log_max_rq: 23,
            log_max_pd: 23,
            log_max_transport_domain: 20,
            max_qp_cnt: 1023,
            max_lso_cap: 18,
            rss_ind_tbl_cap: 11,
            max_mtu: 9978,
            eth_proto_cap: 0,
            ext_eth_proto_cap: 0,
            lanes: 4,
            boot_pages: 16,
            init_pages: 48,
        };
        // The ConnectX-4 family (CX4, CX4 Lx): no striding RQ or eMPW,
        // smaller queues and tables.
        let cx4 = PartCaps {
            striding_rq: false,
            enhanced_mpw: false,
            log_max_eq: 6,
            log_max_wq_sz: 15,
            log_max_sq: 17,
            log_max_rq: 17,
            max_qp_cnt: 255,
            max_lso_cap: 16,
            rss_ind_tbl_cap: 8,
            ..base
        };
        // The ConnectX-6 family: bigger queues, extended protocols up to 100G.
        let cx6 = PartCaps {
            log_max_eq: 8,
            log_max_cq_sz: 23,
            log_max_wq_sz: 17,
            ext_eth_proto_cap: x::P1000BASE_X_SGMII
                | x::P10GBASE_XFI
                | x::P40GBASE_XLAUI_4
                | x::P25GAUI_1
                | x::P50GAUI_1
                | x::CAUI_4_100G
                | x::P100GAUI_2,
            ..base
        };
        match self {
            // ConnectX-4: L2 headers must be inlined; 100G legacy protocols.
            Self::ConnectX4 => PartCaps {
                wqe_inline_mode: 0,
                cqe_compression: false,
                eth_proto_cap: e::P1000BASE_T
                    | e::P10GBASE_CR
                    | e::P10GBASE_SR
                    | e::P40GBASE_CR4
                    | e::P40GBASE_SR4
                    | e::P100GBASE_CR4
                    | e::P100GBASE_SR4,
                boot_pages: 12,
                init_pages: 40,
                ..cx4
            },
            // ConnectX-4 Lx: inline mode from the vport context (which says
            // L2), legacy MPW, 10/25/40/50G.
            Self::ConnectX4Lx => PartCaps {
                wqe_inline_mode: 1,
                vport_min_inline: 1,
                legacy_mpw: true,
                eth_proto_cap: e::P1000BASE_T
                    | e::P10GBASE_CR
                    | e::P10GBASE_SR
                    | e::P25GBASE_CR
                    | e::P25GBASE_SR
                    | e::P40GBASE_CR4
                    | e::P50GBASE_CR2,
                lanes: 1,
                boot_pages: 10,
                init_pages: 32,
                ..cx4
            },
            // ConnectX-5: no inline needed, striding RQ, 100G.
            Self::ConnectX5 => PartCaps {
                eth_proto_cap: e::P1000BASE_T
                    | e::P10GBASE_CR
                    | e::P10GBASE_SR
                    | e::P25GBASE_CR
                    | e::P40GBASE_CR4
                    | e::P50GBASE_CR2
                    | e::P100GBASE_CR4
                    | e::P100GBASE_SR4,
                log_max_wq_sz: 16,
                ..base
            },
            // ConnectX-6: up to 200G.
            Self::ConnectX6 => PartCaps {
                eth_proto_cap: e::P100GBASE_CR4,
                ext_eth_proto_cap: cx6.ext_eth_proto_cap | x::P200GAUI_4,
                boot_pages: 20,
                init_pages: 64,
                ..cx6
            },
            // ConnectX-6 Dx: 2x100G part (one port per function), 100G per
            // port.
            Self::ConnectX6Dx => PartCaps {
                eth_proto_cap: e::P25GBASE_CR | e::P100GBASE_CR4,
                lanes: 2,
                boot_pages: 18,
                init_pages: 56,
                ..cx6
            },
        }
    }

    /// Link speed of the port in Mb/s (for reports).
    pub fn speed_mbps(self) -> u32 {
        match self {
            Self::ConnectX4 | Self::ConnectX5 | Self::ConnectX6Dx => 100_000,
            Self::ConnectX4Lx => 25_000,
            Self::ConnectX6 => 200_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_differ_where_hardware_differs() {
        let caps: Vec<PartCaps> = Personality::ALL.iter().map(|p| p.caps()).collect();
        for (i, a) in caps.iter().enumerate() {
            for b in &caps[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(Personality::ConnectX4.caps().wqe_inline_mode, 0);
        assert_eq!(Personality::ConnectX4Lx.caps().wqe_inline_mode, 1);
        assert_eq!(Personality::ConnectX5.caps().wqe_inline_mode, 2);
        assert!(!Personality::ConnectX4Lx.caps().striding_rq);
        assert!(Personality::ConnectX6Dx.caps().striding_rq);
        assert_eq!(Personality::ConnectX4.caps().ext_eth_proto_cap, 0);
        assert_ne!(Personality::ConnectX6.caps().ext_eth_proto_cap, 0);
        let majors: Vec<u16> = Personality::ALL.iter().map(|p| p.fw_version().0).collect();
        assert_eq!(majors, [12, 14, 16, 20, 22]);
        assert_eq!(
            Personality::from_short_name("cx4lx"),
            Some(Personality::ConnectX4Lx)
        );
    }
}
