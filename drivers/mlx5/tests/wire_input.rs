//! The wire is untrusted input: no frame, of any length or content, makes
//! a queue fault. A frame longer than a receive WQE's buffers is a
//! LOCAL_LENGTH error that moves the RQ to ERR on a real adapter (and in
//! the model): what gave 47 RQ error/recovery cycles for 300 frames of 2000
//! bytes at a cx4lx. The driver keeps such frames out of its queues by
//! programming the port MTU (PMTU) no larger than its buffers, so the MAC
//! drops them and counts them (PPCNT a_frame_too_long_errors). Random
//! frames of every length from 0 to beyond the port's largest MTU go in
//! without a fault, and the port keeps receiving afterwards.

mod common;

use cxos_drivers::NetDevice;
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

/// A frame of `len` bytes to `dst`, filled from `seed`.
fn frame(dst: [u8; 6], len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut f: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    if len >= 14 {
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    }
    f
}

fn drain(port: &mut common::Port) -> usize {
    let mut n = 0;
    port.poll();
    while port.receive(|b, _| b.len()).is_some() {
        n += 1;
    }
    port.flush();
    n
}

#[test]
fn frames_longer_than_the_receive_buffers_are_mac_drops_not_queue_faults() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let sim = SimPlatform::new(Personality::ConnectX4Lx, mode);
        let dma = sim.dma_in_use();
        let mut port = common::open_port(&sim, EthConfig::default());
        let mac = port.mac();
        let before = sim.port_stats();
        for i in 0..300 {
            let mut f = frame(mac, 2000, i);
            f[12..14].copy_from_slice(&[0x88, 0xb5]);
            sim.inject_rx(&f);
            drain(&mut port);
        }
        assert!(common::eventually(|| {
            drain(&mut port);
            sim.port_stats().rx_frames >= before.rx_frames + 300
        }));
        let p = sim.port_stats();
        // Dropped by the MAC above the PMTU the driver programmed.
        assert_eq!(
            p.rx_dropped_too_long - before.rx_dropped_too_long,
            300,
            "{mode:?}: {p:?}"
        );
        assert_eq!(p.rx_dropped_wqe_error, 0, "{mode:?}");
        let e = port.eth_stats();
        assert_eq!(
            (e.faults, e.recoveries),
            (0, 0),
            "{mode:?}: 0 RQ error cycles"
        );
        // The largest frame the buffers take still arrives.
        let mut f = frame(mac, 1514, 9);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        sim.inject_rx(&f);
        let mut got = 0;
        assert!(common::eventually(|| {
            got += drain(&mut port);
            got == 1
        }));
        common::close_port(port, &sim, dma);
    }
}

#[test]
fn random_frames_of_every_length_make_no_queue_fault() {
    for p in [
        Personality::ConnectX4Lx,
        Personality::ConnectX5,
        Personality::ConnectX6Dx,
    ] {
        let sim = SimPlatform::new(p, Mode::Synchronous);
        let dma = sim.dma_in_use();
        let mut port = common::open_port(&sim, EthConfig::default());
        let mac = port.mac();
        let mut delivered = 0;
        for i in 0..3000u64 {
            // 0 to 10 000 bytes: runts, every size a port takes, and
            // beyond its largest MTU; to our MAC, broadcast or anything.
            let len = (i * 7919 % 10_001) as usize;
            let dst = match i % 3 {
                0 => mac,
                1 => [0xff; 6],
                _ => [0x02, (i >> 8) as u8, i as u8, 0, 0, 0],
            };
            sim.inject_rx(&frame(dst, len, i));
            delivered += drain(&mut port);
        }
        let e = port.eth_stats();
        assert_eq!((e.faults, e.recoveries), (0, 0), "{p:?}: {e:?}");
        assert!(delivered > 0, "{p:?}");
        assert_eq!(sim.port_stats().rx_dropped_wqe_error, 0, "{p:?}");
        common::close_port(port, &sim, dma);
    }
}
