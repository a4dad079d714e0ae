//! Runtime MTU change ([`QueueSet::set_mtu`]): the queues, TIR/TIS, RQT
//! and steering stay (so do the interface's addresses, VNICs and rules);
//! only the buffers follow the new frame size.
//!
//! - Transmit: the MTU buffers are reallocated at MTU + 18 (64-byte
//!   multiples) once nothing is in flight; frames still in flight after a
//!   few polls are dropped by cycling the SQ RDY -> RST -> RDY.
//! - Receive, cyclic RQ: each RQ goes RDY -> RST, its WQEs are rewritten
//!   to new buffers of MTU + 18 and it goes back to RDY (same RQN, so the
//!   TIR/RQT need no change). The ring keeps its WQE count: with the
//!   kernel's rings of 2^8 WQEs a 9000-byte MTU takes 256 x 9024 B =
//!   2.3 MB of receive buffers per queue, as much for transmit (README.md
//!   gives the budget for 20 VNICs).
//! - Receive, striding RQ: a WQE's strides take any frame up to the WQE
//!   size (at least 32 KiB, above [`crate::sq::MAX_FRAME`]): nothing to
//!   resize, no extra memory.
//!
//! New memory is allocated before anything is touched: a failed
//! allocation leaves the old MTU in place.

use alloc::vec::Vec;

use cxos_drivers::DmaAlloc;

use super::{L2_OVERHEAD, QueueSet, recovery::drain};
use crate::control::Control;
use crate::error::{BadConfig, Error};
use crate::rq::{ModifyRq, RqKind};
use crate::sq::{self, ModifySq};
use crate::wq::QueueState;

/// Transmit polls waiting for frames in flight before they are dropped.
const DRAIN_POLLS: usize = 64;

impl<C: Control> QueueSet<C> {
    /// Change the IP MTU (68 to [`crate::sq::MAX_FRAME`] - 18) at run
    /// time, with receive buffers for `rx_mtu` (at least `mtu`): a VNIC's
    /// MTU may be below its port's, but every frame the port's PMTU lets
    /// through must fit its receive buffers. See the module
    /// documentation. The port's PMTU is the adapter's business
    /// ([`crate::Adapter::set_port_mtu`]): raise it after this, lower it
    /// before.
    pub fn set_mtu(&mut self, mtu: usize, rx_mtu: usize) -> Result<(), Error> {
        for m in [mtu, rx_mtu] {
            if m < 68 || m + L2_OVERHEAD > sq::MAX_FRAME {
                return Err(BadConfig::Mtu(m).into());
            }
        }
        if rx_mtu < mtu {
            return Err(BadConfig::Mtu(rx_mtu).into());
        }
        let tx_size = (mtu + L2_OVERHEAD).div_ceil(64) * 64;
        let frame = rx_mtu + L2_OVERHEAD;
        let rx_size = frame.div_ceil(64) * 64;
        // Everything allocated first.
        let n_tx = self
            .parts
            .sq
            .as_ref()
            .map_or(0, |_| 1usize << self.cfg.log_sq);
        let new_tx = if n_tx > 0 && tx_size != self.tx_buf_size {
            Some(self.ctl.dma().dma_alloc(n_tx * tx_size)?)
        } else {
            None
        };
        let mut new_rx = Vec::with_capacity(self.parts.rx.len());
        for q in &self.parts.rx {
            match q.rq.as_ref() {
                Some(rq) if rq.kind() == RqKind::Cyclic && rq.buf_size() != rx_size => {
                    if rq.outstanding() != 0 {
                        return Err(BadConfig::Mtu(rx_mtu).into());
                    }
                    new_rx.push(Some(self.ctl.dma().dma_alloc(rq.entries() * rx_size)?));
                }
                Some(rq) if frame > rq.buf_size() => return Err(BadConfig::Mtu(rx_mtu).into()),
                _ => new_rx.push(None),
            }
        }

        if let Some(bufs) = new_tx {
            for _ in 0..DRAIN_POLLS {
                if self.parts.sq.as_ref().is_none_or(|s| s.in_flight() == 0) {
                    break;
                }
                self.poll();
            }
            if let Some(sqn) = self
                .parts
                .sq
                .as_ref()
                .filter(|s| s.in_flight() != 0)
                .map(|s| s.sqn)
            {
                for (from, to) in [
                    (QueueState::Rdy, QueueState::Rst),
                    (QueueState::Rst, QueueState::Rdy),
                ] {
                    if to == QueueState::Rdy {
                        drain(self.parts.tx_cq.as_mut());
                        if let Some(s) = self.parts.sq.as_mut() {
                            s.reset();
                        }
                    }
                    self.ctl.exec(&ModifySq { sqn, from, to })?;
                }
            }
            // The device holds no old buffer now.
            self.parts.tx_bufs = Some(bufs);
            self.tx_buf_size = tx_size;
        }

        let lkey = self.res.lkey;
        for (i, bufs) in new_rx.into_iter().enumerate() {
            let Some(bufs) = bufs else { continue };
            let Some(rqn) = self.parts.rx[i].rq.as_ref().map(|r| r.rqn) else {
                continue;
            };
            self.ctl.exec(&ModifyRq {
                rqn,
                from: QueueState::Rdy,
                to: QueueState::Rst,
            })?;
            let x = &mut self.parts.rx[i];
            drain(Some(&mut x.cq));
            x.uncommitted = 0;
            if let Some(rq) = x.rq.as_mut() {
                // Refused only with frames handed out, checked above.
                let _ = rq.rebuffer(bufs, rx_size, lkey);
            }
            self.ctl.exec(&ModifyRq {
                rqn,
                from: QueueState::Rst,
                to: QueueState::Rdy,
            })?;
            if let Some(rq) = self.parts.rx[i].rq.as_mut() {
                rq.commit();
            }
        }
        self.cfg.mtu = mtu;
        log::info!(target: "mlx5::dp", "mlx5: mtu {mtu} (receive {rx_mtu}): tx buffers {} B", self.tx_buf_size);
        Ok(())
    }
}
