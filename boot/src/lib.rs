//! Boot entry of cxos.
//!
//! One ELF boots two ways: through PVH (a Xen ELF note of type 18 names the
//! 32-bit entry; `ebx` points at `hvm_start_info`) and through multiboot2
//! (a header in the first 32 KiB; `eax` holds the multiboot2 magic and `ebx`
//! the info block). [`entry!`] emits the 32-bit entry, the early page tables
//! (first 4 GiB identity mapped with 2 MiB pages, 3..4 GiB uncached), the
//! switch to long mode with SSE enabled, and calls the kernel with a
//! normalized [`BootInfo`] whose data has been copied out of the boot
//! structures (GRUB may put them anywhere in free memory).
#![cfg_attr(not(test), no_std)]

mod entry;
mod info;
mod parse;

pub use info::{BootInfo, BootProtocol, MemoryKind, MemoryRegion, RsdpSource};
pub use parse::{BootError, MULTIBOOT2_MAGIC, Memory, PVH_MAGIC, parse_multiboot2, parse_pvh};

pub use entry::PhysMemory;
#[doc(hidden)]
pub use entry::normalize;
