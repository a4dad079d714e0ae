//! PCI configuration space of the function: type 0 header, PM, PCIe and
//! MSI-X capabilities (PCI Local Bus 3.0, PCIe Base 4.0 §7.5), laid out as on
//! a real ConnectX-6 Dx where that matters (MSI-X count 64, table at
//! BAR0+0x2000, PBA at BAR0+0x3000, BAR0 32 MiB 64-bit prefetchable).
#![deny(unsafe_code)]

use crate::personality::Personality;

pub const VENDOR_MELLANOX: u16 = 0x15b3;
pub const BAR0_SIZE: u64 = 32 << 20;
pub const MSIX_VECTORS: u16 = 64;
pub const MSIX_TABLE_OFFSET: u32 = 0x2000;
pub const MSIX_PBA_OFFSET: u32 = 0x3000;

const CAP_PM: usize = 0x40;
const CAP_PCIE: usize = 0x60;
const CAP_MSIX: usize = 0x9c;
const SPACE: usize = 4096;

/// What a config write asks of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigEvent {
    None,
    /// Function level reset (PCIe device control bit 15).
    FunctionReset,
}

#[derive(Debug, Clone)]
pub struct PciConfig {
    space: Vec<u8>,
    bar0_base: u64,
}

impl PciConfig {
    pub fn new(p: Personality) -> PciConfig {
        let mut c = PciConfig {
            space: vec![0; SPACE],
            bar0_base: 0,
        };
        c.put16(0x00, VENDOR_MELLANOX);
        c.put16(0x02, p.device_id());
        c.put16(0x06, 0x0010); // status: capabilities list
        c.space[0x08] = 0x00; // revision
        c.put_bytes(0x09, &[0x00, 0x00, 0x02]); // prog-if, subclass ethernet, class network
        c.space[0x0e] = 0x00; // header type 0, single function
        c.put16(0x2c, VENDOR_MELLANOX);
        c.put16(0x2e, p.subsystem_id());
        c.space[0x34] = CAP_PM as u8;
        c.space[0x3d] = 0x01; // INTA
        // Power management, version 3.
        c.space[CAP_PM] = 0x01;
        c.space[CAP_PM + 1] = CAP_PCIE as u8;
        c.put16(CAP_PM + 2, 0x0003);
        // PCIe v2 endpoint: FLR capable, 512-byte max payload; Gen3 x16.
        c.space[CAP_PCIE] = 0x10;
        c.space[CAP_PCIE + 1] = CAP_MSIX as u8;
        c.put16(CAP_PCIE + 2, 0x0002);
        c.put32(CAP_PCIE + 4, (1 << 28) | 0x2);
        c.put32(CAP_PCIE + 0x0c, (16 << 4) | 3);
        c.put16(CAP_PCIE + 0x12, (16 << 4) | 3);
        // MSI-X: 64 entries, table and PBA in BAR0.
        c.space[CAP_MSIX] = 0x11;
        c.space[CAP_MSIX + 1] = 0x00;
        c.put16(CAP_MSIX + 2, MSIX_VECTORS - 1);
        c.put32(CAP_MSIX + 4, MSIX_TABLE_OFFSET);
        c.put32(CAP_MSIX + 8, MSIX_PBA_OFFSET);
        c
    }

    fn put16(&mut self, off: usize, v: u16) {
        self.space[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put32(&mut self, off: usize, v: u32) {
        self.space[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put_bytes(&mut self, off: usize, b: &[u8]) {
        self.space[off..off + b.len()].copy_from_slice(b);
    }
    fn get16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.space[off], self.space[off + 1]])
    }

    /// Read `size` (1, 2 or 4) bytes at `off`, little-endian as PCI is.
    /// Out-of-range reads return all ones, as a missing register does.
    pub fn read(&self, off: u16, size: usize) -> u32 {
        let off = off as usize;
        if !matches!(size, 1 | 2 | 4) || off + size > SPACE {
            return u32::MAX;
        }
        match off & !3 {
            0x10 => return self.bar_dword(0, off, size),
            0x14 => return self.bar_dword(1, off, size),
            _ => {}
        }
        let mut v = 0u32;
        for i in 0..size {
            v |= (self.space[off + i] as u32) << (8 * i);
        }
        v
    }

    fn bar_dword(&self, half: usize, off: usize, size: usize) -> u32 {
        // BAR0: 64-bit (type 10b), prefetchable; size probing masks low bits.
        let full = (self.bar0_base & !(BAR0_SIZE - 1)) | 0xc;
        let dword = if half == 0 {
            full as u32
        } else {
            (full >> 32) as u32
        };
        let shift = 8 * (off & 3);
        let mask = if size == 4 {
            u32::MAX
        } else {
            (1u32 << (8 * size)) - 1
        };
        (dword >> shift) & mask
    }

    /// Write `size` bytes at `off`; read-only bits keep their value.
    pub fn write(&mut self, off: u16, size: usize, value: u32) -> ConfigEvent {
        let off = off as usize;
        if !matches!(size, 1 | 2 | 4) || off + size > SPACE {
            return ConfigEvent::None;
        }
        if size == 4 && (off == 0x10 || off == 0x14) {
            if off == 0x10 {
                self.bar0_base = (self.bar0_base & !0xffff_ffff) | (value as u64 & !0xf);
            } else {
                self.bar0_base = (self.bar0_base & 0xffff_ffff) | ((value as u64) << 32);
            }
            return ConfigEvent::None;
        }
        let mut event = ConfigEvent::None;
        for i in 0..size {
            let byte = (value >> (8 * i)) as u8;
            let at = off + i;
            // Writable bits per byte: command (memory, bus master, INTx
            // disable), PM control/status, PCIe device control, MSI-X
            // message control bits 15:14.
            let mask: u8 = match at {
                0x04 => 0x06,
                0x05 => 0x04,
                a if a == CAP_PM + 4 => 0x03,
                a if a == CAP_PCIE + 8 => 0xff,
                a if a == CAP_PCIE + 9 => 0x7f,
                a if a == CAP_MSIX + 3 => 0xc0,
                _ => 0,
            };
            if at == CAP_PCIE + 9 && byte & 0x80 != 0 {
                event = ConfigEvent::FunctionReset;
            }
            self.space[at] = (self.space[at] & !mask) | (byte & mask);
        }
        event
    }

    /// MSI-X enable (message control bit 15) and function mask (bit 14).
    pub fn msix_enabled(&self) -> (bool, bool) {
        let ctl = self.get16(CAP_MSIX + 2);
        (ctl & 0x8000 != 0, ctl & 0x4000 != 0)
    }

    /// Bus master enable (command bit 2).
    pub fn bus_master(&self) -> bool {
        self.space[0x04] & 0x04 != 0
    }

    /// Function reset: clears the command register and MSI-X control, keeps
    /// identity and BAR assignment (as FLR does).
    pub fn reset(&mut self) {
        self.space[0x04] = 0;
        self.space[0x05] = 0;
        self.space[CAP_MSIX + 3] &= 0x3f;
        self.space[CAP_PCIE + 8] = 0;
        self.space[CAP_PCIE + 9] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_capabilities() {
        let mut c = PciConfig::new(Personality::ConnectX6Dx);
        assert_eq!(c.read(0x00, 4), 0x101d_15b3);
        assert_eq!(c.read(0x08, 4) >> 8, 0x02_0000);
        // Walk the capability list: PM -> PCIe -> MSI-X.
        let mut ids = vec![];
        let mut p = c.read(0x34, 1) as u16;
        while p != 0 {
            ids.push(c.read(p, 1));
            p = c.read(p + 1, 1) as u16;
        }
        assert_eq!(ids, [0x01, 0x10, 0x11]);
        assert_eq!(c.read(0x9e, 2) & 0x7ff, 63);
        assert_eq!(c.read(0xa0, 4), 0x2000);
        assert_eq!(c.read(0xa4, 4), 0x3000);
        // BAR sizing: all ones reads back the 32 MiB mask with 64-bit prefetchable flags.
        c.write(0x10, 4, u32::MAX);
        c.write(0x14, 4, u32::MAX);
        assert_eq!(c.read(0x10, 4), 0xfe00_000c);
        assert_eq!(c.read(0x14, 4), 0xffff_ffff);
        // Vendor id is read-only.
        c.write(0x00, 2, 0x1234);
        assert_eq!(c.read(0x00, 2), 0x15b3);
        // FLR.
        assert_eq!(c.write(0x68, 2, 0x8000), ConfigEvent::FunctionReset);
        c.write(0x9c, 4, 0x8000_0000);
        assert_eq!(c.msix_enabled(), (true, false));
    }
}
