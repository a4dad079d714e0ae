//! Hardware-independent parts of the cxos kernel, unit-tested on the host:
//! command line, log filter, frame and DMA allocators, PCI config logic,
//! MSI/MSI-X programming, ACPI tables, interrupt vectors, page tables, and
//! with feature `mlx5` the text of the driver's reports and the VNIC
//! syntax. The kernel binary (`src/bin/cxos/`) puts them on hardware.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod acpi;
pub mod cmdline;
pub mod dma;
pub mod frames;
pub mod logfilter;
#[cfg(feature = "mlx5")]
pub mod mlx5_report;
pub mod msi;
pub mod paging;
pub mod pci;
pub mod vectors;
#[cfg(feature = "mlx5")]
pub mod vnic_spec;
