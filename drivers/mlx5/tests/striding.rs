//! Striding (multi-packet) receive queues against the model: chosen at
//! run time from the part's capabilities, frames of mixed sizes packed
//! into strides with filler CQEs at WQE ends, every byte intact and in
//! order, WQEs re-posted, jumbo frames, and a refused open where the part
//! has no striding RQ.

mod common;

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

#[test]
fn mixed_frame_sizes_pack_into_strides_with_fillers() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let (sa, sb) = SimPlatform::pair(Personality::ConnectX4Lx, Personality::ConnectX6Dx, mode);
        let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
        let mut a = open(&sa, EthConfig::default());
        let mut b = open(&sb, EthConfig::default());
        let RqKind::Striding {
            log_strides,
            log_stride,
        } = b.rq().unwrap().kind()
        else {
            panic!("striding expected");
        };
        let wqes = b.rq().unwrap().entries();
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

#[test]
fn jumbo_frames_take_many_strides() {
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX5,
        Personality::ConnectX6,
        Mode::Synchronous,
    );
    let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
    let cfg = EthConfig {
        mtu: 9000,
        log_rq: 6,
        log_sq: 6,
        ..EthConfig::default()
    };
    let mut a = open(&sa, cfg);
    let mut b = open(&sb, cfg);
    assert!(matches!(b.rq().unwrap().kind(), RqKind::Striding { .. }));
    let lens: Vec<usize> = [9018usize, 60, 4000, 9000, 1514, 8191]
        .into_iter()
        .cycle()
        .take(300)
        .collect();
    common::exchange(64, &mut a, &mut b, &lens);
    assert_eq!(b.rx_stats().packets, 300);
    close(a, &sa, ba);
    close(b, &sb, bb);
}
