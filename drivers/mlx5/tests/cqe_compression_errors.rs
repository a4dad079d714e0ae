//! A compressed CQE session broken by an error CQE, on every part that
//! compresses (ConnectX-4 Lx, 5, 6, 6 Dx), in both model modes, on both
//! receive queue kinds (cyclic, and striding where the part has it):
//! the frames of the session before the error arrive whole and in order
//! (some read before the error is written, the rest after: the driver is
//! in the middle of the session), the error is seen and recorded, the
//! owner's recovery step resets the RQ, and the next burst arrives as a
//! session again, every frame checked; every buffer back (the queue keeps
//! taking bursts), no DMA leaked, no sanitizer violation. Two ways to
//! break it: a frame too long for a cyclic RQ's buffers inside the burst
//! (LOCAL_LENGTH), and a receive WQE whose lkey the model refuses
//! (`rq-bad-lkey`, LOCAL_PROT) right after a session, on either kind.

mod common;

use common::Port;
use cxos_drivers::NetDevice;
use mlx5::fault::{FaultClass, FaultOutcome};
use mlx5::{EthConfig, RqChoice};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::queue_faults::{BadWqe, QueueFault};

/// The parts with CQE compression.
const PARTS: [Personality; 4] = [
    Personality::ConnectX4Lx,
    Personality::ConnectX5,
    Personality::ConnectX6,
    Personality::ConnectX6Dx,
];

/// Frame `seq` of `len` bytes to `dst` (`common::fill`'s pattern).
fn frame(dst: [u8; 6], len: usize, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; len];
    common::fill(&mut b, dst, seq);
    b
}

/// Frames `seqs` of lengths `len(seq)` delivered as one burst.
fn inject(sim: &SimPlatform, dst: [u8; 6], seqs: std::ops::Range<u32>, len: impl Fn(u32) -> usize) {
    let frames: Vec<Vec<u8>> = seqs.map(|s| frame(dst, len(s), s)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    sim.inject_rx_burst(&refs);
}

/// A received frame: its length is `len(seq)` and every byte the
/// pattern; returns its sequence number.
fn check(f: &[u8], dst: [u8; 6], len: impl Fn(u32) -> usize) -> u32 {
    let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
    assert_eq!(f.len(), len(seq), "frame {seq} length");
    assert!(
        f == frame(dst, len(seq), seq).as_slice(),
        "frame {seq} bytes"
    );
    seq
}

/// Open a port on `sim` whose MAC takes 9000-byte frames (the queues'
/// buffers stay 1500: a longer frame does not fit a cyclic buffer).
fn open_jumbo_port(sim: &SimPlatform, rq_kind: RqChoice) -> Port {
    let mut a = mlx5::Adapter::attach(sim.clone(), common::config())
        .unwrap_or_else(|f| panic!("{}", f.error));
    a.set_port_mtu(9000).expect("port MTU");
    let r = mlx5::Resources::of(&a).expect("resources");
    let cfg = EthConfig {
        log_rq: 5,
        rq_kind,
        cqe_compression: true,
        ..EthConfig::default()
    };
    mlx5::QueueSet::open(a, r, cfg).unwrap_or_else(|f| panic!("{}", f.error))
}

/// The error was seen, recorded and is recovered by the owner's step.
fn recover(b: &mut Port, ctx: &str) {
    assert!(b.last_fault().is_some(), "{ctx}: the error CQE was seen");
    let rq_err = |b: &Port, o: FaultOutcome| {
        b.control()
            .faults()
            .records()
            .any(|r| r.class == FaultClass::RqErr && r.outcome == o)
    };
    assert!(
        rq_err(b, FaultOutcome::Pending) || rq_err(b, FaultOutcome::Recovered),
        "{ctx}: no RQ fault record"
    );
    assert!(
        common::eventually(|| {
            b.poll();
            b.run_pending_recoveries();
            rq_err(b, FaultOutcome::Recovered)
        }),
        "{ctx}: the RQ error is not recovered"
    );
}

/// After recovery: `rounds` bursts of 20 frames (mixed sizes), each read
/// back whole and in order, each a session (the compression counters
/// grow by a session a burst at least).
fn sessions_again(sim: &SimPlatform, b: &mut Port, rounds: u32, ctx: &str) {
    let dst = b.mac();
    let len = |s: u32| 60 + (s as usize * 37) % 1455;
    let (s0, c0) = b.rx_cq().unwrap().compression_stats();
    for r in 0..rounds {
        let seqs = 5000 + r * 20..5000 + (r + 1) * 20;
        inject(sim, dst, seqs.clone(), len);
        let mut got = Vec::new();
        let mut idle = 0;
        while got.len() < 20 {
            let n = b.receive_burst(7, |f, _| got.push(check(f, dst, len)));
            b.flush();
            if n == 0 {
                idle += 1;
                assert!(idle < 10_000, "{ctx}: stuck at {} of 20", got.len());
            }
        }
        assert_eq!(got, seqs.collect::<Vec<_>>(), "{ctx}: round {r}");
    }
    let (s1, c1) = b.rx_cq().unwrap().compression_stats();
    assert!(
        s1 >= s0 + u64::from(rounds) && c1 >= c0 + u64::from(rounds) * 10,
        "{ctx}: sessions {s0} -> {s1}, compressed {c0} -> {c1}"
    );
}

/// A 3000-byte frame in the middle of a burst on a cyclic RQ: the
/// session of the four frames before it, then the LOCAL_LENGTH error CQE
/// (the model drops the rest until the driver recovers the RQ). Two of
/// the session's frames are read before the rest arrive with the error.
#[test]
fn an_oversized_frame_breaks_a_session_on_a_cyclic_rq() {
    for part in PARTS {
        for mode in [Mode::Synchronous, Mode::Threaded] {
            let ctx = format!("{part:?} {mode:?} cyclic");
            let sim = SimPlatform::new(part, mode);
            let before = sim.dma_in_use();
            let mut b = open_jumbo_port(&sim, RqChoice::Cyclic);
            assert!(!b.rq().unwrap().is_striding(), "{ctx}");
            let dst = b.mac();
            let lens = [100usize, 200, 300, 400, 3000, 500, 600];
            let len = |s: u32| lens[s as usize];
            inject(&sim, dst, 0..lens.len() as u32, len);
            let mut got = Vec::new();
            b.receive_burst(2, |f, _| got.push(check(f, dst, len)));
            assert_eq!(got, [0, 1], "{ctx}: the session's first frames");
            for _ in 0..4 {
                b.receive_burst(usize::MAX, |f, _| got.push(check(f, dst, len)));
            }
            assert_eq!(got, [0, 1, 2, 3], "{ctx}: the session up to the error");
            assert_eq!(b.rx_cq().unwrap().compression_stats(), (1, 4), "{ctx}");
            recover(&mut b, &ctx);
            sessions_again(&sim, &mut b, 4, &ctx);
            assert_eq!(b.net_stats().rx_packets, 4 + 80, "{ctx}");
            common::close_port(b, &sim, before);
        }
    }
}

/// A session of six frames (two read before the error is written), then
/// a receive WQE whose lkey the model refuses: the next frame completes
/// with a LOCAL_PROT error CQE right after the session, the frames after
/// it are dropped. Cyclic and striding RQs (the part's default: striding
/// where it has it).
#[test]
fn a_refused_wqe_breaks_a_session_on_either_rq_kind() {
    for part in PARTS {
        for mode in [Mode::Synchronous, Mode::Threaded] {
            for rq_kind in [RqChoice::Cyclic, RqChoice::Auto] {
                let sim = SimPlatform::new(part, mode);
                let before = sim.dma_in_use();
                let mut b = open_jumbo_port(&sim, rq_kind);
                let striding = b.rq().unwrap().is_striding();
                let ctx = format!("{part:?} {mode:?} {rq_kind:?} striding {striding}");
                if rq_kind == RqChoice::Auto {
                    assert_eq!(striding, part.caps().striding_rq, "{ctx}");
                }
                let dst = b.mac();
                let len = |s: u32| 64 + (s as usize * 97) % 900;
                inject(&sim, dst, 0..6, len);
                let mut got = Vec::new();
                b.receive_burst(2, |f, _| got.push(check(f, dst, len)));
                assert_eq!(got, [0, 1], "{ctx}: the session's first frames");
                let rqn = b.rq().unwrap().rqn.0;
                sim.inject_queue(QueueFault::RqBad {
                    what: BadWqe::Lkey,
                    rqn: Some(rqn),
                    count: 1,
                })
                .expect("armed");
                inject(&sim, dst, 6..12, len);
                for _ in 0..4 {
                    b.receive_burst(usize::MAX, |f, _| got.push(check(f, dst, len)));
                }
                assert_eq!(
                    got,
                    [0, 1, 2, 3, 4, 5],
                    "{ctx}: the session, then the error"
                );
                assert_eq!(b.rx_cq().unwrap().compression_stats(), (1, 6), "{ctx}");
                recover(&mut b, &ctx);
                sessions_again(&sim, &mut b, 4, &ctx);
                assert_eq!(b.net_stats().rx_packets, 6 + 80, "{ctx}");
                common::close_port(b, &sim, before);
            }
        }
    }
}
