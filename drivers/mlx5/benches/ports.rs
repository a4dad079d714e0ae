//! Transceiver reads against the in-process model: a whole module EEPROM
//! (page 00h and, where the module has them, A2h or page 03h) in 48-byte
//! MCIA reads, decoded.
//!
//! `cargo bench -p mlx5 --bench ports` prints, per module kind,
//! `bench: mlx5.eeprom_read.<kind>: <us> us` (median of 200 reads and
//! decodes, synchronous model) and `bench: mlx5.eeprom_read.<kind>.mcia:
//! <n> commands`, plus the threaded model's times.
//!
//! Runtime MTU change ([`mlx5::QueueSet::set_mtu`] and PMTU), 1500 ->
//! 9000 and back, on a cyclic-RQ part (cx4lx) and a striding-RQ part
//! (cx6dx) with the default rings (2^9 WQEs): `bench:
//! mlx5.mtu_change.<part>: <us> us` (median of 50 changes each way) and
//! `bench: mlx5.mtu_change.<part>.commands: <n> commands` (one change).

use std::time::Instant;

use mlx5::{Adapter, Config, EthConfig, QueueSet, Resources};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::module::ModuleKind;

fn read_us(mode: Mode, kind: ModuleKind) -> (f64, u32) {
    let sim = SimPlatform::new(Personality::ConnectX5, mode);
    sim.with_model(|d| {
        d.remove_module();
        d.insert_module(kind)
    })
    .unwrap();
    let mut a = Adapter::attach(sim, Config::default())
        .map_err(|f| f.error)
        .unwrap();
    let mut times = Vec::new();
    let mut commands = 0;
    for _ in 0..200 {
        let t = Instant::now();
        let img = a.read_module().unwrap();
        img.decode().unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
        commands = img.commands;
    }
    a.detach();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], commands)
}

fn mtu_change_us(p: Personality) -> (f64, u64) {
    let sim = SimPlatform::new(p, Mode::Synchronous);
    let a = Adapter::attach(sim, Config::default())
        .map_err(|f| f.error)
        .unwrap();
    let r = Resources::of(&a).unwrap();
    let mut q = QueueSet::open(a, r, EthConfig::default())
        .map_err(|f| f.error)
        .unwrap();
    q.control_mut().set_port_mtu(1500).unwrap();
    let mut times = Vec::new();
    let mut commands = 0;
    for i in 0..100 {
        let (mtu, up) = if i % 2 == 0 {
            (9000, true)
        } else {
            (1500, false)
        };
        let before = q.control().stats().commands;
        let t = Instant::now();
        // PMTU goes up after the buffers grow, down before they shrink.
        if !up {
            q.control_mut().set_port_mtu(mtu).unwrap();
        }
        q.set_mtu(mtu, mtu).unwrap();
        if up {
            q.control_mut().set_port_mtu(mtu).unwrap();
        }
        times.push(t.elapsed().as_secs_f64() * 1e6);
        commands = q.control().stats().commands - before;
    }
    let (a, _) = q.close();
    a.detach();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], commands)
}

fn main() {
    for (p, name) in [
        (Personality::ConnectX4Lx, "cx4lx"),
        (Personality::ConnectX6Dx, "cx6dx"),
    ] {
        let (us, n) = mtu_change_us(p);
        println!("bench: mlx5.mtu_change.{name}: {us:.1} us");
        println!("bench: mlx5.mtu_change.{name}.commands: {n} commands");
    }
    for kind in [ModuleKind::Dac100g, ModuleKind::Sr4100g, ModuleKind::Sr10g] {
        let (us, n) = read_us(Mode::Synchronous, kind);
        println!("bench: mlx5.eeprom_read.{}: {us:.1} us", kind.name());
        println!("bench: mlx5.eeprom_read.{}.mcia: {n} commands", kind.name());
        let (us, _) = read_us(Mode::Threaded, kind);
        println!(
            "bench: mlx5.eeprom_read_threaded.{}: {us:.1} us",
            kind.name()
        );
    }
}
