//! Transceiver reads against the in-process model: a whole module EEPROM
//! (page 00h and, where the module has them, A2h or page 03h) in 48-byte
//! MCIA reads, decoded.
//!
//! `cargo bench -p mlx5 --bench ports` prints, per module kind,
//! `bench: mlx5.eeprom_read.<kind>: <us> us` (median of 200 reads and
//! decodes, synchronous model) and `bench: mlx5.eeprom_read.<kind>.mcia:
//! <n> commands`, plus the threaded model's times.

use std::time::Instant;

use mlx5::{Adapter, Config};
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

fn main() {
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
