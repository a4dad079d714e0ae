//! PCI on hardware: configuration access through ECAM (MCFG) or the legacy
//! 0xcf8/0xcfc ports, bus enumeration, and claiming functions for drivers.
//!
//! Enumeration only reads. A function is touched (BARs sized, mapped,
//! memory decoding and bus mastering enabled) only when a driver claims it.

use alloc::string::String;
use alloc::vec::Vec;

use cxos_drivers::{PciAddress, PciId};
use cxos_kernel::acpi::EcamRegion;
use cxos_kernel::msi::Mmio32;
use cxos_kernel::pci::{self, BarKind, ConfigSpace, Header};
use spin::Mutex;
use x86_64::instructions::port::Port;

use crate::arch;
use crate::mmio;
use crate::mmu::{self, Cache};

#[derive(Clone, Debug)]
enum Access {
    Ecam(Vec<EcamRegion>),
    Legacy,
}

static ACCESS: Mutex<Access> = Mutex::new(Access::Legacy);

/// Config space of one function.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    addr: PciAddress,
    /// ECAM address of the function's 4 KiB, or None for port access.
    ecam: Option<u64>,
}

impl Config {
    pub fn new(addr: PciAddress) -> Option<Self> {
        match &*ACCESS.lock() {
            Access::Legacy => (addr.segment == 0).then_some(Self { addr, ecam: None }),
            Access::Ecam(regions) => regions
                .iter()
                .find(|r| {
                    r.segment == addr.segment && (r.start_bus..=r.end_bus).contains(&addr.bus)
                })
                .map(|r| Self {
                    addr,
                    ecam: Some(
                        r.base
                            + (u64::from(addr.bus - r.start_bus) << 20)
                            + (u64::from(addr.device) << 15)
                            + (u64::from(addr.function) << 12),
                    ),
                }),
        }
    }

    fn legacy_address(&self, offset: u16) -> u32 {
        0x8000_0000
            | (u32::from(self.addr.bus) << 16)
            | (u32::from(self.addr.device) << 11)
            | (u32::from(self.addr.function) << 8)
            | u32::from(offset & 0xfc)
    }
}

/// PCI configuration mechanism #1: CONFIG_ADDRESS and CONFIG_DATA.
const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
/// One address-data pair at a time across CPUs.
static LEGACY: Mutex<()> = Mutex::new(());

impl ConfigSpace for Config {
    fn read32(&self, offset: u16) -> u32 {
        let offset = offset & 0xffc;
        match self.ecam {
            // SAFETY: the ECAM window was mapped uncached by `init`; offset
            // is inside this function's 4 KiB.
            Some(base) => unsafe { mmio::reg32(base + u64::from(offset)) }.read(),
            // SAFETY: mechanism #1 ports, which only this module uses; with
            // interrupts off and `LEGACY` held nothing comes between the
            // address and the data, on this CPU or another.
            None if offset < 256 => arch::without_interrupts(|| unsafe {
                let _pair = LEGACY.lock();
                Port::<u32>::new(CONFIG_ADDRESS).write(self.legacy_address(offset));
                Port::<u32>::new(CONFIG_DATA).read()
            }),
            None => 0xffff_ffff,
        }
    }

    fn write32(&self, offset: u16, value: u32) {
        let offset = offset & 0xffc;
        match self.ecam {
            // SAFETY: as in `read32`.
            Some(base) => unsafe { mmio::reg32(base + u64::from(offset)) }.write(value),
            // SAFETY: as in `read32`.
            None if offset < 256 => arch::without_interrupts(|| unsafe {
                let _pair = LEGACY.lock();
                Port::<u32>::new(CONFIG_ADDRESS).write(self.legacy_address(offset));
                Port::<u32>::new(CONFIG_DATA).write(value);
            }),
            None => {}
        }
    }
}

/// A function found by enumeration.
#[derive(Clone, Debug)]
pub struct Function {
    pub addr: PciAddress,
    pub header: Header,
    pub line: String,
    pub claimed_by: Option<&'static str>,
}

static FUNCTIONS: Mutex<Vec<Function>> = Mutex::new(Vec::new());

/// Choose the access method and map the ECAM windows.
pub fn init(mcfg: &[EcamRegion]) {
    let mut regions = Vec::new();
    for r in mcfg {
        let len = (u64::from(r.end_bus - r.start_bus) + 1) << 20;
        match mmu::map_identity(r.base, len, Cache::Uncached) {
            Ok(()) => regions.push(*r),
            Err(e) => log::error!(target: "pci", "cannot map ECAM at {:#x}: {e}", r.base),
        }
    }
    if regions.is_empty() {
        log::warn!(target: "pci", "no usable MCFG; using legacy 0xcf8 configuration access");
        *ACCESS.lock() = Access::Legacy;
    } else {
        *ACCESS.lock() = Access::Ecam(regions);
    }
}

/// Walk every bus of every segment and record the functions.
pub fn enumerate() -> usize {
    let ranges: Vec<(u16, u8, u8)> = match &*ACCESS.lock() {
        Access::Legacy => alloc::vec![(0, 0, 255)],
        Access::Ecam(r) => r
            .iter()
            .map(|r| (r.segment, r.start_bus, r.end_bus))
            .collect(),
    };
    let mut found = Vec::new();
    for (seg, first, last) in ranges {
        for bus in first..=last {
            for dev in 0..32u8 {
                let Some(cfg) = Config::new(PciAddress::new(seg, bus, dev, 0)) else {
                    continue;
                };
                let Some(h0) = pci::header(&cfg) else {
                    continue;
                };
                let nfn = if h0.multifunction { 8 } else { 1 };
                for func in 0..nfn {
                    let addr = PciAddress::new(seg, bus, dev, func);
                    let Some(cfg) = Config::new(addr) else {
                        continue;
                    };
                    let Some(h) = pci::header(&cfg) else {
                        continue;
                    };
                    found.push(Function {
                        addr,
                        header: h,
                        line: pci::describe(addr, &h, &cfg),
                        claimed_by: None,
                    });
                }
            }
        }
    }
    let n = found.len();
    *FUNCTIONS.lock() = found;
    n
}

pub fn functions() -> Vec<Function> {
    FUNCTIONS.lock().clone()
}

/// A memory BAR mapped uncached at its physical address.
#[derive(Clone, Copy, Debug)]
pub struct Mmio {
    base: u64,
    len: usize,
}

impl Mmio {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Where the BAR is mapped (its physical address).
    pub fn base(&self) -> u64 {
        self.base
    }

    fn check(&self, offset: usize, size: usize) -> *mut u8 {
        assert!(
            offset.checked_add(size).is_some_and(|e| e <= self.len) && offset.is_multiple_of(size),
            "MMIO access at {offset:#x} (size {size}) outside BAR of {:#x} bytes or unaligned",
            self.len
        );
        (self.base as usize + offset) as *mut u8
    }

    pub fn read32(&self, offset: usize) -> u32 {
        // SAFETY: in bounds and aligned (checked); mapped uncached by claim.
        unsafe { mmio::reg32(self.check(offset, 4) as u64) }.read()
    }

    pub fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { mmio::reg32(self.check(offset, 4) as u64) }.write(value)
    }
}

impl Mmio32 for Mmio {
    fn read32(&self, offset: usize) -> u32 {
        Mmio::read32(self, offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        Mmio::write32(self, offset, value)
    }
}

/// A function claimed by a driver: BARs sized and mapped, memory decoding
/// and bus mastering on, INTx off (cxos uses MSI/MSI-X only).
#[derive(Debug)]
pub struct Device {
    pub addr: PciAddress,
    pub cfg: Config,
    mapped: Vec<(u8, Mmio)>,
}

impl Device {
    /// The mapping of memory BAR `index`.
    pub fn bar(&self, index: u8) -> Option<Mmio> {
        self.mapped
            .iter()
            .find(|(i, _)| *i == index)
            .map(|&(_, m)| m)
    }
}

/// Claim the first unclaimed function whose vendor/device pair is in `ids`
/// for `owner`. Errors name the function and the reason.
pub fn claim(ids: &'static [PciId], owner: &'static str) -> Option<Result<Device, String>> {
    let (addr, id) = {
        let mut fs = FUNCTIONS.lock();
        let f = fs.iter_mut().find(|f| {
            f.claimed_by.is_none() && PciId::lookup(ids, f.header.vendor, f.header.device).is_some()
        })?;
        f.claimed_by = Some(owner);
        let id = PciId::lookup(ids, f.header.vendor, f.header.device)?;
        (f.addr, id)
    };
    Some(setup(addr, id, owner))
}

fn setup(addr: PciAddress, id: &'static PciId, owner: &'static str) -> Result<Device, String> {
    let cfg = Config::new(addr).ok_or_else(|| alloc::format!("{addr}: no config access"))?;
    let h = pci::header(&cfg).ok_or_else(|| alloc::format!("{addr}: function vanished"))?;
    let bars = pci::size_bars(&cfg, h.header_type);
    let mut mapped = Vec::new();
    for b in bars.iter().filter(|b| b.kind != BarKind::Io) {
        if b.base == 0 {
            return Err(alloc::format!(
                "{addr}: BAR{} ({:#x} bytes) has no address assigned by firmware",
                b.index,
                b.size
            ));
        }
        mmu::map_identity(b.base, b.size, Cache::Uncached)
            .map_err(|e| alloc::format!("{addr}: BAR{}: {e}", b.index))?;
        mapped.push((
            b.index,
            Mmio {
                base: b.base,
                len: b.size as usize,
            },
        ));
    }
    let cmd = pci::command(&cfg);
    pci::set_command(
        &cfg,
        cmd | pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER | pci::COMMAND_INTX_DISABLE,
    );
    log::info!(target: "pci", "{addr} {} claimed by {owner}", id.name);
    for b in &bars {
        log::debug!(
            target: "pci",
            "{addr} BAR{} {:?}{} at {:#x}, {:#x} bytes",
            b.index,
            b.kind,
            if b.prefetchable { " prefetchable" } else { "" },
            b.base,
            b.size
        );
    }
    Ok(Device { addr, cfg, mapped })
}
