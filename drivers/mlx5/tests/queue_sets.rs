//! One queue set per CPU (issue 21), against the model in its threaded
//! mode (device work on the model's own thread, like hardware): a VNIC
//! per queue set, each created on its own completion EQ
//! ([`Nic::create_on`]), each moved to a thread of its own that transmits
//! frames to its own MAC over the looped-back port and receives them in
//! interrupt mode, all at once. Every frame comes back to the VNIC that
//! sent it, in order; a VNIC's CQs report only to its own EQ, so a thread
//! never touches another queue set's EQ or queues; the steady-state
//! packet path allocates nothing (a counting global allocator, counted per
//! thread); afterwards the model's sanitizer saw nothing wrong and every
//! DMA byte is back.

mod common;

use std::sync::Barrier;

use cxos_drivers::NetDevice;
use mlx5::Mac;
use mlx5::vnic::{Nic, Vnic, VnicSpec};
use mlx5_sim::Personality;
use mlx5_sim::harness::{self, CountingAlloc, Mode, SimPlatform};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

type A = mlx5::Adapter<SimPlatform>;

/// Frames per thread after the warm-up round.
const FRAMES: u32 = 4000;
/// Frames in flight per thread (below the 32-entry rings of
/// `common::nic`).
const WINDOW: u32 = 16;
const LEN: usize = 128;

/// An attached adapter on a looped-back port with its steering open.
fn looped_nic(sim: &SimPlatform) -> Nic<A> {
    common::nic(sim, true)
}

/// Send `count` frames to the VNIC's own MAC (`WINDOW` in flight) and
/// take each back, checking the sequence; the frames it received.
fn exchange(v: &mut Vnic<A>, set: u8, first: u32, count: u32) -> u32 {
    let mac: Mac = v.mac();
    let (mut sent, mut got) = (0u32, 0u32);
    let mut idle = 0u64;
    while got < count {
        while sent < count && sent - got < WINDOW {
            let seq = first + sent;
            let r = v.transmit(LEN, |b| {
                common::fill(b, mac.0, seq);
                b[18] = set;
            });
            if r.is_err() {
                break;
            }
            sent += 1;
        }
        v.flush();
        v.poll();
        let mut progressed = false;
        while let Some((s, from)) = v.receive(|f, _| {
            (
                u32::from_be_bytes([f[14], f[15], f[16], f[17]]),
                (f[18], f.len()),
            )
        }) {
            assert_eq!(from, (set, LEN), "queue set {set}: a frame of another set");
            assert_eq!(s, first + got, "queue set {set}: out of order");
            got += 1;
            progressed = true;
        }
        if progressed {
            idle = 0;
        } else {
            idle += 1;
            assert!(
                idle < 50_000_000,
                "queue set {set}: stalled at {got}/{count}"
            );
            std::thread::yield_now();
        }
    }
    got
}

#[test]
fn every_queue_set_carries_its_own_traffic_in_parallel_threads() {
    common::logger();
    let sim = SimPlatform::new_loopback(Personality::ConnectX5, Mode::Threaded);
    let dma_before = sim.dma_in_use();
    let nic = looped_nic(&sim);
    let sets = nic.queue_sets();
    assert!(sets >= 2, "the model offers {sets} completion EQ(s)");
    let mut vnics: Vec<Vnic<A>> = (0..sets)
        .map(|s| {
            let v = nic
                .create_on(VnicSpec::default(), s)
                .unwrap_or_else(|e| panic!("queue set {s}: {e}"));
            assert_eq!(v.queue_set().eq_indexes(), [s], "queue set {s}: its EQs");
            v
        })
        .collect();
    // The queue sets' completion EQs differ: no two threads share one.
    let mut eqns: Vec<u8> = vnics
        .iter()
        .map(|v| v.queue_set().tx_cq().unwrap().eqn.0)
        .collect();
    eqns.dedup();
    assert_eq!(eqns.len(), sets, "each queue set its own EQ");

    let barrier = Barrier::new(sets);
    std::thread::scope(|s| {
        for (set, v) in vnics.iter_mut().enumerate() {
            let barrier = &barrier;
            s.spawn(move || {
                let set = set as u8;
                // Warm-up: lazily grown state reaches its working size.
                exchange(v, set, 0, 64);
                barrier.wait();
                let before = harness::thread_allocations();
                let got = exchange(v, set, 64, FRAMES);
                let allocs = harness::thread_allocations() - before;
                assert_eq!(got, FRAMES);
                assert_eq!(allocs, 0, "queue set {set}: allocations on the packet path");
            });
        }
    });
    for v in &vnics {
        let st = v.stats();
        eprintln!("{}: {st:?}", v.id());
        assert_eq!(st.rx_packets, st.tx_packets, "{st:?}");
        assert_eq!(st.rx_packets, u64::from(64 + FRAMES), "{st:?}");
    }
    for v in vnics {
        assert_eq!(v.destroy().errors, 0);
    }
    common::close_nic(nic, &sim, dma_before);
}

#[test]
fn a_queue_set_past_the_last_wraps_and_rss_queues_follow_their_set() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let dma_before = sim.dma_in_use();
    let nic = looped_nic(&sim);
    let sets = nic.queue_sets();
    assert!(sets >= 2);
    let wrapped = nic.create_on(VnicSpec::default(), sets + 1).unwrap();
    assert_eq!(wrapped.queue_set().eq_indexes(), [1]);
    let rss = nic
        .create_on(
            VnicSpec {
                vlan: Some(7),
                queues: 2,
                ..VnicSpec::default()
            },
            sets - 1,
        )
        .unwrap();
    // Its own set first, the next RSS queue on the set after it.
    assert_eq!(rss.queue_set().eq_indexes(), [sets - 1, 0]);
    assert_eq!(wrapped.destroy().errors, 0);
    assert_eq!(rss.destroy().errors, 0);
    common::close_nic(nic, &sim, dma_before);
}
