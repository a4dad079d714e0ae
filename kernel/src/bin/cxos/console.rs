//! Console output on COM1 with `print!`/`println!`.

use core::fmt::{self, Write};

use crate::{arch, serial};

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        serial::write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Print with interrupts masked so an interrupt never splits a line (there
/// is one CPU and interrupt handlers never print).
pub fn print(args: fmt::Arguments<'_>) {
    arch::without_interrupts(|| {
        let _ = Serial.write_fmt(args);
    });
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
