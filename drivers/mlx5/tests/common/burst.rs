//! The batch API between two ports, shared by `burst.rs`, `empw.rs` and `mpw.rs`:
//! numbered frames with a pattern, sent in bursts and received in bursts
//! with every byte checked.

use cxos_drivers::{NetDevice, TxMeta};
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::{self, Mode, SimPlatform};
use mlx5_sim::queue_faults::{BadWqe, QueueFault};

use super::{Port, close_port, open_port};

pub const PARTS: [Personality; 5] = [
    Personality::ConnectX4,
    Personality::ConnectX4Lx,
    Personality::ConnectX5,
    Personality::ConnectX6,
    Personality::ConnectX6Dx,
];

/// Frame `seq` of `b.len()` bytes: dst, src, ethertype 0x88b5, seq, a
/// pattern of it.
pub fn fill(b: &mut [u8], dst: [u8; 6], src: [u8; 6], seq: u32) {
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&src);
    b[12..14].copy_from_slice(&[0x88, 0xb5]);
    b[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, x) in b[18..].iter_mut().enumerate() {
        *x = (i as u32 ^ seq) as u8;
    }
}

/// Send `lens` from `a` in bursts of up to `burst` and receive on `b`
/// (queue 0) with `receive_burst` until all arrived, checking each
/// frame's length and bytes; then reap every completion. Returns (seq,
/// len) in arrival order.
pub fn send_bursts(a: &mut Port, b: &mut Port, lens: &[usize], burst: usize) -> Vec<(u32, usize)> {
    let (dst, src) = (b.mac(), a.mac());
    let window = b.rq().unwrap().entries() / 2;
    let (mut sent, mut got) = (0usize, Vec::new());
    let mut idle = 0u32;
    // Threaded, the model's threads may wait for a CPU: stuck only after
    // many idle rounds and some seconds.
    let mut idle_since = std::time::Instant::now();
    while got.len() < lens.len() {
        let n = burst
            .min(lens.len() - sent)
            .min(window - (sent - got.len()));
        let posted = a
            .transmit_burst(n, TxMeta::default(), |i, buf| {
                let seq = sent + i;
                let len = lens[seq];
                fill(&mut buf[..len], dst, src, seq as u32);
                len
            })
            .unwrap();
        sent += posted;
        let before = got.len();
        b.receive_burst(usize::MAX, |f, info| {
            assert_eq!(info.queue(), 0);
            let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
            assert_eq!(f.len(), lens[seq as usize], "frame {seq} length");
            for (i, x) in f[18..].iter().enumerate() {
                assert_eq!(*x, (i as u32 ^ seq) as u8, "frame {seq} byte {}", 18 + i);
            }
            got.push((seq, f.len()));
        });
        if posted == 0 && got.len() == before {
            idle += 1;
            assert!(
                idle < 100_000 || idle_since.elapsed() < std::time::Duration::from_secs(20),
                "stuck at {sent} sent, {} received",
                got.len()
            );
            // Threaded: the model's threads need the CPU.
            std::thread::yield_now();
        } else {
            idle = 0;
            idle_since = std::time::Instant::now();
        }
    }
    reap(a);
    got
}

/// `got` (from [`send_bursts`]) is `lens` in order, a counted every
/// frame and its bytes, b the bytes, neither an error.
pub fn assert_delivered(a: &Port, b: &Port, got: &[(u32, usize)], lens: &[usize], ctx: &str) {
    for (i, (seq, len)) in got.iter().enumerate() {
        assert_eq!((*seq as usize, *len), (i, lens[i]), "{ctx}: in order");
    }
    assert_eq!(a.sq().unwrap().stats.packets, lens.len() as u64, "{ctx}");
    let bytes: u64 = lens.iter().map(|&l| l as u64).sum();
    assert_eq!(a.net_stats().tx_bytes, bytes, "{ctx}");
    assert_eq!(b.net_stats().rx_bytes, bytes, "{ctx}");
    assert_eq!(a.net_stats().errors + b.net_stats().errors, 0, "{ctx}");
}

/// Reap every outstanding completion: empty bursts until every buffer
/// is back.
pub fn reap(a: &mut Port) {
    // A thousand tries at least; threaded, as long as the model's
    // threads need (a bound for a stuck run only).
    let start = std::time::Instant::now();
    for i in 0.. {
        if a.tx_free() == a.sq().unwrap().entries() {
            return;
        }
        if i >= 1000 && start.elapsed() > std::time::Duration::from_secs(20) {
            break;
        }
        a.transmit_burst(0, TxMeta::default(), |_, _| 0).unwrap();
        a.poll();
        // The owner's recovery step (the poll only records a fault).
        a.run_pending_recoveries();
        std::thread::yield_now();
    }
    panic!("buffers not back: {} free", a.tx_free());
}

/// Sessions (`EthConfig::empw`, inline limits 0 and 100) between two
/// `part` ports, one broken by an lkey the model refuses: the error CQE
/// is recovered, every buffer comes back, the broken session sent
/// nothing, and sessions go on after (`enough(before, after)` on the
/// `sessions` counter around 48 more frames). Shared by `mpw.rs` and
/// `empw.rs`.
pub fn session_error_recovered(
    part: Personality,
    sessions: fn(&SimPlatform) -> u64,
    enough: fn(u64, u64) -> bool,
) {
    session_error_recovered_in(part, Mode::Synchronous, sessions, enough);
}

/// [`session_error_recovered`] with the model in `mode`.
pub fn session_error_recovered_in(
    part: Personality,
    mode: Mode,
    sessions: fn(&SimPlatform) -> u64,
    enough: fn(u64, u64) -> bool,
) {
    super::logger();
    for inline in [0u16, 100] {
        let (sa, sb) = SimPlatform::pair(part, part, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let cfg = EthConfig {
            empw: Some(inline),
            ..EthConfig::default()
        };
        let mut a = open_port(&sa, cfg);
        let mut b = open_port(&sb, cfg);
        let lens = vec![64usize; 48];
        send_bursts(&mut a, &mut b, &lens, 16);
        let sqn = a.sq().unwrap().sqn.0;
        sa.inject_queue(QueueFault::SqBad {
            what: BadWqe::Lkey,
            sqn: Some(sqn),
            count: 1,
        })
        .unwrap();
        let (dst, src) = (b.mac(), a.mac());
        let n = a
            .transmit_burst(16, TxMeta::default(), |i, buf| {
                fill(&mut buf[..64], dst, src, 1000 + i as u32);
                64
            })
            .unwrap();
        assert_eq!(n, 16);
        // The first session's error CQE moves the SQ to ERR (the rest
        // flush); the driver recovers it and every buffer comes back.
        // Inline sessions hold no buffer: poll until the error CQE is
        // seen rather than until the buffers are back.
        // Threaded, the error CQE and the recovery's commands complete
        // when the model's threads get the CPU: done when the SQ was
        // reset and no step is pending (a bound for a stuck run only).
        let recovered = super::eventually(|| {
            if a.sq().unwrap().stats.recoveries > 0 && a.recoveries_pending() == 0 {
                return true;
            }
            a.transmit_burst(0, TxMeta::default(), |_, _| 0).unwrap();
            a.poll();
            // The owner's recovery step (the poll only records a fault).
            a.run_pending_recoveries();
            false
        });
        assert!(
            recovered,
            "{part:?} {mode:?} inline {inline}: the SQ error never recovered"
        );
        reap(&mut a);
        assert_eq!(a.sq().unwrap().stats.recoveries, 1, "inline {inline}");
        assert_eq!(a.tx_free(), a.sq().unwrap().entries());
        let mut lost = 0;
        b.receive_burst(usize::MAX, |_, _| lost += 1);
        assert_eq!(lost, 0, "the broken session sent nothing");
        // Sessions go on after the recovery.
        let s0 = sessions(&sa);
        let got = send_bursts(&mut a, &mut b, &lens, 16);
        assert_eq!(got.len(), lens.len());
        let s1 = sessions(&sa);
        assert!(enough(s0, s1), "inline {inline}: sessions {s0} -> {s1}");
        close_port(a, &sa, ba);
        close_port(b, &sb, bb);
    }
}

/// Sessions (inline limits 0 and 100) of 64-byte frames between two
/// threaded `part` ports allocate nothing on the packet path, and the
/// `sessions` counter moved. Shared by `mpw.rs` and `empw.rs`.
pub fn sessions_allocate_nothing(part: Personality, sessions: fn(&SimPlatform) -> u64) {
    for inline in [0u16, 100] {
        // Threaded: the model runs on its own threads, so what this
        // thread allocates is the driver's.
        let (sa, sb) = SimPlatform::pair(part, part, Mode::Threaded);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let cfg = EthConfig {
            empw: Some(inline),
            interrupts: false,
            ..EthConfig::default()
        };
        let mut a = open_port(&sa, cfg);
        let mut b = open_port(&sb, cfg);
        let (dst, src) = (b.mac(), a.mac());
        let window = b.rq().unwrap().entries() / 2;
        let pump = |a: &mut Port, b: &mut Port, n: usize| {
            let (mut sent, mut got) = (0, 0);
            while got < n {
                let k = 32.min(n - sent).min(window - (sent - got));
                sent += a
                    .transmit_burst(k, TxMeta::default(), |i, buf| {
                        fill(&mut buf[..64], dst, src, i as u32);
                        64
                    })
                    .unwrap();
                got += b.receive_burst(usize::MAX, |f, _| assert_eq!(f.len(), 64));
                std::thread::yield_now();
            }
        };
        pump(&mut a, &mut b, 5_000);
        let allocs = harness::thread_allocations();
        pump(&mut a, &mut b, 50_000);
        assert_eq!(
            harness::thread_allocations() - allocs,
            0,
            "allocations on the packet path (inline {inline})"
        );
        assert!(sessions(&sa) > 0);
        reap(&mut a);
        close_port(a, &sa, ba);
        close_port(b, &sb, bb);
    }
}
