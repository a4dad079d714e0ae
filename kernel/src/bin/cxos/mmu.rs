//! The kernel's page tables: [`cxos_kernel::paging`] over the live tables,
//! which sit in identity-mapped memory (the boot tables in the image, new
//! ones in frames from below 4 GiB first).

use cxos_boot::{BootInfo, MemoryKind};
use cxos_kernel::paging::TableMemory;
pub use cxos_kernel::paging::{Cache, MapError};
use x86_64::VirtAddr;
use x86_64::instructions::tlb;
use x86_64::registers::control::Cr3;

use crate::{arch, memory};

struct LiveTables;

impl TableMemory for LiveTables {
    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a page table reached from CR3 (identity
        // mapped) and index < 512 keeps the access inside its 4 KiB.
        unsafe { ((table + index as u64 * 8) as *const u64).read_volatile() }
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as in `read`; entries are written with interrupts off
        // (see `map_identity`) by the boot CPU only. Mappings are only
        // added once the APs run (guard pages are made before they
        // start), so no other CPU's TLB holds an entry this invalidates.
        unsafe { ((table + index as u64 * 8) as *mut u64).write_volatile(value) }
    }

    fn alloc_table(&mut self) -> Option<u64> {
        memory::alloc_zeroed_frame()
    }

    fn flush(&mut self, addr: u64) {
        // Identity map: the linear address is the physical one, in the
        // canonical form 4-level paging gives it.
        tlb::flush(VirtAddr::new_truncate(addr));
    }
}

/// The live PML4 (CR3's frame).
fn pml4() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// Make the page at `addr` a guard page (not present), so running off the
/// end of a stack faults instead of overwriting its neighbours.
pub fn guard_page(addr: u64) -> Result<(), MapError> {
    let pml4 = pml4();
    arch::without_interrupts(|| cxos_kernel::paging::unmap_4k(&mut LiveTables, pml4, addr))
}

/// Identity map `[start, start + len)` (2 MiB granularity) in the live
/// page tables.
pub fn map_identity(start: u64, len: u64, cache: Cache) -> Result<(), MapError> {
    let pml4 = pml4();
    arch::without_interrupts(|| {
        cxos_kernel::paging::map_identity(&mut LiveTables, pml4, start, len, cache)
    })
}

/// Identity map the usable RAM above 4 GiB (the boot tables cover the
/// first 4 GiB), so frames and DMA memory from anywhere are reachable
/// (after the heap grew: the page tables come from the frame allocator).
pub fn map_high_ram(boot: &BootInfo) {
    for r in boot
        .memory_map()
        .iter()
        .filter(|r| r.kind == MemoryKind::Usable)
    {
        let end = r.start.saturating_add(r.len);
        if end > (4 << 30) {
            let s = r.start.max(4 << 30);
            if let Err(e) = map_identity(s, end - s, Cache::WriteBack) {
                log::error!(target: "mem", "cannot map RAM at {s:#x}: {e}");
            }
        }
    }
}
