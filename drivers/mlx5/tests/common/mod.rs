//! Shared helpers of the hosted tests: a stderr logger (enabled with
//! `MLX5_LOG=debug` etc.) and configurations with short timeouts.
#![allow(dead_code)]

pub mod pkt;

use std::sync::Once;
use std::time::{Duration, Instant};

use mlx5::Config;

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        eprintln!("{} {}: {}", r.level(), r.target(), r.args());
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;
static INIT: Once = Once::new();

/// Install the logger once; the level comes from `MLX5_LOG` (off by default).
pub fn logger() {
    INIT.call_once(|| {
        let level = match std::env::var("MLX5_LOG").as_deref() {
            Ok("trace") => log::LevelFilter::Trace,
            Ok("debug") => log::LevelFilter::Debug,
            Ok("info") => log::LevelFilter::Info,
            Ok("warn") => log::LevelFilter::Warn,
            Ok("error") => log::LevelFilter::Error,
            _ => log::LevelFilter::Off,
        };
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(level);
    });
}

/// Defaults, with timeouts that never fire on a loaded machine but do not
/// make a broken test hang for a minute.
pub fn config() -> Config {
    logger();
    Config {
        cmd_timeout_ms: Some(5_000),
        fw_init_timeout_ms: Some(5_000),
        ..Config::default()
    }
}

/// Short timeouts for tests that inject lost completions or stuck firmware
/// (synchronous model only: there a live command completes inside the
/// doorbell write, so a short timeout can only fire on a lost one).
pub fn short_timeouts() -> Config {
    Config {
        cmd_timeout_ms: Some(300),
        fw_init_timeout_ms: Some(300),
        ..config()
    }
}

/// Call `f` until it returns true, sleeping between tries; false after a
/// generous bound (for conditions reached through another thread).
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// The port type every hosted data path test drives.
pub type Port = mlx5::QueueSet<mlx5::Adapter<mlx5_sim::harness::SimPlatform>>;

/// Attach the driver to `sim` and open its port with `cfg`.
pub fn open_port(sim: &mlx5_sim::harness::SimPlatform, cfg: mlx5::EthConfig) -> Port {
    let mut a = match mlx5::Adapter::attach(sim.clone(), config()) {
        Ok(a) => a,
        Err(f) => panic!("attach failed: {}", f.error),
    };
    port_mtu_for(&mut a, &cfg);
    let r = mlx5::Resources::of(&a).expect("resources");
    match mlx5::QueueSet::open(a, r, cfg) {
        Ok(p) => p,
        Err(f) => panic!("open failed: {}", f.error),
    }
}

/// Raise the port MTU (PMTU) for `cfg`'s MTU, as a user of the driver
/// does before opening jumbo queues: attach leaves the port at the
/// Ethernet default, so the MAC drops longer frames.
pub fn port_mtu_for(a: &mut mlx5::Adapter<mlx5_sim::harness::SimPlatform>, cfg: &mlx5::EthConfig) {
    if cfg.mtu > 1500 {
        a.set_port_mtu(cfg.mtu).expect("port MTU");
    }
}

/// Close the port and detach: no errors, every DMA byte back to
/// `dma_before`, no sanitizer violation.
pub fn close_port(port: Port, sim: &mlx5_sim::harness::SimPlatform, dma_before: (usize, usize)) {
    let (a, rep) = port.close();
    assert_eq!(rep.errors, 0, "{rep:?}");
    let (_, drep) = a.detach();
    assert_eq!(drep.errors, 0, "{drep:?}");
    assert_eq!(sim.dma_in_use(), dma_before, "all DMA memory freed");
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "sanitizer violations: {v:?}");
}
