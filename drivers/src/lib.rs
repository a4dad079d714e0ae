//! The contract between cxos drivers and whatever they run on.
//!
//! A driver reaches hardware only through the [`platform`] traits (DMA,
//! MMIO with the barriers of the doorbell protocol, config space, MSI-X,
//! clock; bundled per function by [`Platform`]): the kernel implements them
//! over identity-mapped memory and real PCI functions, and the in-process
//! harness of `mlx5-sim` implements them over host memory wired to the
//! model. Nothing in here is `unsafe`; nothing in a driver may be.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod net;
pub mod pci;
pub mod platform;
pub mod soft_mmio;
pub mod vec_dma;

pub use net::{
    FilterError, L3Proto, L4Proto, LinkState, Lso, NetDevice, NetStats, Offloads, RxMeta, TxError,
    TxGeometry, TxMeta,
};
pub use pci::{PciAddress, PciId};
pub use platform::{
    Barrier, Clock, ConfigSpace, DmaAddr, DmaAlloc, DmaRegion, Mmio, Msix, Platform, PlatformError,
    Region,
};
pub use vec_dma::VecDma;
