//! Console output on COM1 with `print!`/`println!`.

use core::fmt::{self, Write};

use spin::Mutex;

use crate::{arch, serial};

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        serial::write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Whole prints: a line one CPU formats piece by piece is not split by
/// another CPU's (COM1's own lock is taken per piece).
static LINE: Mutex<()> = Mutex::new(());

/// Print under [`LINE`] with interrupts masked, so that its holder is
/// never held up by an interrupt while other CPUs spin for it.
pub fn print(args: fmt::Arguments<'_>) {
    arch::without_interrupts(|| {
        let _line = LINE.lock();
        let _ = Serial.write_fmt(args);
    });
}

/// For the panic and exception reports, which end in `arch::exit`: a
/// holder of the console that never runs again (interrupted by the fault,
/// or stopped by `smp::stop_others`) must not block the report.
pub fn take_over() {
    serial::take_over();
    if LINE.is_locked() {
        // SAFETY: as `serial::take_over`: the holder is never resumed, so
        // the report is the only user of the console from now on.
        unsafe { LINE.force_unlock() };
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
