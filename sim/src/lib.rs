//! mlx5-sim: a behavioural model of a ConnectX-4/4 Lx/5/6/6 Dx function,
//! written from the PRM and its public transcriptions (Linux `mlx5_ifc.h`,
//! `device.h`), and its in-process harness.
//!
//! The model ([`function::Function`], the command objects in [`cmd`], the
//! transmit and receive engines in [`datapath`] and the port's [`wire`])
//! knows nothing of its front end: it reaches driver memory through
//! [`dma::DmaSpace`] (checked by the [`sanitizer`]) and raises MSI-X
//! through [`dma::Interrupts`]. The
//! [`harness`] wires it to host memory and to `cxos_drivers::Platform`; the
//! `vfio` front end (feature `vfio`) serves it to QEMU over vfio-user. Both
//! can cable the port to a [`link`]: a TAP device (feature `tap`) or a
//! unix-socket wire to another model, with pcap capture of both directions.
//!
//! `unsafe` lives only in `harness::mem` (host DMA memory, the counting
//! allocator), `vfio::guest_mem` (guest memory mapped by fd) and
//! `link::tap` (the TAP device, feature `tap`).

pub mod adapter;
pub mod bits;
pub mod cmd;
pub mod cmdif;
pub mod datapath;
pub mod dma;
pub mod faults;
pub mod function;
pub mod harness;
pub mod init_seg;
pub mod link;
pub mod module;
pub mod pci_config;
pub mod personality;
pub mod phys_port;
pub mod queue_faults;
pub mod sanitizer;
pub mod syndrome;
pub mod trace;
#[cfg(feature = "vfio")]
pub mod vfio;
pub mod wire;

pub use faults::Fault;
pub use personality::Personality;
pub use sanitizer::{Violation, ViolationKind};
pub use wire::PortStats;
