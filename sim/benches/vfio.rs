//! The vfio-user front end without QEMU: the mlx5 driver attaches over the
//! socket through `mlx5_sim::vfio::client::VfioPlatform`, as a guest would
//! through QEMU. Prints (`bench: <name>: <value> <unit>`):
//! - the trapped BAR0 accesses (REGION_READ / REGION_WRITE messages) and
//!   config accesses one attach makes (counts, not times: the same under QEMU,
//!   where each trapped read costs ~30-80 us, sim/README.md);
//! - the wall time of one attach and of one detach over the socket;
//! - the round trip of one trapped 32-bit BAR0 read and write over the
//!   socket (the floor of what QEMU adds on top).

use std::path::Path;
use std::time::{Duration, Instant};

use cxos_drivers::Mmio;
use mlx5::{Adapter, Config};
use mlx5_sim::Personality;
use mlx5_sim::vfio::client::VfioPlatform;
use mlx5_sim::vfio::{Options, serve};

fn ask(control: &Path, request: &str) -> Vec<String> {
    mlx5_sim::vfio::control::ask(control, request, None).expect("control socket")
}

/// The number after `word` in the `stats` line starting with `key`.
fn stat(control: &Path, key: &str, word: &str) -> u64 {
    let lines = ask(control, "stats");
    let line = lines
        .iter()
        .find(|l| l.split_whitespace().next() == Some(key))
        .expect("stats line");
    let mut words = line.split_whitespace();
    words.by_ref().find(|w| *w == word);
    words.next().unwrap().parse().unwrap()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("mlx5-sim-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let opts = Options {
        control: Some(dir.join("control.sock")),
        ..Options::new(dir.join("vfio.sock"), Personality::ConnectX6Dx)
    };
    let control = dir.join("control.sock");
    let socket = opts.socket.clone();
    let server = std::thread::spawn(move || serve(&opts));
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let platform = VfioPlatform::connect(&socket, &dir.join("ram")).unwrap();

    let reads0 = stat(&control, "mmio", "reads");
    let writes0 = stat(&control, "mmio", "writes");
    let config0 = stat(&control, "config", "reads") + stat(&control, "config", "writes");
    let t = Instant::now();
    let a = Adapter::attach(platform, Config::default()).unwrap_or_else(|f| panic!("{}", f.error));
    let attach = t.elapsed();
    let reads = stat(&control, "mmio", "reads") - reads0;
    let writes = stat(&control, "mmio", "writes") - writes0;
    let config = stat(&control, "config", "reads") + stat(&control, "config", "writes") - config0;
    let commands = stat(&control, "commands", "commands");
    println!("bench: vfio.attach_bar0_reads: {reads} accesses");
    println!("bench: vfio.attach_bar0_writes: {writes} accesses");
    println!("bench: vfio.attach_config_accesses: {config} accesses");
    println!("bench: vfio.attach_commands: {commands} commands");
    println!(
        "bench: vfio.attach_time: {:.2} ms",
        attach.as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let (platform, report) = a.detach();
    println!(
        "bench: vfio.detach_time: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(report.errors, 0);

    const N: u32 = 20_000;
    let t = Instant::now();
    for _ in 0..N {
        std::hint::black_box(platform.bar0_read_be32(0));
    }
    let read_ns = t.elapsed().as_nanos() as f64 / N as f64;
    println!("bench: vfio.bar0_read32_roundtrip: {:.1} us", read_ns / 1e3);
    // A write to a UAR page that no EQ uses: decoded and dropped by the model.
    let t = Instant::now();
    for _ in 0..N {
        platform.bar0_write_be32(0x10_0040, 0);
    }
    let write_ns = t.elapsed().as_nanos() as f64 / N as f64;
    println!(
        "bench: vfio.bar0_write32_roundtrip: {:.1} us",
        write_ns / 1e3
    );

    drop(platform);
    server.join().unwrap().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
