//! Runtime MTU change against the model (issue 16): a cyclic-RQ part
//! (ConnectX-4 Lx) and a striding-RQ part (ConnectX-6 Dx) change MTU with
//! frames in flight, then exchange jumbo frames both ways; the queues,
//! TIR and steering rule are the same objects after the change; a frame
//! longer than the port MTU is dropped (and counted) by the MAC with no
//! queue error; every buffer comes back at close, sanitizer clean.

mod common;

use common::{Port, close_port, fill, open_port};
use cxos_drivers::NetDevice;
use mlx5::EthConfig;
use mlx5::rq::RqKind;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

/// Poll both sides until the model has nothing more to deliver;
/// frames received are dropped.
fn settle(sim: &SimPlatform, p: &mut Port) {
    for _ in 0..200 {
        p.poll();
        while p.receive(|_, _| ()).is_some() {}
        p.flush();
        let _ = sim;
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn cfg() -> EthConfig {
    EthConfig {
        log_rq: 6,
        log_sq: 6,
        ..EthConfig::default()
    }
}

#[test]
fn mtu_changes_under_traffic_on_cyclic_and_striding_parts() {
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX4Lx,
        Personality::ConnectX6Dx,
        Mode::Threaded,
    );
    let (ba, bb) = (sa.dma_in_use(), sb.dma_in_use());
    let mut a = open_port(&sa, cfg());
    let mut b = open_port(&sb, cfg());
    assert_eq!(a.rq().unwrap().kind(), RqKind::Cyclic);
    assert!(matches!(b.rq().unwrap().kind(), RqKind::Striding { .. }));
    for p in [&mut a, &mut b] {
        p.control_mut().set_port_mtu(1500).unwrap();
    }
    let before = (a.rq().unwrap().rqn, a.sq().unwrap().sqn, a.rings());
    let lens = [60usize, 1514, 700, 1514];
    common::exchange(16, &mut a, &mut b, &lens.repeat(8));
    common::exchange(16, &mut b, &mut a, &lens.repeat(8));

    // Frames in flight both ways while both sides change MTU.
    let (ma, mb) = (a.mac(), b.mac());
    for i in 0..40 {
        let _ = a.transmit(1514, |f| fill(f, mb, i));
        let _ = b.transmit(1514, |f| fill(f, ma, i));
    }
    a.flush();
    b.flush();
    a.set_mtu(9000, 9000).unwrap();
    b.set_mtu(9000, 9000).unwrap();
    assert_eq!(NetDevice::mtu(&a), 9000);
    assert_eq!(a.max_frame(), 9018);
    assert_eq!(a.rq().unwrap().buf_size(), 9024, "cyclic buffers resized");
    settle(&sa, &mut a);
    settle(&sb, &mut b);

    // Still the port MTU of 1500 on a: b's jumbo frame is dropped by a's
    // MAC and counted; no queue error on the cyclic RQ.
    let drops = sa.port_stats().rx_dropped_too_long;
    b.transmit(9018, |f| fill(f, ma, 0)).unwrap();
    b.flush();
    assert!(common::eventually(|| {
        sa.port_stats().rx_dropped_too_long == drops + 1
    }));
    settle(&sa, &mut a);
    assert_eq!(a.rx_stats().errors, 0);
    assert!(a.last_fault().is_none(), "{:?}", a.last_fault());
    for p in [&mut a, &mut b] {
        p.control_mut().set_port_mtu(9000).unwrap();
    }

    // Jumbo frames both ways, every byte checked.
    let jumbo = [9018usize, 60, 4000, 9000, 1514, 8191];
    common::exchange(16, &mut a, &mut b, &jumbo.repeat(20));
    common::exchange(16, &mut b, &mut a, &jumbo.repeat(20));
    // The same queues and the same steering after the change.
    let after = (a.rq().unwrap().rqn, a.sq().unwrap().sqn, a.rings());
    assert_eq!((before.0, before.1), (after.0, after.1));
    assert_eq!(
        format!("{:?}", before.2.steering),
        format!("{:?}", after.2.steering)
    );

    // And back down: frames above the new MTU are refused on transmit.
    for p in [&mut a, &mut b] {
        p.control_mut().set_port_mtu(1500).unwrap();
        p.set_mtu(1500, 1500).unwrap();
    }
    assert_eq!(a.rq().unwrap().buf_size(), 1536);
    assert!(a.transmit(1600, |_| ()).is_err());
    common::exchange(16, &mut a, &mut b, &lens.repeat(8));
    common::exchange(16, &mut b, &mut a, &lens.repeat(8));
    for p in [&a, &b] {
        assert_eq!(p.rx_stats().errors, 0);
        assert!(p.last_fault().is_none());
    }
    assert_eq!(sb.port_stats().rx_dropped_wqe_error, 0);
    assert_eq!(sa.port_stats().rx_dropped_wqe_error, 0);
    close_port(a, &sa, ba);
    close_port(b, &sb, bb);
}

#[test]
fn out_of_range_mtus_are_refused_and_change_nothing() {
    let sim = SimPlatform::new(Personality::ConnectX4, Mode::Synchronous);
    let before = sim.dma_in_use();
    let mut p = open_port(&sim, cfg());
    let dma = sim.dma_in_use();
    for (m, rx) in [(67, 67), (20_000, 20_000), (9000, 1500)] {
        assert!(p.set_mtu(m, rx).is_err(), "{m}/{rx}");
    }
    assert_eq!(p.config().mtu, 1500);
    assert_eq!(sim.dma_in_use(), dma);
    // The port's limit comes from PMTU's max.
    let max = usize::from(p.control().port().max_mtu) - mlx5::module::PORT_MTU_OVERHEAD;
    assert!(max >= 9000);
    assert!(p.control_mut().set_port_mtu(max + 1).is_err());
    p.set_mtu(max, max).unwrap();
    p.control_mut().set_port_mtu(max).unwrap();
    close_port(p, &sim, before);
}
