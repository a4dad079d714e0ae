//! Symmetric multiprocessing: the application processors (APs) the MADT
//! lists, started with INIT-SIPI-SIPI through a real-mode trampoline below
//! 1 MiB (Intel SDM vol. 3 9.4 "Multiple-processor (MP) initialization");
//! per-CPU data through the GS base; IPIs (wake, ping, stop); the stop of
//! every CPU on a panic.
//!
//! An AP runs its own local APIC timer and an idle `hlt` loop; device
//! interrupts routed to it set the vector's pending flag and wake the boot
//! CPU, whose main loop runs the work (console and shell stay there too).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use cxos_kernel::acpi::Madt;
use x86_64::VirtAddr;
use x86_64::registers::control::{Cr0, Cr3, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, GsBase};

use crate::apic::{self, Icr};
use crate::interrupts::{self, Role};
use crate::{arch, println, time};

pub const MAX_CPUS: usize = 16;

/// Where the trampoline is copied: a page below 1 MiB (the frame
/// allocator never hands out memory there, `frames::LOW_MEMORY_END`), its
/// start-up vector `TRAMPOLINE >> 12`.
const TRAMPOLINE: u64 = 0x8000;
/// The start parameters, at the end of the trampoline's page.
const PARAMS: u64 = TRAMPOLINE + 0xf00;
const PARAM_CR3: u64 = 0x00;
const PARAM_CR4: u64 = 0x08;
const PARAM_CR0: u64 = 0x10;
const PARAM_EFER: u64 = 0x18;
const PARAM_STACK: u64 = 0x20;
const PARAM_ENTRY: u64 = 0x28;
const PARAM_ARG: u64 = 0x30;
/// The trampoline's GDT: null, 32-bit code 0x08, data 0x10, 64-bit code
/// 0x18 (flat; SDM vol. 3 3.4.5); its GDTR (limit, 32-bit base) after it.
const PARAM_GDT: u64 = 0x40;
const PARAM_GDTR: u64 = 0x60;
const TRAMPOLINE_GDT: [u64; 4] = [
    0,
    0x00cf_9a00_0000_ffff,
    0x00cf_9200_0000_ffff,
    0x00af_9a00_0000_ffff,
];

/// Kernel stack of an AP (its idle loop and the Rust it runs).
const AP_STACK: usize = 64 * 1024;
/// How long an AP has to report itself online after the second SIPI.
const START_TIMEOUT_MS: u64 = 2000;
/// The APs' timer period.
const TICK_NS: u64 = 10_000_000;
/// How long a panic waits for the other CPUs to stop.
const STOP_TIMEOUT_NS: u64 = 200_000_000;

// The trampoline: 16-bit real mode at TRAMPOLINE (CS = TRAMPOLINE >> 4,
// IP = 0), a flat GDT of its own (in the parameters), then the boot CPU's CR4, CR3,
// EFER and CR0 (long mode with paging) and a far jump to 64-bit code that
// takes the stack, entry and argument from the parameters. Far jumps are
// spelled as bytes (ptr16:32 forms). Copied, never run in place.
global_asm!(
    ".section .rodata.cxos_ap_trampoline, \"a\"",
    ".global cxos_ap_trampoline",
    ".global cxos_ap_trampoline_end",
    ".code16",
    "cxos_ap_trampoline:",
    "cli",
    "cld",
    "xor ax, ax",
    "mov ds, ax",
    "lgdt [{params} + {gdtr}]",
    "mov eax, cr0",
    "or eax, 1",
    "mov cr0, eax",
    ".byte 0x66, 0xea",
    ".long {tramp} + cxos_ap_pm32 - cxos_ap_trampoline",
    ".short 0x08",
    ".code32",
    "cxos_ap_pm32:",
    "mov ax, 0x10",
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov eax, dword ptr [{params} + {cr4}]",
    "mov cr4, eax",
    "mov eax, dword ptr [{params} + {cr3}]",
    "mov cr3, eax",
    "mov ecx, 0xc0000080",
    "mov eax, dword ptr [{params} + {efer}]",
    "mov edx, dword ptr [{params} + {efer} + 4]",
    "wrmsr",
    "mov eax, dword ptr [{params} + {cr0}]",
    "mov cr0, eax",
    ".byte 0xea",
    ".long {tramp} + cxos_ap_lm64 - cxos_ap_trampoline",
    ".short 0x18",
    ".code64",
    "cxos_ap_lm64:",
    "mov ax, 0x10",
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov rsp, qword ptr [{params} + {stack}]",
    "mov rdi, qword ptr [{params} + {arg}]",
    "mov rax, qword ptr [{params} + {entry}]",
    "call rax",
    "2:",
    "cli",
    "hlt",
    "jmp 2b",
    "cxos_ap_trampoline_end:",
    ".text",
    tramp = const TRAMPOLINE,
    params = const PARAMS,
    cr3 = const PARAM_CR3,
    cr4 = const PARAM_CR4,
    cr0 = const PARAM_CR0,
    efer = const PARAM_EFER,
    stack = const PARAM_STACK,
    entry = const PARAM_ENTRY,
    arg = const PARAM_ARG,
    gdtr = const PARAM_GDTR,
);

unsafe extern "C" {
    static cxos_ap_trampoline: u8;
    static cxos_ap_trampoline_end: u8;
}

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
    apic_id: AtomicU32,
    state: AtomicU8,
    /// When it came online and how long it has halted since (ns).
    since_ns: AtomicU64,
    idle_ns: AtomicU64,
    /// Ping IPIs it answered.
    pings: AtomicU64,
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

    fn state(&self) -> CpuState {
        CpuState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, s: CpuState) {
        self.state.store(s as u8, Ordering::Release);
    }
}

static CPUS: [PerCpu; MAX_CPUS] = {
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
static PANIC_ON_PING: AtomicBool = AtomicBool::new(false);
/// CPUs started (the boot CPU included).
static COUNT: AtomicU32 = AtomicU32::new(1);

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

/// Handle the per-CPU vectors (timer, wake, ping); false for any other.
pub fn on_local_vector(vector: u8) -> bool {
    if vector == 0 {
        return false;
    }
    if vector == TIMER_VECTOR.load(Ordering::Relaxed) {
        return true;
    }
    if vector == WAKE_VECTOR.load(Ordering::Relaxed) {
        // The boot CPU's main loop wakes on any interrupt; its wake
        // counter tells it work may be pending.
        interrupts::WAKES.fetch_add(1, Ordering::Release);
        return true;
    }
    if vector == PING_VECTOR.load(Ordering::Relaxed) {
        if PANIC_ON_PING.load(Ordering::Acquire) {
            panic!("test panic on CPU {} (smp-panic)", current());
        }
        CPUS[current()].pings.fetch_add(1, Ordering::AcqRel);
        wake(0);
        return true;
    }
    false
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
    pub timer_vector: u8,
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
                timer_vector: if i == 0 {
                    crate::runtime::timer_vector()
                } else {
                    TIMER_VECTOR.load(Ordering::Relaxed)
                },
            }
        })
        .collect()
}

/// Send a ping IPI to `cpu` and wait for its wake IPI back; the round
/// trip in ns.
pub fn ping(cpu: usize) -> Result<u64, &'static str> {
    if cpu == current() {
        return Err("that is this CPU");
    }
    let id = apic_id(cpu).ok_or("no such CPU online")?;
    let before = CPUS[cpu].pings.load(Ordering::Acquire);
    let woken = interrupts::count_on(current(), WAKE_VECTOR.load(Ordering::Relaxed));
    let t0 = time::now_ns();
    apic::send_ipi(
        id,
        Icr::new().with_vector(PING_VECTOR.load(Ordering::Relaxed)),
    );
    let back = crate::runtime::wait_until(1_000_000_000, || {
        CPUS[cpu].pings.load(Ordering::Acquire) != before
            && interrupts::count_on(current(), WAKE_VECTOR.load(Ordering::Relaxed)) != woken
    });
    back.then(|| time::now_ns() - t0)
        .ok_or("no answer within 1 s")
}

/// `test=smp-panic`: panic on the last CPU (an AP when there is one);
/// the panic report must show every other CPU stopped.
pub fn panic_test() -> ! {
    let last = count() - 1;
    if last == 0 {
        panic!("test panic on CPU 0 (smp-panic, one CPU)");
    }
    PANIC_ON_PING.store(true, Ordering::Release);
    let _ = ping(last);
    panic!("CPU {last} did not panic on its ping");
}

/// Start the APs of `madt` (at most `limit` CPUs in all, the boot CPU
/// included); each one that does not come up in time is reported and
/// skipped.
pub fn start_aps(madt: &Madt, limit: usize) {
    let bsp = apic::bsp_apic_id_full();
    CPUS[0].apic_id.store(bsp, Ordering::Relaxed);
    let vectors = (
        interrupts::alloc_vectors(1, 1, Role::Timer, "cpu-timer"),
        interrupts::alloc_vectors(1, 1, Role::Ipi, "ipi-wake"),
        interrupts::alloc_vectors(1, 1, Role::Ipi, "ipi-ping"),
    );
    let (Some(t), Some(w), Some(p)) = vectors else {
        log::error!(target: "smp", "no vectors for the per-CPU timer and IPIs; one CPU");
        return;
    };
    TIMER_VECTOR.store(t, Ordering::Relaxed);
    WAKE_VECTOR.store(w, Ordering::Relaxed);
    PING_VECTOR.store(p, Ordering::Relaxed);
    let others: Vec<u32> = madt
        .local_apics
        .iter()
        .filter(|l| l.enabled && l.apic_id != bsp)
        .map(|l| l.apic_id)
        .collect();
    if others.is_empty() {
        return;
    }
    let (pml4, _) = Cr3::read_raw();
    let cr3 = pml4.start_address().as_u64();
    if cr3 >= 1 << 32 {
        log::error!(target: "smp", "page tables at {cr3:#x}, above 4 GiB: the trampoline cannot load them; one CPU");
        return;
    }
    install_trampoline(cr3);
    let mut next = 1usize;
    for id in others {
        if next >= limit.min(MAX_CPUS) {
            log::info!(target: "smp", "APIC id {id} not started (limit {} CPUs)", limit.min(MAX_CPUS));
            continue;
        }
        if start_one(next, id) {
            next += 1;
        }
    }
    COUNT.store(next as u32, Ordering::Release);
    log::info!(target: "smp", "{next} CPUs online ({})", if apic::x2apic() { "x2APIC" } else { "xAPIC" });
}

fn install_trampoline(cr3: u64) {
    let start = &raw const cxos_ap_trampoline;
    let len = &raw const cxos_ap_trampoline_end as usize - start as usize;
    assert!(len <= (PARAMS - TRAMPOLINE) as usize);
    let cr4 = Cr4::read_raw() & !Cr4Flags::PCID.bits();
    // LMA is the CPU's to set.
    let efer = Efer::read_raw() & !(1 << 10);
    // SAFETY: TRAMPOLINE..TRAMPOLINE + 4 KiB is below 1 MiB, which the
    // frame allocator never hands out and the boot tables identity map;
    // nothing else uses it once the boot structures were read. The copy
    // source is the trampoline's bytes in the image.
    unsafe {
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE as *mut u8, len);
        let p = |off: u64| (PARAMS + off) as *mut u64;
        p(PARAM_CR3).write_volatile(cr3);
        p(PARAM_CR4).write_volatile(cr4);
        p(PARAM_CR0).write_volatile(Cr0::read_raw());
        p(PARAM_EFER).write_volatile(efer);
        p(PARAM_ENTRY).write_volatile(ap_main as *const () as u64);
        for (i, d) in TRAMPOLINE_GDT.iter().enumerate() {
            p(PARAM_GDT + 8 * i as u64).write_volatile(*d);
        }
        let gdtr = (PARAMS + PARAM_GDTR) as *mut u16;
        gdtr.write_volatile((TRAMPOLINE_GDT.len() * 8 - 1) as u16);
        gdtr.add(1)
            .cast::<u32>()
            .write_unaligned((PARAMS + PARAM_GDT) as u32);
    }
}

/// INIT, 10 ms, SIPI, 200 µs, SIPI (SDM vol. 3 9.4.4.1), then wait for the
/// AP to report itself online.
fn start_one(index: usize, apic_id: u32) -> bool {
    let cpu = &CPUS[index];
    let stack = Box::leak(alloc::vec![0u8; AP_STACK].into_boxed_slice());
    let top = (stack.as_ptr() as u64 + AP_STACK as u64) & !0xf;
    cpu.apic_id.store(apic_id, Ordering::Relaxed);
    cpu.set_state(CpuState::Starting);
    // SAFETY: the parameter block in the trampoline's page (see
    // `install_trampoline`); the previous AP has left the trampoline (it
    // was online before this one starts, or it was given up on).
    unsafe {
        ((PARAMS + PARAM_STACK) as *mut u64).write_volatile(top);
        ((PARAMS + PARAM_ARG) as *mut u64).write_volatile(index as u64);
    }
    let sipi = Icr::new()
        .with_vector((TRAMPOLINE >> 12) as u8)
        .with_delivery_mode(apic::DELIVERY_STARTUP);
    apic::send_ipi(apic_id, Icr::new().with_delivery_mode(apic::DELIVERY_INIT));
    time::delay_us(10_000);
    apic::send_ipi(apic_id, sipi);
    time::delay_us(200);
    if cpu.state() != CpuState::Online {
        apic::send_ipi(apic_id, sipi);
    }
    let deadline = time::now_ns() + START_TIMEOUT_MS * 1_000_000;
    while cpu.state() != CpuState::Online && time::now_ns() < deadline {
        core::hint::spin_loop();
    }
    if cpu.state() == CpuState::Online {
        return true;
    }
    cpu.set_state(CpuState::Failed);
    println!(
        "smp: CPU with APIC id {apic_id} did not come up within {START_TIMEOUT_MS} ms; skipped"
    );
    false
}

/// An AP's first Rust code, called by the trampoline on its own stack.
extern "C" fn ap_main(index: u64) -> ! {
    let index = (index as usize).min(MAX_CPUS - 1);
    let cpu = &CPUS[index];
    GsBase::write(VirtAddr::new(cpu as *const PerCpu as u64));
    if cpu.state() != CpuState::Starting {
        // Given up on already: stay out of the way.
        arch::halt_forever();
    }
    interrupts::init_ap();
    let id = apic::init_local();
    cpu.apic_id.store(id, Ordering::Relaxed);
    cpu.since_ns.store(time::now_ns(), Ordering::Relaxed);
    let ticks = u128::from(TICK_NS) * u128::from(time::apic_timer_hz()) / 1_000_000_000;
    apic::timer_periodic(
        TIMER_VECTOR.load(Ordering::Relaxed),
        ticks.clamp(1, u128::from(u32::MAX)) as u32,
    );
    cpu.set_state(CpuState::Online);
    loop {
        arch::interrupts_disable();
        halt_idle();
    }
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
