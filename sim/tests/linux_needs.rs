//! What Linux 6.12's mlx5_core needs of the model beyond what cxos uses,
//! found by running it (sim/README.md, "Linux 6.12 on the model"), each
//! driven by the raw client with its offsets typed in from mlx5_ifc.h and
//! checked against hand-written statuses and syndromes: memory keys,
//! SQs without a TIS and NOP WQEs, RQ end padding, MODIFY_TIR and the
//! other hash functions, matching on IP addresses and ports, and the
//! registers and counters Linux reads (DTOR, HOST_ENDIANNESS, PFCC, PPCNT,
//! QUERY_VPORT_COUNTER).

mod common;
mod dp;

use common::*;
use cxos_drivers::{DmaAlloc, DmaRegion};
use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

const CREATE_MKEY: u16 = 0x200;
const QUERY_MKEY: u16 = 0x201;
const DESTROY_MKEY: u16 = 0x202;
const DEALLOC_PD: u16 = 0x801;
const ACCESS_REG: u16 = 0x805;
const QUERY_VPORT_COUNTER: u16 = 0x770;
const MODIFY_TIR: u16 = 0x901;

fn number(out: &[u8]) -> u32 {
    // create_*_out: the object number at bits 0x48..0x60.
    be32(out, 0x08) & 0xff_ffff
}

fn looped(p: Personality) -> Net {
    Net::open(SimPlatform::new_loopback(p, Mode::Synchronous))
}

/// create_mkey_in (0x110 bytes): mkc at 0x10: access_mode_1_0 byte 0x12
/// bits 1:0, lw byte 0x12 0x08, lr byte 0x12 0x04, qpn bytes 0x14..0x17,
/// mkey_7_0 byte 0x17, length64 byte 0x1c 0x80, pd bytes 0x1d..0x20,
/// start_addr 0x20, len 0x28.
fn mkey_msg(pd: u32, lr: bool, lw: bool, range: Option<(u64, u64)>, variant: u8) -> Msg {
    let mut m = Msg::new(CREATE_MKEY, 0, 0x110);
    m.u8(0x12, (lw as u8) << 3 | (lr as u8) << 2);
    m.be32(0x14, 0xffff_ff00 | variant as u32);
    match range {
        None => {
            m.be32(0x1c, 0x8000_0000 | pd);
        }
        Some((start, len)) => {
            m.be32(0x1c, pd);
            m.be64(0x20, start);
            m.be64(0x28, len);
        }
    }
    m
}

/// Creates an mkey; its key (index << 8 | variant).
fn mkey(n: &mut Net, m: &Msg, variant: u8) -> u32 {
    number(&n.raw.ok(m, 0x10)) << 8 | variant as u32
}

#[test]
fn memory_keys_translate_send_and_receive_and_refuse_what_they_do_not_cover() {
    let mut n = looped(Personality::ConnectX5);
    let pd = n.up.pd;
    let key = mkey(&mut n, &mkey_msg(pd, true, true, None, 0x5a), 0x5a);
    assert_eq!(key & 0xff, 0x5a);
    // QUERY_MKEY (mkey_index bit 0x48): the context back, pd at 0x1d.
    let mut q = Msg::new(QUERY_MKEY, 0, 0x10);
    q.be32(0x08, key >> 8);
    let out = n.raw.ok(&q, 0x130);
    assert_eq!(be32(&out, 0x1c) & 0x00ff_ffff, n.up.pd);
    assert_eq!(out[0x17], 0x5a);
    // A frame sent and received through the mkey (post_tx's data segment
    // and an RX WQE with the key).
    let f = frame(n.mac, n.mac, 200, 7);
    let slot = n.sq_pc as usize & ((1 << n.sq_log) - 1);
    n.tx_bufs.write_bytes(slot * RX_BUF, &f);
    let addr = n.tx_bufs.device_addr().get() + (slot * RX_BUF) as u64;
    let ihs = n.inline;
    n.post_tx(
        &f,
        true,
        Some((key, addr + ihs as u64, (f.len() - ihs) as u32)),
    );
    let c = n.rq_pc;
    n.post_rx(c, key, None, RX_BUF as u32);
    n.ring_tx();
    let e = n.tx_cq.poll().expect("sent");
    assert_eq!(cqe_opcode(&e), 0x0, "requester CQE");
    let e = n.rx_cq.poll().expect("received");
    assert_eq!(cqe_opcode(&e), 0x2);
    assert_eq!(&n.rx_bytes(cqe_wqe_counter(&e), f.len()), &f);
    n.repost_rx();
    // A read-only key (no local write) cannot take a received frame: the
    // responder error CQE (0xe) with LOCAL_PROT (0x04).
    let ro = mkey(&mut n, &mkey_msg(pd, true, false, None, 1), 1);
    let c = n.rq_pc;
    n.post_rx(c, ro, None, RX_BUF as u32);
    n.post_tx(&f, true, None);
    n.ring_tx();
    assert_eq!(cqe_opcode(&n.tx_cq.poll().unwrap()), 0x0);
    let e = n.rx_cq.poll().expect("error CQE");
    assert_eq!((cqe_opcode(&e), cqe_syndrome(&e)), (0xe, 0x04));
    // Refusals: unknown PD (BAD_RESOURCE 0x0005_0003), access mode MTT
    // (BAD_PARAM 0x0003_0031), a QP binding, a zero range without
    // length64 (0x0003_0032), DESTROY of an unknown index (0x0005_0010),
    // DEALLOC_PD while an mkey uses it (RESOURCE_BUSY 0x0006_000b).
    assert_eq!(
        n.raw.fails(&mkey_msg(0x77, true, true, None, 0), 0x10),
        (0x05, 0x0005_0003)
    );
    let mut mtt = mkey_msg(n.up.pd, true, true, None, 0);
    mtt.u8(0x12, 0x0c | 1);
    assert_eq!(n.raw.fails(&mtt, 0x10), (0x03, 0x0003_0031));
    let mut qp = mkey_msg(n.up.pd, true, true, None, 0);
    qp.be32(0x14, 0x0000_0100);
    assert_eq!(n.raw.fails(&qp, 0x10), (0x03, 0x0003_0031));
    assert_eq!(
        n.raw
            .fails(&mkey_msg(n.up.pd, true, true, Some((0x1000, 0)), 0), 0x10),
        (0x03, 0x0003_0032)
    );
    let mut d = Msg::new(DESTROY_MKEY, 0, 0x10);
    d.be32(0x08, 0x00ab_cdef);
    assert_eq!(n.raw.fails(&d, 0x10), (0x05, 0x0005_0010));
    let mut dp = Msg::new(DEALLOC_PD, 0, 0x10);
    dp.be32(0x08, n.up.pd);
    assert_eq!(n.raw.fails(&dp, 0x10), (0x06, 0x0006_000b));
    // Destroyed, the key no longer translates: a send through it fails
    // with the requester error CQE (0xd) LOCAL_PROT.
    for k in [key, ro] {
        let mut d = Msg::new(DESTROY_MKEY, 0, 0x10);
        d.be32(0x08, k >> 8);
        n.raw.ok(&d, 0x10);
    }
    n.post_tx(
        &f,
        true,
        Some((key, addr + ihs as u64, (f.len() - ihs) as u32)),
    );
    n.ring_tx();
    let e = n.tx_cq.poll().expect("error CQE");
    assert_eq!((cqe_opcode(&e), cqe_syndrome(&e)), (0xd, 0x04));
    assert!(n.raw.p.sanitizer_violations().is_empty());
}

#[test]
fn a_range_key_covers_its_range_only() {
    let mut n = looped(Personality::ConnectX6Dx);
    let f = frame(n.mac, n.mac, 100, 3);
    let slot = n.sq_pc as usize & ((1 << n.sq_log) - 1);
    let base = n.tx_bufs.device_addr().get() + (slot * RX_BUF) as u64;
    n.tx_bufs.write_bytes(slot * RX_BUF, &f);
    // A key over the first 64 bytes of the buffer: a 100-byte send from it
    // runs past its end.
    let pd = n.up.pd;
    let short = mkey(&mut n, &mkey_msg(pd, true, true, Some((base, 64)), 9), 9);
    let ihs = n.inline;
    n.post_tx(
        &f,
        true,
        Some((short, base + ihs as u64, (f.len() - ihs) as u32)),
    );
    n.ring_tx();
    let e = n.tx_cq.poll().expect("error CQE");
    assert_eq!((cqe_opcode(&e), cqe_syndrome(&e)), (0xd, 0x04));
}

/// create_sq_in with tis_lst_sz 0 (sqc at 0x20: tis_lst_sz be16 at 0x40,
/// tis_num_0 dword 0x4c).
#[test]
fn an_sq_without_a_tis_completes_nops_and_fails_sends() {
    let mut n = looped(Personality::ConnectX5);
    let mut m = n.sq_msg(n.tx_cq.cqn, 0);
    m.be16(0x20 + 0x20, 0);
    let sqn = number(&n.raw.ok(&m, 0x10));
    // tis_num_0 without tis_lst_sz: BAD_PARAM TIS_LIST (0x0003_0021).
    let mut bad = n.sq_msg(n.tx_cq.cqn, n.tisn);
    bad.be16(0x20 + 0x20, 0);
    assert_eq!(n.raw.fails(&bad, 0x10), (0x03, 0x0003_0021));
    // Swap the test client onto the TIS-less SQ.
    n.sqn = sqn;
    n.sq_pc = 0;
    n.sq_dbr.write_be32(4, 0);
    n.modify_sq(RST, RDY);
    // A NOP (qp.h MLX5_OPCODE_NOP 0x00), ds 1, CQ update: a requester CQE
    // with opcode 0 in the qpn field's high byte, nothing on the wire.
    let at = 0;
    n.sq.fill(at, 64, 0);
    n.sq.write_be32(at, 0);
    n.sq.write_be32(at + 4, (sqn << 8) | 1);
    n.sq.write_u8(at + 11, 0x08);
    n.sq_pc = 1;
    n.ring_tx();
    let e = n.tx_cq.poll().expect("NOP completes");
    assert_eq!((cqe_opcode(&e), cqe_wqe_counter(&e)), (0x0, 0));
    assert!(n.rx_cq.poll().is_none(), "a NOP sends nothing");
    // A SEND has no transport: LOCAL_QP_OP (0x02) error CQE.
    let f = frame(n.mac, n.mac, 64, 1);
    n.post_tx(&f, true, None);
    n.ring_tx();
    let e = n.tx_cq.poll().expect("error CQE");
    assert_eq!((cqe_opcode(&e), cqe_syndrome(&e)), (0xd, 0x02));
}

/// wq end_padding_mode (wq context at 0x50 in create_rq_in: byte 0 bits
/// 2:1 after wq_type and wq_signature; ALIGN = 1 -> byte 0x50 = 0x12).
#[test]
fn end_padding_fills_the_last_cache_line_of_a_received_frame() {
    let p = SimPlatform::new_loopback(Personality::ConnectX4Lx, Mode::Synchronous);
    let mut n = Net::open(p);
    let mut m = n.rq_msg(0, 4);
    m.u8(0x50, 0x12);
    let rqn = number(&n.raw.ok(&m, 0x10));
    // Its own ring: the test client's helpers address RQ n.rqn; swap it.
    n.modify_rq(RDY, RST);
    let old = n.rqn;
    n.rqn = rqn;
    n.rq_pc = 0;
    n.rq_dbr.write_be32(0, 0);
    // Fill the buffer with 0xaa, post one WQE, point the TIR... the port's
    // TIR sends to `old`: steer to the padded RQ through a direct TIR.
    n.rx_bufs.fill(0, 256, 0xaa);
    n.post_rx(0, n.up.resd_lkey, None, RX_BUF as u32);
    n.rq_pc = 1;
    n.rq_dbr.write_be32(0, 1);
    n.modify_rq(RST, RDY);
    let mut t = Msg::new(CREATE_TIR, 0, 0x110);
    t.be32(0x20 + 0x1c, rqn);
    t.be32(0x20 + 0x24, n.up.td);
    let tirn = number(&n.raw.ok(&t, 0x10));
    let e = n.fte(0, n.mac, 1, tirn);
    n.raw.ok(&e, 0x10);
    let f = frame(n.mac, n.mac, 70, 5);
    n.post_tx(&f, true, None);
    n.ring_tx();
    let e = n.rx_cq.poll().expect("received");
    assert_eq!(cqe_byte_cnt(&e), 70);
    let mut got = [0u8; 160];
    n.rx_bufs.read_bytes(0, &mut got);
    assert_eq!(&got[..70], &f[..]);
    // Padded with zeros to the 128-byte boundary (two 64-byte lines: the
    // frame ends in the second), the bytes after untouched.
    assert!(got[70..128].iter().all(|b| *b == 0), "{:x?}", &got[70..128]);
    assert!(got[128..].iter().all(|b| *b == 0xaa));
    // An SQ with end padding: BAD_PARAM WQ_TYPE (0x0003_001d).
    let mut sq = n.sq_msg(n.tx_cq.cqn, n.tisn);
    sq.u8(0x50, 0x12);
    assert_eq!(n.raw.fails(&sq, 0x10), (0x03, 0x0003_001d));
    let _ = old;
}

/// Linux's nonlinear receive WQE (MTU 9000: four fragments): each data
/// segment's byte_count carries bit 31 (`MLX5_HW_START_PADDING`) over a
/// 31-bit length, and an unused last segment ends the list (byte_count 0,
/// the terminate lkey). The frame fills each segment to its length in
/// turn and nothing beyond (the bit once counted as length, so the whole
/// frame went into the first buffer and over the memory after it).
#[test]
fn receive_segments_take_their_31_bit_length_and_no_byte_more() {
    const FLAG: u32 = 0x8000_0000;
    let p = SimPlatform::new_loopback(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    // Its own RQ: 64-byte WQEs (log_wq_stride 6), one page of ring.
    let ring = p.dma_alloc(4096).unwrap();
    let dbr = p.dma_alloc(64).unwrap();
    let bufs = p.dma_alloc(4 * 4096).unwrap();
    bufs.fill(0, 4 * 4096, 0xaa);
    let mut m = n.rq_msg(0, 6);
    m.be64(0x50 + 0x10, dbr.device_addr().get());
    m.be64(0x50 + 0xc0, ring.device_addr().get());
    let rqn = number(&n.raw.ok(&m, 0x10));
    // Three buffers (a Linux-like head with 0x40 of headroom, then two
    // more), then the terminator.
    let base = bufs.device_addr().get();
    let segs = [(100u32, 0x40u64), (200, 4096), (300, 2 * 4096)];
    for (i, (len, off)) in segs.iter().enumerate() {
        ring.write_be32(16 * i, FLAG | len);
        ring.write_be32(16 * i + 4, n.up.resd_lkey);
        ring.write_be64(16 * i + 8, base + off);
    }
    ring.write_be32(48, 0);
    ring.write_be32(52, 0x100);
    ring.write_be64(56, 0);
    dbr.write_be32(0, 1);
    n.raw.ok(&Net::modify_msg(MODIFY_RQ, rqn, RST, RDY), 0x10);
    let mut t = Msg::new(CREATE_TIR, 0, 0x110);
    t.be32(0x20 + 0x1c, rqn);
    t.be32(0x20 + 0x24, n.up.td);
    let tirn = number(&n.raw.ok(&t, 0x10));
    let e = n.fte(0, n.mac, 1, tirn);
    n.raw.ok(&e, 0x10);
    let f = frame(n.mac, n.mac, 450, 9);
    n.post_tx(&f, true, None);
    n.ring_tx();
    let e = n.rx_cq.poll().expect("received");
    assert_eq!(cqe_syndrome(&e), 0, "{e:x?}");
    assert_eq!(cqe_byte_cnt(&e), 450);
    let mut got = vec![0u8; 4 * 4096];
    bufs.read_bytes(0, &mut got);
    // 100 + 200 bytes, then the last 150 in the third buffer.
    let pieces = [
        (0x40usize, 0usize, 100usize),
        (4096, 100, 200),
        (2 * 4096, 300, 150),
    ];
    for (at, from, len) in pieces {
        assert_eq!(
            &got[at..at + len],
            &f[from..from + len],
            "buffer at {at:#x}"
        );
    }
    // Nothing before the head, nothing after the first two buffers, and
    // the third padded (end padding is off here) no further than its frame.
    assert!(got[..0x40].iter().all(|b| *b == 0xaa));
    assert!(got[0x40 + 100..4096].iter().all(|b| *b == 0xaa));
    assert!(got[4096 + 200..2 * 4096].iter().all(|b| *b == 0xaa));
    assert!(got[2 * 4096 + 150..].iter().all(|b| *b == 0xaa));
}

/// modify_tir_in: tirn dword 2, bitmask at 0x10 (self_lb_en bit 0x3b of
/// it: byte 0x17 0x10, hash 0x3d: byte 0x17 0x04, packet_merge 0x3f: byte
/// 0x17 0x01), context at 0x20 as in create_tir_in.
#[test]
fn modify_tir_changes_the_loopback_block_and_the_hashing() {
    let mut n = looped(Personality::ConnectX5);
    let mut m = Msg::new(MODIFY_TIR, 0, 0x110);
    m.be32(0x08, n.tirn);
    m.u8(0x17, 0x10);
    m.u8(0x20 + 0x24, 0x03); // self_lb_block: unicast and multicast
    n.raw.ok(&m, 0x10);
    // Hashing of a direct TIR, or nothing selected: TIR_MODIFY_FIELD
    // (0x0003_0033); LRO through packet_merge: QUEUE_FEATURE (0x0003_0020).
    let mut h = Msg::new(MODIFY_TIR, 0, 0x110);
    h.be32(0x08, n.tirn);
    h.u8(0x17, 0x04);
    assert_eq!(n.raw.fails(&h, 0x10), (0x03, 0x0003_0033));
    let mut none = Msg::new(MODIFY_TIR, 0, 0x110);
    none.be32(0x08, n.tirn);
    assert_eq!(n.raw.fails(&none, 0x10), (0x03, 0x0003_0033));
    let mut lro = Msg::new(MODIFY_TIR, 0, 0x110);
    lro.be32(0x08, n.tirn);
    lro.u8(0x17, 0x01);
    lro.be32(0x20 + 0x10, 0x0000_0300); // packet_merge_mask IPv4 | IPv6 LRO
    assert_eq!(n.raw.fails(&lro, 0x10), (0x03, 0x0003_0020));
    // An indirect TIR: symmetric Toeplitz (rx_hash_symmetric bit 0x100:
    // byte 0x40 top bit, sharing the dword with indirect_table), then
    // changed to inverted XOR8 (rx_hash_fn 1) with the IPsec SPI selected
    // (fields bit 4): both taken.
    let rqt = {
        let mut m = Msg::new(CREATE_RQT, 0, 0x114);
        m.be16(0x36, 8);
        m.be16(0x3a, 1);
        m.be32(0x110, n.rqn);
        number(&n.raw.ok(&m, 0x10))
    };
    let mut t = Msg::new(CREATE_TIR, 0, 0x110);
    t.u8(0x24, 0x10);
    t.be32(0x40, 0x8000_0000 | rqt);
    t.be32(0x44, 0x2000_0000 | n.up.td);
    t.be32(0x70, 0xf);
    let tirn = number(&n.raw.ok(&t, 0x10));
    let mut x = Msg::new(MODIFY_TIR, 0, 0x110);
    x.be32(0x08, tirn);
    x.u8(0x17, 0x04);
    x.be32(0x44, 0x1000_0000);
    x.be32(0x70, 0x3 | 0x10);
    n.raw.ok(&x, 0x10);
    // Symmetric hashing with XOR8, SPI with ports: refused.
    x.be32(0x40, 0x8000_0000);
    assert_eq!(n.raw.fails(&x, 0x10), (0x03, 0x0003_0022));
    x.be32(0x40, 0);
    x.be32(0x70, 0xf | 0x10);
    assert_eq!(n.raw.fails(&x, 0x10), (0x03, 0x0003_002f));
}

/// A root table of its own (create_flow_table_in: context at 0x18,
/// log_size byte 0x1b), a group on the destination IPv4 address and TCP
/// port (create_flow_group_in criteria at 0x40, `fte_match_param`
/// outer_headers: dst_ipv4 in the last 4 bytes of dst_ipv4_dst_ipv6 at
/// +0x3c, tcp_dport at +0x16) whose entry drops, and a match-all group
/// forwarding to the port's TIR (set_fte_in: match value at 0x80).
#[test]
fn groups_match_ip_addresses_and_ports() {
    let mut n = looped(Personality::ConnectX6);
    let mut t = Msg::new(CREATE_FLOW_TABLE, 0, 0x40);
    t.u8(0x18 + 3, 3);
    let table = number(&n.raw.ok(&t, 0x10));
    let group = |n: &mut Net, start: u32, criteria: &[(usize, &[u8])]| {
        let mut g = Msg::new(CREATE_FLOW_GROUP, 0, 0x400);
        g.be32(0x14, table);
        g.be32(0x1c, start);
        g.be32(0x24, start);
        g.u8(0x3f, !criteria.is_empty() as u8);
        for (at, bytes) in criteria {
            for (i, b) in bytes.iter().enumerate() {
                g.u8(0x40 + at + i, *b);
            }
        }
        number(&n.raw.ok(&g, 0x10))
    };
    let ip_port = group(&mut n, 0, &[(0x3c, &[0xff; 4]), (0x16, &[0xff; 2])]);
    let all = group(&mut n, 1, &[]);
    let entry = |n: &mut Net, index: u32, gid: u32, drop: bool| {
        let mut e = Msg::new(SET_FLOW_TABLE_ENTRY, 0, 0x348);
        e.be32(0x14, table);
        e.be32(0x20, index);
        e.be32(0x44, gid);
        if drop {
            e.be32(0x4c, 0x2);
            e.u8(0x80 + 0x3c, 10);
            e.u8(0x80 + 0x3f, 9);
            e.be16(0x80 + 0x16, 443);
        } else {
            e.be32(0x4c, 0x4);
            e.be32(0x50, 1);
            e.be32(0x340, (2 << 24) | n.tirn);
        }
        n.raw.ok(&e, 0x10);
    };
    entry(&mut n, 0, ip_port, true);
    entry(&mut n, 1, all, false);
    let mut r = Msg::new(SET_FLOW_TABLE_ROOT, 0, 0x40);
    r.be32(0x14, table);
    n.raw.ok(&r, 0x10);
    let tcp = |mac: [u8; 6], dst_ip: [u8; 4], dport: u16| {
        let mut f = frame(mac, mac, 80, 1);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&66u16.to_be_bytes());
        f[20..22].copy_from_slice(&[0, 0]);
        f[23] = 6;
        f[30..34].copy_from_slice(&dst_ip);
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = 0x50;
        f
    };
    let before = n.raw.p.port_stats().rx_dropped_by_rule;
    n.post_tx(&tcp(n.mac, [10, 0, 0, 9], 443), false, None);
    n.post_tx(&tcp(n.mac, [10, 0, 0, 9], 80), true, None);
    n.ring_tx();
    assert_eq!(n.raw.p.port_stats().rx_dropped_by_rule, before + 1);
    let e = n.rx_cq.poll().expect("port 80 delivered");
    let got = n.rx_bytes(cqe_wqe_counter(&e), 80);
    assert_eq!(&got[36..38], &80u16.to_be_bytes());
    assert!(n.rx_cq.poll().is_none());
}

/// access_register_in: op_mod byte 7 (1 read), register_id be16 at 0x0a;
/// data from 0x10.
fn reg(id: u16, read: bool, size: usize) -> Msg {
    let mut m = Msg::new(ACCESS_REG, read as u16, 0x10 + size);
    m.be16(0x0a, id);
    m
}

#[test]
fn registers_linux_reads_at_probe_and_for_statistics() {
    let mut n = looped(Personality::ConnectX6Dx);
    // DTOR (0xc00e, 64 bytes): pcie_toggle_to at data byte 4: 2 s =
    // to_multiplier 1 (bits 31:29) | 2. Not writable (REG_VALUE 0x0003_0013).
    let out = n.raw.ok(&reg(0xc00e, true, 0x40), 0x50);
    assert_eq!(be32(&out, 0x10 + 4), 0x2000_0002);
    assert_eq!(
        n.raw.fails(&reg(0xc00e, false, 0x40), 0x50),
        (0x03, 0x0003_0013)
    );
    // HOST_ENDIANNESS (0x7004, 16 bytes): he in the top bit of byte 0.
    let mut he = reg(0x7004, false, 0x10);
    he.u8(0x10, 0x80);
    n.raw.ok(&he, 0x20);
    assert_eq!(n.raw.ok(&reg(0x7004, true, 0x10), 0x20)[0x10], 0x80);
    he.u8(0x11, 1);
    assert_eq!(n.raw.fails(&he, 0x20), (0x03, 0x0003_0002));
    // PFCC (0x5007, 32 bytes; local_port byte 1): global pause on by
    // default (pptx byte 8, pprx byte 0xc top bits); turned off; PFC on
    // priority 3 through prio_mask_tx (byte 5) / pfctx (byte 9).
    let mut pf = reg(0x5007, true, 0x20);
    pf.u8(0x11, 1);
    let out = n.raw.ok(&pf, 0x30);
    assert_eq!((out[0x18], out[0x1c]), (0x80, 0x80));
    let mut w = reg(0x5007, false, 0x20);
    w.u8(0x11, 1);
    w.u8(0x15, 0x08);
    w.u8(0x19, 0x08);
    let out = n.raw.ok(&w, 0x30);
    assert_eq!((out[0x18], out[0x1c], out[0x19]), (0x00, 0x00, 0x08));
    // Traffic, then PPCNT (0x5008, 256 bytes): 802.3 group (grp 0):
    // a_frames_transmitted_ok counter 0 at data byte 8, received counter 1
    // at 0x10; the 2819 group (grp 2) length buckets from counter 11.
    let f = frame(n.mac, n.mac, 100, 2);
    for _ in 0..3 {
        n.post_tx(&f, false, None);
    }
    n.ring_tx();
    let mut pc = reg(0x5008, true, 0x100);
    pc.u8(0x11, 1);
    let out = n.raw.ok(&pc, 0x110);
    assert_eq!(be64(&out, 0x10 + 8), 3);
    assert_eq!(be64(&out, 0x10 + 0x10), 3);
    pc.u8(0x13, 2);
    let out = n.raw.ok(&pc, 0x110);
    // 100 bytes + FCS: the 65..127 bucket (counter 12).
    assert_eq!(be64(&out, 0x10 + 8 + 8 * 12), 3);
    // An InfiniBand group (0x20): REG_VALUE.
    pc.u8(0x13, 0x20);
    assert_eq!(n.raw.fails(&pc, 0x110), (0x03, 0x0003_0013));
    // Another port: REG_PORT (0x0003_0012).
    pc.u8(0x13, 0);
    pc.u8(0x11, 2);
    assert_eq!(n.raw.fails(&pc, 0x110), (0x03, 0x0003_0012));
    // QUERY_VPORT_COUNTER (in 0x20: clear bit 0xc0 = byte 0x18 top bit;
    // out 0x210): transmitted_eth_unicast packets at 0xa0, received at 0x90.
    let mut vc = Msg::new(QUERY_VPORT_COUNTER, 0, 0x20);
    vc.u8(0x18, 0x80);
    let out = n.raw.ok(&vc, 0x210);
    assert_eq!((be64(&out, 0xa0), be64(&out, 0x90)), (3, 3));
    assert_eq!(be64(&out, 0xa8), 300, "octets");
    let out = n.raw.ok(&Msg::new(QUERY_VPORT_COUNTER, 0, 0x20), 0x210);
    assert_eq!(be64(&out, 0xa0), 0, "cleared by the last query");
    let mut other = Msg::new(QUERY_VPORT_COUNTER, 0, 0x20);
    other.u8(0x08, 0x80);
    assert_eq!(n.raw.fails(&other, 0x210), (0x03, 0x0003_0003));
}

#[test]
fn a_clean_teardown_leaves_nothing_for_the_model_to_destroy() {
    let mut raw = Raw::new(Personality::ConnectX4, Mode::Synchronous);
    let up = raw.bring_up();
    raw.tear_down(up);
    raw.p.with_model(|d| {
        assert_eq!(d.left_at_teardown, 0);
        assert!(d.objects().iter().all(|(_, n)| *n == 0));
    });
}
