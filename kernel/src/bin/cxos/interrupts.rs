//! GDT/TSS with IST stacks, the IDT, the entry stubs, and dispatch.
//!
//! Every vector runs on an IST stack (the prebuilt `core` uses the red
//! zone, so an interrupt must never push onto the interrupted stack):
//! exceptions on IST1, double fault on IST3, NMI and machine check on IST4,
//! device interrupts on IST2. Interrupt gates keep IF clear, so handlers
//! never nest. Device handlers only count, set the vector's pending flag,
//! bump the wake counter and acknowledge: work runs in the main loop.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use cxos_kernel::vectors::VectorAllocator;
use spin::Mutex;

use crate::{apic, arch, serial};

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
}

pub const SPURIOUS_VECTOR: u8 = 0xff;

static COUNTS: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];
static PENDING: [AtomicBool; 256] = [const { AtomicBool::new(false) }; 256];
/// Role per vector: 0 = free, else `Role as u8 + 1`.
static ROLES: [AtomicU8; 256] = [const { AtomicU8::new(0) }; 256];
/// Bumped by every device interrupt: the main loop's wake-up signal.
pub static WAKES: AtomicU64 = AtomicU64::new(0);

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

pub fn count(vector: u8) -> u64 {
    COUNTS[usize::from(vector)].load(Ordering::Relaxed)
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
    if vector < 32 {
        exception(frame);
    }
    COUNTS[usize::from(vector)].fetch_add(1, Ordering::Relaxed);
    if vector == SPURIOUS_VECTOR {
        // Spurious interrupts are not acknowledged (SDM 11.9).
        return;
    }
    if ROLES[usize::from(vector)].load(Ordering::Acquire) == Role::Serial as u8 + 1 {
        serial::on_interrupt();
    }
    PENDING[usize::from(vector)].store(true, Ordering::Release);
    WAKES.fetch_add(1, Ordering::Release);
    apic::eoi();
}

/// Set while an exception is reported: a fault in the report exits at once.
static REPORTING: AtomicBool = AtomicBool::new(false);

fn exception(f: &Frame) -> ! {
    let v = f.vector as usize;
    if REPORTING.swap(true, Ordering::AcqRel) {
        serial::write_bytes(b"\nEXCEPTION while reporting an exception\n");
        arch::exit(arch::EXIT_FAIL);
    }
    crate::println!(
        "\nEXCEPTION {} (vector {}) error={:#x} rip={:#x} cr2={:#x}",
        EXCEPTION_NAMES[v],
        v,
        f.error,
        f.rip,
        arch::read_cr2()
    );
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
        arch::read_cr3()
    );
    arch::exit(arch::EXIT_FAIL)
}

// ---- GDT, TSS, IDT ----

const IST_EXCEPTION: u8 = 1;
const IST_DEVICE: u8 = 2;
const IST_DOUBLE_FAULT: u8 = 3;
const IST_NMI_MC: u8 = 4;

/// An IST stack; its lowest page becomes a guard page (see `guard_stacks`).
#[repr(C, align(4096))]
struct Stack<const N: usize>([u8; N]);

static mut STACK_EXCEPTION: Stack<{ 64 * 1024 }> = Stack([0; 64 * 1024]);
static mut STACK_DEVICE: Stack<{ 32 * 1024 }> = Stack([0; 32 * 1024]);
static mut STACK_DOUBLE_FAULT: Stack<{ 32 * 1024 }> = Stack([0; 32 * 1024]);
static mut STACK_NMI_MC: Stack<{ 32 * 1024 }> = Stack([0; 32 * 1024]);

#[repr(C, packed)]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    iomap_base: size_of::<Tss>() as u16,
};

/// null, code 0x08, data 0x10, TSS 0x18 (two slots).
static mut GDT: [u64; 5] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0, 0];

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

static mut IDT: [Gate; 256] = [Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
}; 256];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

fn stack_top<const N: usize>(s: *mut Stack<N>) -> u64 {
    s as u64 + N as u64
}

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
    for b in bottoms {
        if let Err(e) = crate::mmu::guard_page(b) {
            log::warn!(target: "mem", "no guard page below the stack at {b:#x}: {e}");
        }
    }
}

/// Load the GDT with a TSS and the IDT. Interrupts stay disabled.
pub fn init() {
    // SAFETY: runs once on the boot CPU with interrupts off, before any
    // interrupt can use these tables; the statics live forever.
    unsafe {
        let tss = &raw mut TSS;
        (*tss).ist[usize::from(IST_EXCEPTION) - 1] = stack_top(&raw mut STACK_EXCEPTION);
        (*tss).ist[usize::from(IST_DEVICE) - 1] = stack_top(&raw mut STACK_DEVICE);
        (*tss).ist[usize::from(IST_DOUBLE_FAULT) - 1] = stack_top(&raw mut STACK_DOUBLE_FAULT);
        (*tss).ist[usize::from(IST_NMI_MC) - 1] = stack_top(&raw mut STACK_NMI_MC);

        let base = tss as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        let gdt = &raw mut GDT;
        // 64-bit available TSS (type 9), present.
        (*gdt)[3] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        (*gdt)[4] = base >> 32;
        let gdtr = DescriptorPointer {
            limit: (size_of::<[u64; 5]>() - 1) as u16,
            base: gdt as u64,
        };
        asm!(
            "lgdt [{gdtr}]",
            "push 0x08",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov {tmp:e}, 0x10",
            "mov ds, {tmp:e}",
            "mov es, {tmp:e}",
            "mov ss, {tmp:e}",
            "mov {tmp:e}, 0x18",
            "ltr {tmp:x}",
            gdtr = in(reg) &raw const gdtr,
            tmp = out(reg) _,
        );

        let stubs = &raw const cxos_isr_stubs as u64;
        let idt = &raw mut IDT;
        for v in 0..256usize {
            let addr = stubs + 16 * v as u64;
            let ist = match v {
                8 => IST_DOUBLE_FAULT,
                2 | 18 => IST_NMI_MC,
                0..32 => IST_EXCEPTION,
                _ => IST_DEVICE,
            };
            (*idt)[v] = Gate {
                offset_low: addr as u16,
                selector: 0x08,
                ist,
                type_attr: 0x8e,
                offset_mid: (addr >> 16) as u16,
                offset_high: (addr >> 32) as u32,
                reserved: 0,
            };
        }
        let idtr = DescriptorPointer {
            limit: (size_of::<[Gate; 256]>() - 1) as u16,
            base: idt as u64,
        };
        asm!("lidt [{}]", in(reg) &raw const idtr, options(nostack));
    }
}
