//! Run-time switches of the fast path's techniques, one queue set at a
//! time (what the kernel's `ethtool -C` and `ethtool --set-priv-flags`
//! change; the same [`EthConfig`] fields set them at open):
//!
//! - the selective completion interval (`cq_every`): the SQ's countdown,
//!   nothing on the device;
//! - multi-packet send (`empw`: enhanced, or legacy MPW on ConnectX-4 Lx):
//!   how the next burst is written,
//!   nothing on the device (a session never outlives its burst);
//! - BlueFlame doorbells (`blueflame`): how the next doorbell is written;
//! - receive CQ event moderation (`cq_moderation`): MODIFY_CQ with
//!   `cq_period` and `cq_max_count` on every receive CQ (PRM "MODIFY_CQ";
//!   0 and 0 is an event per armed CQE again); transmit CQ event
//!   moderation (`tx_cq_moderation`) the same way on the transmit CQ;
//! - CQE compression (`cqe_compression`): `cqe_comp_en` is fixed when a CQ
//!   is created (MODIFY_CQ has no field select for it), and an RQ names
//!   its CQ for life, so every receive queue is recreated (a new CQ and RQ
//!   put in the old one's place in the RQTs, as an overrun's recovery does).
//!
//! A technique switched on where the part lacks its capability is refused
//! with [`Unsupported::Capability`] and nothing changes.

use super::QueueSet;
use crate::control::Control;
use crate::cq::{self, ModifyCq};
use crate::error::{Error, Unsupported};

/// The techniques in force on a queue set and which the part has
/// (`ethtool -c`, `ethtool --show-priv-flags`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tuning {
    /// A transmit completion every this many WQEs (and at every doorbell).
    pub cq_every: u16,
    /// Receive CQ moderation `(cq_period µs, cq_max_count)` in force.
    pub cq_moderation: Option<(u16, u16)>,
    /// Transmit CQ moderation, the same way.
    pub tx_cq_moderation: Option<(u16, u16)>,
    /// Receive CQs write compressed sessions.
    pub cqe_compression: bool,
    /// Bursts go out as multi-packet sessions (eMPW, or legacy MPW where
    /// `legacy_mpw`).
    pub empw: bool,
    /// The part's sessions are legacy MPW (`multi_pkt_send_wqe` without
    /// the enhanced form: ConnectX-4 Lx).
    pub legacy_mpw: bool,
    /// Small batches ring with BlueFlame writes.
    pub blueflame: bool,
    /// The part's `cq_moderation`, `cqe_compression`,
    /// `enhanced_multi_pkt_send_wqe`.
    pub can_moderate: bool,
    pub can_compress: bool,
    pub can_empw: bool,
    /// The part's `bf`.
    pub can_blueflame: bool,
}

impl<C: Control> QueueSet<C> {
    /// The techniques in force.
    pub fn tuning(&self) -> Tuning {
        let caps = &self.res.caps;
        Tuning {
            cq_every: self
                .parts
                .sq
                .as_ref()
                .map_or(self.cfg.cq_every, |s| s.cq_every()),
            cq_moderation: self.cfg.cq_moderation.filter(|_| caps.cq_moderation),
            tx_cq_moderation: self.cfg.tx_cq_moderation.filter(|_| caps.cq_moderation),
            cqe_compression: self.cfg.cqe_compression && caps.cqe_compression,
            empw: self.parts.sq.as_ref().is_some_and(|s| s.empw().is_some()),
            legacy_mpw: self.sq_legacy_mpw(),
            blueflame: self.parts.sq.as_ref().is_some_and(|s| s.blueflame()),
            can_moderate: caps.cq_moderation,
            can_compress: caps.cqe_compression,
            can_empw: caps.empw || caps.mpw,
            can_blueflame: caps.bf_size != 0,
        }
    }

    /// A transmit completion every `n` WQEs from the next one on.
    pub fn set_cq_every(&mut self, n: u16) {
        if let Some(sq) = self.parts.sq.as_mut() {
            sq.set_cq_every(n);
            self.cfg.cq_every = sq.cq_every();
        } else {
            self.cfg.cq_every = n.max(1);
        }
    }

    /// Multi-packet send (enhanced, or legacy MPW on ConnectX-4 Lx) on or
    /// off from the next burst on (the inline limit stays as configured; 0
    /// when it was off).
    pub fn set_empw(&mut self, on: bool) -> Result<(), Error> {
        if on && !self.res.caps.empw && !self.res.caps.mpw {
            return Err(Unsupported::Capability("enhanced_multi_pkt_send_wqe").into());
        }
        self.cfg.empw = match (on, self.cfg.empw) {
            (false, _) => None,
            (true, Some(inline)) => Some(inline),
            (true, None) => Some(0),
        };
        let empw = self.sq_empw();
        if let Some(sq) = self.parts.sq.as_mut() {
            sq.set_empw(empw);
        }
        Ok(())
    }

    /// BlueFlame doorbells for small batches on or off from the next
    /// doorbell on.
    pub fn set_blueflame(&mut self, on: bool) -> Result<(), Error> {
        if on && self.res.caps.bf_size == 0 {
            return Err(Unsupported::Capability("bf").into());
        }
        self.cfg.blueflame = on;
        let bf = self.sq_bf();
        if let Some(sq) = self.parts.sq.as_mut() {
            sq.set_blueflame(bf);
        }
        Ok(())
    }

    /// Receive CQ event moderation `(period µs, max count)` on every
    /// receive CQ (`None`: an event per armed CQE).
    pub fn set_cq_moderation(&mut self, m: Option<(u16, u16)>) -> Result<(), Error> {
        let m = m.filter(|&(p, n)| p != 0 || n != 0);
        if m.is_some() && !self.res.caps.cq_moderation {
            return Err(Unsupported::Capability("cq_moderation").into());
        }
        let (period_us, max_count) = m.unwrap_or((0, 0));
        for i in 0..self.parts.rx.len() {
            let cqn = self.parts.rx[i].cq.cqn;
            self.ctl.exec(&ModifyCq::moderation(
                cqn,
                period_us.min(cq::MAX_CQ_PERIOD),
                max_count,
            ))?;
        }
        self.cfg.cq_moderation = m;
        Ok(())
    }

    /// Transmit CQ event moderation `(period µs, max count)` on the
    /// transmit CQ (`None`: an event per armed CQE).
    pub fn set_tx_cq_moderation(&mut self, m: Option<(u16, u16)>) -> Result<(), Error> {
        let m = m.filter(|&(p, n)| p != 0 || n != 0);
        if m.is_some() && !self.res.caps.cq_moderation {
            return Err(Unsupported::Capability("cq_moderation").into());
        }
        let (period_us, max_count) = m.unwrap_or((0, 0));
        if let Some(cqn) = self.parts.tx_cq.as_ref().map(|c| c.cqn) {
            self.ctl.exec(&ModifyCq::moderation(
                cqn,
                period_us.min(cq::MAX_CQ_PERIOD),
                max_count,
            ))?;
        }
        self.cfg.tx_cq_moderation = m;
        Ok(())
    }

    /// CQE compression on the receive CQs on or off: every receive queue
    /// is recreated with the new setting (see the module documentation).
    /// An error leaves the queues recreated so far with the new setting
    /// and the rest with the old one; the configuration says the new one.
    pub fn set_cqe_compression(&mut self, on: bool) -> Result<(), Error> {
        if on && !self.res.caps.cqe_compression {
            return Err(Unsupported::Capability("cqe_compression").into());
        }
        if self.cfg.cqe_compression == on {
            return Ok(());
        }
        self.cfg.cqe_compression = on;
        for q in 0..self.parts.rx.len() {
            self.recreate_rx_cq(q)?;
        }
        log::info!(target: "mlx5::dp", "mlx5: cqe compression {}", if on { "on" } else { "off" });
        Ok(())
    }
}
