//! The model's transmit path as QEMU drives it, without QEMU: the mlx5
//! driver over the vfio-user client posts bursts of 32 frames of 60 bytes
//! (what `cargo xtask bench --pktgen` sends) to an in-process server
//! whose cable is `--wire sink` (the port's frames counted and released,
//! as a port whose far end takes everything). Prints
//! `bench: sim.vfio_tx_pps: <n> frames/s` (frames the model put on its
//! port per second of the run) and `bench: sim.vfio_tx_frames: <n>
//! frames`.
//!
//! Run: `cargo bench -p mlx5-sim --features vfio --bench vfio_tx`. The
//! model's instructions per frame: run the binary under `valgrind
//! --tool=callgrind --toggle-collect='mlx5_sim::datapath::run*'` (the
//! transmit engine) or `--toggle-collect='*carry_frames*'` (the hand-over
//! to the wire) with `SIM_TX_FRAMES=64000` and divide by the frames.

#[path = "../tests/wires/mod.rs"]
mod wires;

use std::path::Path;
use std::time::{Duration, Instant};

use cxos_drivers::{Msix, TxMeta};
use mlx5_sim::Personality;
use mlx5_sim::link::LinkSpec;
use mlx5_sim::vfio::client::VfioPlatform;
use mlx5_sim::vfio::{Options, serve};

const BATCH: usize = 32;
const LEN: usize = 60;

fn ask(control: &Path, request: &str) -> Vec<String> {
    mlx5_sim::vfio::control::ask(control, request, None).expect("control socket")
}

/// The model's `port tx frames <n>`.
fn port_tx(control: &Path) -> u64 {
    let lines = ask(control, "wire");
    lines
        .iter()
        .find_map(|l| l.strip_prefix("port tx frames "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no port tx in {lines:?}"))
}

fn drain(port: &wires::Port<VfioPlatform>) {
    let p = port.control().platform();
    for v in 0..p.msix_table_size() {
        p.msix_take_pending(v);
    }
}

fn main() {
    let total: u64 = std::env::var("SIM_TX_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let wire: LinkSpec = std::env::var("SIM_TX_WIRE")
        .unwrap_or_else(|_| "sink".into())
        .parse()
        .expect("SIM_TX_WIRE");
    let dir = std::env::temp_dir().join(format!("mlx5-sim-bench-tx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let control = dir.join("control.sock");
    let opts = Options {
        control: Some(control.clone()),
        wire,
        ..Options::new(dir.join("vfio.sock"), Personality::ConnectX5)
    };
    let socket = opts.socket.clone();
    let server = std::thread::spawn(move || serve(&opts));
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let platform = VfioPlatform::connect(&socket, &dir.join("ram")).unwrap();
    let mut port = wires::open(platform);
    let f = wires::frame([0x02, 0, 0, 0, 0, 0x99], [0x02, 0, 0, 0, 0, 1], 1, LEN);
    let before = port_tx(&control);
    let start = Instant::now();
    let mut posted = 0u64;
    while posted < total {
        let n = (total - posted).min(BATCH as u64) as usize;
        let sent = port
            .transmit_burst(n, TxMeta::default(), |_, buf| {
                buf[..LEN].copy_from_slice(&f);
                LEN
            })
            .expect("transmit_burst");
        posted += sent as u64;
        // The test client's interrupt "eventfds" are socket pairs only the
        // command vector is read from: take the data path's signals, or the
        // model blocks writing them once the socket buffer is full.
        if posted % (16 * BATCH as u64) < BATCH as u64 {
            drain(&port);
        }
        if sent < n {
            port.poll();
            std::thread::yield_now();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while port_tx(&control) - before < total {
        port.poll();
        drain(&port);
        assert!(Instant::now() < deadline, "the model did not send them all");
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = start.elapsed().as_secs_f64();
    let sent = port_tx(&control) - before;
    println!("bench: sim.vfio_tx_frames: {sent} frames");
    println!("bench: sim.vfio_tx_pps: {:.0} frames/s", sent as f64 / secs);
    wires::close(port);
    server.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
