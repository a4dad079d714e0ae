//! The command path allocates nothing per command once warm.
mod common;

use common::*;
use cxos_drivers::{DmaRegion, Mmio};
use mlx5_sim::Personality;
use mlx5_sim::harness::{self, CountingAlloc, Mode};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

#[test]
fn nop_and_eqe_path_do_not_allocate() {
    let mut r = Raw::new(Personality::ConnectX5, Mode::Synchronous);
    let up = r.bring_up();
    let mut eq = EqReader { log_size: 6, ci: 0 };
    let _ = eq.drain(&up.eq_buf);
    r.stage_nop(3);
    let ring = |r: &Raw| {
        r.cmdq().write_u8(3 * 64 + 0x3f, 1);
        r.p.bar0_write_be32(0x18, 1 << 3);
        assert!(r.slot_done(3));
    };
    ring(&r);
    let _ = eq.poll(&up.eq_buf);
    let before = harness::thread_allocations();
    let live = harness::live_bytes();
    for _ in 0..1000 {
        ring(&r);
        // Consume the completion EQE and tell the model (no overrun).
        assert!(eq.poll(&up.eq_buf).is_some());
        eq.doorbell(&r.p, up.uar, up.eq, false);
    }
    assert_eq!(
        harness::thread_allocations() - before,
        0,
        "allocations on the command path"
    );
    assert_eq!(harness::live_bytes(), live);
    assert_eq!(r.slot_status(3), (0, 0));
    // The counter does count: a Vec allocates once.
    let v: Vec<u8> = Vec::with_capacity(10);
    assert_eq!(harness::thread_allocations() - before, 1);
    assert!(harness::allocations_total() >= 1);
    assert!(harness::live_allocations() > 0);
    drop(v);
    drop(up);
}
