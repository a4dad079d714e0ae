//! Identification: the PCI id table, the part's generation, and the
//! configurations the driver refuses.

use cxos_drivers::{Clock, ConfigSpace, PciId, Platform};

pub const VENDOR_MELLANOX: u16 = 0x15b3;

/// Parts this driver claims (PCI vendor 0x15b3).
pub static PCI_IDS: &[PciId] = &[
    PciId::new(VENDOR_MELLANOX, 0x1013, "ConnectX-4"),
    PciId::new(VENDOR_MELLANOX, 0x1014, "ConnectX-4 VF"),
    PciId::new(VENDOR_MELLANOX, 0x1015, "ConnectX-4 Lx"),
    PciId::new(VENDOR_MELLANOX, 0x1016, "ConnectX-4 Lx VF"),
    PciId::new(VENDOR_MELLANOX, 0x1017, "ConnectX-5"),
    PciId::new(VENDOR_MELLANOX, 0x1018, "ConnectX-5 VF"),
    PciId::new(VENDOR_MELLANOX, 0x1019, "ConnectX-5 Ex"),
    PciId::new(VENDOR_MELLANOX, 0x101a, "ConnectX-5 Ex VF"),
    PciId::new(VENDOR_MELLANOX, 0x101b, "ConnectX-6"),
    PciId::new(VENDOR_MELLANOX, 0x101c, "ConnectX-6 VF"),
    PciId::new(VENDOR_MELLANOX, 0x101d, "ConnectX-6 Dx"),
    PciId::new(VENDOR_MELLANOX, 0x101e, "ConnectX-6 Dx VF"),
    PciId::new(VENDOR_MELLANOX, 0x101f, "ConnectX-6 Lx"),
];

/// Product generation, from the device id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Generation {
    ConnectX4,
    ConnectX4Lx,
    ConnectX5,
    ConnectX5Ex,
    ConnectX6,
    ConnectX6Dx,
    ConnectX6Lx,
}

/// What a device id says: generation and whether it is a VF.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Part {
    pub id: &'static PciId,
    pub generation: Generation,
    pub virtual_function: bool,
}

impl Part {
    pub fn from_ids(vendor: u16, device: u16) -> Option<Part> {
        let id = PciId::lookup(PCI_IDS, vendor, device)?;
        let (generation, vf) = match device {
            0x1013 => (Generation::ConnectX4, false),
            0x1014 => (Generation::ConnectX4, true),
            0x1015 => (Generation::ConnectX4Lx, false),
            0x1016 => (Generation::ConnectX4Lx, true),
            0x1017 => (Generation::ConnectX5, false),
            0x1018 => (Generation::ConnectX5, true),
            0x1019 => (Generation::ConnectX5Ex, false),
            0x101a => (Generation::ConnectX5Ex, true),
            0x101b => (Generation::ConnectX6, false),
            0x101c => (Generation::ConnectX6, true),
            0x101d => (Generation::ConnectX6Dx, false),
            0x101e => (Generation::ConnectX6Dx, true),
            _ => (Generation::ConnectX6Lx, false),
        };
        Some(Part {
            id,
            generation,
            virtual_function: vf,
        })
    }

    pub fn name(&self) -> &'static str {
        self.id.name
    }
}

/// The kernel registry's probe: whether this driver takes the function.
pub fn probe(vendor: u16, device: u16) -> Option<&'static PciId> {
    PciId::lookup(PCI_IDS, vendor, device)
}

/// Offset of PCI capability `id` in config space, walking the list with a
/// bound (the list is device-provided).
pub fn find_capability<C: ConfigSpace>(p: &C, id: u8) -> Option<u16> {
    const STATUS_CAP_LIST: u16 = 1 << 4;
    if p.config_read16(0x06) & STATUS_CAP_LIST == 0 {
        return None;
    }
    let mut ptr = p.config_read16(0x34) & 0xfc;
    for _ in 0..48 {
        if ptr < 0x40 {
            return None;
        }
        let head = p.config_read16(ptr);
        if head as u8 == id {
            return Some(ptr);
        }
        ptr = (head >> 8) & 0xfc;
    }
    None
}

/// PCI Express capability: Device Capabilities (+4) bit 28 "function
/// level reset capable", Device Control (+8) bit 15 "initiate FLR".
const CAP_PCIE: u8 = 0x10;
const DEVCAP_FLR: u32 = 1 << 28;
const DEVCTL_INITIATE_FLR: u16 = 1 << 15;
/// PCIe: software waits 100 ms after initiating an FLR.
const FLR_WAIT_US: u64 = 100_000;
/// [`FLR_WAIT_US`] in nanoseconds (a caller that waits by other means
/// than the clock's `delay_us`: [`flr_initiate`]).
pub const FLR_WAIT_NS: u64 = FLR_WAIT_US * 1000;

/// Function level reset: the device forgets the command queue, its pages
/// and every object, so memory it may still reference can be freed. The
/// command register (bus mastering) is restored afterwards; MSI-X is left
/// disabled. Returns false when the function cannot do FLR.
pub fn function_level_reset<P: Platform>(p: &P) -> bool {
    let Some(command) = flr_initiate(p) else {
        return false;
    };
    p.clock().delay_us(FLR_WAIT_US);
    flr_complete(p, command);
    true
}

/// The first half of [`function_level_reset`]: the FLR initiated; the
/// command register to put back with [`flr_complete`] once
/// [`FLR_WAIT_NS`] passed (the caller waits as it likes), or `None` when
/// the function cannot do FLR.
pub fn flr_initiate<P: Platform>(p: &P) -> Option<FlrPending> {
    let cfg = p.config();
    let cap = find_capability(cfg, CAP_PCIE)?;
    if cfg.config_read32(cap + 4) & DEVCAP_FLR == 0 {
        return None;
    }
    let command = cfg.config_read16(0x04);
    let ctl = cfg.config_read16(cap + 8);
    cfg.config_write16(cap + 8, ctl | DEVCTL_INITIATE_FLR);
    Some(FlrPending { command })
}

/// An FLR initiated by [`flr_initiate`]: the command register it puts
/// back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use = "an initiated FLR is completed with flr_complete"]
pub struct FlrPending {
    command: u16,
}

/// The second half of [`function_level_reset`], after [`FLR_WAIT_NS`].
pub fn flr_complete<P: Platform>(p: &P, pending: FlrPending) {
    p.config().config_write16(0x04, pending.command);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_every_part_and_vf() {
        for dev in 0x1013..=0x101f {
            let part = Part::from_ids(0x15b3, dev).expect("claimed");
            assert_eq!(part.virtual_function, dev % 2 == 0, "{dev:#x}");
        }
        assert_eq!(PCI_IDS.len(), 13);
        assert!(probe(0x15b3, 0x1020).is_none());
        assert!(probe(0x8086, 0x1015).is_none());
        assert_eq!(probe(0x15b3, 0x1015).map(|i| i.name), Some("ConnectX-4 Lx"));
        assert_eq!(
            Part::from_ids(0x15b3, 0x101f).map(|p| p.generation),
            Some(Generation::ConnectX6Lx)
        );
    }
}
