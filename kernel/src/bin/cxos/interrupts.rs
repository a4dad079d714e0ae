//! GDT/TSS with IST stacks, the IDT, the entry stubs, and dispatch.
//!
//! Every vector runs on an IST stack (the prebuilt `core` uses the red
//! zone, so an interrupt must never push onto the interrupted stack):
//! exceptions on IST1, double fault on IST3, NMI and machine check on IST4,
//! device interrupts on IST2. Interrupt gates keep IF clear, so handlers
//! never nest. Device handlers only count, set the vector's pending flag,
//! bump the wake counter and acknowledge: work runs in the main loop.
//!
//! The GDT, TSS and IDT are `x86_64`'s structures; the IDT points at the
//! build script's stubs, since `x86_64`'s `extern "x86-interrupt"` handlers
//! need nightly Rust.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use cxos_kernel::vectors::VectorAllocator;
use spin::{Mutex, Once};
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::control::{Cr2, Cr3};
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::idt::{Entry, InterruptDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

use crate::{apic, arch, serial, smp};

global_asm!(include_str!(concat!(env!("OUT_DIR"), "/isr_stubs.s")));

// Common entry: save the general registers and the SSE state (fxsave64),
// call the dispatcher with a pointer to the saved frame, restore, iretq.
global_asm!(
    ".section .text.cxos_isr, \"ax\"",
    ".global cxos_isr_common",
    "cxos_isr_common:",
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rbp, rsp",
    "sub rsp, 512",
    "and rsp, -16",
    "fxsave64 [rsp]",
    "cld",
    "mov rdi, rbp",
    "call {dispatch}",
    "fxrstor64 [rsp]",
    "mov rsp, rbp",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "add rsp, 16",
    "iretq",
    ".text",
    dispatch = sym dispatch,
);

/// What the stubs leave on the stack, lowest address first.
#[repr(C)]
#[derive(Debug)]
struct Frame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// What a vector is used for (shown by `irq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Timer,
    Serial,
    Msi,
    MsiX,
    /// Inter-processor interrupts (`smp`).
    Ipi,
}

pub use cxos_kernel::vectors::SPURIOUS as SPURIOUS_VECTOR;

/// Per CPU, per vector.
static COUNTS: [[AtomicU64; 256]; smp::MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; 256] }; smp::MAX_CPUS];
static PENDING: [AtomicBool; 256] = [const { AtomicBool::new(false) }; 256];
/// Role per vector: 0 = free, else `Role as u8 + 1`.
static ROLES: [AtomicU8; 256] = [const { AtomicU8::new(0) }; 256];
/// Per CPU, bumped by every device interrupt whose work runs there (and
/// by the wake IPI): that CPU's main loop's wake-up signal.
pub static WAKES: [AtomicU64; smp::MAX_CPUS] = [const { AtomicU64::new(0) }; smp::MAX_CPUS];
/// Per vector, the CPU whose main loop runs its work (`runtime`'s vector
/// work); the interrupt may be delivered elsewhere (`irq <v> cpu <n>`).
static WORK_CPU: [AtomicU8; 256] = [const { AtomicU8::new(0) }; 256];

/// [`WORK_CPU`] of a vector whose work was unbound: none (its interrupt,
/// if one still comes, wakes the boot CPU).
const UNBOUND: u8 = u8::MAX;

/// The CPU that runs `vector`'s work (`None`: its work was unbound).
pub fn work_cpu(vector: u8) -> Option<usize> {
    match WORK_CPU[usize::from(vector)].load(Ordering::Acquire) {
        UNBOUND => None,
        c => Some(usize::from(c)),
    }
}

/// Run `vector`'s work on CPU `cpu` from now on.
pub fn set_work_cpu(vector: u8, cpu: usize) {
    WORK_CPU[usize::from(vector)].store(cpu.min(smp::MAX_CPUS - 1) as u8, Ordering::Release);
}

/// `vector` has no work any more.
pub fn clear_work_cpu(vector: u8) {
    WORK_CPU[usize::from(vector)].store(UNBOUND, Ordering::Release);
}

struct Owners {
    alloc: VectorAllocator,
    names: [&'static str; 256],
}

static OWNERS: Mutex<Owners> = Mutex::new(Owners {
    alloc: VectorAllocator::new(),
    names: [""; 256],
});

/// Allocate `n` consecutive vectors for `role`, owned by `name`.
pub fn alloc_vectors(n: u8, align: u8, role: Role, name: &'static str) -> Option<u8> {
    let mut o = OWNERS.lock();
    let first = o.alloc.alloc(n, align)?;
    for v in first..first + n {
        o.names[usize::from(v)] = name;
        PENDING[usize::from(v)].store(false, Ordering::Relaxed);
        ROLES[usize::from(v)].store(role as u8 + 1, Ordering::Release);
    }
    Some(first)
}

pub fn free_vectors(first: u8, n: u8) {
    let mut o = OWNERS.lock();
    for v in first..first.saturating_add(n) {
        ROLES[usize::from(v)].store(0, Ordering::Release);
        o.names[usize::from(v)] = "";
    }
    o.alloc.free(first, n);
}

pub fn available_vectors() -> u16 {
    OWNERS.lock().alloc.available()
}

/// Whether `vector` fired since the last call; clears the flag.
pub fn take_pending(vector: u8) -> bool {
    PENDING[usize::from(vector)].swap(false, Ordering::AcqRel)
}

/// Interrupts on `vector`, all CPUs.
pub fn count(vector: u8) -> u64 {
    COUNTS
        .iter()
        .map(|c| c[usize::from(vector)].load(Ordering::Relaxed))
        .sum()
}

/// Interrupts on `vector` taken by CPU `cpu`.
pub fn count_on(cpu: usize, vector: u8) -> u64 {
    COUNTS
        .get(cpu)
        .map_or(0, |c| c[usize::from(vector)].load(Ordering::Relaxed))
}

/// Interrupts of any vector taken by CPU `cpu`.
pub fn total_on(cpu: usize) -> u64 {
    COUNTS
        .get(cpu)
        .map_or(0, |c| c.iter().map(|n| n.load(Ordering::Relaxed)).sum())
}

/// `(vector, role name, owner, count)` of every assigned vector.
pub fn vector_table() -> alloc::vec::Vec<(u8, &'static str, &'static str, u64)> {
    let o = OWNERS.lock();
    (0u8..=255)
        .filter_map(|v| {
            let role = match ROLES[usize::from(v)].load(Ordering::Acquire) {
                1 => "timer",
                2 => "serial",
                3 => "msi",
                4 => "msi-x",
                5 => "ipi",
                _ => return None,
            };
            Some((v, role, o.names[usize::from(v)], count(v)))
        })
        .collect()
}

const EXCEPTION_NAMES: [&str; 32] = [
    "divide-error",
    "debug",
    "nmi",
    "breakpoint",
    "overflow",
    "bound-range",
    "invalid-opcode",
    "device-not-available",
    "double-fault",
    "coprocessor-segment-overrun",
    "invalid-tss",
    "segment-not-present",
    "stack-segment-fault",
    "general-protection",
    "page-fault",
    "reserved-15",
    "x87-floating-point",
    "alignment-check",
    "machine-check",
    "simd-floating-point",
    "virtualization",
    "control-protection",
    "reserved-22",
    "reserved-23",
    "reserved-24",
    "reserved-25",
    "reserved-26",
    "reserved-27",
    "hypervisor-injection",
    "vmm-communication",
    "security",
    "reserved-31",
];

extern "C" fn dispatch(frame: &mut Frame) {
    let vector = frame.vector as u8;
    if vector == 2 && smp::stopping() {
        smp::on_stop(frame.rip, frame.rsp, frame.rflags);
    }
    if vector == 14
        && let Some(fixup) = smp::probe_fault()
    {
        // `smp::probe_read` touched a page that is not mapped: resume
        // after the read, telling it so.
        frame.rip = fixup;
        frame.rcx = 1;
        return;
    }
    if vector < 32 {
        exception(frame);
    }
    let cpu = smp::current();
    COUNTS[cpu][usize::from(vector)].fetch_add(1, Ordering::Relaxed);
    if vector == SPURIOUS_VECTOR {
        // Spurious interrupts are not acknowledged (SDM 11.9).
        return;
    }
    match smp::on_local_vector(vector) {
        smp::Local::No => {}
        smp::Local::Handled => {
            apic::eoi();
            return;
        }
        smp::Local::Wake => {
            // The main loop wakes on any interrupt; its wake counter
            // tells it work may be pending.
            WAKES[cpu].fetch_add(1, Ordering::Release);
            apic::eoi();
            return;
        }
    }
    if ROLES[usize::from(vector)].load(Ordering::Acquire) == Role::Serial as u8 + 1 {
        serial::on_interrupt();
    }
    PENDING[usize::from(vector)].store(true, Ordering::Release);
    let work = work_cpu(vector).unwrap_or(0);
    WAKES[work].fetch_add(1, Ordering::Release);
    apic::eoi();
    if cpu != work {
        // The work runs in another CPU's main loop.
        smp::wake(work);
    }
}

/// Set while an exception is reported: a fault in the report exits at once.
static REPORTING: AtomicBool = AtomicBool::new(false);

fn exception(f: &Frame) -> ! {
    let v = f.vector as usize;
    smp::stop_others();
    crate::console::take_over();
    if REPORTING.swap(true, Ordering::AcqRel) {
        serial::write_bytes(b"\nEXCEPTION while reporting an exception\n");
        arch::exit(arch::EXIT_FAIL);
    }
    let cr2 = Cr2::read_raw();
    crate::println!(
        "\nEXCEPTION {} (vector {}) error={:#x} rip={:#x} cr2={:#x} cpu={}",
        EXCEPTION_NAMES[v],
        v,
        f.error,
        f.rip,
        cr2,
        smp::current()
    );
    if v == 14 || v == 8 {
        // A fault in a guard page is a stack overflow (a double fault's
        // CR2 is the page fault's that caused it, if any).
        if let Some((cpu, stack)) = guard_owner(cr2) {
            crate::println!(
                "stack overflow: cr2 is in the guard page below cpu {cpu}'s {stack} stack"
            );
        }
    }
    crate::println!(
        "rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}",
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx
    );
    crate::println!(
        "rsi={:#018x} rdi={:#018x} rbp={:#018x} rsp={:#018x}",
        f.rsi,
        f.rdi,
        f.rbp,
        f.rsp
    );
    crate::println!(
        "r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}",
        f.r8,
        f.r9,
        f.r10,
        f.r11
    );
    crate::println!(
        "r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}",
        f.r12,
        f.r13,
        f.r14,
        f.r15
    );
    crate::println!(
        "cs={:#x} ss={:#x} rflags={:#x} cr3={:#x}",
        f.cs,
        f.ss,
        f.rflags,
        cr3()
    );
    smp::print_states();
    arch::exit(arch::EXIT_FAIL)
}

/// CR3 as the register holds it (table address and flags).
fn cr3() -> u64 {
    let (frame, flags) = Cr3::read_raw();
    frame.start_address().as_u64() | u64::from(flags)
}

// ---- GDT, TSS, IDT ----

/// IST stacks by their TSS index (IST n is index n - 1).
const IST_EXCEPTION: u16 = 0;
const IST_DEVICE: u16 = 1;
const IST_DOUBLE_FAULT: u16 = 2;
const IST_NMI_MC: u16 = 3;

/// An IST stack; its lowest page becomes a guard page (see `guard_stacks`).
#[repr(C, align(4096))]
struct Stack<const N: usize>([u8; N]);

static mut STACK_EXCEPTION: Stack<{ 64 * 1024 }> = Stack([0; 64 * 1024]);
static mut STACK_DEVICE: Stack<{ 32 * 1024 }> = Stack([0; 32 * 1024]);
static mut STACK_DOUBLE_FAULT: Stack<{ 32 * 1024 }> = Stack([0; 32 * 1024]);
static mut STACK_NMI_MC: Stack<{ 32 * 1024 }> = Stack([0; 32 * 1024]);

/// An AP's GDT and TSS (from the heap, never freed).
struct ApTables {
    gdt: GlobalDescriptorTable,
    tss: TaskStateSegment,
}

const AP_IST_STACK: usize = 32 * 1024;
const PAGE: u64 = 4096;

/// The stacks a guard page sits below, by their slot in [`GUARDS`].
const STACK_NAMES: [&str; 5] = ["kernel", "exception", "device", "double-fault", "nmi"];
/// The guard page of each CPU's stacks (0: none), `cpu * 5 + slot`:
/// slot 0 the kernel stack, 1 + n IST stack n.
static GUARDS: [AtomicU64; smp::MAX_CPUS * 5] = [const { AtomicU64::new(0) }; smp::MAX_CPUS * 5];
/// Each AP's IST stack tops, made by [`prepare_ap`] for [`init_ap`].
static AP_IST_TOPS: [[AtomicU64; 4]; smp::MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; 4] }; smp::MAX_CPUS];

/// The CPU and stack whose guard page holds `addr`.
fn guard_owner(addr: u64) -> Option<(usize, &'static str)> {
    let page = addr & !(PAGE - 1);
    GUARDS
        .iter()
        .position(|g| page != 0 && g.load(Ordering::Relaxed) == page)
        .map(|i| (i / 5, STACK_NAMES[i % 5]))
}

/// A stack of `size` bytes from the heap with a guard page below it
/// (never freed); its top, or `None` without memory or a guard.
fn guarded_stack(cpu: usize, slot: usize, size: usize) -> Option<u64> {
    let layout = core::alloc::Layout::from_size_align(size + PAGE as usize, PAGE as usize).ok()?;
    // SAFETY: a non-zero size; the block is never freed (a CPU's stack
    // lives as long as the kernel).
    let base = unsafe { alloc::alloc::alloc_zeroed(layout) } as u64;
    if base == 0 {
        return None;
    }
    if let Err(e) = crate::mmu::guard_page(base) {
        log::error!(target: "smp", "no guard page below cpu {cpu}'s {} stack: {e}", STACK_NAMES[slot]);
        // SAFETY: allocated above with `layout`, still mapped (the guard
        // was not made), used by nobody.
        unsafe { alloc::alloc::dealloc(base as *mut u8, layout) };
        return None;
    }
    GUARDS[cpu * 5 + slot].store(base, Ordering::Relaxed);
    Some(base + PAGE + size as u64)
}

/// On the boot CPU, before AP `cpu` starts: its kernel stack (`size`
/// bytes) and IST stacks, each with a guard page below, so an overflow
/// is a page fault reported with the CPU and stack named rather than
/// silent corruption of the heap. The kernel stack's top, or `None` (the
/// AP is skipped).
pub fn prepare_ap(cpu: usize, size: usize) -> Option<u64> {
    if cpu == 0 || cpu >= smp::MAX_CPUS {
        return None;
    }
    for (n, top) in AP_IST_TOPS[cpu].iter().enumerate() {
        if top.load(Ordering::Relaxed) == 0 {
            top.store(guarded_stack(cpu, 1 + n, AP_IST_STACK)?, Ordering::Relaxed);
        }
    }
    // A CPU index given up on before keeps its IST stacks; the kernel
    // stack is new (the late AP may still be on the old one).
    guarded_stack(cpu, 0, size)
}

/// Load a GDT and TSS of this AP's own (IST stacks from [`prepare_ap`])
/// and the shared IDT. Interrupts stay disabled.
pub fn init_ap() {
    let cpu = smp::current();
    let mut tss = TaskStateSegment::new();
    let mut ist = tss.interrupt_stack_table;
    for slot in [IST_EXCEPTION, IST_DEVICE, IST_DOUBLE_FAULT, IST_NMI_MC] {
        ist[usize::from(slot)] =
            VirtAddr::new(AP_IST_TOPS[cpu][usize::from(slot)].load(Ordering::Relaxed));
    }
    tss.interrupt_stack_table = ist;
    let t: &'static mut ApTables = alloc::boxed::Box::leak(alloc::boxed::Box::new(ApTables {
        gdt: GlobalDescriptorTable::new(),
        tss,
    }));
    let code = t.gdt.append(Descriptor::kernel_code_segment());
    let data = t.gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = t.gdt.append(Descriptor::tss_segment(&t.tss));
    let t: &'static ApTables = t;
    t.gdt.load();
    // SAFETY: this AP, interrupts off; the selectors name the descriptors
    // of the GDT just loaded, which (like its TSS) lives forever.
    unsafe {
        CS::set_reg(code);
        DS::set_reg(data);
        ES::set_reg(data);
        SS::set_reg(data);
        load_tss(tss_sel);
    }
    IDT.get().expect("the boot CPU loaded the IDT first").load();
}

fn stack_top<const N: usize>(s: *mut Stack<N>) -> VirtAddr {
    VirtAddr::new(s as u64 + N as u64)
}

static TSS: Once<TaskStateSegment> = Once::new();

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

/// null, code 0x08, data 0x10 (as the boot GDT), TSS 0x18 (two slots).
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();
static IDT: Once<InterruptDescriptorTable> = Once::new();

unsafe extern "C" {
    static cxos_isr_stubs: u8;
    static cxos_boot_stack_bottom: u8;
}

/// Turn the lowest page of the boot stack and of every IST stack into a
/// guard page: an overflow faults (and is reported) instead of silently
/// overwriting the statics below. Needs the frame allocator (it splits
/// 2 MiB pages).
pub fn guard_stacks() {
    let bottoms = [
        &raw const cxos_boot_stack_bottom as u64,
        &raw const STACK_EXCEPTION as u64,
        &raw const STACK_DEVICE as u64,
        &raw const STACK_DOUBLE_FAULT as u64,
        &raw const STACK_NMI_MC as u64,
    ];
    for (slot, b) in bottoms.into_iter().enumerate() {
        match crate::mmu::guard_page(b) {
            Ok(()) => GUARDS[slot].store(b, Ordering::Relaxed),
            Err(e) => log::warn!(target: "mem", "no guard page below the stack at {b:#x}: {e}"),
        }
    }
}

/// Point `entry` at the stub of `vector` (build.rs: 16 bytes each, in
/// vector order) on its IST stack; an interrupt gate, so IF stays clear.
///
/// # Safety
/// The GDT with the kernel code segment is loaded (the gate takes CS), and
/// the TSS holds the IST stacks.
unsafe fn gate<F>(entry: &mut Entry<F>, vector: u8) {
    let stub = VirtAddr::new(&raw const cxos_isr_stubs as u64 + 16 * u64::from(vector));
    let ist = match vector {
        8 => IST_DOUBLE_FAULT,
        2 | 18 => IST_NMI_MC,
        0..32 => IST_EXCEPTION,
        _ => IST_DEVICE,
    };
    // SAFETY: the stub saves the frame, calls `dispatch` and returns with
    // iretq, which is right for every vector (it pushes a zero error code
    // where the CPU pushes none); the IST stacks are the caller's promise.
    unsafe { entry.set_handler_addr(stub).set_stack_index(ist) };
}

/// Load the GDT with a TSS and the IDT. Interrupts stay disabled.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        // The TSS is packed: fill a copy of the table, then store it.
        let mut ist = tss.interrupt_stack_table;
        ist[usize::from(IST_EXCEPTION)] = stack_top(&raw mut STACK_EXCEPTION);
        ist[usize::from(IST_DEVICE)] = stack_top(&raw mut STACK_DEVICE);
        ist[usize::from(IST_DOUBLE_FAULT)] = stack_top(&raw mut STACK_DOUBLE_FAULT);
        ist[usize::from(IST_NMI_MC)] = stack_top(&raw mut STACK_NMI_MC);
        tss.interrupt_stack_table = ist;
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: runs once on the boot CPU with interrupts off; the selectors
    // name the code, data and TSS descriptors of the GDT just loaded, which
    // lives forever.
    unsafe {
        CS::set_reg(sel.code);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        SS::set_reg(sel.data);
        load_tss(sel.tss);
    }

    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: the GDT and the TSS with the IST stacks are loaded above.
        // x86_64 keeps the reserved vectors 15, 22-27 and 31 private: they
        // stay not present (the CPU never raises them; `int` to one is a
        // general protection fault, reported as such).
        unsafe {
            gate(&mut idt.divide_error, 0);
            gate(&mut idt.debug, 1);
            gate(&mut idt.non_maskable_interrupt, 2);
            gate(&mut idt.breakpoint, 3);
            gate(&mut idt.overflow, 4);
            gate(&mut idt.bound_range_exceeded, 5);
            gate(&mut idt.invalid_opcode, 6);
            gate(&mut idt.device_not_available, 7);
            gate(&mut idt.double_fault, 8);
            gate(&mut idt[9], 9);
            gate(&mut idt.invalid_tss, 10);
            gate(&mut idt.segment_not_present, 11);
            gate(&mut idt.stack_segment_fault, 12);
            gate(&mut idt.general_protection_fault, 13);
            gate(&mut idt.page_fault, 14);
            gate(&mut idt.x87_floating_point, 16);
            gate(&mut idt.alignment_check, 17);
            gate(&mut idt.machine_check, 18);
            gate(&mut idt.simd_floating_point, 19);
            gate(&mut idt.virtualization, 20);
            gate(&mut idt.cp_protection_exception, 21);
            gate(&mut idt.hv_injection_exception, 28);
            gate(&mut idt.vmm_communication_exception, 29);
            gate(&mut idt.security_exception, 30);
            for v in 32..=255u8 {
                gate(&mut idt[v], v);
            }
        }
        idt
    });
    idt.load();
}
