//! CQE compression (`EthConfig::cqe_compression`) against the model, on
//! every part, in both model modes, with cyclic and striding receive
//! queues: frames arrive in bursts (`SimPlatform::inject_rx_burst`, which
//! the model turns into compressed sessions: a title and mini-CQE
//! arrays), of mixed sizes and burst lengths that make sessions straddle
//! the end of the CQ ring, read by `receive_burst` with small limits (a
//! session split between calls) and by the per-frame `receive`; every
//! frame intact and in order, every buffer back (the queues keep taking
//! bursts), no DMA leaked, no sanitizer violation. The part without the
//! capability (ConnectX-4) and the option off give plain CQEs. A session
//! broken by an error CQE (a frame too long for a cyclic buffer) is read
//! up to the error, the queue recovers, and the next session arrives.
//! The RSS-hash mini-CQE format (`EthConfig::cqe_compression_hash`) gives
//! every frame its hash and queue, as without compression.

mod common;

use common::{Port, close_port as close, open_port as open};
use cxos_drivers::NetDevice;
use mlx5::{EthConfig, RqChoice};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

const PARTS: [Personality; 5] = [
    Personality::ConnectX4,
    Personality::ConnectX4Lx,
    Personality::ConnectX5,
    Personality::ConnectX6,
    Personality::ConnectX6Dx,
];

/// Frame `seq` of `len` bytes to `dst`: ethertype 0x88b5, seq, pattern.
fn frame(dst: [u8; 6], len: usize, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    b[12..14].copy_from_slice(&[0x88, 0xb5]);
    b[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, x) in b[18..].iter_mut().enumerate() {
        *x = (i as u32 ^ seq) as u8;
    }
    b
}

/// Frames `seqs` (frame s of `lens[s]` bytes) to `dst`, delivered to
/// `sim` as one burst.
fn inject(sim: &SimPlatform, dst: [u8; 6], lens: &[usize], seqs: std::ops::Range<usize>) {
    let frames: Vec<Vec<u8>> = seqs.map(|s| frame(dst, lens[s], s as u32)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    sim.inject_rx_burst(&refs);
}

fn check(f: &[u8], lens: &[usize]) -> u32 {
    let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
    assert_eq!(f.len(), lens[seq as usize], "frame {seq} length");
    for (i, x) in f[18..].iter().enumerate() {
        assert_eq!(*x, (i as u32 ^ seq) as u8, "frame {seq} byte {}", 18 + i);
    }
    seq
}

/// Inject `lens` in bursts (sizes from `bursts`, in turn) and read each
/// burst back before the next; returns the sequence numbers in order.
fn bursts_in(sim: &SimPlatform, b: &mut Port, lens: &[usize], bursts: &[usize]) -> Vec<u32> {
    let dst = b.mac();
    let mut got = Vec::new();
    let (mut sent, mut k) = (0usize, 0usize);
    while sent < lens.len() {
        let n = bursts[k % bursts.len()].min(lens.len() - sent);
        k += 1;
        inject(sim, dst, lens, sent..sent + n);
        sent += n;
        let mut idle = 0;
        while got.len() < sent {
            let before = got.len();
            // Alternate small bursts (a session split between calls), the
            // per-frame path, and a whole burst.
            match k % 3 {
                0 => {
                    b.receive_burst(5, |f, _| got.push(check(f, lens)));
                }
                1 => {
                    b.receive(|f, _| got.push(check(f, lens)));
                    b.receive(|f, _| got.push(check(f, lens)));
                }
                _ => {
                    b.receive_burst(usize::MAX, |f, _| got.push(check(f, lens)));
                }
            }
            b.flush();
            if got.len() == before {
                idle += 1;
                assert!(idle < 10_000, "stuck at {} of {sent}", got.len());
            }
        }
    }
    got
}

#[test]
fn every_part_both_modes_both_rq_kinds() {
    let lens: Vec<usize> = (0..600).map(|i| 60 + (i * 37) % 1455).collect();
    let bursts = [1, 2, 7, 8, 9, 16, 17, 31, 3, 24];
    for part in PARTS {
        for mode in [Mode::Synchronous, Mode::Threaded] {
            for rq_kind in [RqChoice::Cyclic, RqChoice::Auto] {
                for compress in [true, false] {
                    let sim = SimPlatform::new(part, mode);
                    let before = sim.dma_in_use();
                    let cfg = EthConfig {
                        log_rq: 5,
                        rq_kind,
                        cqe_compression: compress,
                        ..EthConfig::default()
                    };
                    let mut b = open(&sim, cfg);
                    let ctx = format!("{part:?} {mode:?} {rq_kind:?} compression {compress}");
                    let got = bursts_in(&sim, &mut b, &lens, &bursts);
                    for (i, seq) in got.iter().enumerate() {
                        assert_eq!(*seq as usize, i, "{ctx}: in order");
                    }
                    let (sessions, compressed) = b.rx_cq().unwrap().compression_stats();
                    if compress && part != Personality::ConnectX4 {
                        assert!(
                            sessions > 20 && compressed > 400,
                            "{ctx}: {sessions} sessions, {compressed} CQEs"
                        );
                    } else {
                        assert_eq!((sessions, compressed), (0, 0), "{ctx}");
                    }
                    assert_eq!(b.net_stats().rx_packets, lens.len() as u64, "{ctx}");
                    assert_eq!(b.net_stats().errors, 0, "{ctx}");
                    close(b, &sim, before);
                }
            }
        }
    }
}

#[test]
fn session_broken_by_an_error_cqe() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let sim = SimPlatform::new(Personality::ConnectX5, mode);
        let before = sim.dma_in_use();
        let cfg = EthConfig {
            log_rq: 5,
            rq_kind: RqChoice::Cyclic,
            cqe_compression: true,
            ..EthConfig::default()
        };
        // The port takes jumbo frames, the queues' buffers do not: a
        // 3000-byte frame completes with a LOCAL_LENGTH error CQE.
        let mut a = mlx5::Adapter::attach(sim.clone(), common::config())
            .unwrap_or_else(|f| panic!("{}", f.error));
        a.set_port_mtu(9000).expect("port MTU");
        let r = mlx5::Resources::of(&a).expect("resources");
        let mut b = mlx5::QueueSet::open(a, r, cfg).unwrap_or_else(|f| panic!("{}", f.error));
        let dst = b.mac();
        let lens = [100usize, 200, 300, 400, 3000, 500, 600];
        inject(&sim, dst, &lens, 0..lens.len());
        let mut got = Vec::new();
        for _ in 0..4 {
            b.receive_burst(usize::MAX, |f, _| got.push(check(f, &lens)));
        }
        // The session before the error arrives whole and in order; the
        // error stops the queue (the model drops what follows until the
        // driver recovers it).
        assert_eq!(got, [0, 1, 2, 3], "{mode:?}");
        assert_eq!(b.rx_cq().unwrap().compression_stats(), (1, 4), "{mode:?}");
        assert!(b.last_fault().is_some(), "{mode:?}: the error CQE was seen");
        // The receive path left the recovery to the owner's step.
        let start = std::time::Instant::now();
        while b.run_pending_recoveries() != 0 {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // After recovery the next burst is a session again.
        let lens2: Vec<usize> = (0..20).map(|i| 64 + i * 50).collect();
        let got2 = bursts_in(&sim, &mut b, &lens2, &[20]);
        assert_eq!(got2, (0..20).collect::<Vec<u32>>(), "{mode:?}");
        assert_eq!(b.rx_cq().unwrap().compression_stats().0, 2, "{mode:?}");
        close(b, &sim, before);
    }
}

/// Bursts of one frame and of three read sessions an array piece at a
/// time: a session's first completion alone (its mini-CQE array read
/// before the slot after the title is the burst's), arrays left inside
/// (kept when their slot is made invalid) and sessions whose title sits
/// in the ring's last slot (array 0 in the first) on a 32-entry CQ; each
/// frame intact and in order, every completion read from a session.
#[test]
fn one_and_three_frame_bursts_through_sessions() {
    for rq_kind in [RqChoice::Cyclic, RqChoice::Auto] {
        for step in [1usize, 3] {
            let sim = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
            let before = sim.dma_in_use();
            let cfg = EthConfig {
                log_rq: 5,
                rq_kind,
                cqe_compression: true,
                ..EthConfig::default()
            };
            let mut b = open(&sim, cfg);
            let dst = b.mac();
            let ctx = format!("{rq_kind:?} bursts of {step}");
            // Sessions of 2..=19 completions, so titles land on every slot
            // of the ring over the run.
            let lens: Vec<usize> = (0..400).map(|i| 60 + (i * 53) % 700).collect();
            let mut got = Vec::new();
            let (mut sent, mut k) = (0usize, 0usize);
            while sent < lens.len() {
                let n = (2 + k % 18).min(lens.len() - sent);
                k += 1;
                inject(&sim, dst, &lens, sent..sent + n);
                sent += n;
                let mut idle = 0;
                while got.len() < sent {
                    let before = got.len();
                    b.receive_burst(step, |f, _| got.push(check(f, &lens)));
                    b.flush();
                    if got.len() == before {
                        idle += 1;
                        assert!(idle < 10_000, "{ctx}: stuck at {} of {sent}", got.len());
                    }
                }
            }
            assert_eq!(got, (0..lens.len() as u32).collect::<Vec<_>>(), "{ctx}");
            let (sessions, compressed) = b.rx_cq().unwrap().compression_stats();
            assert!(sessions >= k as u64 / 2, "{ctx}: {sessions} sessions");
            assert!(compressed > 300, "{ctx}: {compressed} compressed");
            assert_eq!(b.net_stats().errors, 0, "{ctx}");
            close(b, &sim, before);
        }
    }
}

/// Frames sent by a second adapter with `transmit_burst` arrive back to
/// back (the model delivers a doorbell's frames as one burst): sessions
/// on the receiver, every frame in order.
#[test]
fn sessions_from_a_transmitting_peer() {
    /// No frame for this long: the peer or the model is stuck.
    const STUCK: std::time::Duration = std::time::Duration::from_secs(60);
    use cxos_drivers::TxMeta;
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let (sa, sb) = SimPlatform::pair(Personality::ConnectX6Dx, Personality::ConnectX5, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let mut a = open(&sa, EthConfig::default());
        let mut b = open(
            &sb,
            EthConfig {
                cqe_compression: true,
                ..EthConfig::default()
            },
        );
        let (dst, src) = (b.mac(), a.mac());
        let lens: Vec<usize> = (0..500).map(|i| 60 + (i * 53) % 1455).collect();
        let (mut sent, mut got) = (0usize, Vec::new());
        // Stuck: no frame for a long while. Measured by the clock since the
        // last frame, not by polls: the threaded model needs the CPU this
        // loop would otherwise spin on (it yields when idle), and a loaded
        // machine may delay it for a while without anything being wrong.
        let mut last_frame = std::time::Instant::now();
        while got.len() < lens.len() {
            let n = 32.min(lens.len() - sent).min(64 - (sent - got.len()));
            sent += a
                .transmit_burst(n, TxMeta::default(), |i, buf| {
                    let f = frame(dst, lens[sent + i], (sent + i) as u32);
                    buf[..f.len()].copy_from_slice(&f);
                    buf[6..12].copy_from_slice(&src);
                    f.len()
                })
                .unwrap();
            let before = got.len();
            b.receive_burst(usize::MAX, |f, _| got.push(check(f, &lens)));
            if got.len() != before {
                last_frame = std::time::Instant::now();
            } else {
                assert!(
                    last_frame.elapsed() < STUCK,
                    "{mode:?}: stuck at {} of {sent}",
                    got.len()
                );
                std::thread::yield_now();
            }
        }
        assert_eq!(got, (0..lens.len() as u32).collect::<Vec<_>>(), "{mode:?}");
        assert!(b.rx_cq().unwrap().compression_stats().1 > 0, "{mode:?}");
        while a.tx_free() < a.sq().unwrap().entries() {
            a.transmit_burst(0, TxMeta::default(), |_, _| 0).unwrap();
            a.poll();
        }
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

/// A UDP/IPv4 frame of flow `flow` (its source port), `len` bytes, to
/// `dst`. The first payload word makes up for the port, so every frame
/// of a length has the same ones'-complement sum (the CQE's `check_sum`):
/// frames of different flows (different hashes) may then join one
/// session of the hash format, whose mini-CQEs do not carry the sum.
fn udp(dst: [u8; 6], len: usize, flow: u16) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    b[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    // IPv4 header at 14: version 4, IHL 5, total length, TTL 64, UDP,
    // 10.0.0.1 -> 10.0.0.2; its checksum at 24.
    b[14] = 0x45;
    b[16..18].copy_from_slice(&ip_len.to_be_bytes());
    b[22] = 64;
    b[23] = 17;
    b[26..30].copy_from_slice(&[10, 0, 0, 1]);
    b[30..34].copy_from_slice(&[10, 0, 0, 2]);
    let sum: u32 = b[14..34]
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    b[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    // UDP at 34: ports, length, no checksum (0, allowed over IPv4).
    b[34..36].copy_from_slice(&(1000 + flow).to_be_bytes());
    b[36..38].copy_from_slice(&7u16.to_be_bytes());
    b[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    b[42..44].copy_from_slice(&(0x8000 - flow).to_be_bytes());
    b
}

/// The RSS-hash mini-CQE format (`cqe_compression_hash`): every frame of
/// a session has its own hash and queue, as without compression; with
/// the checksum format only a session's first frame has its hash.
#[test]
fn hash_format_gives_every_frame_its_hash() {
    // Five flows in turn, bursts of sixteen: a queue's session holds
    // frames of several flows.
    let flows: Vec<u16> = (0..240u16).map(|i| i % 5).collect();
    let run = |mode: Mode, compress: bool, hash: bool| {
        let sim = SimPlatform::new(Personality::ConnectX6Dx, mode);
        let before = sim.dma_in_use();
        let cfg = EthConfig {
            rss_queues: 2,
            cqe_compression: compress,
            cqe_compression_hash: hash,
            ..EthConfig::default()
        };
        let mut b = open(&sim, cfg);
        let dst = b.mac();
        let mut got: Vec<(u16, usize, u32)> = Vec::new();
        for chunk in flows.chunks(16) {
            let frames: Vec<Vec<u8>> = chunk.iter().map(|&f| udp(dst, 200, f)).collect();
            let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
            sim.inject_rx_burst(&refs);
            let want = got.len() + chunk.len();
            let mut idle = 0;
            while got.len() < want {
                let n = b.receive_burst(usize::MAX, |f, i| {
                    let m = i.meta();
                    assert_eq!(m.queue, i.queue());
                    got.push((m.queue, f.len(), m.rss_hash));
                });
                b.flush();
                if n == 0 {
                    idle += 1;
                    assert!(idle < 10_000, "stuck at {} of {want}", got.len());
                }
            }
        }
        let compressed: u64 = (0..b.rx_queues())
            .map(|q| b.rx_cq_at(q).unwrap().compression_stats().1)
            .sum();
        assert_eq!(b.net_stats().errors, 0);
        close(b, &sim, before);
        (got, compressed)
    };
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let (plain, none) = run(mode, false, false);
        assert_eq!(none, 0, "{mode:?}");
        assert!(plain.iter().all(|&(_, _, h)| h != 0), "{mode:?}");
        assert!(
            plain.iter().any(|&(q, _, _)| q == 1),
            "{mode:?}: both queues"
        );
        let (hashed, n) = run(mode, true, true);
        assert!(n > 150, "{mode:?}: {n} frames from sessions");
        assert_eq!(hashed, plain, "{mode:?}: hash format");
        let (csum, n) = run(mode, true, false);
        assert!(n > 150, "{mode:?}: {n} frames from sessions");
        let unhashed = csum.iter().filter(|&&(_, _, h)| h == 0).count();
        assert!(unhashed > 100, "{mode:?}: {unhashed} frames without hash");
        let same: Vec<(u16, usize)> = csum.iter().map(|&(q, l, _)| (q, l)).collect();
        let want: Vec<(u16, usize)> = plain.iter().map(|&(q, l, _)| (q, l)).collect();
        assert_eq!(same, want, "{mode:?}: checksum format, queues and lengths");
    }
}

/// A queue fault in the middle of a compressed session: part of the
/// session read, the receive CQ overruns (`Harness::inject_queue`, as the
/// control socket's `fault cq-overflow`), the driver recreates the CQ and
/// its RQ, compressing as before; the frames of the broken session are
/// lost, the next bursts arrive as sessions, whole and in order.
#[test]
fn recovery_in_the_middle_of_a_session() {
    use mlx5::fault::{FaultClass, FaultOutcome};
    use mlx5_sim::queue_faults::QueueFault;
    for interrupts in [false, true] {
        let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
        let before = sim.dma_in_use();
        let cfg = EthConfig {
            log_rq: 5,
            interrupts,
            cqe_compression: true,
            ..EthConfig::default()
        };
        let mut b = open(&sim, cfg);
        let dst = b.mac();
        let lens: Vec<usize> = (0..20).map(|i| 64 + i * 10).collect();
        inject(&sim, dst, &lens, 0..lens.len());
        let mut got = Vec::new();
        b.receive_burst(5, |f, _| got.push(check(f, &lens)));
        b.flush();
        assert_eq!(got, [0, 1, 2, 3, 4], "{interrupts}");
        assert_eq!(b.rx_cq().unwrap().compression_stats(), (1, 5));
        let old = b.rx_cq().unwrap().cqn.0;
        sim.inject_queue(QueueFault::CqOverflow { cqn: Some(old) })
            .expect("armed");
        assert!(
            common::eventually(|| {
                b.poll();
                b.check();
                b.control().faults().records().any(|r| {
                    r.class == FaultClass::CqOverflow && r.outcome == FaultOutcome::Recovered
                })
            }),
            "{interrupts}: the overrun is recovered"
        );
        let cq = b.rx_cq().unwrap();
        assert_ne!(cq.cqn.0, old, "{interrupts}: a new CQ");
        assert_eq!(cq.compression_stats(), (0, 0));
        let lens2: Vec<usize> = (0..40).map(|i| 64 + i * 30).collect();
        let got2 = bursts_in(&sim, &mut b, &lens2, &[20]);
        assert_eq!(got2, (0..40).collect::<Vec<u32>>(), "{interrupts}");
        let (sessions, compressed) = b.rx_cq().unwrap().compression_stats();
        assert!(
            sessions >= 2 && compressed >= 30,
            "{interrupts}: the new CQ compresses: {sessions} sessions, {compressed} CQEs"
        );
        close(b, &sim, before);
    }
}

/// Compressed receive allocates nothing on the packet path: a threaded
/// pair (the model runs on its own threads, so what this thread
/// allocates is the driver's), bursts of mixed sizes from a transmitting
/// peer into compressed sessions on every part that has them, cyclic and
/// the part's default (striding where it has it); every frame in order, sessions read, DMA and sanitizer clean.
#[test]
fn compressed_receive_allocates_nothing() {
    use cxos_drivers::TxMeta;
    use mlx5_sim::harness;
    const N: usize = 20_000;
    for part in PARTS {
        if part == Personality::ConnectX4 {
            continue;
        }
        for rq_kind in [RqChoice::Cyclic, RqChoice::Auto] {
            let (sa, sb) = SimPlatform::pair(Personality::ConnectX6Dx, part, Mode::Threaded);
            let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
            let mut a = open(&sa, EthConfig::default());
            let mut b = open(
                &sb,
                EthConfig {
                    cqe_compression: true,
                    rq_kind,
                    interrupts: false,
                    ..EthConfig::default()
                },
            );
            let ctx = format!("{part:?} {rq_kind:?}");
            let dst = b.mac();
            let window = b.rq().unwrap().entries().min(64);
            let len = |i: usize| 60 + (i * 53) % 1455;
            // Frames 0.. in order and intact (their seq at byte 14).
            let pump = |a: &mut Port, b: &mut Port, base: usize, n: usize| {
                let (mut sent, mut got, mut idle) = (0usize, 0usize, 0u32);
                while got < n {
                    let k = 32.min(n - sent).min(window - (sent - got));
                    sent += a
                        .transmit_burst(k, TxMeta::default(), |i, buf| {
                            let l = len(base + sent + i);
                            common::fill(&mut buf[..l], dst, (base + sent + i) as u32);
                            l
                        })
                        .unwrap();
                    let before = got;
                    b.receive_burst(usize::MAX, |f, _| {
                        let seq = u32::from_be_bytes(f[14..18].try_into().unwrap());
                        assert_eq!(seq as usize, base + got, "order");
                        assert_eq!(f.len(), len(base + got), "length of {seq}");
                        got += 1;
                    });
                    if got == before {
                        idle += 1;
                        assert!(idle < 1_000_000, "stuck at {got} of {sent}");
                        std::thread::yield_now();
                    } else {
                        idle = 0;
                    }
                }
            };
            pump(&mut a, &mut b, 0, 2_000);
            let s0 = b.rx_cq().unwrap().compression_stats().0;
            let allocs = harness::thread_allocations();
            pump(&mut a, &mut b, 2_000, N);
            assert_eq!(
                harness::thread_allocations() - allocs,
                0,
                "{ctx}: allocations on the packet path"
            );
            let s1 = b.rx_cq().unwrap().compression_stats().0;
            assert!(s1 > s0, "{ctx}: no compressed session");
            while a.tx_free() < a.sq().unwrap().entries() {
                a.transmit_burst(0, TxMeta::default(), |_, _| 0).unwrap();
                a.poll();
            }
            close(a, &sa, ba);
            close(b, &sb, bb);
        }
    }
}
