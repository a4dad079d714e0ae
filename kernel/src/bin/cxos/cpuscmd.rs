//! The shell's CPU commands: `cpus` (state, APIC id, interrupts, idle
//! time per CPU; then the APs that did not come up), `cpus ping <n>` (an IPI round trip), `cpus tlb <n>` (a
//! TLB shootdown observed on CPU n) and
//! `irq <vector> cpu <n>` (MSI-X delivery to a CPU); the per-CPU columns
//! of `irq`.

use alloc::string::String;
use core::fmt::Write;

use cxos_kernel::smpcmd::{CpusCommand, IrqRoute};

use crate::{interrupts, platform, println, runtime, smp, smpboot};

pub fn cpus(cmd: CpusCommand) {
    match cmd {
        CpusCommand::List => {
            for c in smp::cpus() {
                let timer = if c.index == 0 {
                    runtime::timer_vector()
                } else {
                    smp::timer_vector()
                };
                println!(
                    "cpu {} apic {} {}: {} interrupts, timer {}, idle {}.{}%",
                    c.index,
                    c.apic_id,
                    c.state.name(),
                    interrupts::total_on(c.index),
                    interrupts::count_on(c.index, timer),
                    c.idle_permille / 10,
                    c.idle_permille % 10
                );
            }
            for id in smp::failed() {
                println!("apic {id} failed: did not come up at boot; skipped");
            }
        }
        CpusCommand::Ping(n) => match smpboot::ping(n) {
            Ok(ns) => println!("cpus: ping cpu {n}: round trip {} us", ns.div_ceil(1000)),
            Err(e) => println!("cpus: ping cpu {n}: {e}"),
        },
        CpusCommand::Tlb(n) => match smpboot::tlb_test(n) {
            Ok(served) => println!(
                "cpus: tlb cpu {n}: read, faulted after the unmap, read the new contents after the remap ({served} shootdowns served)"
            ),
            Err(e) => println!("cpus: tlb cpu {n}: {e}"),
        },
    }
}

pub fn irq_route(r: IrqRoute) {
    match platform::route_vector(r.vector, r.cpu) {
        Ok(()) => println!("irq {:#04x}: delivered to cpu {}", r.vector, r.cpu),
        Err(e) => println!("irq: {e}"),
    }
}

/// ` cpu0=N cpu1=M ...` for `irq`, with more than one CPU online.
pub fn per_cpu_counts(vector: u8) -> String {
    let mut s = String::new();
    if smp::count() > 1 {
        for c in smp::cpus() {
            let _ = write!(
                s,
                " cpu{}={}",
                c.index,
                interrupts::count_on(c.index, vector)
            );
        }
    }
    s
}
