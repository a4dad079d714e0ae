//! Object lifetimes: a VNIC, a queue set or an adapter dropped without its
//! teardown call must not hand back memory the device still writes. Each
//! is dropped while frames keep arriving for it; the model's DMA
//! sanitizer (which records every device access to memory the driver no
//! longer owns) records nothing, every DMA byte and page comes back, and
//! the model holds no object of it.

mod common;

use cxos_drivers::NetDevice;
use mlx5::vnic::VnicSpec;
use mlx5::{Adapter, EthConfig, Mac};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

/// An Ethernet frame of `len` bytes to `dst`.
fn frame(dst: Mac, len: usize, seq: u8) -> Vec<u8> {
    let mut f = vec![seq; len];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

fn objects(sim: &SimPlatform) -> usize {
    sim.with_model(|f| f.objects().iter().map(|(_, n)| n).sum())
}

fn assert_clean(sim: &SimPlatform, what: &str) {
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "{what}: sanitizer: {v:?}");
}

#[test]
fn a_dropped_vnic_is_destroyed_before_its_memory_goes() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let sim = SimPlatform::new(Personality::ConnectX5, mode);
        let dma_start = sim.dma_in_use();
        let nic = common::nic(&sim, true);
        let objects_before = objects(&sim);
        let dma_before = sim.dma_in_use();
        let keep = nic.create(VnicSpec::default()).expect("vnic");
        let gone = nic
            .create(VnicSpec {
                queues: 2,
                ..VnicSpec::default()
            })
            .expect("vnic");
        let (gone_mac, keep_mac) = (gone.mac(), keep.mac());
        // Receive buffers are posted and frames land in them.
        for i in 0..8 {
            sim.inject_rx(&frame(gone_mac, 200, i));
        }
        drop(gone);
        // Frames to the dropped VNIC's MAC: the port sees them, nothing
        // delivers them any more (the vport filter or steering drops them).
        let before = sim.port_stats();
        for i in 0..64 {
            sim.inject_rx(&frame(gone_mac, 1000, i));
        }
        let mut keep = keep;
        assert!(
            common::eventually(|| sim.port_stats().rx_frames >= before.rx_frames + 64),
            "{mode:?}: frames did not arrive"
        );
        let after = sim.port_stats();
        assert_eq!(
            after.rx_delivered, before.rx_delivered,
            "{mode:?}: {after:?}"
        );
        assert_eq!(
            after.rx_dropped_no_steering + after.rx_dropped_vport_filter,
            before.rx_dropped_no_steering + before.rx_dropped_vport_filter + 64,
            "{mode:?}: {after:?}"
        );
        assert_clean(&sim, &format!("{mode:?} after drop"));
        assert_eq!(nic.count(), 1, "{mode:?}: the registry forgot it");
        // The other VNIC is untouched.
        sim.inject_rx(&frame(keep_mac, 100, 7));
        assert!(common::eventually(|| {
            keep.poll();
            keep.receive(|b, _| b[20]).is_some()
        }));
        keep.flush();
        drop(keep);
        assert_eq!(objects(&sim), objects_before, "{mode:?}: model objects");
        assert_eq!(sim.dma_in_use(), dma_before, "{mode:?}: DMA");
        let (a, rep) = nic.close().expect("no VNIC left");
        assert_eq!(rep.errors, 0);
        let (_, r) = a.detach();
        assert_eq!(r.errors, 0, "{r:?}");
        assert_eq!(sim.dma_in_use(), dma_start, "{mode:?}: DMA at the end");
        assert_clean(&sim, &format!("{mode:?} at the end"));
    }
}

#[test]
fn a_dropped_queue_set_takes_its_adapter_down_first() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Threaded);
    let dma_start = sim.dma_in_use();
    let mut port = common::open_port(&sim, EthConfig::default());
    let mac = Mac(port.mac());
    for i in 0..16 {
        sim.inject_rx(&frame(mac, 300, i));
    }
    port.transmit(60, |b| b.fill(1)).expect("transmit");
    port.flush();
    // Neither closed nor detached.
    drop(port);
    for i in 0..64 {
        sim.inject_rx(&frame(mac, 1200, i));
    }
    assert!(common::eventually(|| sim.port_stats().rx_frames >= 80));
    assert_clean(&sim, "queue set dropped");
    assert_eq!(sim.pages_held(), 0, "every page taken back");
    assert_eq!(objects(&sim), 0, "no object left in the model");
    assert_eq!(sim.dma_in_use(), dma_start, "every DMA byte back");
}

#[test]
fn a_dropped_adapter_detaches_itself() {
    let sim = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let dma_start = sim.dma_in_use();
    let a = Adapter::attach(sim.clone(), common::config())
        .unwrap_or_else(|f| panic!("attach failed: {}", f.error));
    assert!(sim.pages_held() > 0);
    drop(a);
    assert_eq!(sim.pages_held(), 0);
    assert_eq!(objects(&sim), 0);
    assert_eq!(sim.dma_in_use(), dma_start);
    // The model keeps logging commands into pages it holds: after the
    // drop it holds none, and a new attach works.
    assert_clean(&sim, "adapter dropped");
    let a = Adapter::attach(sim.clone(), common::config())
        .unwrap_or_else(|f| panic!("re-attach failed: {}", f.error));
    let (_, r) = a.detach();
    assert_eq!(r.errors, 0);
    assert_clean(&sim, "re-attached");
}

#[test]
fn a_dropped_nic_with_vnics_still_open_goes_down_in_order() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Threaded);
    let dma_start = sim.dma_in_use();
    let nic = common::nic(&sim, true);
    let vnics: Vec<_> = (0..3)
        .map(|_| nic.create(VnicSpec::default()).expect("vnic"))
        .collect();
    let macs: Vec<Mac> = vnics.iter().map(|v| v.mac()).collect();
    // The last handles go in the worst order: the Nic first, then the
    // VNICs (each destroyed as it goes, the adapter with the last one).
    drop(nic);
    for (i, v) in vnics.into_iter().enumerate() {
        drop(v);
        for m in &macs {
            sim.inject_rx(&frame(*m, 500, i as u8));
        }
    }
    assert!(common::eventually(|| sim.port_stats().rx_frames >= 9));
    assert_clean(&sim, "nic and vnics dropped");
    assert_eq!(sim.pages_held(), 0);
    assert_eq!(objects(&sim), 0);
    assert_eq!(sim.dma_in_use(), dma_start);
}

#[test]
fn an_adapter_whose_device_was_reset_underneath_frees_everything_without_commands() {
    // A guest reboot or a hypervisor's DEVICE_RESET: the device forgot
    // the driver (its command queue address is gone), so detach (or a
    // drop) frees at once instead of waiting out a timeout per command.
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let dma_start = sim.dma_in_use();
    let a = Adapter::attach(sim.clone(), common::config())
        .unwrap_or_else(|f| panic!("attach failed: {}", f.error));
    sim.function_reset();
    let commands = a.stats().commands;
    let t = std::time::Instant::now();
    let (_, r) = a.detach();
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!((r.errors, r.pages_lost, r.reset), (0, 0, false), "{r:?}");
    assert_eq!(sim.dma_in_use(), dma_start);
    assert_eq!(sim.pages_held(), 0);
    assert_clean(&sim, "detached after a reset");
    let _ = commands;
}
