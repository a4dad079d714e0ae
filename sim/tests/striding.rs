//! Striding RQ (cyclic striding, multi-packet WQEs) in the model: mixed
//! frame sizes fill strides, a frame that does not fit gets a filler CQE
//! for the rest of the WQE and lands in the next one, the parts without
//! `striding_rq` refuse the queue type. Offsets typed in from mlx5_ifc.h
//! (`wq`) and device.h (`struct mlx5_cqe64`, `struct mpwrq_cqe_bc`).

mod common;
mod dp;

use common::*;
use cxos_drivers::{DmaAlloc, DmaRegion};
use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimDma, SimPlatform};

const LOG_STRIDES: u8 = 9; // 512 strides (log_wqe_num_of_strides 0)
const LOG_STRIDE_SZ: u8 = 6; // 64 bytes (log_wqe_stride_size 0)
const WQE_BYTES: usize = 64 << LOG_STRIDES;
const LOG_WQES: u8 = 2;

struct Striding {
    rqn: u32,
    ring: SimDma,
    dbr: SimDma,
    bufs: SimDma,
    pc: u16,
}

/// CREATE_RQ with wq_type 3 (MLX5_WQ_TYPE_CYCLIC_STRIDING_RQ): wq at 0x50:
/// wq_type byte 0x50 high nibble, log_wqe_num_of_strides byte 0x76 low
/// nibble (+9), log_wqe_stride_size byte 0x77 bits 2:0 (+6), log_wq_sz
/// byte 0x73, dbr_addr 0x60, pas 0x110. One data segment per WQE.
fn striding_msg(n: &Net, ring: &SimDma, dbr: &SimDma, strides: u8, stride_sz: u8) -> Msg {
    let mut m = n.rq_msg(0, 4);
    m.u8(0x50, 0x30);
    m.u8(0x50 + 0x26, strides);
    m.u8(0x50 + 0x27, stride_sz);
    m.u8(0x50 + 0x23, LOG_WQES);
    m.be64(0x50 + 0x10, dbr.device_addr().get());
    m.be64(0x50 + 0xc0, ring.device_addr().get());
    m
}

fn post(s: &mut Striding, lkey: u32) {
    let slot = s.pc as usize & ((1 << LOG_WQES) - 1);
    s.ring.write_be32(slot * 16, WQE_BYTES as u32);
    s.ring.write_be32(slot * 16 + 4, lkey);
    s.ring.write_be64(
        slot * 16 + 8,
        s.bufs.device_addr().get() + (slot * WQE_BYTES) as u64,
    );
    s.pc = s.pc.wrapping_add(1);
    s.dbr.write_be32(0, s.pc as u32);
}

fn open_striding(n: &mut Net) -> Striding {
    let p = n.raw.p.clone();
    let ring = p.dma_alloc(4096).unwrap();
    let dbr = p.dma_alloc(64).unwrap();
    let bufs = p.dma_alloc(WQE_BYTES << LOG_WQES).unwrap();
    let m = striding_msg(n, &ring, &dbr, LOG_STRIDES - 9, LOG_STRIDE_SZ - 6);
    let rqn = be32(&n.raw.ok(&m, 0x10), 0x08) & 0xff_ffff;
    let mut s = Striding {
        rqn,
        ring,
        dbr,
        bufs,
        pc: 0,
    };
    for _ in 0..(1 << LOG_WQES) {
        post(&mut s, n.up.resd_lkey);
    }
    n.raw.ok(&Net::modify_msg(MODIFY_RQ, rqn, RST, RDY), 0x10);
    // A direct TIR for it (tirc: inline_rqn dword 7, transport_domain dword 9)
    // and the port MAC's entry pointed at it.
    let mut m = Msg::new(CREATE_TIR, 0, 0x110);
    m.be32(0x20 + 0x1c, rqn);
    m.be32(0x20 + 0x24, n.up.td);
    let tirn = be32(&n.raw.ok(&m, 0x10), 0x08) & 0xff_ffff;
    let m = n.fte(0, n.mac, 1, tirn);
    n.raw.ok(&m, 0x10);
    s
}

/// (wqe_id @0x02, stride index @0x3c, filler, consumed strides, bytes).
fn mpwrq(e: &[u8; 64]) -> (u16, u16, bool, u16, u16) {
    let bc = be32(e, 0x2c);
    (
        be16(e, 0x02),
        be16(e, 0x3c),
        bc & 0x8000_0000 != 0,
        ((bc >> 16) & 0x7fff) as u16,
        bc as u16,
    )
}

#[test]
fn mixed_sizes_fill_strides_and_a_filler_closes_the_wqe() {
    for pers in [
        Personality::ConnectX5,
        Personality::ConnectX6,
        Personality::ConnectX6Dx,
    ] {
        let p = SimPlatform::new(pers, Mode::Synchronous);
        let mut n = Net::open(p.clone());
        let mut s = open_striding(&mut n);
        let sizes = [60usize, 64, 65, 1514, 9014, 9014, 9014, 4000, 128];
        let mut want_stride = 0u16;
        let mut want_wqe = 0u16;
        for (i, len) in sizes.iter().enumerate() {
            let f = frame(n.mac, [2; 6], *len, i as u8);
            p.inject_rx(&f);
            let strides = len.div_ceil(64) as u16;
            if want_stride + strides > 512 {
                let e = n.rx_cq.poll().expect("filler CQE");
                assert_eq!(cqe_opcode(&e), 0x2);
                assert_eq!(
                    mpwrq(&e),
                    (want_wqe, want_stride, true, 512 - want_stride, 0),
                    "{pers:?} filler"
                );
                want_wqe += 1;
                want_stride = 0;
                // The driver gives the finished WQE back.
                post(&mut s, n.up.resd_lkey);
            }
            let e = n.rx_cq.poll().expect("CQE");
            assert_eq!(cqe_opcode(&e), 0x2);
            assert_eq!(cqe_qpn(&e), s.rqn);
            assert_eq!(
                mpwrq(&e),
                (want_wqe, want_stride, false, strides, *len as u16),
                "{pers:?} frame {i}"
            );
            let at = (want_wqe as usize & 3) * WQE_BYTES + want_stride as usize * 64;
            let mut got = vec![0u8; *len];
            s.bufs.read_bytes(at, &mut got);
            assert_eq!(got, f, "{pers:?} frame {i} bytes");
            want_stride += strides;
        }
        assert_eq!(want_wqe, 1, "the 4000-byte frame went to the second WQE");
        assert_eq!(p.rq_frames(s.rqn), Some(sizes.len() as u64));
        // QUERY_RQ: the wq context says striding (wq_type 3) with the same geometry.
        let mut q = Msg::new(QUERY_RQ, 0, 0x10);
        q.be32(0x08, s.rqn);
        let out = n.raw.ok(&q, 0x20 + 0x30 + 0xc0 + 8 * 2);
        assert_eq!(out[0x50] >> 4, 3);
        assert_eq!((out[0x50 + 0x26] & 0xf, out[0x50 + 0x27] & 7), (0, 0));
        assert!(p.sanitizer_violations().is_empty(), "{pers:?}");
    }
}

#[test]
fn exhausted_wqes_drop_and_count_until_reposted() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    let mut s = open_striding(&mut n);
    // 4 WQEs of 32 KiB: each takes three 9014-byte frames (3 x 141 strides),
    // the fourth frame needs a filler first.
    let f = frame(n.mac, [2; 6], 9014, 1);
    for _ in 0..12 {
        p.inject_rx(&f);
    }
    let mut fillers = 0;
    let mut frames = 0;
    while let Some(e) = n.rx_cq.poll() {
        if mpwrq(&e).2 {
            fillers += 1;
        } else {
            frames += 1;
        }
    }
    assert_eq!((frames, fillers), (12, 3), "the last WQE is still open");
    p.inject_rx(&f);
    assert_eq!(p.port_stats().rx_dropped_no_wqe, 1);
    let e = n.rx_cq.poll().expect("filler for the last WQE");
    assert!(mpwrq(&e).2);
    post(&mut s, n.up.resd_lkey);
    p.inject_rx(&f);
    let e = n.rx_cq.poll().expect("delivered after repost");
    assert_eq!(mpwrq(&e), (4, 0, false, 141, 9014));
}

/// A frame that exactly fills the last stride of the buffer region: the
/// model must not touch (or check) memory past it, not even for a
/// zero-length second part.
#[test]
fn a_frame_ending_at_the_end_of_the_buffers_is_delivered() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    let mut s = open_striding(&mut n);
    let f = frame(n.mac, [2; 6], 64, 7);
    let strides = 512 << LOG_WQES;
    for i in 0..strides {
        p.inject_rx(&f);
        let e = n.rx_cq.poll().expect("CQE");
        assert_eq!(cqe_opcode(&e), 0x2, "frame {i}");
        let (wqe, stride, filler, used, bytes) = mpwrq(&e);
        assert_eq!(
            (wqe as usize, stride as usize, filler, used, bytes),
            (i / 512, i % 512, false, 1, 64),
            "frame {i}"
        );
    }
    let mut last = vec![0u8; 64];
    s.bufs.read_bytes((WQE_BYTES << LOG_WQES) - 64, &mut last);
    assert_eq!(last, f);
    post(&mut s, n.up.resd_lkey);
    assert!(p.sanitizer_violations().is_empty());
    assert_eq!(p.port_stats().rx_dropped_wqe_error, 0);
}

#[test]
fn parts_without_striding_rq_and_bad_geometry_are_refused() {
    for pers in Personality::ALL {
        let p = SimPlatform::new(pers, Mode::Synchronous);
        let mut n = Net::open(p.clone());
        // cmd_hca_cap.striding_rq: bit 0x201 (byte 0x40, 0x40) of the capability.
        let caps = n.raw.ok(&Msg::new(QUERY_HCA_CAP, 1, 0x10), 0x1010);
        let has = caps[0x10 + 0x40] & 0x40 != 0;
        let ring = p.dma_alloc(4096).unwrap();
        let dbr = p.dma_alloc(64).unwrap();
        let m = striding_msg(&n, &ring, &dbr, 0, 0);
        if has {
            n.raw.ok(&m, 0x10);
            // 2^(8+9) strides, and a stride beyond log_max_stride_sz_rq (13).
            let m = striding_msg(&n, &ring, &dbr, 8, 0);
            assert_eq!(n.raw.fails(&m, 0x10), (BAD_PARAM, 0x0003_0030));
            let mut m = striding_msg(&n, &ring, &dbr, 0, 0);
            m.u8(0x50 + 0x27, 0x80); // two_byte_shift_en
            assert_eq!(n.raw.fails(&m, 0x10), (BAD_PARAM, 0x0003_0030));
            let mut m = striding_msg(&n, &ring, &dbr, 0, 0);
            m.u8(0x50 + 0x26, 0x10); // reserved_at_130
            assert_eq!(n.raw.fails(&m, 0x10), (BAD_PARAM, 0x0003_001d));
        } else {
            assert_eq!(n.raw.fails(&m, 0x10), (BAD_PARAM, 0x0003_0030), "{pers:?}");
        }
        assert_eq!(
            has,
            !matches!(pers, Personality::ConnectX4 | Personality::ConnectX4Lx)
        );
    }
}
