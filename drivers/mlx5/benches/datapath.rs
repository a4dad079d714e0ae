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
//! `rx_batch`; `CXOS_DP_BENCH=offload_parse`: the same frames without
//! their geometry, `tx_batch_offload_parse`). Receive cost with RSS (`CXOS_DP_BENCH=rss`):
//! `bench: mlx5.rx_rss1_ns_per_packet` / `mlx5.rx_rss8_ns_per_packet`:
//! time in `rx_batch` only per frame, 64-byte TCP frames of 256 flows, 1 or
//! 8 receive queues (`CXOS_DP_BENCH=rss1` / `rss8`: one of them).
//!
//! Frames of mixed lengths through the batch API
//! (`CXOS_DP_BENCH=burst_mixed`): `tx_burst_mixed` / `rx_burst_mixed`,
//! lengths cycling through [`MIXED`], every frame's length and stamps
//! checked on arrival.
//!
//! The ports run on the bench platform (`mlx5_sim::harness::BenchPlatform`):
//! DMA and MMIO accessors as the kernel's (volatile accesses), BAR writes
//! posted and delivered to the model by `pump` between the measured
//! functions. So the measured functions (`tx_batch*`, `rx_batch`, all
//! `#[inline(never)]`) run the driver and its accessors and nothing of
//! the model, and their inclusive instruction count is the figure:
//! `CXOS_DP_BENCH=plain valgrind --tool=callgrind
//! --toggle-collect='datapath::tx_batch' <bench binary>` collects exactly
//! `tx_batch`; the run ends with lines `toggle: datapath::tx_batch: <n>
//! packets` giving the packets that went through each measured function
//! (warm-up included), the divisor. `cargo xtask bench` runs these
//! (xtask/src/bench_callgrind.rs).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cxos_drivers::{L3Proto, L4Proto, NetDevice, TxGeometry, TxMeta};
use mlx5::rq::RqKind;
use mlx5::{Adapter, Config};
use mlx5::{EthConfig, QueueSet, Resources};
use mlx5_sim::Personality;
use mlx5_sim::harness::BenchPlatform;

type Port = QueueSet<Adapter<BenchPlatform>>;

const BATCH: usize = 32;
/// Batches run before the clock starts (counted in the `toggle:` lines).
const WARMUP_BATCHES: usize = 100;

fn polled() -> EthConfig {
    EthConfig {
        interrupts: false,
        ..EthConfig::default()
    }
}

fn open_with(sim: &BenchPlatform, cfg: EthConfig) -> Port {
    let a = Adapter::attach(sim.clone(), Config::default())
        .map_err(|f| f.error)
        .unwrap();
    let r = Resources::of(&a).unwrap();
    let p = QueueSet::open(a, r, cfg).map_err(|f| f.error).unwrap();
    sim.post_writes(true);
    p
}

fn close(p: Port, sim: &BenchPlatform) {
    sim.post_writes(false);
    let (a, _) = p.close();
    a.detach();
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

/// The next of 256 flows (a source port) for a sequence number.
#[inline(always)]
fn next_flow(seq: &mut u16) -> u16 {
    *seq = seq.wrapping_add(1);
    1024 + (*seq & 0xff)
}

/// A 64-byte frame's Ethernet header to `dst`, EtherType local
/// experimental (the rest of the frame as the buffer held it).
#[inline(always)]
fn exp64(f: &mut [u8], dst: &[u8; 6]) {
    f[0..6].copy_from_slice(dst);
    f[12] = 0x88;
    f[13] = 0xb5;
}

/// The offloads of the TCP frames: checksums and VLAN insertion, the
/// geometry given as a stack gives it.
const OFFLOAD: TxMeta = TxMeta {
    csum: true,
    vlan: Some(100),
    lso: None,
    geometry: Some(TxGeometry {
        l2: 14,
        l3: L3Proto::Ipv4,
        l3_len: 20,
        l4: L4Proto::Tcp,
        l4_len: 20,
    }),
};

/// Queue `BATCH` 64-byte TCP frames with checksum offload and VLAN
/// insertion, ring one doorbell, reap completions. The frames' geometry
/// comes with them, as a stack gives it.
#[inline(never)]
fn tx_batch_offload(a: &mut Port, dst: &[u8; 6], seq: &mut u16) -> usize {
    let mut n = 0;
    for _ in 0..BATCH {
        let flow = next_flow(seq);
        if a.transmit_with(64, OFFLOAD, |f| tcp64(f, dst, flow))
            .is_ok()
        {
            n += 1;
        }
    }
    a.flush();
    a.poll();
    n
}

/// [`tx_batch_offload`] without the geometry: the driver finds the
/// headers in the frame itself.
#[inline(never)]
fn tx_batch_offload_parse(a: &mut Port, dst: &[u8; 6], seq: &mut u16) -> usize {
    let meta = TxMeta {
        csum: true,
        vlan: Some(100),
        ..TxMeta::default()
    };
    let mut n = 0;
    for _ in 0..BATCH {
        let flow = next_flow(seq);
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
        let flow = next_flow(seq);
        if a.transmit(64, |f| tcp64(f, dst, flow)).is_ok() {
            n += 1;
        }
    }
    a.flush();
    a.poll();
    n
}

/// Queue `BATCH` 64-byte frames and ring one doorbell; reap completions.
#[inline(never)]
fn tx_batch(a: &mut Port, dst: &[u8; 6], _seq: &mut u16) -> usize {
    let mut n = 0;
    for _ in 0..BATCH {
        if a.transmit(64, |f| exp64(f, dst)).is_ok() {
            n += 1;
        }
    }
    a.flush();
    a.poll();
    n
}

/// 32 frames, each rung on its own (a doorbell per frame: the latency
/// case BlueFlame is for).
#[inline(never)]
fn tx_single(a: &mut Port, dst: &[u8; 6], _seq: &mut u16) -> usize {
    let mut n = 0;
    for _ in 0..BATCH {
        if a.transmit(64, |f| exp64(f, dst)).is_ok() {
            n += 1;
        }
        a.flush();
    }
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

/// The batch API: `BATCH` 64-byte frames posted by one
/// `transmit_burst` (completions reaped first, one doorbell).
#[inline(never)]
fn tx_burst(a: &mut Port, dst: &[u8; 6], _seq: &mut u16) -> usize {
    a.transmit_burst(BATCH, TxMeta::default(), |_, f| {
        if let Some(h) = f.get_mut(..14) {
            exp64(h, dst);
        }
        64
    })
    .unwrap_or(0)
}

/// [`tx_batch_offload`] through the batch API: the offloads and the
/// geometry given once for the burst.
#[inline(never)]
fn tx_burst_offload(a: &mut Port, dst: &[u8; 6], seq: &mut u16) -> usize {
    a.transmit_burst(BATCH, OFFLOAD, |_, f| {
        let flow = next_flow(seq);
        match f.get_mut(..64) {
            Some(f) => {
                tcp64(f, dst, flow);
                64
            }
            None => 0,
        }
    })
    .unwrap_or(0)
}

/// The batch API: every received frame handed out by `receive_burst`
/// (its length only; no per-frame information asked).
#[inline(never)]
fn rx_burst(b: &mut Port) -> usize {
    b.receive_burst(usize::MAX, |f, _| {
        black_box(f.len());
    })
}

/// [`rx_burst`] asking each frame's checksum results and tag.
#[inline(never)]
fn rx_burst_meta(b: &mut Port) -> usize {
    b.receive_burst(usize::MAX, |f, i| {
        black_box((f.len(), i.meta()));
    })
}

/// Frame lengths of the mixed bursts, cycled through in this order (a
/// fixed shuffle, so neighbours differ as in real traffic). Picked for
/// the edges the paths have: 60 (the shortest Ethernet frame without
/// its FCS) and 64 (one receive stride: the striding RQ's strides are
/// 64 bytes); 65, 128, 129 (a byte into a second stride, exactly two,
/// a byte into a third); 255, 256, 257 (around the inline limit of the
/// `CXOS_DP_TX_EMPW=256` row); 924, 925 (the largest frame an eMPW
/// session can inline, `sq::EMPW_MAX_INLINE`, and one past it); 576
/// and 1514 (IMIX's middle size, and a whole MTU-1500 frame without FCS,
/// 24 strides); the rest spread over the range, small frames the most
/// common as in IMIX. Mean 474 bytes.
const MIXED: [u16; 32] = [
    60, 1514, 129, 576, 64, 257, 924, 90, 1514, 65, 256, 1200, 60, 128, 925, 150, 64, 1400, 255,
    576, 60, 700, 128, 1514, 64, 300, 1000, 60, 576, 100, 400, 64,
];

/// What the sender stamped, summed over every frame sent; what the
/// receiver found, summed over every frame received.
static TX_SUM: AtomicU64 = AtomicU64::new(0);
static RX_SUM: AtomicU64 = AtomicU64::new(0);

/// One frame's term of the sums: its length and the two stamps, the
/// head one after the Ethernet header and the tail one in its last 4
/// bytes (so a frame cut short, shifted or landed in the wrong strides
/// changes the sum).
#[inline(always)]
fn stamp_term(len: usize, head: u32, tail: u32) -> u64 {
    (len as u64) ^ (u64::from(head) << 11) ^ (u64::from(tail) << 32)
}

/// The batch API with frame lengths cycling through [`MIXED`]: each
/// frame's Ethernet header, a head stamp (its sequence number and
/// length) and its complement in the last 4 bytes; the stamps summed
/// into `TX_SUM`.
#[inline(never)]
fn tx_burst_mixed(a: &mut Port, dst: &[u8; 6], seq: &mut u16) -> usize {
    let mut sum = 0u64;
    let n = a
        .transmit_burst(BATCH, TxMeta::default(), |_, f| {
            let k = *seq;
            let len = usize::from(MIXED[usize::from(k) % MIXED.len()]);
            let Some(f) = f.get_mut(..len) else {
                return 0;
            };
            *seq = k.wrapping_add(1);
            exp64(f, dst);
            let head = (u32::from(k) << 16) | len as u32;
            f[14..18].copy_from_slice(&head.to_le_bytes());
            f[len - 4..].copy_from_slice(&(!head).to_le_bytes());
            sum = sum.wrapping_add(stamp_term(len, head, !head));
            len
        })
        .unwrap_or(0);
    TX_SUM.fetch_add(sum, Ordering::Relaxed);
    n
}

/// Every received frame through `receive_burst`, its length and the
/// two stamps summed into `RX_SUM`.
#[inline(never)]
fn rx_burst_mixed(b: &mut Port) -> usize {
    let mut sum = 0u64;
    let n = b.receive_burst(usize::MAX, |f, _| {
        let len = f.len();
        let word = |at: usize| {
            f.get(at..at + 4)
                .and_then(|w| w.try_into().ok())
                .map_or(0, u32::from_le_bytes)
        };
        sum = sum.wrapping_add(stamp_term(len, word(14), word(len.wrapping_sub(4))));
    });
    RX_SUM.fetch_add(sum, Ordering::Relaxed);
    n
}

type TxFn = fn(&mut Port, &[u8; 6], &mut u16) -> usize;
type RxFn = fn(&mut Port) -> usize;

/// One measured run: sender `a` (transmit with `tx`, the function named
/// `tx_name`) to receiver `b` (`rx_batch`).
struct Run {
    a: Port,
    b: Port,
    sa: BenchPlatform,
    sb: BenchPlatform,
    tx: TxFn,
    tx_name: &'static str,
    rx: RxFn,
    rx_name: &'static str,
}

/// What a run measured.
struct Measured {
    sent: usize,
    got: usize,
    /// Wall time of the whole loop, and inside `rx_batch` only.
    all: Duration,
    rx: Duration,
}

impl Run {
    fn new(
        part: Personality,
        tx_cfg: EthConfig,
        rx_cfg: EthConfig,
        tx: TxFn,
        tx_name: &'static str,
    ) -> Run {
        let (sa, sb) = BenchPlatform::pair(part, part);
        let a = open_with(&sa, tx_cfg);
        let b = open_with(&sb, rx_cfg);
        Run {
            a,
            b,
            sa,
            sb,
            tx,
            tx_name,
            rx: rx_batch,
            rx_name: "rx_batch",
        }
    }

    /// Receive with `rx` (the function named `rx_name`).
    fn receiving(mut self, rx: RxFn, rx_name: &'static str) -> Run {
        self.rx = rx;
        self.rx_name = rx_name;
        self
    }

    /// Warm up, then move `packets` frames; prints the toggle lines.
    fn go(&mut self, packets: usize) -> Measured {
        let dst = self.b.mac();
        let mut seq = 0u16;
        let (mut sent, mut got) = (0, 0);
        let mut one = |r: &mut Run, rx_time: &mut Duration| {
            let k = (r.tx)(&mut r.a, &dst, &mut seq);
            r.sa.pump();
            let t = Instant::now();
            let n = (r.rx)(&mut r.b);
            *rx_time += t.elapsed();
            r.sb.pump();
            (k, n)
        };
        let mut ignore = Duration::ZERO;
        for _ in 0..WARMUP_BATCHES {
            let (k, n) = one(self, &mut ignore);
            sent += k;
            got += n;
        }
        let (warm_sent, warm_got) = (sent, got);
        let mut rx = Duration::ZERO;
        let t = Instant::now();
        while got - warm_got < packets {
            let (k, n) = one(self, &mut rx);
            sent += k;
            got += n;
        }
        let all = t.elapsed();
        println!("toggle: datapath::{}: {sent} packets", self.tx_name);
        println!("toggle: datapath::{}: {got} packets", self.rx_name);
        Measured {
            sent: sent - warm_sent,
            got: got - warm_got,
            all,
            rx,
        }
    }

    fn close(self) {
        close(self.a, &self.sa);
        close(self.b, &self.sb);
    }
}

fn offload_run(packets: usize, parse: bool) {
    let rx_cfg = EthConfig {
        vlan_strip: true,
        ..polled()
    };
    let (tx, name): (TxFn, _) = if parse {
        (tx_batch_offload_parse, "tx_batch_offload_parse")
    } else {
        (tx_batch_offload, "tx_batch_offload")
    };
    let mut r = Run::new(Personality::ConnectX6Dx, polled(), rx_cfg, tx, name);
    let ok_before = r.b.eth_stats().rx_csum_ok;
    let m = r.go(packets);
    let s = r.b.eth_stats();
    assert!(
        s.rx_csum_ok - ok_before >= m.got as u64,
        "every frame verified"
    );
    let secs = m.all.as_secs_f64();
    if parse {
        r.close();
        return;
    }
    println!("bench: mlx5.dp_offload_pps: {:.0} pps", m.got as f64 / secs);
    println!(
        "bench: mlx5.dp_offload_ns_per_packet: {:.0} ns",
        secs * 1e9 / m.got as f64
    );
    r.close();
}

fn rss_run(packets: usize, queues: u8) {
    let rx_cfg = EthConfig {
        rss_queues: queues,
        ..polled()
    };
    let mut r = Run::new(
        Personality::ConnectX6Dx,
        polled(),
        rx_cfg,
        tx_batch_flows,
        "tx_batch_flows",
    );
    assert_eq!(r.b.rx_queues(), queues as usize);
    let m = r.go(packets);
    println!(
        "bench: mlx5.rx_rss{queues}_ns_per_packet: {:.1} ns",
        m.rx.as_secs_f64() * 1e9 / m.got as f64
    );
    r.close();
}

fn plain_run(packets: usize) {
    let mut r = Run::new(
        Personality::ConnectX6Dx,
        polled(),
        polled(),
        tx_batch,
        "tx_batch",
    );
    let m = r.go(packets);
    assert_eq!(m.sent, m.got, "every frame arrives");
    let secs = m.all.as_secs_f64();
    println!("bench: mlx5.dp_pps: {:.0} pps", m.got as f64 / secs);
    println!(
        "bench: mlx5.dp_ns_per_packet: {:.0} ns",
        secs * 1e9 / m.got as f64
    );
    r.close();
}

/// A doorbell per frame (`CXOS_DP_BENCH=single`), plain 8-byte doorbells
/// or, with `CXOS_DP_TX_BF=on`, BlueFlame writes of each WQE's first
/// block (`EthConfig::blueflame`).
fn single_run(packets: usize) {
    let bf = std::env::var("CXOS_DP_TX_BF").as_deref() == Ok("on");
    let tx_cfg = EthConfig {
        blueflame: bf,
        ..polled()
    };
    let mut r = Run::new(
        Personality::ConnectX6Dx,
        tx_cfg,
        polled(),
        tx_single,
        "tx_single",
    );
    let m = r.go(packets);
    assert_eq!(m.sent, m.got, "every frame arrives");
    assert_eq!(r.a.sq().unwrap().stats.bf_doorbells > 0, bf);
    println!(
        "bench: mlx5.dp_single{}_ns_per_packet: {:.0} ns",
        if bf { "_bf" } else { "" },
        m.all.as_secs_f64() * 1e9 / m.got as f64
    );
    r.close();
}

/// The batch API both ways (`CXOS_DP_BENCH=burst`: plain frames;
/// `burst_offload`: checksum + VLAN insert sent, tag stripped and the
/// per-frame information asked on receive).
fn burst_run(packets: usize, offload: bool) {
    burst_run_with(packets, offload, false);
}

/// [`burst_run`] with `compress`: the receive CQ writes compressed CQE
/// sessions (`CXOS_DP_BENCH=burst_comp`: figure `rx_burst` of
/// `cg_rx_burst_comp`).
fn burst_run_with(packets: usize, offload: bool, compress: bool) {
    let rx_cfg = EthConfig {
        vlan_strip: offload,
        cqe_compression: compress,
        ..polled()
    };
    // `CXOS_DP_PART=cx4lx`: the ConnectX-4 Lx, whose sessions are legacy
    // MPW (and whose single WQEs inline the L2 header).
    let tx_cfg = EthConfig {
        empw: tx_empw(),
        ..polled()
    };
    let part = match std::env::var("CXOS_DP_PART").as_deref() {
        Ok("cx4lx") => Personality::ConnectX4Lx,
        _ => Personality::ConnectX6Dx,
    };
    let r = if offload {
        Run::new(part, tx_cfg, rx_cfg, tx_burst_offload, "tx_burst_offload")
            .receiving(rx_burst_meta, "rx_burst_meta")
    } else {
        Run::new(part, tx_cfg, rx_cfg, tx_burst, "tx_burst").receiving(rx_burst, "rx_burst")
    };
    let mut r = r;
    assert_eq!(
        r.a.sq().unwrap().legacy_mpw(),
        part == Personality::ConnectX4Lx
    );
    let m = r.go(packets);
    assert_eq!(m.sent, m.got, "every frame arrives");
    let secs = m.all.as_secs_f64();
    let name = match (offload, compress) {
        (true, _) => "burst_offload",
        (false, true) => "burst_comp",
        (false, false) => "burst",
    };
    println!("bench: mlx5.dp_{name}_pps: {:.0} pps", m.got as f64 / secs);
    r.close();
}

/// `CXOS_DP_TX_EMPW`: `off` one WQE per frame, `inline` eMPW sessions
/// with the frames inline (64-byte frames: all of them), a number: eMPW
/// sessions inlining frames up to that many bytes; else eMPW sessions
/// of pointers.
fn tx_empw() -> Option<u16> {
    match std::env::var("CXOS_DP_TX_EMPW").as_deref() {
        Ok("off") => None,
        Ok("inline") => Some(64),
        Ok(v) => Some(v.parse().unwrap_or(0)),
        Err(_) => Some(0),
    }
}

/// The batch API both ways with frame lengths of [`MIXED`]
/// (`CXOS_DP_BENCH=burst_mixed`; `CXOS_DP_TX_EMPW` as for `burst`),
/// into a striding RQ; every frame must arrive with its length and
/// stamps (figures `cg_tx_burst_mixed`, `cg_rx_burst_mixed`).
fn mixed_run(packets: usize) {
    let tx_cfg = EthConfig {
        empw: tx_empw(),
        ..polled()
    };
    let mut r = Run::new(
        Personality::ConnectX6Dx,
        tx_cfg,
        polled(),
        tx_burst_mixed,
        "tx_burst_mixed",
    )
    .receiving(rx_burst_mixed, "rx_burst_mixed");
    assert!(
        matches!(
            r.b.rq().unwrap().kind(),
            RqKind::Striding { log_stride: 6, .. }
        ),
        "64-byte strides, so most frames take several"
    );
    let m = r.go(packets);
    assert_eq!(m.sent, m.got, "every frame arrives");
    let (tx, rx) = (
        TX_SUM.load(Ordering::Relaxed),
        RX_SUM.load(Ordering::Relaxed),
    );
    assert_eq!(tx, rx, "every frame's length and stamps arrive");
    println!(
        "bench: mlx5.dp_burst_mixed_pps: {:.0} pps",
        m.got as f64 / m.all.as_secs_f64()
    );
    r.close();
}

fn main() {
    let packets: usize = std::env::var("CXOS_DP_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let which = std::env::var("CXOS_DP_BENCH").unwrap_or_default();
    let all = which.is_empty();
    if all || which == "offload" {
        offload_run(packets, false);
    }
    if which == "offload_parse" {
        offload_run(packets, true);
    }
    if all || which == "rss" || which == "rss1" {
        rss_run(packets, 1);
    }
    if all || which == "rss" || which == "rss8" {
        rss_run(packets, 8);
    }
    if all || which == "plain" {
        plain_run(packets);
    }
    if all || which == "burst" {
        burst_run(packets, false);
    }
    if all || which == "burst_offload" {
        burst_run(packets, true);
    }
    if all || which == "burst_comp" {
        burst_run_with(packets, false, true);
    }
    if all || which == "burst_mixed" {
        mixed_run(packets);
    }
    if which == "single" {
        single_run(packets);
    }
    if which == "selective" {
        selective_run(packets);
    }
    if which == "moderation" {
        moderation_run(packets);
    }
    if which == "tx_moderation" {
        tx_moderation_run(packets);
    }
    if which == "burst_cyclic" {
        burst_cyclic_run(packets);
    }
}

/// Selective completion signalling (`CXOS_DP_BENCH=selective`): one WQE
/// per frame (no eMPW, so every WQE is a candidate for a CQE), bursts of
/// `BATCH`, a transmit CQE requested every `CXOS_DP_TX_CQ_EVERY` WQEs
/// (`EthConfig::cq_every`, default 32; 1: every WQE) and at each burst's
/// last; `tx_burst` reaps them (figures `cg_tx_cq_every1`,
/// `cg_tx_cq_every32`).
fn selective_run(packets: usize) {
    let every: u16 = std::env::var("CXOS_DP_TX_CQ_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let tx_cfg = EthConfig {
        empw: None,
        cq_every: every,
        ..polled()
    };
    let mut r = Run::new(
        Personality::ConnectX6Dx,
        tx_cfg,
        polled(),
        tx_burst,
        "tx_burst",
    )
    .receiving(rx_burst, "rx_burst");
    assert_eq!(r.a.tuning().cq_every, every);
    let m = r.go(packets);
    assert_eq!(m.sent, m.got, "every frame arrives");
    println!(
        "bench: mlx5.dp_cq_every{every}_ns_per_packet: {:.0} ns",
        m.all.as_secs_f64() * 1e9 / m.got as f64
    );
    r.close();
}

/// Frames sent one per round (`tx_one`), so a receive CQ that signals
/// every completion raises an event per frame.
#[inline(never)]
fn tx_one(a: &mut Port, dst: &[u8; 6], _seq: &mut u16) -> usize {
    let n = a
        .transmit_burst(1, TxMeta::default(), |_, f| {
            if let Some(h) = f.get_mut(..14) {
                h[0..6].copy_from_slice(dst);
                h[12] = 0x88;
                h[13] = 0xb5;
            }
            64
        })
        .unwrap_or(0);
    a.poll();
    n
}

/// Receive in interrupt mode: the frames, then the completion events
/// (`poll`: the EQ read, each signalled CQ re-armed).
#[inline(never)]
fn rx_events(b: &mut Port) -> usize {
    let n = b.receive_burst(usize::MAX, |f, _| {
        black_box(f.len());
    });
    b.poll();
    n
}

/// Receive CQ event moderation (`CXOS_DP_BENCH=moderation`): one frame
/// per round into a receive queue in interrupt mode, its CQ moderated
/// to an event per `CXOS_DP_RX_FRAMES` completions (`ethtool -C
/// rx-frames`, no period; 0: moderation off, an event per frame);
/// `rx_events` counts the frames and the event handling (figures
/// `cg_rx_events`, `cg_rx_events_moderated`).
fn moderation_run(packets: usize) {
    let frames: u16 = std::env::var("CXOS_DP_RX_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let rx_cfg = EthConfig {
        interrupts: true,
        cq_moderation: (frames != 0).then_some((0, frames)),
        ..polled()
    };
    let mut r = Run::new(Personality::ConnectX6Dx, polled(), rx_cfg, tx_one, "tx_one")
        .receiving(rx_events, "rx_events");
    let m = r.go(packets);
    assert_eq!(m.sent, m.got, "every frame arrives");
    println!(
        "bench: mlx5.dp_rx_events_frames{frames}_ns_per_packet: {:.0} ns",
        m.all.as_secs_f64() * 1e9 / m.got as f64
    );
    r.close();
}

/// Transmit CQ event moderation (`CXOS_DP_BENCH=tx_moderation`): one
/// frame per round from a port in interrupt mode, a CQE per WQE, its
/// transmit CQ moderated to an event per `CXOS_DP_TX_FRAMES` completions
/// (`ethtool -C tx-frames`, no period; 0: moderation off, an event per
/// frame); `tx_one` (the send, then `poll`: the EQ read, the transmit
/// CQ's completions reaped and the CQ re-armed) counted (figures
/// `cg_tx_events`, `cg_tx_events_moderated`). A function of its own with
/// `tx_one`'s body would be folded into it and never collected.
fn tx_moderation_run(packets: usize) {
    let frames: u16 = std::env::var("CXOS_DP_TX_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let tx_cfg = EthConfig {
        interrupts: true,
        cq_every: 1,
        empw: None,
        tx_cq_moderation: (frames != 0).then_some((0, frames)),
        ..polled()
    };
    let mut r = Run::new(Personality::ConnectX6Dx, tx_cfg, polled(), tx_one, "tx_one")
        .receiving(rx_burst, "rx_burst");
    assert_eq!(
        r.a.tuning().tx_cq_moderation,
        (frames != 0).then_some((0, frames))
    );
    let m = r.go(packets);
    assert_eq!(m.sent, m.got, "every frame arrives");
    println!(
        "bench: mlx5.dp_tx_events_frames{frames}_ns_per_packet: {:.0} ns",
        m.all.as_secs_f64() * 1e9 / m.got as f64
    );
    r.close();
}

/// The batch API into a cyclic (non-striding) receive queue
/// (`CXOS_DP_BENCH=burst_cyclic`): eMPW bursts of `BATCH` 64-byte frames
/// from the sender, `rx_burst` on a receiver whose RQ is a ring of
/// single-frame buffers (`RqChoice::Cyclic`, what the parts without
/// striding RQ have; figure `cg_rx_burst_cyclic`).
fn burst_cyclic_run(packets: usize) {
    let rx_cfg = EthConfig {
        rq_kind: mlx5::RqChoice::Cyclic,
        ..polled()
    };
    let tx_cfg = EthConfig {
        empw: Some(0),
        ..polled()
    };
    let mut r = Run::new(
        Personality::ConnectX6Dx,
        tx_cfg,
        rx_cfg,
        tx_burst,
        "tx_burst",
    )
    .receiving(rx_burst, "rx_burst");
    assert!(!r.b.rq().unwrap().is_striding(), "a cyclic RQ");
    let m = r.go(packets);
    assert_eq!(m.sent, m.got, "every frame arrives");
    println!(
        "bench: mlx5.dp_burst_cyclic_pps: {:.0} pps",
        m.got as f64 / m.all.as_secs_f64()
    );
    r.close();
}
