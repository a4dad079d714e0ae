//! A thousand VNIC create/delete cycles on one open port: the heap (a
//! counting global allocator), the platform's DMA and the model's object
//! counts come back to where they were, and every cycle's VNIC works
//! (a frame to its MAC reaches it) before it goes.

mod common;

use cxos_drivers::NetDevice;
use mlx5::Mac;
use mlx5::vnic::VnicSpec;
use mlx5_sim::Personality;
use mlx5_sim::harness::{CountingAlloc, Mode, SimPlatform, live_allocations, live_bytes};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

const CYCLES: usize = 1000;

fn frame(dst: Mac, seq: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..16].copy_from_slice(&seq.to_be_bytes());
    f
}

fn objects(sim: &SimPlatform) -> Vec<(String, usize)> {
    sim.with_model(|f| {
        f.objects()
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect()
    })
}

#[test]
fn a_thousand_vnic_create_delete_cycles_leave_heap_dma_and_model_flat() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let dma_start = sim.dma_in_use();
    let nic = common::nic(&sim, true);
    let cycle = |i: usize| {
        let spec = VnicSpec {
            // Alternate tagged and untagged, one and two queues: both the
            // flow-table paths and the RSS path are exercised.
            vlan: (i % 2 == 1).then_some(100 + (i % 7) as u16),
            queues: 1 + (i % 2) as u8,
            ..VnicSpec::default()
        };
        let mut v = nic
            .create(spec)
            .unwrap_or_else(|e| panic!("cycle {i}: create: {e}"));
        let mut f = frame(v.mac(), i as u16);
        if let Some(id) = v.vlan() {
            f.splice(12..12, [0x81, 0x00, (id >> 8) as u8, id as u8]);
        }
        sim.inject_rx(&f);
        v.poll();
        assert!(v.receive(|_, _| ()).is_some(), "cycle {i}: frame lost");
        let rep = v.destroy();
        assert_eq!(rep.errors, 0, "cycle {i}: {rep:?}");
    };
    // Warm-up: lazily grown structures (the model's maps, the driver's
    // flow-table bookkeeping) reach their working size.
    for i in 0..10 {
        cycle(i);
    }
    let dma0 = sim.dma_in_use();
    let objects0 = objects(&sim);
    let heap0 = live_bytes();
    let allocs0 = live_allocations();
    for i in 10..10 + CYCLES {
        cycle(i);
        if i % 100 == 0 {
            assert_eq!(sim.dma_in_use(), dma0, "cycle {i}: DMA");
            assert_eq!(objects(&sim), objects0, "cycle {i}: model objects");
        }
    }
    let (heap1, allocs1) = (live_bytes(), live_allocations());
    eprintln!("heap: {heap0} bytes in {allocs0} allocations before, {heap1} in {allocs1} after");
    assert_eq!(sim.dma_in_use(), dma0, "DMA after {CYCLES} cycles");
    assert_eq!(
        objects(&sim),
        objects0,
        "model objects after {CYCLES} cycles"
    );
    // Flat: one leaked allocation per cycle would show as +1000. The
    // model's B-tree maps keyed by ever-growing object numbers may hold a
    // node more or less from one moment to the next: a few allocations
    // of jitter, independent of the cycle count.
    assert!(
        (allocs1 - allocs0).abs() <= 8,
        "live allocations went from {allocs0} to {allocs1}"
    );
    assert!(
        (heap1 - heap0).abs() <= 4096,
        "heap went from {heap0} to {heap1} bytes"
    );
    common::close_nic(nic, &sim, dma_start);
    assert_eq!(sim.pages_held(), 0);
}
