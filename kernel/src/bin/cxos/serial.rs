//! COM1, a 16550 UART: polled output, interrupt-driven input.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::arch::{inb, outb};

const COM1: u16 = 0x3f8;
const RX_RING: usize = 1024;

static PRESENT: AtomicBool = AtomicBool::new(false);

/// Received bytes, filled by the interrupt handler, drained by the main loop.
struct RxRing {
    buf: [core::sync::atomic::AtomicU8; RX_RING],
    head: AtomicUsize,
    tail: AtomicUsize,
}

static RX: RxRing = RxRing {
    buf: [const { core::sync::atomic::AtomicU8::new(0) }; RX_RING],
    head: AtomicUsize::new(0),
    tail: AtomicUsize::new(0),
};

/// 115200 8N1, FIFOs on, receive interrupt enabled (the I/O APIC decides
/// whether it is delivered).
pub fn init() {
    // Scratch register test: absent UARTs read back 0xff.
    outb(COM1 + 7, 0x5a);
    let present = inb(COM1 + 7) == 0x5a;
    PRESENT.store(present, Ordering::Relaxed);
    if !present {
        return;
    }
    outb(COM1 + 1, 0x00); // IER off
    outb(COM1 + 3, 0x80); // DLAB
    outb(COM1, 0x01); // divisor 1 = 115200
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); // 8N1
    // Turning the FIFO on clears it: keep a byte typed ahead of the boot.
    on_interrupt();
    outb(COM1 + 2, 0xc1); // FIFO on, 14-byte threshold
    outb(COM1 + 4, 0x0b); // DTR, RTS, OUT2 (IRQ line enable)
    outb(COM1 + 1, 0x01); // IER: received data available
}

pub fn write_byte(b: u8) {
    if !PRESENT.load(Ordering::Relaxed) {
        return;
    }
    // Bounded wait for THR empty: a wedged UART must not hang the kernel.
    let mut spins = 0u32;
    while inb(COM1 + 5) & 0x20 == 0 && spins < 100_000 {
        spins += 1;
        core::hint::spin_loop();
    }
    outb(COM1, b);
}

pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            write_byte(b'\r');
        }
        write_byte(b);
    }
}

/// Interrupt context: move every received byte into the ring (reading RBR
/// is what acknowledges the UART's interrupt).
pub fn on_interrupt() {
    if !PRESENT.load(Ordering::Relaxed) {
        return;
    }
    let mut n = 0;
    while inb(COM1 + 5) & 0x01 != 0 && n < 64 {
        let b = inb(COM1);
        let head = RX.head.load(Ordering::Relaxed);
        let next = (head + 1) % RX_RING;
        if next != RX.tail.load(Ordering::Acquire) {
            RX.buf[head].store(b, Ordering::Relaxed);
            RX.head.store(next, Ordering::Release);
        }
        n += 1;
    }
}

/// Drain the UART from the main loop: bytes that arrived before the I/O
/// APIC route existed left its (edge-triggered) line high, so no further
/// interrupt would come until the receive buffer is read.
pub fn poll_rx() {
    crate::arch::without_interrupts(on_interrupt);
}

/// Next received byte, if any.
pub fn read_byte() -> Option<u8> {
    let tail = RX.tail.load(Ordering::Relaxed);
    if tail == RX.head.load(Ordering::Acquire) {
        return None;
    }
    let b = RX.buf[tail].load(Ordering::Relaxed);
    RX.tail.store((tail + 1) % RX_RING, Ordering::Release);
    Some(b)
}
