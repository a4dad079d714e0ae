//! The batch API ([`mlx5::QueueSet::transmit_burst`],
//! [`mlx5::QueueSet::receive_burst`]) between two simulated adapters, on
//! every part: mixed frame sizes through a 16-entry SQ (the ring and the
//! buffer FIFO wrap many times), both completion modes, cyclic and
//! striding receive queues (a striding RQ's filler completions, which
//! the burst leaves to the per-frame path, come with the mixed sizes),
//! the L2-inline parts and the no-inline ones, offloads given once per
//! burst and read back lazily; every frame intact and in order, every
//! buffer back, no DMA leaked, no sanitizer violation.

mod common;

use common::burst::{PARTS, send_bursts};
use common::{close_port as close, open_port as open};
use cxos_drivers::{L3Proto, L4Proto, NetDevice, TxError, TxGeometry, TxMeta};
use mlx5::{EthConfig, RqChoice};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

#[test]
fn every_part_both_completion_modes_both_rq_kinds() {
    let lens: Vec<usize> = (0..700).map(|i| 60 + (i * 37) % 1455).collect();
    for part in PARTS {
        for cq_every in [1u16, 8] {
            for rq_kind in [RqChoice::Cyclic, RqChoice::Auto] {
                let (sa, sb) = SimPlatform::pair(part, part, Mode::Synchronous);
                let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
                let tx = EthConfig {
                    log_sq: 4,
                    cq_every,
                    ..EthConfig::default()
                };
                let rx = EthConfig {
                    rq_kind,
                    ..EthConfig::default()
                };
                let mut a = open(&sa, tx);
                let mut b = open(&sb, rx);
                let ctx = format!("{part:?} cq_every {cq_every} {rq_kind:?}");
                let got = send_bursts(&mut a, &mut b, &lens, 24);
                for (i, (seq, len)) in got.iter().enumerate() {
                    assert_eq!((*seq as usize, *len), (i, lens[i]), "{ctx}: in order");
                }
                let s = a.sq().unwrap().stats;
                assert_eq!(s.packets, lens.len() as u64, "{ctx}");
                assert_eq!(a.tx_free(), 16, "{ctx}: every buffer back");
                let sq = a.sq().unwrap();
                if sq.empw().is_some() && !sq.legacy_mpw() {
                    // eMPW (the default where the part has it): one
                    // completion covers a session (tests/empw.rs). Legacy
                    // MPW sessions (ConnectX-4 Lx) hold frames of one
                    // length: here a frame each (tests/mpw.rs).
                    assert!(s.completions < s.packets, "{ctx}: {s:?}");
                } else if cq_every == 1 {
                    assert_eq!(s.completions, s.packets, "{ctx}");
                } else {
                    assert!(s.completions < s.packets / 2, "{ctx}: {s:?}");
                }
                let bytes: u64 = lens.iter().map(|&l| l as u64).sum();
                assert_eq!(a.net_stats().tx_bytes, bytes, "{ctx}");
                assert_eq!(b.net_stats().rx_bytes, bytes, "{ctx}");
                assert_eq!(b.net_stats().rx_packets, lens.len() as u64, "{ctx}");
                if b.rq().unwrap().stats.wqes_done > 0 {
                    // Striding: mixed sizes leave WQE tails the device
                    // fills; the burst hands those to the per-frame path.
                    assert!(b.rq().unwrap().stats.fillers > 0, "{ctx}");
                }
                assert_eq!(a.net_stats().errors + b.net_stats().errors, 0, "{ctx}");
                close(a, &sa, ba);
                close(b, &sb, bb);
            }
        }
    }
}

/// A 64-byte IPv4/TCP frame with zero checksums (the adapter fills them).
fn tcp64(f: &mut [u8], dst: [u8; 6], src: [u8; 6], seq: u16) {
    f[..64].fill(0);
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..24].copy_from_slice(&[0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 6]);
    f[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f[34..36].copy_from_slice(&seq.to_be_bytes());
    f[36..38].copy_from_slice(&5201u16.to_be_bytes());
    f[46] = 0x50;
    f[47] = 0x10;
}

/// Checksum and VLAN offloads asked once per burst, with and without the
/// geometry (parsed per frame), on an L2-inline part (the tag goes into
/// the inline header) and a no-inline one (the `insert` field); the
/// receiver strips the tag and the lazily read metadata says so and that
/// the checksums the sender's adapter filled are good.
#[test]
fn offloads_per_burst_and_lazy_receive_metadata() {
    let geometry = Some(TxGeometry {
        l2: 14,
        l3: L3Proto::Ipv4,
        l3_len: 20,
        l4: L4Proto::Tcp,
        l4_len: 20,
    });
    for part in [Personality::ConnectX4Lx, Personality::ConnectX6Dx] {
        for geometry in [geometry, None] {
            let (sa, sb) = SimPlatform::pair(part, Personality::ConnectX6Dx, Mode::Synchronous);
            let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
            let mut a = open(&sa, EthConfig::default());
            let rx = EthConfig {
                vlan_strip: true,
                ..EthConfig::default()
            };
            let mut b = open(&sb, rx);
            let (dst, src) = (b.mac(), a.mac());
            let meta = TxMeta {
                csum: true,
                vlan: Some(0x2064),
                lso: None,
                geometry,
            };
            let mut seen = Vec::new();
            for round in 0..20u16 {
                let n = a
                    .transmit_burst(16, meta, |i, f| {
                        tcp64(f, dst, src, round * 16 + i as u16);
                        64
                    })
                    .unwrap();
                assert_eq!(n, 16);
                b.receive_burst(usize::MAX, |f, info| {
                    let m = info.meta();
                    assert_eq!(m.vlan, Some(0x2064));
                    assert!(m.csum_ok && m.l3_csum_ok && m.l4_csum_ok, "{m:?}");
                    assert_eq!((m.l3, m.l4), (L3Proto::Ipv4, L4Proto::Tcp));
                    seen.push(u16::from_be_bytes([f[34], f[35]]));
                });
            }
            assert_eq!(seen, (0..320).collect::<Vec<_>>(), "{part:?}");
            let s = a.sq().unwrap().stats;
            assert_eq!((s.csum, s.vlan_insert), (320, 320), "{part:?}");
            // LSO is not a burst's.
            let lso = TxMeta {
                lso: Some(cxos_drivers::Lso {
                    mss: 1000,
                    header_len: 54,
                }),
                ..TxMeta::default()
            };
            assert_eq!(
                a.transmit_burst(1, lso, |_, _| 64),
                Err(TxError::Unsupported)
            );
            // A length past the frame ends the burst there.
            assert_eq!(a.transmit_burst(4, TxMeta::default(), |_, _| 1600), Ok(0));
            while a.tx_free() < a.sq().unwrap().entries() {
                a.transmit_burst(0, TxMeta::default(), |_, _| 0).unwrap();
                a.poll();
            }
            close(a, &sa, ba);
            close(b, &sb, bb);
        }
    }
}
