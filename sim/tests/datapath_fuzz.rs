//! The driver is untrusted input (DESIGN decision 6): garbage WQEs,
//! doorbell records, receive WQEs and frames never make the model panic;
//! they end in error CQEs, drops or sanitizer records.
mod common;
mod dp;

use cxos_drivers::{DmaRegion, Mmio};
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
                    // SEND or LSO (garbage MSS, flags, inline sizes).
                    let opcode = if w % 2 == 0 { 0x0a } else { 0x0e };
                    n.sq.write_be32(at, (w << 8) | opcode);
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
            // IP-looking garbage (IPv4 / IPv6, TCP / UDP, maybe tagged)
            // reaches the header parser, checksums and RSS.
            if f.len() >= 60 && round % 3 != 2 {
                let tag = if round % 5 == 0 { 4 } else { 0 };
                if tag != 0 {
                    f[12..14].copy_from_slice(&[0x81, 0x00]);
                }
                let l3 = 14 + tag;
                if round % 2 == 0 {
                    f[l3 - 2..l3].copy_from_slice(&[0x08, 0x00]);
                    f[l3] = 0x45;
                    f[l3 + 9] = if round % 4 == 0 { 6 } else { 17 };
                } else {
                    f[l3 - 2..l3].copy_from_slice(&[0x86, 0xdd]);
                    f[l3] = 0x60;
                    f[l3 + 6] = if round % 4 == 1 { 6 } else { 17 };
                }
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

/// Random steering, RSS and queue commands against a live port, mixed with
/// frames: the model answers every one with a status and keeps delivering.
#[test]
fn random_steering_commands_never_panic_the_model() {
    const OPS: [u16; 22] = [
        CREATE_FLOW_TABLE,
        DESTROY_FLOW_TABLE,
        MODIFY_FLOW_TABLE,
        CREATE_FLOW_GROUP,
        DESTROY_FLOW_GROUP,
        SET_FLOW_TABLE_ENTRY,
        DELETE_FLOW_TABLE_ENTRY,
        QUERY_FLOW_TABLE_ENTRY,
        SET_FLOW_TABLE_ROOT,
        ALLOC_FLOW_COUNTER,
        DEALLOC_FLOW_COUNTER,
        QUERY_FLOW_COUNTER,
        CREATE_RQT,
        MODIFY_RQT,
        DESTROY_RQT,
        QUERY_RQT,
        CREATE_TIR,
        DESTROY_TIR,
        CREATE_RQ,
        MODIFY_RQ,
        DESTROY_RQ,
        QUERY_RQ,
    ];
    for (i, pers) in [Personality::ConnectX4Lx, Personality::ConnectX6]
        .into_iter()
        .enumerate()
    {
        let p = SimPlatform::new(pers, Mode::Synchronous);
        let mut n = Net::open(p.clone());
        let mut rng = Rng(0x1234_5678_9abc_def1 + i as u64);
        for round in 0..1500 {
            let op = OPS[(rng.next() % OPS.len() as u64) as usize];
            let len = 0x40 + (rng.next() % 0x500) as usize;
            let op_mod = (rng.next() % 3) as u16;
            let mut m = common::Msg::new(op, op_mod, len);
            for b in m.0[8..].iter_mut() {
                if rng.next().is_multiple_of(16) {
                    *b = rng.next() as u8;
                }
            }
            // Plausible handles where the layouts keep them.
            let small = (rng.next() % 8) as u32;
            match rng.next() % 4 {
                0 => {
                    m.be32(0x14, small);
                }
                1 => {
                    m.be32(
                        0x08,
                        [0x2000, 0x4000, 0x5000, 1][small as usize % 4] + small % 2,
                    );
                }
                2 => {
                    m.be32(0x340.min(len - 4), (2 << 24) | 0x4000);
                }
                _ => {}
            }
            let outlen = 0x10 + (rng.next() % 0x400) as usize;
            let rep = n.raw.exec(&m, outlen);
            assert_eq!(rep.delivery, 0, "opcode {op:#x} delivered");
            if round % 4 == 0 {
                let mut f = frame(n.mac, [2; 6], 60 + (rng.next() % 200) as usize, round as u8);
                f[12..14].copy_from_slice(&[0x08, 0x00]);
                f[14] = 0x45;
                f[23] = 17;
                p.inject_rx(&f);
                while n.rx_cq.poll().is_some() {
                    n.repost_rx();
                }
            }
        }
        let nop = n.raw.exec(&common::Msg::new(common::NOP, 0, 0x10), 0x10);
        assert_eq!((nop.delivery, nop.status()), (0, 0), "{pers:?}");
    }
}

/// Garbage IP-looking frames through every transmit offload (checksums,
/// VLAN insert, LSO with random MSS and inline sizes) on a looped-back
/// port, so receive checksums, strip and steering see them too: error
/// CQEs or frames, never a panic (overflow checks are on in tests).
#[test]
fn garbage_frames_through_the_offloads_never_panic() {
    for (i, pers) in [Personality::ConnectX4, Personality::ConnectX5]
        .into_iter()
        .enumerate()
    {
        let p = SimPlatform::new_loopback(pers, Mode::Synchronous);
        let mut n = Net::open(p.clone());
        let mut rng = Rng(0xdead_beef_0000_0001 + i as u64);
        for round in 0..1500u32 {
            let lso = round % 3 == 0;
            let len = 14 + (rng.next() % if lso { 20_000 } else { 9_000 }) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            f[..6].copy_from_slice(&n.mac);
            if len >= 80 {
                let tag = if round % 4 == 0 { 4 } else { 0 };
                if tag != 0 {
                    f[12..14].copy_from_slice(&[0x81, 0x00]);
                }
                let l3 = 14 + tag;
                match round % 5 {
                    0..=2 => {
                        f[l3 - 2..l3].copy_from_slice(&[0x08, 0x00]);
                        f[l3] = 0x40 | (5 + (rng.next() % 11) as u8);
                        f[l3 + 9] = if round % 2 == 0 { 6 } else { 17 };
                    }
                    _ => {
                        f[l3 - 2..l3].copy_from_slice(&[0x86, 0xdd]);
                        f[l3] = 0x60;
                        f[l3 + 6] = if round % 2 == 0 { 6 } else { 17 };
                    }
                }
            }
            let o = TxOpts {
                opcode: if lso { 0x0e } else { 0 },
                cs_flags: (rng.next() as u8) & 0xc0,
                mss: if lso { rng.next() as u16 % 3000 } else { 0 },
                inline: Some((rng.next() % 120) as usize),
                insert: (round % 7 == 0)
                    .then(|| (0x8000 | (rng.next() as u16 & 1), rng.next() as u16)),
            };
            let index = n.post_wqe(&f, o);
            n.ring_wqe(index);
            while n.tx_cq.poll().is_some() {}
            while n.rx_cq.poll().is_some() {
                n.repost_rx();
            }
            let _ = p.take_tx();
            if n.query_state(QUERY_SQ, n.sqn) == ERR {
                n.modify_sq(ERR, RST);
                n.modify_sq(RST, RDY);
            }
        }
        let s = p.port_stats();
        assert!(s.tx_frames > 0 && s.rx_delivered > 0, "{pers:?} {s:?}");
        assert!(s.tx_lso_sends > 0, "{pers:?} {s:?}");
        assert!(p.sanitizer_violations().is_empty(), "{pers:?}");
    }
}
