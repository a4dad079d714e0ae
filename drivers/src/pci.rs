//! PCI identities shared by the kernel's driver registry and the drivers.

use core::fmt;

/// Segment, bus, device, function of a PCI function.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct PciAddress {
    pub segment: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl PciAddress {
    pub const fn new(segment: u16, bus: u8, device: u8, function: u8) -> Self {
        Self {
            segment,
            bus,
            device,
            function,
        }
    }
}

/// `BB:DD.F`, with a `SSSS:` prefix only outside segment 0 (as `lspci` does).
impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segment != 0 {
            write!(f, "{:04x}:", self.segment)?;
        }
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            self.bus, self.device, self.function
        )
    }
}

/// A vendor/device pair a driver claims, with the part's marketing name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PciId {
    pub vendor: u16,
    pub device: u16,
    pub name: &'static str,
}

impl PciId {
    pub const fn new(vendor: u16, device: u16, name: &'static str) -> Self {
        Self {
            vendor,
            device,
            name,
        }
    }

    /// The entry of `table` matching `vendor`/`device`, if any.
    pub fn lookup(table: &'static [PciId], vendor: u16, device: u16) -> Option<&'static PciId> {
        table
            .iter()
            .find(|id| id.vendor == vendor && id.device == device)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn address_formats_like_lspci() {
        assert_eq!(format!("{}", PciAddress::new(0, 1, 0, 0)), "01:00.0");
        assert_eq!(format!("{}", PciAddress::new(0, 0xaf, 0x1f, 7)), "af:1f.7");
        assert_eq!(format!("{}", PciAddress::new(1, 2, 3, 4)), "0001:02:03.4");
    }

    #[test]
    fn lookup_matches_vendor_and_device() {
        static TABLE: [PciId; 2] = [
            PciId::new(0x15b3, 0x1017, "ConnectX-5"),
            PciId::new(0x15b3, 0x1019, "ConnectX-5 Ex"),
        ];
        assert_eq!(
            PciId::lookup(&TABLE, 0x15b3, 0x1019).map(|i| i.name),
            Some("ConnectX-5 Ex")
        );
        assert!(PciId::lookup(&TABLE, 0x8086, 0x1019).is_none());
        assert!(PciId::lookup(&TABLE, 0x15b3, 0x1013).is_none());
    }
}
