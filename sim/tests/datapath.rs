//! The model's data path driven by the raw client (tests/dp): frames of
//! every size across a pair of adapters, loopback and broadcast, steering
//! drops, Q-counter drops, CQ events, error CQEs and recovery, in both modes.

mod common;
mod dp;

use common::*;
use cxos_drivers::{Clock, DmaRegion, Msix};
use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

/// Send `frames` from `a` to `b` in doorbell batches of up to 32 and check
/// each arrives whole, in order, with a correct responder CQE.
fn send_and_check(a: &mut Net, b: &mut Net, frames: &[Vec<u8>]) {
    for chunk in frames.chunks(32) {
        let mut last = 0;
        for (i, f) in chunk.iter().enumerate() {
            last = a.post_tx(f, i + 1 == chunk.len(), None);
        }
        a.ring_tx();
        // Requester CQE for the signalled (last) WQE.
        let e = a.tx_cq.wait(&a.raw.p).expect("requester CQE");
        assert_eq!(cqe_opcode(&e), 0x0, "MLX5_CQE_REQ");
        assert_eq!(cqe_wqe_counter(&e), last);
        assert_eq!(cqe_qpn(&e), a.sqn);
        for f in chunk {
            let e = b.rx_cq.wait(&b.raw.p).expect("responder CQE");
            assert_eq!(cqe_opcode(&e), 0x2, "MLX5_CQE_RESP_SEND");
            assert_eq!(cqe_byte_cnt(&e) as usize, f.len());
            assert_eq!(cqe_qpn(&e), b.rqn);
            let c = cqe_wqe_counter(&e);
            assert_eq!(&b.rx_bytes(c, f.len()), f, "frame of {} bytes", f.len());
            b.repost_rx();
        }
    }
}

#[test]
fn pair_carries_every_size_and_jumbo_both_ways_in_both_modes() {
    for mode in MODES {
        let (pa, pb) = SimPlatform::pair(Personality::ConnectX4Lx, Personality::ConnectX5, mode);
        assert_ne!(pa.mac(), pb.mac());
        let mut a = Net::open(pa.clone());
        let mut b = Net::open(pb.clone());
        // The MACs take jumbo frames once PMTU says so (pmtu_reg admin_mtu
        // at data byte 8: 9000 + Ethernet header, VLAN tag and FCS).
        for n in [&mut a, &mut b] {
            let mut m = Msg::new(ACCESS_REG, 0, 0x20);
            m.be16(0x0a, 0x5003).u8(0x11, 1).be16(0x18, 9022);
            n.raw.ok(&m, 0x20);
        }
        let mut frames: Vec<Vec<u8>> = (60..=1514)
            .map(|len| frame(b.mac, a.mac, len, len as u8))
            .collect();
        frames.push(frame(b.mac, a.mac, 9014, 9));
        send_and_check(&mut a, &mut b, &frames);
        let back: Vec<Vec<u8>> = [60, 61, 1514, 9014]
            .iter()
            .map(|len| frame(a.mac, b.mac, *len, 3))
            .collect();
        send_and_check(&mut b, &mut a, &back);
        let sa = pa.port_stats();
        let sb = pb.port_stats();
        assert_eq!(sa.tx_frames, frames.len() as u64);
        assert_eq!(sb.rx_delivered, frames.len() as u64);
        assert_eq!(sb.tx_frames, 4);
        assert_eq!(sa.rx_delivered, 4);
        let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
        assert_eq!((sa.tx_bytes, sb.rx_bytes), (bytes, bytes));
        assert_eq!(sb.rx_dropped_no_steering + sb.rx_dropped_no_wqe, 0);
        assert!(
            pa.sanitizer_violations().is_empty(),
            "{:?}",
            pa.sanitizer_violations()
        );
        assert!(
            pb.sanitizer_violations().is_empty(),
            "{:?}",
            pb.sanitizer_violations()
        );
    }
}

#[test]
fn every_personality_sends_to_itself_on_loopback() {
    for (i, pers) in Personality::ALL.into_iter().enumerate() {
        let p = SimPlatform::new_loopback(pers, Mode::Synchronous);
        let mut n = Net::open(p.clone());
        let f = frame(n.mac, n.mac, 128, 1);
        let bcast = frame([0xff; 6], n.mac, 64, 2);
        n.post_tx(&f, false, None);
        n.post_tx(&bcast, true, None);
        // Alternate BlueFlame buffers: UAR +0x800 and +0x900.
        n.ring_tx_at(if i % 2 == 0 { 0x800 } else { 0x900 });
        for want in [&f, &bcast] {
            let e = n.rx_cq.poll().expect("looped back");
            assert_eq!(cqe_byte_cnt(&e) as usize, want.len(), "{pers:?}");
            assert_eq!(&n.rx_bytes(cqe_wqe_counter(&e), want.len()), want);
        }
        assert!(p.sanitizer_violations().is_empty(), "{pers:?}");
    }
}

#[test]
fn frames_to_unknown_macs_are_dropped_by_steering() {
    let (pa, pb) = SimPlatform::pair(
        Personality::ConnectX5,
        Personality::ConnectX5,
        Mode::Synchronous,
    );
    let mut a = Net::open(pa);
    let mut b = Net::open(pb.clone());
    let stranger = [0x02, 0, 0, 0, 0, 0x99];
    a.post_tx(&frame(stranger, a.mac, 100, 0), true, None);
    a.ring_tx();
    assert!(a.tx_cq.poll().is_some(), "sent");
    assert!(b.rx_cq.poll().is_none(), "not delivered");
    // Not the vport's address: the e-switch does not even pass it on.
    assert_eq!(pb.port_stats().rx_dropped_vport_filter, 1);
    b.set_mac_list(false, &[stranger]);
    a.post_tx(&frame(stranger, a.mac, 100, 0), true, None);
    a.ring_tx();
    assert!(b.rx_cq.poll().is_none(), "not delivered");
    assert_eq!(pb.port_stats().rx_dropped_no_steering, 1);
    // Steering it to the TIR makes it arrive.
    b.set_entry(2, stranger, 0);
    a.post_tx(&frame(stranger, a.mac, 100, 0), true, None);
    a.ring_tx();
    assert!(b.rx_cq.poll().is_some());
    // Deleting the entry (delete_fte_in: table_id dword 5, flow_index dword 8) drops again.
    let mut m = Msg::new(DELETE_FLOW_TABLE_ENTRY, 0, 0x40);
    m.be32(0x14, b.table);
    m.be32(0x20, 2);
    b.raw.ok(&m, 0x10);
    b.raw.p.inject_rx(&frame(stranger, a.mac, 100, 0));
    assert_eq!(pb.port_stats().rx_dropped_no_steering, 2);
    assert!(pb.sanitizer_violations().is_empty());
}

#[test]
fn receive_without_posted_wqes_counts_q_counter_drops_then_recovers() {
    for mode in MODES {
        let p = SimPlatform::new(Personality::ConnectX6Dx, mode);
        let mut n = Net::open(p.clone());
        let f = frame(n.mac, [2, 0, 0, 0, 0, 1], 200, 5);
        for _ in 0..64 + 3 {
            p.inject_rx(&f);
        }
        assert_eq!(n.out_of_buffer(), 3);
        assert_eq!(p.port_stats().rx_dropped_no_wqe, 3);
        for _ in 0..64 {
            assert!(n.rx_cq.poll().is_some());
        }
        n.repost_rx();
        p.inject_rx(&f);
        let e = n.rx_cq.poll().expect("delivered after repost");
        assert_eq!(cqe_wqe_counter(&e), 64);
        assert_eq!(n.out_of_buffer(), 3);
        assert!(p.sanitizer_violations().is_empty());
    }
}

#[test]
fn armed_cq_raises_a_completion_eqe_and_msix() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    assert!(!p.msix_take_pending(COMP_VECTOR));
    p.inject_rx(&frame(n.mac, [2, 0, 0, 0, 0, 1], 80, 1));
    assert!(p.msix_take_pending(COMP_VECTOR), "armed RX CQ fired");
    let mut eq = EqReader { log_size: 7, ci: 0 };
    let eqe = eq.poll(&n.comp_eq_buf).expect("completion EQE");
    assert_eq!(eqe.ty, 0x00);
    assert_eq!(
        be32(&eqe.data, 24) & 0xff_ffff,
        n.rx_cq.cqn,
        "mlx5_eqe_comp.cqn"
    );
    eq.doorbell(&p, n.up.uar, n.comp_eq, true);
    // Disarmed until armed again: a second frame raises nothing.
    p.inject_rx(&frame(n.mac, [2, 0, 0, 0, 0, 1], 80, 1));
    assert!(!p.msix_take_pending(COMP_VECTOR));
    // Arming with an unconsumed CQE fires at once.
    n.rx_cq.poll().unwrap();
    n.rx_cq.arm(&p);
    assert!(p.msix_take_pending(COMP_VECTOR));
    assert!(eq.poll(&n.comp_eq_buf).is_some());
}

#[test]
fn cq_overflow_sets_the_cq_status() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    // An EQ subscribed to CQ errors (event type 0x04).
    let (_, err_eq) = n.raw.create_eq(n.up.uar, 2, 1 << 0x04, 6);
    let f = frame(n.mac, [2, 0, 0, 0, 0, 1], 64, 1);
    // 256 CQEs fill the RX CQ; the 257th overflows (oi clear).
    for _ in 0..257 {
        n.repost_rx();
        p.inject_rx(&f);
    }
    let mut m = Msg::new(QUERY_CQ, 0, 0x10);
    m.be32(0x08, n.rx_cq.cqn);
    // query_cq_out: cq_context at 0x10, status in byte 0 high nibble.
    let out = n.raw.ok(&m, 0x110 + 8 * 4);
    assert_eq!(out[0x10] >> 4, 0x9, "MLX5_CQC_STATUS_CQ_OVERFLOW");
    assert_eq!(be32(&out, 0x10 + 0x2c) & 0xff_ffff, 256, "producer_counter");
    // device.h struct mlx5_eqe_cq_err: cqn, 7 reserved bytes, syndrome 1 (overrun).
    let mut eq = EqReader { log_size: 6, ci: 0 };
    let e = eq.poll(&err_eq).expect("CQ error EQE");
    assert_eq!(e.ty, 0x04);
    assert_eq!(be32(&e.data, 0) & 0xff_ffff, n.rx_cq.cqn);
    assert_eq!(e.data[11], 0x01);
    assert!(eq.poll(&err_eq).is_none(), "one event, then silence");
    assert!(p.sanitizer_violations().is_empty());
}

/// Send one bad WQE and one good one behind it; expect an error CQE with
/// `syndrome`, a flush CQE, the SQ in ERR; recover and send again.
fn tx_error_and_recovery(
    bad: impl Fn(&Net) -> (u32, u64, u32),
    syndrome: u8,
    mode: Mode,
) -> SimPlatform {
    let p = SimPlatform::new(Personality::ConnectX4, mode);
    let mut n = Net::open(p.clone());
    let f = frame([2, 0, 0, 0, 0, 7], n.mac, 300, 4);
    let args = bad(&n);
    let bad_index = n.post_tx(&f, false, Some(args));
    let next = n.post_tx(&f, true, None);
    n.ring_tx();
    let e = n.tx_cq.wait(&p).expect("error CQE");
    assert_eq!(cqe_opcode(&e), 0xd, "MLX5_CQE_REQ_ERR");
    assert_eq!(cqe_syndrome(&e), syndrome);
    assert_eq!(cqe_wqe_counter(&e), bad_index);
    assert_eq!(be32(&e, 0x38), (0x0a << 24) | n.sqn, "s_wqe_opcode_qpn");
    let e = n.tx_cq.wait(&p).expect("flush CQE");
    assert_eq!((cqe_opcode(&e), cqe_syndrome(&e)), (0xd, 0x05));
    assert_eq!(cqe_wqe_counter(&e), next);
    assert_eq!(n.query_state(QUERY_SQ, n.sqn), ERR);
    assert!(p.take_tx().is_empty(), "nothing sent");
    n.modify_sq(ERR, RST);
    n.modify_sq(RST, RDY);
    let idx = n.post_tx(&f, true, None);
    assert_eq!(idx, 0, "counters restart after RST");
    n.ring_tx();
    let e = n.tx_cq.wait(&p).expect("CQE after recovery");
    assert_eq!(cqe_opcode(&e), 0x0);
    // Threaded: the frame reaches the tx log just after its CQE.
    let mut sent = Vec::new();
    assert!(eventually(&p, || {
        sent.extend(p.take_tx());
        !sent.is_empty()
    }));
    assert_eq!(sent, vec![f]);
    p
}

#[test]
fn tx_bad_lkey_is_a_local_protection_error() {
    for mode in MODES {
        let p = tx_error_and_recovery(
            |n| {
                let a = n.tx_bufs.device_addr().get();
                (n.up.resd_lkey ^ 0x00ff_ff00, a, 100)
            },
            0x04,
            mode,
        );
        assert!(p.sanitizer_violations().is_empty());
    }
}

#[test]
fn tx_address_outside_driver_memory_is_a_protection_error_seen_by_the_sanitizer() {
    const NOWHERE: u64 = 0x7ead_0000_0000;
    let p = tx_error_and_recovery(|n| (n.up.resd_lkey, NOWHERE, 100), 0x04, Mode::Synchronous);
    let v = p.sanitizer_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!((v[0].addr, v[0].len, v[0].write), (NOWHERE, 100, false));
}

#[test]
fn tx_zero_length_segment_is_a_local_length_error() {
    tx_error_and_recovery(
        |n| (n.up.resd_lkey, n.tx_bufs.device_addr().get(), 0),
        0x01,
        Mode::Synchronous,
    );
}

#[test]
fn tx_oversized_frame_is_a_local_length_error() {
    tx_error_and_recovery(
        |n| (n.up.resd_lkey, n.tx_bufs.device_addr().get(), 20_000),
        0x01,
        Mode::Threaded,
    );
}

#[test]
fn missing_inline_headers_on_connectx4_are_an_error() {
    let p = SimPlatform::new(Personality::ConnectX4, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    n.inline = 0; // ConnectX-4 requires the L2 headers inline
    n.post_tx(&frame([2; 6], n.mac, 100, 0), true, None);
    n.ring_tx();
    let e = n.tx_cq.poll().unwrap();
    assert_eq!((cqe_opcode(&e), cqe_syndrome(&e)), (0xd, 0x02));
}

#[test]
fn rx_bad_lkey_is_a_responder_error_and_the_rest_is_flushed() {
    for mode in MODES {
        let p = SimPlatform::new(Personality::ConnectX6, mode);
        let mut n = Net::open(p.clone());
        // WQE 0 gets a wrong lkey.
        n.post_rx(0, 0x1234, None, RX_BUF as u32);
        p.inject_rx(&frame(n.mac, [2; 6], 100, 0));
        let e = n.rx_cq.wait(&p).unwrap();
        assert_eq!((cqe_opcode(&e), cqe_syndrome(&e)), (0xe, 0x04));
        assert_eq!(cqe_wqe_counter(&e), 0);
        for i in 1..64u16 {
            let e = n.rx_cq.wait(&p).unwrap();
            assert_eq!(
                (cqe_opcode(&e), cqe_syndrome(&e), cqe_wqe_counter(&e)),
                (0xe, 0x05, i)
            );
        }
        assert_eq!(n.query_state(QUERY_RQ, n.rqn), ERR);
        p.inject_rx(&frame(n.mac, [2; 6], 100, 0));
        assert_eq!(p.port_stats().rx_dropped_rq_not_ready, 1);
        n.modify_rq(ERR, RST);
        n.rq_pc = 0;
        n.rq_dbr.write_be32(0, 0);
        n.post_all_rx();
        n.modify_rq(RST, RDY);
        p.inject_rx(&frame(n.mac, [2; 6], 100, 0));
        let e = n.rx_cq.wait(&p).unwrap();
        assert_eq!((cqe_opcode(&e), cqe_wqe_counter(&e)), (0x2, 0));
        assert!(p.sanitizer_violations().is_empty());
    }
}

#[test]
fn rx_buffer_too_small_is_a_local_length_error() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    let lkey = n.up.resd_lkey;
    n.post_rx(0, lkey, None, 64);
    p.inject_rx(&frame(n.mac, [2; 6], 100, 0));
    let e = n.rx_cq.poll().unwrap();
    assert_eq!((cqe_opcode(&e), cqe_syndrome(&e)), (0xe, 0x01));
}

#[test]
fn responder_cqe_reports_l3_l4_types() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    // IPv4 (ethertype 0x0800, IHL 5) carrying UDP (protocol 17).
    let mut f = frame(n.mac, [2; 6], 100, 0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&86u16.to_be_bytes());
    f[20..22].copy_from_slice(&[0, 0]); // not a fragment
    f[14 + 9] = 17;
    p.inject_rx(&f);
    let e = n.rx_cq.poll().unwrap();
    // l4_l3_hdr_type @0x1d (struct mlx5_cqe64): l4 UDP (2) in bits 6:4,
    // l3 IPv4 (2) in bits 3:2, bit 0 clear (no VLAN stripped).
    assert_eq!(e[0x1d], 0x28);
}

#[test]
fn object_commands_refuse_bad_handles_states_and_reserved_fields() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    let r = &mut n.raw;
    // Unknown handles -> BAD_RESOURCE.
    for op in [DESTROY_CQ, DESTROY_SQ, DESTROY_RQ, DESTROY_TIS, DESTROY_TIR] {
        let mut m = Msg::new(op, 0, 0x10);
        m.be32(0x08, 0x77);
        assert_eq!(r.fails(&m, 0x10).0, BAD_RESOURCE, "opcode {op:#x}");
    }
    let m = n.sq_msg(0x77, n.tisn);
    assert_eq!(
        n.raw.fails(&m, 0x10),
        (BAD_RESOURCE, 0x0005_0006),
        "unknown CQ"
    );
    let m = n.sq_msg(n.tx_cq.cqn, 0x77);
    assert_eq!(
        n.raw.fails(&m, 0x10),
        (BAD_RESOURCE, 0x0005_0009),
        "unknown TIS"
    );
    let m = n.rq_msg(0x55, 4);
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_RESOURCE, "unknown Q counter");
    // Bad geometry -> BAD_PARAM.
    let m = n.rq_msg(0, 8);
    assert_eq!(n.raw.fails(&m, 0x10), (BAD_PARAM, 0x0003_001e), "RQ stride");
    // Reserved bits -> BAD_PARAM / RESERVED_SET.
    let mut m = n.sq_msg(n.tx_cq.cqn, n.tisn);
    m.u8(0x20 + 0x02, 0x80); // sqc reserved_at_10
    assert_eq!(n.raw.fails(&m, 0x10), (BAD_PARAM, 0x0003_0002));
    // Bad state transitions -> BAD_RES_STATE.
    let m = Net::modify_msg(MODIFY_SQ, n.sqn, RST, RDY); // it is RDY
    assert_eq!(n.raw.fails(&m, 0x10), (BAD_RES_STATE, 0x0009_0001));
    n.modify_sq(RDY, ERR);
    let m = Net::modify_msg(MODIFY_SQ, n.sqn, ERR, RDY);
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_RES_STATE, "ERR->RDY");
    n.modify_sq(ERR, RST);
    let m = Net::modify_msg(MODIFY_SQ, n.sqn, RST, ERR);
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_RES_STATE, "RST->ERR");
    // In use -> RESOURCE_BUSY.
    let mut m = Msg::new(DESTROY_CQ, 0, 0x10);
    m.be32(0x08, n.tx_cq.cqn);
    assert_eq!(n.raw.fails(&m, 0x10).0, RESOURCE_BUSY, "CQ used by the SQ");
    let mut m = Msg::new(DESTROY_TIR, 0, 0x10);
    m.be32(0x08, n.tirn);
    assert_eq!(
        n.raw.fails(&m, 0x10).0,
        RESOURCE_BUSY,
        "TIR used by entries"
    );
    let mut m = Msg::new(DESTROY_RQ, 0, 0x10);
    m.be32(0x08, n.rqn);
    assert_eq!(n.raw.fails(&m, 0x10).0, RESOURCE_BUSY, "RQ used by the TIR");
    // Flow rules.
    let m = n.fte(0, [2; 6], 0, n.tirn);
    assert_eq!(n.raw.fails(&m, 0x10).0, RESOURCE_BUSY, "index 0 taken");
    let m = n.fte(3, n.mac, 0, n.tirn);
    assert_eq!(
        n.raw.fails(&m, 0x10).0,
        BAD_PARAM,
        "same MAC twice in a group"
    );
    let m = n.fte(16, [2; 6], 0, n.tirn);
    assert_eq!(
        n.raw.fails(&m, 0x10).0,
        BAD_PARAM,
        "index outside the group"
    );
    let mut m = n.fte(4, [2; 6], 0, n.tirn);
    m.u8(0x80 + 0x06, 0x08); // match value ethertype (lyr_2_4 bytes 6..8): not in the group's criteria
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_PARAM);
    let mut m = n.fte(4, [2; 6], 0, n.tirn);
    m.be32(0x340, (2 << 24) | 0x77);
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_RESOURCE, "unknown TIR");
    let mut m = Msg::new(CREATE_TIR, 0, 0x110);
    m.be32(0x20 + 0x04, 1 << 28); // disp_type indirect
    m.be32(0x20 + 0x24, n.up.td);
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_PARAM);
    let mut m = Msg::new(CREATE_FLOW_TABLE, 0, 0x58);
    m.u8(0x10, 1); // NIC_TX
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_PARAM);
    let mut m = Msg::new(DESTROY_FLOW_TABLE, 0, 0x40);
    m.be32(0x14, n.table);
    assert_eq!(n.raw.fails(&m, 0x10).0, RESOURCE_BUSY, "table has a group");
    // CQ: log size beyond log_max_cq_sz (22), unknown EQ.
    let mut m = Msg::new(CREATE_CQ, 0, 0x118);
    m.be32(0x10 + 0x0c, (23 << 24) | n.up.uar);
    m.be64(0x10 + 0x38, 0x1000);
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_PARAM);
    let mut m = Msg::new(CREATE_CQ, 0, 0x118);
    m.be32(0x10 + 0x0c, (1 << 24) | n.up.uar);
    m.be32(0x10 + 0x14, 200);
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_RESOURCE);
    assert!(p.sanitizer_violations().is_empty());
}

#[test]
fn teardown_closes_everything_in_order_and_disable_revokes_the_rest() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    // Orderly close, the driver's order: entries, group, table (the root,
    // destroyed directly), TIR, RQ, SQ, TIS, CQs.
    for idx in [0u32, 1] {
        let mut m = Msg::new(DELETE_FLOW_TABLE_ENTRY, 0, 0x40);
        m.be32(0x14, n.table);
        m.be32(0x20, idx);
        n.raw.ok(&m, 0x10);
    }
    let mut m = Msg::new(DESTROY_FLOW_GROUP, 0, 0x40);
    m.be32(0x14, n.table);
    m.be32(0x18, n.group);
    n.raw.ok(&m, 0x10);
    let mut m = Msg::new(DESTROY_FLOW_TABLE, 0, 0x40);
    m.be32(0x14, n.table);
    n.raw.ok(&m, 0x10);
    p.inject_rx(&frame(n.mac, [2; 6], 64, 0));
    assert_eq!(p.port_stats().rx_dropped_no_steering, 1, "no root any more");
    for (op, qn) in [
        (DESTROY_TIR, n.tirn),
        (DESTROY_RQ, n.rqn),
        (DESTROY_SQ, n.sqn),
        (DESTROY_TIS, n.tisn),
        (DESTROY_CQ, n.tx_cq.cqn),
    ] {
        let mut m = Msg::new(op, 0, 0x10);
        m.be32(0x08, qn);
        n.raw.ok(&m, 0x10);
    }
    // Ringing a destroyed SQ's doorbell is ignored.
    n.ring_tx();
    // TEARDOWN_HCA takes the RX CQ (and everything else) with it; a frame
    // afterwards touches nothing.
    n.raw.simple(TEARDOWN_HCA, 0);
    let mut pages = std::mem::take(&mut n.up.pages);
    while !pages.is_empty() {
        assert!(!n.raw.take_pages(16, &mut pages).is_empty());
    }
    n.raw.simple(DISABLE_HCA, 0);
    p.inject_rx(&frame(n.mac, [2; 6], 64, 0));
    p.with_model(|d| {
        assert_eq!(d.nic.cqs.count() + d.nic.sqs.count() + d.nic.rqs.count(), 0);
    });
    assert!(
        p.sanitizer_violations().is_empty(),
        "{:?}",
        p.sanitizer_violations()
    );
}

#[test]
fn query_and_modify_cq_and_resources_in_use() {
    let p = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    // modify_cq_in: cqn dword 2, modify_field_select dword 3 (bit 0 period,
    // bit 1 count), cq_context at 0x10: cq_period bits 0x84..0x90 and
    // cq_max_count 0x90..0xa0 (dword 4 of the context).
    let mut m = Msg::new(MODIFY_CQ, 0, 0x110);
    m.be32(0x08, n.rx_cq.cqn);
    m.be32(0x0c, 0b11);
    m.be32(0x10 + 0x10, (0x010 << 16) | 0x20);
    n.raw.ok(&m, 0x10);
    let mut q = Msg::new(QUERY_CQ, 0, 0x10);
    q.be32(0x08, n.rx_cq.cqn);
    let out = n.raw.ok(&q, 0x110 + 8 * 4);
    assert_eq!(
        be32(&out, 0x10 + 0x10),
        (0x010 << 16) | 0x20,
        "period / max_count"
    );
    assert_eq!(out[0x10 + 0x0c] & 0x1f, 8, "log_cq_size");
    assert_eq!(be32(&out, 0x10 + 0x14), n.comp_eq as u32, "c_eqn");
    assert_eq!(
        be64(&out, 0x10 + 0x38),
        n.rx_cq.dbr.device_addr().get(),
        "dbr_addr"
    );
    assert_eq!(be64(&out, 0x110), n.rx_cq.buf.device_addr().get(), "pas[0]");
    m.be32(0x0c, 1 << 2);
    assert_eq!(
        n.raw.fails(&m, 0x10),
        (BAD_PARAM, 0x0003_002a),
        "resize / other fields"
    );
    // Field select bit 3: c_eqn (cqc dword 0x14 -> 0x24). An EQ that does
    // not exist is refused; a second EQ takes the CQ, QUERY_CQ shows it,
    // and the old EQ can go once no CQ reports to it.
    let mut m = Msg::new(MODIFY_CQ, 0, 0x110);
    m.be32(0x08, n.rx_cq.cqn);
    m.be32(0x0c, 1 << 3);
    m.be32(0x24, 0x77);
    assert_eq!(
        n.raw.fails(&m, 0x10),
        (BAD_RESOURCE, 0x0005_0002),
        "no EQ 0x77"
    );
    let (eq2, _eq2_buf) = n.raw.create_eq(n.up.uar, COMP_VECTOR, 0, 7);
    m.be32(0x24, eq2 as u32);
    n.raw.ok(&m, 0x10);
    let out = n.raw.ok(&q, 0x110 + 8 * 4);
    assert_eq!(be32(&out, 0x10 + 0x14), eq2 as u32, "c_eqn moved");
    assert_eq!(
        be32(&out, 0x10 + 0x10),
        (0x010 << 16) | 0x20,
        "moderation untouched"
    );
    m.be32(0x24, n.comp_eq as u32);
    n.raw.ok(&m, 0x10);
    let mut d = Msg::new(DESTROY_EQ, 0, 0x10);
    d.u8(0x0b, eq2);
    n.raw.ok(&d, 0x10);
    // Objects in use cannot go.
    let mut m = Msg::new(DESTROY_EQ, 0, 0x10);
    m.u8(0x0b, n.comp_eq);
    assert_eq!(n.raw.fails(&m, 0x10), (RESOURCE_BUSY, 0x0006_0009));
    let mut m = Msg::new(DEALLOC_Q_COUNTER, 0, 0x10);
    m.u8(0x0b, n.up.q_counter);
    assert_eq!(n.raw.fails(&m, 0x10), (RESOURCE_BUSY, 0x0006_000a));
    let mut m = Msg::new(DEALLOC_PD, 0, 0x10);
    m.be32(0x08, n.up.pd);
    assert_eq!(n.raw.fails(&m, 0x10), (RESOURCE_BUSY, 0x0006_000b));
    let mut m = Msg::new(DEALLOC_TD, 0, 0x10);
    m.be32(0x08, n.up.td);
    assert_eq!(n.raw.fails(&m, 0x10), (RESOURCE_BUSY, 0x0006_000c));
    let mut m = Msg::new(DEALLOC_UAR, 0, 0x10);
    m.be32(0x08, n.up.uar);
    assert_eq!(n.raw.fails(&m, 0x10).0, RESOURCE_BUSY);
}

#[test]
fn link_down_loses_frames_both_ways() {
    let (pa, pb) = SimPlatform::pair(
        Personality::ConnectX5,
        Personality::ConnectX6,
        Mode::Synchronous,
    );
    let mut a = Net::open(pa.clone());
    let mut b = Net::open(pb.clone());
    pa.set_link(false);
    a.post_tx(&frame(b.mac, a.mac, 64, 0), true, None);
    a.ring_tx();
    assert_eq!(
        cqe_opcode(&a.tx_cq.poll().unwrap()),
        0x0,
        "completes normally"
    );
    assert_eq!(pa.port_stats().tx_dropped_link_down, 1);
    pa.set_link(true);
    pb.set_link(false);
    a.post_tx(&frame(b.mac, a.mac, 64, 0), true, None);
    a.ring_tx();
    assert_eq!(pb.port_stats().rx_dropped_link_down, 1);
    assert!(b.rx_cq.poll().is_none());
}

#[test]
fn destroy_and_teardown_revoke_every_grant() {
    use mlx5_sim::sanitizer::Purpose;
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    let granted = |p: &SimPlatform| {
        p.with_model(|d| {
            [
                Purpose::CqBuffer,
                Purpose::WqBuffer,
                Purpose::DoorbellRecord,
            ]
            .map(|pu| d.bus.san.granted_bytes(pu))
        })
    };
    // 2 CQs of 256 x 64 B, SQ 128 x 64 B, RQ 64 x 16 B, 4 doorbell records.
    assert_eq!(granted(&p), [2 * 16384, 8192 + 1024, 4 * 8]);
    let mut m = Msg::new(DESTROY_SQ, 0, 0x10);
    m.be32(0x08, n.sqn);
    n.raw.ok(&m, 0x10);
    assert_eq!(granted(&p), [2 * 16384, 1024, 3 * 8]);
    // A doorbell for the destroyed SQ touches nothing.
    n.ring_tx();
    n.raw.simple(TEARDOWN_HCA, 0);
    assert_eq!(granted(&p), [0, 0, 0]);
    assert!(p.sanitizer_violations().is_empty());
}

#[test]
fn threaded_pair_carries_traffic_both_ways_at_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let (pa, pb) = SimPlatform::pair(
        Personality::ConnectX5,
        Personality::ConnectX6Dx,
        Mode::Threaded,
    );
    let a = Net::open(pa.clone());
    let b = Net::open(pb.clone());
    let (amac, bmac) = (a.mac, b.mac);
    let reposted_a = Arc::new(AtomicU64::new(0));
    let reposted_b = Arc::new(AtomicU64::new(0));
    const TOTAL: u64 = 512;
    // Each side sends while it receives the other's: both model threads
    // deliver into the other model at the same time. A side sends only when
    // the peer has free receive WQEs (credit), so nothing is dropped.
    let run = move |mut me: Net, dst: [u8; 6], mine: Arc<AtomicU64>, peer: Arc<AtomicU64>| {
        let f = frame(dst, me.mac, 100, 6);
        let p = me.raw.p.clone();
        let (mut sent, mut got) = (0u64, 0u64);
        while sent < TOTAL || got < TOTAL {
            if sent < TOTAL && sent + 8 <= peer.load(Ordering::Acquire) + 64 {
                for i in 0..8 {
                    me.post_tx(&f, i == 7, None);
                }
                me.ring_tx();
                assert!(me.tx_cq.wait(&p).is_some());
                sent += 8;
            }
            while let Some(e) = me.rx_cq.poll() {
                assert_eq!(cqe_opcode(&e), 0x2);
                me.repost_rx();
                got += 1;
                mine.store(got, Ordering::Release);
            }
            p.relax();
        }
        me
    };
    let (ra, rb) = (reposted_a.clone(), reposted_b.clone());
    let ta = std::thread::spawn(move || run(a, bmac, ra, rb));
    let (ra, rb) = (reposted_a, reposted_b);
    let tb = std::thread::spawn(move || run(b, amac, rb, ra));
    let a = ta.join().unwrap();
    let b = tb.join().unwrap();
    assert_eq!(pa.port_stats().rx_delivered, TOTAL);
    assert_eq!(pb.port_stats().rx_delivered, TOTAL);
    assert!(pa.sanitizer_violations().is_empty() && pb.sanitizer_violations().is_empty());
    drop((a, b));
}
