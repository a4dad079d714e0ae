//! MSI and MSI-X: message composition and programming of the capability
//! and of the MSI-X table (PCI Local Bus 3.0 ch. 6.8; Intel SDM vol. 3
//! 11.11 "Message Signalled Interrupts" for the x86 address/data format).
//!
//! The capabilities are `pci_types`' `MsiCapability` and `MsixCapability`
//! (found by [`pci::capability_at`]); the address and data words are
//! `bitfield-struct` types.

use bitfield_struct::bitfield;
use pci_types::capability::{MsiCapability, MsixCapability, PciCapability};

use crate::pci::{self, Access, ConfigSpace};

/// The MSI address register on x86 (SDM vol. 3 11.11.1, figure 11-24).
#[bitfield(u32)]
pub struct MsiAddress {
    #[bits(2)]
    __: u8,
    /// DM: destination is a logical (1) or physical (0) APIC ID.
    pub logical_destination: bool,
    /// RH: redirection hint (lowest priority delivery).
    pub redirection_hint: bool,
    #[bits(1)]
    __: u8,
    /// Bits 11:5: the extended destination ID, APIC ID bits 14:8, where
    /// the platform's interrupt remapping (or hypervisor) decodes it;
    /// otherwise reserved 0.
    #[bits(7)]
    pub extended_destination: u8,
    /// Bits 19:12: the destination APIC ID (bits 7:0 of it).
    pub destination: u8,
    /// Bits 31:20: always 0xfee.
    #[bits(12, default = 0xfee)]
    pub fixed: u16,
}

/// The MSI data register on x86 (SDM vol. 3 11.11.2, figure 11-25).
#[bitfield(u32)]
pub struct MsiData {
    /// Bits 7:0: the interrupt vector.
    pub vector: u8,
    /// Bits 10:8: delivery mode (000b fixed).
    #[bits(3)]
    pub delivery_mode: u8,
    #[bits(3)]
    __: u8,
    /// Bit 14: level for level-triggered messages (1 assert).
    pub level_assert: bool,
    /// Bit 15: trigger mode (0 edge).
    pub level_triggered: bool,
    __: u16,
}

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
            address: u64::from(MsiAddress::new().with_destination(apic_id).into_bits()),
            data: MsiData::new().with_vector(vector).into_bits(),
        }
    }
}

/// Why a message cannot reach a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiError {
    /// The APIC ID does not fit the 8-bit destination field, and the
    /// platform decodes no extended destination ID (it needs interrupt
    /// remapping, e.g. QEMU's IOMMU with `eim=on`).
    DestinationTooLarge { apic_id: u32, max: u32 },
}

impl core::fmt::Display for MsiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::DestinationTooLarge { apic_id, max } => write!(
                f,
                "APIC id {apic_id} is above {max}, the highest an MSI can address here"
            ),
        }
    }
}

/// The highest APIC ID the 8-bit destination field reaches.
pub const MAX_DESTINATION: u32 = 0xff;
/// The highest with the 7-bit extended destination ID (bits 14:8 in
/// address bits 11:5).
pub const MAX_EXTENDED_DESTINATION: u32 = 0x7fff;

impl MsiMessage {
    /// Fixed delivery of `vector` to physical APIC ID `apic_id`: IDs up to
    /// 255 in the destination field; above that, with `extended` (the
    /// platform decodes the extended destination ID), bits 14:8 in address
    /// bits 11:5, else refused.
    pub fn to_apic(apic_id: u32, vector: u8, extended: bool) -> Result<Self, MsiError> {
        let max = if extended {
            MAX_EXTENDED_DESTINATION
        } else {
            MAX_DESTINATION
        };
        if apic_id > max {
            return Err(MsiError::DestinationTooLarge { apic_id, max });
        }
        let address = MsiAddress::new()
            .with_destination(apic_id as u8)
            .with_extended_destination((apic_id >> 8) as u8);
        Ok(Self {
            address: u64::from(address.into_bits()),
            data: MsiData::new().with_vector(vector).into_bits(),
        })
    }
}

fn msi_at(cfg: &dyn ConfigSpace, cap: u16) -> Option<(MsiCapability, Access<'_>)> {
    match pci::capability_at(cfg, cap)? {
        (PciCapability::Msi(msi), access) => Some((msi, access)),
        _ => None,
    }
}

fn msix_at(cfg: &dyn ConfigSpace, cap: u16) -> Option<(MsixCapability, Access<'_>)> {
    match pci::capability_at(cfg, cap)? {
        (PciCapability::MsiX(msix), access) => Some((msix, access)),
        _ => None,
    }
}

/// Program the MSI capability at `cap` with one message and enable it
/// (multiple message enable = 1 vector; per-vector mask cleared if present).
/// Nothing happens if `cap` is no longer an MSI capability.
pub fn msi_enable(cfg: &dyn ConfigSpace, cap: u16, msg: MsiMessage) {
    let Some((msi, access)) = msi_at(cfg, cap) else {
        return;
    };
    // Disable while changing the message.
    msi.set_enabled(false, &access);
    msi.set_message_info(msg.address, msg.data, &access);
    if msi.has_per_vector_masking() {
        // Mask bits follow the data word: at 0x10 in the 64-bit layout,
        // 0x0c in the 32-bit one (pci_types reaches only the former).
        let mask_off = cap + if msi.is_64bit() { 0x10 } else { 0x0c };
        cfg.write32(mask_off, cfg.read32(mask_off) & !1);
    }
    // Multiple message enable (control bits 6:4) = 0, one vector. Not
    // pci_types' `set_multiple_message_enable`: it writes bits 6:4 of the
    // capability's first dword, which are the capability ID's.
    let ctrl = cfg.read16(cap + 2);
    cfg.write16(cap + 2, ctrl & !(7 << 4));
    msi.set_enabled(true, &access);
}

pub fn msi_disable(cfg: &dyn ConfigSpace, cap: u16) {
    if let Some((msi, access)) = msi_at(cfg, cap) {
        msi.set_enabled(false, &access);
    }
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

/// The table and PBA of the MSI-X capability at `cap`; a layout with no
/// entries if `cap` is no longer an MSI-X capability.
pub fn msix_layout(cfg: &dyn ConfigSpace, cap: u16) -> MsixLayout {
    match msix_at(cfg, cap) {
        Some((msix, _)) => MsixLayout {
            table_size: msix.table_size(),
            table_bar: msix.table_bar(),
            table_offset: msix.table_offset(),
            pba_bar: msix.pba_bar(),
            pba_offset: msix.pba_offset(),
        },
        None => MsixLayout {
            table_size: 0,
            table_bar: 0,
            table_offset: 0,
            pba_bar: 0,
            pba_offset: 0,
        },
    }
}

/// Set the enable and function-mask bits of the MSI-X capability. Masking
/// goes first and unmasking last, so the function is never enabled and
/// unmasked on the way to a masked state.
pub fn msix_control(cfg: &dyn ConfigSpace, cap: u16, enable: bool, function_mask: bool) {
    let Some((mut msix, access)) = msix_at(cfg, cap) else {
        return;
    };
    if function_mask {
        msix.set_function_mask(true, &access);
        msix.set_enabled(enable, &access);
    } else {
        msix.set_enabled(enable, &access);
        msix.set_function_mask(false, &access);
    }
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

/// Whether entry `index` is masked.
pub fn msix_masked(bar: &dyn Mmio32, table_offset: usize, index: u16) -> bool {
    let e = table_offset + usize::from(index) * ENTRY_SIZE + 12;
    bar.read32(e) & VECTOR_CONTROL_MASK != 0
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
        // DM is bit 2, RH bit 3; level-assert bit 14, trigger mode bit 15,
        // delivery mode 10:8 (lowest priority = 001b).
        let address = MsiAddress::new()
            .with_destination(3)
            .with_logical_destination(true)
            .with_redirection_hint(true);
        assert_eq!(address.into_bits(), 0xfee0_300c);
        let data = MsiData::new()
            .with_vector(0x41)
            .with_delivery_mode(1)
            .with_level_assert(true)
            .with_level_triggered(true);
        assert_eq!(data.into_bits(), 0xc141);
    }

    #[test]
    fn destination_encoding() {
        // Up to 255: destination in address bits 19:12, 11:5 stay 0.
        assert_eq!(
            MsiMessage::to_apic(1, 0x40, false),
            Ok(MsiMessage {
                address: 0xfee0_1000,
                data: 0x40
            })
        );
        assert_eq!(
            MsiMessage::to_apic(0xff, 0x40, true).map(|m| m.address),
            Ok(0xfeef_f000)
        );
        // 0x1a3 = bits 14:8 0x01 in address bits 11:5 (0x020), bits 7:0
        // 0xa3 in 19:12 (0xa3000).
        assert_eq!(
            MsiMessage::to_apic(0x1a3, 0x41, true).map(|m| m.address),
            Ok(0xfeea_3020)
        );
        // 0x7fff: 0x7f << 5 = 0xfe0, 0xff << 12.
        assert_eq!(
            MsiMessage::to_apic(0x7fff, 0x41, true).map(|m| m.address),
            Ok(0xfeef_ffe0)
        );
        assert_eq!(
            MsiMessage::to_apic(256, 0x41, false),
            Err(MsiError::DestinationTooLarge {
                apic_id: 256,
                max: 255
            })
        );
        assert_eq!(
            MsiMessage::to_apic(0x8000, 0x41, true),
            Err(MsiError::DestinationTooLarge {
                apic_id: 0x8000,
                max: 0x7fff
            })
        );
        assert_eq!(
            MsiMessage::to_apic(300, 0x41, false)
                .unwrap_err()
                .to_string(),
            "APIC id 300 is above 255, the highest an MSI can address here"
        );
    }

    #[test]
    fn msi_32bit_maskable_capability() {
        let cfg = FakeConfig::new(0x1234, 0x11e8, 0);
        // Control: 32-bit, per-vector masking; mask bits at 0x4c.
        cfg.set(0x40, 0x05 | (0x0100 << 16));
        cfg.set(0x4c, 1);
        msi_enable(&cfg, 0x40, MsiMessage::fixed(2, 0x31));
        assert_eq!(cfg.get(0x44), 0xfee0_2000);
        assert_eq!(cfg.get(0x48) & 0xffff, 0x31);
        assert_eq!(cfg.get(0x4c), 0, "vector 0 unmasked");
        assert_eq!((cfg.get(0x40) >> 16) & 1, 1, "enabled");
        // Something other than MSI at the offset is left alone.
        cfg.set(0x40, 0x01);
        msi_enable(&cfg, 0x40, MsiMessage::fixed(2, 0x32));
        assert_eq!(cfg.get(0x48) & 0xffff, 0x31);
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
        assert!(msix_masked(&bar, 0, 2));
        msix_set_masked(&bar, 0, 2, false);
        assert_eq!(bar.0.borrow()[11], 0);
        assert!(!msix_masked(&bar, 0, 2));
        msix_set_masked(&bar, 0, 2, true);
        assert_eq!(bar.0.borrow()[11], 1);
        bar.0.borrow_mut()[0x2000 / 4] = 1 << 2;
        assert!(msix_pending(&bar, 0x2000, 2));
        assert!(!msix_pending(&bar, 0x2000, 1));
    }
}
