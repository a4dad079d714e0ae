//! Big-endian bit fields, addressed the way the PRM tables and
//! `mlx5_ifc.h` describe them.
//!
//! Every PRM structure is a sequence of big-endian 32-bit words; a field is
//! a bit range `[hi:lo]` inside the word at some byte offset (bit 31 is the
//! most significant bit of the word's first byte). A [`Field`] names such a
//! range; [`Field64`] names an 8-byte aligned 64-bit field. Constants of
//! these types describe each structure in the file of the object it belongs
//! to; offsets are checked at compile time (`Field::new` is `const` and
//! refuses a range that does not fit a word).

/// `[hi:lo]` of the big-endian dword at byte offset `dword` of a structure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Field {
    /// Byte offset of the containing dword (4-aligned).
    pub dword: usize,
    /// Least significant bit of the field inside the dword.
    pub lo: u8,
    /// Width in bits (1..=32).
    pub width: u8,
}

impl Field {
    /// The field `[hi:lo]` of the dword at byte offset `dword`.
    pub const fn new(dword: usize, hi: u8, lo: u8) -> Field {
        assert!(dword.is_multiple_of(4), "fields live in aligned dwords");
        assert!(hi < 32 && lo <= hi, "bit range must fit a dword");
        Field {
            dword,
            lo,
            width: hi - lo + 1,
        }
    }

    /// The same field in a structure embedded at byte offset `base`.
    pub const fn within(self, base: usize) -> Field {
        assert!(base.is_multiple_of(4));
        Field {
            dword: self.dword + base,
            lo: self.lo,
            width: self.width,
        }
    }

    const fn mask(self) -> u32 {
        if self.width == 32 {
            u32::MAX
        } else {
            (1u32 << self.width) - 1
        }
    }

    /// Largest value the field holds.
    pub const fn max(self) -> u32 {
        self.mask()
    }

    /// Byte offset one past the containing dword.
    pub const fn end(self) -> usize {
        self.dword + 4
    }

    /// The field's value inside `dword`, the value of its containing dword
    /// (for registers read one dword at a time).
    pub const fn extract(self, dword: u32) -> u32 {
        (dword >> self.lo) & self.mask()
    }

    /// Read the field from `buf`. `buf` must cover the dword (a driver
    /// invariant: buffers are sized from the structure sizes).
    pub fn get(self, buf: &[u8]) -> u32 {
        (read_be32(buf, self.dword) >> self.lo) & self.mask()
    }

    /// Write `value` into `buf`, leaving the other bits of the dword
    /// alone. A value wider than the field is a driver bug: debug builds
    /// stop on it; release builds cut it to the field (never spilling into
    /// the neighbours).
    pub fn set(self, buf: &mut [u8], value: u32) {
        debug_assert!(
            value <= self.mask(),
            "{value:#x} does not fit {} bits at dword {:#x} bit {}",
            self.width,
            self.dword,
            self.lo
        );
        let mask = self.mask() << self.lo;
        let old = read_be32(buf, self.dword);
        let new = (old & !mask) | ((value << self.lo) & mask);
        write_be32(buf, self.dword, new);
    }
}

/// A 64-bit big-endian field at an 8-aligned byte offset.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Field64 {
    pub offset: usize,
}

impl Field64 {
    pub const fn new(offset: usize) -> Field64 {
        assert!(offset.is_multiple_of(8), "64-bit fields are 8-aligned");
        Field64 { offset }
    }

    pub const fn within(self, base: usize) -> Field64 {
        Field64::new(self.offset + base)
    }

    pub fn get(self, buf: &[u8]) -> u64 {
        ((read_be32(buf, self.offset) as u64) << 32) | read_be32(buf, self.offset + 4) as u64
    }

    pub fn set(self, buf: &mut [u8], value: u64) {
        write_be32(buf, self.offset, (value >> 32) as u32);
        write_be32(buf, self.offset + 4, value as u32);
    }
}

pub fn read_be32(buf: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes([
        buf[offset],
        buf[offset + 1],
        buf[offset + 2],
        buf[offset + 3],
    ])
}

pub fn write_be32(buf: &mut [u8], offset: usize, value: u32) {
    buf[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
}

pub fn read_be64(buf: &[u8], offset: usize) -> u64 {
    Field64 { offset }.get(buf)
}

pub fn write_be64(buf: &mut [u8], offset: usize, value: u64) {
    Field64 { offset }.set(buf, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_reads_msb_first_big_endian() {
        // 0x12345678 at dword 4: [31:16] = 0x1234, [15:0] = 0x5678, [7:4] = 0x7.
        let buf = [0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
        assert_eq!(Field::new(4, 31, 16).get(&buf), 0x1234);
        assert_eq!(Field::new(4, 15, 0).get(&buf), 0x5678);
        assert_eq!(Field::new(4, 7, 4).get(&buf), 0x7);
        assert_eq!(Field::new(4, 31, 0).get(&buf), 0x1234_5678);
        assert_eq!(Field::new(4, 31, 31).get(&buf), 0);
        assert_eq!(Field::new(4, 28, 28).get(&buf), 1);
    }

    #[test]
    fn field_set_preserves_neighbours() {
        let mut buf = [0xffu8; 8];
        Field::new(4, 11, 8).set(&mut buf, 0x2);
        assert_eq!(buf, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf2, 0xff]);
        // The largest value fills the field and nothing else.
        let mut buf = [0u8; 4];
        Field::new(0, 4, 1).set(&mut buf, 0xf);
        assert_eq!(buf, [0, 0, 0, 0x1e]);
        Field::new(0, 31, 0).set(&mut buf, 0xdead_beef);
        assert_eq!(buf, [0xde, 0xad, 0xbe, 0xef]);
    }

    /// A value wider than its field is a driver bug, caught in debug
    /// builds (the tests').
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "does not fit 4 bits")]
    fn field_set_refuses_a_value_wider_than_the_field() {
        let mut buf = [0u8; 4];
        Field::new(0, 3, 0).set(&mut buf, 0x1f);
    }

    #[test]
    fn field_within_relocates() {
        let f = Field::new(0xc, 28, 24).within(0x10);
        assert_eq!(f.dword, 0x1c);
        assert_eq!(f.width, 5);
        assert_eq!(f.max(), 31);
    }

    #[test]
    fn field64_round_trip() {
        let mut buf = [0u8; 16];
        Field64::new(8).set(&mut buf, 0x0102_0304_0506_0708);
        assert_eq!(&buf[8..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Field64::new(8).get(&buf), 0x0102_0304_0506_0708);
    }
}
