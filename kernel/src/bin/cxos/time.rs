//! Time: the TSC calibrated against the ACPI PM timer (or the PIT when ACPI
//! has none), and the local APIC timer calibrated in the same window.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

use crate::{apic, arch};

/// ns = (tsc - TSC0) * MULT >> 32
static TSC0: AtomicU64 = AtomicU64::new(0);
static MULT: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Local APIC timer ticks (divide by 16) per second.
static APIC_HZ: AtomicU64 = AtomicU64::new(0);

const PM_TIMER_HZ: u64 = 3_579_545;
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: short, because boot time matters (2 ms gives
/// ~0.01 % with the PM timer's 279 ns resolution).
const WINDOW_US: u64 = 2000;

pub fn now_ns() -> u64 {
    let mult = MULT.load(Ordering::Relaxed);
    let d = arch::rdtsc().wrapping_sub(TSC0.load(Ordering::Relaxed));
    ((u128::from(d) * u128::from(mult)) >> 32) as u64
}

pub fn delay_us(us: u64) {
    let end = now_ns().saturating_add(us.saturating_mul(1000));
    while now_ns() < end {
        core::hint::spin_loop();
    }
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn apic_timer_hz() -> u64 {
    APIC_HZ.load(Ordering::Relaxed)
}

/// Which reference measured the clocks.
#[derive(Clone, Copy, Debug)]
pub enum Reference {
    PmTimer(u16),
    Pit,
}

/// Measure TSC and APIC timer rates over [`WINDOW_US`] of the reference.
pub fn calibrate(reference: Reference) {
    apic::timer_start_free_running();
    let (tsc_ticks, apic_ticks, ref_ns) = arch::without_interrupts(|| match reference {
        Reference::PmTimer(port) => {
            let want = PM_TIMER_HZ * WINDOW_US / 1_000_000;
            let mut pm_timer = Port::<u32>::new(port);
            // SAFETY: the FADT names this port as the PM timer, a read-only
            // counter: reading it has no side effects.
            let mut read = || unsafe { pm_timer.read() };
            // The counter may be 24 bits: count in 24-bit deltas.
            let start = read() & 0xff_ffff;
            let a0 = apic::timer_current();
            let s0 = arch::rdtsc();
            let mut elapsed = 0u64;
            let mut spins = 0u64;
            while elapsed < want && spins < 50_000_000 {
                let now = read() & 0xff_ffff;
                elapsed = u64::from(now.wrapping_sub(start) & 0xff_ffff);
                spins += 1;
            }
            let s1 = arch::rdtsc();
            let a1 = apic::timer_current();
            (
                s1 - s0,
                u64::from(a0 - a1),
                elapsed * 1_000_000_000 / PM_TIMER_HZ,
            )
        }
        Reference::Pit => {
            // Channel 0 as a rate generator from 0xffff, read by latching
            // (channel 0's gate is always on; port 0x61 may not exist).
            let want = PIT_HZ * WINDOW_US / 1_000_000;
            let mut command = Port::<u8>::new(0x43);
            let mut channel0 = Port::<u8>::new(0x40);
            // SAFETY: 0x40/0x43 are the PC's 8254 channel 0 and command
            // port; channel 0 is unused by cxos (its IRQ is masked).
            let mut read = || unsafe {
                command.write(0x00);
                let lo = channel0.read();
                let hi = channel0.read();
                u16::from_le_bytes([lo, hi])
            };
            // SAFETY: as in `read`: mode 2 (rate generator) from 0xffff.
            unsafe {
                Port::<u8>::new(0x43).write(0x34);
                Port::<u8>::new(0x40).write(0xff);
                Port::<u8>::new(0x40).write(0xff);
            }
            let start = read();
            let a0 = apic::timer_current();
            let s0 = arch::rdtsc();
            let mut elapsed = 0u64;
            let mut spins = 0u64;
            while elapsed < want && spins < 5_000_000 {
                elapsed = u64::from(start.wrapping_sub(read()));
                spins += 1;
            }
            let s1 = arch::rdtsc();
            let a1 = apic::timer_current();
            (
                s1 - s0,
                u64::from(a0 - a1),
                elapsed * 1_000_000_000 / PIT_HZ,
            )
        }
    });
    apic::timer_stop();
    if ref_ns < WINDOW_US * 1000 / 2 {
        // The reference did not count: keep going with a guess rather
        // than hang; timers are then only roughly right.
        log::error!(target: "time", "{reference:?} did not advance; assuming a 1 GHz TSC");
        TSC_HZ.store(1_000_000_000, Ordering::Relaxed);
        // The APIC timer still ran alongside the TSC: scale it the same way.
        let apic_hz = u128::from(apic_ticks) * 1_000_000_000 / u128::from(tsc_ticks.max(1));
        APIC_HZ.store((apic_hz as u64).max(1000), Ordering::Relaxed);
        MULT.store(1 << 32, Ordering::Relaxed);
        return;
    }
    let tsc_hz = (tsc_ticks * 1_000_000_000 / ref_ns).max(1_000_000);
    TSC_HZ.store(tsc_hz, Ordering::Relaxed);
    APIC_HZ.store(
        (apic_ticks * 1_000_000_000 / ref_ns).max(1000),
        Ordering::Relaxed,
    );
    MULT.store(
        ((1_000_000_000u128 << 32) / u128::from(tsc_hz)) as u64,
        Ordering::Relaxed,
    );
}

/// Set the time origin (first thing at boot).
pub fn start() {
    TSC0.store(arch::rdtsc(), Ordering::Relaxed);
}
