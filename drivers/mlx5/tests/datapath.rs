//! Traffic between two simulated adapters wired back to back, a driver
//! (QueueSet) on each: every frame size both ways, jumbo frames, broadcast,
//! steering drops for unknown MACs, receive-buffer exhaustion and
//! recovery, an injected bad-lkey WQE, in both model modes; no sanitizer
//! violation anywhere.

mod common;

use common::{Port, close_port as close, open_port as open};
use cxos_drivers::{NetDevice, TxError};
use mlx5::{EthConfig, RqChoice};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

const MODES: [Mode; 2] = [Mode::Synchronous, Mode::Threaded];
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

/// A test frame: dst, src, ethertype, then seq (4 bytes) and a pattern.
fn fill(b: &mut [u8], dst: [u8; 6], src: [u8; 6], seq: u32) {
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&src);
    b[12..14].copy_from_slice(&ETHERTYPE);
    b[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, x) in b[18..].iter_mut().enumerate() {
        *x = (i as u32 ^ seq) as u8;
    }
}

fn check(b: &[u8], dst: [u8; 6], seq: u32, len: usize) {
    assert_eq!(b.len(), len, "frame {seq} length");
    assert_eq!(&b[0..6], &dst);
    assert_eq!(u32::from_be_bytes([b[14], b[15], b[16], b[17]]), seq);
    for (i, x) in b[18..].iter().enumerate() {
        assert_eq!(*x, (i as u32 ^ seq) as u8, "frame {seq} byte {}", 18 + i);
    }
}

/// Send `lens` from `a` to `dst` (batches of `batch`, one flush each) and
/// collect what `b` receives, polling both until `expect` frames arrived.
fn send_and_receive(
    a: &mut Port,
    b: &mut Port,
    dst: [u8; 6],
    lens: &[usize],
    batch: usize,
    expect: usize,
) -> Vec<(u32, usize)> {
    let src = a.mac();
    let mut got = Vec::new();
    let mut sent = 0;
    let mut idle = 0u32;
    // No flow control on a wire: when every frame must arrive, keep at
    // most half the receiver's ring in flight (the threaded model delivers
    // while this thread is still sending).
    let window = if expect == lens.len() {
        b.rq().unwrap().entries() / 2
    } else {
        usize::MAX
    };
    while got.len() < expect || sent < lens.len() {
        let mut queued = 0;
        while sent < lens.len() && queued < batch && sent - got.len() < window {
            let len = lens[sent];
            match a.transmit(len, |buf| fill(buf, dst, src, sent as u32)) {
                Ok(()) => {
                    sent += 1;
                    queued += 1;
                }
                Err(TxError::Busy) => break,
                Err(e) => panic!("transmit {len}: {e}"),
            }
        }
        a.flush();
        a.poll();
        b.poll();
        let mut progressed = queued > 0;
        while let Some((seq, len)) = b.receive(|f, _| {
            let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
            check(f, dst, seq, lens[seq as usize]);
            (seq, f.len())
        }) {
            got.push((seq, len));
            progressed = true;
        }
        b.flush();
        if progressed {
            idle = 0;
        } else {
            idle += 1;
            assert!(
                idle < 200_000,
                "stuck: sent {sent}, received {}\nsender:\n{:?}\n{:?}\nreceiver:\n{:?}\n{:?}",
                got.len(),
                a.rings(),
                a.stats_report(),
                b.rings(),
                b.stats_report()
            );
            std::thread::yield_now();
        }
    }
    // Wait for the last transmit completions.
    while a.tx_free() < a.sq().unwrap().entries() {
        a.poll();
        std::thread::yield_now();
    }
    got
}

#[test]
fn every_frame_size_both_ways() {
    for mode in MODES {
        let (sa, sb) = SimPlatform::pair(Personality::ConnectX5, Personality::ConnectX4Lx, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let mut a = open(&sa, EthConfig::default());
        let mut b = open(&sb, EthConfig::default());
        let (mac_a, mac_b) = (a.mac(), b.mac());
        let lens: Vec<usize> = (60..=1514).collect();
        let got = send_and_receive(&mut a, &mut b, mac_b, &lens, 32, lens.len());
        assert_eq!(got.len(), lens.len());
        for (i, (seq, len)) in got.iter().enumerate() {
            assert_eq!((*seq as usize, *len), (i, lens[i]), "in order, intact");
        }
        let got = send_and_receive(&mut b, &mut a, mac_a, &lens, 7, lens.len());
        assert_eq!(got.len(), lens.len());
        let bytes: u64 = lens.iter().map(|&l| l as u64).sum();
        assert_eq!(a.net_stats().tx_bytes, bytes);
        assert_eq!(b.net_stats().rx_bytes, bytes);
        assert_eq!(sa.port_stats().tx_frames, lens.len() as u64);
        assert_eq!(a.net_stats().errors + b.net_stats().errors, 0);
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

#[test]
fn jumbo_frames_up_to_mtu_9000() {
    for mode in MODES {
        let (sa, sb) = SimPlatform::pair(Personality::ConnectX6Dx, Personality::ConnectX6Dx, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let cfg = EthConfig {
            mtu: 9000,
            log_rq: 7,
            log_sq: 7,
            ..EthConfig::default()
        };
        let mut a = open(&sa, cfg);
        let mut b = open(&sb, cfg);
        let (mac_a, mac_b) = (a.mac(), b.mac());
        let lens = [1515, 2048, 4096, 8000, 9013, 9014];
        let got = send_and_receive(&mut a, &mut b, mac_b, &lens, 3, lens.len());
        assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), lens);
        let got = send_and_receive(&mut b, &mut a, mac_a, &lens, 6, lens.len());
        assert_eq!(got.len(), lens.len());
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

#[test]
fn broadcast_arrives_and_unknown_macs_are_dropped_by_the_adapter() {
    for mode in MODES {
        let (sa, sb) = SimPlatform::pair(Personality::ConnectX5, Personality::ConnectX5, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let mut a = open(&sa, EthConfig::default());
        let mut b = open(&sb, EthConfig::default());
        let mac_b = b.mac();
        let got = send_and_receive(&mut a, &mut b, [0xff; 6], &[60, 100, 1514], 3, 3);
        assert_eq!(got.len(), 3);
        // Nobody has this MAC: the flow table drops it, software never
        // sees it.
        let stranger = [0x02, 0x99, 0x99, 0x99, 0x99, 0x99];
        // (The vport's address filter or the flow tables: both are the
        // adapter.)
        let dropped = || {
            let s = sb.port_stats();
            s.rx_dropped_no_steering + s.rx_dropped_vport_filter
        };
        let before = dropped();
        let got = send_and_receive(&mut a, &mut b, stranger, &[60, 61, 62], 3, 0);
        assert!(got.is_empty());
        assert!(common::eventually(|| dropped() == before + 3));
        assert_eq!(b.net_stats().rx_packets, 3);
        // Traffic to b's own MAC still flows.
        let got = send_and_receive(&mut a, &mut b, mac_b, &[64], 1, 1);
        assert_eq!(got.len(), 1);
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

#[test]
fn no_posted_buffers_counts_q_counter_drops_then_recovers() {
    for mode in MODES {
        let (sa, sb) = SimPlatform::pair(Personality::ConnectX5, Personality::ConnectX5, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        // Cyclic: 16 buffers hold exactly 16 frames.
        let cfg = EthConfig {
            log_rq: 4,
            rq_kind: RqChoice::Cyclic,
            ..EthConfig::default()
        };
        let mut a = open(&sa, cfg);
        let mut b = open(&sb, cfg);
        let dst = b.mac();
        let src = a.mac();
        // b does not receive: its 16 buffers fill, the other 24 frames
        // are dropped by the adapter and counted in b's Q counter.
        for seq in 0..40u32 {
            a.transmit(60, |buf| fill(buf, dst, src, seq)).unwrap();
        }
        a.flush();
        assert!(common::eventually(|| {
            a.poll();
            sb.port_stats().rx_dropped_no_wqe == 24
        }));
        let q = b.refresh_counters().unwrap();
        assert_eq!(q.out_of_buffer, 24);
        assert_eq!(b.net_stats().rx_no_buffer, 24);
        // The 16 that fit arrive in order; then traffic flows again.
        let mut seqs = Vec::new();
        while let Some(s) = b.receive(|f, _| u32::from_be_bytes([f[14], f[15], f[16], f[17]])) {
            seqs.push(s);
        }
        b.flush();
        assert_eq!(seqs, (0..16).collect::<Vec<_>>());
        let got = send_and_receive(&mut a, &mut b, dst, &[60; 100], 8, 100);
        assert_eq!(got.len(), 100);
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

/// Both completion modes (a CQE for every WQE, and the selective one: a
/// CQE every `cq_every` WQEs and at each doorbell, reclaiming every WQE up
/// to its `wqe_counter`) on every part, through a 16-entry SQ that wraps
/// its ring and its 16-bit counters' low bits many times: every frame
/// arrives intact and in order, every transmit buffer comes back, and the
/// selective mode asks for fewer completions.
#[test]
fn every_part_in_both_completion_modes_through_a_wrapping_ring() {
    let parts = [
        Personality::ConnectX4,
        Personality::ConnectX4Lx,
        Personality::ConnectX5,
        Personality::ConnectX6,
        Personality::ConnectX6Dx,
    ];
    let lens: Vec<usize> = (0..600).map(|i| 60 + (i * 37) % 1455).collect();
    for part in parts {
        for cq_every in [1u16, 8] {
            let (sa, sb) = SimPlatform::pair(part, Personality::ConnectX6Dx, Mode::Synchronous);
            let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
            let cfg = EthConfig {
                log_sq: 4,
                cq_every,
                ..EthConfig::default()
            };
            let mut a = open(&sa, cfg);
            let mut b = open(&sb, EthConfig::default());
            let ctx = format!("{part:?} cq_every {cq_every}");
            // Batches of 24 against 16 entries: the ring fills, the
            // transmit is refused (Busy), completions make room.
            let dst = b.mac();
            let got = send_and_receive(&mut a, &mut b, dst, &lens, 24, lens.len());
            for (i, (seq, len)) in got.iter().enumerate() {
                assert_eq!(
                    (*seq as usize, *len),
                    (i, lens[i]),
                    "{ctx}: in order, intact"
                );
            }
            let sq = a.sq().unwrap();
            assert_eq!(a.tx_free(), 16, "{ctx}: every buffer back");
            assert_eq!(sq.in_flight(), 0, "{ctx}");
            let s = sq.stats;
            assert_eq!(s.packets, lens.len() as u64, "{ctx}");
            if cq_every == 1 {
                assert_eq!(s.completions, s.packets, "{ctx}");
            } else {
                // At most one per 8 WQEs plus one per doorbell.
                assert!(s.completions <= s.packets / 8 + s.doorbells, "{ctx}: {s:?}");
                assert!(s.completions < s.packets / 2, "{ctx}: {s:?}");
            }
            assert_eq!(a.net_stats().errors + b.net_stats().errors, 0, "{ctx}");
            close(a, &sa, ba);
            close(b, &sb, bb);
        }
    }
}

#[test]
fn bad_lkey_wqe_error_cqe_fault_report_recovery_nothing_leaked() {
    for mode in MODES {
        let (sa, sb) = SimPlatform::pair(Personality::ConnectX4Lx, Personality::ConnectX5, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        // Selective completions in the threaded mode, one per WQE in the
        // synchronous: the error CQE (of an unsignalled WQE in the first)
        // recovers the queue either way.
        let cq_every = if mode == Mode::Threaded { 32 } else { 1 };
        let cfg = EthConfig {
            cq_every,
            ..EthConfig::default()
        };
        let mut a = open(&sa, cfg);
        let mut b = open(&sb, EthConfig::default());
        let dst = b.mac();
        let src = a.mac();
        let entries = a.sq().unwrap().entries();
        // The model treats the next WQE's lkey as invalid.
        sa.inject_queue(mlx5_sim::queue_faults::QueueFault::SqBad {
            what: mlx5_sim::queue_faults::BadWqe::Lkey,
            sqn: None,
            count: 1,
        })
        .unwrap();
        for seq in 0..4u32 {
            a.transmit(128, |buf| fill(buf, dst, src, seq)).unwrap();
        }
        a.flush();
        // The poll records the fault; the owner's recovery step resets
        // the SQ.
        assert!(common::eventually(|| {
            a.poll();
            a.run_pending_recoveries();
            a.last_fault().is_some_and(|f| f.recovered)
        }));
        let f = a.last_fault().unwrap();
        assert!(f.recovered, "{f}");
        assert!(format!("{f}").contains("local protection"), "{f}");
        assert_eq!(a.eth_stats().recoveries, 1);
        assert_eq!(a.tx_free(), entries, "every buffer back");
        assert!(a.net_stats().errors >= 1);
        // Traffic resumes.
        let got = send_and_receive(&mut a, &mut b, dst, &[60, 500, 1514], 3, 3);
        assert_eq!(got.len(), 3);
        let s = a.stats_report().eth;
        assert_eq!((s.faults, s.recoveries, s.failed_recoveries), (1, 1, 0));
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

#[test]
fn interrupt_driven_and_polled_modes_run_the_same_path() {
    for mode in MODES {
        for interrupts in [true, false] {
            let (sa, sb) =
                SimPlatform::pair(Personality::ConnectX6Dx, Personality::ConnectX5, mode);
            let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
            let cfg = EthConfig {
                interrupts,
                ..EthConfig::default()
            };
            let mut a = open(&sa, cfg);
            let mut b = open(&sb, cfg);
            let mac_b = b.mac();
            let vector = b.control().comp_eqs()[0].1;
            let msix_before = sb.msix_count(vector);
            let got = send_and_receive(&mut a, &mut b, mac_b, &[100; 300], 16, 300);
            assert_eq!(got.len(), 300);
            let rx_arms = b.rx_cq().unwrap().armed;
            let tx_arms = a.tx_cq().unwrap().armed;
            if interrupts {
                // Completions raised the completion vector, and the CQs
                // were re-armed after their events.
                assert!(sb.msix_count(vector) > msix_before, "{mode:?}");
                assert!(rx_arms > 1, "{mode:?}: rx CQ re-armed ({rx_arms})");
                assert!(tx_arms > 1, "{mode:?}: tx CQ re-armed ({tx_arms})");
            } else {
                assert_eq!(sb.msix_count(vector), msix_before, "{mode:?}: polled");
                assert_eq!((rx_arms, tx_arms), (0, 0));
            }
            close(a, &sa, ba);
            close(b, &sb, bb);
        }
    }
}

#[test]
fn a_looped_back_port_receives_its_own_frames() {
    for mode in MODES {
        let sim = SimPlatform::new_loopback(Personality::ConnectX4, mode);
        let before = sim.dma_in_use();
        let mut port = open(&sim, EthConfig::default());
        let me = port.mac();
        let src = me;
        let mut got = 0;
        for seq in 0..64u32 {
            port.transmit(60 + seq as usize, |b| fill(b, me, src, seq))
                .unwrap();
        }
        port.flush();
        assert!(common::eventually(|| {
            port.poll();
            while port
                .receive(|f, _| {
                    let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
                    check(f, me, seq, 60 + seq as usize);
                })
                .is_some()
            {
                got += 1;
            }
            port.flush();
            got == 64
        }));
        assert_eq!(sim.port_stats().tx_frames, 64);
        close(port, &sim, before);
    }
}
