//! Fault injection.
mod common;

use common::*;
use cxos_drivers::{Clock, DmaAlloc, Mmio};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Fault, Mode, SimPlatform};

#[test]
fn command_never_completes_once() {
    for mode in MODES {
        let mut r = Raw::new(Personality::ConnectX5, mode);
        r.simple(ENABLE_HCA, 0);
        r.p.inject(Fault::CommandNoCompletion { opcode: NOP });
        r.submit(&Msg::new(NOP, 0, 0x10).0, 0x10, Tweak::default());
        // Wait until the model has consumed the doorbell, then look.
        assert!(eventually(&r.p, || r.p.with_model(|d| !d.has_work())));
        assert!(!r.done(), "the slot stays with hardware");
        // The fault is one-shot and other slots keep working.
        r.slot = 1;
        r.simple(NOP, 0);
        r.simple(NOP, 0);
        // Ringing the stuck slot again does nothing.
        r.p.bar0_write_be32(0x018, 1);
        r.p.commands_executed();
        assert!(!r.slot_done(0));
    }
}

#[test]
fn command_returns_injected_status() {
    let mut r = Raw::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let up = r.bring_up();
    r.p.inject(Fault::CommandStatus {
        opcode: ALLOC_PD,
        status: 0x0f,
        syndrome: 0x1234_5678,
    });
    assert_eq!(
        r.fails(&Msg::new(ALLOC_PD, 0, 0x10), 0x10),
        (0x0f, 0x1234_5678)
    );
    r.simple(ALLOC_PD, 0);
    // clear_faults drops armed ones.
    r.p.inject(Fault::CommandStatus {
        opcode: NOP,
        status: 1,
        syndrome: 1,
    });
    r.p.clear_faults();
    r.simple(NOP, 0);
    drop(up);
}

#[test]
fn health_syndrome_and_stopped_counter() {
    let p = SimPlatform::new(Personality::ConnectX4, Mode::Synchronous);
    p.inject(Fault::HealthSyndrome(0x07));
    // health_buffer.synd is byte 0x23d: bits 23:16 of the dword at 0x23c.
    assert_eq!((p.bar0_read_be32(0x23c) >> 16) & 0xff, 0x07);
    let a = p.bar0_read_be32(0x1010);
    p.delay_us(2_000);
    assert_eq!(p.bar0_read_be32(0x1010), a, "counter stopped");
    p.clear_faults();
    assert_eq!((p.bar0_read_be32(0x23c) >> 16) & 0xff, 0);
    let b = p.bar0_read_be32(0x1010);
    p.delay_us(2_000);
    assert_ne!(p.bar0_read_be32(0x1010), b);
    p.inject(Fault::HealthCounterStops);
    let c = p.bar0_read_be32(0x1010);
    p.delay_us(2_000);
    assert_eq!(p.bar0_read_be32(0x1010), c);
    assert_eq!((p.bar0_read_be32(0x23c) >> 16) & 0xff, 0, "no syndrome");
}

#[test]
fn initializing_stuck() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    p.inject(Fault::InitializingStuck);
    let q = p.dma_alloc(4096).unwrap();
    let a = cxos_drivers::DmaRegion::device_addr(&q).get();
    p.bar0_write_be32(0x10, (a >> 32) as u32);
    p.bar0_write_be32(0x14, a as u32);
    assert_eq!(p.bar0_read_be32(0x1fc) >> 31, 1);
    // Commands are not taken while initializing.
    cxos_drivers::DmaRegion::write_u8(&q, 0, 7);
    cxos_drivers::DmaRegion::write_u8(&q, 0x3f, 1);
    p.bar0_write_be32(0x18, 1);
    assert_eq!(p.commands_executed(), 0);
    // Long past the firmware boot time, the bit stays set.
    p.delay_us(20_000);
    assert_eq!(p.bar0_read_be32(0x1fc) >> 31, 1);
    p.clear_faults();
    assert_eq!(p.bar0_read_be32(0x1fc) >> 31, 0);
}
