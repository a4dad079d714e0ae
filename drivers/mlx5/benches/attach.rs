//! Attach time and command round trip against the in-process model.
//!
//! `cargo bench -p mlx5 --bench attach` prints
//! `bench: mlx5.attach: <us> us` (median of 30 attaches, synchronous model)
//! and `bench: mlx5.cmd_roundtrip: <ns> ns` (mean of 20000
//! QUERY_SPECIAL_CONTEXTS, event-driven completion), plus the threaded
//! model's figures. `CXOS_ATTACH_BENCH=sync` runs only the synchronous
//! attaches (for callgrind: instructions per attach, see BENCHMARKS.md).

use std::time::Instant;

use mlx5::pd::QuerySpecialContexts;
use mlx5::{Adapter, Config};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

fn attach_us(mode: Mode) -> f64 {
    let sim = SimPlatform::new(Personality::ConnectX6Dx, mode);
    let mut p = sim.clone();
    let mut times = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let a = Adapter::attach(p, Config::default())
            .map_err(|f| f.error)
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
        p = a.detach().0;
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn roundtrip_ns(mode: Mode) -> f64 {
    let sim = SimPlatform::new(Personality::ConnectX6Dx, mode);
    let mut a = Adapter::attach(sim, Config::default())
        .map_err(|f| f.error)
        .unwrap();
    for _ in 0..1000 {
        a.exec(&QuerySpecialContexts).unwrap();
    }
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        a.exec(&QuerySpecialContexts).unwrap();
    }
    let ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    a.detach();
    ns
}

fn main() {
    if std::env::var("CXOS_ATTACH_BENCH").as_deref() == Ok("sync") {
        println!("bench: mlx5.attach: {:.0} us", attach_us(Mode::Synchronous));
        return;
    }
    println!("bench: mlx5.attach: {:.0} us", attach_us(Mode::Synchronous));
    println!(
        "bench: mlx5.cmd_roundtrip: {:.0} ns",
        roundtrip_ns(Mode::Synchronous)
    );
    println!(
        "bench: mlx5.attach_threaded: {:.0} us",
        attach_us(Mode::Threaded)
    );
    println!(
        "bench: mlx5.cmd_roundtrip_threaded: {:.0} ns",
        roundtrip_ns(Mode::Threaded)
    );
}
