//! The threaded model under load: several slots in flight, events raised
//! from another thread at the same time, every completion accounted for.
mod common;

use common::*;
use cxos_drivers::{Mmio, Msix};
use mlx5_sim::Personality;
use mlx5_sim::harness::Mode;

#[test]
fn slots_and_events_race_without_loss() {
    let mut r = Raw::new(Personality::ConnectX6Dx, Mode::Threaded);
    let up = r.bring_up();
    r.p.msix_enable(1, 1).unwrap();
    let mut eq = EqReader { log_size: 6, ci: 0 };
    let _ = eq.drain(&up.eq_buf);
    eq.doorbell(&r.p, up.uar, up.eq, false);
    let p2 = r.p.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // At most 40 port events in all: with 4 completions per round the
    // 64-entry EQ can never overrun, however the threads interleave.
    let toggler = std::thread::spawn(move || {
        let mut n = 0u32;
        while n < 40 && !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            p2.set_link(n % 2 == 1);
            n += 1;
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        n
    });
    let mut cmd_bits = 0u64;
    let mut port_events = 0u64;
    for round in 0..300u32 {
        for slot in 1..5 {
            r.stage_nop(slot);
        }
        r.p.bar0_write_be32(0x018, 0b11110);
        assert!(
            eventually(&r.p, || (1..5).all(|s| r.slot_done(s))),
            "round {round}"
        );
        for s in 1..5 {
            assert_eq!(r.slot_status(s), (0, 0));
        }
        // Drain whatever arrived, keep the EQ from overrunning.
        while let Some(e) = eq.poll(&up.eq_buf) {
            match e.ty {
                0x0a => cmd_bits += be32(&e.data, 0).count_ones() as u64,
                0x09 => port_events += 1,
                t => panic!("unexpected event {t:#x}"),
            }
        }
        eq.doorbell(&r.p, up.uar, up.eq, false);
        // Wait for the last completion EQE of this round before the next.
        assert!(eventually(&r.p, || {
            while let Some(e) = eq.poll(&up.eq_buf) {
                match e.ty {
                    0x0a => cmd_bits += be32(&e.data, 0).count_ones() as u64,
                    _ => port_events += 1,
                }
            }
            eq.doorbell(&r.p, up.uar, up.eq, false);
            cmd_bits == 4 * (round as u64 + 1)
        }));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let toggles = toggler.join().unwrap();
    assert_eq!(cmd_bits, 1200, "every command completion reported once");
    assert!(port_events <= toggles as u64);
    let q = r.with_eq_status(up.eq);
    assert_eq!(q, 0, "no overrun");
    assert!(r.p.sanitizer_violations().is_empty());
}
