//! The links' own cost, without the model: frames of 1514 bytes pushed
//! through a unix-socket wire between two `LinkPort`s in this process
//! (writer thread, socket, reader thread, delivery callback), and pcap
//! capture of 64-frame batches (write and flush). Prints
//! `bench: link.unix_1514: <n> frames/s`, `bench: link.unix_1514_gbit: <x> Gbit/s`
//! and `bench: link.pcap_1514: <n> frames/s`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mlx5_sim::link::{Direction, LinkPort, LinkSpec, Pcap, QUEUE_MAX};

const FRAME: usize = 1514;

fn main() {
    let dir = std::env::temp_dir().join(format!("mlx5-sim-bench-link-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let spec: LinkSpec = format!("unix:{}", dir.join("w").display()).parse().unwrap();
    let got = Arc::new(AtomicU64::new(0));
    let counter = got.clone();
    let a = LinkPort::start(spec.open().unwrap(), Box::new(|_| {})).unwrap();
    let b = LinkPort::start(
        spec.open().unwrap(),
        Box::new(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        }),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(a.stats().connected && b.stats().connected) {
        assert!(Instant::now() < deadline, "the wire did not connect");
        std::thread::sleep(Duration::from_millis(5));
    }
    let batch: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; FRAME]).collect();
    let total: u64 = 200_000;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        // Keep the writer's queue from overflowing (no flow control on a wire).
        if sent - got.load(Ordering::Relaxed) < (QUEUE_MAX / 2) as u64 {
            a.send_batch(&batch);
            sent += batch.len() as u64;
        } else {
            std::thread::yield_now();
        }
    }
    while got.load(Ordering::Relaxed) < total {
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "frames lost: {:?}",
            a.stats()
        );
        std::thread::yield_now();
    }
    let secs = start.elapsed().as_secs_f64();
    let fps = total as f64 / secs;
    println!("bench: link.unix_1514: {fps:.0} frames/s");
    println!(
        "bench: link.unix_1514_gbit: {:.2} Gbit/s",
        fps * (FRAME * 8) as f64 / 1e9
    );
    drop((a, b));

    let pcap = Pcap::create(&dir.join("b.pcap")).unwrap();
    let rounds = 2_000;
    let start = Instant::now();
    for _ in 0..rounds {
        pcap.record_all(&batch, Direction::Out);
    }
    let fps = (rounds * batch.len()) as f64 / start.elapsed().as_secs_f64();
    println!("bench: link.pcap_1514: {fps:.0} frames/s");
    drop(pcap);
    std::fs::remove_dir_all(&dir).unwrap();
}
