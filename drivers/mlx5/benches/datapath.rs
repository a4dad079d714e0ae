//! Data path throughput through two in-process models wired back to back.
//!
//! `cargo bench -p mlx5 --bench datapath` prints
//! `bench: mlx5.dp_pps: <n> pps` (64-byte frames a -> b, batches of 32,
//! synchronous model: driver and both models on this one thread, so the
//! figure is a lower bound for the driver) and
//! `bench: mlx5.dp_ns_per_packet: <ns> ns` (the same run, per frame sent
//! and received).
//!
//! With offloads (`CXOS_DP_BENCH=offload` runs only this part):
//! `bench: mlx5.dp_offload_pps` / `mlx5.dp_offload_ns_per_packet`: 64-byte
//! IPv4/TCP frames sent with checksum offload and VLAN insertion, received
//! with VLAN stripping and checksum results (`tx_batch_offload`,
//! `rx_batch`). Receive cost with RSS (`CXOS_DP_BENCH=rss`):
//! `bench: mlx5.rx_rss1_ns_per_packet` / `mlx5.rx_rss8_ns_per_packet`:
//! time in `rx_batch` only (the synchronous model works inside the
//! sender's doorbell, so this is the driver's receive path, harness DMA
//! accessors included) per frame, 64-byte TCP frames of 256 flows, 1 or 8
//! receive queues (`CXOS_DP_BENCH=rss1` / `rss8`: one of them).
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

use cxos_drivers::{NetDevice, TxMeta};
use mlx5::{Adapter, Config};
use mlx5::{EthConfig, QueueSet, Resources};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

type Port = QueueSet<Adapter<SimPlatform>>;

const BATCH: usize = 32;

fn open(sim: &SimPlatform) -> Port {
    open_with(
        sim,
        EthConfig {
            interrupts: false,
            ..EthConfig::default()
        },
    )
}

fn open_with(sim: &SimPlatform, cfg: EthConfig) -> Port {
    let a = Adapter::attach(sim.clone(), Config::default())
        .map_err(|f| f.error)
        .unwrap();
    let r = Resources::of(&a).unwrap();
    QueueSet::open(a, r, cfg).map_err(|f| f.error).unwrap()
}

/// A 64-byte IPv4/TCP frame of flow `flow` (its source port), checksum
/// fields left for the adapter.
#[inline(always)]
fn tcp64(f: &mut [u8], dst: &[u8; 6], flow: u16) {
    f[0..6].copy_from_slice(dst);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..24].copy_from_slice(&[0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 6]);
    f[24..26].fill(0);
    f[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f[34..36].copy_from_slice(&flow.to_be_bytes());
    f[36..38].copy_from_slice(&5201u16.to_be_bytes());
    f[38..46].fill(0);
    f[46] = 0x50;
    f[47] = 0x10;
    f[48..64].fill(0);
}

/// Queue `BATCH` 64-byte TCP frames with checksum offload and VLAN
/// insertion, ring one doorbell, reap completions.
#[inline(never)]
fn tx_batch_offload(a: &mut Port, dst: &[u8; 6], seq: &mut u16) -> usize {
    let meta = TxMeta {
        csum: true,
        vlan: Some(100),
        ..TxMeta::default()
    };
    let mut n = 0;
    for _ in 0..BATCH {
        *seq = seq.wrapping_add(1);
        let flow = 1024 + (*seq & 0xff);
        if a.transmit_with(64, meta, |f| tcp64(f, dst, flow)).is_ok() {
            n += 1;
        }
    }
    a.flush();
    a.poll();
    n
}

/// Plain TCP frames of 256 flows.
#[inline(never)]
fn tx_batch_flows(a: &mut Port, dst: &[u8; 6], seq: &mut u16) -> usize {
    let mut n = 0;
    for _ in 0..BATCH {
        *seq = seq.wrapping_add(1);
        let flow = 1024 + (*seq & 0xff);
        if a.transmit(64, |f| tcp64(f, dst, flow)).is_ok() {
            n += 1;
        }
    }
    a.flush();
    a.poll();
    n
}

fn offload_run(packets: usize) {
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX6Dx,
        Personality::ConnectX6Dx,
        Mode::Synchronous,
    );
    let mut a = open(&sa);
    let mut b = open_with(
        &sb,
        EthConfig {
            interrupts: false,
            vlan_strip: true,
            ..EthConfig::default()
        },
    );
    let dst = b.mac();
    let mut seq = 0;
    for _ in 0..100 {
        tx_batch_offload(&mut a, &dst, &mut seq);
        rx_batch(&mut b);
    }
    let ok_before = b.eth_stats().rx_csum_ok;
    let t = Instant::now();
    let mut got = 0;
    while got < packets {
        tx_batch_offload(&mut a, &dst, &mut seq);
        got += rx_batch(&mut b);
    }
    let secs = t.elapsed().as_secs_f64();
    let s = b.eth_stats();
    assert_eq!(s.rx_csum_ok - ok_before, got as u64, "every frame verified");
    println!("bench: mlx5.dp_offload_pps: {:.0} pps", got as f64 / secs);
    println!(
        "bench: mlx5.dp_offload_ns_per_packet: {:.0} ns",
        secs * 1e9 / got as f64
    );
    let (a, _) = a.close();
    let (b, _) = b.close();
    a.detach();
    b.detach();
}

fn rss_run(packets: usize, queues: u8) {
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX6Dx,
        Personality::ConnectX6Dx,
        Mode::Synchronous,
    );
    let mut a = open(&sa);
    let mut b = open_with(
        &sb,
        EthConfig {
            interrupts: false,
            rss_queues: queues,
            ..EthConfig::default()
        },
    );
    assert_eq!(b.rx_queues(), queues as usize);
    let dst = b.mac();
    let mut seq = 0;
    for _ in 0..100 {
        tx_batch_flows(&mut a, &dst, &mut seq);
        rx_batch(&mut b);
    }
    let mut rx_time = std::time::Duration::ZERO;
    let mut got = 0;
    while got < packets {
        tx_batch_flows(&mut a, &dst, &mut seq);
        let t = Instant::now();
        got += rx_batch(&mut b);
        rx_time += t.elapsed();
    }
    println!(
        "bench: mlx5.rx_rss{queues}_ns_per_packet: {:.1} ns",
        rx_time.as_secs_f64() * 1e9 / got as f64
    );
    let (a, _) = a.close();
    let (b, _) = b.close();
    a.detach();
    b.detach();
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
    let which = std::env::var("CXOS_DP_BENCH").unwrap_or_default();
    if which.is_empty() || which == "offload" {
        offload_run(packets);
    }
    if which.is_empty() || which == "rss" || which == "rss1" {
        rss_run(packets, 1);
    }
    if which.is_empty() || which == "rss" || which == "rss8" {
        rss_run(packets, 8);
    }
    if !which.is_empty() && which != "plain" {
        return;
    }
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
