//! BAR0 helpers for platforms whose device is software in the same
//! process (unit tests that play the device by hand, fuzzers of a
//! driver), as [`crate::vec_dma`] is for their DMA: a 64-bit big-endian
//! register accessed as two 32-bit ones, the high dword at `offset` first
//! (the order a doorbell's halves are written in: the device acts on the
//! low one, which carries the queue number).

/// Read the big-endian 64-bit register at `offset` with `read_be32`.
pub fn read_be64_split(read_be32: impl Fn(usize) -> u32, offset: usize) -> u64 {
    (u64::from(read_be32(offset)) << 32) | u64::from(read_be32(offset + 4))
}

/// Write `value` to the big-endian 64-bit register at `offset` with
/// `write_be32`, high dword first.
pub fn write_be64_split(mut write_be32: impl FnMut(usize, u32), offset: usize, value: u64) {
    write_be32(offset, (value >> 32) as u32);
    write_be32(offset + 4, value as u32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    #[test]
    fn high_dword_first_at_the_lower_offset() {
        let log = RefCell::new(Vec::new());
        write_be64_split(
            |o, v| log.borrow_mut().push((o, v)),
            0x20,
            0x1122_3344_5566_7788,
        );
        assert_eq!(*log.borrow(), [(0x20, 0x1122_3344), (0x24, 0x5566_7788)]);
        let read = |o: usize| if o == 0x20 { 0xaabb_ccdd } else { 0x0102_0304 };
        assert_eq!(read_be64_split(read, 0x20), 0xaabb_ccdd_0102_0304);
    }
}
