//! The command interface: command queue entries (`struct mlx5_cmd_layout`,
//! device.h) and mailbox chains (`struct mlx5_cmd_prot_block`, device.h),
//! read from and written to driver memory by DMA (PRM "Command Interface").
//!
//! Delivery problems (entry type, lengths, pointers, block numbers, tokens,
//! reserved bytes) are answered with a delivery status in the entry's
//! status byte and no command output; a delivered command's own failure is
//! a command status and syndrome in the output.
#![deny(unsafe_code)]

use crate::bits::{be32, be64};
use crate::sanitizer::{Bus, DmaError, Purpose};
use crate::syndrome::delivery;

/// `struct mlx5_cmd_layout` byte offsets (device.h).
pub mod entry {
    pub const SIZE: usize = 64;
    pub const TYPE: usize = 0x00;
    pub const INLEN: usize = 0x04;
    pub const IN_PTR: usize = 0x08;
    pub const IN_INLINE: usize = 0x10;
    pub const OUT_INLINE: usize = 0x20;
    pub const OUT_PTR: usize = 0x30;
    pub const OUTLEN: usize = 0x38;
    pub const TOKEN: usize = 0x3c;
    pub const SIG: usize = 0x3d;
    pub const RSVD1: usize = 0x3e;
    /// status [7:1] (delivery status), ownership [0] (1 = hardware).
    pub const STATUS_OWN: usize = 0x3f;
    /// `MLX5_PCI_CMD_XPORT`.
    pub const TYPE_PCIE: u8 = 7;
    pub const INLINE_LEN: usize = 16;
}

/// `struct mlx5_cmd_prot_block` byte offsets (device.h).
pub mod block {
    pub const SIZE: usize = 576;
    pub const DATA_LEN: usize = 512;
    pub const NEXT: usize = 0x230;
    pub const BLOCK_NUM: usize = 0x238;
    pub const TOKEN: usize = 0x23d;
    pub const CTRL_SIG: usize = 0x23e;
    pub const SIG: usize = 0x23f;
    /// Mailbox blocks must be 1 KiB aligned (PRM; OpenBSD's mcx uses the same).
    pub const ALIGN: u64 = 1 << 10;
}

/// Largest input or output the model accepts: the biggest command it knows
/// (MANAGE_PAGES with a few thousand pages) fits with room to spare.
pub const MAX_MESSAGE: usize = 1 << 20;

/// A command gathered from the queue, ready to execute.
#[derive(Debug, Default)]
pub struct Gathered {
    pub token: u8,
    pub outlen: usize,
    pub out_ptr: u64,
}

/// Why a command could not be delivered: a delivery status for the entry,
/// or a DMA failure (already recorded by the sanitizer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undeliverable {
    Status(u8),
    Dma(DmaError),
}

impl From<DmaError> for Undeliverable {
    fn from(e: DmaError) -> Self {
        Undeliverable::Dma(e)
    }
}

/// Check the entry and gather the whole input (inline part + input mailbox
/// chain) into `input`, and validate the output chain.
pub fn gather(bus: &mut Bus, e: &[u8; 64], input: &mut Vec<u8>) -> Result<Gathered, Undeliverable> {
    if e[entry::TYPE] != entry::TYPE_PCIE {
        return Err(Undeliverable::Status(delivery::BAD_COMMAND_TYPE));
    }
    if e[1..4] != [0, 0, 0] || e[entry::RSVD1] != 0 {
        return Err(Undeliverable::Status(delivery::RESERVED_NOT_ZERO));
    }
    let inlen = be32(e, entry::INLEN) as usize;
    let outlen = be32(e, entry::OUTLEN) as usize;
    // Every input starts with opcode and op_mod (8 bytes); every output with
    // status and syndrome (8 bytes).
    if !(8..=MAX_MESSAGE).contains(&inlen) {
        return Err(Undeliverable::Status(delivery::INPUT_LENGTH));
    }
    if !(8..=MAX_MESSAGE).contains(&outlen) {
        return Err(Undeliverable::Status(delivery::OUTPUT_LENGTH));
    }
    let token = e[entry::TOKEN];
    let in_ptr = be64(e, entry::IN_PTR);
    let out_ptr = be64(e, entry::OUT_PTR);
    if inlen > entry::INLINE_LEN && !in_ptr.is_multiple_of(block::ALIGN) {
        return Err(Undeliverable::Status(delivery::INPUT_POINTER_ALIGNMENT));
    }
    if outlen > entry::INLINE_LEN && !out_ptr.is_multiple_of(block::ALIGN) {
        return Err(Undeliverable::Status(delivery::OUTPUT_POINTER_ALIGNMENT));
    }
    input.clear();
    input.resize(inlen, 0);
    let inline = inlen.min(entry::INLINE_LEN);
    input[..inline].copy_from_slice(&e[entry::IN_INLINE..entry::IN_INLINE + inline]);
    walk_chain(
        bus,
        in_ptr,
        inlen,
        token,
        |data, off, n| {
            input[off..off + n].copy_from_slice(&data[..n]);
        },
        (delivery::INPUT_POINTER_ALIGNMENT, delivery::INPUT_LENGTH),
    )?;
    walk_chain(
        bus,
        out_ptr,
        outlen,
        token,
        |_, _, _| {},
        (delivery::OUTPUT_POINTER_ALIGNMENT, delivery::OUTPUT_LENGTH),
    )?;
    Ok(Gathered {
        token,
        outlen,
        out_ptr,
    })
}

/// Follow a mailbox chain covering bytes 16..len of a message, checking
/// block numbers, tokens and alignment; `each(data, offset, n)` sees the
/// data of every block. `statuses` are the delivery statuses for a
/// misaligned block and for a chain that ends (null pointer) too early.
fn walk_chain(
    bus: &mut Bus,
    mut ptr: u64,
    len: usize,
    token: u8,
    mut each: impl FnMut(&[u8], usize, usize),
    statuses: (u8, u8),
) -> Result<(), Undeliverable> {
    let (misaligned, short) = statuses;
    let mut off = entry::INLINE_LEN;
    let mut num = 0u32;
    let mut blk = [0u8; block::SIZE];
    while off < len {
        if ptr == 0 {
            return Err(Undeliverable::Status(short));
        }
        if !ptr.is_multiple_of(block::ALIGN) {
            return Err(Undeliverable::Status(misaligned));
        }
        bus.read(ptr, &mut blk, Purpose::Mailbox)?;
        if be32(&blk, block::BLOCK_NUM) != num {
            return Err(Undeliverable::Status(delivery::BAD_BLOCK_NUMBER));
        }
        if blk[block::TOKEN] != token {
            return Err(Undeliverable::Status(delivery::TOKEN));
        }
        let n = (len - off).min(block::DATA_LEN);
        each(&blk, off, n);
        off += n;
        num += 1;
        ptr = be64(&blk, block::NEXT);
    }
    Ok(())
}

/// Write `out` back: the first 16 bytes inline into the entry buffer `e`,
/// the rest into the data part of the output mailboxes.
pub fn scatter(bus: &mut Bus, e: &mut [u8; 64], g: &Gathered, out: &[u8]) -> Result<(), DmaError> {
    let inline = out.len().min(entry::INLINE_LEN);
    e[entry::OUT_INLINE..entry::OUT_INLINE + inline].copy_from_slice(&out[..inline]);
    let mut off = entry::INLINE_LEN;
    let mut ptr = g.out_ptr;
    let mut next = [0u8; 8];
    while off < out.len() {
        let n = (out.len() - off).min(block::DATA_LEN);
        bus.write(ptr, &out[off..off + n], Purpose::Mailbox)?;
        off += n;
        if off < out.len() {
            bus.read(ptr + block::NEXT as u64, &mut next, Purpose::Mailbox)?;
            ptr = u64::from_be_bytes(next);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::DmaSpace;
    use crate::harness::HostDmaSpace;
    use std::sync::Arc;

    /// A hand-written entry (device.h `struct mlx5_cmd_layout`) with a
    /// two-block input chain (`struct mlx5_cmd_prot_block`).
    #[test]
    fn gather_reads_entry_and_chain_at_device_h_offsets() {
        let space = Arc::new(HostDmaSpace::default());
        let (base, _m) = space.map(4096).unwrap();
        let mut bus = Bus::new(space.clone());
        // Blocks at base and base + 0x400: data byte 0 = 0xa0 / 0xb0,
        // next @0x230, block_num @0x238, token @0x23d.
        let mut b0 = [0u8; 576];
        b0[0] = 0xa0;
        b0[0x230..0x238].copy_from_slice(&(base + 0x400).to_be_bytes());
        b0[0x23d] = 0x5a;
        let mut b1 = [0u8; 576];
        b1[0] = 0xb0;
        b1[0x238..0x23c].copy_from_slice(&1u32.to_be_bytes());
        b1[0x23d] = 0x5a;
        space.write(base, &b0).unwrap();
        space.write(base + 0x400, &b1).unwrap();
        let mut e = [0u8; 64];
        e[0x00] = 0x07; // type
        e[0x04..0x08].copy_from_slice(&(16u32 + 512 + 4).to_be_bytes()); // inlen
        e[0x08..0x10].copy_from_slice(&base.to_be_bytes()); // in_ptr
        e[0x10] = 0x08; // opcode 0x080d
        e[0x11] = 0x0d;
        e[0x38..0x3c].copy_from_slice(&16u32.to_be_bytes()); // outlen
        e[0x3c] = 0x5a; // token
        e[0x3f] = 0x01; // owner
        let mut input = Vec::new();
        let g = gather(&mut bus, &e, &mut input).unwrap();
        assert_eq!((g.token, g.outlen), (0x5a, 16));
        assert_eq!(input.len(), 532);
        assert_eq!(&input[0..2], &[0x08, 0x0d]);
        assert_eq!(input[16], 0xa0);
        assert_eq!(input[16 + 512], 0xb0);
        // Wrong token in block 1, wrong block number.
        space.write(base + 0x400 + 0x23d, &[0x11]).unwrap();
        assert_eq!(
            gather(&mut bus, &e, &mut input).unwrap_err(),
            Undeliverable::Status(delivery::TOKEN)
        );
        space.write(base + 0x400 + 0x23d, &[0x5a]).unwrap();
        space.write(base + 0x400 + 0x238, &[0, 0, 0, 2]).unwrap();
        assert_eq!(
            gather(&mut bus, &e, &mut input).unwrap_err(),
            Undeliverable::Status(delivery::BAD_BLOCK_NUMBER)
        );
    }
}
