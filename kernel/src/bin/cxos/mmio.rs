//! Device registers through `volatile`'s [`VolatilePtr`]: the local APIC,
//! the I/O APIC, the ECAM window and BARs (the mlx5 BAR0 accessors in
//! `platform.rs` do the same with their own bounds checks).

use core::ptr::NonNull;

use volatile::VolatilePtr;

/// The 32-bit register at `addr`.
///
/// # Safety
///
/// `addr` is non-null, 4-aligned and inside a device register window that
/// stays mapped uncached for the rest of the kernel's life, and accessing
/// the register has no effect the caller has not accounted for.
pub unsafe fn reg32(addr: u64) -> VolatilePtr<'static, u32> {
    // SAFETY: the caller guarantees a non-null, aligned, mapped register.
    unsafe { VolatilePtr::new(NonNull::new_unchecked(addr as *mut u32)) }
}
