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
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use cxos_kernel::tlb::{FlushBatch, Invalidate, Shootdown};

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
    /// Never started, or given up on at boot (the slot then goes to the
    /// next AP; [`failed`] keeps the APIC id).
    Absent = 0,
    Starting = 1,
    Online = 2,
    /// Stopped by a panic elsewhere.
    Stopped = 4,
}

impl CpuState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Starting,
            2 => Self::Online,
            4 => Self::Stopped,
            _ => Self::Absent,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Starting => "starting",
            Self::Online => "online",
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
    /// A function for this AP to run on its own kernel stack (`run_on`;
    /// 0: none), and how many it ran.
    call: AtomicUsize,
    calls: AtomicU64,
    /// `probe_read`: where a page fault resumes (0: a fault is fatal).
    probe_fixup: AtomicU64,
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
            call: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            probe_fixup: AtomicU64::new(0),
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
static TLB_VECTOR: AtomicU8 = AtomicU8::new(0);
/// The TLB shootdown in progress (`shootdown`).
static SHOOTDOWN: Shootdown<MAX_CPUS> = Shootdown::new();
/// How long a shootdown waits for the other CPUs' acknowledgements; only
/// bounds a CPU that stopped answering (its TLB is then flushed whole by
/// the next request it serves).
const SHOOTDOWN_TIMEOUT_NS: u64 = 2_000_000_000;
/// Set before a panic's NMIs go out: an NMI then means "stop".
static STOPPING: AtomicBool = AtomicBool::new(false);
/// `test=smp-panic`: the next ping panics the CPU it reaches.
pub static PANIC_ON_PING: AtomicBool = AtomicBool::new(false);
/// CPUs started (the boot CPU included).
static COUNT: AtomicU32 = AtomicU32::new(1);
/// The APIC ids of the APs that did not come up (`u32::MAX`: free; the
/// x2APIC broadcast id, never a CPU's).
static FAILED: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(u32::MAX) }; MAX_CPUS];

/// Note an AP that did not come up (`smpboot`), for `cpus` and the
/// panic report.
pub fn note_failed(apic_id: u32) {
    let _ = FAILED.iter().find(|s| {
        s.compare_exchange(u32::MAX, apic_id, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    });
}

/// The APIC ids of the APs that did not come up.
pub fn failed() -> impl Iterator<Item = u32> {
    FAILED
        .iter()
        .map(|s| s.load(Ordering::Acquire))
        .filter(|&id| id != u32::MAX)
}

/// The vectors `smpboot` allocated for the APs' timer and the IPIs.
pub fn set_vectors(timer: u8, wake: u8, ping: u8, tlb: u8) {
    TIMER_VECTOR.store(timer, Ordering::Relaxed);
    WAKE_VECTOR.store(wake, Ordering::Relaxed);
    PING_VECTOR.store(ping, Ordering::Relaxed);
    TLB_VECTOR.store(tlb, Ordering::Relaxed);
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

/// `hlt` until the next interrupt, counted as this CPU's idle time
/// (called with interrupts off; returns with them on). An AP with a
/// [`run_on`] call pending runs it instead: its wake IPI may have come
/// before interrupts were turned off.
pub fn halt_idle() {
    if run_call() {
        arch::interrupts_enable();
        return;
    }
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
    if vector == TLB_VECTOR.load(Ordering::Relaxed) {
        serve_shootdown();
        return Local::Handled;
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
    for id in failed() {
        println!("apic {id}: failed (did not come up at boot)");
    }
}

// ---- TLB shootdown ----

/// Carry out this CPU's pending shootdown request, if any: from the IPI,
/// and from `mmu`'s lock spin (a CPU waiting for the page-table lock with
/// interrupts off must still answer the CPU that holds it).
pub fn serve_shootdown() {
    SHOOTDOWN.serve(current(), |i| match i {
        Invalidate::Page(a) => x86_64::instructions::tlb::flush(VirtAddr::new_truncate(a)),
        // No global pages are mapped (the boot tables and `paging` never
        // set G), so reloading CR3 drops every translation.
        Invalidate::All => x86_64::instructions::tlb::flush_all(),
    });
}

/// Shootdowns this CPU served.
pub fn shootdowns_served(cpu: usize) -> u64 {
    SHOOTDOWN.served(cpu)
}

/// After a page-table change (the caller holds `mmu`'s lock and has
/// flushed its own TLB): make every other online CPU drop the changed
/// translations, and wait until each did. A CPU that does not answer in
/// time is reported; it flushes everything on its next request.
pub fn shootdown(batch: &FlushBatch) {
    let vector = TLB_VECTOR.load(Ordering::Relaxed);
    let me = current();
    let online = |i: usize| i != me && CPUS[i].state() == CpuState::Online;
    // The CPUs online now: one that comes up later loads the changed
    // tables afresh; one that stops (a panic elsewhere) is not waited for.
    let targets: Vec<usize> = (0..MAX_CPUS).filter(|&i| online(i)).collect();
    if vector == 0 || batch.is_empty() || targets.is_empty() {
        return;
    }
    let generation = SHOOTDOWN.publish(batch);
    for &cpu in &targets {
        apic::send_ipi(
            CPUS[cpu].apic_id.load(Ordering::Relaxed),
            Icr::new().with_vector(vector),
        );
    }
    let deadline = time::now_ns() + SHOOTDOWN_TIMEOUT_NS;
    loop {
        let missing = SHOOTDOWN.unacked(generation, targets.iter().copied().filter(|&i| online(i)));
        if missing == 0 {
            return;
        }
        if time::now_ns() > deadline {
            log::error!(target: "smp", "TLB shootdown {generation}: CPUs {missing:#b} (bit mask) did not acknowledge within {} ms", SHOOTDOWN_TIMEOUT_NS / 1_000_000);
            return;
        }
        core::hint::spin_loop();
    }
}

// ---- running code on an AP ----

/// Run `f` on AP `cpu`, on its own kernel stack (its idle loop picks it
/// up after the wake IPI), and wait up to `timeout_ns` for it to finish.
/// For the tests of the TLB shootdown and the AP stack guard pages.
pub fn run_on(cpu: usize, f: fn(), timeout_ns: u64) -> Result<(), &'static str> {
    if cpu == current() || cpu == 0 {
        return Err("not an AP other than this CPU");
    }
    if apic_id(cpu).is_none() {
        return Err("no such CPU online");
    }
    let c = &CPUS[cpu];
    let before = c.calls.load(Ordering::Acquire);
    if c.call
        .compare_exchange(0, f as usize, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err("that CPU is busy with another call");
    }
    wake(cpu);
    let deadline = time::now_ns() + timeout_ns;
    while c.calls.load(Ordering::Acquire) == before {
        if time::now_ns() > deadline {
            return Err("the call did not finish in time");
        }
        // The caller may have interrupts off: answer a shootdown the
        // call itself (or anyone) may be waiting for.
        serve_shootdown();
        core::hint::spin_loop();
    }
    Ok(())
}

/// The AP's side of [`run_on`], from its idle loop ([`halt_idle`]), on
/// its kernel stack; whether there was a call.
fn run_call() -> bool {
    let c = &CPUS[current()];
    let f = c.call.load(Ordering::Acquire);
    if f == 0 {
        return false;
    }
    // SAFETY: `run_on` stored a `fn()` as usize there; function pointers
    // and usize have the same size on x86_64.
    let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(f) };
    f();
    c.call.store(0, Ordering::Release);
    c.calls.fetch_add(1, Ordering::AcqRel);
    true
}

// ---- probing memory ----

/// Read the u64 at `addr`; `None` if that page faults (the page-fault
/// handler resumes after the read, see [`probe_fault`]). Lets a test
/// check that a CPU no longer reaches an unmapped page without ending
/// the kernel.
pub fn probe_read(addr: u64) -> Option<u64> {
    let value: u64;
    let faulted: u64;
    // SAFETY: the read either succeeds or page-faults; on a fault the
    // handler sees the fixup address in this CPU's `PerCpu` (through the
    // GS base) and resumes at label 2 with rcx = 1, clobbering nothing
    // else. The fixup is cleared on both paths before returning.
    unsafe {
        asm!(
            "lea rsi, [rip + 2f]",
            "mov qword ptr gs:[{fixup}], rsi",
            "mov rax, [rdx]",
            "2:",
            "mov qword ptr gs:[{fixup}], 0",
            fixup = const core::mem::offset_of!(PerCpu, probe_fixup),
            in("rdx") addr,
            out("rax") value,
            inout("rcx") 0u64 => faulted,
            out("rsi") _,
            options(nostack, preserves_flags),
        );
    }
    (faulted == 0).then_some(value)
}

/// From the page-fault handler: where to resume if this CPU is inside
/// [`probe_read`] (the handler sets rcx to 1 and rip to it).
pub fn probe_fault() -> Option<u64> {
    let c = &CPUS[current()];
    let fixup = c.probe_fixup.swap(0, Ordering::AcqRel);
    (fixup != 0).then_some(fixup)
}
