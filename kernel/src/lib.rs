//! Hardware-independent parts of the cxos kernel, unit-tested on the host:
//! command line, log filter, frame and DMA allocators, PCI config logic,
//! MSI/MSI-X programming, ACPI tables, interrupt vectors, page tables, TLB
//! shootdown bookkeeping, the CPU of each mlx5 queue set, the
//! shell's command lines, the text of the mlx5 driver's reports (feature
//! `mlx5`) and, with the network stack (feature `net`), the interface
//! table, the apps' arguments and the VNIC definitions. The kernel binary
//! (`src/bin/cxos/`) puts them on hardware.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod acpi;
#[cfg(feature = "net")]
pub mod aggr_def;
#[cfg(feature = "net")]
pub mod apps;
pub mod cmdline;
pub mod dma;
pub mod ethtool;
pub mod frames;
pub mod handoff;
#[cfg(feature = "net")]
pub mod iface;
pub mod logfilter;
#[cfg(feature = "mlx5")]
pub mod mlx5_report;
pub mod msi;
pub mod paging;
pub mod pci;
pub mod portarg;
pub mod queue_sets;
pub mod shellcmd;
pub mod smpcmd;
pub mod tlb;
#[cfg(feature = "mlx5")]
pub mod traninfo;
pub mod tsccal;
pub mod vectors;
#[cfg(feature = "net")]
pub mod vnic_def;
