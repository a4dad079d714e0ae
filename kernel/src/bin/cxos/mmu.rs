//! The kernel's page tables: [`cxos_kernel::paging`] over the live tables,
//! which sit in identity-mapped memory (the boot tables in the image, new
//! ones in frames from below 4 GiB first).
//!
//! Every change runs under one lock with interrupts off. A change to an
//! entry that was present (a re-flagged 2 MiB page, a split, a guard page)
//! is flushed from this CPU's TLB at once and, when the APs run, from
//! every other CPU's by a TLB shootdown (`smp::shootdown`, registered
//! here by `smpboot` so that this module does not depend on the APIC)
//! before the lock is released.
//!
//! Write-combining: every CPU's IA32_PAT gets [`PAT_VALUE`] ([`init_pat`],
//! on the boot CPU first thing in `kmain`, on an AP first thing in its
//! entry), whose entry 1 ([`cxos_kernel::paging::PAT_WC_INDEX`], selected
//! by PWT alone) is WC. [`wc_alias`] maps a device range a second time,
//! in 4 KiB pages with that entry, in the upper-half window at
//! [`WC_WINDOW`] (nothing is identity-mapped there): the mlx5 BlueFlame
//! buffers, while the same BAR stays identity-mapped uncached for every
//! other register.

use alloc::vec::Vec;
use cxos_boot::{BootInfo, MemoryKind};
pub use cxos_kernel::paging::{Cache, MapError};
use cxos_kernel::paging::{IA32_PAT, PAT_VALUE, TableMemory};
use cxos_kernel::tlb::FlushBatch;
use spin::{Mutex, MutexGuard, Once};
use x86_64::VirtAddr;
use x86_64::instructions::tlb;
use x86_64::registers::control::Cr3;
use x86_64::registers::model_specific::Msr;

use crate::{arch, memory};

/// The translations one change flushed, for the other CPUs.
struct LiveTables {
    batch: FlushBatch,
}

/// Serialises page-table changes (and so the shootdowns).
static TABLES: Mutex<()> = Mutex::new(());

/// The other CPUs' side of a change (see the module comment).
#[derive(Clone, Copy, Debug)]
pub struct Remote {
    /// Make the other CPUs drop `batch`'s translations and wait for them.
    pub shootdown: fn(&FlushBatch),
    /// Carry out this CPU's pending shootdown request.
    pub serve: fn(),
}

static REMOTE: Once<Remote> = Once::new();

/// Called before the first AP starts.
pub fn set_remote(remote: Remote) {
    REMOTE.call_once(|| remote);
}

/// Run one change of the live tables: under the lock, interrupts off, the
/// other CPUs' TLBs shot down before it returns.
fn change<R>(f: impl FnOnce(&mut LiveTables, u64) -> R) -> R {
    arch::without_interrupts(|| {
        let _guard = lock();
        let mut tables = LiveTables {
            batch: FlushBatch::new(),
        };
        let r = f(&mut tables, pml4());
        if !tables.batch.is_empty()
            && let Some(remote) = REMOTE.get()
        {
            (remote.shootdown)(&tables.batch);
        }
        r
    })
}

/// Take the lock; while another CPU holds it, answer its shootdown
/// requests (it waits for this CPU with the lock held).
fn lock() -> MutexGuard<'static, ()> {
    loop {
        if let Some(g) = TABLES.try_lock() {
            return g;
        }
        if let Some(remote) = REMOTE.get() {
            (remote.serve)();
        }
        core::hint::spin_loop();
    }
}

impl TableMemory for LiveTables {
    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a page table reached from CR3 (identity
        // mapped) and index < 512 keeps the access inside its 4 KiB.
        unsafe { ((table + index as u64 * 8) as *const u64).read_volatile() }
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as in `read`; entries are written under `TABLES` with
        // interrupts off (`change`), and a changed entry that was present
        // is flushed here and on the other CPUs before the lock is
        // released (`flush`, `change`).
        unsafe { ((table + index as u64 * 8) as *mut u64).write_volatile(value) }
    }

    fn alloc_table(&mut self) -> Option<u64> {
        memory::alloc_zeroed_frame()
    }

    fn flush(&mut self, addr: u64) {
        // Identity map: the linear address is the physical one, in the
        // canonical form 4-level paging gives it.
        tlb::flush(VirtAddr::new_truncate(addr));
        self.batch.add(addr);
    }
}

/// The live PML4 (CR3's frame).
fn pml4() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// Make the page at `addr` a guard page (not present), so running off the
/// end of a stack faults instead of overwriting its neighbours.
pub fn guard_page(addr: u64) -> Result<(), MapError> {
    change(|t, pml4| cxos_kernel::paging::unmap_4k(t, pml4, addr))
}

/// Map the 4 KiB page at `addr` again after [`guard_page`].
pub fn unguard_page(addr: u64) -> Result<(), MapError> {
    change(|t, pml4| cxos_kernel::paging::map_4k(t, pml4, addr))
}

/// Identity map `[start, start + len)` (2 MiB granularity) in the live
/// page tables.
pub fn map_identity(start: u64, len: u64, cache: Cache) -> Result<(), MapError> {
    change(|t, pml4| cxos_kernel::paging::map_identity(t, pml4, start, len, cache))
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

/// Program this CPU's IA32_PAT with [`PAT_VALUE`] (the same on every CPU,
/// as SDM vol. 3 11.12.4 requires). Only entry 1 changes (WT -> WC), and
/// this runs before the CPU touches any mapping that uses entry 1 (only
/// [`wc_alias`]es do); the caches are written back and the TLB flushed
/// afterwards, so nothing this CPU may have fetched under entry 1's old
/// type survives the change (the SDM's PAT-change procedure, 11.12.4).
pub fn init_pat() {
    arch::without_interrupts(|| {
        // SAFETY: IA32_PAT exists on every x86-64 CPU; PAT_VALUE has only
        // valid memory types (host test `pat_value_makes_only_the_wc_entry_new`)
        // and keeps entries 0 and 3, which every other mapping uses, as they
        // were. wbinvd only writes back and invalidates caches.
        unsafe {
            Msr::new(IA32_PAT).write(PAT_VALUE);
            core::arch::asm!("wbinvd", options(nostack, preserves_flags));
        }
        tlb::flush_all();
    });
}

/// This CPU's IA32_PAT, for `smpboot::pat_check`.
pub fn read_pat() -> u64 {
    // SAFETY: IA32_PAT exists on every x86-64 CPU; reading it has no side
    // effects.
    unsafe { Msr::new(IA32_PAT).read() }
}

/// Where write-combining aliases are mapped: PML4 slot 511, an upper-half
/// range no identity mapping reaches (physical addresses are below 2^52,
/// identity-mapped only in the lower half).
pub const WC_WINDOW: u64 = 0xffff_ff80_0000_0000;
const WC_WINDOW_LEN: u64 = 1 << 39;

/// The aliases made so far: (physical start, length, virtual start).
/// Mapped once per range, kept for as long as the kernel runs (a BAR is
/// never unmapped), so a re-attach gets the same alias back.
static WC_ALIASES: spin::Mutex<Vec<(u64, u64, u64)>> = spin::Mutex::new(Vec::new());

/// A write-combining alias of `[phys, phys + len)` (page aligned) in 4 KiB
/// pages; its virtual start.
pub fn wc_alias(phys: u64, len: u64) -> Result<u64, MapError> {
    let bad = MapError::BadRange { start: phys, len };
    if len == 0 || !phys.is_multiple_of(0x1000) || !len.is_multiple_of(0x1000) {
        return Err(bad);
    }
    let mut aliases = WC_ALIASES.lock();
    if let Some(&(_, _, v)) = aliases.iter().find(|a| a.0 == phys && a.1 == len) {
        return Ok(v);
    }
    let used = aliases.last().map_or(0, |&(_, l, v)| v - WC_WINDOW + l);
    // A gap page between aliases: running off one faults.
    let virt = WC_WINDOW + used + if used == 0 { 0 } else { 0x1000 };
    if (virt - WC_WINDOW)
        .checked_add(len)
        .is_none_or(|end| end > WC_WINDOW_LEN)
        || phys.checked_add(len).is_none()
    {
        return Err(bad);
    }
    change(|t, pml4| {
        (0..len).step_by(0x1000).try_for_each(|off| {
            cxos_kernel::paging::map_4k_alias(
                t,
                pml4,
                virt + off,
                phys + off,
                Cache::WriteCombining,
            )
        })
    })?;
    aliases.push((phys, len, virt));
    Ok(virt)
}
