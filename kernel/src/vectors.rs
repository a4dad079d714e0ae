//! Interrupt vector allocator: vectors 0x20..0xfe for devices and timers
//! (0..0x1f are exceptions, 0xff is the APIC spurious vector).

pub const FIRST: u8 = 0x20;
pub const LAST: u8 = 0xfe;
/// The local APIC's spurious-interrupt vector (its SVR), never allocated.
pub const SPURIOUS: u8 = 0xff;

#[derive(Debug, Default)]
pub struct VectorAllocator {
    used: [u64; 4],
}

impl VectorAllocator {
    pub const fn new() -> Self {
        Self { used: [0; 4] }
    }

    fn is_used(&self, v: u8) -> bool {
        self.used[usize::from(v / 64)] & (1 << (v % 64)) != 0
    }

    fn set(&mut self, v: u8, used: bool) {
        let w = &mut self.used[usize::from(v / 64)];
        if used {
            *w |= 1 << (v % 64);
        } else {
            *w &= !(1 << (v % 64));
        }
    }

    /// Take one specific vector (for fixed assignments).
    pub fn reserve(&mut self, v: u8) -> bool {
        if !(FIRST..=LAST).contains(&v) || self.is_used(v) {
            return false;
        }
        self.set(v, true);
        true
    }

    /// `n` consecutive free vectors, the first a multiple of `align` (MSI
    /// multi-message needs aligned blocks; MSI-X does not care).
    pub fn alloc(&mut self, n: u8, align: u8) -> Option<u8> {
        let align = align.max(1);
        if n == 0 {
            return None;
        }
        let mut v = FIRST.next_multiple_of(align);
        while u16::from(v) + u16::from(n) - 1 <= u16::from(LAST) {
            if (v..v + n).all(|x| !self.is_used(x)) {
                (v..v + n).for_each(|x| self.set(x, true));
                return Some(v);
            }
            v = v.checked_add(align)?;
        }
        None
    }

    pub fn free(&mut self, first: u8, n: u8) {
        for v in first..first.saturating_add(n) {
            self.set(v, false);
        }
    }

    pub fn available(&self) -> u16 {
        (FIRST..=LAST).filter(|&v| !self.is_used(v)).count() as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_blocks_and_frees() {
        let mut a = VectorAllocator::new();
        assert_eq!(a.available(), 223);
        assert!(a.reserve(0x20));
        assert!(!a.reserve(0x20));
        assert!(!a.reserve(0x10));
        assert!(!a.reserve(0xff));
        assert_eq!(a.alloc(1, 1), Some(0x21));
        assert_eq!(a.alloc(4, 4), Some(0x24));
        assert_eq!(a.alloc(2, 1), Some(0x22));
        a.free(0x24, 4);
        assert_eq!(a.alloc(3, 1), Some(0x24));
        assert_eq!(a.available(), 223 - 7);
    }

    #[test]
    fn exhaustion() {
        let mut a = VectorAllocator::new();
        assert_eq!(a.alloc(223, 1), Some(0x20));
        assert_eq!(a.alloc(1, 1), None);
        a.free(0xfe, 1);
        assert_eq!(a.alloc(1, 1), Some(0xfe));
        assert_eq!(a.alloc(0, 1), None);
        let mut b = VectorAllocator::new();
        assert_eq!(b.alloc(224, 1), None);
    }
}
