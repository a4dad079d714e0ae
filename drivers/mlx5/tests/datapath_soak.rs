//! One million packets through two back-to-back adapters: counters exact,
//! memory flat, and no heap allocation on the driver's packet path.

mod common;

use cxos_drivers::NetDevice;
use mlx5::Adapter;
use mlx5::{EthConfig, QueueSet, Resources};
use mlx5_sim::Personality;
use mlx5_sim::harness::{self, CountingAlloc, Mode, SimPlatform};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

/// The memory figures are process-wide: the tests of this file run one
/// at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

type Port = QueueSet<Adapter<SimPlatform>>;

fn open(sim: &SimPlatform) -> Port {
    let a =
        Adapter::attach(sim.clone(), common::config()).unwrap_or_else(|f| panic!("{}", f.error));
    let r = Resources::of(&a).unwrap();
    QueueSet::open(a, r, EthConfig::default()).unwrap_or_else(|f| panic!("{}", f.error))
}

/// Move `n` 60-byte frames a -> b in batches of 32; returns frames received.
fn pump(a: &mut Port, b: &mut Port, n: u64) -> u64 {
    let dst = b.mac();
    // At most half the receive ring in flight: a wire has no flow control.
    let window = b.rq().unwrap().entries() as u64 / 2;
    let mut sent = 0u64;
    let mut got = 0u64;
    let mut idle = 0u32;
    while got < n {
        let mut queued = 0;
        while sent < n
            && queued < 32
            && sent - got < window
            && a.transmit(60, |f| {
                f[0..6].copy_from_slice(&dst);
                f[12] = 0x88;
                f[13] = 0xb5;
            })
            .is_ok()
        {
            sent += 1;
            queued += 1;
        }
        a.flush();
        a.poll();
        b.poll();
        let before = got;
        while b.receive(|f, _| f.len()).is_some() {
            got += 1;
        }
        b.flush();
        if got == before && queued == 0 {
            idle += 1;
            assert!(idle < 1_000_000, "stuck at {got}/{n}");
            std::thread::yield_now();
        } else {
            idle = 0;
        }
    }
    got
}

#[test]
fn a_million_packets_flat_memory_zero_allocations() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for mode in [Mode::Threaded, Mode::Synchronous] {
        let (sa, sb) = SimPlatform::pair(Personality::ConnectX5, Personality::ConnectX5, mode);
        let mut a = open(&sa);
        let mut b = open(&sb);
        // Warm up: every lazily grown structure reaches its size.
        assert_eq!(pump(&mut a, &mut b, 10_000), 10_000);
        let live = harness::live_bytes();
        let allocs = harness::thread_allocations();
        const N: u64 = 1_000_000;
        assert_eq!(pump(&mut a, &mut b, N), N);
        if mode == Mode::Threaded {
            // The model runs on its own threads: everything this thread
            // allocated was the driver's.
            assert_eq!(
                harness::thread_allocations() - allocs,
                0,
                "allocations on the packet path"
            );
        }
        let drift = harness::live_bytes() - live;
        assert!(drift.abs() < 64 * 1024, "memory not flat: {drift} bytes");
        assert_eq!(a.net_stats().tx_packets, N + 10_000);
        assert_eq!(b.net_stats().rx_packets, N + 10_000);
        assert_eq!(b.net_stats().rx_bytes, (N + 10_000) * 60);
        assert_eq!(sa.port_stats().tx_frames, N + 10_000);
        assert_eq!(a.net_stats().errors + b.net_stats().errors, 0);
        let v = sa.sanitizer_violations();
        assert!(v.is_empty(), "{v:?}");
        let v = sb.sanitizer_violations();
        assert!(v.is_empty(), "{v:?}");
        let (a, _) = a.close();
        let (b, _) = b.close();
        a.detach();
        b.detach();
    }
}

/// A 64-byte IPv4/TCP frame of flow `flow`, checksums left to the adapter.
fn tcp64(f: &mut [u8], dst: &[u8; 6], flow: u16) {
    f[0..6].copy_from_slice(dst);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..24].copy_from_slice(&[0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 6]);
    f[24..26].fill(0);
    f[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f[34..36].copy_from_slice(&flow.to_be_bytes());
    f[36..38].copy_from_slice(&5201u16.to_be_bytes());
    f[38..46].fill(0);
    f[46] = 0x50;
    f[47] = 0x10;
    f[48..64].fill(0);
}

#[test]
fn offloads_rss_and_striding_rq_allocate_nothing() {
    use cxos_drivers::TxMeta;
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX6Dx,
        Personality::ConnectX6Dx,
        Mode::Threaded,
    );
    let mut a = open(&sa);
    let cfg = EthConfig {
        rss_queues: 8,
        vlan_strip: true,
        ..EthConfig::default()
    };
    let mut b = {
        let x =
            Adapter::attach(sb.clone(), common::config()).unwrap_or_else(|f| panic!("{}", f.error));
        let r = Resources::of(&x).unwrap();
        QueueSet::open(x, r, cfg).unwrap_or_else(|f| panic!("{}", f.error))
    };
    let dst = b.mac();
    let meta = TxMeta {
        csum: true,
        vlan: Some(7),
        ..TxMeta::default()
    };
    let run = |a: &mut Port, b: &mut Port, n: u64| {
        let (mut sent, mut got, mut idle) = (0u64, 0u64, 0u32);
        while got < n {
            let mut queued = 0;
            while sent < n && queued < 32 && sent - got < 64 {
                let flow = 1000 + (sent % 256) as u16;
                if a.transmit_with(64, meta, |f| tcp64(f, &dst, flow)).is_err() {
                    break;
                }
                sent += 1;
                queued += 1;
            }
            a.flush();
            a.poll();
            b.poll();
            let before = got;
            while let Some(ok) = b.receive(|_, m| m.csum_ok && m.vlan == Some(7)) {
                assert!(ok);
                got += 1;
            }
            b.flush();
            if got == before && queued == 0 {
                idle += 1;
                assert!(idle < 1_000_000, "stuck at {got}/{n}");
                std::thread::yield_now();
            } else {
                idle = 0;
            }
        }
    };
    run(&mut a, &mut b, 10_000);
    let live = harness::live_bytes();
    let allocs = harness::thread_allocations();
    run(&mut a, &mut b, 200_000);
    assert_eq!(
        harness::thread_allocations() - allocs,
        0,
        "allocations on the packet path"
    );
    let drift = harness::live_bytes() - live;
    assert!(drift.abs() < 64 * 1024, "memory not flat: {drift} bytes");
    // Every queue took its share.
    for i in 0..8 {
        assert!(
            b.rq_at(i).unwrap().stats.packets > 0,
            "queue {i}: {:?}",
            b.rings()
        );
    }
    for s in [&sa, &sb] {
        let v = s.sanitizer_violations();
        assert!(v.is_empty(), "{v:?}");
    }
    let (a, _) = a.close();
    let (b, _) = b.close();
    a.detach();
    b.detach();
}
