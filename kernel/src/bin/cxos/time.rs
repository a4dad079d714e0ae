//! Time: the TSC calibrated against the ACPI PM timer (or the PIT when ACPI
//! has none), and the local APIC timer calibrated in the same windows
//! (window choice: `cxos_kernel::tsccal`).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use cxos_kernel::tsccal::{self, Choice, Sample, Window};

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
/// Calibration windows: short, because boot time matters (1 ms gives
/// ~0.03 % with the PM timer's 279 ns resolution), and several, so that a
/// window stalled next to a reference read is outvoted (see `tsccal`).
const WINDOW_US: u64 = 1000;
const WINDOWS: usize = 5;

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

/// What [`calibrate`] saw, for the boot log.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// Windows measured (fewer than [`WINDOWS`] when the reference stopped).
    pub windows: usize,
    pub choice: Option<Choice>,
}

impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.choice {
            Some(c) => write!(
                f,
                "{}/{} windows of {WINDOW_US} us tight, spread {} ppm",
                c.tight, self.windows, c.spread_ppm
            ),
            None => write!(f, "reference did not advance"),
        }
    }
}

/// Measure TSC and APIC timer rates over [`WINDOWS`] windows of
/// [`WINDOW_US`] of the reference and keep the median tight one.
pub fn calibrate(reference: Reference) -> Calibration {
    apic::timer_start_free_running();
    let mut windows = [Window::default(); WINDOWS];
    let n = arch::without_interrupts(|| match reference {
        Reference::PmTimer(port) => {
            let mut pm_timer = Port::<u32>::new(port);
            // SAFETY: the FADT names this port as the PM timer, a read-only
            // counter: reading it has no side effects.
            let read = || u64::from(unsafe { pm_timer.read() });
            // The counter may be 24 bits: count in 24-bit deltas.
            let elapsed = |from: u64, to: u64| to.wrapping_sub(from) & 0xff_ffff;
            measure(&mut windows, read, elapsed, PM_TIMER_HZ, 25_000_000)
        }
        Reference::Pit => {
            // Channel 0 as a rate generator from 0xffff, read by latching
            // (channel 0's gate is always on; port 0x61 may not exist).
            let mut command = Port::<u8>::new(0x43);
            let mut channel0 = Port::<u8>::new(0x40);
            // SAFETY: 0x40/0x43 are the PC's 8254 channel 0 and command
            // port; channel 0 is unused by cxos (its IRQ is masked).
            let read = || unsafe {
                command.write(0x00);
                let lo = channel0.read();
                let hi = channel0.read();
                u64::from(u16::from_le_bytes([lo, hi]))
            };
            // SAFETY: as in `read`: mode 2 (rate generator) from 0xffff.
            unsafe {
                Port::<u8>::new(0x43).write(0x34);
                Port::<u8>::new(0x40).write(0xff);
                Port::<u8>::new(0x40).write(0xff);
            }
            // Counts down.
            let elapsed = |from: u64, to: u64| from.wrapping_sub(to) & 0xffff;
            measure(&mut windows, read, elapsed, PIT_HZ, 2_500_000)
        }
    });
    apic::timer_stop();
    let windows = &windows[..n];
    let Some(choice) = tsccal::choose(windows, WINDOW_US * 1000 / 2) else {
        // The reference did not count: keep going with a guess rather
        // than hang; timers are then only roughly right.
        log::error!(target: "time", "{reference:?} did not advance; assuming a 1 GHz TSC");
        TSC_HZ.store(1_000_000_000, Ordering::Relaxed);
        // The APIC timer still ran alongside the TSC: scale it the same way.
        let (apic_ticks, tsc_ticks) = windows.iter().fold((0u64, 0u64), |(a, t), w| {
            (a + w.apic_ticks(), t + w.tsc_ticks())
        });
        let apic_hz = u128::from(apic_ticks) * 1_000_000_000 / u128::from(tsc_ticks.max(1));
        APIC_HZ.store((apic_hz as u64).max(1000), Ordering::Relaxed);
        MULT.store(1 << 32, Ordering::Relaxed);
        return Calibration {
            windows: n,
            choice: None,
        };
    };
    let tsc_hz = choice.tsc_hz.max(1_000_000);
    TSC_HZ.store(tsc_hz, Ordering::Relaxed);
    APIC_HZ.store(choice.apic_hz.max(1000), Ordering::Relaxed);
    MULT.store(
        ((1_000_000_000u128 << 32) / u128::from(tsc_hz)) as u64,
        Ordering::Relaxed,
    );
    Calibration {
        windows: n,
        choice: Some(choice),
    }
}

/// One reference read bracketed by TSC reads, with the APIC timer read
/// inside the bracket.
fn bracketed(read: &mut impl FnMut() -> u64) -> (Sample, u64) {
    let tsc_before = arch::rdtsc();
    let now = read();
    let apic = apic::timer_current();
    let tsc_after = arch::rdtsc();
    let sample = Sample {
        tsc_before,
        tsc_after,
        apic,
    };
    (sample, now)
}

/// Fill `windows`, each [`WINDOW_US`] of the reference (`hz`, `elapsed`
/// counts ticks between two reads). Stops after a window in which the
/// reference did not reach its length within `max_spins` reads: a dead
/// reference costs one window's spin limit, not all of them. Returns the
/// windows measured.
fn measure(
    windows: &mut [Window],
    mut read: impl FnMut() -> u64,
    elapsed: impl Fn(u64, u64) -> u64,
    hz: u64,
    max_spins: u64,
) -> usize {
    let want = hz * WINDOW_US / 1_000_000;
    let mut n = 0;
    for w in windows.iter_mut() {
        let (start, from) = bracketed(&mut read);
        let mut spins = 0u64;
        while elapsed(from, read()) < want && spins < max_spins {
            spins += 1;
        }
        let (end, to) = bracketed(&mut read);
        *w = Window {
            start,
            end,
            ref_ns: elapsed(from, to) * 1_000_000_000 / hz,
        };
        n += 1;
        if spins >= max_spins {
            break;
        }
    }
    n
}

/// Set the time origin (first thing at boot).
pub fn start() {
    TSC0.store(arch::rdtsc(), Ordering::Relaxed);
}
