//! Random bytes as command entries, mailboxes, inputs and doorbells: the
//! model must answer every one (delivery or command status) and never panic,
//! and still execute a good command afterwards.
mod common;

use common::*;
use cxos_drivers::{DmaRegion, Mmio};
use mlx5_sim::Personality;
use mlx5_sim::harness::Mode;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const OPCODES: [u16; 30] = [
    0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x107, 0x108, 0x109, 0x10a, 0x10b, 0x10d, 0x203,
    0x301, 0x302, 0x303, 0x750, 0x754, 0x755, 0x771, 0x772, 0x773, 0x800, 0x801, 0x802, 0x803,
    0x805, 0x80d, 0x816, 0x817,
];

#[test]
fn random_commands_never_panic() {
    for (seed, pers) in [
        (1u64, Personality::ConnectX4),
        (7, Personality::ConnectX6Dx),
    ] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let mut r = Raw::new(pers, Mode::Synchronous);
        let up = r.bring_up();
        for _ in 0..3000 {
            let len = 8 + rng.below(0x1200) as usize;
            let mut input = rng.bytes(len);
            // Mostly real opcodes with small op_mods, to reach the handlers.
            if rng.below(4) != 0 {
                let op = OPCODES[rng.below(OPCODES.len() as u64) as usize];
                input[0..2].copy_from_slice(&op.to_be_bytes());
                input[2..6].fill(0);
                input[6] = 0;
                input[7] = rng.below(16) as u8;
                if rng.below(2) == 0 {
                    // Mostly-zero bodies pass reserved checks more often.
                    for b in &mut input[8..] {
                        if rng.below(8) != 0 {
                            *b = 0;
                        }
                    }
                }
            }
            let outlen = 8 + rng.below(0x1400) as usize;
            let tweak = Tweak {
                entry_type: (rng.below(16) == 0).then(|| rng.next() as u8),
                bad_block_number: rng.below(32) == 0,
                bad_token: rng.below(32) == 0,
                misalign_in: rng.below(32) == 0,
                reserved_byte: rng.below(32) == 0,
            };
            let rep = r.exec_tweaked(&input, outlen, tweak);
            assert!(rep.delivery <= 0x10);
            // Random doorbells into the init segment (not the queue address)
            // and UAR pages, and raw garbage entries in another slot.
            match rng.below(4) {
                0 => {
                    let off = 0x18 + 4 * rng.below(0x7f0) as usize;
                    r.p.bar0_write_be32(off.min(0x1ffc), rng.next() as u32);
                }
                1 => {
                    let page = 16 + rng.below(8) as usize;
                    let off = page * 4096 + 8 * rng.below(512) as usize;
                    r.p.bar0_write_be64(off, rng.next());
                }
                2 => {
                    let garbage = rng.bytes(64);
                    r.cmdq().write_bytes(5 * 64, &garbage);
                    r.cmdq().write_u8(5 * 64 + 0x3f, garbage[63] | 1);
                    r.p.bar0_write_be32(0x18, 1 << 5);
                }
                _ => {}
            }
        }
        // The model still works: re-enable if the fuzz disabled the function.
        r.slot = 0;
        let rep = r.exec(&Msg::new(NOP, 0, 0x10), 0x10);
        assert_eq!(rep.delivery, 0);
        assert!(rep.status() == 0 || rep.status() == 0x04);
        drop(up);
    }
}
