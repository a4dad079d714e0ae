//! What the model needs from its front end: DMA into driver memory and
//! MSI-X signalling. The harness implements these over host memory; the
//! vfio-user front end over guest memory mapped by fd and eventfds.
#![deny(unsafe_code)]

use core::fmt;

/// Why a device access to driver memory could not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaFault {
    /// No memory is mapped at this bus address (never allocated).
    Unmapped,
    /// The memory at this address was freed by the driver.
    Freed,
    /// The access runs past the end of the region that holds its start.
    CrossesRegion,
    /// The mapping exists but forbids this direction (read-only ROM ranges).
    Forbidden,
}

impl fmt::Display for DmaFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unmapped => "unmapped address",
            Self::Freed => "memory freed by the driver",
            Self::CrossesRegion => "access crosses the end of a region",
            Self::Forbidden => "direction forbidden by the mapping",
        })
    }
}

/// Bus-address space the device reaches by DMA. Implementations must make
/// naturally aligned accesses of up to 8 bytes single (untorn) accesses, the
/// way PCIe does, because the driver polls owner bits concurrently.
pub trait DmaSpace: Send + Sync {
    /// Copy `dst.len()` bytes from bus address `addr`.
    fn read(&self, addr: u64, dst: &mut [u8]) -> Result<(), DmaFault>;
    /// Copy `src` to bus address `addr`.
    fn write(&self, addr: u64, src: &[u8]) -> Result<(), DmaFault>;
}

/// The function's MSI-X vectors as the model sees them: it only signals.
pub trait Interrupts: Send + Sync {
    /// Raise MSI-X vector `vector` of the function (ignored when the vector
    /// does not exist or MSI-X is disabled, as on PCI).
    fn signal(&self, vector: u16);
}
