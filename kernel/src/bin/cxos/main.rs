//! The cxos kernel binary: everything that touches hardware. The logic it
//! drives lives in the `cxos_kernel` library (host-tested).
#![no_std]
#![no_main]

extern crate alloc;

mod apic;
mod arch;
mod console;
mod cpuscmd;
mod drivers;
mod interrupts;
mod logger;
mod mem_builtins;
mod memory;
#[cfg(feature = "mlx5")]
mod mlx5nic;
mod mmio;
mod mmu;
#[cfg(feature = "net")]
mod netcmd;
#[cfg(feature = "net")]
mod netstack;
#[cfg(feature = "net")]
mod nettest;
mod pcibus;
mod platform;
mod power;
mod runtime;
#[cfg(feature = "net")]
mod rxspread;
mod selftest;
mod serial;
mod shell;
mod smp;
mod smpboot;
mod time;
#[cfg(feature = "net")]
mod vnics;

use core::sync::atomic::Ordering;

use cxos_boot::{BootError, BootInfo, Memory, PhysMemory, RsdpSource};
use cxos_kernel::acpi::{self, Tables};
use cxos_kernel::cmdline;

cxos_boot::entry!(kmain);

/// ISA IRQ of COM1.
const COM1_IRQ: u8 = 4;

fn kmain(boot: Result<&'static BootInfo, BootError>) -> ! {
    mmu::init_pat();
    smp::init_bsp();
    time::start();
    serial::init();
    let boot = match boot {
        Ok(b) => b,
        Err(e) => {
            println!("boot: {e}");
            arch::exit(arch::EXIT_FAIL);
        }
    };
    println!(
        "cxos {} booted via {}",
        env!("CARGO_PKG_VERSION"),
        boot.protocol.name()
    );
    interrupts::init();
    memory::init_early_heap();

    let line = alloc::string::String::from_utf8_lossy(boot.cmdline());
    let (config, diagnostics) = cmdline::parse(&line);
    logger::init(config.log.clone());
    for d in &diagnostics {
        println!("{d}");
        if let Some(why) = d.reason() {
            println!("cmdline: ({why})");
        }
    }
    if boot.cmdline_truncated {
        println!(
            "cmdline: longer than {} bytes; the rest ignored",
            boot.cmdline().len()
        );
    }

    let tables = read_acpi(boot);
    memory::init_frames(boot, &tables.ranges);
    memory::grow_heap(|base, len| mmu::map_identity(base, len, mmu::Cache::WriteBack));
    mmu::map_high_ram(boot);
    let f = memory::frame_stats();
    println!(
        "mem: {} MiB usable, {} frames free",
        f.usable_bytes >> 20,
        f.free
    );
    power::setup_s5(&tables);
    interrupts::guard_stacks();

    apic::disable_pic();
    let madt = tables.madt.clone().unwrap_or_default();
    if tables.madt.is_none() {
        log::warn!(target: "apic", "no MADT; using the default local APIC and I/O APIC addresses");
    }
    apic::init_lapic(tables.madt.as_ref().map(|m| m.local_apic_address));
    apic::init_ioapic(madt.io_apics.first().copied(), &madt.overrides);
    runtime::init();
    match interrupts::alloc_vectors(1, 1, interrupts::Role::Serial, "com1") {
        Some(v) => {
            if let Err(e) = apic::route_isa_irq(COM1_IRQ, v) {
                log::error!(target: "console", "COM1 input interrupt not routed: {e}");
            }
        }
        None => log::error!(target: "console", "no vector for COM1"),
    }
    arch::interrupts_enable();

    let reference = match tables.fadt.and_then(|f| f.pm_timer_port) {
        Some(port) => time::Reference::PmTimer(port),
        None => {
            log::warn!(target: "time", "no ACPI PM timer; calibrating against the PIT");
            time::Reference::Pit
        }
    };
    let calibration = time::calibrate(reference);
    log::info!(
        target: "time",
        "TSC {} kHz, APIC timer {} kHz (against {:?}; {calibration})",
        time::tsc_hz() / 1000,
        time::apic_timer_hz() / 1000,
        reference
    );

    smpboot::start_aps(
        &madt,
        usize::from(config.smp.unwrap_or(u16::MAX)),
        config.smp_fail,
    );

    if let Some(n) = config.msix {
        platform::limit_msix(n);
    }
    pcibus::init(&tables.mcfg);
    let n = pcibus::enumerate();
    for f in pcibus::functions() {
        println!("{}", f.line);
    }
    log::info!(target: "pci", "{n} functions");
    #[cfg(feature = "net")]
    netstack::init(&config.net);
    #[cfg(feature = "net")]
    vnics::init(&config.vnic);
    #[cfg(not(feature = "net"))]
    for (n, _) in &config.vnic {
        println!("cmdline: 'vnic.{n}' ignored: built without the network stack");
    }
    #[cfg(not(feature = "net"))]
    for (i, _) in &config.net {
        println!("cmdline: 'net.{i}' ignored: built without the network stack");
    }
    // The PCI driver table: one cargo feature per driver.
    #[cfg(feature = "mlx5")]
    drivers::register(&mlx5nic::DRIVER);
    drivers::probe_all(config.attach);
    #[cfg(feature = "net")]
    mlx5nic::members::init(&config.aggr);

    #[cfg(feature = "net")]
    if let Some(apps) = config
        .test
        .as_deref()
        .and_then(|t| cmdline::test_apps(t, cxos_kernel::apps::APPS))
    {
        match apps {
            Ok(apps) => nettest::run(&apps),
            Err(e) => {
                println!("test: {e}");
                arch::exit(arch::EXIT_FAIL)
            }
        }
    }
    match config.test.as_deref() {
        Some("selftest") => selftest::run(),
        Some("panic") => selftest::panic_test(),
        Some("smp-panic") => smpboot::panic_test(),
        Some("smp-overflow") => smpboot::overflow_test(),
        Some("pagefault") => selftest::pagefault_test(),
        Some("stackoverflow") => selftest::stack_overflow_test(),
        Some(other) => {
            println!("test: unknown test '{other}'");
            arch::exit(arch::EXIT_FAIL)
        }
        None => {}
    }

    let shell = spin::Mutex::new(shell::Shell::start());
    runtime::on_wake(move || shell.lock().poll());
    loop {
        runtime::run_once();
    }
}

/// Find the ACPI tables: the loader's RSDP, else a BIOS area scan.
fn read_acpi(boot: &BootInfo) -> Tables {
    let mem = PhysMemory;
    let rsdp = match boot.rsdp {
        RsdpSource::Address(a) => acpi::read_rsdp(&mem, a),
        RsdpSource::Copy { bytes, len } => acpi::parse_rsdp(&bytes[..len]),
        RsdpSource::None => {
            let ebda = mem
                .read_u32(0x40e)
                .map_or(0, |w| u64::from(w & 0xffff) << 4);
            let found = (ebda >= 0x8_0000)
                .then(|| acpi::scan_rsdp(&mem, ebda, 1024))
                .flatten()
                .or_else(|| acpi::scan_rsdp(&mem, 0xe_0000, 0x2_0000));
            found.map_or(Err(acpi::AcpiError::NoRsdp), |a| acpi::read_rsdp(&mem, a))
        }
    };
    let tables = rsdp.and_then(|r| acpi::read_tables(&mem, &r));
    let tables = match tables {
        Ok(t) => t,
        Err(e) => {
            log::warn!(target: "acpi", "{e}: no ACPI; legacy PCI access, PIT, default APIC addresses");
            return Tables::default();
        }
    };
    for n in &tables.notes {
        log::warn!(target: "acpi", "{n}; table ignored");
    }
    if tables.mcfg.is_empty() {
        log::warn!(target: "acpi", "no MCFG: PCI through the legacy 0xcf8 ports");
    }
    tables
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    static PANICKING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    arch::interrupts_disable();
    smp::stop_others();
    crate::console::take_over();
    if PANICKING.swap(true, Ordering::AcqRel) {
        serial::write_bytes(b"\nPANIC while panicking\n");
        arch::exit(arch::EXIT_FAIL);
    }
    match info.location() {
        Some(l) => println!("PANIC at {}:{}: {}", l.file(), l.line(), info.message()),
        None => println!("PANIC at <unknown>: {}", info.message()),
    }
    smp::print_states();
    arch::exit(arch::EXIT_FAIL)
}
