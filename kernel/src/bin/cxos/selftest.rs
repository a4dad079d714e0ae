//! `test=selftest`: in-kernel tests of the platform, reported one line each
//! (`selftest <name> ... ok|FAILED: <why>|skipped: <why>`, then
//! `selftest: <P> passed, <F> failed`, the lines xtask's console.rs reads)
//! and summed up for the exit code.

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use core::sync::atomic::{AtomicU64, Ordering};

use alloc::sync::Arc;
use cxos_drivers::{Clock, ConfigSpace, DmaAlloc, DmaRegion, Mmio, Msix, PciId, Platform};
use cxos_kernel::cmdline;
use cxos_kernel::frames::FRAME_SIZE;

use crate::platform::{self, KernelPlatform};
use crate::{arch, interrupts, memory, pcibus, println, runtime, time};

enum Outcome {
    Pass,
    Skipped(String),
}

type Test = fn() -> Result<Outcome, String>;

const TESTS: &[(&str, Test)] = &[
    ("frames", frames),
    ("dma", dma),
    ("heap", heap),
    ("timer", timer),
    ("cmdline", cmdline_test),
    ("edu-msi", edu_msi),
    ("e1000e-msix", e1000e_msix),
    ("mlx5", mlx5),
];

/// Run every test, print the summary, leave QEMU with the verdict.
pub fn run() -> ! {
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS {
        match test() {
            Ok(Outcome::Pass) => {
                passed += 1;
                println!("selftest {name} ... ok");
            }
            Ok(Outcome::Skipped(why)) => println!("selftest {name} ... skipped: {why}"),
            Err(why) => {
                failed += 1;
                println!("selftest {name} ... FAILED: {why}");
            }
        }
    }
    println!("selftest: {passed} passed, {failed} failed");
    arch::exit(if failed == 0 {
        arch::EXIT_PASS
    } else {
        arch::EXIT_FAIL
    })
}

macro_rules! check {
    ($cond:expr, $($why:tt)*) => {
        if !$cond {
            return Err(format!($($why)*));
        }
    };
}

fn frames() -> Result<Outcome, String> {
    let free0 = memory::frame_stats().free;
    let one = memory::FRAMES
        .lock()
        .alloc(1, FRAME_SIZE)
        .ok_or("no single frame")?;
    let block = memory::FRAMES
        .lock()
        .alloc(16, 64 * 1024)
        .ok_or("no 16-frame block aligned to 64 KiB")?;
    check!(one % FRAME_SIZE == 0, "frame {one:#x} not page aligned");
    check!(
        block % (64 * 1024) == 0,
        "block {block:#x} not 64 KiB aligned"
    );
    check!(
        one + FRAME_SIZE <= block || block + 16 * FRAME_SIZE <= one,
        "frame {one:#x} inside block {block:#x}"
    );
    check!(
        memory::frame_stats().free == free0 - 17,
        "free count did not drop by 17"
    );
    // The memory is real: write a pattern through the identity map.
    let p = block as *mut u64;
    for i in 0..(16 * FRAME_SIZE as usize / 8) {
        // SAFETY: the block was just allocated for this test (16 frames,
        // identity mapped); i stays inside it.
        unsafe { p.add(i).write_volatile(i as u64 ^ 0x5a5a) };
    }
    for i in 0..(16 * FRAME_SIZE as usize / 8) {
        // SAFETY: as above.
        let v = unsafe { p.add(i).read_volatile() };
        check!(v == i as u64 ^ 0x5a5a, "pattern mismatch at word {i}");
    }
    // RAM above the 4 GiB boot map is reached through page tables the
    // kernel built (the same path as BARs high in the 64-bit space).
    let high = memory::FRAMES
        .lock()
        .alloc_in(1, FRAME_SIZE, 4 << 30, u64::MAX);
    if let Some(h) = high {
        let p = h as *mut u64;
        for i in 0..512 {
            // SAFETY: a frame just allocated for this test, mapped by
            // `memory::init`; i < 512 words = 4 KiB.
            unsafe { p.add(i).write_volatile(h ^ i as u64) };
        }
        // SAFETY: as above.
        let ok = (0..512).all(|i| unsafe { p.add(i).read_volatile() } == h ^ i as u64);
        memory::FRAMES
            .lock()
            .free(h, 1)
            .map_err(|e| format!("free high frame: {e:?}"))?;
        check!(ok, "pattern mismatch in the frame at {h:#x} above 4 GiB");
        log::debug!(target: "selftest", "frame above 4 GiB at {h:#x} ok");
    }
    let mut f = memory::FRAMES.lock();
    f.free(block, 16)
        .map_err(|e| format!("free block: {e:?}"))?;
    f.free(one, 1).map_err(|e| format!("free frame: {e:?}"))?;
    check!(f.free(one, 1).is_err(), "double free accepted");
    check!(f.free_frames() == free0, "free count not restored");
    Ok(Outcome::Pass)
}

fn dma() -> Result<Outcome, String> {
    let s0 = memory::dma_stats();
    let frames0 = memory::frame_stats().free;
    let sizes = [1usize, 4096, 10_000, 64 * 1024];
    let regions: Vec<_> = sizes
        .iter()
        .map(|&n| memory::DMA.alloc(n).map_err(|e| format!("alloc {n}: {e}")))
        .collect::<Result<_, _>>()?;
    for (r, &n) in regions.iter().zip(&sizes) {
        check!(r.len() == n, "length {} != {n}", r.len());
        check!(
            r.device_addr().get() % 4096 == 0,
            "{} not page aligned",
            r.device_addr()
        );
        check!(
            (0..n).all(|i| r.read_u8(i) == 0),
            "region of {n} bytes not zeroed"
        );
        if n >= 16 {
            r.write_be64(8, 0x1122_3344_5566_7788);
            check!(r.read_u8(8) == 0x11, "not big-endian");
            check!(r.read_be32(12) == 0x5566_7788, "be32 readback");
        }
    }
    let s1 = memory::dma_stats();
    check!(
        s1.regions == s0.regions + 4,
        "regions counter {} -> {}",
        s0.regions,
        s1.regions
    );
    check!(
        s1.bytes == s0.bytes + (1 + 1 + 3 + 16) * 4096,
        "bytes counter {} -> {}",
        s0.bytes,
        s1.bytes
    );
    drop(regions);
    let s2 = memory::dma_stats();
    check!(
        s2.regions == s0.regions && s2.bytes == s0.bytes,
        "counters not restored after free"
    );
    check!(memory::frame_stats().free == frames0, "frames leaked");
    check!(
        memory::DMA.alloc(1 << 40).is_err(),
        "a 1 TiB DMA region was granted"
    );
    Ok(Outcome::Pass)
}

fn heap() -> Result<Outcome, String> {
    let h0 = memory::heap_stats();
    {
        let mut v: Vec<u64> = vec![0; 128 * 1024];
        for (i, x) in v.iter_mut().enumerate() {
            *x = i as u64;
        }
        check!(
            v.iter().enumerate().all(|(i, &x)| x == i as u64),
            "heap pattern"
        );
        let h1 = memory::heap_stats();
        check!(
            h1.used >= h0.used + 1024 * 1024,
            "used counter did not grow by 1 MiB"
        );
        let boxes: Vec<_> = (0..1000).map(alloc::boxed::Box::new).collect();
        check!(boxes.iter().enumerate().all(|(i, b)| **b == i), "boxes");
    }
    let h2 = memory::heap_stats();
    check!(
        h2.used == h0.used,
        "heap used {} -> {} after free",
        h0.used,
        h2.used
    );
    Ok(Outcome::Pass)
}

fn timer() -> Result<Outcome, String> {
    // The boot CPU's timer (the APs' timer vector has the same role).
    let timer_vector = runtime::timer_vector();
    if timer_vector == 0 {
        return Err("no timer vector".into());
    }
    let irqs0 = interrupts::count(timer_vector);

    let t0 = time::now_ns();
    let fired_at = Arc::new(AtomicU64::new(0));
    let f = fired_at.clone();
    runtime::oneshot(5_000_000, move || {
        f.store(time::now_ns(), Ordering::Release)
    });
    check!(
        runtime::wait_until(2_000_000_000, || fired_at.load(Ordering::Acquire) != 0),
        "5 ms one-shot did not fire within 2 s"
    );
    let dt = fired_at.load(Ordering::Acquire) - t0;
    check!(dt >= 5_000_000, "one-shot fired early, after {dt} ns");

    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    let id = runtime::periodic(1_000_000, move || {
        t.fetch_add(1, Ordering::AcqRel);
    });
    check!(
        runtime::wait_until(2_000_000_000, || ticks.load(Ordering::Acquire) >= 3),
        "1 ms periodic timer ticked {} times in 2 s",
        ticks.load(Ordering::Acquire)
    );
    check!(runtime::cancel(id), "cancel failed");
    let after = ticks.load(Ordering::Acquire);
    runtime::wait_until(3_000_000, || false);
    check!(
        ticks.load(Ordering::Acquire) == after,
        "cancelled timer still ticks"
    );

    let d0 = time::now_ns();
    time::delay_us(500);
    check!(
        time::now_ns() - d0 >= 500_000,
        "delay_us(500) returned early"
    );
    check!(
        interrupts::count(timer_vector) > irqs0,
        "no local APIC timer interrupt seen"
    );
    Ok(Outcome::Pass)
}

fn cmdline_test() -> Result<Outcome, String> {
    let (c, d) = cmdline::parse("test=selftest log=warn,pci=trace bogus=1 log=loud");
    check!(c.test.as_deref() == Some("selftest"), "test key");
    check!(
        c.log.level_for("pci") == log::LevelFilter::Trace,
        "pci=trace lost"
    );
    let lines: Vec<String> = d.iter().map(|x| format!("{x}")).collect();
    check!(
        lines
            == [
                "cmdline: unknown key 'bogus' ignored",
                "cmdline: bad value 'loud' for 'log', using warn,pci=trace"
            ],
        "diagnostics {lines:?}"
    );
    Ok(Outcome::Pass)
}

static EDU_IDS: [PciId; 1] = [PciId::new(0x1234, 0x11e8, "QEMU edu")];

fn edu_msi() -> Result<Outcome, String> {
    let Some(dev) = pcibus::claim(&EDU_IDS, "selftest") else {
        return Ok(Outcome::Skipped(String::from(
            "no edu device (QEMU -device edu)",
        )));
    };
    let dev = dev?;
    let bar = dev.bar(0).ok_or("edu BAR0 not mapped")?;
    let ident = bar.read32(0x00);
    check!(ident & 0xff == 0xed, "edu identification {ident:#x}");
    bar.write32(0x04, 0x1234_5678);
    check!(bar.read32(0x04) == !0x1234_5678, "edu liveness register");
    let v = platform::msi_enable(&dev, "edu")?;
    let result = (|| {
        for round in 0..2u32 {
            let before = interrupts::count(v);
            let bits = 0x100 << round;
            bar.write32(0x60, bits);
            check!(
                runtime::wait_until(1_000_000_000, || interrupts::take_pending(v)),
                "no MSI on vector {v:#x} within 1 s (round {round})"
            );
            check!(
                interrupts::count(v) == before + 1,
                "vector count did not step by one"
            );
            let status = bar.read32(0x24);
            check!(
                status == bits,
                "interrupt status {status:#x}, expected {bits:#x}"
            );
            bar.write32(0x64, bits);
            check!(bar.read32(0x24) == 0, "interrupt not acknowledged");
        }
        Ok(Outcome::Pass)
    })();
    platform::msi_disable(&dev, v);
    result
}

static E1000E_IDS: [PciId; 1] = [PciId::new(0x8086, 0x10d3, "Intel 82574L (QEMU e1000e)")];

// 82574 registers (Intel 82574 datasheet 10.2): interrupt cause read/set,
// mask set/clear, interrupt vector allocation.
const ICR: usize = 0x00c0;
const ICS: usize = 0x00c8;
const IMS: usize = 0x00d0;
const IMC: usize = 0x00d8;
const IVAR: usize = 0x00e4;
const STATUS: usize = 0x0008;
const CAUSE_RXQ0: u32 = 1 << 20;
const CAUSE_TXQ0: u32 = 1 << 22;
const CAUSE_OTHER: u32 = 1 << 24;
/// IVAR entry: bit 3 valid, bits 2:0 MSI-X vector.
const IVAR_VALID: u32 = 0x8;

/// Attach, detach and attach again every ConnectX function (see
/// `mlx5nic::selftest`).
fn mlx5() -> Result<Outcome, String> {
    #[cfg(feature = "mlx5")]
    return crate::mlx5nic::selftest()
        .map(|skipped| skipped.map_or(Outcome::Pass, |why| Outcome::Skipped(why.into())));
    #[cfg(not(feature = "mlx5"))]
    Ok(Outcome::Skipped("built without the mlx5 feature".into()))
}

fn e1000e_msix() -> Result<Outcome, String> {
    let Some(dev) = pcibus::claim(&E1000E_IDS, "selftest") else {
        return Ok(Outcome::Skipped(String::from(
            "no e1000e device (QEMU -device e1000e)",
        )));
    };
    let dev = dev?;
    let addr = dev.addr;
    let p = KernelPlatform::new(dev, "e1000e")?;
    let regs = p.bar0();
    // The Platform view of the function matches the kernel's.
    check!(p.pci_address() == addr, "pci_address {}", p.pci_address());
    check!(
        p.config_read16(0) == 0x8086 && p.config_read16(2) == 0x10d3,
        "config ids"
    );
    check!(
        p.mmio().bar0_len() == 128 * 1024,
        "BAR0 of {:#x} bytes",
        p.mmio().bar0_len()
    );
    let status = regs.read32(STATUS);
    check!(
        p.mmio().bar0_read_be32(STATUS) == status.swap_bytes(),
        "big-endian BAR0 view"
    );
    let buf = p
        .dma()
        .dma_alloc(3000)
        .map_err(|e| format!("dma_alloc: {e}"))?;
    check!(
        buf.len() == 3000 && buf.device_addr().get() % 4096 == 0,
        "platform DMA region"
    );
    drop(buf);
    let t = p.clock().now_ns();
    p.clock().relax();
    check!(p.clock().now_ns() >= t, "time went backwards");
    regs.write32(IMC, 0xffff_ffff);
    regs.write32(ICR, 0xffff_ffff);
    let table = p.msix_table_size();
    check!(table >= 3, "MSI-X table of {table} entries");
    // Enable and disable once before any interrupt: the vectors come back.
    let free0 = interrupts::available_vectors();
    let n0 = p
        .msix_enable(3, table)
        .map_err(|e| format!("msix_enable: {e}"))?;
    check!(
        interrupts::available_vectors() == free0 - n0,
        "{n0} vectors bound but {} taken",
        free0 - interrupts::available_vectors()
    );
    p.msix_disable();
    check!(
        interrupts::available_vectors() == free0 && p.msix_vectors().is_empty(),
        "msix_disable did not free the vectors"
    );
    let n = p
        .msix_enable(3, table)
        .map_err(|e| format!("msix_enable: {e}"))?;
    let vectors = p.msix_vectors();
    let result = (|| {
        check!(
            n == table && vectors.len() == usize::from(n),
            "{n} vectors bound"
        );
        // RX queue 0 -> MSI-X entry 0, TX queue 0 -> entry 1, other -> entry 2.
        regs.write32(
            IVAR,
            IVAR_VALID | ((IVAR_VALID | 1) << 8) | ((IVAR_VALID | 2) << 16),
        );
        regs.write32(IMS, CAUSE_RXQ0 | CAUSE_TXQ0 | CAUSE_OTHER);

        regs.write32(ICS, CAUSE_RXQ0);
        check!(
            runtime::wait_until(1_000_000_000, || p.msix_take_pending(0)),
            "no MSI-X interrupt on entry 0 (vector {:#x}) within 1 s",
            vectors[0]
        );
        check!(!p.msix_take_pending(1), "entry 1 fired for an RX cause");
        regs.write32(ICR, CAUSE_RXQ0);

        // A masked entry must hold its message until unmasked.
        p.msix_set_masked(1, true);
        regs.write32(ICS, CAUSE_TXQ0);
        runtime::wait_until(2_000_000, || false);
        check!(!p.msix_take_pending(1), "masked entry 1 fired");
        p.msix_set_masked(1, false);
        check!(
            runtime::wait_until(1_000_000_000, || p.msix_take_pending(1)),
            "entry 1 (vector {:#x}) did not fire after unmask",
            vectors[1]
        );
        regs.write32(ICR, CAUSE_TXQ0);

        // A handler bound to entry 2 runs from the main loop.
        let runs = Arc::new(AtomicU64::new(0));
        let r = runs.clone();
        check!(
            p.msix_bind(2, move || {
                r.fetch_add(1, Ordering::AcqRel);
            }),
            "bind entry 2"
        );
        regs.write32(ICS, CAUSE_OTHER);
        check!(
            runtime::wait_until(1_000_000_000, || runs.load(Ordering::Acquire) == 1),
            "handler of entry 2 (vector {:#x}) did not run within 1 s",
            vectors[2]
        );
        regs.write32(ICR, CAUSE_OTHER);
        check!(
            interrupts::count(vectors[0]) >= 1 && interrupts::count(vectors[1]) >= 1,
            "counts"
        );
        Ok(Outcome::Pass)
    })();
    // Quiet the function but leave MSI-X enabled: QEMU 7.2's e1000e aborts
    // (assertion in e1000e_intrmgr_on_msix_throttling_timer) when its
    // interrupt throttling timer expires after MSI-X was disabled.
    regs.write32(IMC, 0xffff_ffff);
    for i in 0..n {
        p.msix_set_masked(i, true);
    }
    result
}

/// `test=panic`: the panic path (prints location, exits failure).
pub fn panic_test() -> ! {
    panic!("panic requested by test=panic");
}

/// `test=stackoverflow`: unbounded recursion runs into the boot stack's
/// guard page; the page fault is reported (on its own IST stack).
pub fn stack_overflow_test() -> ! {
    fn recurse(depth: u64) -> u64 {
        let frame = core::hint::black_box([depth; 64]);
        if core::hint::black_box(depth) == u64::MAX {
            return 0;
        }
        recurse(depth + 1) + frame[depth as usize % 64]
    }
    let n = recurse(0);
    panic!("recursion ended at {n}");
}

/// `test=pagefault`: the exception path, through a read of unmapped memory.
pub fn pagefault_test() -> ! {
    let p = 0x4000_0000_0000u64 as *const u64;
    // SAFETY: deliberately faults: the address is not mapped, and the page
    // fault handler reports and exits instead of returning.
    let v = unsafe { p.read_volatile() };
    panic!("read of unmapped memory returned {v:#x}");
}
