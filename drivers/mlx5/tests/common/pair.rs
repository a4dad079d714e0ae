//! Two models wired back to back (a ConnectX-4 Lx and a ConnectX-5, the
//! synchronous mode) with a driver port open on each: what the fault tests
//! send traffic over.

use cxos_drivers::{NetDevice, TxError};
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

use super::{Port, close_port, open_port};

/// The local experimental ethertype (IEEE 802 local use) of the test
/// frames.
pub const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

pub struct Pair {
    pub sa: SimPlatform,
    pub sb: SimPlatform,
    pub a: Port,
    pub b: Port,
    /// Each model's DMA use before attach.
    pub before: ((usize, usize), (usize, usize)),
}

impl Pair {
    pub fn open(interrupts: bool) -> Self {
        Self::open_with(interrupts, open_port)
    }

    /// A pair whose port a is opened by `open_a`.
    pub fn open_with(
        interrupts: bool,
        open_a: impl FnOnce(&SimPlatform, EthConfig) -> Port,
    ) -> Self {
        Self::open_parts(
            (Personality::ConnectX4Lx, Personality::ConnectX5),
            interrupts,
            open_a,
        )
    }

    /// [`Pair::open_with`] on models of `parts` (a's, b's).
    pub fn open_parts(
        parts: (Personality, Personality),
        interrupts: bool,
        open_a: impl FnOnce(&SimPlatform, EthConfig) -> Port,
    ) -> Self {
        let cfg = EthConfig {
            interrupts,
            ..EthConfig::default()
        };
        Self::open_config(parts, cfg, open_a)
    }

    /// Models of `parts` (a's, b's), both ports opened with `cfg`, a's by
    /// `open_a`.
    pub fn open_config(
        parts: (Personality, Personality),
        cfg: EthConfig,
        open_a: impl FnOnce(&SimPlatform, EthConfig) -> Port,
    ) -> Self {
        super::logger();
        let (sa, sb) = SimPlatform::pair(parts.0, parts.1, Mode::Synchronous);
        let before = (sa.dma_in_use(), sb.dma_in_use());
        let a = open_a(&sa, cfg);
        let b = open_port(&sb, cfg);
        Self {
            sa,
            sb,
            a,
            b,
            before,
        }
    }

    /// Queues one 64-byte frame a -> b (not flushed).
    pub fn send(&mut self) -> Result<(), TxError> {
        let (dst, src) = (self.b.mac(), self.a.mac());
        self.a.transmit(64, |f| {
            f[0..6].copy_from_slice(&dst);
            f[6..12].copy_from_slice(&src);
            f[12..14].copy_from_slice(&ETHERTYPE);
        })
    }

    /// Closes both ports: see [`close_port`].
    pub fn close(self) {
        close_port(self.a, &self.sa, self.before.0);
        close_port(self.b, &self.sb, self.before.1);
    }
}
