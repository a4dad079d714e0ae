//! Data path throughput through two in-process models wired back to back.
//!
//! `cargo bench -p mlx5 --bench datapath` prints
//! `bench: mlx5.dp_pps: <n> pps` (64-byte frames a -> b, batches of 32,
//! synchronous model: driver and both models on this one thread, so the
//! figure is a lower bound for the driver) and
//! `bench: mlx5.dp_ns_per_packet: <ns> ns` (the same run, per frame sent
//! and received).
//!
//! Instruction counts per packet (driver code only) come from callgrind:
//! `CXOS_DP_PACKETS=64000 valgrind --tool=callgrind
//! --toggle-collect='datapath::tx_batch' --toggle-collect='datapath::rx_batch'
//! <bench binary>` then `callgrind_annotate --inclusive=yes`: the inclusive
//! cost of `tx_batch` (resp. `rx_batch`) minus that of the model under
//! `SimPlatform::bar0_write_be64` (the synchronous model runs inside the
//! doorbell write), divided by the packets.

use std::hint::black_box;
use std::time::Instant;

use cxos_drivers::NetDevice;
use mlx5::eth::{EthConfig, EthPort, Resources};
use mlx5::{Adapter, Config};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

type Port = EthPort<Adapter<SimPlatform>>;

const BATCH: usize = 32;

fn open(sim: &SimPlatform) -> Port {
    let a = Adapter::attach(sim.clone(), Config::default())
        .map_err(|f| f.error)
        .unwrap();
    let r = Resources::of(&a).unwrap();
    let cfg = EthConfig {
        interrupts: false,
        ..EthConfig::default()
    };
    EthPort::open(a, r, cfg).map_err(|f| f.error).unwrap()
}

/// Queue `BATCH` 64-byte frames and ring one doorbell; reap completions.
#[inline(never)]
fn tx_batch(a: &mut Port, dst: &[u8; 6]) -> usize {
    let mut n = 0;
    for _ in 0..BATCH {
        if a.transmit(64, |f| {
            f[0..6].copy_from_slice(dst);
            f[12] = 0x88;
            f[13] = 0xb5;
        })
        .is_ok()
        {
            n += 1;
        }
    }
    a.flush();
    a.poll();
    n
}

/// Take every received frame, re-post the buffers.
#[inline(never)]
fn rx_batch(b: &mut Port) -> usize {
    let mut n = 0;
    while b.receive(|f, _| black_box(f.len())).is_some() {
        n += 1;
    }
    b.flush();
    n
}

fn main() {
    let packets: usize = std::env::var("CXOS_DP_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX6Dx,
        Personality::ConnectX6Dx,
        Mode::Synchronous,
    );
    let mut a = open(&sa);
    let mut b = open(&sb);
    let dst = b.mac();
    // Warm up.
    for _ in 0..100 {
        tx_batch(&mut a, &dst);
        rx_batch(&mut b);
    }
    let t = Instant::now();
    let mut got = 0;
    while got < packets {
        tx_batch(&mut a, &dst);
        got += rx_batch(&mut b);
    }
    let secs = t.elapsed().as_secs_f64();
    println!("bench: mlx5.dp_pps: {:.0} pps", got as f64 / secs);
    println!(
        "bench: mlx5.dp_ns_per_packet: {:.0} ns",
        secs * 1e9 / got as f64
    );
    let (a, _) = a.close();
    let (b, _) = b.close();
    a.detach();
    b.detach();
}
