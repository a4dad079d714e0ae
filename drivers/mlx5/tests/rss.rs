//! Multi-queue receive with RSS against the model: each flow lands on
//! the queue its Toeplitz hash (computed here, by the driver's `rss`
//! module, checked against Microsoft's vectors in its unit tests)
//! predicts, the CQE carries that hash, flows spread over every queue,
//! the key is configurable, receive CQs spread over the completion EQs.

mod common;

use common::pkt::{self, KINDS, Kind, TCP};
use common::{Port, close_port as close, open_port as open};
use cxos_drivers::{NetDevice, RxMeta, TxMeta};
use mlx5::EthConfig;
use mlx5::rss::{self, toeplitz};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

/// Flow `i` of `kind`: addresses and ports vary with `i`.
fn flow(kind: Kind, dst: [u8; 6], src: [u8; 6], i: u32) -> Vec<u8> {
    let mut f = pkt::build(kind, dst, src, 40, i, false);
    let ip = 14;
    if kind.v6 {
        f[ip + 8 + 15] = i as u8;
        f[ip + 24 + 14] = (i >> 3) as u8;
    } else {
        f[ip + 12 + 3] = i as u8;
        f[ip + 16 + 2] = (i >> 2) as u8;
    }
    let tp = ip + kind.l3_len();
    f[tp..tp + 2].copy_from_slice(&(1000 + 7 * i as u16).to_be_bytes());
    f[tp + 2..tp + 4].copy_from_slice(&(5201 + (i % 5) as u16).to_be_bytes());
    pkt::fix_csums(&mut f, kind);
    f
}

/// The hash the adapter must compute for `f` (addresses and ports).
fn expected_hash(key: &[u8; 40], f: &[u8], kind: Kind) -> u32 {
    let ip = 14;
    let tp = ip + kind.l3_len();
    let ports = Some((
        u16::from_be_bytes([f[tp], f[tp + 1]]),
        u16::from_be_bytes([f[tp + 2], f[tp + 3]]),
    ));
    let mut buf = [0u8; 36];
    let n = if kind.v6 {
        rss::ipv6_input(
            f[ip + 8..ip + 24].try_into().unwrap(),
            f[ip + 24..ip + 40].try_into().unwrap(),
            ports,
            &mut buf,
        )
    } else {
        rss::ipv4_input(
            f[ip + 12..ip + 16].try_into().unwrap(),
            f[ip + 16..ip + 20].try_into().unwrap(),
            ports,
            &mut buf,
        )
    };
    toeplitz(key, &buf[..n])
}

fn receive_one(a: &mut Port, b: &mut Port, f: &[u8]) -> RxMeta {
    a.transmit_with(f.len(), TxMeta::default(), |x| x.copy_from_slice(f))
        .unwrap();
    a.flush();
    let mut got = None;
    assert!(common::eventually(|| {
        a.poll();
        b.poll();
        if let Some(m) = b.receive(|_, m| m) {
            got = Some(m);
        }
        b.flush();
        got.is_some()
    }));
    got.unwrap()
}

#[test]
fn flows_land_on_the_toeplitz_predicted_queue() {
    for (mode, key) in [
        (Mode::Synchronous, rss::DEFAULT_KEY),
        (Mode::Threaded, [0x3c; 40]),
    ] {
        let (sa, sb) = SimPlatform::pair(Personality::ConnectX5, Personality::ConnectX6Dx, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let mut a = open(&sa, EthConfig::default());
        let cfg = EthConfig {
            rss_queues: 8,
            rss_key: key,
            log_rq: 6,
            ..EthConfig::default()
        };
        let mut b = open(&sb, cfg);
        assert_eq!(b.rx_queues(), 8);
        assert!(b.rqt().is_some() && b.rss_tirs().len() == 6);
        // Receive CQs spread over the completion EQs.
        let eqs: std::collections::BTreeSet<u8> =
            (0..8).map(|i| b.rx_cq_at(i).unwrap().eqn.0).collect();
        let n_eqs = b.control().comp_eqs().len().min(8);
        assert_eq!(eqs.len(), n_eqs, "{eqs:?}");
        let mut per_queue = [0u32; 8];
        let (dst, src) = (b.mac(), a.mac());
        for kind in KINDS {
            for i in 0..40u32 {
                let f = flow(kind, dst, src, i);
                let m = receive_one(&mut a, &mut b, &f);
                let h = expected_hash(&key, &f, kind);
                assert_eq!(m.rss_hash, h, "{mode:?} {kind:?} flow {i}");
                assert_eq!(m.queue as u32, h % 8, "{mode:?} {kind:?} flow {i}");
                assert!(m.csum_ok);
                per_queue[m.queue as usize] += 1;
                // The same flow again: the same queue.
                assert_eq!(receive_one(&mut a, &mut b, &f).queue, m.queue);
            }
        }
        assert!(per_queue.iter().all(|&n| n > 0), "{per_queue:?}");
        // The model's RQT lists the queues in order, and delivered into
        // each RQ what the driver received from it.
        let rqns: Vec<u32> = (0..8).map(|i| b.rq_at(i).unwrap().rqn.0).collect();
        assert_eq!(sb.rqt(b.rqt().unwrap().0), Some(rqns.clone()));
        for (i, rqn) in rqns.iter().enumerate() {
            assert_eq!(
                sb.rq_frames(*rqn),
                Some(b.rq_at(i).unwrap().stats.packets),
                "queue {i}"
            );
        }
        // Not IP: queue 0, no hash.
        let mut f = flow(KINDS[0], dst, src, 1);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        let m = receive_one(&mut a, &mut b, &f);
        assert_eq!((m.queue, m.rss_hash), (0, 0));
        // IPv4 that is neither TCP nor UDP (ICMP, protocol 1): hashed on
        // the addresses only.
        let mut f = flow(
            Kind {
                v6: false,
                proto: TCP,
            },
            dst,
            src,
            3,
        );
        f[14 + 9] = 1;
        pkt::fix_csums(&mut f, KINDS[0]);
        let m = receive_one(&mut a, &mut b, &f);
        let mut buf = [0u8; 36];
        let n = rss::ipv4_input(
            f[26..30].try_into().unwrap(),
            f[30..34].try_into().unwrap(),
            None,
            &mut buf,
        );
        assert_eq!(m.rss_hash, toeplitz(&key, &buf[..n]));
        assert_eq!(m.queue as u32, m.rss_hash % 8);
        let rings = b.rings();
        let rss = rings.rss.as_ref().expect("rss rings");
        assert_eq!((rss.queues, rss.tirs.len()), (8, 6), "{rings:?}");
        assert_eq!(b.net_stats().rx_packets, 4 * 40 * 2 + 2);
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

#[test]
fn rss_ports_keep_steering_multicast_and_promisc() {
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX5,
        Personality::ConnectX5,
        Mode::Synchronous,
    );
    let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
    let mut a = open(&sa, EthConfig::default());
    let cfg = EthConfig {
        rss_queues: 4,
        interrupts: false,
        ..EthConfig::default()
    };
    let mut b = open(&sb, cfg);
    let stranger = [0x02, 0x42, 0, 0, 0, 1];
    let f = flow(KINDS[1], stranger, a.mac(), 9);
    a.transmit(f.len(), |x| x.copy_from_slice(&f)).unwrap();
    a.flush();
    b.poll();
    assert!(b.receive(|_, _| ()).is_none(), "dropped without promisc");
    b.set_promisc(true).unwrap();
    let m = receive_one(&mut a, &mut b, &f);
    assert_eq!(
        m.queue as u32,
        expected_hash(&rss::DEFAULT_KEY, &f, KINDS[1]) % 4
    );
    b.set_promisc(false).unwrap();
    NetDevice::add_multicast(&mut b, [0x33, 0x33, 0, 0, 0, 1]).unwrap();
    let f = flow(KINDS[3], [0x33, 0x33, 0, 0, 0, 1], a.mac(), 2);
    let m = receive_one(&mut a, &mut b, &f);
    assert_eq!(
        m.queue as u32,
        expected_hash(&rss::DEFAULT_KEY, &f, KINDS[3]) % 4
    );
    close(a, &sa, ba);
    close(b, &sb, bb);
}
