//! The platform: everything a driver may do to hardware, as five small
//! traits a driver holds separately, and the ordering rule that ties them
//! together.
//!
//! | trait | what | shared how |
//! |---|---|---|
//! | [`DmaAlloc`] + [`DmaRegion`] | DMA memory: allocation, then accessors of a region | allocator cheap to clone; a region belongs to one owner |
//! | [`Mmio`] | BAR0 reads and writes (doorbells), and the barriers below | cheap to clone: every queue keeps its own handle |
//! | [`ConfigSpace`] | PCI configuration space | control plane only |
//! | [`Msix`] | MSI-X vectors | control plane only |
//! | [`Clock`] | time, delays, waiting | cheap to clone |
//!
//! [`Platform`] bundles one of each for one PCI function: what a driver's
//! attach takes and its detach hands back. A driver clones the [`Mmio`],
//! [`Clock`] and [`DmaAlloc`] handles into the objects that need them (a
//! queue owns its ring, its doorbell record, an MMIO handle and its UAR
//! offset), so a doorbell or a clock read takes no lock of the driver's and
//! one queue's packet path never waits for another's.
//!
//! # DMA memory
//!
//! DMA memory is shared with a device that reads and writes it at any time,
//! so drivers reach it through the accessors of [`DmaRegion`]. Device
//! structures are big-endian (the mlx5 PRM says so of all of them), hence
//! the `_be` accessors. Accesses of 1, 2, 4 or 8 bytes at naturally aligned
//! offsets are single, untorn accesses, so an owner bit or a doorbell record
//! is never seen half-written.
//!
//! A plain slice into DMA memory ([`DmaRegion::with_bytes`],
//! [`DmaRegion::with_bytes_mut`]; zero-copy receive and transmit into a
//! network stack need them) is allowed only for a range software owns at
//! that moment: a buffer not posted to the device, or completed and not yet
//! re-posted. The device must neither write it (shared slice) nor read or
//! write it (mutable slice) while the closure runs, and ownership goes back
//! to the device only through the ordering rule below: the buffer's writes
//! (or the reads of a received frame) come before the barrier that precedes
//! the doorbell record that re-posts it.
//!
//! # Ordering
//!
//! The compiler and the CPU may reorder plain and volatile accesses to DMA
//! memory and to the BAR unless told otherwise; the device sees the result.
//! The PRM's doorbell protocol needs three orderings, and [`Mmio`] names
//! them ([`Barrier`] lists them):
//!
//! - hand work to the device: WQE and data writes →
//!   [`Mmio::barrier_before_doorbell_record`] → doorbell record update (or
//!   a command entry's ownership bit) → [`Mmio::barrier_before_mmio_doorbell`]
//!   → the BAR doorbell or BlueFlame write;
//! - give entries back: reads of consumed CQEs / EQEs / received buffers →
//!   the same barriers before the consumer index reaches the device (the
//!   doorbell record for a CQ, the UAR doorbell for an EQ);
//! - take work from the device: read an entry's ownership (CQE `op_own`,
//!   EQE owner, command entry `status_own`) → if software owns it,
//!   [`Mmio::barrier_after_ownership_read`] → read the rest of the entry
//!   (and the buffer it points at).
//!
//! Every doorbell record update, every BAR doorbell and every read past an
//! ownership check goes through these; a driver never relies on the
//! accessors alone for ordering. On x86-64 with BAR0 mapped uncached the
//! first two are compiler fences (stores to write-back memory are not
//! reordered with each other nor with a later uncached store; an `sfence`
//! is needed only where write-combining is involved, a BlueFlame mapping)
//! and the third is a compiler fence (loads are not reordered with loads).
//!
//! # Errors
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
    /// No such CPU online, or the platform cannot deliver to it.
    NoSuchCpu { cpu: u16 },
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfDmaMemory { requested } => {
                write!(f, "out of DMA memory ({requested} bytes requested)")
            }
            Self::MsixUnsupported => write!(f, "MSI-X unsupported"),
            Self::NoSuchCpu { cpu } => write!(f, "cannot deliver interrupts to CPU {cpu}"),
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

impl core::error::Error for PlatformError {}

/// The three orderings of the doorbell protocol (see the module
/// documentation), as values: for platforms and test harnesses that record
/// or report them. Drivers call the [`Mmio`] methods.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Barrier {
    /// DMA-memory accesses before a doorbell record (or ownership bit) write.
    BeforeDoorbellRecord,
    /// DMA-memory accesses before a BAR doorbell / BlueFlame write.
    BeforeMmioDoorbell,
    /// An ownership read before the reads of the rest of the entry.
    AfterOwnershipRead,
}

/// A zeroed, physically contiguous, page-aligned (4 KiB) region of memory
/// that a device may access. Dropping it returns the memory to the platform;
/// the driver must take it back from the device first.
pub trait DmaRegion: fmt::Debug {
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

    /// Store `words` at `offset` (8-aligned) as big-endian 64-bit values,
    /// in order, each one untorn 8-byte store: how a driver writes a
    /// structure it built in registers (a WQE) without a byte copy. The
    /// default stores them one [`DmaRegion::write_be64`] at a time;
    /// platforms check the range once.
    fn write_be64s(&self, offset: usize, words: &[u64]) {
        for (i, w) in words.iter().enumerate() {
            self.write_be64(offset + 8 * i, *w);
        }
    }

    /// Load `words.len()` big-endian 64-bit values at `offset` (8-aligned),
    /// in order, each one untorn 8-byte load: how a driver reads a
    /// structure (a CQE, after its ownership check and the read barrier)
    /// into registers. The default loads them one [`DmaRegion::read_be64`]
    /// at a time; platforms check the range once.
    fn read_be64s(&self, offset: usize, words: &mut [u64]) {
        for (i, w) in words.iter_mut().enumerate() {
            *w = self.read_be64(offset + 8 * i);
        }
    }

    /// Load the big-endian 64-bit word at `offset + i * stride` (both
    /// 8-aligned) into `words[i]`, each one untorn 8-byte load: how a
    /// driver reads one field of many ring entries (the owner words of a
    /// run of CQEs). The default loads them one [`DmaRegion::read_be64`] at
    /// a time; platforms check the range once.
    fn read_be64s_strided(&self, offset: usize, stride: usize, words: &mut [u64]) {
        for (i, w) in words.iter_mut().enumerate() {
            *w = self.read_be64(offset + stride * i);
        }
    }

    /// Copy `dst.len()` bytes starting at `offset` out of the region.
    fn read_bytes(&self, offset: usize, dst: &mut [u8]);
    /// Copy `src` into the region at `offset`.
    fn write_bytes(&self, offset: usize, src: &[u8]);
    /// Set `len` bytes at `offset` to `byte`.
    fn fill(&self, offset: usize, len: usize, byte: u8);

    /// Run `f` over `len` bytes at `offset` without copying where the
    /// platform can. Only for a range software owns (a completed receive
    /// buffer not yet re-posted): the device must not write it while `f`
    /// runs. Reads done here are ordered before the buffer's re-posting by
    /// the barrier before the doorbell record (module documentation).
    fn with_bytes<R>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R;
    /// Mutable form of [`DmaRegion::with_bytes`], for a range the device
    /// neither reads nor writes while `f` runs (a transmit buffer not yet
    /// posted). The writes reach the device only after
    /// [`Mmio::barrier_before_doorbell_record`] and the doorbell record.
    fn with_bytes_mut<R>(&self, offset: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R;
}

/// DMA memory allocation. Cheap to clone: data paths keep their own handle
/// (queue recovery, VNIC creation) instead of going through the adapter.
pub trait DmaAlloc: Clone + fmt::Debug {
    type Region: DmaRegion;

    /// Allocate a zeroed, page-aligned, physically contiguous region of at
    /// least `size` bytes (`size > 0`).
    fn dma_alloc(&self, size: usize) -> Result<Self::Region, PlatformError>;
}

/// BAR0 of the function and the barriers of the doorbell protocol. Cheap
/// to clone and usable from any number of handles at once: every queue
/// keeps one and rings its doorbell without a lock.
pub trait Mmio: Clone + fmt::Debug {
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
    /// A BlueFlame write (PRM "BlueFlame"): the 64 bytes `words` (eight
    /// big-endian words: a WQE's first basic block) into the BlueFlame
    /// buffer at `offset` (64-aligned), in order, with the widest stores
    /// the platform has (through a write-combining mapping where it has
    /// one, its buffers flushed before this returns). The default: eight
    /// 64-bit writes.
    fn bar0_write_bf(&self, offset: usize, words: &[u64; 8]) {
        for (i, w) in words.iter().enumerate() {
            self.bar0_write_be64(offset + 8 * i, *w);
        }
    }

    /// Every DMA-memory access before this (WQE and data writes, plain
    /// slices included; reads of consumed entries and buffers) is visible
    /// to the device before any DMA-memory write after it (the doorbell
    /// record, a command entry's ownership bit). Linux: `dma_wmb()`.
    fn barrier_before_doorbell_record(&self);
    /// Every DMA-memory access before this (the doorbell record) is visible
    /// to the device before the next BAR write (doorbell, BlueFlame).
    /// Linux: `wmb()`.
    fn barrier_before_mmio_doorbell(&self);
    /// The ownership read before this is done before any DMA-memory read
    /// after it (the rest of the CQE / EQE / command entry, the buffer).
    /// Linux: `dma_rmb()`.
    fn barrier_after_ownership_read(&self);
}

/// PCI configuration space of the function (control plane).
pub trait ConfigSpace: fmt::Debug {
    fn pci_address(&self) -> PciAddress;
    fn config_read16(&self, offset: u16) -> u16;
    fn config_write16(&self, offset: u16, value: u16);
    fn config_read32(&self, offset: u16) -> u32;
    fn config_write32(&self, offset: u16, value: u32);
}

/// MSI-X vectors of the function (control plane).
pub trait Msix: fmt::Debug {
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
    /// A count of the interrupts `vector` took (wrapping; its origin is the
    /// platform's, only changes mean anything). Unlike the pending flag,
    /// reading it takes nothing: a periodic check tells whether the vector
    /// fired since it last looked while another loop takes the flag.
    fn msix_count(&self, vector: u16) -> u64;
    /// Mask or unmask one vector in the function's MSI-X table.
    fn msix_set_masked(&self, vector: u16, masked: bool);
    /// Deliver `vector` to CPU `cpu` (0, the boot CPU, is where
    /// `msix_enable` points every vector). A platform with one CPU has
    /// only 0.
    fn msix_set_cpu(&self, vector: u16, cpu: u16) -> Result<(), PlatformError> {
        let _ = vector;
        if cpu == 0 {
            Ok(())
        } else {
            Err(PlatformError::NoSuchCpu { cpu })
        }
    }
}

/// Time. Cheap to clone; reading it takes no lock.
pub trait Clock: Clone + fmt::Debug {
    /// Monotonic nanoseconds since an arbitrary origin.
    fn now_ns(&self) -> u64;
    /// Busy-wait at least `us` microseconds.
    fn delay_us(&self, us: u64);
    /// Called by wait loops between polls of device state: may halt until
    /// the next interrupt (bounded by a timer) or yield the thread. Never
    /// called with a lock held that a packet path takes.
    fn relax(&self);
}

/// One PCI function as a driver receives it: one of each part. The driver
/// keeps the bundle for the control plane and hands clones of
/// [`Platform::mmio`], [`Platform::clock`] and [`Platform::dma`] to the
/// objects that need them.
pub trait Platform: fmt::Debug {
    type Dma: DmaAlloc;
    type Mmio: Mmio;
    type Config: ConfigSpace;
    type Msix: Msix;
    type Clock: Clock;

    fn dma(&self) -> &Self::Dma;
    fn mmio(&self) -> &Self::Mmio;
    fn config(&self) -> &Self::Config;
    fn msix(&self) -> &Self::Msix;
    fn clock(&self) -> &Self::Clock;
}

/// `impl Platform for $t` where one object is every part (each accessor
/// returns `self`): a function reached through one cheap handle, as the
/// test platforms and the vfio-user client are.
#[macro_export]
macro_rules! platform_of_one {
    ($t:ty) => {
        impl $crate::Platform for $t {
            type Dma = $t;
            type Mmio = $t;
            type Config = $t;
            type Msix = $t;
            type Clock = $t;
            fn dma(&self) -> &Self {
                self
            }
            fn mmio(&self) -> &Self {
                self
            }
            fn config(&self) -> &Self {
                self
            }
            fn msix(&self) -> &Self {
                self
            }
            fn clock(&self) -> &Self {
                self
            }
        }
    };
}

/// The DMA region type of a platform.
pub type Region<P> = <<P as Platform>::Dma as DmaAlloc>::Region;
