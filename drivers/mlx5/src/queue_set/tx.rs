//! The transmit path: a frame is written straight into a free transmit
//! buffer and its WQE queued ([`QueueSet::transmit_with`]); completions
//! hand the buffers back ([`QueueSet::poll`]).

use alloc::vec::Vec;

use cxos_drivers::{DmaRegion, TxError, TxMeta};

use super::{FaultCause, LSO_BUF_SIZE, QueueSet};
use crate::control::Control;
use crate::cqe::{self, Cqe};
use crate::sq::{self, TxOpts};

impl<C: Control> QueueSet<C> {
    /// Reap transmit completions (and, in interrupt mode, the completion
    pub fn poll(&mut self) -> usize {
        let mut tx_ev = false;
        if self.cfg.interrupts {
            let txc = self.parts.tx_cq.as_ref().map(|c| c.cqn);
            let rx = &mut self.parts.rx;
            for &idx in &self.eq_indexes {
                self.ctl.poll_comp_eq(idx, |cqn| {
                    if Some(cqn) == txc {
                        tx_ev = true;
                    } else if let Some(q) = rx.iter_mut().find(|q| q.cq.cqn == cqn) {
                        q.event = true;
                    }
                });
            }
        }
        let mut n = 0;
        // At most one ring's worth: a device that keeps writing CQEs
        // cannot hold the caller here.
        let limit = self.parts.tx_cq.as_ref().map_or(0, |c| c.entries());
        while n < limit
            && let Some(cqe) = self.parts.tx_cq.as_mut().and_then(|c| c.pop())
        {
            n += 1;
            if let Some(cause) = self.tx_completion(&cqe) {
                self.recover_sq(cause);
                break;
            }
        }
        if let Some(cq) = self.parts.tx_cq.as_mut() {
            if n > 0 {
                cq.update_ci();
            }
            if tx_ev {
                cq.event_seen();
                cq.arm();
            }
        }
        for q in self.parts.rx.iter_mut().filter(|q| q.event) {
            q.event = false;
            q.cq.event_seen();
            q.cq.arm();
        }
        n
    }

    /// One transmit CQE; `Some` when the queue needs recovery.
    #[inline]
    fn tx_completion(&mut self, cqe: &Cqe) -> Option<FaultCause> {
        if cqe.is_error() {
            return Some(FaultCause::ErrorCqe {
                opcode: cqe.opcode(),
                syndrome: cqe.syndrome(),
                vendor_syndrome: cqe.vendor_syndrome(),
                wqe_counter: cqe.wqe_counter(),
            });
        }
        if cqe.opcode() != cqe::opcode::REQ {
            return Some(FaultCause::BadOpcode(cqe.opcode()));
        }
        let sq = self.parts.sq.as_mut()?;
        if cqe.qpn() != sq.sqn.0 {
            return Some(FaultCause::WrongQueue { qpn: cqe.qpn() });
        }
        let (free, lso, n_tx) = (&mut self.tx_free, &mut self.lso_free, self.n_tx);
        match sq.complete(cqe, |id| give_back(free, lso, n_tx, id)) {
            Ok(_) => None,
            Err(_) => Some(FaultCause::BadCompletion {
                wqe_counter: cqe.wqe_counter(),
            }),
        }
    }

    /// Write a frame of `len` bytes with `f` straight into a transmit
    /// buffer and queue its WQE (visible at [`QueueSet::flush`]).
    #[inline]
    pub fn transmit<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        self.transmit_with(len, TxMeta::default(), f)
    }

    /// [`QueueSet::transmit`] with offloads ([`cxos_drivers::NetDevice::transmit_with`]):
    /// an LSO frame goes into one of the LSO buffers and may be up to
    /// [`QueueSet::lso_max`] payload bytes long.
    #[inline]
    pub fn transmit_with<R>(
        &mut self,
        len: usize,
        meta: TxMeta,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        let caps = self.res.caps;
        if (meta.csum && !caps.csum)
            || (meta.vlan.is_some() && !self.vlan_insert())
            || (meta.lso.is_some() && self.lso_max() == 0)
        {
            return Err(TxError::Unsupported);
        }
        // A tag the device inserts makes the frame on the wire 4 bytes
        // longer: the untagged frame (or each LSO segment) must leave room.
        let tag = if meta.vlan.is_some() { 4 } else { 0 };
        let max = match meta.lso {
            Some(l) => {
                if l.mss as usize + l.header_len as usize + tag > self.max_frame() {
                    return Err(TxError::BadLength(len));
                }
                (l.header_len as usize + self.lso_max()).min(sq::MAX_LSO_FRAME)
            }
            None => self.max_frame() - tag,
        };
        if len == 0 || len > max {
            return Err(TxError::BadLength(len));
        }
        let lso = meta.lso.is_some();
        let (Some(sq), Some(bufs)) = (
            self.parts.sq.as_mut(),
            if lso {
                self.parts.lso_bufs.as_ref()
            } else {
                self.parts.tx_bufs.as_ref()
            },
        ) else {
            return Err(TxError::Down);
        };
        let popped = if lso {
            self.lso_free.pop()
        } else {
            self.tx_free.pop()
        };
        let Some(slot) = popped else {
            self.stats.tx_busy += 1;
            return Err(TxError::Busy);
        };
        let (off, id) = if lso {
            (slot as usize * LSO_BUF_SIZE, self.n_tx + slot)
        } else {
            (slot as usize * self.tx_buf_size, slot)
        };
        let r = bufs.with_bytes_mut(off, len, f);
        let opts = TxOpts {
            csum: meta.csum,
            vlan: meta.vlan,
            mss: meta.lso.map(|l| l.mss),
            header_len: meta.lso.map_or(0, |l| l.header_len),
        };
        match sq.post_with(bufs, off, len, self.res.lkey, id, opts) {
            Ok(()) => Ok(r),
            Err(e) => {
                give_back(&mut self.tx_free, &mut self.lso_free, self.n_tx, id);
                Err(match e {
                    sq::PostError::Full => TxError::Busy,
                    sq::PostError::BadLength => TxError::BadLength(len),
                    sq::PostError::BadLso => TxError::BadLso,
                })
            }
        }
    }
}

/// Return transmit buffer `id` to its free stack.
#[inline]
pub(super) fn give_back(free: &mut Vec<u32>, lso: &mut Vec<u32>, n_tx: u32, id: u32) {
    if id < n_tx {
        free.push(id);
    } else {
        lso.push(id - n_tx);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn transmit_batch_rings_one_doorbell_and_completions_return_buffers() {
        let mut port = QueueSet::open(MockCtl::new(), res(), cfg(false)).unwrap();
        let p = port.control().p.clone();
        let (ring, dbr) = port.sq().unwrap().ring_addr();
        for i in 0..3u8 {
            port.transmit(60, |b| b.fill(i)).unwrap();
        }
        assert_eq!(port.tx_free(), 5);
        assert_eq!(p.read(dbr + 4, 4), [0, 0, 0, 0], "not before flush");
        port.flush();
        assert_eq!(p.read(dbr + 4, 4), [0, 0, 0, 3]);
        // UAR 5 send doorbell: ctrl of WQE 2 (index 2, SEND, ds 4).
        assert_eq!(&p.s.borrow().bar0[0x5800..0x5804], &[0, 0, 0x02, 0x0a]);
        // WQE 1 inlines 18 bytes of frame 1.
        assert_eq!(p.read(ring + 64 + 0x1e, 2), [1, 1]);
        assert_eq!(port.transmit(0, |_| ()), Err(TxError::BadLength(0)));
        assert_eq!(port.transmit(1519, |_| ()), Err(TxError::BadLength(1519)));
        // The device completes WQE 2 (the only one that asked).
        let cq = port.tx_cq().unwrap().ring_addr();
        write_cqe(&p, cq, 0, 0x00, 2, 0);
        assert_eq!(port.poll(), 1);
        assert_eq!(port.tx_free(), 8);
        assert_eq!(p.read(port.tx_cq().unwrap().dbr_addr(), 4), [0, 0, 0, 1]);
        assert_eq!(port.net_stats().tx_packets, 3);
        assert_eq!(NetDevice::link(&port).speed_mbps, 100_000);
        assert_eq!(NetDevice::mac(&port), MAC.0);
        assert_eq!(
            NetDevice::offloads(&port),
            Offloads {
                tx_ipv4_csum: true,
                tx_l4_csum: true,
                rx_csum: true,
                lso_max: 65536 - 256,
                vlan_insert: true,
                vlan_strip: false,
            }
        );
        // Busy when every buffer is in flight.
        for _ in 0..8 {
            port.transmit(64, |_| ()).unwrap();
        }
        assert_eq!(port.transmit(64, |_| ()), Err(TxError::Busy));
        let _ = port.close();
    }
}
