//! Link flags for the kernel binary only, and the 256 interrupt entry
//! stubs.
//!
//! The kernel is a binary of the host's own Linux target, which the
//! toolchain links as a dynamic PIE with an ELF interpreter. `-static` is
//! the flag that matters (no PT_INTERP, no PIE: the loaders map the image
//! where linker.ld puts it), `-no-pie` says it again to the compiler
//! driver, `-nostartfiles` drops the C runtime's `_start`. The flags go to
//! the binary alone (`rustc-link-arg-bins`), never to `[build] rustflags`,
//! where xtask and the host tests would get them too.

use std::fmt::Write as _;

/// Vectors for which the CPU pushes an error code.
const ERROR_CODE_VECTORS: [u32; 10] = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    // Debug info (the kernel profile keeps line tables) is compressed: the
    // loaders ignore it and the image stays well under 1 MiB.
    for arg in [
        "-nostartfiles",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,--compress-debug-sections=zlib",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");

    // Every stub is 16 bytes: [push 0] push <vector>; jmp cxos_isr_common.
    // The table of stubs lets the IDT be filled by address arithmetic.
    let mut s = String::new();
    s.push_str(
        ".section .text.cxos_isr, \"ax\"\n.balign 16\n.global cxos_isr_stubs\ncxos_isr_stubs:\n",
    );
    for v in 0..256u32 {
        s.push_str(".balign 16\n");
        if !ERROR_CODE_VECTORS.contains(&v) {
            s.push_str("push 0\n");
        }
        writeln!(s, "push {v}\njmp cxos_isr_common").unwrap();
    }
    s.push_str(".text\n");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(format!("{out}/isr_stubs.s"), s).expect("write isr_stubs.s");
}
