//! The boot protocol independent description of the machine.

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

impl MemoryRegion {
    const EMPTY: Self = Self {
        start: 0,
        len: 0,
        kind: MemoryKind::Reserved,
    };
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
/// structures so their memory can be reused.
#[derive(Clone, Debug)]
pub struct BootInfo {
    pub protocol: BootProtocol,
    memory: [MemoryRegion; MAX_MEMORY_REGIONS],
    memory_len: usize,
    /// The loader's map had more entries than [`MAX_MEMORY_REGIONS`].
    pub memory_truncated: bool,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// The command line was longer than [`MAX_CMDLINE`] bytes.
    pub cmdline_truncated: bool,
    pub rsdp: RsdpSource,
    boot_ranges: [(u64, u64); MAX_BOOT_RANGES],
    boot_ranges_len: usize,
    /// `[start, end)` of the loaded kernel image (text, data, bss).
    pub kernel_image: (u64, u64),
}

impl BootInfo {
    pub const fn new(protocol: BootProtocol) -> Self {
        Self {
            protocol,
            memory: [MemoryRegion::EMPTY; MAX_MEMORY_REGIONS],
            memory_len: 0,
            memory_truncated: false,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            cmdline_truncated: false,
            rsdp: RsdpSource::None,
            boot_ranges: [(0, 0); MAX_BOOT_RANGES],
            boot_ranges_len: 0,
            kernel_image: (0, 0),
        }
    }

    /// The memory map in the loader's order.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.memory[..self.memory_len]
    }

    pub fn push_memory(&mut self, region: MemoryRegion) {
        if self.memory_len == MAX_MEMORY_REGIONS {
            self.memory_truncated = true;
        } else {
            self.memory[self.memory_len] = region;
            self.memory_len += 1;
        }
    }

    /// The command line bytes (not necessarily UTF-8: the kernel checks).
    pub fn cmdline(&self) -> &[u8] {
        &self.cmdline[..self.cmdline_len]
    }

    pub fn set_cmdline(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(MAX_CMDLINE);
        self.cmdline[..n].copy_from_slice(&bytes[..n]);
        self.cmdline_len = n;
        self.cmdline_truncated = bytes.len() > MAX_CMDLINE;
    }

    /// `[start, end)` physical ranges of the loader's structures.
    pub fn boot_ranges(&self) -> &[(u64, u64)] {
        &self.boot_ranges[..self.boot_ranges_len]
    }

    pub fn push_boot_range(&mut self, start: u64, end: u64) {
        if self.boot_ranges_len < MAX_BOOT_RANGES && end > start {
            self.boot_ranges[self.boot_ranges_len] = (start, end);
            self.boot_ranges_len += 1;
        }
    }
}
