//! Big-endian bit fields addressed the way `mlx5_ifc.h` addresses them.
//!
//! `mlx5_ifc.h` describes every layout as a sequence of bit fields, where bit
//! 0 is the most significant bit of byte 0 and a field named
//! `reserved_at_1c0` starts at bit 0x1c0. Fields of up to 32 bits never cross
//! a dword boundary there; 64-bit fields are dword aligned. [`F`] names a
//! field by that bit offset and width, so each layout constant in the model
//! can be checked against the header by eye.
//!
//! Accessors never panic: bytes past the end of the buffer read as zero and
//! writes past it are dropped (a short buffer is caught earlier by length
//! checks that produce the PRM's bad-length statuses).
#![deny(unsafe_code)]

/// A field: bit offset from the start of the structure (ifc numbering) and
/// width in bits (1..=64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F {
    pub bit: usize,
    pub width: usize,
}

/// Field at ifc bit offset `bit`, `width` bits wide.
pub const fn f(bit: usize, width: usize) -> F {
    F { bit, width }
}

impl F {
    /// This field moved `bytes` further into an enclosing structure (for a
    /// context embedded in a command at a byte offset).
    pub const fn at(self, bytes: usize) -> F {
        F {
            bit: self.bit + bytes * 8,
            width: self.width,
        }
    }

    /// Byte offset of the first byte the field touches.
    pub const fn byte(self) -> usize {
        self.bit / 8
    }
}

fn dword(buf: &[u8], index: usize) -> u32 {
    let start = index * 4;
    let mut raw = [0u8; 4];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = buf.get(start + i).copied().unwrap_or(0);
    }
    u32::from_be_bytes(raw)
}

fn set_dword(buf: &mut [u8], index: usize, value: u32) {
    let start = index * 4;
    for (i, b) in value.to_be_bytes().iter().enumerate() {
        if let Some(slot) = buf.get_mut(start + i) {
            *slot = *b;
        }
    }
}

fn mask(width: usize) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// Read field `fld` of `buf`.
pub fn get(buf: &[u8], fld: F) -> u64 {
    if fld.width > 32 {
        // ifc 64-bit fields are dword aligned: high dword first.
        let hi = dword(buf, fld.bit / 32) as u64;
        let lo = dword(buf, fld.bit / 32 + 1) as u64;
        return ((hi << 32) | lo) & mask(fld.width);
    }
    let d = dword(buf, fld.bit / 32) as u64;
    let shift = 32 - (fld.bit % 32) - fld.width;
    (d >> shift) & mask(fld.width)
}

/// Write field `fld` of `buf`; bits of `value` above the width are dropped.
pub fn set(buf: &mut [u8], fld: F, value: u64) {
    if fld.width > 32 {
        let v = value & mask(fld.width);
        set_dword(buf, fld.bit / 32, (v >> 32) as u32);
        set_dword(buf, fld.bit / 32 + 1, v as u32);
        return;
    }
    let idx = fld.bit / 32;
    let shift = 32 - (fld.bit % 32) - fld.width;
    let m = (mask(fld.width) << shift) as u32;
    let d = dword(buf, idx);
    let nd = (d & !m) | (((value << shift) as u32) & m);
    set_dword(buf, idx, nd);
}

/// Big-endian u16 at byte `off` (zero past the end).
pub fn be16(buf: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([
        buf.get(off).copied().unwrap_or(0),
        buf.get(off + 1).copied().unwrap_or(0),
    ])
}

/// Big-endian u32 at byte `off` (zero past the end).
pub fn be32(buf: &[u8], off: usize) -> u32 {
    let mut raw = [0u8; 4];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = buf.get(off + i).copied().unwrap_or(0);
    }
    u32::from_be_bytes(raw)
}

/// Big-endian u64 at byte `off` (zero past the end).
pub fn be64(buf: &[u8], off: usize) -> u64 {
    ((be32(buf, off) as u64) << 32) | be32(buf, off + 4) as u64
}

/// Store big-endian u32 at byte `off` (dropped past the end).
pub fn put_be32(buf: &mut [u8], off: usize, v: u32) {
    for (i, b) in v.to_be_bytes().iter().enumerate() {
        if let Some(s) = buf.get_mut(off + i) {
            *s = *b;
        }
    }
}

/// Store big-endian u64 at byte `off` (dropped past the end).
pub fn put_be64(buf: &mut [u8], off: usize, v: u64) {
    put_be32(buf, off, (v >> 32) as u32);
    put_be32(buf, off + 4, v as u32);
}

/// Store big-endian u16 at byte `off` (dropped past the end).
pub fn put_be16(buf: &mut [u8], off: usize, v: u16) {
    for (i, b) in v.to_be_bytes().iter().enumerate() {
        if let Some(s) = buf.get_mut(off + i) {
            *s = *b;
        }
    }
}

/// Whether every bit the `reserved` fields cover is zero.
pub fn all_zero(buf: &[u8], reserved: &[F]) -> bool {
    reserved.iter().all(|r| {
        // Any width, any alignment: every byte the field touches, masked to
        // the bits it owns there.
        let (first, end) = (r.bit, r.bit + r.width);
        (first / 8..end.div_ceil(8)).all(|i| {
            let lo = first.max(i * 8) - i * 8;
            let hi = end.min(i * 8 + 8) - i * 8;
            let m = ((0xffu16 >> lo) & (0xff00u16 >> hi)) as u8;
            buf.get(i).copied().unwrap_or(0) & m == 0
        })
    })
}

/// The bytes a field covers and the bits it owns in each, as (offset, mask)
/// pairs: what the golden layout tests compare with hand-written values.
#[cfg(test)]
pub fn footprint(fld: F) -> Vec<(usize, u8)> {
    let mut buf = vec![0u8; fld.byte() + 16];
    set(&mut buf, fld, u64::MAX);
    buf.iter()
        .enumerate()
        .filter(|(_, b)| **b != 0)
        .map(|(i, b)| (i, *b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_ifc_bit_numbering() {
        // cmd_hca_cap: log_max_eq is bits 0xfc..0x100, i.e. the low nibble of byte 0x1f.
        let mut buf = [0u8; 0x20];
        set(&mut buf, f(0xfc, 4), 0xa);
        assert_eq!(buf[0x1f], 0x0a);
        assert_eq!(get(&buf, f(0xfc, 4)), 0xa);
        // opcode[0x10] at bit 0 is the first big-endian half-word.
        set(&mut buf, f(0, 16), 0x0104);
        assert_eq!(&buf[0..2], &[0x01, 0x04]);
        // A 64-bit field at bit 0x40 spans bytes 8..16.
        set(&mut buf, f(0x40, 64), 0x1122_3344_5566_7788);
        assert_eq!(
            &buf[8..16],
            &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
        assert_eq!(get(&buf, f(0x40, 64)), 0x1122_3344_5566_7788);
    }

    #[test]
    fn out_of_range_reads_zero_and_writes_drop() {
        let mut buf = [0xffu8; 2];
        assert_eq!(get(&buf, f(0x20, 32)), 0);
        set(&mut buf, f(0x20, 32), 5);
        assert_eq!(buf, [0xff, 0xff]);
        assert_eq!(be32(&buf, 1), 0xff00_0000);
    }

    #[test]
    fn reserved_check_sees_any_set_bit() {
        let mut buf = [0u8; 16];
        assert!(all_zero(&buf, &[f(0x10, 0x10), f(0x40, 0x40)]));
        buf[9] = 1;
        assert!(!all_zero(&buf, &[f(0x10, 0x10), f(0x40, 0x40)]));
        assert!(all_zero(&buf, &[f(0x10, 0x10)]));
        buf[9] = 0;
        buf[13] = 0x80;
        assert!(!all_zero(&buf, &[f(0x40, 0x40 + 0x20)]));
        // A field that neither starts nor ends on a byte: bits 0x44..0x6b
        // (modify_tir_bitmask's reserved bits before self_lb_en at 0x6b).
        let mut buf = [0u8; 16];
        buf[0x0d] = 0x10; // bit 0x6b: outside
        buf[0x08] = 0xf0; // bits 0x40..0x44: outside
        assert!(all_zero(&buf, &[f(0x44, 0x27)]));
        buf[0x0d] = 0x20; // bit 0x6a: inside
        assert!(!all_zero(&buf, &[f(0x44, 0x27)]));
    }
}
