//! Leaving the machine: ACPI S5 (soft off) as the DSDT describes it, QEMU's
//! exit device, and a reset through the chipset or the keyboard
//! controller.

use core::sync::atomic::{AtomicU16, Ordering};

use cxos_boot::PhysMemory;
use cxos_kernel::acpi::{self, Tables};
use x86_64::instructions::port::Port;

use crate::{arch, println, time};

/// PM1a control port and SLP_TYPa for S5, when ACPI provides them.
static S5_PORT: AtomicU16 = AtomicU16::new(0);
static S5_VALUE: AtomicU16 = AtomicU16::new(0);

/// Learn how to enter S5 from the DSDT (read after the main heap exists:
/// DSDTs of real machines run to hundreds of KiB).
pub fn setup_s5(tables: &Tables) {
    let mem = PhysMemory;
    if let (Some(fadt), Some(dsdt)) = (tables.fadt, tables.fadt.and_then(|f| f.dsdt))
        && let Some(port) = fadt.pm1a_control_port
    {
        match acpi::read_table(&mem, dsdt).map(|t| acpi::find_s5(&t)) {
            Ok(Some(slp_typ)) => {
                S5_PORT.store(port, Ordering::Relaxed);
                S5_VALUE.store((u16::from(slp_typ) << 10) | (1 << 13), Ordering::Relaxed);
            }
            Ok(None) => log::debug!(target: "acpi", "no \\_S5 in the DSDT"),
            Err(e) => log::warn!(target: "acpi", "DSDT: {e}"),
        }
    }
}

/// Enter ACPI S5 (soft off) if the DSDT told how; returns if it did not.
fn acpi_s5() {
    let port = S5_PORT.load(Ordering::Relaxed);
    if port != 0 {
        // SAFETY: the FADT names `port` as PM1a_CNT; SLP_TYP from the DSDT
        // with SLP_EN switches the machine off, as the caller asked.
        unsafe { Port::<u16>::new(port).write(S5_VALUE.load(Ordering::Relaxed)) };
        time::delay_us(100_000);
    }
}

/// isa-debug-exit when present (QEMU exits 33), else ACPI S5, else halt.
pub fn poweroff() -> ! {
    println!("poweroff");
    arch::request_exit(arch::EXIT_PASS);
    acpi_s5();
    println!("poweroff: no way to switch off; halted");
    arch::halt_forever()
}

/// A real reset: the chipset's reset control register (0xcf9, ICH9 and
/// PIIX), then the keyboard controller's reset line.
pub fn reboot() -> ! {
    println!("reboot");
    arch::interrupts_disable();
    // Reset Control Register: hard reset (bit 1) requested by a 0 -> 1
    // transition of bit 2.
    arch::reset_control_register();
    time::delay_us(100_000);
    // 8042: pulse the CPU reset line.
    arch::keyboard_controller_reset();
    time::delay_us(100_000);
    println!("reboot: no reset method worked; halted");
    arch::halt_forever()
}
