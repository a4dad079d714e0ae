//! The driver is untrusted input (DESIGN decision 6): garbage WQEs,
//! doorbell records, receive WQEs and frames never make the model panic;
//! they end in error CQEs, drops or sanitizer records.
mod common;
mod dp;

use cxos_drivers::{DmaRegion, Platform};
use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

/// xorshift64: deterministic garbage.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn garbage_from_the_driver_never_panics_the_model() {
    for (i, pers) in Personality::ALL.into_iter().enumerate() {
        let p = SimPlatform::new_loopback(pers, Mode::Synchronous);
        let mut n = Net::open(p.clone());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 + i as u64);
        for round in 0..100 {
            // Garbage send ring, sometimes with a plausible control segment.
            for off in (0..n.sq.len()).step_by(8) {
                n.sq.write_be64(off, rng.next());
            }
            if round % 2 == 0 {
                for w in 0..8u32 {
                    let at = w as usize * 64;
                    n.sq.write_be32(at, (w << 8) | 0x0a);
                    n.sq.write_be32(at + 4, (n.sqn << 8) | (rng.next() as u32 & 0x3f));
                }
            }
            // Mostly small producer counters (a full 64 Ki ring walk is slow in debug builds).
            n.sq_dbr.write_be32(4, rng.next() as u32 & 0x1ff);
            let uar = n.up.uar as usize * 4096;
            p.bar0_write_be64(
                uar + 0x800,
                ((rng.next() as u32 as u64) << 8) | (n.sqn as u64) << 8,
            );
            p.bar0_write_be32(uar + 0x804, (n.sqn << 8) | 4);
            // Garbage receive ring and counters, garbage frames.
            for off in (0..n.rq.len()).step_by(8) {
                n.rq.write_be64(off, rng.next());
            }
            n.rq_dbr.write_be32(0, rng.next() as u32 & 0x1ff);
            let len = (rng.next() % 10_100) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if f.len() >= 6 && round % 3 == 0 {
                f[..6].copy_from_slice(&n.mac);
            }
            p.inject_rx(&f);
            // Garbage arm doorbells and stray UAR writes.
            p.bar0_write_be64(uar + 0x20, rng.next());
            p.bar0_write_be32(uar + ((rng.next() as usize % 1024) * 4), rng.next() as u32);
            // Recover queues that went to ERR so the engines keep running.
            if n.query_state(QUERY_SQ, n.sqn) == ERR {
                n.modify_sq(ERR, RST);
                n.modify_sq(RST, RDY);
            }
            if n.query_state(QUERY_RQ, n.rqn) == ERR {
                n.modify_rq(ERR, RST);
                n.modify_rq(RST, RDY);
            }
            while n.tx_cq.poll().is_some() {}
            while n.rx_cq.poll().is_some() {}
        }
        // Still alive and answering commands.
        assert!(n.query_state(QUERY_SQ, n.sqn) <= ERR);
    }
}
