//! The vfio-user front end of the model: QEMU (>= 10.1, `-device
//! vfio-user-pci`) presents the model to a guest as a PCI function with
//! BAR0, MSI-X and DMA into guest memory (sim/README.md, "vfio-user with QEMU").
//!
//! - [`server`]: the vfio-user server (regions, reset, the model thread).
//! - [`protocol`]: the vfio-user messages, read whole and checked before
//!   the model acts on them (the client is untrusted input).
//! - [`fds`]: descriptors passed with a message (SCM_RIGHTS).
//! - [`guest_mem`]: guest memory mapped from the memfds of DMA_MAP, the
//!   model's `DmaSpace` (with [`fds`], the only `unsafe` of this front end).
//! - [`irq`]: MSI-X vectors as the eventfds of SET_IRQS.
//! - [`control`]: the line-oriented control socket.
//! - [`client`]: a vfio-user client that is a driver `Platform` (tests and
//!   benchmarks of the front end without QEMU).

pub mod client;
pub mod control;
pub mod fds;
pub mod guest_mem;
pub mod irq;
pub mod protocol;
pub mod server;

pub use server::{Options, PortOptions, serve};
