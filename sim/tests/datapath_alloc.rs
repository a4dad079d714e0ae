//! The data path allocates nothing per frame once warm: transmit, carry to
//! the peer, receive, CQEs, CQ arming (synchronous pair, all on this thread).
mod common;
mod dp;

use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::{self, CountingAlloc, Mode, SimPlatform};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

fn round(a: &mut Net, b: &mut Net, f: &[u8]) {
    for i in 0..32 {
        a.post_tx(f, i == 31, None);
    }
    a.ring_tx();
    assert!(a.tx_cq.poll().is_some());
    for _ in 0..32 {
        assert!(b.rx_cq.poll().is_some());
        b.repost_rx();
    }
    b.rx_cq.arm(&b.raw.p);
}

#[test]
fn steady_traffic_does_not_allocate() {
    let (pa, pb) = SimPlatform::pair(
        Personality::ConnectX4Lx,
        Personality::ConnectX5,
        Mode::Synchronous,
    );
    let mut a = Net::open(pa.clone());
    let mut b = Net::open(pb.clone());
    let f = frame(b.mac, a.mac, 64, 1);
    for _ in 0..8 {
        round(&mut a, &mut b, &f);
    }
    let before = harness::thread_allocations();
    for _ in 0..200 {
        round(&mut a, &mut b, &f);
    }
    assert_eq!(
        harness::thread_allocations() - before,
        0,
        "allocations on the packet path"
    );
    assert_eq!(pb.port_stats().rx_delivered, 208 * 32);
    assert!(pa.sanitizer_violations().is_empty() && pb.sanitizer_violations().is_empty());
}

/// A UDP/IPv4 frame (checksums zero) or, with `tcp_payload`, a TCP/IPv4
/// large send of that many payload bytes.
fn ip_frame(dst: [u8; 6], src: [u8; 6], tcp_payload: Option<usize>) -> Vec<u8> {
    let (proto, l4, payload) = match tcp_payload {
        Some(n) => (6u8, 20usize, n),
        None => (17, 8, 64),
    };
    let mut f = frame(dst, src, 14 + 20 + l4 + payload, 5);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((20 + l4 + payload) as u16).to_be_bytes());
    f[20..22].copy_from_slice(&[0, 0]);
    f[23] = proto;
    f[24..26].copy_from_slice(&[0, 0]);
    if proto == 6 {
        f[34 + 12] = 0x50;
        f[34 + 13] = 0x10;
    } else {
        f[38..40].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        f[40..42].copy_from_slice(&[0, 0]);
    }
    f
}

/// Offloads on the packet path allocate nothing either: checksums, VLAN
/// insert on transmit and strip on receive (vsd clear via MODIFY_RQ), LSO
/// segmentation, the vport filter and the flow lookup.
#[test]
fn offloaded_traffic_does_not_allocate() {
    let (pa, pb) = SimPlatform::pair(
        Personality::ConnectX5,
        Personality::ConnectX6Dx,
        Mode::Synchronous,
    );
    let mut a = Net::open(pa.clone());
    let mut b = Net::open(pb.clone());
    // MODIFY_RQ RDY -> RDY, modify_bitmask vsd (bit 1 at 0x10), rqc.vsd 0.
    let mut m = Net::modify_msg(MODIFY_RQ, b.rqn, RDY, RDY);
    m.be64(0x10, 1 << 1);
    b.raw.ok(&m, 0x10);
    let small = ip_frame(b.mac, a.mac, None);
    let big = ip_frame(b.mac, a.mac, Some(8 * 1448));
    let csum_vlan = TxOpts {
        cs_flags: 0xc0,
        insert: Some((0x8000, 42)),
        ..TxOpts::default()
    };
    let lso = TxOpts {
        opcode: 0x0e,
        cs_flags: 0xc0,
        mss: 1448,
        inline: Some(54),
        ..TxOpts::default()
    };
    let round = |a: &mut Net, b: &mut Net| {
        for _ in 0..8 {
            let i = a.post_wqe(&small, csum_vlan);
            a.ring_wqe(i);
            assert_eq!(cqe_opcode(&a.tx_cq.poll().unwrap()), 0);
        }
        let i = a.post_wqe(&big, lso);
        a.ring_wqe(i);
        assert_eq!(cqe_opcode(&a.tx_cq.poll().unwrap()), 0);
        for _ in 0..16 {
            let e = b.rx_cq.poll().expect("received");
            assert_eq!(e[0x1c], 0x07, "checksums ok");
            b.repost_rx();
        }
        b.rx_cq.arm(&b.raw.p);
    };
    for _ in 0..4 {
        round(&mut a, &mut b);
    }
    let before = harness::thread_allocations();
    for _ in 0..50 {
        round(&mut a, &mut b);
    }
    assert_eq!(
        harness::thread_allocations() - before,
        0,
        "allocations on the offloaded packet path"
    );
    assert_eq!(pa.port_stats().tx_lso_sends, 54);
    assert!(pa.sanitizer_violations().is_empty() && pb.sanitizer_violations().is_empty());
}
