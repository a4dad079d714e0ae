//! 100 attach/detach cycles: the platform's DMA counters and the heap
//! (a counting global allocator) come back to their starting values.

mod common;

use mlx5::Adapter;
use mlx5_sim::Personality;
use mlx5_sim::harness::{CountingAlloc, Mode, SimPlatform, live_allocations, live_bytes};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

#[test]
fn hundred_attach_detach_cycles_leave_nothing_behind() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let cfg = common::config();
    let dma_start = sim.dma_in_use();
    let mut p = sim.clone();
    // Warm-up cycles: lazily grown structures of the model settle.
    for _ in 0..10 {
        let a = Adapter::attach(p, cfg).map_err(|f| f.error).unwrap();
        p = a.detach().0;
    }
    let heap_start = live_bytes();
    let allocs_start = live_allocations();
    for i in 0..100 {
        let a = Adapter::attach(p, cfg).unwrap_or_else(|f| panic!("cycle {i}: {}", f.error));
        let (back, r) = a.detach();
        assert_eq!(r.errors, 0, "cycle {i}: {:?}", r.first_error);
        assert_eq!(sim.dma_in_use(), dma_start, "cycle {i}: DMA");
        assert_eq!(sim.pages_held(), 0, "cycle {i}: pages");
        p = back;
    }
    let heap_end = live_bytes();
    let allocs_end = live_allocations();
    eprintln!(
        "heap: {} bytes in {} allocations before, {} in {} after",
        heap_start, allocs_start, heap_end, allocs_end
    );
    // Flat: a leak of one object per cycle would show as +100 allocations.
    // The model's B-tree maps keyed by ever-growing bus addresses may hold
    // a node more or less from one moment to the next: a few allocations
    // and at most a few hundred bytes of jitter, independent of the cycle
    // count.
    assert!(
        (allocs_end - allocs_start).abs() <= 4,
        "live allocations went from {allocs_start} to {allocs_end}"
    );
    assert!(
        (heap_end - heap_start).abs() <= 2048,
        "heap went from {heap_start} to {heap_end} bytes"
    );
    assert!(sim.sanitizer_violations().is_empty());
}
