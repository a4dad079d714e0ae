//! Starting the application processors (APs) the MADT lists: INIT-SIPI-
//! SIPI through a real-mode trampoline below 1 MiB (Intel SDM vol. 3 9.4
//! "Multiple-processor (MP) initialization"); each AP loads its own GDT,
//! TSS and IST stacks and the shared IDT, sets its GS base, runs its own
//! local APIC timer and idles in `hlt`. Also the IPI round trip of
//! `cpus ping` and `test=smp-panic`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use cxos_kernel::acpi::Madt;
use x86_64::VirtAddr;
use x86_64::registers::control::{Cr0, Cr3, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, GsBase};

use crate::apic::{self, Icr};
use crate::interrupts::{self, Role};
use crate::smp::{CPUS, CpuState, MAX_CPUS, PerCpu, current};
use crate::{arch, mmu, println, smp, time};

/// The APs' timer period.
const TICK_NS: u64 = 10_000_000;

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
/// Non-zero: the AP parks in the trampoline (`cli; hlt`) instead of
/// calling the entry; the `smp-fail=` fault injection.
const PARAM_PARK: u64 = 0x38;
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

/// Kernel stack of an AP (its main loop, the network stacks and apps it
/// owns: as large as the boot CPU's).
const AP_STACK: usize = 256 * 1024;
/// How long an AP has to report itself online after the second SIPI.
const START_TIMEOUT_MS: u64 = 2000;
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
    "cmp qword ptr [{params} + {park}], 0",
    "jne 2f",
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
    park = const PARAM_PARK,
    gdtr = const PARAM_GDTR,
);

unsafe extern "C" {
    static cxos_ap_trampoline: u8;
    static cxos_ap_trampoline_end: u8;
}

/// Send a ping IPI to `cpu` and wait for its wake IPI back; the round
/// trip in ns.
pub fn ping(cpu: usize) -> Result<u64, &'static str> {
    if cpu == current() {
        return Err("that is this CPU");
    }
    let id = smp::apic_id(cpu).ok_or("no such CPU online")?;
    let before = CPUS[cpu].pings.load(Ordering::Acquire);
    let woken = interrupts::count_on(current(), smp::wake_vector());
    let t0 = time::now_ns();
    apic::send_ipi(id, Icr::new().with_vector(smp::ping_vector()));
    let back = crate::runtime::wait_until(1_000_000_000, || {
        CPUS[cpu].pings.load(Ordering::Acquire) != before
            && interrupts::count_on(current(), smp::wake_vector()) != woken
    });
    back.then(|| time::now_ns() - t0)
        .ok_or("no answer within 1 s")
}

/// `test=smp-panic`: panic on the last CPU (an AP when there is one);
/// the panic report must show every other CPU stopped.
pub fn panic_test() -> ! {
    let last = smp::count() - 1;
    if last == 0 {
        panic!("test panic on CPU 0 (smp-panic, one CPU)");
    }
    smp::PANIC_ON_PING.store(true, Ordering::Release);
    let _ = ping(last);
    panic!("CPU {last} did not panic on its ping");
}

/// `test=smp-overflow`: the last CPU (an AP when there is one) recurses
/// on its kernel stack until it runs into the guard page below it; the
/// page fault's report names the CPU and the stack.
pub fn overflow_test() -> ! {
    fn recurse(depth: u64) -> u64 {
        let frame = core::hint::black_box([depth; 64]);
        if core::hint::black_box(depth) == u64::MAX {
            return 0;
        }
        recurse(depth + 1) + frame[depth as usize % 64]
    }
    fn overflow() {
        core::hint::black_box(recurse(0));
    }
    let last = smp::count() - 1;
    if last == 0 {
        panic!("smp-overflow needs an AP (one CPU online)");
    }
    println!("smp-overflow: CPU {last} recurses on its kernel stack");
    let r = smp::run_on(last, overflow, 5_000_000_000);
    panic!("CPU {last} did not fault on its stack's guard page: {r:?}");
}

/// What the AP [`pat_check`] asked read its IA32_PAT.
static PAT_SEEN: AtomicU64 = AtomicU64::new(0);

fn pat_read() {
    PAT_SEEN.store(mmu::read_pat(), Ordering::Release);
}

/// Every online CPU's IA32_PAT is `mmu::PAT_VALUE` (`mmu::init_pat` ran on
/// each): the number of CPUs checked, or the first that differs. A
/// write-combining alias is made only after this passed: on a CPU with the
/// power-on PAT the alias's entry would be WT, a cached type, for device
/// memory. From the boot CPU (an AP cannot ask the boot CPU).
pub fn pat_check() -> Result<usize, String> {
    if current() != 0 {
        return Err("not checked from the boot CPU".into());
    }
    let want = cxos_kernel::paging::PAT_VALUE;
    let here = mmu::read_pat();
    if here != want {
        return Err(format!("CPU 0 has IA32_PAT {here:#018x}"));
    }
    let n = smp::count();
    for cpu in 1..n {
        PAT_SEEN.store(0, Ordering::Release);
        smp::run_on(cpu, pat_read, TLB_CALL_NS).map_err(|e| format!("CPU {cpu}: {e}"))?;
        let seen = PAT_SEEN.load(Ordering::Acquire);
        if seen != want {
            return Err(format!("CPU {cpu} has IA32_PAT {seen:#018x}"));
        }
    }
    Ok(n)
}

/// The page `cpus tlb` unmaps, and what the AP read there
/// ([`TLB_FAULTED`]: the read faulted).
static TLB_PAGE: AtomicU64 = AtomicU64::new(0);
static TLB_SEEN: AtomicU64 = AtomicU64::new(0);
const TLB_FAULTED: u64 = u64::MAX;
const TLB_CALL_NS: u64 = 2_000_000_000;

fn tlb_touch() {
    let seen = smp::probe_read(TLB_PAGE.load(Ordering::Acquire)).unwrap_or(TLB_FAULTED);
    TLB_SEEN.store(seen, Ordering::Release);
}

/// What CPU `cpu` reads at the test page now.
fn tlb_read_on(cpu: usize) -> Result<u64, String> {
    TLB_SEEN.store(0, Ordering::Release);
    smp::run_on(cpu, tlb_touch, TLB_CALL_NS).map_err(String::from)?;
    Ok(TLB_SEEN.load(Ordering::Acquire))
}

/// `cpus tlb <n>`: the TLB shootdown, observed. CPU `cpu` reads a page
/// (caching its translation), the boot CPU unmaps it, `cpu` reads again
/// and must fault (without the shootdown its stale TLB entry would still
/// reach the page), the page is mapped back with new contents and `cpu`
/// must see them. The shootdowns `cpu` served meanwhile.
pub fn tlb_test(cpu: usize) -> Result<u64, String> {
    let layout = core::alloc::Layout::from_size_align(4096, 4096).map_err(|e| e.to_string())?;
    // SAFETY: a non-zero size; freed below with the same layout.
    let page = unsafe { alloc::alloc::alloc_zeroed(layout) };
    if page.is_null() {
        return Err("no memory for the test page".into());
    }
    let addr = page as u64;
    let result = (|| {
        const BEFORE: u64 = 0x7e57_0000_0000_0001;
        const AFTER: u64 = 0x7e57_0000_0000_0002;
        // SAFETY: `page` is this function's own 4 KiB block, mapped.
        unsafe { page.cast::<u64>().write_volatile(BEFORE) };
        TLB_PAGE.store(addr, Ordering::Release);
        let seen = tlb_read_on(cpu)?;
        if seen != BEFORE {
            return Err(format!(
                "cpu {cpu} read {seen:#x} at {addr:#x} before the unmap"
            ));
        }
        let served = smp::shootdowns_served(cpu);
        mmu::guard_page(addr).map_err(|e| e.to_string())?;
        let seen = tlb_read_on(cpu);
        let remap = mmu::unguard_page(addr);
        let seen = seen?;
        remap.map_err(|e| format!("cannot map {addr:#x} back: {e}"))?;
        if seen != TLB_FAULTED {
            return Err(format!(
                "cpu {cpu} still read {seen:#x} at {addr:#x} after the unmap (stale TLB entry)"
            ));
        }
        let served = smp::shootdowns_served(cpu) - served;
        // SAFETY: as above; mapped again.
        unsafe { page.cast::<u64>().write_volatile(AFTER) };
        let seen = tlb_read_on(cpu)?;
        if seen != AFTER {
            return Err(format!(
                "cpu {cpu} read {seen:#x} at {addr:#x} after the remap"
            ));
        }
        Ok(served)
    })();
    // A page that could not be mapped back is leaked rather than handed
    // out unmapped.
    if mmu::unguard_page(addr).is_ok() {
        // SAFETY: allocated above with `layout`, and mapped.
        unsafe { alloc::alloc::dealloc(page, layout) };
    }
    result
}

/// Start the APs of `madt` (at most `limit` CPUs in all, the boot CPU
/// included); each one that does not come up in time is reported and
/// skipped. `fail` (the `smp-fail=` fault injection) names an AP that is
/// made to park in the trampoline, so that path is tested.
pub fn start_aps(madt: &Madt, limit: usize, fail: Option<u32>) {
    let bsp = apic::bsp_apic_id_full();
    CPUS[0].apic_id.store(bsp, Ordering::Relaxed);
    let vectors = (
        interrupts::alloc_vectors(1, 1, Role::Timer, "cpu-timer"),
        interrupts::alloc_vectors(1, 1, Role::Ipi, "ipi-wake"),
        interrupts::alloc_vectors(1, 1, Role::Ipi, "ipi-ping"),
        interrupts::alloc_vectors(1, 1, Role::Ipi, "ipi-tlb"),
    );
    let (Some(t), Some(w), Some(p), Some(tlb)) = vectors else {
        log::error!(target: "smp", "no vectors for the per-CPU timer and IPIs; one CPU");
        return;
    };
    smp::set_vectors(t, w, p, tlb);
    mmu::set_remote(mmu::Remote {
        shootdown: smp::shootdown,
        serve: smp::serve_shootdown,
    });
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
        if start_one(next, id, fail == Some(id)) {
            next += 1;
        }
    }
    smp::set_count(next);
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
        p(PARAM_PARK).write_volatile(0);
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
/// AP to report itself online. With `park` (fault injection) the AP stops
/// in the trampoline and never does.
fn start_one(index: usize, apic_id: u32, park: bool) -> bool {
    let cpu = &CPUS[index];
    let Some(top) = interrupts::prepare_ap(index, AP_STACK) else {
        println!("smp: no stacks for CPU {index} (APIC id {apic_id}); skipped");
        return false;
    };
    cpu.apic_id.store(apic_id, Ordering::Relaxed);
    cpu.set_state(CpuState::Starting);
    // SAFETY: the parameter block in the trampoline's page (see
    // `install_trampoline`); the previous AP has left the trampoline (it
    // was online before this one starts, or it was given up on).
    unsafe {
        ((PARAMS + PARAM_STACK) as *mut u64).write_volatile(top);
        ((PARAMS + PARAM_ARG) as *mut u64).write_volatile(index as u64);
        ((PARAMS + PARAM_PARK) as *mut u64).write_volatile(u64::from(park));
    }
    if park {
        println!(
            "smp: smp-fail={apic_id}: the AP with APIC id {apic_id} parks in the trampoline (fault injection)"
        );
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
    // INIT again: an AP that starts late must not run the trampoline with
    // the next AP's stack.
    apic::send_ipi(apic_id, Icr::new().with_delivery_mode(apic::DELIVERY_INIT));
    // The slot goes to the next AP; `cpus` lists this one apart.
    cpu.set_state(CpuState::Absent);
    smp::note_failed(apic_id);
    println!(
        "smp: CPU with APIC id {apic_id} did not come up within {START_TIMEOUT_MS} ms; skipped"
    );
    false
}

/// An AP's first Rust code, called by the trampoline on its own stack.
extern "C" fn ap_main(index: u64) -> ! {
    // The same PAT as the boot CPU's before anything else (`mmu::init_pat`).
    crate::mmu::init_pat();
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
        smp::timer_vector(),
        ticks.clamp(1, u128::from(u32::MAX)) as u32,
    );
    cpu.set_state(CpuState::Online);
    // Its own main loop: the work of the vectors bound to it and the
    // network interfaces it owns (`runtime`, `netstack`).
    loop {
        crate::runtime::run_once();
    }
}
