//! Legacy PIC (remapped, then masked), local APIC (xAPIC, MMIO) with its
//! timer, and the I/O APIC (Intel SDM vol. 3 ch. 11; 82093AA datasheet).

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use cxos_kernel::acpi::{InterruptOverride, IoApic};

use crate::arch::{outb, rdmsr, wrmsr};
use crate::mmu::{self, Cache};

static LAPIC_BASE: AtomicU64 = AtomicU64::new(0xfee0_0000);
static BSP_APIC_ID: AtomicU32 = AtomicU32::new(0);
/// Firmware left the local APIC in x2APIC mode: registers are MSRs
/// 0x800 + offset / 16 (SDM 11.12.1), the MMIO page does not decode.
static X2APIC: AtomicBool = AtomicBool::new(false);

const LAPIC_ID: usize = 0x20;
const LAPIC_TPR: usize = 0x80;
const LAPIC_EOI: usize = 0xb0;
const LAPIC_SVR: usize = 0xf0;
const LAPIC_LVT_TIMER: usize = 0x320;
const LAPIC_LVT_LINT0: usize = 0x350;
const LAPIC_LVT_LINT1: usize = 0x360;
const LAPIC_LVT_ERROR: usize = 0x370;
const LAPIC_TIMER_INITIAL: usize = 0x380;
const LAPIC_TIMER_CURRENT: usize = 0x390;
const LAPIC_TIMER_DIVIDE: usize = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;

/// Remap the 8259 pair to vectors 0x20..0x30 (firmware leaves IRQ0 on
/// vector 8, the double fault) and mask every line.
pub fn disable_pic() {
    outb(0x20, 0x11);
    outb(0xa0, 0x11);
    outb(0x21, 0x20);
    outb(0xa1, 0x28);
    outb(0x21, 4);
    outb(0xa1, 2);
    outb(0x21, 1);
    outb(0xa1, 1);
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

fn lapic_read(reg: usize) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        return rdmsr(0x800 + (reg >> 4) as u32) as u32;
    }
    // SAFETY: the local APIC page is mapped uncached by `init_lapic`; reg is
    // one of the architectural register offsets.
    unsafe { ptr::read_volatile((LAPIC_BASE.load(Ordering::Relaxed) as usize + reg) as *const u32) }
}

fn lapic_write(reg: usize, v: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        wrmsr(0x800 + (reg >> 4) as u32, u64::from(v));
        return;
    }
    // SAFETY: as in `lapic_read`.
    unsafe {
        ptr::write_volatile(
            (LAPIC_BASE.load(Ordering::Relaxed) as usize + reg) as *mut u32,
            v,
        )
    }
}

/// Enable the local APIC at `madt_base` (or the MSR's base) with the
/// spurious vector, all local interrupts masked.
pub fn init_lapic(madt_base: Option<u64>) {
    let msr = rdmsr(0x1b);
    let base = madt_base.unwrap_or(msr & 0x000f_ffff_ffff_f000);
    if msr & (1 << 11) == 0 {
        log::warn!(target: "apic", "local APIC globally disabled in IA32_APIC_BASE");
    }
    let x2apic = msr & (1 << 10) != 0;
    X2APIC.store(x2apic, Ordering::Relaxed);
    if !x2apic && let Err(e) = mmu::map_identity(base, 0x1000, Cache::Uncached) {
        panic!("cannot map the local APIC: {e}");
    }
    LAPIC_BASE.store(base, Ordering::Relaxed);
    let id = lapic_read(LAPIC_ID);
    let id = if x2apic { id } else { id >> 24 };
    if id > 0xff {
        log::warn!(target: "apic", "boot CPU APIC id {id:#x} does not fit MSI/I/O APIC destinations");
    }
    BSP_APIC_ID.store(id, Ordering::Relaxed);
    log::debug!(target: "apic", "local APIC id {id} ({})", if x2apic { "x2APIC" } else { "xAPIC" });
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT1, LVT_MASKED);
    lapic_write(LAPIC_LVT_ERROR, LVT_MASKED);
    lapic_write(
        LAPIC_SVR,
        0x100 | u32::from(crate::interrupts::SPURIOUS_VECTOR),
    );
    lapic_write(LAPIC_EOI, 0);
}

pub fn bsp_apic_id() -> u8 {
    BSP_APIC_ID.load(Ordering::Relaxed) as u8
}

pub fn eoi() {
    lapic_write(LAPIC_EOI, 0);
}

/// Timer divide by 16 (register value 0b0011).
const TIMER_DIVIDE_16: u32 = 0x3;

/// Start the timer counting down from `u32::MAX`, masked (calibration).
pub fn timer_start_free_running() {
    lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_16);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_TIMER_INITIAL, u32::MAX);
}

pub fn timer_current() -> u32 {
    lapic_read(LAPIC_TIMER_CURRENT)
}

/// One-shot interrupt on `vector` after `ticks` (divided) timer ticks.
pub fn timer_oneshot(vector: u8, ticks: u32) {
    lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_16);
    lapic_write(LAPIC_LVT_TIMER, u32::from(vector));
    lapic_write(LAPIC_TIMER_INITIAL, ticks.max(1));
}

pub fn timer_stop() {
    lapic_write(LAPIC_TIMER_INITIAL, 0);
}

// ---- I/O APIC ----

struct IoApicState {
    base: u64,
    gsi_base: u32,
    entries: u32,
}

static IOAPIC: spin::Mutex<Option<IoApicState>> = spin::Mutex::new(None);
static OVERRIDES: spin::Mutex<alloc::vec::Vec<InterruptOverride>> =
    spin::Mutex::new(alloc::vec::Vec::new());

fn ioapic_write(base: u64, reg: u32, v: u32) {
    // SAFETY: `base` is the I/O APIC's register window, mapped uncached;
    // IOREGSEL at +0 selects the register written through IOWIN at +0x10.
    unsafe {
        ptr::write_volatile(base as *mut u32, reg);
        ptr::write_volatile((base + 0x10) as *mut u32, v);
    }
}

fn ioapic_read(base: u64, reg: u32) -> u32 {
    // SAFETY: as in `ioapic_write`.
    unsafe {
        ptr::write_volatile(base as *mut u32, reg);
        ptr::read_volatile((base + 0x10) as *const u32)
    }
}

/// Use the first I/O APIC of the MADT (or the PC default at 0xfec00000),
/// masking all its inputs.
pub fn init_ioapic(ioapic: Option<IoApic>, overrides: &[InterruptOverride]) {
    let (base, gsi_base) = match ioapic {
        Some(io) => (u64::from(io.address), io.gsi_base),
        None => {
            log::warn!(target: "apic", "no I/O APIC in ACPI; assuming 0xfec00000");
            (0xfec0_0000, 0)
        }
    };
    if let Err(e) = mmu::map_identity(base, 0x1000, Cache::Uncached) {
        panic!("cannot map the I/O APIC: {e}");
    }
    let entries = ((ioapic_read(base, 1) >> 16) & 0xff) + 1;
    for i in 0..entries {
        ioapic_write(base, 0x10 + 2 * i, LVT_MASKED);
        ioapic_write(base, 0x11 + 2 * i, 0);
    }
    *IOAPIC.lock() = Some(IoApicState {
        base,
        gsi_base,
        entries,
    });
    *OVERRIDES.lock() = overrides.to_vec();
}

/// Route ISA IRQ `irq` to `vector` on the boot CPU, honouring the MADT's
/// interrupt source overrides (ISA default: edge, active high).
pub fn route_isa_irq(irq: u8, vector: u8) -> Result<u32, &'static str> {
    let ov = OVERRIDES.lock().iter().find(|o| o.source == irq).copied();
    let (gsi, flags) = ov.map_or((u32::from(irq), 0), |o| (o.gsi, o.flags));
    let guard = IOAPIC.lock();
    let io = guard.as_ref().ok_or("no I/O APIC")?;
    let pin = gsi
        .checked_sub(io.gsi_base)
        .filter(|&p| p < io.entries)
        .ok_or("GSI not on this I/O APIC")?;
    let active_low = flags & 3 == 3;
    let level = (flags >> 2) & 3 == 3;
    let low = u32::from(vector) | (u32::from(active_low) << 13) | (u32::from(level) << 15);
    ioapic_write(io.base, 0x11 + 2 * pin, u32::from(bsp_apic_id()) << 24);
    ioapic_write(io.base, 0x10 + 2 * pin, low);
    Ok(gsi)
}
