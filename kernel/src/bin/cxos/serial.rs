//! COM1, a 16550 UART driven by `uart_16550`: polled output, interrupt-
//! driven input into a `heapless` single-producer single-consumer queue
//! (the interrupt handler produces, the shell consumes).

use heapless::spsc::{Consumer, Producer, Queue};
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::{FifoTriggerLevel, IER, LCR};
use uart_16550::{BaudRate, Config, Uart16550};

use crate::arch;

const COM1_BASE: u16 = 0x3f8;
/// Queue slots; one stays free, so 1023 bytes of type-ahead.
const RX_QUEUE: usize = 1024;
/// Bytes taken per interrupt (the rest raise the next one).
const RX_BURST: usize = 64;
/// LSR polls for room in the transmit FIFO before giving up: a wedged UART
/// must not hang the kernel.
const TX_SPINS: u32 = 100_000;

struct Com1 {
    uart: Uart16550<PioBackend>,
    /// A UART answered at `init`.
    present: bool,
    /// The receive queue's producer end.
    received: Producer<'static, u8>,
}

struct Serial {
    /// Taken only with interrupts off (the interrupt handler takes it too),
    /// so on one CPU it never spins.
    com1: Mutex<Com1>,
    /// The receive queue's consumer end.
    input: Mutex<Consumer<'static, u8>>,
}

static SERIAL: Serial = {
    static mut QUEUE: Queue<u8, RX_QUEUE> = Queue::new();
    let queue = &raw mut QUEUE;
    // SAFETY: QUEUE is named nowhere else and a static's initializer is
    // evaluated once, so this is the only borrow of it.
    let (received, input) = unsafe { (*queue).split_const() };
    // SAFETY: COM1's eight ports belong to this module alone.
    let uart = match unsafe { Uart16550::new_port(COM1_BASE) } {
        Ok(uart) => uart,
        Err(_) => panic!("COM1's ports fit the port space"),
    };
    Serial {
        com1: Mutex::new(Com1 {
            uart,
            present: false,
            received,
        }),
        input: Mutex::new(input),
    }
};

/// 115200 8N1, FIFOs on, receive interrupt enabled (the I/O APIC decides
/// whether it is delivered).
pub fn init() {
    arch::without_interrupts(|| {
        let mut com1 = SERIAL.com1.lock();
        if !com1.uart.check_present() {
            return;
        }
        // `Uart16550::init` empties the receive FIFO: keep what was typed
        // ahead of the boot (RBR is only readable with DLAB clear, as
        // loaders leave it).
        if !com1.uart.lcr().contains(LCR::DLAB) {
            receive(&mut com1);
        }
        let config = Config {
            baud_rate: BaudRate::Baud115200,
            interrupts: IER::DATA_READY,
            fifo_trigger_level: Some(FifoTriggerLevel::Fourteen),
            ..Config::DEFAULT
        };
        com1.present = com1.uart.init(config).is_ok();
    });
}

pub fn write_bytes(bytes: &[u8]) {
    arch::without_interrupts(|| {
        let mut com1 = SERIAL.com1.lock();
        if !com1.present {
            return;
        }
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            match line.split_last() {
                Some((b'\n', text)) => {
                    send(&mut com1.uart, text);
                    send(&mut com1.uart, b"\r\n");
                }
                _ => send(&mut com1.uart, line),
            }
        }
    });
}

/// Send `bytes` a FIFO's worth at a time, waiting boundedly for room.
fn send(uart: &mut Uart16550<PioBackend>, mut bytes: &[u8]) {
    let mut spins = 0;
    while !bytes.is_empty() && spins < TX_SPINS {
        match uart.send_bytes(bytes) {
            0 => {
                spins += 1;
                core::hint::spin_loop();
            }
            n => {
                bytes = &bytes[n..];
                spins = 0;
            }
        }
    }
}

/// Move received bytes into the queue (reading RBR is what acknowledges
/// the UART's interrupt); a full queue drops them.
fn receive(com1: &mut Com1) {
    for _ in 0..RX_BURST {
        let Ok(b) = com1.uart.try_receive_byte() else {
            break;
        };
        let _ = com1.received.enqueue(b);
    }
}

/// Interrupt context: take what the UART received.
pub fn on_interrupt() {
    let mut com1 = SERIAL.com1.lock();
    if com1.present {
        receive(&mut com1);
    }
}

/// Drain the UART from the main loop: bytes that arrived before the I/O
/// APIC route existed left its (edge-triggered) line high, so no further
/// interrupt would come until the receive buffer is read.
pub fn poll_rx() {
    arch::without_interrupts(on_interrupt);
}

/// Next received byte, if any.
pub fn read_byte() -> Option<u8> {
    SERIAL.input.lock().dequeue()
}

/// For the panic and exception reports, which end in `arch::exit`: if the
/// code they interrupted held COM1, it never runs again, so its lock is
/// released instead of waited for forever.
pub fn take_over() {
    if SERIAL.com1.is_locked() {
        // SAFETY: the holder was interrupted by the fault being reported,
        // or runs on another CPU that `smp::stop_others` stopped first; it
        // is never resumed (the report exits), so nothing else uses the
        // UART once it is unlocked.
        unsafe { SERIAL.com1.force_unlock() };
    }
}
