//! Transmit and receive offloads between two simulated adapters, a driver
//! on each: checksums for IPv4/IPv6 x TCP/UDP (inserted by the sender's
//! adapter, verified by the receiver's and again in software here; wrong
//! checksums flagged), VLAN insertion and stripping, every personality's
//! inline rule, LSO of a 64 KiB send into MSS-sized segments.

mod common;

use common::pkt::{self, KINDS, Kind, TCP};
use common::{Port, close_port as close, open_port as open};
use cxos_drivers::{L3Proto, L4Proto, Lso, NetDevice, RxMeta, TxGeometry, TxMeta};
use mlx5::EthConfig;
use mlx5::wqe::InlineMode;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

/// Send `frame` from `a` with `meta`, return what `b` receives (bytes and
/// metadata), `n` frames expected.
fn send(
    a: &mut Port,
    b: &mut Port,
    frame: &[u8],
    meta: TxMeta,
    n: usize,
) -> Vec<(Vec<u8>, RxMeta)> {
    a.transmit_with(frame.len(), meta, |buf| buf.copy_from_slice(frame))
        .unwrap_or_else(|e| panic!("transmit {} bytes {meta:?}: {e}", frame.len()));
    a.flush();
    let mut got = Vec::new();
    let done = common::eventually(|| {
        a.poll();
        b.poll();
        while let Some(x) = b.receive(|f, m| (f.to_vec(), m)) {
            got.push(x);
        }
        b.flush();
        got.len() >= n
    });
    assert!(
        done,
        "received {} of {n}\nsender:\n{:?}\n{:?}\nreceiver:\n{:?}\n{:?}",
        got.len(),
        a.rings(),
        a.stats_report(),
        b.rings(),
        b.stats_report()
    );
    assert!(
        a.last_fault().is_none(),
        "sender fault: {:?}",
        a.last_fault()
    );
    got
}

/// The geometry a stack gives for a frame of `kind`.
fn geometry(kind: Kind) -> TxGeometry {
    TxGeometry {
        l2: 14,
        l3: l3(kind),
        l3_len: kind.l3_len() as u8,
        l4: l4(kind),
        l4_len: kind.l4_len() as u8,
    }
}

fn l3(kind: Kind) -> L3Proto {
    if kind.v6 {
        L3Proto::Ipv6
    } else {
        L3Proto::Ipv4
    }
}

fn l4(kind: Kind) -> L4Proto {
    if kind.proto == TCP {
        L4Proto::Tcp
    } else {
        L4Proto::Udp
    }
}

/// What a stack does (net's transmit token): the frame is written, then
/// the checksums it needs and its geometry are asked for; no header is
/// read back by the driver. Every part (inline rules of all kinds), with
/// and without a VLAN tag, frames of every kind and size; a frame that
/// asks for nothing (ARP) goes out untouched.
#[test]
fn checksums_asked_after_writing_with_the_stacks_geometry() {
    for sender in Personality::ALL {
        let (sa, sb) = SimPlatform::pair(sender, Personality::ConnectX5, Mode::Synchronous);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let mut a = open(&sa, EthConfig::default());
        let strip = EthConfig {
            vlan_strip: true,
            ..EthConfig::default()
        };
        let mut b = open(&sb, strip);
        let (dst, src) = (b.mac(), a.mac());
        for (i, kind) in KINDS.into_iter().enumerate() {
            for (payload, vlan) in [(0, None), (101, Some(7)), (1400, None), (9, Some(0x2064))] {
                let ctx = format!("{sender:?} {kind:?} payload {payload} vlan {vlan:?}");
                let f = pkt::build(kind, dst, src, payload, i as u32, false);
                let meta = TxMeta {
                    csum: true,
                    vlan,
                    geometry: Some(geometry(kind)),
                    ..TxMeta::default()
                };
                a.transmit_then(f.len(), |buf| {
                    buf.copy_from_slice(&f);
                    ((), meta)
                })
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                a.flush();
                let mut got = Vec::new();
                assert!(
                    common::eventually(|| {
                        a.poll();
                        while let Some(x) = b.receive(|f, m| (f.to_vec(), m)) {
                            got.push(x);
                        }
                        b.flush();
                        !got.is_empty()
                    }),
                    "{ctx}"
                );
                let (rf, m) = &got[0];
                assert_eq!(pkt::csums_ok(rf, kind), (true, true), "{ctx}");
                assert!(m.csum_ok, "{ctx}: {m:?}");
                assert_eq!(m.vlan, vlan, "{ctx}");
                let mut want = f.clone();
                pkt::fix_csums(&mut want, kind);
                assert_eq!(&rf[..want.len()], &want[..], "{ctx}");
            }
        }
        // ARP asks nothing: the bytes go out as written.
        let mut arp = vec![0u8; 60];
        arp[..6].copy_from_slice(&dst);
        arp[6..12].copy_from_slice(&src);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        arp[20] = 0xa5;
        a.transmit_then(arp.len(), |buf| {
            buf.copy_from_slice(&arp);
            ((), TxMeta::default())
        })
        .unwrap();
        a.flush();
        let mut seen = None;
        assert!(common::eventually(|| {
            a.poll();
            if let Some(f) = b.receive(|f, _| f.to_vec()) {
                seen = Some(f);
            }
            b.flush();
            seen.is_some()
        }));
        assert_eq!(&seen.unwrap()[..60], &arp[..], "{sender:?}");
        assert_eq!(
            a.sq().unwrap().stats.csum,
            4 * 4,
            "{sender:?}: ARP asked none"
        );
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

#[test]
fn checksum_offload_both_ways_verified_by_the_receiver_and_bad_ones_flagged() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        for sender in Personality::ALL {
            let (sa, sb) = SimPlatform::pair(sender, Personality::ConnectX5, mode);
            let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
            let mut a = open(&sa, EthConfig::default());
            let mut b = open(&sb, EthConfig::default());
            let o = a.offloads();
            assert!(
                o.tx_ipv4_csum && o.tx_l4_csum && b.offloads().rx_csum,
                "{sender:?}"
            );
            let (dst, src) = (b.mac(), a.mac());
            for (i, kind) in KINDS.into_iter().enumerate() {
                for payload in [0, 1, 101, 1400] {
                    let ctx = format!("{mode:?} {sender:?} {kind:?} payload {payload}");
                    // Checksum fields zero: the sender's adapter fills them.
                    let f = pkt::build(kind, dst, src, payload, i as u32, false);
                    let meta = TxMeta {
                        csum: true,
                        ..TxMeta::default()
                    };
                    let got = send(&mut a, &mut b, &f, meta, 1);
                    let (rf, m) = &got[0];
                    assert_eq!(pkt::csums_ok(rf, kind), (true, true), "{ctx}: on the wire");
                    assert_eq!(m.l3, l3(kind), "{ctx}");
                    assert_eq!(m.l4, l4(kind), "{ctx}");
                    assert!(m.csum_ok && m.l4_csum_ok, "{ctx}: {m:?}");
                    assert_eq!(m.l3_csum_ok, !kind.v6, "{ctx}");
                    // Everything but the checksums went out as written.
                    let mut want = f.clone();
                    pkt::fix_csums(&mut want, kind);
                    assert_eq!(&rf[..want.len()], &want[..], "{ctx}");
                }
                // A wrong L4 checksum, sent without offload: flagged.
                let mut f = pkt::build(kind, dst, src, 64, 7, true);
                let at = pkt::l4_csum_at(kind);
                f[at] ^= 0x5a;
                let got = send(&mut a, &mut b, &f, TxMeta::default(), 1);
                let m = got[0].1;
                assert_eq!((m.l3, m.l4), (l3(kind), l4(kind)), "{kind:?}");
                assert!(!m.l4_csum_ok && !m.csum_ok, "{kind:?} bad L4: {m:?}");
                assert_eq!(m.l3_csum_ok, !kind.v6, "{kind:?}");
                if !kind.v6 {
                    // A wrong IPv4 header checksum, L4 right.
                    let mut f = pkt::build(kind, dst, src, 64, 8, true);
                    f[14 + 10] ^= 0x33;
                    let got = send(&mut a, &mut b, &f, TxMeta::default(), 1);
                    let m = got[0].1;
                    assert!(
                        !m.l3_csum_ok && !m.csum_ok,
                        "{kind:?} bad IPv4 header: {m:?}"
                    );
                }
            }
            // Not IP: nothing claimed.
            let mut f = pkt::build(KINDS[0], dst, src, 50, 1, true);
            f[12..14].copy_from_slice(&[0x88, 0xb5]);
            let got = send(
                &mut a,
                &mut b,
                &f,
                TxMeta {
                    csum: true,
                    ..TxMeta::default()
                },
                1,
            );
            assert_eq!(got[0].1, RxMeta::default());
            assert_eq!(&got[0].0[..f.len()], &f[..]);
            assert!(b.eth_stats().rx_csum_bad >= 6, "{:?}", b.eth_stats());
            close(a, &sa, ba);
            close(b, &sb, bb);
        }
    }
}

#[test]
fn vlan_insert_by_every_part_and_strip_on_receive() {
    for sender in Personality::ALL {
        let (sa, sb) = SimPlatform::pair(sender, Personality::ConnectX6Dx, Mode::Synchronous);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let mut a = open(&sa, EthConfig::default());
        let strip = EthConfig {
            vlan_strip: true,
            ..EthConfig::default()
        };
        let mut b = open(&sb, strip);
        assert!(a.offloads().vlan_insert && b.offloads().vlan_strip);
        let (dst, src) = (b.mac(), a.mac());
        let tci = 0x6064; // PCP 3, VID 0x064
        for kind in KINDS {
            let f = pkt::build(kind, dst, src, 200, 3, false);
            let meta = TxMeta {
                csum: true,
                vlan: Some(tci),
                ..TxMeta::default()
            };
            let got = send(&mut a, &mut b, &f, meta, 1);
            let (rf, m) = &got[0];
            // Stripped: the frame arrives untagged, the tag in the meta,
            // checksums still verified.
            assert_eq!(m.vlan, Some(tci), "{sender:?} {kind:?}");
            assert!(m.csum_ok, "{sender:?} {kind:?}: {m:?}");
            assert_eq!(&rf[..12], &f[..12]);
            assert_eq!(&rf[12..14], &f[12..14], "untagged");
            assert_eq!(rf.len(), f.len().max(60));
        }
        // A full-size frame has no room for a tag.
        let full = a.max_frame() - 4 + 1;
        let tagged = TxMeta {
            vlan: Some(1),
            ..TxMeta::default()
        };
        assert!(a.transmit_with(full, tagged, |_| ()).is_err());
        // Untagged frames carry no tag.
        let f = pkt::build(KINDS[1], dst, src, 20, 3, true);
        assert_eq!(
            send(&mut a, &mut b, &f, TxMeta::default(), 1)[0].1.vlan,
            None
        );
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
    // Without stripping the tag is in the frame, right after the MACs.
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX5,
        Personality::ConnectX4,
        Mode::Synchronous,
    );
    let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
    let mut a = open(&sa, EthConfig::default());
    let mut b = open(&sb, EthConfig::default());
    assert!(!b.offloads().vlan_strip);
    let f = pkt::build(KINDS[2], b.mac(), a.mac(), 300, 9, true);
    let meta = TxMeta {
        vlan: Some(0x0fff),
        ..TxMeta::default()
    };
    let got = send(&mut a, &mut b, &f, meta, 1);
    let (rf, m) = &got[0];
    assert_eq!(m.vlan, None);
    assert_eq!(&rf[12..16], &[0x81, 0x00, 0x0f, 0xff]);
    assert_eq!(&rf[16..], &f[12..]);
    close(a, &sa, ba);
    close(b, &sb, bb);
}

/// The inline rule of each part as its capabilities state it (ConnectX-4:
/// L2 always; 4 Lx: the vport context's mode, L2; 5 and later: none),
/// and the model (which refuses a WQE that inlines less) accepts every
/// frame the driver sends under it, with and without offloads.
#[test]
fn every_personality_inline_rule() {
    for p in Personality::ALL {
        let sim = SimPlatform::new(p, Mode::Synchronous);
        let before = sim.dma_in_use();
        let mut port = open(&sim, EthConfig::default());
        let want = match p {
            Personality::ConnectX4 | Personality::ConnectX4Lx => InlineMode::L2,
            _ => InlineMode::None,
        };
        assert_eq!(port.resources().inline, want, "{p:?}");
        assert_eq!(port.sq().unwrap().inline_mode(), want, "{p:?}");
        let (dst, src) = ([0x02, 0, 0, 0, 0, 0x77], port.mac());
        let mut sent = Vec::new();
        for (i, kind) in KINDS.into_iter().enumerate() {
            for meta in [
                TxMeta::default(),
                TxMeta {
                    csum: true,
                    ..TxMeta::default()
                },
                TxMeta {
                    csum: true,
                    vlan: Some(5),
                    ..TxMeta::default()
                },
            ] {
                let f = pkt::build(kind, dst, src, 10 + i, i as u32, true);
                let at = port.sq().unwrap().producer_counter();
                port.transmit_with(f.len(), meta, |b| b.copy_from_slice(&f))
                    .unwrap();
                // The WQE as the device reads it: inline_hdr.sz (eth
                // segment 0x0c -> WQE 0x1c) is 18 bytes where the part
                // requires L2 (a header with room for a tag; with a tag
                // to insert, the 14-byte header and the tag), else 0 with
                // the tag in `insert` (type 0x8000, TCI).
                let w = port.sq().unwrap().wqebb(at);
                let sz = u16::from_be_bytes([w[0x1c], w[0x1d]]);
                match (want, meta.vlan) {
                    (InlineMode::L2, None) => assert_eq!(sz, 18, "{p:?}"),
                    (InlineMode::L2, Some(_)) => {
                        assert_eq!(sz, 18, "{p:?}");
                        assert_eq!(&w[0x2a..0x2e], &[0x81, 0x00, 0, 5], "{p:?}");
                    }
                    (_, None) => assert_eq!(sz, 0, "{p:?}"),
                    (_, Some(_)) => assert_eq!(&w[0x1c..0x20], &[0x80, 0, 0, 5], "{p:?}"),
                }
                let mut want = f.clone();
                if let Some(tci) = meta.vlan {
                    want.splice(12..12, [0x81, 0x00, 0, tci as u8]);
                }
                sent.push(want);
            }
        }
        // A frame shorter than a tagged L2 header.
        let short = [0xab; 16];
        port.transmit(16, |b| b.copy_from_slice(&short)).unwrap();
        sent.push(short.to_vec());
        port.flush();
        assert!(common::eventually(|| {
            port.poll();
            port.tx_free() == port.sq().unwrap().entries()
        }));
        assert!(
            port.last_fault().is_none(),
            "{p:?}: {:?}",
            port.last_fault()
        );
        let wire = sim.take_tx();
        assert_eq!(wire.len(), sent.len(), "{p:?}");
        for (w, s) in wire.iter().zip(&sent) {
            assert_eq!(&w[..s.len()], &s[..], "{p:?}");
        }
        close(port, &sim, before);
    }
}

/// Check one received LSO segment against the original frame.
fn check_segment(seg: &[u8], orig: &[u8], kind: Kind, idx: usize, count: usize, mss: usize) {
    let hl = kind.headers();
    let payload_total = orig.len() - hl;
    let start = idx * mss;
    let len = mss.min(payload_total - start);
    let ctx = format!("{kind:?} segment {idx}/{count}");
    assert_eq!(pkt::csums_ok(seg, kind), (true, true), "{ctx}");
    let ip = 14;
    if kind.v6 {
        let pl = u16::from_be_bytes([seg[ip + 4], seg[ip + 5]]) as usize;
        assert_eq!(pl, kind.l4_len() + len, "{ctx}: payload length");
    } else {
        let total = u16::from_be_bytes([seg[ip + 2], seg[ip + 3]]) as usize;
        assert_eq!(
            total,
            kind.l3_len() + kind.l4_len() + len,
            "{ctx}: total length"
        );
        let id0 = u16::from_be_bytes([orig[ip + 4], orig[ip + 5]]);
        let id = u16::from_be_bytes([seg[ip + 4], seg[ip + 5]]);
        assert_eq!(id, id0.wrapping_add(idx as u16), "{ctx}: IP id");
    }
    let tp = ip + kind.l3_len();
    let seq0 = u32::from_be_bytes(orig[tp + 4..tp + 8].try_into().unwrap());
    let seq = u32::from_be_bytes(seg[tp + 4..tp + 8].try_into().unwrap());
    assert_eq!(seq, seq0.wrapping_add(start as u32), "{ctx}: sequence");
    // PSH (and FIN) only on the last segment.
    let flags = seg[tp + 13];
    let last = idx + 1 == count;
    assert_eq!(flags & 0x08 != 0, last, "{ctx}: PSH");
    assert_eq!(flags & 0x10, 0x10, "{ctx}: ACK");
    assert_eq!(&seg[..14], &orig[..14], "{ctx}: MACs, ethertype");
    assert_eq!(&seg[tp..tp + 4], &orig[tp..tp + 4], "{ctx}: ports");
    assert_eq!(
        &seg[hl..hl + len],
        &orig[hl + start..hl + start + len],
        "{ctx}: payload"
    );
}

#[test]
fn lso_64k_arrives_as_mss_segments_with_correct_headers() {
    for (sender, kind, mode, vlan) in [
        (Personality::ConnectX4, KINDS[0], Mode::Synchronous, None),
        (Personality::ConnectX4Lx, KINDS[2], Mode::Synchronous, None),
        (Personality::ConnectX5, KINDS[0], Mode::Synchronous, None),
        (Personality::ConnectX6Dx, KINDS[2], Mode::Synchronous, None),
        (Personality::ConnectX6Dx, KINDS[0], Mode::Threaded, None),
        // A tag with LSO goes into the inlined headers, on every part.
        (
            Personality::ConnectX5,
            KINDS[2],
            Mode::Synchronous,
            Some(0x0123),
        ),
        (
            Personality::ConnectX4,
            KINDS[0],
            Mode::Threaded,
            Some(0x0123),
        ),
    ] {
        let (sa, sb) = SimPlatform::pair(sender, Personality::ConnectX5, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let mut a = open(&sa, EthConfig::default());
        let strip = EthConfig {
            vlan_strip: true,
            ..EthConfig::default()
        };
        let mut b = open(&sb, strip);
        let lso_max = a.offloads().lso_max as usize;
        assert!(lso_max >= 65000, "{sender:?}: {lso_max}");
        // Segments fill the IP MTU: 1460 over IPv4, 1440 over IPv6.
        let mss = 1500 - kind.l3_len() - kind.l4_len();
        let payload = lso_max;
        let f = pkt::build(kind, b.mac(), a.mac(), payload, 1, false);
        let count = payload.div_ceil(mss);
        let meta = TxMeta {
            csum: true,
            vlan,
            lso: Some(Lso {
                mss: mss as u16,
                header_len: kind.headers() as u16,
            }),
            ..TxMeta::default()
        };
        let got = send(&mut a, &mut b, &f, meta, count);
        assert_eq!(got.len(), count, "{sender:?}");
        for (i, (seg, m)) in got.iter().enumerate() {
            check_segment(seg, &f, kind, i, count, mss);
            assert!(m.csum_ok, "{sender:?} segment {i}");
            assert_eq!(m.vlan, vlan, "{sender:?} segment {i}");
        }
        assert_eq!(a.sq().unwrap().stats.lso, 1);
        let s = a.stats_report();
        assert_eq!(s.tx.map(|t| t.lso), Some(1), "{s:?}");
        // Too long for one LSO frame, segments longer than the MTU, or
        // LSO of a UDP frame: refused.
        let big = lso_max + kind.headers() + 1;
        assert!(a.transmit_with(big, meta, |_| ()).is_err());
        let fat = TxMeta {
            lso: Some(Lso {
                mss: 1500,
                header_len: kind.headers() as u16,
            }),
            ..meta
        };
        assert!(a.transmit_with(4000, fat, |_| ()).is_err());
        let udp = pkt::build(
            Kind {
                proto: pkt::UDP,
                ..kind
            },
            b.mac(),
            a.mac(),
            4000,
            1,
            false,
        );
        assert!(
            a.transmit_with(udp.len(), meta, |x| x.copy_from_slice(&udp))
                .is_err()
        );
        // Plain traffic still flows.
        let small = pkt::build(kind, b.mac(), a.mac(), 100, 2, true);
        let got = send(&mut a, &mut b, &small, TxMeta::default(), 1);
        assert_eq!(&got[0].0[..small.len()], &small[..]);
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

/// What the receiver must see for one transmitted frame.
enum Expect {
    /// The frame with its checksums right (and this tag stripped).
    Whole(Vec<u8>, Option<u16>),
    /// An LSO frame's segments.
    Segments(Vec<u8>, Kind, usize),
}

/// Plain, checksum-offloaded, tagged and LSO frames mixed, in batches of
/// six against a 16-block SQ (LSO WQEs span blocks and wrap the ring), in
/// both completion modes (one CQE per WQE; one every 8 and per doorbell),
/// on every part: everything arrives in order with the bytes it should
/// have, every buffer comes back, nothing faults or leaks.
#[test]
fn mixed_offloads_in_both_completion_modes_through_a_wrapping_ring() {
    const TAG: u16 = 0x0042;
    let parts = [
        Personality::ConnectX4,
        Personality::ConnectX4Lx,
        Personality::ConnectX5,
        Personality::ConnectX6,
        Personality::ConnectX6Dx,
    ];
    for part in parts {
        for cq_every in [1u16, 8] {
            let ctx = format!("{part:?} cq_every {cq_every}");
            let (sa, sb) = SimPlatform::pair(part, Personality::ConnectX5, Mode::Synchronous);
            let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
            let cfg = EthConfig {
                log_sq: 4,
                cq_every,
                ..EthConfig::default()
            };
            let mut a = open(&sa, cfg);
            let strip = EthConfig {
                vlan_strip: true,
                ..EthConfig::default()
            };
            let mut b = open(&sb, strip);
            let (dst, src) = (b.mac(), a.mac());
            let mut expect = Vec::new();
            let mut got: Vec<(Vec<u8>, RxMeta)> = Vec::new();
            let mut want = 0;
            for i in 0..96u32 {
                let kind = KINDS[(i / 4) as usize % KINDS.len()];
                let lso = i % 4 == 3 && kind.proto == TCP;
                let payload = if lso {
                    3000
                } else {
                    40 + (i as usize * 53) % 1400
                };
                let written = pkt::build(kind, dst, src, payload, i, i % 4 == 0);
                let right = pkt::build(kind, dst, src, payload, i, true);
                let (meta, e) = match i % 4 {
                    0 => (TxMeta::default(), Expect::Whole(right, None)),
                    2 => (
                        TxMeta {
                            csum: true,
                            vlan: Some(TAG),
                            geometry: Some(geometry(kind)),
                            ..TxMeta::default()
                        },
                        Expect::Whole(right, Some(TAG)),
                    ),
                    3 if lso => {
                        let mss = 1500 - kind.l3_len() - kind.l4_len();
                        (
                            TxMeta {
                                csum: true,
                                lso: Some(Lso {
                                    mss: mss as u16,
                                    header_len: kind.headers() as u16,
                                }),
                                ..TxMeta::default()
                            },
                            Expect::Segments(written.clone(), kind, mss),
                        )
                    }
                    _ => (
                        TxMeta {
                            csum: true,
                            geometry: Some(geometry(kind)),
                            ..TxMeta::default()
                        },
                        Expect::Whole(right, None),
                    ),
                };
                want += match &e {
                    Expect::Whole(..) => 1,
                    Expect::Segments(f, k, mss) => (f.len() - k.headers()).div_ceil(*mss),
                };
                expect.push(e);
                // Room: reclaim completions (and take what arrived) until
                // the SQ takes the frame.
                assert!(
                    common::eventually(|| {
                        match a.transmit_with(written.len(), meta, |b| b.copy_from_slice(&written))
                        {
                            Ok(()) => true,
                            Err(cxos_drivers::TxError::Busy) => {
                                a.flush();
                                a.poll();
                                b.poll();
                                while let Some(x) = b.receive(|f, m| (f.to_vec(), m)) {
                                    got.push(x);
                                }
                                b.flush();
                                false
                            }
                            Err(e) => panic!("{ctx}: frame {i}: {e}"),
                        }
                    }),
                    "{ctx}: frame {i} never fit"
                );
                if i % 6 == 5 {
                    a.flush();
                }
            }
            a.flush();
            assert!(
                common::eventually(|| {
                    a.poll();
                    b.poll();
                    while let Some(x) = b.receive(|f, m| (f.to_vec(), m)) {
                        got.push(x);
                    }
                    b.flush();
                    got.len() >= want && a.tx_free() == 16
                }),
                "{ctx}: received {} of {want}, {} buffers free",
                got.len(),
                a.tx_free()
            );
            assert_eq!(got.len(), want, "{ctx}");
            let mut at = got.iter();
            for (i, e) in expect.iter().enumerate() {
                match e {
                    Expect::Whole(f, tag) => {
                        let (seg, m) = at.next().unwrap();
                        assert_eq!(seg, f, "{ctx}: frame {i}");
                        assert_eq!(m.vlan, *tag, "{ctx}: frame {i}");
                    }
                    Expect::Segments(f, kind, mss) => {
                        let count = (f.len() - kind.headers()).div_ceil(*mss);
                        for s in 0..count {
                            let (seg, m) = at.next().unwrap();
                            check_segment(seg, f, *kind, s, count, *mss);
                            assert!(m.csum_ok, "{ctx}: frame {i} segment {s}");
                        }
                    }
                }
            }
            let s = a.sq().unwrap().stats;
            assert_eq!(s.lso, 96 / 4 / 2, "{ctx}");
            if cq_every == 1 {
                assert_eq!(s.completions, s.packets, "{ctx}");
            } else {
                assert!(s.completions < s.packets, "{ctx}: {s:?}");
            }
            assert!(
                a.last_fault().is_none() && b.last_fault().is_none(),
                "{ctx}"
            );
            close(a, &sa, ba);
            close(b, &sb, bb);
        }
    }
}
