//! Per-CPU data through the GS base, the per-CPU vectors (timer, wake
//! and ping IPIs), and the stop of every CPU on a panic. `smpboot` starts
//! the application processors (APs); this module is what the interrupt
//! dispatcher calls, so it does not depend on it.
//!
//! An AP runs its own local APIC timer and its own main loop
//! (`runtime::run_once`): a device interrupt sets the vector's pending flag
//! and wakes the CPU its work is bound to (`interrupts::set_work_cpu`),
//! which may be another one; console and shell stay on the boot CPU.

use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

use crate::apic::{self, Icr};
use crate::{arch, println, time};

pub const MAX_CPUS: usize = 16;

/// How long a panic waits for the other CPUs to stop.
const STOP_TIMEOUT_NS: u64 = 200_000_000;

/// A CPU's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CpuState {
    Absent = 0,
    Starting = 1,
    Online = 2,
    /// Did not come up in time: skipped.
    Failed = 3,
    /// Stopped by a panic elsewhere.
    Stopped = 4,
}

impl CpuState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Starting,
            2 => Self::Online,
            3 => Self::Failed,
            4 => Self::Stopped,
            _ => Self::Absent,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Starting => "starting",
            Self::Online => "online",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// One CPU's data; the GS base points at its own.
#[repr(C)]
pub struct PerCpu {
    /// gs:[0], read by [`current`].
    index: u64,
    pub apic_id: AtomicU32,
    state: AtomicU8,
    /// When it came online and how long it has halted since (ns).
    pub since_ns: AtomicU64,
    idle_ns: AtomicU64,
    /// Ping IPIs it answered.
    pub pings: AtomicU64,
    /// Where a stop IPI found it.
    stop_rip: AtomicU64,
    stop_rsp: AtomicU64,
    stop_rflags: AtomicU64,
}

impl PerCpu {
    const fn new(index: u64) -> Self {
        Self {
            index,
            apic_id: AtomicU32::new(0),
            state: AtomicU8::new(CpuState::Absent as u8),
            since_ns: AtomicU64::new(0),
            idle_ns: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            stop_rip: AtomicU64::new(0),
            stop_rsp: AtomicU64::new(0),
            stop_rflags: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> CpuState {
        CpuState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, s: CpuState) {
        self.state.store(s as u8, Ordering::Release);
    }
}

pub static CPUS: [PerCpu; MAX_CPUS] = {
    let mut cpus = [const { PerCpu::new(0) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        cpus[i].index = i as u64;
        i += 1;
    }
    cpus
};

/// Vectors of the per-CPU timer and the IPIs (0: not allocated yet).
static TIMER_VECTOR: AtomicU8 = AtomicU8::new(0);
static WAKE_VECTOR: AtomicU8 = AtomicU8::new(0);
static PING_VECTOR: AtomicU8 = AtomicU8::new(0);
/// Set before a panic's NMIs go out: an NMI then means "stop".
static STOPPING: AtomicBool = AtomicBool::new(false);
/// `test=smp-panic`: the next ping panics the CPU it reaches.
pub static PANIC_ON_PING: AtomicBool = AtomicBool::new(false);
/// CPUs started (the boot CPU included).
static COUNT: AtomicU32 = AtomicU32::new(1);

/// The vectors `smpboot` allocated for the APs' timer and the IPIs.
pub fn set_vectors(timer: u8, wake: u8, ping: u8) {
    TIMER_VECTOR.store(timer, Ordering::Relaxed);
    WAKE_VECTOR.store(wake, Ordering::Relaxed);
    PING_VECTOR.store(ping, Ordering::Relaxed);
}

pub fn timer_vector() -> u8 {
    TIMER_VECTOR.load(Ordering::Relaxed)
}

pub fn wake_vector() -> u8 {
    WAKE_VECTOR.load(Ordering::Relaxed)
}

pub fn ping_vector() -> u8 {
    PING_VECTOR.load(Ordering::Relaxed)
}

pub fn set_count(n: usize) {
    COUNT.store(n as u32, Ordering::Release);
}

/// What the dispatcher does after [`on_local_vector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    /// Not a per-CPU vector: a device's.
    No,
    Handled,
    /// A wake IPI: bump the main loop's wake counter.
    Wake,
}

/// Point the GS base at the boot CPU's data. First thing at boot: the
/// interrupt dispatcher reads the CPU index through it.
pub fn init_bsp() {
    GsBase::write(VirtAddr::new(&raw const CPUS[0] as u64));
    CPUS[0].set_state(CpuState::Online);
}

/// This CPU's index (0 = the boot CPU).
pub fn current() -> usize {
    let i: u64;
    // SAFETY: the GS base points at this CPU's `PerCpu` (`init_bsp`,
    // `ap_main`, both before interrupts are enabled), whose first field
    // is its index; the read has no side effects.
    unsafe { asm!("mov {}, gs:[0]", out(reg) i, options(nostack, readonly, preserves_flags)) };
    (i as usize).min(MAX_CPUS - 1)
}

pub fn count() -> usize {
    COUNT.load(Ordering::Acquire) as usize
}

/// `hlt` until the next interrupt, counted as this CPU's idle time.
pub fn halt_idle() {
    let t0 = time::now_ns();
    arch::enable_and_halt();
    CPUS[current()]
        .idle_ns
        .fetch_add(time::now_ns().saturating_sub(t0), Ordering::Relaxed);
}

/// Handle the per-CPU vectors (timer, wake, ping).
pub fn on_local_vector(vector: u8) -> Local {
    if vector == 0 {
        return Local::No;
    }
    if vector == TIMER_VECTOR.load(Ordering::Relaxed) {
        return Local::Handled;
    }
    if vector == WAKE_VECTOR.load(Ordering::Relaxed) {
        return Local::Wake;
    }
    if vector == PING_VECTOR.load(Ordering::Relaxed) {
        if PANIC_ON_PING.load(Ordering::Acquire) {
            panic!("test panic on CPU {} (smp-panic)", current());
        }
        CPUS[current()].pings.fetch_add(1, Ordering::AcqRel);
        wake(0);
        return Local::Handled;
    }
    Local::No
}

/// Wake CPU `cpu` out of `hlt` (a fixed IPI on the wake vector).
pub fn wake(cpu: usize) {
    let v = WAKE_VECTOR.load(Ordering::Relaxed);
    if v != 0 && cpu < MAX_CPUS && CPUS[cpu].state() == CpuState::Online {
        apic::send_ipi(
            CPUS[cpu].apic_id.load(Ordering::Relaxed),
            Icr::new().with_vector(v),
        );
    }
}

/// The APIC id of online CPU `cpu`.
pub fn apic_id(cpu: usize) -> Option<u32> {
    (cpu < MAX_CPUS && CPUS[cpu].state() == CpuState::Online)
        .then(|| CPUS[cpu].apic_id.load(Ordering::Relaxed))
}

/// One CPU as `cpus` shows it.
#[derive(Clone, Copy, Debug)]
pub struct CpuInfo {
    pub index: usize,
    pub apic_id: u32,
    pub state: CpuState,
    pub idle_permille: u64,
}

pub fn cpus() -> Vec<CpuInfo> {
    let now = time::now_ns();
    CPUS.iter()
        .enumerate()
        .filter(|(_, c)| c.state() != CpuState::Absent)
        .map(|(i, c)| {
            let up = now
                .saturating_sub(c.since_ns.load(Ordering::Relaxed))
                .max(1);
            let idle = c.idle_ns.load(Ordering::Relaxed).min(up);
            CpuInfo {
                index: i,
                apic_id: c.apic_id.load(Ordering::Relaxed),
                state: c.state(),
                idle_permille: idle * 1000 / up,
            }
        })
        .collect()
}

/// Stop every other CPU (an NMI each) and wait for them to report where
/// they were; for the panic and exception reports.
pub fn stop_others() {
    if STOPPING.swap(true, Ordering::AcqRel) {
        return;
    }
    let me = current();
    for (i, c) in CPUS.iter().enumerate() {
        if i != me && c.state() == CpuState::Online {
            apic::send_ipi(
                c.apic_id.load(Ordering::Relaxed),
                Icr::new().with_delivery_mode(apic::DELIVERY_NMI),
            );
        }
    }
    let deadline = time::now_ns() + STOP_TIMEOUT_NS;
    while time::now_ns() < deadline
        && CPUS
            .iter()
            .enumerate()
            .any(|(i, c)| i != me && c.state() == CpuState::Online)
    {
        core::hint::spin_loop();
    }
}

/// Whether an NMI now means "stop" (see [`stop_others`]).
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Acquire)
}

/// The stop IPI's handler: note where this CPU was and halt for good.
pub fn on_stop(rip: u64, rsp: u64, rflags: u64) -> ! {
    let c = &CPUS[current()];
    c.stop_rip.store(rip, Ordering::Relaxed);
    c.stop_rsp.store(rsp, Ordering::Relaxed);
    c.stop_rflags.store(rflags, Ordering::Relaxed);
    c.set_state(CpuState::Stopped);
    arch::halt_forever()
}

/// One line per CPU: the panic report's tail.
pub fn print_states() {
    if count() <= 1 {
        return;
    }
    let me = current();
    for (i, c) in CPUS.iter().enumerate() {
        let state = c.state();
        if state == CpuState::Absent {
            continue;
        }
        let id = c.apic_id.load(Ordering::Relaxed);
        if i == me {
            println!("cpu {i} apic {id}: this CPU");
        } else if state == CpuState::Stopped {
            println!(
                "cpu {i} apic {id}: stopped rip={:#x} rsp={:#x} rflags={:#x}",
                c.stop_rip.load(Ordering::Relaxed),
                c.stop_rsp.load(Ordering::Relaxed),
                c.stop_rflags.load(Ordering::Relaxed)
            );
        } else {
            println!("cpu {i} apic {id}: {} (did not stop)", state.name());
        }
    }
}
