//! Packets per second through two in-process models (synchronous pair, one
//! thread): 64-byte frames, doorbell batches of 32, the raw test client as
//! the "driver" on both ends. Prints `bench: sim.fwd_pps: <n> pps`.
//!
//! Run: `cargo bench -p mlx5-sim --bench datapath`. Instructions per
//! packet: run the binary under `valgrind --tool=callgrind` with
//! `SIM_DP_ROUNDS=0` and `SIM_DP_ROUNDS=1000` and divide the difference of
//! the totals by 32 000 frames.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/dp/mod.rs"]
mod dp;

use std::time::{Duration, Instant};

use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

const BATCH: usize = 32;

fn round(a: &mut Net, b: &mut Net, f: &[u8]) {
    for i in 0..BATCH {
        a.post_tx(f, i + 1 == BATCH, None);
    }
    a.ring_tx();
    assert!(a.tx_cq.poll().is_some(), "requester CQE");
    for _ in 0..BATCH {
        assert!(b.rx_cq.poll().is_some(), "responder CQE");
        b.repost_rx();
    }
}

fn main() {
    let (pa, pb) = SimPlatform::pair(
        Personality::ConnectX5,
        Personality::ConnectX5,
        Mode::Synchronous,
    );
    let mut a = Net::open(pa.clone());
    let mut b = Net::open(pb.clone());
    let f = frame(b.mac, a.mac, 64, 1);
    for _ in 0..1000 {
        round(&mut a, &mut b, &f);
    }
    // A fixed number of rounds instead of a timed run, for instruction
    // counts under callgrind (subtract a run with 0 rounds for the setup).
    if let Some(n) = std::env::var("SIM_DP_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        for _ in 0..n {
            round(&mut a, &mut b, &f);
        }
        println!("rounds: {n} ({} frames)", n * BATCH as u64);
        return;
    }
    let start = Instant::now();
    let mut frames = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..100 {
            round(&mut a, &mut b, &f);
        }
        frames += 100 * BATCH as u64;
    }
    let pps = frames as f64 / start.elapsed().as_secs_f64();
    assert!(pa.sanitizer_violations().is_empty() && pb.sanitizer_violations().is_empty());
    println!("bench: sim.fwd_pps: {:.0} pps", pps);
}
