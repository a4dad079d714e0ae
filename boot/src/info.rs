//! The boot protocol independent description of the machine.

use heapless::Vec;

/// Memory map entries kept; more are reported through `memory_truncated`.
pub const MAX_MEMORY_REGIONS: usize = 128;
/// Command line bytes kept; more are reported through `cmdline_truncated`.
pub const MAX_CMDLINE: usize = 1024;
/// Boot structure ranges recorded for reservation.
pub const MAX_BOOT_RANGES: usize = 8;

/// How the kernel was entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootProtocol {
    Pvh,
    Multiboot2,
}

impl BootProtocol {
    /// The word used on the console's first line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pvh => "pvh",
            Self::Multiboot2 => "multiboot2",
        }
    }
}

/// E820 memory types (both PVH and multiboot2 use them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Bad,
    Other(u32),
}

impl MemoryKind {
    pub fn from_e820(kind: u32) -> Self {
        match kind {
            1 => Self::Usable,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Bad,
            other => Self::Other(other),
        }
    }
}

/// One entry of the firmware's memory map, as given (not yet sanitized).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub start: u64,
    pub len: u64,
    pub kind: MemoryKind,
}

/// Where the ACPI RSDP is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsdpSource {
    /// Not given by the loader: the kernel scans the BIOS area.
    None,
    /// Physical address of the RSDP (PVH `rsdp_paddr`).
    Address(u64),
    /// A copy of the RSDP (multiboot2 tags 14/15), `len` bytes valid.
    Copy { bytes: [u8; 36], len: usize },
}

/// What the kernel needs to know from the loader, copied out of the boot
/// structures so their memory can be reused. It exists before any heap, so
/// its lists are fixed-capacity `heapless` vectors: the bounds are in the
/// types, and what does not fit is flagged, never written past.
#[derive(Clone, Debug)]
pub struct BootInfo {
    pub protocol: BootProtocol,
    memory: Vec<MemoryRegion, MAX_MEMORY_REGIONS>,
    /// The loader's map had more entries than [`MAX_MEMORY_REGIONS`].
    pub memory_truncated: bool,
    cmdline: Vec<u8, MAX_CMDLINE>,
    /// The command line was longer than [`MAX_CMDLINE`] bytes.
    pub cmdline_truncated: bool,
    pub rsdp: RsdpSource,
    boot_ranges: Vec<(u64, u64), MAX_BOOT_RANGES>,
    /// `[start, end)` of the loaded kernel image (text, data, bss).
    pub kernel_image: (u64, u64),
}

impl BootInfo {
    pub const fn new(protocol: BootProtocol) -> Self {
        Self {
            protocol,
            memory: Vec::new(),
            memory_truncated: false,
            cmdline: Vec::new(),
            cmdline_truncated: false,
            rsdp: RsdpSource::None,
            boot_ranges: Vec::new(),
            kernel_image: (0, 0),
        }
    }

    /// The memory map in the loader's order.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.memory
    }

    pub fn push_memory(&mut self, region: MemoryRegion) {
        if self.memory.push(region).is_err() {
            self.memory_truncated = true;
        }
    }

    /// The command line bytes (not necessarily UTF-8: the kernel checks).
    pub fn cmdline(&self) -> &[u8] {
        &self.cmdline
    }

    pub fn set_cmdline(&mut self, bytes: &[u8]) {
        let kept = &bytes[..bytes.len().min(MAX_CMDLINE)];
        self.cmdline.clear();
        // Cannot fail: `kept` is at most the capacity.
        let _ = self.cmdline.extend_from_slice(kept);
        self.cmdline_truncated = bytes.len() > MAX_CMDLINE;
    }

    /// `[start, end)` physical ranges of the loader's structures.
    pub fn boot_ranges(&self) -> &[(u64, u64)] {
        &self.boot_ranges
    }

    /// Record a loader structure; past [`MAX_BOOT_RANGES`] ranges are
    /// dropped (the loaders give at most three).
    pub fn push_boot_range(&mut self, start: u64, end: u64) {
        if end > start {
            let _ = self.boot_ranges.push((start, end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_stop_at_their_bounds_and_say_so() {
        let mut info = BootInfo::new(BootProtocol::Pvh);
        for i in 0..MAX_MEMORY_REGIONS as u64 + 2 {
            info.push_memory(MemoryRegion {
                start: i << 20,
                len: 1 << 20,
                kind: MemoryKind::Usable,
            });
        }
        assert_eq!(info.memory_map().len(), MAX_MEMORY_REGIONS);
        assert_eq!(info.memory_map()[127].start, 127 << 20);
        assert!(info.memory_truncated);
        for i in 0..MAX_BOOT_RANGES as u64 + 1 {
            info.push_boot_range(i * 0x1000, i * 0x1000 + 0x100);
        }
        info.push_boot_range(0x5000, 0x5000);
        assert_eq!(info.boot_ranges().len(), MAX_BOOT_RANGES);
        assert_eq!(info.boot_ranges()[7], (0x7000, 0x7100));
        info.set_cmdline(b"log=debug");
        info.set_cmdline(b"test=selftest");
        assert_eq!(
            info.cmdline(),
            b"test=selftest",
            "a new line replaces the old"
        );
        assert!(!info.cmdline_truncated);
    }
}
