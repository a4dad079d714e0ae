//! Striding (multi-packet) receive queues against the model: chosen at
//! run time from the part's capabilities, frames of mixed sizes packed
//! into strides with filler CQEs at WQE ends, every byte intact and in
//! order, WQEs re-posted, jumbo frames, and a refused open where the part
//! has no striding RQ.

mod common;

use common::pair::Pair;
use common::{Port, close_port as close};
use mlx5::Adapter;
use mlx5::rq::RqKind;
use mlx5::{EthConfig, QueueSet, Resources, RqChoice};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

fn attach(sim: &SimPlatform) -> (Adapter<SimPlatform>, Resources) {
    let a = match Adapter::attach(sim.clone(), common::config()) {
        Ok(a) => a,
        Err(f) => panic!("attach failed: {}", f.error),
    };
    let r = Resources::of(&a).expect("resources");
    (a, r)
}

fn open(sim: &SimPlatform, cfg: EthConfig) -> Port {
    let (mut a, r) = attach(sim);
    common::port_mtu_for(&mut a, &cfg);
    match QueueSet::open(a, r, cfg) {
        Ok(p) => p,
        Err(f) => panic!("open failed: {}", f.error),
    }
}

#[test]
fn the_kind_is_chosen_from_the_capabilities() {
    for p in Personality::ALL {
        let sim = SimPlatform::new(p, Mode::Synchronous);
        let before = sim.dma_in_use();
        let port = open(&sim, EthConfig::default());
        let striding = matches!(port.rq().unwrap().kind(), RqKind::Striding { .. });
        assert_eq!(striding, port.resources().caps.striding_rq, "{p:?}");
        assert_eq!(
            striding,
            !matches!(p, Personality::ConnectX4 | Personality::ConnectX4Lx),
            "{p:?}"
        );
        close(port, &sim, before);
        // Asking for striding where there is none: refused, undone.
        if !striding {
            let (a, r) = attach(&sim);
            let cfg = EthConfig {
                rq_kind: RqChoice::Striding,
                ..EthConfig::default()
            };
            let f = QueueSet::open(a, r, cfg).unwrap_err();
            let (_, rep) = f.control.detach();
            assert_eq!(rep.errors, 0);
            assert_eq!(sim.dma_in_use(), before);
        }
    }
}

/// A striding RQ's log2 strides per WQE, log2 stride size and WQEs.
fn striding(port: &Port) -> (u8, u8, usize) {
    let rq = port.rq().unwrap();
    let RqKind::Striding {
        log_strides,
        log_stride,
    } = rq.kind()
    else {
        panic!("striding expected");
    };
    (log_strides, log_stride, rq.entries())
}

#[test]
fn mixed_frame_sizes_pack_into_strides_with_fillers() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let (sa, sb) = SimPlatform::pair(Personality::ConnectX4Lx, Personality::ConnectX6Dx, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let mut a = open(&sa, EthConfig::default());
        let mut b = open(&sb, EthConfig::default());
        let (log_strides, log_stride, wqes) = striding(&b);
        // Sizes cycling through small, odd, stride-edge and full frames:
        // enough to wrap every WQE several times.
        let pattern = [
            60usize, 1514, 64, 65, 127, 128, 700, 1500, 61, 1024, 1513, 200,
        ];
        let stride = 1usize << log_stride;
        let per_wqe: usize = (1usize << log_strides) * stride;
        let total: usize = pattern.iter().map(|l| l.div_ceil(stride) * stride).sum();
        let rounds = (3 * wqes * per_wqe).div_ceil(total);
        let lens: Vec<usize> = pattern
            .iter()
            .copied()
            .cycle()
            .take(rounds * pattern.len())
            .collect();
        common::exchange(64, &mut a, &mut b, &lens);
        let s = b.rx_stats();
        assert_eq!(s.packets, lens.len() as u64);
        assert!(
            s.fillers > 0,
            "{mode:?}: a frame that did not fit ends a WQE with a filler"
        );
        assert!(
            s.wqes_done as usize >= 3 * wqes - 1,
            "{mode:?}: {} WQEs used",
            s.wqes_done
        );
        assert_eq!(s.errors, 0);
        assert_eq!(sb.port_stats().rx_dropped_no_wqe, 0);
        close(a, &sa, ba);
        close(b, &sb, bb);
    }
}

/// Two models on one wire, synchronous, a port open on each with `cfg`.
fn wired(pa: Personality, pb: Personality, cfg: EthConfig) -> Pair {
    Pair::open_config((pa, pb), cfg, common::open_port)
}

#[test]
fn jumbo_frames_take_many_strides() {
    let cfg = EthConfig {
        mtu: 9000,
        log_rq: 6,
        log_sq: 6,
        ..EthConfig::default()
    };
    let mut w = wired(Personality::ConnectX5, Personality::ConnectX6, cfg);
    let (a, b) = (&mut w.a, &mut w.b);
    assert!(matches!(b.rq().unwrap().kind(), RqKind::Striding { .. }));
    let lens: Vec<usize> = [9018usize, 60, 4000, 9000, 1514, 8191]
        .into_iter()
        .cycle()
        .take(300)
        .collect();
    common::exchange(64, a, b, &lens);
    assert_eq!(b.rx_stats().packets, 300);
    w.close();
}

/// `a` sends `n` frames of `len` bytes numbered from `first` while `b`
/// does not poll (the model places each in `b`'s RQ as `a` rings): what
/// a TCP window sent at once meets.
fn flood(a: &mut Port, b: &Port, first: u32, n: usize, len: usize) {
    use cxos_drivers::NetDevice;
    let dst = b.mac();
    let mut sent = 0;
    let mut idle = 0u32;
    while sent < n {
        while sent < n
            && a.transmit(len, |f| common::fill(f, dst, first + sent as u32))
                .is_ok()
        {
            sent += 1;
        }
        a.flush();
        a.poll();
        idle += 1;
        assert!(idle < 100_000, "a stuck at {sent}/{n}");
    }
    a.poll();
}

/// `b` takes every frame waiting, through the per-frame path and without
/// a flush, checking their order from `first`.
fn take_all(b: &mut Port, first: u32, n: usize) {
    for k in 0..n {
        b.receive(|f, _| {
            let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
            assert_eq!(seq, first + k as u32, "in order");
        })
        .unwrap_or_else(|| panic!("frame {k} of {n} missing: {:?}", b.rings()));
    }
}

#[test]
fn a_ring_holds_its_frames_of_the_mtu_while_the_driver_is_away() {
    for part in [
        Personality::ConnectX5,
        Personality::ConnectX6,
        Personality::ConnectX6Dx,
    ] {
        for log_rq in [6u8, 8, 9] {
            let cfg = EthConfig {
                log_rq,
                ..EthConfig::default()
            };
            let mut w = wired(Personality::ConnectX5, part, cfg);
            let (a, b) = (&mut w.a, &mut w.b);
            assert!(matches!(b.rq().unwrap().kind(), RqKind::Striding { .. }));
            // 2^log_rq frames of the MTU, as a cyclic ring of as many
            // buffers takes them: none dropped for want of a WQE.
            let n = 1usize << log_rq;
            flood(a, b, 0, n, 1514);
            assert_eq!(
                w.sb.port_stats().rx_dropped_no_wqe,
                0,
                "{part:?} log_rq {log_rq}: {:?}",
                b.rings()
            );
            take_all(b, 0, n);
            b.flush();
            w.close();
        }
    }
}

#[test]
fn each_striding_wqe_is_posted_again_once_used() {
    let cfg = EthConfig {
        log_rq: 8,
        ..EthConfig::default()
    };
    let mut w = wired(Personality::ConnectX5, Personality::ConnectX6Dx, cfg);
    let (a, b) = (&mut w.a, &mut w.b);
    let (log_strides, log_stride, wqes) = striding(b);
    let per_wqe = (1usize << log_strides) / 1514usize.div_ceil(1 << log_stride);
    // Round one ends early in WQE `wqes - 1`: `wqes - 2` WQEs used up
    // (their fillers written when the next frame did not fit), taken by
    // the per-frame path with no flush in between, which must post each
    // again as it is used up (not a quarter ring at a time).
    let first = (wqes - 2) * per_wqe + 1;
    flood(a, b, 0, first, 1514);
    take_all(b, 0, first);
    // Round two: what the ring has room for with every used WQE posted
    // again (the rest of the current WQE and `wqes - 1` whole ones), a
    // frame less.
    let second = (wqes - 1) * per_wqe + (per_wqe - 1) - 1;
    flood(a, b, first as u32, second, 1514);
    assert_eq!(w.sb.port_stats().rx_dropped_no_wqe, 0, "{:?}", b.rings());
    take_all(b, first as u32, second);
    b.flush();
    w.close();
}
