//! One completion EQ per CPU (issue 21): the platform asks for as many
//! completion EQs as it has CPUs (`Config::comp_eqs`); attach creates
//! that many, each on its own MSI-X vector after EQ0's, unless the
//! function's MSI-X table or its EQ limit (HCA caps `log_max_eq`, EQ0
//! included) is smaller. A VNIC created on each queue set completes on
//! that set's EQ, whose vector fires; sets beyond the EQ count wrap
//! (set mod EQs), as the kernel's CPUs do when they share.

mod common;

use cxos_drivers::{Msix, NetDevice, PlatformError};
use mlx5::Config;
use mlx5::vnic::{Nic, NicConfig, VnicSpec};
use mlx5_sim::Personality;
use mlx5_sim::cmd::caps::hca_cap;
use mlx5_sim::harness::{Mode, SimPlatform};

/// Eight CPUs' worth.
const WANTED: u16 = 8;

fn config(comp_eqs: u16) -> Config {
    Config {
        comp_eqs,
        ..common::config()
    }
}

fn nic_config() -> NicConfig {
    NicConfig {
        eth: mlx5::EthConfig {
            log_sq: 5,
            log_rq: 5,
            lso_bufs: 0,
            interrupts: true,
            ..mlx5::EthConfig::default()
        },
        ..NicConfig::default()
    }
}

/// A broadcast-free unicast frame to `dst`.
fn frame(dst: [u8; 6], seq: u8) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x21]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14] = seq;
    f
}

/// Every part with eight asked: eight completion EQs on vectors 1..=8;
/// a VNIC on each set has its CQs on that set's EQ, a frame to it fires
/// that set's vector (and no other completion vector); set 8 + i wraps
/// to EQ i.
#[test]
fn eight_completion_eqs_on_every_part_a_vnic_on_each() {
    for pers in Personality::ALL {
        let sim = SimPlatform::new(pers, Mode::Synchronous);
        let before = sim.dma_in_use();
        let a = mlx5::Adapter::attach(sim.clone(), config(WANTED))
            .unwrap_or_else(|f| panic!("{}: attach failed: {}", pers.name(), f.error));
        let comp = a.comp_eqs();
        let vectors: Vec<u16> = comp.iter().map(|(_, v)| *v).collect();
        assert_eq!(vectors, (1..=WANTED).collect::<Vec<_>>(), "{}", pers.name());
        assert_eq!(a.vectors(), WANTED + 1, "{}", pers.name());
        let r = mlx5::Resources::of(&a).expect("resources");
        let nic = Nic::new(a, r, nic_config())
            .unwrap_or_else(|f| panic!("{}: Nic::new failed: {}", pers.name(), f.error));
        assert_eq!(nic.queue_sets(), usize::from(WANTED), "{}", pers.name());
        for set in 0..2 * usize::from(WANTED) {
            let eq = set % usize::from(WANTED);
            let mut v = nic.create_on(VnicSpec::default(), set).unwrap();
            assert_eq!(
                v.queue_set().eq_indexes(),
                [eq],
                "{} set {set}",
                pers.name()
            );
            v.poll();
            let counts: Vec<u64> = vectors.iter().map(|&x| sim.msix_count(x)).collect();
            sim.inject_rx(&frame(v.mac().0, set as u8));
            assert!(
                common::eventually(|| {
                    v.poll();
                    v.receive(|b, _| b[14]).is_some()
                }),
                "{} set {set}: frame not received",
                pers.name()
            );
            for (i, (&x, old)) in vectors.iter().zip(&counts).enumerate() {
                let now = sim.msix_count(x);
                if i == eq {
                    assert!(now > *old, "{} set {set}: vector {x} silent", pers.name());
                } else {
                    assert_eq!(now, *old, "{} set {set}: vector {x} fired", pers.name());
                }
            }
            v.destroy();
        }
        common::close_nic(nic, &sim, before);
    }
}

/// The EQ limit from the HCA caps caps the count: `log_max_eq` 2 gives
/// four EQs, EQ0 and three completion EQs, however many are asked.
#[test]
fn the_eq_limit_caps_completion_eqs() {
    for pers in Personality::ALL {
        let sim = SimPlatform::new(pers, Mode::Synchronous);
        let before = sim.dma_in_use();
        sim.with_model(|f| f.caps.set_current(0, hca_cap::LOG_MAX_EQ, 2));
        let a = mlx5::Adapter::attach(sim.clone(), config(WANTED))
            .unwrap_or_else(|f| panic!("{}: attach failed: {}", pers.name(), f.error));
        assert_eq!(a.caps().general.max_eqs(), 4, "{}", pers.name());
        let vectors: Vec<u16> = a.comp_eqs().iter().map(|(_, v)| *v).collect();
        assert_eq!(vectors, [1, 2, 3], "{}", pers.name());
        assert_eq!(a.vectors(), 4, "{}: no vector without an EQ", pers.name());
        let (_, rep) = a.detach();
        assert_eq!(rep.errors, 0, "{}: {rep:?}", pers.name());
        assert_eq!(sim.dma_in_use(), before, "{}", pers.name());
    }
}

/// A function whose MSI-X table has fewer entries than CPUs (here 4:
/// EQ0's and three): three completion EQs, one per further vector.
#[derive(Debug, Clone)]
struct FewVectors {
    sim: SimPlatform,
    table: u16,
}

impl Msix for FewVectors {
    fn msix_table_size(&self) -> u16 {
        self.table
    }
    fn msix_enable(&self, min: u16, wanted: u16) -> Result<u16, PlatformError> {
        if wanted > self.table {
            return Err(PlatformError::NoVectors {
                requested: wanted,
                available: self.table,
            });
        }
        self.sim.msix_enable(min, wanted)
    }
    fn msix_disable(&self) {
        self.sim.msix_disable()
    }
    fn msix_take_pending(&self, vector: u16) -> bool {
        self.sim.msix_take_pending(vector)
    }
    fn msix_count(&self, vector: u16) -> u64 {
        Msix::msix_count(&self.sim, vector)
    }
    fn msix_set_masked(&self, vector: u16, masked: bool) {
        self.sim.msix_set_masked(vector, masked)
    }
}

impl cxos_drivers::Platform for FewVectors {
    type Dma = SimPlatform;
    type Mmio = SimPlatform;
    type Config = SimPlatform;
    type Msix = FewVectors;
    type Clock = SimPlatform;
    fn dma(&self) -> &SimPlatform {
        &self.sim
    }
    fn mmio(&self) -> &SimPlatform {
        &self.sim
    }
    fn config(&self) -> &SimPlatform {
        &self.sim
    }
    fn msix(&self) -> &Self {
        self
    }
    fn clock(&self) -> &SimPlatform {
        &self.sim
    }
}

#[test]
fn the_msix_table_caps_completion_eqs() {
    for pers in Personality::ALL {
        let sim = SimPlatform::new(pers, Mode::Synchronous);
        let before = sim.dma_in_use();
        let p = FewVectors {
            sim: sim.clone(),
            table: 4,
        };
        let a = mlx5::Adapter::attach(p, config(WANTED))
            .unwrap_or_else(|f| panic!("{}: attach failed: {}", pers.name(), f.error));
        let vectors: Vec<u16> = a.comp_eqs().iter().map(|(_, v)| *v).collect();
        assert_eq!(vectors, [1, 2, 3], "{}", pers.name());
        assert_eq!(a.vectors(), 4, "{}", pers.name());
        let (_, rep) = a.detach();
        assert_eq!(rep.errors, 0, "{}: {rep:?}", pers.name());
        assert_eq!(sim.pages_held(), 0, "{}", pers.name());
        assert_eq!(sim.dma_in_use(), before, "{}", pers.name());
    }
}
