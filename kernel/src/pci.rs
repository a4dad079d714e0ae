//! PCI configuration space logic over an abstract accessor: header fields,
//! capability walk, BAR sizing, and the console line of a function.
//!
//! `pci_types` reads the header and parses capabilities (MSI and MSI-X in
//! [`crate::msi`]); the capability walk and BAR sizing stay here because
//! the device is untrusted input (see [`capabilities`] and [`size_bars`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use cxos_drivers::PciAddress;
use pci_types::capability::PciCapability;
pub use pci_types::{CommandRegister, HeaderType};
use pci_types::{ConfigRegionAccess, EndpointHeader, PciHeader};

/// Config space of one function, 32-bit accesses at 4-aligned offsets.
pub trait ConfigSpace {
    fn read32(&self, offset: u16) -> u32;
    fn write32(&self, offset: u16, value: u32);

    fn read16(&self, offset: u16) -> u16 {
        (self.read32(offset & !3) >> ((offset & 2) * 8)) as u16
    }
    fn read8(&self, offset: u16) -> u8 {
        (self.read32(offset & !3) >> ((offset & 3) * 8)) as u8
    }
    /// Read-modify-write of the 16-bit half (config writes are 32-bit here).
    /// Callers must not use this on registers with write-1-to-clear bits in
    /// the other half (the command/status pair is handled by `set_command`).
    fn write16(&self, offset: u16, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read32(offset & !3);
        let new = (old & !(0xffff << shift)) | (u32::from(value) << shift);
        self.write32(offset & !3, new);
    }
}

/// pci_types' config access for one function. The function is fixed by
/// `cfg`, so pci_types' address argument is not used (it gets [`bound`]).
pub struct Access<'a> {
    cfg: &'a dyn ConfigSpace,
    /// Show pci_types exactly one capability, the one at this offset (see
    /// [`capability_at`]).
    only_capability: Option<u16>,
}

/// The address pci_types is given; [`Access`] ignores it.
fn bound() -> pci_types::PciAddress {
    pci_types::PciAddress::default()
}

const STATUS_CAPABILITY_LIST: u32 = 1 << (16 + 4);

impl<'a> Access<'a> {
    fn new(cfg: &'a dyn ConfigSpace) -> Self {
        Self {
            cfg,
            only_capability: None,
        }
    }
}

impl core::fmt::Debug for Access<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Access")
            .field("only_capability", &self.only_capability)
            .finish_non_exhaustive()
    }
}

impl ConfigRegionAccess for Access<'_> {
    unsafe fn read(&self, _: pci_types::PciAddress, offset: u16) -> u32 {
        let v = self.cfg.read32(offset);
        match self.only_capability {
            Some(_) if offset == 0x04 => v | STATUS_CAPABILITY_LIST,
            Some(cap) if offset == 0x34 => (v & !0xff) | u32::from(cap),
            Some(cap) if offset == cap => v & !0xff00,
            _ => v,
        }
    }

    unsafe fn write(&self, _: pci_types::PciAddress, offset: u16, value: u32) {
        let value = match self.only_capability {
            // Hand the device its own next pointer back (read-only on real
            // hardware, but kept as it was all the same).
            Some(cap) if offset == cap => (value & !0xff00) | (self.cfg.read32(cap) & 0xff00),
            _ => value,
        };
        self.cfg.write32(offset, value);
    }
}

pub const COMMAND_IO: CommandRegister = CommandRegister::IO_ENABLE;
pub const COMMAND_MEMORY: CommandRegister = CommandRegister::MEMORY_ENABLE;
pub const COMMAND_BUS_MASTER: CommandRegister = CommandRegister::BUS_MASTER_ENABLE;
pub const COMMAND_INTX_DISABLE: CommandRegister = CommandRegister::INTERRUPT_DISABLE;

/// Write the command register without clearing status bits (status is
/// write-1-to-clear: writing zeros to it leaves it alone). pci_types'
/// `update_command` writes the status half back as it read it, which
/// clears every status bit that was set.
pub fn set_command(cfg: &dyn ConfigSpace, command: CommandRegister) {
    cfg.write32(0x04, u32::from(command.bits()));
}

pub fn command(cfg: &dyn ConfigSpace) -> CommandRegister {
    PciHeader::new(bound()).command(Access::new(cfg))
}

pub const CAP_PM: u8 = 0x01;
pub const CAP_VPD: u8 = 0x03;
pub const CAP_MSI: u8 = 0x05;
pub const CAP_VENDOR: u8 = 0x09;
pub const CAP_PCIE: u8 = 0x10;
pub const CAP_MSIX: u8 = 0x11;

/// The identifying fields of a function's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub vendor: u16,
    pub device: u16,
    /// Class, subclass, programming interface (24 bits).
    pub class: u32,
    pub header_type: HeaderType,
    pub multifunction: bool,
}

/// Read the header; `None` when no function answers (vendor 0xffff).
pub fn header(cfg: &dyn ConfigSpace) -> Option<Header> {
    let access = Access::new(cfg);
    let h = PciHeader::new(bound());
    let (vendor, device) = h.id(&access);
    if vendor == 0xffff || vendor == 0 {
        return None;
    }
    let (_revision, class, subclass, interface) = h.revision_and_class(&access);
    Some(Header {
        vendor,
        device,
        class: u32::from_be_bytes([0, class, subclass, interface]),
        header_type: h.header_type(&access),
        multifunction: h.has_multiple_functions(&access),
    })
}

/// `(id, offset)` of each capability in list order. The walk is bounded,
/// masks the pointers' reserved low bits and stops at pointers into the
/// header, so a looping or corrupt list ends. pci_types' own walk
/// (`CapabilityIterator`) does none of that (its `next` loops over null
/// entries without a bound), and it needs an endpoint header while bridges
/// have capabilities too: the walk is done here, pci_types parses what it
/// finds ([`capability_at`]).
pub fn capabilities(cfg: &dyn ConfigSpace) -> Vec<(u8, u16)> {
    let mut caps = Vec::new();
    if !PciHeader::new(bound())
        .status(Access::new(cfg))
        .has_capability_list()
    {
        return caps;
    }
    let mut ptr = u16::from(cfg.read8(0x34)) & 0xfc;
    while ptr >= 0x40 && caps.len() < 48 {
        let word = cfg.read16(ptr);
        caps.push((word as u8, ptr));
        ptr = (word >> 8) & 0xfc;
    }
    caps
}

pub fn find_capability(cfg: &dyn ConfigSpace, id: u8) -> Option<u16> {
    capabilities(cfg)
        .into_iter()
        .find(|&(c, _)| c == id)
        .map(|(_, off)| off)
}

/// The capability at `cap` (an offset [`capabilities`] returned) as
/// pci_types parses it; `None` if it is a null entry or the function is not
/// an endpoint (pci_types parses capabilities of endpoint headers only).
/// pci_types sees a list holding this one capability, so its walk ends.
/// It comes with the access to program it through.
pub fn capability_at(cfg: &dyn ConfigSpace, cap: u16) -> Option<(PciCapability, Access<'_>)> {
    if cap < 0x40 {
        // Inside the header: no capability, whatever the device says.
        return None;
    }
    let access = Access {
        cfg,
        only_capability: Some(cap & 0xfc),
    };
    let endpoint = EndpointHeader::from_header(PciHeader::new(bound()), &access)?;
    let found = endpoint.capabilities(&access).next()?;
    Some((found, access))
}

/// MSI-X table size (entries) from the capability at `cap`. Read here
/// rather than through pci_types so it works for bridges too (the console
/// line of a root port shows it).
pub fn msix_table_size(cfg: &dyn ConfigSpace, cap: u16) -> u16 {
    (cfg.read16(cap + 2) & 0x7ff) + 1
}

/// The console line of one function, as `lspci` and the boot print it and
/// xtask's console.rs reads it: `pci BB:DD.F VVVV:DDDD class CCSSPP` then
/// capability words.
pub fn describe(addr: PciAddress, h: &Header, cfg: &dyn ConfigSpace) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "pci {addr} {:04x}:{:04x} class {:06x}",
        h.vendor, h.device, h.class
    );
    for (id, off) in capabilities(cfg) {
        let _ = match id {
            CAP_PM => write!(s, " pm"),
            CAP_MSI => write!(s, " msi"),
            CAP_MSIX => write!(s, " msix({})", msix_table_size(cfg, off)),
            CAP_PCIE => write!(s, " pcie"),
            CAP_VPD => write!(s, " vpd"),
            CAP_VENDOR => write!(s, " vendor"),
            other => write!(s, " cap({other:02x})"),
        };
    }
    s
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Io,
    Mem32,
    Mem64,
}

/// A sized base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// BAR index (the low one for 64-bit BARs).
    pub index: u8,
    pub kind: BarKind,
    pub prefetchable: bool,
    pub base: u64,
    pub size: u64,
}

/// Size the six BARs of a type 0 header (two of a bridge), restoring their
/// values. Decoding is turned off while all-ones are written so the probe
/// never moves a live BAR onto something else.
///
/// pci_types' `EndpointHeader::bar` is not used: it panics on a reserved
/// memory type and overflows a shift on a BAR whose address bits are all
/// read-only (both are the device's to choose), sizes a 2 GiB 64-bit BAR as
/// 0xffff_ffff_8000_0000 (a sign-extended `1i32 << 31`), leaves decoding on
/// while probing, returns no size for I/O BARs and has no bridge BARs.
pub fn size_bars(cfg: &dyn ConfigSpace, header_type: HeaderType) -> Vec<Bar> {
    let count = match header_type {
        HeaderType::Endpoint => 6,
        HeaderType::PciPciBridge => 2,
        _ => 0,
    };
    let mut bars = Vec::new();
    let cmd = command(cfg);
    set_command(cfg, cmd & !(COMMAND_IO | COMMAND_MEMORY));
    let mut i = 0u8;
    while i < count {
        let off = 0x10 + u16::from(i) * 4;
        let orig = cfg.read32(off);
        cfg.write32(off, 0xffff_ffff);
        let mask = cfg.read32(off);
        cfg.write32(off, orig);
        if orig & 1 == 1 {
            let size_mask = mask & !3 & 0xffff;
            if size_mask != 0 {
                bars.push(Bar {
                    index: i,
                    kind: BarKind::Io,
                    prefetchable: false,
                    base: u64::from(orig & !3),
                    size: u64::from((!size_mask & 0xffff) + 1),
                });
            }
            i += 1;
            continue;
        }
        let prefetchable = orig & 8 != 0;
        if (orig >> 1) & 3 == 2 && i + 1 < count {
            let off_hi = off + 4;
            let orig_hi = cfg.read32(off_hi);
            cfg.write32(off_hi, 0xffff_ffff);
            let mask_hi = cfg.read32(off_hi);
            cfg.write32(off_hi, orig_hi);
            let mask64 = (u64::from(mask_hi) << 32) | u64::from(mask & !0xf);
            if mask64 != 0 {
                bars.push(Bar {
                    index: i,
                    kind: BarKind::Mem64,
                    prefetchable,
                    base: (u64::from(orig_hi) << 32) | u64::from(orig & !0xf),
                    size: (!mask64).wrapping_add(1),
                });
            }
            i += 2;
        } else {
            let m = mask & !0xf;
            if m != 0 {
                bars.push(Bar {
                    index: i,
                    kind: BarKind::Mem32,
                    prefetchable,
                    base: u64::from(orig & !0xf),
                    size: u64::from((!m).wrapping_add(1)),
                });
            }
            i += 1;
        }
    }
    set_command(cfg, cmd);
    bars
}

/// Why a PCI address argument was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AddressError {
    /// Not `BB:DD.F` or `SSSS:BB:DD.F`.
    Syntax,
    /// A field is not hexadecimal or too wide for its place.
    Field(&'static str),
    /// Device above 0x1f or function above 7.
    Range(&'static str),
}

impl core::fmt::Display for AddressError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Syntax => write!(f, "expected BB:DD.F or SSSS:BB:DD.F"),
            Self::Field(what) => write!(f, "bad {what} (hexadecimal)"),
            Self::Range(what) => write!(f, "{what} out of range"),
        }
    }
}

/// Parse a PCI address as the console prints it (`01:00.0`, or with a
/// segment `0001:01:00.0`, hexadecimal, as `lspci` writes them).
pub fn parse_address(text: &str) -> Result<PciAddress, AddressError> {
    fn hex(s: &str, max_digits: usize, what: &'static str) -> Result<u32, AddressError> {
        if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AddressError::Field(what));
        }
        u32::from_str_radix(s, 16).map_err(|_| AddressError::Field(what))
    }
    let text = text.trim();
    let (rest, func) = text.rsplit_once('.').ok_or(AddressError::Syntax)?;
    let mut parts = rest.rsplitn(3, ':');
    let dev = parts.next().ok_or(AddressError::Syntax)?;
    let bus = parts.next().ok_or(AddressError::Syntax)?;
    let seg = parts.next();
    if seg.is_some_and(|s| s.contains(':')) {
        return Err(AddressError::Syntax);
    }
    let segment = seg.map_or(Ok(0), |s| hex(s, 4, "segment"))?;
    let bus = hex(bus, 2, "bus")?;
    let device = hex(dev, 2, "device")?;
    let function = hex(func, 1, "function")?;
    if device > 0x1f {
        return Err(AddressError::Range("device"));
    }
    if function > 7 {
        return Err(AddressError::Range("function"));
    }
    Ok(PciAddress::new(
        segment as u16,
        bus as u8,
        device as u8,
        function as u8,
    ))
}

#[cfg(test)]
pub mod fake {
    //! A config space that behaves like a device: read-only bits, BAR size
    //! masks, write-1-to-clear status.
    use super::ConfigSpace;
    use std::cell::RefCell;

    #[derive(Debug)]
    pub struct FakeConfig {
        pub regs: RefCell<[u32; 1024]>,
        /// Size mask of each BAR register (0 = unimplemented).
        pub bar_masks: [u32; 6],
        pub writes: RefCell<Vec<(u16, u32)>>,
    }

    impl FakeConfig {
        pub fn new(vendor: u16, device: u16, class: u32) -> Self {
            let mut regs = [0u32; 1024];
            regs[0] = u32::from(vendor) | (u32::from(device) << 16);
            regs[2] = class << 8;
            Self {
                regs: RefCell::new(regs),
                bar_masks: [0; 6],
                writes: RefCell::new(Vec::new()),
            }
        }

        pub fn set(&self, off: u16, v: u32) {
            self.regs.borrow_mut()[usize::from(off / 4)] = v;
        }

        pub fn get(&self, off: u16) -> u32 {
            self.regs.borrow()[usize::from(off / 4)]
        }

        /// Chain capabilities `(id, offset, extra 16 bits, further dwords)`.
        pub fn add_caps(&self, caps: &[(u8, u16, u16)]) {
            self.set(0x04, self.get(0x04) | (1 << 20));
            self.set(0x34, u32::from(caps[0].1));
            for (i, &(id, off, extra)) in caps.iter().enumerate() {
                let next = caps.get(i + 1).map_or(0, |c| c.1);
                self.set(
                    off,
                    u32::from(id) | (u32::from(next) << 8) | (u32::from(extra) << 16),
                );
            }
        }
    }

    impl ConfigSpace for FakeConfig {
        fn read32(&self, offset: u16) -> u32 {
            self.regs.borrow()[usize::from(offset / 4)]
        }

        fn write32(&self, offset: u16, value: u32) {
            self.writes.borrow_mut().push((offset, value));
            let idx = usize::from(offset / 4);
            let mut regs = self.regs.borrow_mut();
            match offset {
                0x04 => {
                    // Status (high half) is write-1-to-clear.
                    let status = (regs[1] >> 16) & !(value >> 16);
                    regs[1] = (status << 16) | (value & 0xffff);
                }
                0x10..=0x27 => {
                    let bar = usize::from((offset - 0x10) / 4);
                    let mask = self.bar_masks[bar];
                    let low_bits = regs[idx] & if regs[idx] & 1 == 1 { 0x3 } else { 0xf };
                    regs[idx] = (value & mask) | (low_bits & !mask);
                }
                _ => regs[idx] = value,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeConfig;
    use super::*;

    #[test]
    fn bars_are_sized_and_restored() {
        let mut cfg = FakeConfig::new(0x8086, 0x10d3, 0x020000);
        // BAR0 128 KiB mem32, BAR1 unimplemented, BAR2 I/O 32 bytes,
        // BAR3 + BAR4: 64-bit prefetchable 32 MiB above 4 GiB.
        cfg.bar_masks = [
            !(0x2_0000 - 1),
            0,
            !(32 - 1),
            !(0x200_0000 - 1),
            0xffff_ffff,
            0,
        ];
        cfg.set(0x10, 0xfebc_0000);
        cfg.set(0x18, 0xc041);
        cfg.set(0x1c, 0xfe00_0000 | 0xc);
        cfg.set(0x20, 0x1);
        cfg.set(0x04, 0x0007 | (0x0010 << 16));
        let bars = size_bars(&cfg, HeaderType::Endpoint);
        assert_eq!(
            bars,
            vec![
                Bar {
                    index: 0,
                    kind: BarKind::Mem32,
                    prefetchable: false,
                    base: 0xfebc_0000,
                    size: 0x2_0000
                },
                Bar {
                    index: 2,
                    kind: BarKind::Io,
                    prefetchable: false,
                    base: 0xc040,
                    size: 32
                },
                Bar {
                    index: 3,
                    kind: BarKind::Mem64,
                    prefetchable: true,
                    base: 0x1_fe00_0000,
                    size: 0x200_0000
                },
            ]
        );
        // Values and command restored; decoding was off during the probe.
        assert_eq!(cfg.get(0x10), 0xfebc_0000);
        assert_eq!(cfg.get(0x1c), 0xfe00_000c);
        assert_eq!(cfg.get(0x20), 1);
        assert_eq!(cfg.get(0x04) & 0xffff, 0x0007);
        assert_eq!(cfg.get(0x04) >> 16, 0x0010, "status bits survive");
        let writes = cfg.writes.borrow();
        assert_eq!(writes[0], (0x04, 0x0004), "memory and I/O decode off first");
    }

    #[test]
    fn bars_a_device_chooses_badly_are_sized_without_panic() {
        let mut cfg = FakeConfig::new(0x15b3, 0x1017, 0x020000);
        // BAR0 + BAR1: 64-bit, 2 GiB, at 4 GiB. BAR2: the reserved memory
        // type 01b (taken as 32-bit). BAR3: prefetchable 32-bit with every
        // address bit read-only (no size: unimplemented).
        cfg.bar_masks = [0x8000_0000, 0xffff_ffff, 0xffff_f000, 0, 0, 0];
        cfg.set(0x10, 0x4);
        cfg.set(0x14, 0x1);
        cfg.set(0x18, 0xfeb0_0002);
        cfg.set(0x1c, 0x8);
        assert_eq!(
            size_bars(&cfg, HeaderType::Endpoint),
            vec![
                Bar {
                    index: 0,
                    kind: BarKind::Mem64,
                    prefetchable: false,
                    base: 0x1_0000_0000,
                    size: 0x8000_0000
                },
                Bar {
                    index: 2,
                    kind: BarKind::Mem32,
                    prefetchable: false,
                    base: 0xfeb0_0000,
                    size: 0x1000
                },
            ]
        );
        // A bridge has two BARs; other header types none.
        assert_eq!(size_bars(&cfg, HeaderType::PciPciBridge).len(), 1);
        assert!(size_bars(&cfg, HeaderType::CardBusBridge).is_empty());
    }

    #[test]
    fn capability_at_parses_one_capability() {
        let cfg = FakeConfig::new(0x8086, 0x10d3, 0x020000);
        cfg.add_caps(&[(CAP_MSI, 0xd0, 0x0080), (CAP_MSIX, 0xa0, 4)]);
        cfg.set(0xa4, 3);
        let Some((PciCapability::MsiX(msix), _)) = capability_at(&cfg, 0xa0) else {
            panic!("no MSI-X at 0xa0");
        };
        assert_eq!((msix.table_size(), msix.table_bar()), (5, 3));
        let Some((PciCapability::Msi(msi), _)) = capability_at(&cfg, 0xd0) else {
            panic!("no MSI at 0xd0");
        };
        assert!(msi.is_64bit());
        // pci_types sees only the capability asked for, however the list
        // runs: here it loops back on itself.
        cfg.set(0xa0, u32::from(CAP_MSIX) | (0xd0 << 8) | (4 << 16));
        assert!(matches!(
            capability_at(&cfg, 0xa0),
            Some((PciCapability::MsiX(_), _))
        ));
        // Nothing inside the header is a capability.
        assert!(capability_at(&cfg, 0x34).is_none());
        // A null entry is no capability; nor is anything on a bridge.
        cfg.set(0x60, 0);
        assert!(capability_at(&cfg, 0x60).is_none());
        cfg.set(0x0c, 1 << 16);
        assert!(capability_at(&cfg, 0xa0).is_none());
        assert_eq!(header(&cfg).unwrap().header_type, HeaderType::PciPciBridge);
    }

    #[test]
    fn capability_line_follows_contract() {
        let cfg = FakeConfig::new(0x8086, 0x10d3, 0x020000);
        // e1000e in QEMU: PM at c8, MSI at d0, PCIe at e0, MSI-X at a0 (5 entries).
        cfg.add_caps(&[
            (CAP_PM, 0xc8, 0),
            (CAP_MSI, 0xd0, 0),
            (CAP_PCIE, 0xe0, 0),
            (CAP_MSIX, 0xa0, 4),
            (0x12, 0x60, 0),
        ]);
        let h = header(&cfg).unwrap();
        assert_eq!(
            describe(PciAddress::new(0, 0, 3, 0), &h, &cfg),
            "pci 00:03.0 8086:10d3 class 020000 pm msi pcie msix(5) cap(12)"
        );
    }

    #[test]
    fn looping_capability_list_terminates() {
        let cfg = FakeConfig::new(0x1234, 0x11e8, 0x00ff00);
        cfg.add_caps(&[(CAP_MSI, 0x40, 0), (CAP_PM, 0x50, 0)]);
        // Point the last one back at the first.
        cfg.set(0x50, u32::from(CAP_PM) | (0x40 << 8));
        assert_eq!(capabilities(&cfg).len(), 48);
        // A pointer into the header ends the walk.
        cfg.set(0x50, u32::from(CAP_PM) | (0x3c << 8));
        assert_eq!(capabilities(&cfg), vec![(CAP_MSI, 0x40), (CAP_PM, 0x50)]);
    }

    #[test]
    fn absent_function_has_no_header() {
        let cfg = FakeConfig::new(0xffff, 0xffff, 0xffffff);
        assert_eq!(header(&cfg), None);
        let cfg = FakeConfig::new(0x1234, 0x11e8, 0x00ff00);
        cfg.set(0x0c, 0x80 << 16);
        let h = header(&cfg).unwrap();
        assert!(h.multifunction);
        assert_eq!(h.class, 0x00ff00);
        assert!(capabilities(&cfg).is_empty());
    }

    #[test]
    fn write16_keeps_other_half() {
        let cfg = FakeConfig::new(0x1234, 0x11e8, 0);
        cfg.set(0x40, 0xaaaa_5505);
        cfg.write16(0x42, 0x1234);
        assert_eq!(cfg.get(0x40), 0x1234_5505);
        assert_eq!(cfg.read16(0x42), 0x1234);
        assert_eq!(cfg.read8(0x41), 0x55);
    }
}

#[cfg(test)]
mod address_tests {
    use super::*;

    #[test]
    fn addresses_parse_as_lspci_prints_them() {
        assert_eq!(parse_address("01:00.0"), Ok(PciAddress::new(0, 1, 0, 0)));
        assert_eq!(
            parse_address(" 3b:1f.7 "),
            Ok(PciAddress::new(0, 0x3b, 0x1f, 7))
        );
        assert_eq!(
            parse_address("0001:a0:02.1"),
            Ok(PciAddress::new(1, 0xa0, 2, 1))
        );
        assert_eq!(parse_address("0:0.0"), Ok(PciAddress::new(0, 0, 0, 0)));
        // What is parsed prints back the same.
        let a = parse_address("0002:81:00.1").unwrap();
        assert_eq!(alloc::format!("{a}"), "0002:81:00.1");
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        assert_eq!(parse_address(""), Err(AddressError::Syntax));
        assert_eq!(parse_address("01:00"), Err(AddressError::Syntax));
        assert_eq!(parse_address("0100.0"), Err(AddressError::Syntax));
        assert_eq!(parse_address("1:2:3:00.0"), Err(AddressError::Syntax));
        assert_eq!(parse_address("01:20.0"), Err(AddressError::Range("device")));
        assert_eq!(
            parse_address("01:00.8"),
            Err(AddressError::Range("function"))
        );
        assert_eq!(parse_address("100:00.0"), Err(AddressError::Field("bus")));
        assert_eq!(parse_address("0g:00.0"), Err(AddressError::Field("bus")));
        assert_eq!(parse_address("01:+1.0"), Err(AddressError::Field("device")));
        assert_eq!(
            parse_address("10000:01:00.0"),
            Err(AddressError::Field("segment"))
        );
        assert_eq!(
            parse_address("01:00.00"),
            Err(AddressError::Field("function"))
        );
        assert!(
            alloc::format!("{}", AddressError::Syntax).contains("BB:DD.F"),
            "the message says what is expected"
        );
    }
}
