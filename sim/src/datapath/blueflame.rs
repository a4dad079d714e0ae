//! BlueFlame writes (PRM "BlueFlame"; `bf` and `log_bf_reg_size` in
//! `cmd_hca_cap`): a UAR page's BlueFlame register at 0x800 is two
//! buffers of half the register each (0x800 and 0x900 with the 512-byte
//! register the model reports), used alternately; the driver writes the
//! first 64 bytes of its last WQE there instead of only the control
//! segment's first 8 bytes. They arrive as MMIO writes of whatever size
//! the CPU and QEMU made of the stores (here: dwords, in order).
//!
//! The model takes the doorbell from the write of the control segment's
//! second dword (offset 4, as for a plain doorbell), so the WQE is
//! executed from memory; once all 64 bytes of a buffer have arrived, it
//! compares them with the WQE in the SQ's ring (its `ds` segments, at
//! most 64 bytes; a shorter WQE's tail in the block is not the WQE's) and
//! counts the BlueFlame doorbell, or flags the mismatch as a sanitizer
//! violation: a BlueFlame write that is not the WQE in memory is a
//! driver bug the hardware would act on.
//!
//! A function without BlueFlame (`bf` 0, see
//! `crate::cmd::caps::Caps::without_blueflame`) takes only the plain
//! doorbell there (the first 8 bytes); anything past them is a sanitizer
//! violation and is dropped.

use super::tx;
use crate::function::Function;
use crate::sanitizer::{Purpose, Violation, ViolationKind};

/// BlueFlame register offset in a UAR page and one buffer's size (the
/// model's `log_bf_reg_size` 9: 512 bytes, two buffers of 256).
pub const BF_OFFSET: usize = 0x800;
pub const BF_BUF: usize = 0x100;
/// Bytes of a BlueFlame write the model assembles (one WQEBB).
pub const BF_WRITE: usize = 64;

/// One buffer being written: the UAR page, which buffer, the bytes so far
/// and which dwords arrived.
#[derive(Clone, Debug)]
struct Assembly {
    page: u32,
    buf: u8,
    bytes: [u8; BF_WRITE],
    dwords: u16,
}

/// The BlueFlame buffers being written (a few at a time: one per UAR in
/// use; bounded by [`MAX_ASSEMBLIES`]).
#[derive(Debug, Default)]
pub struct BlueFlame {
    open: Vec<Assembly>,
    /// Dwords written past a plain doorbell's 8 bytes (only a BlueFlame
    /// write touches them), whatever became of them.
    pub writes: u64,
}

/// Buffers assembled at once; a write to another one past this drops the
/// oldest (no unbounded memory from a driver that never finishes one).
const MAX_ASSEMBLIES: usize = 64;

/// Whether `within` (a UAR page offset) lies in the first 64 bytes of a
/// BlueFlame buffer.
pub fn is_bf(within: usize) -> bool {
    (BF_OFFSET..BF_OFFSET + 2 * BF_BUF).contains(&within) && within % BF_BUF < BF_WRITE
}

/// A dword written at `within` of UAR `page` (a BlueFlame buffer, see
/// [`is_bf`]); true when the SQ has work pending.
pub fn write(dev: &mut Function, page: u32, within: usize, value: u32) -> bool {
    let off = within % BF_BUF;
    if off >= 8 {
        dev.nic.bf.writes += 1;
        if dev.caps.general(crate::cmd::caps::hca_cap::BF) == 0 {
            dev.bus.san.record(Violation {
                addr: within as u64,
                len: 4,
                write: true,
                purpose: Purpose::WqBuffer,
                kind: ViolationKind::BlueFlameWithoutCap,
            });
            return false;
        }
    }
    let buf = ((within - BF_OFFSET) / BF_BUF) as u8;
    let open = &mut dev.nic.bf.open;
    let i = match open.iter().position(|a| a.page == page && a.buf == buf) {
        Some(i) => i,
        None => {
            if open.len() >= MAX_ASSEMBLIES {
                open.remove(0);
            }
            open.push(Assembly {
                page,
                buf,
                bytes: [0; BF_WRITE],
                dwords: 0,
            });
            open.len() - 1
        }
    };
    let a = &mut open[i];
    // A write of the control segment's first dword starts a new WQE.
    if off == 0 {
        a.dwords = 0;
    }
    a.bytes[off..off + 4].copy_from_slice(&value.to_be_bytes());
    a.dwords |= 1 << (off / 4);
    let full = a.dwords == 0xffff;
    let bytes = a.bytes;
    if full {
        open.swap_remove(i);
    }
    let work = if off == 4 {
        tx::doorbell(dev, page, value)
    } else {
        false
    };
    if full {
        check(dev, page, &bytes);
    }
    work
}

/// Compare a whole BlueFlame write with the WQE it names.
fn check(dev: &mut Function, page: u32, bytes: &[u8; BF_WRITE]) {
    let index = u16::from_be_bytes([bytes[1], bytes[2]]);
    let qpn_ds = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let sqn = qpn_ds >> 8;
    let len = ((qpn_ds & 0x3f) as usize * tx::DS).clamp(tx::DS, BF_WRITE);
    let Some(sq) = dev.nic.sqs.get(sqn).filter(|s| s.wq.uar == page) else {
        log::debug!(target: "mlx5_sim::tx", "BlueFlame write for SQ {sqn:#x} not on UAR {page}: ignored");
        return;
    };
    let wq = sq.wq.clone();
    let mut mem = [0u8; BF_WRITE];
    let addr = tx::wqebb_addr(&wq, index);
    let read = addr.is_some_and(|a| dev.bus.read(a, &mut mem[..len], Purpose::WqBuffer).is_ok());
    let stats = &mut dev.nic.wire.stats;
    if read && mem[..len] == bytes[..len] {
        stats.tx_bf_doorbells += 1;
        return;
    }
    stats.tx_bf_mismatches += 1;
    log::warn!(target: "mlx5_sim::tx", "SQ {sqn:#x}: BlueFlame write of WQE {index} differs from the ring");
    dev.bus.san.record(Violation {
        addr: addr.unwrap_or(0),
        len,
        write: false,
        purpose: Purpose::WqBuffer,
        kind: ViolationKind::BlueFlameMismatch,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_64_bytes_of_each_buffer_are_blueflame() {
        assert!(is_bf(0x800) && is_bf(0x83c) && is_bf(0x900) && is_bf(0x93c));
        assert!(!is_bf(0x840) && !is_bf(0x7fc) && !is_bf(0x940) && !is_bf(0xa00));
    }
}
