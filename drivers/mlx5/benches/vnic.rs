//! VNIC receive cost with 1 and with 20 VNICs on the receiving adapter
//! (issue 10: the adapter steers, so the per-packet cost must not depend
//! on the number of VNICs).
//!
//! Two ConnectX-6 Dx models wired back to back, synchronous mode (the
//! receiving model steers and writes the frame inside the sender's
//! doorbell). The sender is a plain port; the receiver a [`Nic`] with 1
//! or 20 untagged VNICs (polled mode). Each batch is 32 60-byte frames to
//! one VNIC (the next VNIC each batch); `rx_batch` takes them from that
//! VNIC. `rx_all` (the `_pollall` figure) polls every VNIC once per
//! batch, as a main loop that polls every interface would, with the
//! frames of a batch spread over all VNICs.
//!
//! Transmit through a VNIC (`vnic_tx_batch`, the `tx` figure): 32 frames
//! from one of 20 VNICs to a plain port, one doorbell per batch, then the
//! VNIC's completions.
//!
//! `cargo bench -p mlx5 --bench vnic` prints
//! `bench: mlx5.vnic_rx_1_ns_per_packet`, `..._20_ns_per_packet`,
//! `..._20_pollall_ns_per_packet` (time inside the receive functions) and
//! `bench: mlx5.vnic_tx_ns_per_packet` (time inside `vnic_tx_batch`,
//! the receiving model's work inside the doorbell included).
//! `CXOS_VNIC_BENCH=1|20|all|tx` runs one of them, `CXOS_VNIC_PACKETS` sets
//! the count.
//!
//! Queue sets (issue 21, the `qs1`/`qs4` figures): 1 or 4 VNICs in
//! interrupt mode, VNIC i on queue set i (its own completion EQ, as one
//! CPU each would have), each batch to the next VNIC; `qs_batch` is what
//! that VNIC's CPU does when its vector fires: poll (drain its EQ, take
//! its CQ's event, re-arm), receive every frame, re-post. The cost per
//! packet must not rise with the number of queue sets.
//! `CXOS_VNIC_BENCH=qs1|qs4` (`bench: mlx5.vnic_rx_qs<N>_ns_per_packet`).
//!
//! Both adapters run on the bench platform
//! (`mlx5_sim::harness::BenchPlatform`: kernel-like accessors, BAR writes
//! posted and delivered to the model by `pump` between the measured
//! functions), so the measured functions contain no model work.
//! Instructions per packet: callgrind with
//! `--toggle-collect='vnic::rx_batch'` (or `vnic::rx_all`,
//! `vnic::vnic_tx_batch`) divided by the packets of the function's
//! `toggle:` line (printed at the end, warm-up included); `cargo xtask
//! bench` runs them (xtask/src/bench_callgrind.rs).

use std::hint::black_box;
use std::time::{Duration, Instant};

use cxos_drivers::NetDevice;
use mlx5::vnic::{Nic, NicConfig, Vnic, VnicSpec};
use mlx5::{Adapter, Config};
use mlx5::{EthConfig, QueueSet, Resources};
use mlx5_sim::Personality;
use mlx5_sim::harness::BenchPlatform;

type A = Adapter<BenchPlatform>;

const BATCH: usize = 32;

fn polled() -> EthConfig {
    EthConfig {
        interrupts: false,
        ..EthConfig::default()
    }
}

fn sender(sim: &BenchPlatform) -> QueueSet<A> {
    let a = Adapter::attach(sim.clone(), Config::default())
        .map_err(|f| f.error)
        .unwrap();
    let r = Resources::of(&a).unwrap();
    QueueSet::open(a, r, polled()).map_err(|f| f.error).unwrap()
}

fn receiver(sim: &BenchPlatform, n: usize) -> (Nic<A>, Vec<Vnic<A>>) {
    receiver_on(sim, n, false)
}

/// `n` VNICs; with `queue_sets`, in interrupt mode, VNIC i on queue set i.
fn receiver_on(sim: &BenchPlatform, n: usize, queue_sets: bool) -> (Nic<A>, Vec<Vnic<A>>) {
    let a = Adapter::attach(sim.clone(), Config::default())
        .map_err(|f| f.error)
        .unwrap();
    let r = Resources::of(&a).unwrap();
    let cfg = NicConfig {
        eth: EthConfig {
            lso_bufs: 0,
            interrupts: queue_sets,
            ..polled()
        },
        ..NicConfig::default()
    };
    let nic = Nic::new(a, r, cfg).map_err(|f| f.error).unwrap();
    if queue_sets {
        assert!(nic.queue_sets() >= n, "{} queue sets", nic.queue_sets());
    }
    let vnics = (0..n)
        .map(|i| {
            let set = if queue_sets { i } else { 0 };
            nic.create_on(VnicSpec::default(), set).unwrap()
        })
        .collect();
    (nic, vnics)
}

/// A VNIC's CPU after its queue set's vector fired: poll (its EQ, its
/// CQ's event, re-arm), every frame, buffers re-posted.
#[inline(never)]
fn qs_batch(v: &mut Vnic<A>) -> usize {
    v.poll();
    let mut n = 0;
    while v.receive(|f, _| black_box(f.len())).is_some() {
        n += 1;
    }
    v.flush();
    n
}

/// Batches to the VNICs of `sets` queue sets in turn, each taken by
/// [`qs_batch`].
fn run_queue_sets(sets: usize, packets: usize) {
    let (sa, sb) = BenchPlatform::pair(Personality::ConnectX6Dx, Personality::ConnectX6Dx);
    let mut a = sender(&sa);
    let (nic, mut vnics) = receiver_on(&sb, sets, true);
    let ns = rx_loop(
        &sa,
        &sb,
        &mut a,
        &mut vnics,
        packets,
        Taken::One(qs_batch),
        "qs_batch",
    );
    report(&format!("rx_qs{sets}"), ns);
    close(nic, vnics, a);
}

/// How the receiving side takes a batch.
#[derive(Clone, Copy)]
enum Taken {
    /// The batch's VNIC alone (the batch all to it).
    One(fn(&mut Vnic<A>) -> usize),
    /// Every VNIC polled (the batch spread over all).
    All(fn(&mut [Vnic<A>]) -> usize),
}

/// Batches from `a` to the VNICs in turn, taken as `taken` says (by the
/// function `function`, the `toggle:` line's), after a warm-up, with BAR
/// writes posted; the time inside the receive function per packet (ns).
fn rx_loop(
    sa: &BenchPlatform,
    sb: &BenchPlatform,
    a: &mut QueueSet<A>,
    vnics: &mut [Vnic<A>],
    packets: usize,
    taken: Taken,
    function: &str,
) -> f64 {
    let macs: Vec<[u8; 6]> = vnics.iter().map(|v| v.mac().0).collect();
    sa.post_writes(true);
    sb.post_writes(true);
    let mut in_rx = Duration::ZERO;
    let (mut got, mut seq) = (0usize, 0usize);
    let warmup = 100 * BATCH;
    while got < packets + warmup {
        let target = seq / BATCH % vnics.len();
        let dst = match taken {
            Taken::One(_) => Some(macs[target]),
            Taken::All(_) => None,
        };
        tx_batch(a, dst, &macs, seq);
        sa.pump();
        let t = Instant::now();
        let k = match taken {
            Taken::One(rx) => rx(&mut vnics[target]),
            Taken::All(rx) => rx(vnics),
        };
        if got >= warmup {
            in_rx += t.elapsed();
        }
        sb.pump();
        if dst.is_some() && k != BATCH {
            panic!(
                "batch {} got {k}: {:?} {:?}",
                seq / BATCH,
                sb.sim().port_stats(),
                vnics[target].queue_set().last_fault()
            );
        }
        got += k;
        seq += BATCH;
    }
    println!("toggle: vnic::{function}: {got} packets");
    sa.post_writes(false);
    sb.post_writes(false);
    in_rx.as_nanos() as f64 / (got - warmup) as f64
}

/// `bench: mlx5.vnic_<name>_ns_per_packet: <ns> ns`.
fn report(name: &str, ns: f64) {
    println!("bench: mlx5.vnic_{name}_ns_per_packet: {ns:.1} ns");
}

/// Destroy the VNICs, close both sides, detach.
fn close(nic: Nic<A>, vnics: Vec<Vnic<A>>, port: QueueSet<A>) {
    for v in vnics {
        v.destroy();
    }
    let (ad, _) = nic.close().unwrap();
    ad.detach();
    let (pa, _) = port.close();
    pa.detach();
}

/// 32 frames: to `dst` (`None`: spread over `all`).
#[inline(never)]
fn tx_batch(a: &mut QueueSet<A>, dst: Option<[u8; 6]>, all: &[[u8; 6]], seq: usize) {
    for k in 0..BATCH {
        let d = dst.unwrap_or(all[(seq + k) % all.len()]);
        a.transmit(60, |b| {
            b[..6].copy_from_slice(&d);
            b[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
            b[12..14].copy_from_slice(&[0x88, 0xb5]);
        })
        .unwrap();
    }
    a.flush();
    a.poll();
}

/// Every frame one VNIC received; buffers re-posted.
#[inline(never)]
fn rx_batch(v: &mut Vnic<A>) -> usize {
    let mut n = 0;
    while v.receive(|f, _| black_box(f.len())).is_some() {
        n += 1;
    }
    v.flush();
    n
}

/// Poll every VNIC once, taking what each has.
#[inline(never)]
fn rx_all(vs: &mut [Vnic<A>]) -> usize {
    let mut n = 0;
    for v in vs.iter_mut() {
        n += rx_batch(v);
    }
    n
}

/// 32 frames from a VNIC to `dst`, one doorbell, then its completions.
#[inline(never)]
fn vnic_tx_batch(v: &mut Vnic<A>, dst: [u8; 6]) -> usize {
    let mut n = 0;
    for _ in 0..BATCH {
        let sent = v.transmit(60, |b| {
            b[..6].copy_from_slice(&dst);
            b[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 2]);
            b[12..14].copy_from_slice(&[0x88, 0xb5]);
        });
        if sent.is_ok() {
            n += 1;
        }
    }
    v.flush();
    v.poll();
    n
}

/// Every frame a plain port received.
#[inline(never)]
fn port_rx(p: &mut QueueSet<A>) -> usize {
    let mut n = 0;
    while p.receive(|f, _| black_box(f.len())).is_some() {
        n += 1;
    }
    p.flush();
    n
}

/// VNIC 19 of 20 transmits to a plain port.
fn run_tx(packets: usize) {
    let (sa, sb) = BenchPlatform::pair(Personality::ConnectX6Dx, Personality::ConnectX6Dx);
    let (nic, mut vnics) = receiver(&sa, 20);
    let mut b = sender(&sb);
    sa.post_writes(true);
    sb.post_writes(true);
    let dst = b.mac();
    let mut in_tx = Duration::ZERO;
    let mut got = 0usize;
    let warmup = 100 * BATCH;
    while got < packets + warmup {
        let t = Instant::now();
        let k = vnic_tx_batch(&mut vnics[19], dst);
        if got >= warmup {
            in_tx += t.elapsed();
        }
        sa.pump();
        let r = port_rx(&mut b);
        sb.pump();
        assert_eq!((k, r), (BATCH, BATCH), "{:?}", sb.sim().port_stats());
        got += r;
    }
    println!("toggle: vnic::vnic_tx_batch: {got} packets");
    sa.post_writes(false);
    sb.post_writes(false);
    report("tx", in_tx.as_nanos() as f64 / (got - warmup) as f64);
    close(nic, vnics, b);
}

fn run(n: usize, packets: usize, poll_all: bool) {
    let (sa, sb) = BenchPlatform::pair(Personality::ConnectX6Dx, Personality::ConnectX6Dx);
    let mut a = sender(&sa);
    let (nic, mut vnics) = receiver(&sb, n);
    let (taken, function) = if poll_all {
        (Taken::All(rx_all), "rx_all")
    } else {
        (Taken::One(rx_batch), "rx_batch")
    };
    let ns = rx_loop(&sa, &sb, &mut a, &mut vnics, packets, taken, function);
    let name = if poll_all {
        format!("rx_{n}_pollall")
    } else {
        format!("rx_{n}")
    };
    report(&name, ns);
    close(nic, vnics, a);
}

fn main() {
    let packets: usize = std::env::var("CXOS_VNIC_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let which = std::env::var("CXOS_VNIC_BENCH").unwrap_or_default();
    if which.is_empty() || which == "1" {
        run(1, packets, false);
    }
    if which.is_empty() || which == "20" {
        run(20, packets, false);
    }
    if which.is_empty() || which == "all" {
        run(20, packets, true);
    }
    if which.is_empty() || which == "tx" {
        run_tx(packets);
    }
    for sets in [1, 4] {
        if which.is_empty() || which == format!("qs{sets}") {
            run_queue_sets(sets, packets);
        }
    }
}
