//! The machine entry: assembly emitted into the kernel binary by [`entry!`],
//! and the normalization of the loader's structures it calls.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;

use crate::info::BootInfo;
use crate::parse::{BootError, MULTIBOOT2_MAGIC, Memory, PVH_MAGIC, parse_multiboot2, parse_pvh};

/// Physical memory through the boot identity map (first 4 GiB).
#[derive(Debug)]
pub struct PhysMemory;

impl Memory for PhysMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        // Null is never a structure; the boot map ends at 4 GiB.
        if addr == 0 || end > (4 << 30) {
            return false;
        }
        // SAFETY: [addr, end) lies inside the identity map the entry code set
        // up (the first 4 GiB, all present); the loader's structures there
        // are not written concurrently (one CPU, interrupts off).
        unsafe {
            core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len());
        }
        true
    }
}

struct BootInfoCell(UnsafeCell<MaybeUninit<BootInfo>>);

// SAFETY: written once by `normalize` on the boot CPU before anything else
// runs, read-only afterwards.
unsafe impl Sync for BootInfoCell {}

static BOOT_INFO: BootInfoCell = BootInfoCell(UnsafeCell::new(MaybeUninit::uninit()));

/// Turn the register state of the 32-bit entry into a [`BootInfo`].
///
/// # Safety
/// Call once, from the entry code, before any other use of memory the loader
/// may have put its structures in.
pub unsafe fn normalize(
    eax: u32,
    ebx: u32,
    kernel_image: (u64, u64),
) -> Result<&'static BootInfo, BootError> {
    let mem = PhysMemory;
    let mut info = if eax == MULTIBOOT2_MAGIC {
        parse_multiboot2(&mem, ebx.into())?
    } else if mem.read_u32(ebx.into()) == Some(PVH_MAGIC) {
        parse_pvh(&mem, ebx.into())?
    } else {
        return Err(BootError::UnknownProtocol { eax, ebx });
    };
    info.kernel_image = kernel_image;
    // SAFETY: single call on the boot CPU (the caller's contract); nothing
    // else references BOOT_INFO before this returns.
    let slot = unsafe { &mut *BOOT_INFO.0.get() };
    Ok(slot.write(info))
}

/// Emit the boot entry into the kernel binary and call `$main` with
/// `Result<&'static BootInfo, BootError>` in long mode. `$main` must not
/// return. The linker script provides `__bss_start`, `__bss_end`,
/// `__kernel_start` and `__kernel_end`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        ::core::arch::global_asm!(
            // Multiboot2 header: magic, architecture 0 (i386), length,
            // checksum, end tag. GRUB loads the ELF segments itself.
            ".section .multiboot2, \"a\"",
            ".balign 8",
            "cxos_mb2_header:",
            ".long 0xe85250d6",
            ".long 0",
            ".long cxos_mb2_header_end - cxos_mb2_header",
            ".long 0x100000000 - (0xe85250d6 + (cxos_mb2_header_end - cxos_mb2_header))",
            ".short 0",
            ".short 0",
            ".long 8",
            "cxos_mb2_header_end:",
            // PVH: Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (18).
            ".section .note.Xen, \"a\", @note",
            ".balign 4",
            ".long 4",
            ".long 8",
            ".long 18",
            ".asciz \"Xen\"",
            ".balign 4",
            ".quad _start32",
            // Early page tables and the boot stack.
            ".section .bss.cxos_boot, \"aw\", @nobits",
            ".balign 4096",
            ".global cxos_boot_pml4",
            "cxos_boot_pml4: .skip 4096",
            "cxos_boot_pdpt: .skip 4096",
            "cxos_boot_pd: .skip 4 * 4096",
            // Page aligned: the kernel turns the lowest page into a guard.
            ".balign 4096",
            ".global cxos_boot_stack_bottom",
            "cxos_boot_stack_bottom: .skip 256 * 1024",
            ".global cxos_boot_stack_top",
            "cxos_boot_stack_top:",
            ".section .data.cxos_boot, \"aw\"",
            ".balign 8",
            "cxos_boot_eax: .long 0",
            "cxos_boot_ebx: .long 0",
            ".balign 8",
            "cxos_boot_gdt:",
            ".quad 0",
            ".quad 0x00af9a000000ffff",
            ".quad 0x00cf92000000ffff",
            "cxos_boot_gdt_end:",
            ".balign 8",
            "cxos_boot_gdtr:",
            ".short cxos_boot_gdt_end - cxos_boot_gdt - 1",
            ".quad cxos_boot_gdt",
            // 32-bit entry, flat protected mode, paging off (both protocols).
            ".section .text.cxos_boot32, \"ax\"",
            ".code32",
            ".global _start32",
            "_start32:",
            "cli",
            "cld",
            "mov dword ptr [cxos_boot_eax], eax",
            "mov dword ptr [cxos_boot_ebx], ebx",
            // Zero .bss (page tables, stacks, Rust statics).
            "mov edi, offset __bss_start",
            "mov ecx, offset __bss_end",
            "sub ecx, edi",
            "shr ecx, 2",
            "xor eax, eax",
            "rep stosd",
            "mov esp, offset cxos_boot_stack_top",
            // PML4[0] -> PDPT, PDPT[0..4] -> four page directories.
            "mov eax, offset cxos_boot_pdpt",
            "or eax, 3",
            "mov dword ptr [cxos_boot_pml4], eax",
            "mov eax, offset cxos_boot_pd",
            "or eax, 3",
            "mov dword ptr [cxos_boot_pdpt], eax",
            "add eax, 4096",
            "mov dword ptr [cxos_boot_pdpt + 8], eax",
            "add eax, 4096",
            "mov dword ptr [cxos_boot_pdpt + 16], eax",
            "add eax, 4096",
            "mov dword ptr [cxos_boot_pdpt + 24], eax",
            // 2048 2 MiB pages: present, writable, PS; 3..4 GiB also PCD|PWT.
            "mov edi, offset cxos_boot_pd",
            "xor ecx, ecx",
            "2:",
            "mov eax, ecx",
            "shl eax, 21",
            "or eax, 0x83",
            "cmp ecx, 1536",
            "jb 3f",
            "or eax, 0x18",
            "3:",
            "mov dword ptr [edi + ecx * 8], eax",
            "mov dword ptr [edi + ecx * 8 + 4], 0",
            "inc ecx",
            "cmp ecx, 2048",
            "jb 2b",
            // CR4: PAE | OSFXSR | OSXMMEXCPT (SSE usable before any Rust).
            "mov eax, cr4",
            "or eax, 0x620",
            "mov cr4, eax",
            "mov eax, offset cxos_boot_pml4",
            "mov cr3, eax",
            // EFER.LME
            "mov ecx, 0xc0000080",
            "rdmsr",
            "or eax, 0x100",
            "wrmsr",
            // CR0: PG | MP | PE, clear EM, TS, NW, CD.
            "mov eax, cr0",
            "and eax, 0x9ffffff3",
            "or eax, 0x80000003",
            "mov cr0, eax",
            "lgdt [cxos_boot_gdtr]",
            "push 0x08",
            "mov eax, offset cxos_start64",
            "push eax",
            "retf",
            ".code64",
            "cxos_start64:",
            "mov ax, 0x10",
            "mov ds, ax",
            "mov es, ax",
            "mov ss, ax",
            "xor eax, eax",
            "mov fs, ax",
            "mov gs, ax",
            "mov rsp, offset cxos_boot_stack_top",
            "fninit",
            "mov edi, dword ptr [rip + cxos_boot_eax]",
            "mov esi, dword ptr [rip + cxos_boot_ebx]",
            "xor ebp, ebp",
            "call cxos_boot_main64",
            "4:",
            "cli",
            "hlt",
            "jmp 4b",
            ".text",
        );

        #[unsafe(no_mangle)]
        extern "C" fn cxos_boot_main64(eax: u32, ebx: u32) -> ! {
            unsafe extern "C" {
                static __kernel_start: u8;
                static __kernel_end: u8;
            }
            let image = (
                (&raw const __kernel_start) as u64,
                (&raw const __kernel_end) as u64,
            );
            // SAFETY: called exactly once, by the entry code above, before
            // anything else runs.
            let info = unsafe { $crate::normalize(eax, ebx, image) };
            $main(info)
        }
    };
}
