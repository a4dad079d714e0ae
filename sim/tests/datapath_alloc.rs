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
