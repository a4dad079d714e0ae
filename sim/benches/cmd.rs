//! Simple command round trip in-process, synchronous mode: a NOP entry
//! handed to the model (owner bit + doorbell) and seen back (owner clear).
//! Prints `bench: sim.cmd_roundtrip: <ns> ns`, and the same round trip
//! with the model on its own thread (`sim.cmd_roundtrip_threaded`), where
//! the cost is mostly the model thread's wake-up.

use std::time::Instant;

use cxos_drivers::{Clock, DmaAlloc, DmaRegion, Mmio};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

fn main() {
    let sync = roundtrip(Mode::Synchronous, 200_000);
    println!("bench: sim.cmd_roundtrip: {sync:.0} ns");
    let threaded = roundtrip(Mode::Threaded, 5_000);
    println!("bench: sim.cmd_roundtrip_threaded: {threaded:.0} ns");
}

/// Best of three runs of `iters` NOPs, in ns per command.
fn roundtrip(mode: Mode, iters: u32) -> f64 {
    let p = SimPlatform::new(Personality::ConnectX5, mode);
    let q = p.dma_alloc(4096).expect("command queue");
    let a = q.device_addr().get();
    p.bar0_write_be32(0x10, (a >> 32) as u32);
    p.bar0_write_be32(0x14, a as u32);
    // Command entry (device.h struct mlx5_cmd_layout): type 7, inlen 0x10,
    // opcode, outlen 0x10, owner.
    let submit = |opcode: u16| {
        q.write_u8(0, 7);
        q.write_be32(4, 0x10);
        q.write_be16(0x10, opcode);
        q.write_be32(0x38, 0x10);
        q.write_u8(0x3f, 1);
        p.bar0_write_be32(0x18, 1);
        while q.read_u8(0x3f) & 1 != 0 {
            p.relax();
        }
    };
    submit(0x104); // ENABLE_HCA
    for _ in 0..1_000 {
        submit(0x80d); // NOP: warm up
    }
    let rounds = 3;
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iters {
            q.write_u8(0x3f, 1);
            p.bar0_write_be32(0x18, 1);
            while q.read_u8(0x3f) & 1 != 0 {
                p.relax();
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / iters as f64;
        best = best.min(ns);
    }
    assert_eq!(q.read_u8(0x20), 0, "NOP status");
    best
}
