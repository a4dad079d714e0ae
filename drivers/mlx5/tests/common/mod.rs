//! Shared helpers of the hosted tests: a stderr logger (enabled with
//! `MLX5_LOG=debug` etc.) and configurations with short timeouts.
#![allow(dead_code)]

pub mod burst;
pub mod pair;
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
    detach_clean(a, sim, dma_before);
}

/// Detach: no errors, every DMA byte back to `dma_before`, no sanitizer
/// violation.
fn detach_clean(
    a: mlx5::Adapter<mlx5_sim::harness::SimPlatform>,
    sim: &mlx5_sim::harness::SimPlatform,
    dma_before: (usize, usize),
) {
    let (_, drep) = a.detach();
    assert_eq!(drep.errors, 0, "{drep:?}");
    assert_eq!(sim.dma_in_use(), dma_before, "all DMA memory freed");
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "sanitizer violations: {v:?}");
}

/// A test frame of `b.len()` bytes to `dst`: a local source MAC, the
/// local experimental ethertype, `seq` at byte 14 and a pattern of it
/// after, so that any reordering or corruption shows.
pub fn fill(b: &mut [u8], dst: [u8; 6], seq: u32) {
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
    b[12..14].copy_from_slice(&[0x88, 0xb5]);
    b[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, x) in b[18..].iter_mut().enumerate() {
        *x = (i as u32).wrapping_mul(13) as u8 ^ seq as u8;
    }
}

/// Send a frame of every length in `lens` from `a` to `b`, at most
/// `window` in flight so nothing is dropped; check each frame `b`
/// receives: in order, its length (padded to 60), its bytes.
pub fn exchange(window: usize, a: &mut Port, b: &mut Port, lens: &[usize]) {
    use cxos_drivers::NetDevice;
    let dst = b.mac();
    let (mut sent, mut got) = (0usize, 0usize);
    let mut idle = 0u32;
    while got < lens.len() {
        let mut progress = false;
        while sent < lens.len() && sent - got < window {
            let seq = sent as u32;
            if a.transmit(lens[sent], |f| fill(f, dst, seq)).is_err() {
                break;
            }
            sent += 1;
            progress = true;
        }
        a.flush();
        a.poll();
        b.poll();
        while let Some(()) = b.receive(|f, _| {
            let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
            assert_eq!(seq as usize, got, "in order");
            assert_eq!(f.len(), lens[got].max(60), "frame {got} length");
            let mut want = vec![0u8; lens[got]];
            fill(&mut want, dst, seq);
            assert_eq!(&f[..want.len()], &want[..], "frame {got} bytes");
        }) {
            got += 1;
            progress = true;
        }
        b.flush();
        if progress {
            idle = 0;
        } else {
            idle += 1;
            assert!(
                idle < 200_000,
                "stuck at {got}/{}: {:?}",
                lens.len(),
                b.rings()
            );
            std::thread::yield_now();
        }
    }
}

/// An attached adapter with its port's steering open (`Nic`): small rings
/// (32 entries), no LSO buffers; what the VNIC tests build on.
pub fn nic(
    sim: &mlx5_sim::harness::SimPlatform,
    interrupts: bool,
) -> mlx5::vnic::Nic<mlx5::Adapter<mlx5_sim::harness::SimPlatform>> {
    let a = mlx5::Adapter::attach(sim.clone(), config())
        .unwrap_or_else(|f| panic!("attach failed: {}", f.error));
    let r = mlx5::Resources::of(&a).expect("resources");
    let cfg = mlx5::vnic::NicConfig {
        eth: mlx5::EthConfig {
            log_sq: 5,
            log_rq: 5,
            lso_bufs: 0,
            interrupts,
            ..mlx5::EthConfig::default()
        },
        ..mlx5::vnic::NicConfig::default()
    };
    mlx5::vnic::Nic::new(a, r, cfg).unwrap_or_else(|f| panic!("Nic::new failed: {}", f.error))
}

/// Close `nic` (no VNIC left) and detach: no errors, every DMA byte back
/// to `dma_before`, no sanitizer violation.
pub fn close_nic(
    nic: mlx5::vnic::Nic<mlx5::Adapter<mlx5_sim::harness::SimPlatform>>,
    sim: &mlx5_sim::harness::SimPlatform,
    dma_before: (usize, usize),
) {
    let (a, rep) = nic.close().expect("no VNIC left");
    assert_eq!(rep.errors, 0, "{rep:?}");
    detach_clean(a, sim, dma_before);
}
