//! Mailbox chains longer than one block, in both directions, with the data
//! checked across block boundaries.
mod common;

use common::*;
use cxos_drivers::DmaRegion;
use mlx5_sim::Personality;

#[test]
fn pages_round_trip_through_three_block_chains() {
    for mode in MODES {
        let mut r = Raw::new(Personality::ConnectX5, mode);
        let mut up = r.bring_up();
        let mut eq = EqReader { log_size: 6, ci: 0 };
        r.p.request_pages(150);
        assert!(eq.next_event(&up.eq_buf).is_some());
        // 0x10 + 150 * 8 = 1216 bytes of input: 16 inline + 3 mailbox blocks.
        let mut given = Vec::new();
        r.give_pages(150, &mut given);
        let want: Vec<u64> = given.iter().map(|p| p.device_addr().get()).collect();
        r.p.request_pages(-150);
        // 1216 bytes of output: 3 blocks back.
        let mut got = r.take_pages(150, &mut given);
        got.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(
            got, want_sorted,
            "the same 150 pages, across block boundaries"
        );
        assert!(given.is_empty());
        let _ = eq.drain(&up.eq_buf);
        up.pages.retain(|_| true);
        r.tear_down(up);
        assert!(r.p.sanitizer_violations().is_empty());
    }
}

#[test]
fn mac_list_crosses_blocks_both_ways() {
    let mut r = Raw::new(
        Personality::ConnectX6Dx,
        mlx5_sim::harness::Mode::Synchronous,
    );
    let up = r.bring_up();
    // MODIFY_NIC_VPORT_CONTEXT with 100 UC MACs: context @0x100, list @0x200,
    // field_select.addresses_list bit 0x7d (byte 0x0f, 0x04),
    // allowed_list_type bits 0x785 (ctx byte 0xf0 [2:0]) = 0 (UC),
    // allowed_list_size bits 0x794 (be16 @ctx+0xf2 [11:0]).
    let n = 100;
    let mut m = Msg::new(MODIFY_NIC_VPORT_CONTEXT, 0, 0x200 + 8 * n);
    m.u8(0x0f, 0x04).be16(0x1f2, n as u16);
    for i in 0..n {
        let at = 0x200 + 8 * i + 2;
        m.0[at..at + 6].copy_from_slice(&[0x02, 0, 0, 0, (i >> 8) as u8, i as u8]);
    }
    r.ok(&m, 0x10);
    // Query the UC list back (query out: context @0x10, list @0x110).
    let out = r.ok(&Msg::new(QUERY_NIC_VPORT_CONTEXT, 0, 0x10), 0x110 + 8 * n);
    assert_eq!(be16(&out, 0x10 + 0xf2) & 0xfff, n as u16);
    for i in 0..n {
        let at = 0x110 + 8 * i + 2;
        assert_eq!(
            &out[at..at + 6],
            &[0x02, 0, 0, 0, (i >> 8) as u8, i as u8],
            "entry {i}"
        );
    }
    // Permanent MAC (ctx bytes 0xf6..0xfc): Mellanox OUI.
    assert_eq!(&out[0x10 + 0xf6..0x10 + 0xf9], &[0x0c, 0x42, 0xa1]);
    // MTU and promiscuous flags through field_select (mtu bit 0x79, promisc 0x7b).
    let mut m = Msg::new(MODIFY_NIC_VPORT_CONTEXT, 0, 0x200);
    m.u8(0x0f, 0x40 | 0x10)
        .be16(0x100 + 0x26, 9022)
        .u8(0x100 + 0xf0, 0x80);
    r.ok(&m, 0x10);
    let out = r.ok(&Msg::new(QUERY_NIC_VPORT_CONTEXT, 0, 0x10), 0x110);
    assert_eq!(be16(&out, 0x10 + 0x26), 9022);
    assert_eq!(out[0x10 + 0xf0] & 0xe0, 0x80, "promisc_uc only");
    drop(up);
}

#[test]
fn capability_areas_need_nine_block_outputs() {
    let mut r = Raw::new(Personality::ConnectX4, mlx5_sim::harness::Mode::Synchronous);
    r.simple(ENABLE_HCA, 0);
    // 0x1010 bytes: 16 inline + 8 blocks of 512.
    let general = r.ok(&Msg::new(QUERY_HCA_CAP, 0, 0x10), 0x1010);
    let c = &general[0x10..];
    // cmd_hca_cap: log_pg_sz bits 0x258 (byte 0x4b) = 12; cqe_version bits
    // 0x1fc (byte 0x3f low nibble) = 1; port_type bits 0x1b6 (byte 0x36 [1:0]) = 1 (Ethernet);
    // num_ports bits 0x1b8 (byte 0x37) = 1; striding_rq bit 0x201 (byte 0x40, 0x40) = 0 on CX4.
    assert_eq!(c[0x4b], 12);
    assert_eq!(c[0x3f] & 0xf, 1);
    assert_eq!(c[0x36] & 3, 1);
    assert_eq!(c[0x37], 1);
    assert_eq!(c[0x40] & 0x40, 0);
    let eth = r.ok(&Msg::new(QUERY_HCA_CAP, 1 << 1, 0x10), 0x1010);
    // per_protocol_networking_offload_caps.wqe_inline_mode bits 0x12..0x14 (byte 2 [5:4]).
    assert_eq!((eth[0x10 + 2] >> 4) & 3, 0, "CX4: L2 inline required");
    let ft = r.ok(&Msg::new(QUERY_HCA_CAP, 7 << 1, 0x10), 0x1010);
    // flow_table_nic_cap: nic receive ft_support at bit 0x200 (byte 0x40, 0x80).
    assert_eq!(ft[0x10 + 0x40] & 0x80, 0x80);
    // Every part differs in the Ethernet caps the driver reads.
    let mut modes = Vec::new();
    for pers in Personality::ALL {
        let mut r = Raw::new(pers, mlx5_sim::harness::Mode::Synchronous);
        r.simple(ENABLE_HCA, 0);
        let eth = r.ok(&Msg::new(QUERY_HCA_CAP, 1 << 1, 0x10), 0x1010);
        let general = r.ok(&Msg::new(QUERY_HCA_CAP, 0, 0x10), 0x1010);
        // (wqe_inline_mode, enhanced_multi_pkt_send_wqe bit 0x1a (byte 3, 0x20),
        //  striding_rq, cqe_compression bit 0x5bf (byte 0xb7, 0x01))
        modes.push((
            (eth[0x12] >> 4) & 3,
            eth[0x13] & 0x20 != 0,
            general[0x10 + 0x40] & 0x40 != 0,
            general[0x10 + 0xb7] & 1 != 0,
        ));
    }
    assert_eq!(
        modes,
        // Enhanced MPW from ConnectX-5 on (sim/src/datapath/empw.rs);
        // CQE compression 1 from ConnectX-4 Lx on.
        [
            (0, false, false, false),
            (1, false, false, true),
            (2, true, true, true),
            (2, true, true, true),
            (2, true, true, true),
        ]
    );
}

#[test]
fn set_hca_cap_changes_current_not_max() {
    let mut r = Raw::new(Personality::ConnectX5, mlx5_sim::harness::Mode::Threaded);
    r.simple(ENABLE_HCA, 0);
    let cur = r.ok(&Msg::new(QUERY_HCA_CAP, 1, 0x10), 0x1010);
    // cmd_hca_cap.log_max_qp: bits 0x9b..0xa0 = byte 0x13 low 5 bits of the area.
    let max_qp = cur[0x10 + 0x13] & 0x1f;
    assert!(max_qp > 4);
    let mut set = Msg::new(SET_HCA_CAP, 0, 0x1010);
    set.0[0x10..].copy_from_slice(&cur[0x10..]);
    set.0[0x10 + 0x13] = (set.0[0x10 + 0x13] & !0x1f) | 4;
    // A non-settable field changed in the same input is ignored
    // (log_max_eq, byte 0x1f low nibble).
    set.0[0x10 + 0x1f] &= 0xf0;
    r.ok(&set, 0x10);
    let cur2 = r.ok(&Msg::new(QUERY_HCA_CAP, 1, 0x10), 0x1010);
    let max = r.ok(&Msg::new(QUERY_HCA_CAP, 0, 0x10), 0x1010);
    assert_eq!(cur2[0x10 + 0x13] & 0x1f, 4, "current follows SET_HCA_CAP");
    assert_eq!(max[0x10 + 0x13] & 0x1f, max_qp, "max does not");
    assert_eq!(cur2[0x10 + 0x1f] & 0x0f, cur[0x10 + 0x1f] & 0x0f);
}
