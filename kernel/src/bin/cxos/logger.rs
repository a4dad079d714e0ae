//! The `log` backend: `[    1.234567] LEVEL target: message` on COM1, with
//! per-target levels from the command line, changeable at run time.

use cxos_kernel::logfilter::LogFilter;
use log::{LevelFilter, Log, Metadata, Record};
use spin::Mutex;

use crate::time;

static FILTER: Mutex<LogFilter> = Mutex::new(LogFilter::new(LevelFilter::Info));

struct Logger;

static LOGGER: Logger = Logger;

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= FILTER.lock().level_for(m.target())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        #[cfg(feature = "mlx5")]
        if record.target() == mlx5::fault::LOG_TARGET {
            // Fault records are console lines of their own form.
            crate::println!("{}", record.args());
            return;
        }
        let ns = time::now_ns();
        crate::println!(
            "[{:5}.{:06}] {} {}: {}",
            ns / 1_000_000_000,
            (ns / 1000) % 1_000_000,
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

pub fn init(filter: LogFilter) {
    set_filter(filter);
    // A second call fails harmlessly; there is only one logger.
    let _ = log::set_logger(&LOGGER);
}

pub fn set_filter(filter: LogFilter) {
    log::set_max_level(filter.max_level());
    *FILTER.lock() = filter;
}

/// Apply one `target=level` or `level` directive (shell `log`).
pub fn apply(directive: &str) -> Result<LogFilter, cxos_kernel::logfilter::FilterError> {
    let mut f = FILTER.lock().clone();
    f.apply(directive)?;
    set_filter(f.clone());
    Ok(f)
}
