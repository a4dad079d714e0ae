//! A DMA region in ordinary heap memory, for platforms whose "device" is
//! played by software in the same process (unit tests that play the
//! device by hand, fuzzers of a driver): the bytes live behind an
//! `Rc<RefCell<Vec<u8>>>` the platform may keep a weak handle to for the
//! device's side. Single-threaded; ordering is program order.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::platform::{DmaAddr, DmaRegion};

#[derive(Debug, Clone)]
pub struct VecDma {
    addr: u64,
    buf: Rc<RefCell<Vec<u8>>>,
}

impl VecDma {
    /// `size` zeroed bytes that the device sees at bus address `addr`.
    pub fn new(addr: u64, size: usize) -> VecDma {
        VecDma {
            addr,
            buf: Rc::new(RefCell::new(vec![0u8; size])),
        }
    }

    /// The bytes, for the platform's device side.
    pub fn bytes(&self) -> &Rc<RefCell<Vec<u8>>> {
        &self.buf
    }
}

impl DmaRegion for VecDma {
    fn device_addr(&self) -> DmaAddr {
        DmaAddr(self.addr)
    }
    fn len(&self) -> usize {
        self.buf.borrow().len()
    }
    fn read_u8(&self, o: usize) -> u8 {
        self.buf.borrow()[o]
    }
    fn write_u8(&self, o: usize, v: u8) {
        self.buf.borrow_mut()[o] = v;
    }
    fn read_be16(&self, o: usize) -> u16 {
        let b = self.buf.borrow();
        u16::from_be_bytes([b[o], b[o + 1]])
    }
    fn write_be16(&self, o: usize, v: u16) {
        self.write_bytes(o, &v.to_be_bytes())
    }
    fn read_be32(&self, o: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read_bytes(o, &mut b);
        u32::from_be_bytes(b)
    }
    fn write_be32(&self, o: usize, v: u32) {
        self.write_bytes(o, &v.to_be_bytes())
    }
    fn read_be64(&self, o: usize) -> u64 {
        let mut b = [0u8; 8];
        self.read_bytes(o, &mut b);
        u64::from_be_bytes(b)
    }
    fn write_be64(&self, o: usize, v: u64) {
        self.write_bytes(o, &v.to_be_bytes())
    }
    fn read_bytes(&self, o: usize, dst: &mut [u8]) {
        dst.copy_from_slice(&self.buf.borrow()[o..o + dst.len()]);
    }
    fn write_bytes(&self, o: usize, src: &[u8]) {
        self.buf.borrow_mut()[o..o + src.len()].copy_from_slice(src);
    }
    fn fill(&self, o: usize, len: usize, byte: u8) {
        self.buf.borrow_mut()[o..o + len].fill(byte);
    }
    fn with_bytes<R>(&self, o: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.buf.borrow()[o..o + len])
    }
    fn with_bytes_mut<R>(&self, o: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        f(&mut self.buf.borrow_mut()[o..o + len])
    }
}
