//! Transmit bursts: [`QueueSet::transmit_burst`] posts many frames and
//! rings one doorbell (the receive side is `rx_burst.rs`).

use cxos_drivers::{TxError, TxMeta};

use super::{Parts, QueueSet};
use crate::control::Control;
use crate::cqe;
use crate::frame::VLAN_HLEN;
use crate::sq::TxOpts;

impl<C: Control> QueueSet<C> {
    /// Post up to `n` frames and ring one doorbell. `write(i, buffer)`
    /// writes frame `i` into a whole transmit buffer and returns its
    /// length; 0 (or a length past the MTU frame) ends the burst there.
    /// Every frame gets `meta`'s offloads (no LSO: [`TxError::Unsupported`]);
    /// give `meta.geometry` with a checksum request and the headers are
    /// not looked at. Returns the frames posted; fewer than `n` when the
    /// ring or the buffers ran out (reap with [`QueueSet::poll`]).
    #[inline]
    pub fn transmit_burst<F>(&mut self, n: usize, meta: TxMeta, write: F) -> Result<usize, TxError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        if meta.lso.is_some() {
            return Err(TxError::Unsupported);
        }
        self.check_offloads(&meta)?;
        self.reap_tx();
        // In error, its recovery pending: nothing is posted to it.
        if self.tx_halted {
            return Ok(self.halted_burst());
        }
        let room = if meta.vlan.is_some() { VLAN_HLEN } else { 0 };
        let max = self.max_frame() - room;
        let size = self.tx_buf_size;
        let Parts { sq, tx_bufs, .. } = &mut self.parts;
        let (Some(sq), Some(bufs)) = (sq.as_mut(), tx_bufs.as_ref()) else {
            return Err(TxError::Down);
        };
        let opts = TxOpts {
            csum: meta.csum,
            vlan: meta.vlan,
            geometry: meta.geometry.map(Into::into),
            ..TxOpts::default()
        };
        let b = sq.post_burst(bufs, size, max, n, opts, write);
        sq.ring_doorbell();
        if b.full {
            self.stats.tx_busy += 1;
        }
        Ok(b.sent)
    }

    /// A burst refused while the SQ waits for its recovery: out of line,
    /// so the common path's code is laid out as if it did not exist.
    #[cold]
    #[inline(never)]
    fn halted_burst(&mut self) -> usize {
        self.stats.tx_busy += 1;
        0
    }

    /// Reap the transmit completions a burst finds: requester CQEs of
    /// the SQ, each freeing every WQE up to its `wqe_counter`, read as
    /// their owner word (with the QPN) only. Anything else, and the
    /// interrupt mode's EQ, is [`QueueSet::poll`]'s.
    #[inline(always)]
    fn reap_tx(&mut self) {
        if self.cfg.interrupts {
            self.poll();
            return;
        }
        let Parts { sq, tx_cq, .. } = &mut self.parts;
        let (Some(sq), Some(cq)) = (sq.as_mut(), tx_cq.as_mut()) else {
            return;
        };
        let sqn = sq.sqn.0;
        let start = cq.ci();
        let mut ci = start;
        let mut other = false;
        // At most one ring's worth, as `poll`.
        for _ in 0..cq.entries() {
            let Some(t) = cq.owned_tail(ci) else {
                break;
            };
            if t.opcode() != cqe::opcode::REQ
                || t.qpn() != sqn
                || sq.complete_at(t.wqe_counter()).is_err()
            {
                other = true;
                break;
            }
            ci = ci.wrapping_add(1);
        }
        if ci != start {
            cq.consume(ci.wrapping_sub(start));
            cq.update_ci();
        }
        if other {
            self.poll();
        }
    }
}
