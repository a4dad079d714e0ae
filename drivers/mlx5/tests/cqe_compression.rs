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
        let frames: Vec<Vec<u8>> = (sent..sent + n)
            .map(|s| frame(dst, lens[s], s as u32))
            .collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        sim.inject_rx_burst(&refs);
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
        let frames: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| frame(dst, l, i as u32))
            .collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        sim.inject_rx_burst(&refs);
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
        // After recovery the next burst is a session again.
        let lens2: Vec<usize> = (0..20).map(|i| 64 + i * 50).collect();
        let got2 = bursts_in(&sim, &mut b, &lens2, &[20]);
        assert_eq!(got2, (0..20).collect::<Vec<u32>>(), "{mode:?}");
        assert_eq!(b.rx_cq().unwrap().compression_stats().0, 2, "{mode:?}");
        close(b, &sim, before);
    }
}

/// Frames sent by a second adapter with `transmit_burst` arrive back to
/// back (the model delivers a doorbell's frames as one burst): sessions
/// on the receiver, every frame in order.
#[test]
fn sessions_from_a_transmitting_peer() {
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
        let mut idle = 0;
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
            if got.len() == before {
                idle += 1;
                assert!(idle < 100_000, "{mode:?}: stuck at {} of {sent}", got.len());
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
