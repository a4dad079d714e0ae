//! MSI and MSI-X: message composition and programming of the capability
//! and of the MSI-X table (PCI Local Bus 3.0 ch. 6.8; Intel SDM vol. 3
//! 11.11 "Message Signalled Interrupts" for the x86 address/data format).

use crate::pci::ConfigSpace;

/// Address/data pair a function writes to raise an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

impl MsiMessage {
    /// Fixed delivery, edge triggered, physical destination `apic_id`:
    /// address 0xfee0_0000 | dest << 12 (RH = DM = 0), data = vector.
    pub fn fixed(apic_id: u8, vector: u8) -> Self {
        Self {
            address: 0xfee0_0000 | (u64::from(apic_id) << 12),
            data: u32::from(vector),
        }
    }
}

/// Program the MSI capability at `cap` with one message and enable it
/// (multiple message enable = 1 vector; per-vector mask cleared if present).
pub fn msi_enable(cfg: &dyn ConfigSpace, cap: u16, msg: MsiMessage) {
    let ctrl = cfg.read16(cap + 2);
    let is64 = ctrl & (1 << 7) != 0;
    let maskable = ctrl & (1 << 8) != 0;
    // Disable while changing the message.
    cfg.write16(cap + 2, ctrl & !1);
    cfg.write32(cap + 4, msg.address as u32);
    let (data_off, mask_off) = if is64 {
        cfg.write32(cap + 8, (msg.address >> 32) as u32);
        (cap + 12, cap + 16)
    } else {
        (cap + 8, cap + 12)
    };
    cfg.write16(data_off, msg.data as u16);
    if maskable {
        cfg.write32(mask_off, cfg.read32(mask_off) & !1);
    }
    // MME (bits 6:4) = 0: one vector; enable.
    cfg.write16(cap + 2, (ctrl & !(7 << 4)) | 1);
}

pub fn msi_disable(cfg: &dyn ConfigSpace, cap: u16) {
    let ctrl = cfg.read16(cap + 2);
    cfg.write16(cap + 2, ctrl & !1);
}

/// Where an MSI-X function keeps its table and pending bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixLayout {
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
    pub pba_bar: u8,
    pub pba_offset: u32,
}

pub fn msix_layout(cfg: &dyn ConfigSpace, cap: u16) -> MsixLayout {
    let table = cfg.read32(cap + 4);
    let pba = cfg.read32(cap + 8);
    MsixLayout {
        table_size: (cfg.read16(cap + 2) & 0x7ff) + 1,
        table_bar: (table & 7) as u8,
        table_offset: table & !7,
        pba_bar: (pba & 7) as u8,
        pba_offset: pba & !7,
    }
}

const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_FUNCTION_MASK: u16 = 1 << 14;

/// Set the enable and function-mask bits of the MSI-X capability.
pub fn msix_control(cfg: &dyn ConfigSpace, cap: u16, enable: bool, function_mask: bool) {
    let mut ctrl = cfg.read16(cap + 2) & !(MSIX_ENABLE | MSIX_FUNCTION_MASK);
    if enable {
        ctrl |= MSIX_ENABLE;
    }
    if function_mask {
        ctrl |= MSIX_FUNCTION_MASK;
    }
    cfg.write16(cap + 2, ctrl);
}

/// 32-bit memory-mapped registers (the MSI-X table lives in a BAR).
pub trait Mmio32 {
    fn read32(&self, offset: usize) -> u32;
    fn write32(&self, offset: usize, value: u32);
}

const ENTRY_SIZE: usize = 16;
const VECTOR_CONTROL_MASK: u32 = 1;

/// Write entry `index` of the table at `table_offset`: masked first, then
/// address and data; the entry stays masked (unmask with
/// [`msix_set_masked`]) so no half-written message is ever used.
pub fn msix_write_entry(bar: &dyn Mmio32, table_offset: usize, index: u16, msg: MsiMessage) {
    let e = table_offset + usize::from(index) * ENTRY_SIZE;
    let ctrl = bar.read32(e + 12);
    bar.write32(e + 12, ctrl | VECTOR_CONTROL_MASK);
    bar.write32(e, msg.address as u32);
    bar.write32(e + 4, (msg.address >> 32) as u32);
    bar.write32(e + 8, msg.data);
}

pub fn msix_set_masked(bar: &dyn Mmio32, table_offset: usize, index: u16, masked: bool) {
    let e = table_offset + usize::from(index) * ENTRY_SIZE + 12;
    let ctrl = bar.read32(e);
    bar.write32(
        e,
        if masked {
            ctrl | VECTOR_CONTROL_MASK
        } else {
            ctrl & !VECTOR_CONTROL_MASK
        },
    );
}

/// Whether the pending bit of `index` is set in the PBA at `pba_offset`.
pub fn msix_pending(bar: &dyn Mmio32, pba_offset: usize, index: u16) -> bool {
    let word = bar.read32(pba_offset + usize::from(index / 32) * 4);
    word & (1 << (index % 32)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::fake::FakeConfig;
    use std::cell::RefCell;

    #[test]
    fn message_format() {
        // Intel SDM 11.11.1: 0xfee in bits 31:20, destination in 19:12.
        assert_eq!(
            MsiMessage::fixed(0, 0x41),
            MsiMessage {
                address: 0xfee0_0000,
                data: 0x41
            }
        );
        assert_eq!(MsiMessage::fixed(3, 0xfe).address, 0xfee0_3000);
        assert_eq!(MsiMessage::fixed(0xff, 0x20).address, 0xfeef_f000);
    }

    #[test]
    fn msi_64bit_maskable_capability() {
        let cfg = FakeConfig::new(0x1234, 0x11e8, 0);
        // Control: 64-bit, per-vector masking, MMC = 4 vectors, MME = 2 set.
        cfg.set(0x40, 0x05 | ((0x0180 | (2 << 1) | (1 << 4)) << 16));
        cfg.set(0x50, 1); // vector 0 masked
        msi_enable(&cfg, 0x40, MsiMessage::fixed(1, 0x30));
        assert_eq!(cfg.get(0x44), 0xfee0_1000);
        assert_eq!(cfg.get(0x48), 0);
        assert_eq!(cfg.get(0x4c) & 0xffff, 0x30);
        assert_eq!(cfg.get(0x50), 0, "vector 0 unmasked");
        let ctrl = cfg.get(0x40) >> 16;
        assert_eq!(ctrl & 1, 1, "enabled");
        assert_eq!((ctrl >> 4) & 7, 0, "one vector");
        assert_eq!(cfg.get(0x40) & 0xff, 0x05, "capability id untouched");
        msi_disable(&cfg, 0x40);
        assert_eq!((cfg.get(0x40) >> 16) & 1, 0);
    }

    #[test]
    fn msi_32bit_capability() {
        let cfg = FakeConfig::new(0x1234, 0x11e8, 0);
        cfg.set(0x40, 0x05);
        msi_enable(&cfg, 0x40, MsiMessage::fixed(0, 0x22));
        assert_eq!(cfg.get(0x44), 0xfee0_0000);
        assert_eq!(cfg.get(0x48) & 0xffff, 0x22);
        assert_eq!((cfg.get(0x40) >> 16) & 1, 1);
    }

    struct FakeBar(RefCell<Vec<u32>>);

    impl Mmio32 for FakeBar {
        fn read32(&self, offset: usize) -> u32 {
            self.0.borrow()[offset / 4]
        }
        fn write32(&self, offset: usize, value: u32) {
            self.0.borrow_mut()[offset / 4] = value;
        }
    }

    #[test]
    fn msix_layout_and_table_entries() {
        let cfg = FakeConfig::new(0x8086, 0x10d3, 0);
        // Table size 5, table in BAR3 at 0, PBA in BAR3 at 0x2000.
        cfg.set(0xa0, 0x11 | (4 << 16));
        cfg.set(0xa4, 3);
        cfg.set(0xa8, 0x2000 | 3);
        let l = msix_layout(&cfg, 0xa0);
        assert_eq!(
            l,
            MsixLayout {
                table_size: 5,
                table_bar: 3,
                table_offset: 0,
                pba_bar: 3,
                pba_offset: 0x2000
            }
        );
        msix_control(&cfg, 0xa0, true, false);
        assert_eq!(cfg.get(0xa0) >> 16, 0x8004);
        msix_control(&cfg, 0xa0, true, true);
        assert_eq!(cfg.get(0xa0) >> 16, 0xc004);

        // Entries start masked after reset (vector control bit 0 = 1).
        let bar = FakeBar(RefCell::new(vec![0; 0x3000 / 4]));
        for i in 0..5 {
            bar.0.borrow_mut()[i * 4 + 3] = 1;
        }
        msix_write_entry(&bar, 0, 2, MsiMessage::fixed(0, 0x45));
        assert_eq!(&bar.0.borrow()[8..12], &[0xfee0_0000, 0, 0x45, 1]);
        msix_set_masked(&bar, 0, 2, false);
        assert_eq!(bar.0.borrow()[11], 0);
        msix_set_masked(&bar, 0, 2, true);
        assert_eq!(bar.0.borrow()[11], 1);
        bar.0.borrow_mut()[0x2000 / 4] = 1 << 2;
        assert!(msix_pending(&bar, 0x2000, 2));
        assert!(!msix_pending(&bar, 0x2000, 1));
    }
}
