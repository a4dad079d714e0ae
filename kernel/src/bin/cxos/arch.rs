//! x86_64 instructions the kernel uses. Port I/O, MSRs, control registers,
//! descriptor tables and `cli`/`sti` come from the `x86_64` crate (port
//! and MSR accesses are its `unsafe fn`s, used where the device is known);
//! what it lacks or declares too weakly is here.

use core::arch::asm;

pub use x86_64::instructions::interrupts::{
    disable as interrupts_disable, enable as interrupts_enable, without_interrupts,
};
use x86_64::instructions::port::Port;

pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc only reads the time stamp counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Enable interrupts and halt until the next one, atomically (an interrupt
/// arriving between the two is taken after `hlt` begins, so it wakes it).
///
/// Not `x86_64::instructions::interrupts::enable_and_hlt`: that one is
/// declared `nomem`, which lets the compiler move memory accesses across
/// it, while the interrupt handlers that run inside it write the memory
/// the caller reads next (pending flags, the wake counter).
pub fn enable_and_halt() {
    // SAFETY: `sti; hlt` only waits for an interrupt; the IDT is loaded
    // before anything halts. Not `nomem`: see above.
    unsafe { asm!("sti", "hlt", options(nostack)) }
}

/// Halt forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stops the CPU; nothing follows. Not `nomem` (as in
        // `enable_and_halt`): everything written before stays written.
        unsafe { asm!("cli", "hlt", options(nostack)) }
    }
}

/// QEMU's isa-debug-exit device (iobase 0xf4): QEMU exits with
/// `(code << 1) | 1`.
pub const EXIT_PASS: u32 = 0x10;
pub const EXIT_FAIL: u32 = 0x11;

/// Ask QEMU to exit with `code`; returns if the exit device is absent.
pub fn request_exit(code: u32) {
    // SAFETY: 0xf4 is QEMU's isa-debug-exit; on machines without it the
    // write goes nowhere (the port is unassigned on PCs).
    unsafe { Port::<u32>::new(0xf4).write(code) }
}

/// Leave QEMU with `code`; halt if the exit device is absent.
pub fn exit(code: u32) -> ! {
    request_exit(code);
    halt_forever()
}

/// Reset through the chipset's Reset Control Register (0xcf9, ICH9 and
/// PIIX): hard reset (bit 1) requested by a 0 -> 1 transition of bit 2.
/// Returns if the machine has none.
pub fn reset_control_register() {
    let mut rcr = Port::<u8>::new(0xcf9);
    // SAFETY: 0xcf9 is the PC chipsets' reset control register; resetting
    // the machine is what the caller asked for.
    unsafe {
        rcr.write(0x02);
        rcr.write(0x06);
    }
}

/// Pulse the CPU reset line through the 8042 keyboard controller.
/// Returns if the machine has none.
pub fn keyboard_controller_reset() {
    // SAFETY: 0x64 is the 8042's command port; 0xfe pulses the reset line,
    // which is what the caller asked for.
    unsafe { Port::<u8>::new(0x64).write(0xfe) }
}
