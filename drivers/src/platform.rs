//! The platform trait: everything a driver may do to hardware.
//!
//! DMA memory is shared with a device that reads and writes it at any time,
//! so it is never handed out as a plain `&mut [u8]`: drivers go through the
//! accessors of [`DmaRegion`]. Device structures are big-endian (the mlx5 PRM
//! says so of all of them), hence the `_be` accessors. Accesses of 1, 2, 4 or
//! 8 bytes at naturally aligned offsets are single, untorn accesses, so an
//! owner bit or a doorbell record is never seen half-written.
//!
//! Offsets are chosen by the driver. An offset or length past the end of a
//! region or of BAR0 is a driver bug and implementations panic on it; values
//! that come *from the device* (indices, counts, lengths) must be
//! bounds-checked by the driver before they become offsets.

use core::fmt;

use crate::pci::PciAddress;

/// An address as the device sees it (bus address): what goes into command
/// queue pointers, page lists, doorbell record pointers and data segments.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DmaAddr(pub u64);

impl DmaAddr {
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `self + offset`, the address of a byte inside a region.
    pub const fn offset(self, offset: usize) -> DmaAddr {
        DmaAddr(self.0 + offset as u64)
    }
}

impl fmt::Debug for DmaAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DmaAddr({:#x})", self.0)
    }
}

impl fmt::Display for DmaAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// What a platform can refuse.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PlatformError {
    /// No physically contiguous region of this many bytes is free.
    OutOfDmaMemory { requested: usize },
    /// The function has no MSI-X capability, or the platform cannot route it.
    MsixUnsupported,
    /// Fewer interrupt vectors are free than the minimum asked for.
    NoVectors { requested: u16, available: u16 },
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfDmaMemory { requested } => {
                write!(f, "out of DMA memory ({requested} bytes requested)")
            }
            Self::MsixUnsupported => write!(f, "MSI-X unsupported"),
            Self::NoVectors {
                requested,
                available,
            } => {
                write!(
                    f,
                    "{requested} interrupt vectors requested, {available} available"
                )
            }
        }
    }
}

/// A zeroed, physically contiguous, page-aligned (4 KiB) region of memory
/// that a device may access. Dropping it returns the memory to the platform;
/// the driver must take it back from the device first.
pub trait DmaRegion {
    /// Device address of byte 0 (4 KiB aligned).
    fn device_addr(&self) -> DmaAddr;
    /// Usable length in bytes (what was asked for).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read_u8(&self, offset: usize) -> u8;
    fn write_u8(&self, offset: usize, value: u8);
    fn read_be16(&self, offset: usize) -> u16;
    fn write_be16(&self, offset: usize, value: u16);
    fn read_be32(&self, offset: usize) -> u32;
    fn write_be32(&self, offset: usize, value: u32);
    fn read_be64(&self, offset: usize) -> u64;
    fn write_be64(&self, offset: usize, value: u64);

    /// Copy `dst.len()` bytes starting at `offset` out of the region.
    fn read_bytes(&self, offset: usize, dst: &mut [u8]);
    /// Copy `src` into the region at `offset`.
    fn write_bytes(&self, offset: usize, src: &[u8]);
    /// Set `len` bytes at `offset` to `byte`.
    fn fill(&self, offset: usize, len: usize, byte: u8);

    /// Run `f` over `len` bytes at `offset` without copying where the
    /// platform can. Only for a range the device does not own at the moment
    /// (a completed receive buffer not yet re-posted): the device must not
    /// write it while `f` runs.
    fn with_bytes<R>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R;
    /// Mutable form of [`DmaRegion::with_bytes`], for a range the device
    /// neither reads nor writes while `f` runs (a transmit buffer not yet
    /// posted).
    fn with_bytes_mut<R>(&self, offset: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R;
}

/// One PCI function as a driver sees it: its BAR0, config space, MSI-X
/// vectors, plus DMA memory and time.
///
/// Methods take `&self`: implementations use interior mutability, so DMA
/// regions handed out earlier stay usable while the driver keeps calling in.
pub trait Platform {
    type Dma: DmaRegion;

    /// Allocate a zeroed, page-aligned, physically contiguous region of at
    /// least `size` bytes (`size > 0`).
    fn dma_alloc(&self, size: usize) -> Result<Self::Dma, PlatformError>;

    /// Length of BAR0 in bytes.
    fn bar0_len(&self) -> usize;
    /// 32-bit read of a big-endian register at `offset` (4-aligned).
    fn bar0_read_be32(&self, offset: usize) -> u32;
    /// 32-bit write of a big-endian register at `offset` (4-aligned).
    fn bar0_write_be32(&self, offset: usize, value: u32);
    /// 64-bit read at `offset` (8-aligned), one access.
    fn bar0_read_be64(&self, offset: usize) -> u64;
    /// 64-bit write at `offset` (8-aligned), one access: doorbells need it.
    fn bar0_write_be64(&self, offset: usize, value: u64);

    fn pci_address(&self) -> PciAddress;
    fn config_read16(&self, offset: u16) -> u16;
    fn config_write16(&self, offset: u16, value: u16);
    fn config_read32(&self, offset: u16) -> u32;
    fn config_write32(&self, offset: u16, value: u32);

    /// Entries in the function's MSI-X table (0 without the capability).
    fn msix_table_size(&self) -> u16;
    /// Allocate and bind up to `wanted` MSI-X vectors (at least `min`),
    /// program the function's MSI-X table, enable MSI-X, and return how many
    /// vectors were bound: vectors `0..n` of the function. Interrupts only
    /// set a per-vector pending flag; no driver code runs in interrupt
    /// context.
    fn msix_enable(&self, min: u16, wanted: u16) -> Result<u16, PlatformError>;
    /// Disable MSI-X on the function and free its vectors.
    fn msix_disable(&self);
    /// Whether `vector` fired since the last call; clears the flag.
    /// Unbound vectors report `false`.
    fn msix_take_pending(&self, vector: u16) -> bool;
    /// Mask or unmask one vector in the function's MSI-X table.
    fn msix_set_masked(&self, vector: u16, masked: bool);

    /// Monotonic nanoseconds since an arbitrary origin.
    fn now_ns(&self) -> u64;
    /// Busy-wait at least `us` microseconds.
    fn delay_us(&self, us: u64);
    /// Called by wait loops between polls of device state: may halt until
    /// the next interrupt (bounded by a timer) or yield the thread.
    fn relax(&self);
}
