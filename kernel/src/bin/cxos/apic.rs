//! Legacy PIC (remapped, then masked), local APIC (xAPIC, MMIO) with its
//! timer, and the I/O APIC (Intel SDM vol. 3 ch. 11; 82093AA datasheet).
//! Register-shaped values are `bitfield-struct` types; MSRs and ports are
//! `x86_64`'s.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use bitfield_struct::bitfield;
use cxos_kernel::acpi::{InterruptOverride, IoApic, MpsIntiFlags};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::{ApicBase, ApicBaseFlags, Msr};

use crate::mmu::{self, Cache};
use crate::{arch, mmio};

static LAPIC_BASE: AtomicU64 = AtomicU64::new(0xfee0_0000);
static BSP_APIC_ID: AtomicU32 = AtomicU32::new(0);
/// The local APICs run in x2APIC mode (firmware left them so, or the CPU
/// has it and `init_lapic` switched): registers are MSRs 0x800 + offset /
/// 16 (SDM 11.12.1), the MMIO page does not decode.
static X2APIC: AtomicBool = AtomicBool::new(false);

const LAPIC_ID: usize = 0x20;
const LAPIC_TPR: usize = 0x80;
const LAPIC_EOI: usize = 0xb0;
const LAPIC_ICR_LOW: usize = 0x300;
const LAPIC_ICR_HIGH: usize = 0x310;
const LAPIC_SVR: usize = 0xf0;
const LAPIC_LVT_TIMER: usize = 0x320;
const LAPIC_LVT_LINT0: usize = 0x350;
const LAPIC_LVT_LINT1: usize = 0x360;
const LAPIC_LVT_ERROR: usize = 0x370;
const LAPIC_TIMER_INITIAL: usize = 0x380;
const LAPIC_TIMER_CURRENT: usize = 0x390;
const LAPIC_TIMER_DIVIDE: usize = 0x3e0;
/// x2APIC register `reg` (its xAPIC offset) is MSR 0x800 + reg / 16.
const X2APIC_MSR_BASE: u32 = 0x800;

/// A local vector table entry: timer, LINT0/1, error (SDM vol. 3 11.5.1,
/// figure 11-8).
#[bitfield(u32)]
struct Lvt {
    vector: u8,
    /// Bits 10:8 (not in the timer's and the error entry).
    #[bits(3)]
    delivery_mode: u8,
    #[bits(1)]
    __: u8,
    /// Bit 12, read-only: a delivery is pending.
    #[bits(1, access = RO)]
    send_pending: bool,
    /// Bit 13 (LINT only).
    active_low: bool,
    /// Bit 14 (LINT only), read-only.
    #[bits(1, access = RO)]
    remote_irr: bool,
    /// Bit 15 (LINT only).
    level_triggered: bool,
    /// Bit 16.
    masked: bool,
    /// Bits 18:17 (timer only): 00b one-shot, 01b periodic.
    #[bits(2)]
    timer_mode: u8,
    #[bits(13)]
    __: u16,
}

/// Spurious interrupt vector register (SDM vol. 3 11.9, figure 11-23).
#[bitfield(u32)]
struct Svr {
    vector: u8,
    /// Bit 8: APIC software enable.
    apic_enabled: bool,
    #[bits(23)]
    __: u32,
}

/// An I/O APIC redirection table entry (82093AA datasheet 3.2.4).
#[bitfield(u64)]
struct Redirection {
    vector: u8,
    /// Bits 10:8: 000b fixed.
    #[bits(3)]
    delivery_mode: u8,
    /// Bit 11: logical (1) or physical (0) destination.
    logical_destination: bool,
    #[bits(1, access = RO)]
    send_pending: bool,
    /// Bit 13.
    active_low: bool,
    #[bits(1, access = RO)]
    remote_irr: bool,
    /// Bit 15.
    level_triggered: bool,
    /// Bit 16.
    masked: bool,
    #[bits(39)]
    __: u64,
    /// Bits 63:56: the destination APIC ID.
    destination: u8,
}

/// Remap the 8259 pair to vectors 0x20..0x30 (firmware leaves IRQ0 on
/// vector 8, the double fault) and mask every line.
pub fn disable_pic() {
    let (mut pic1_command, mut pic1_data) = (Port::<u8>::new(0x20), Port::<u8>::new(0x21));
    let (mut pic2_command, mut pic2_data) = (Port::<u8>::new(0xa0), Port::<u8>::new(0xa1));
    // SAFETY: the PC's 8259 pair, which nothing else in cxos programs:
    // ICW1..ICW4 (vector bases 0x20/0x28, cascade on IRQ2, 8086 mode),
    // then every line masked.
    unsafe {
        pic1_command.write(0x11);
        pic2_command.write(0x11);
        pic1_data.write(0x20);
        pic2_data.write(0x28);
        pic1_data.write(4);
        pic2_data.write(2);
        pic1_data.write(1);
        pic2_data.write(1);
        pic1_data.write(0xff);
        pic2_data.write(0xff);
    }
}

fn lapic_read(reg: usize) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        let msr = Msr::new(X2APIC_MSR_BASE + (reg >> 4) as u32);
        // SAFETY: in x2APIC mode the local APIC registers are these MSRs;
        // reg is one of the architectural register offsets, whose reads
        // have no side effects.
        return unsafe { msr.read() } as u32;
    }
    // SAFETY: the local APIC page is mapped uncached by `init_lapic`; reg is
    // one of the architectural register offsets.
    unsafe { mmio::reg32(LAPIC_BASE.load(Ordering::Relaxed) + reg as u64) }.read()
}

fn lapic_write(reg: usize, v: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        let mut msr = Msr::new(X2APIC_MSR_BASE + (reg >> 4) as u32);
        // SAFETY: as in `lapic_read`; the values written are ones the SDM
        // allows for the register.
        unsafe { msr.write(u64::from(v)) };
        return;
    }
    // SAFETY: as in `lapic_read`.
    unsafe { mmio::reg32(LAPIC_BASE.load(Ordering::Relaxed) + reg as u64) }.write(v)
}

/// Enable the local APIC at `madt_base` (or the MSR's base) with the
/// spurious vector, all local interrupts masked.
pub fn init_lapic(madt_base: Option<u64>) {
    let (frame, flags) = ApicBase::read();
    let base = madt_base.unwrap_or(frame.start_address().as_u64());
    if !flags.contains(ApicBaseFlags::LAPIC_ENABLE) {
        log::warn!(target: "apic", "local APIC globally disabled in IA32_APIC_BASE");
    }
    // CPUID.01H:ECX bit 21: x2APIC supported (SDM 11.12.1); switched on
    // from xAPIC by setting EXTD with EN still set.
    let has_x2apic = core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0;
    let x2apic = flags.contains(ApicBaseFlags::X2APIC_ENABLE) || has_x2apic;
    X2APIC.store(x2apic, Ordering::Relaxed);
    if !x2apic && let Err(e) = mmu::map_identity(base, 0x1000, Cache::Uncached) {
        panic!("cannot map the local APIC: {e}");
    }
    LAPIC_BASE.store(base, Ordering::Relaxed);
    let id = init_local();
    if id > 0xff {
        log::warn!(target: "apic", "boot CPU APIC id {id:#x} does not fit MSI/I/O APIC destinations");
    }
    BSP_APIC_ID.store(id, Ordering::Relaxed);
    log::debug!(target: "apic", "local APIC id {id} ({})", if x2apic { "x2APIC" } else { "xAPIC" });
}

/// Set up this CPU's local APIC (every CPU: x2APIC mode is per CPU) in the
/// mode `init_lapic` chose, all local interrupts masked, the spurious
/// vector set; its APIC id.
pub fn init_local() -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        let (frame, flags) = ApicBase::read();
        if !flags.contains(ApicBaseFlags::X2APIC_ENABLE) {
            // SAFETY: CPUID reported x2APIC; EXTD with EN set is the
            // architectural xAPIC -> x2APIC transition (SDM 11.12.5), and
            // every register access after this goes through the MSRs.
            unsafe {
                ApicBase::write(
                    frame,
                    flags | ApicBaseFlags::LAPIC_ENABLE | ApicBaseFlags::X2APIC_ENABLE,
                )
            };
        }
    }
    let id = lapic_read(LAPIC_ID);
    let id = if X2APIC.load(Ordering::Relaxed) {
        id
    } else {
        id >> 24
    };
    let masked = Lvt::new().with_masked(true).into_bits();
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_LVT_TIMER, masked);
    lapic_write(LAPIC_LVT_LINT0, masked);
    lapic_write(LAPIC_LVT_LINT1, masked);
    lapic_write(LAPIC_LVT_ERROR, masked);
    let svr = Svr::new()
        .with_vector(cxos_kernel::vectors::SPURIOUS)
        .with_apic_enabled(true);
    lapic_write(LAPIC_SVR, svr.into_bits());
    lapic_write(LAPIC_EOI, 0);
    id
}

pub fn bsp_apic_id() -> u8 {
    BSP_APIC_ID.load(Ordering::Relaxed) as u8
}

pub fn bsp_apic_id_full() -> u32 {
    BSP_APIC_ID.load(Ordering::Relaxed)
}

pub fn x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// The interrupt command register's low half (SDM vol. 3 11.6.1, figure
/// 11-12); in x2APIC mode the destination is the MSR's high 32 bits.
#[bitfield(u32)]
pub struct Icr {
    pub vector: u8,
    /// Bits 10:8: 000b fixed, 100b NMI, 101b INIT, 110b start-up.
    #[bits(3)]
    pub delivery_mode: u8,
    /// Bit 11: logical destination.
    pub logical: bool,
    /// Bit 12 (xAPIC only): the previous IPI is not yet sent.
    #[bits(1, access = RO)]
    pub send_pending: bool,
    #[bits(1)]
    __: u8,
    /// Bit 14: level assert (1 for everything but INIT de-assert).
    pub assert: bool,
    /// Bit 15.
    pub level_triggered: bool,
    #[bits(2)]
    __: u8,
    /// Bits 19:18: 00b the destination field, 11b all excluding self.
    #[bits(2)]
    pub shorthand: u8,
    #[bits(12)]
    __: u16,
}

pub const DELIVERY_NMI: u8 = 4;
pub const DELIVERY_INIT: u8 = 5;
pub const DELIVERY_STARTUP: u8 = 6;

/// Send an IPI to `apic_id`; returns once the local APIC accepted it.
pub fn send_ipi(apic_id: u32, icr: Icr) {
    let icr = icr.with_assert(true);
    arch::without_interrupts(|| {
        if X2APIC.load(Ordering::Relaxed) {
            let mut msr = Msr::new(X2APIC_MSR_BASE + (LAPIC_ICR_LOW >> 4) as u32);
            // SAFETY: the x2APIC ICR (MSR 0x830): one 64-bit write sends
            // the IPI, destination in bits 63:32 (SDM 11.12.9).
            unsafe { msr.write((u64::from(apic_id) << 32) | u64::from(icr.into_bits())) };
            return;
        }
        // The high half first: writing the low half sends (SDM 11.6.1).
        lapic_write(LAPIC_ICR_HIGH, (apic_id & 0xff) << 24);
        lapic_write(LAPIC_ICR_LOW, icr.into_bits());
        let mut spins = 0u32;
        while Icr::from_bits(lapic_read(LAPIC_ICR_LOW)).send_pending() && spins < 1_000_000 {
            core::hint::spin_loop();
            spins += 1;
        }
    })
}

/// Periodic interrupt on `vector` every `ticks` (divided) timer ticks.
pub fn timer_periodic(vector: u8, ticks: u32) {
    lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_16);
    lapic_write(
        LAPIC_LVT_TIMER,
        Lvt::new()
            .with_vector(vector)
            .with_timer_mode(1)
            .into_bits(),
    );
    lapic_write(LAPIC_TIMER_INITIAL, ticks.max(1));
}

pub fn eoi() {
    lapic_write(LAPIC_EOI, 0);
}

/// Timer divide by 16 (register value 0b0011).
const TIMER_DIVIDE_16: u32 = 0x3;

/// Start the timer counting down from `u32::MAX`, masked (calibration).
pub fn timer_start_free_running() {
    lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_16);
    lapic_write(LAPIC_LVT_TIMER, Lvt::new().with_masked(true).into_bits());
    lapic_write(LAPIC_TIMER_INITIAL, u32::MAX);
}

pub fn timer_current() -> u32 {
    lapic_read(LAPIC_TIMER_CURRENT)
}

/// One-shot interrupt on `vector` after `ticks` (divided) timer ticks.
pub fn timer_oneshot(vector: u8, ticks: u32) {
    lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_16);
    lapic_write(LAPIC_LVT_TIMER, Lvt::new().with_vector(vector).into_bits());
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
/// The MADT's interrupt source overrides: at most one per ISA IRQ.
static OVERRIDES: spin::Mutex<heapless::Vec<InterruptOverride, ISA_IRQS>> =
    spin::Mutex::new(heapless::Vec::new());
const ISA_IRQS: usize = 16;

fn ioapic_write(base: u64, reg: u32, v: u32) {
    // SAFETY: `base` is the I/O APIC's register window, mapped uncached;
    // IOREGSEL at +0 selects the register written through IOWIN at +0x10.
    unsafe {
        mmio::reg32(base).write(reg);
        mmio::reg32(base + 0x10).write(v);
    }
}

fn ioapic_read(base: u64, reg: u32) -> u32 {
    // SAFETY: as in `ioapic_write`.
    unsafe {
        mmio::reg32(base).write(reg);
        mmio::reg32(base + 0x10).read()
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
    let masked = Redirection::new().with_masked(true).into_bits();
    for i in 0..entries {
        ioapic_write(base, 0x10 + 2 * i, masked as u32);
        ioapic_write(base, 0x11 + 2 * i, (masked >> 32) as u32);
    }
    *IOAPIC.lock() = Some(IoApicState {
        base,
        gsi_base,
        entries,
    });
    let mut kept = OVERRIDES.lock();
    kept.clear();
    for o in overrides {
        // The first override of an ISA IRQ counts (as the lookup below
        // always took it); the rest name no ISA IRQ or repeat one.
        if usize::from(o.source) < ISA_IRQS && !kept.iter().any(|k| k.source == o.source) {
            // Fits: one per ISA IRQ.
            let _ = kept.push(*o);
        }
    }
}

/// Route ISA IRQ `irq` to `vector` on the boot CPU, honouring the MADT's
/// interrupt source overrides (ISA default: edge, active high).
pub fn route_isa_irq(irq: u8, vector: u8) -> Result<u32, &'static str> {
    let ov = OVERRIDES.lock().iter().find(|o| o.source == irq).copied();
    let (gsi, flags) = ov.map_or((u32::from(irq), MpsIntiFlags::new()), |o| (o.gsi, o.flags));
    let guard = IOAPIC.lock();
    let io = guard.as_ref().ok_or("no I/O APIC")?;
    let pin = gsi
        .checked_sub(io.gsi_base)
        .filter(|&p| p < io.entries)
        .ok_or("GSI not on this I/O APIC")?;
    let entry = Redirection::new()
        .with_vector(vector)
        .with_active_low(flags.active_low())
        .with_level_triggered(flags.level_triggered())
        .with_destination(bsp_apic_id())
        .into_bits();
    // High half first: the low half unmasks.
    ioapic_write(io.base, 0x11 + 2 * pin, (entry >> 32) as u32);
    ioapic_write(io.base, 0x10 + 2 * pin, entry as u32);
    Ok(gsi)
}
