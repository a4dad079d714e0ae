//! The batch API between two ports, shared by `burst.rs` and `empw.rs`:
//! numbered frames with a pattern, sent in bursts and received in bursts
//! with every byte checked.

use cxos_drivers::{NetDevice, TxMeta};
use mlx5_sim::Personality;

use super::Port;

pub const PARTS: [Personality; 5] = [
    Personality::ConnectX4,
    Personality::ConnectX4Lx,
    Personality::ConnectX5,
    Personality::ConnectX6,
    Personality::ConnectX6Dx,
];

/// Frame `seq` of `b.len()` bytes: dst, src, ethertype 0x88b5, seq, a
/// pattern of it.
pub fn fill(b: &mut [u8], dst: [u8; 6], src: [u8; 6], seq: u32) {
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&src);
    b[12..14].copy_from_slice(&[0x88, 0xb5]);
    b[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, x) in b[18..].iter_mut().enumerate() {
        *x = (i as u32 ^ seq) as u8;
    }
}

/// Send `lens` from `a` in bursts of up to `burst` and receive on `b`
/// (queue 0) with `receive_burst` until all arrived, checking each
/// frame's length and bytes; then reap every completion. Returns (seq,
/// len) in arrival order.
pub fn send_bursts(a: &mut Port, b: &mut Port, lens: &[usize], burst: usize) -> Vec<(u32, usize)> {
    let (dst, src) = (b.mac(), a.mac());
    let window = b.rq().unwrap().entries() / 2;
    let (mut sent, mut got) = (0usize, Vec::new());
    let mut idle = 0u32;
    while got.len() < lens.len() {
        let n = burst
            .min(lens.len() - sent)
            .min(window - (sent - got.len()));
        let posted = a
            .transmit_burst(n, TxMeta::default(), |i, buf| {
                let seq = sent + i;
                let len = lens[seq];
                fill(&mut buf[..len], dst, src, seq as u32);
                len
            })
            .unwrap();
        sent += posted;
        let before = got.len();
        b.receive_burst(usize::MAX, |f, info| {
            assert_eq!(info.queue(), 0);
            let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
            assert_eq!(f.len(), lens[seq as usize], "frame {seq} length");
            for (i, x) in f[18..].iter().enumerate() {
                assert_eq!(*x, (i as u32 ^ seq) as u8, "frame {seq} byte {}", 18 + i);
            }
            got.push((seq, f.len()));
        });
        if posted == 0 && got.len() == before {
            idle += 1;
            assert!(
                idle < 100_000,
                "stuck at {sent} sent, {} received",
                got.len()
            );
        } else {
            idle = 0;
        }
    }
    reap(a);
    got
}

/// Reap every outstanding completion: empty bursts until every buffer
/// is back.
pub fn reap(a: &mut Port) {
    for _ in 0..1000 {
        if a.tx_free() == a.sq().unwrap().entries() {
            return;
        }
        a.transmit_burst(0, TxMeta::default(), |_, _| 0).unwrap();
        a.poll();
        // The owner's recovery step (the poll only records a fault).
        a.run_pending_recoveries();
    }
    panic!("buffers not back: {} free", a.tx_free());
}
