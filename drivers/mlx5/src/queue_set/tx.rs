//! The transmit path: a frame is written straight into a free transmit
//! buffer and its WQE queued ([`QueueSet::transmit_with`]); completions
//! hand the buffers back ([`QueueSet::poll`]).

use cxos_drivers::{DmaRegion, Lso, TxError, TxMeta};

use super::{FaultCause, LSO_BUF_SIZE, Parts, QueueSet};
use crate::control::Control;
use crate::cqe::{self, Cqe};
use crate::frame::{Geometry, VLAN_HLEN};
use crate::sq::{self, TxOpts};
use crate::wqe::InlineMode;

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
                self.sq_fault(cause, false);
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
        match sq.complete(cqe) {
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
        self.check_offloads(&meta)?;
        self.send(len, meta.lso, meta.vlan, |b| (f(b), meta))
    }

    /// [`cxos_drivers::NetDevice::transmit_then`]: the requests come with
    /// the written frame (no LSO).
    #[inline]
    pub fn transmit_then<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        self.send(len, None, None, f)
    }

    /// [`QueueSet::transmit_then`] with VLAN tag `tag` inserted whatever
    /// the frame asks (a VNIC's own VLAN).
    #[inline]
    pub fn transmit_then_tagged<R>(
        &mut self,
        len: usize,
        tag: u16,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        if !self.vlan_insert() {
            return Err(TxError::Unsupported);
        }
        self.send(len, None, Some(tag), f)
    }

    /// Whether the queue set offers what `meta` asks.
    #[inline]
    pub(super) fn check_offloads(&self, meta: &TxMeta) -> Result<(), TxError> {
        if (meta.csum && !self.res.caps.csum)
            || (meta.vlan.is_some() && !self.vlan_insert())
            || (meta.lso.is_some() && self.lso_max() == 0)
        {
            return Err(TxError::Unsupported);
        }
        Ok(())
    }

    /// Take a transmit buffer (an LSO one with `lso`), let `f` write the
    /// frame and say what it asks, and queue its WQE; the headers the WQE
    /// needs are read from the frame in place. `tag`: the VLAN tag known
    /// before the frame is written (it replaces what `f` asks).
    #[inline]
    fn send<R>(
        &mut self,
        len: usize,
        lso: Option<Lso>,
        tag: Option<u16>,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        // In error, its recovery pending: nothing is posted to it.
        if self.tx_halted {
            self.stats.tx_busy += 1;
            return Err(TxError::Busy);
        }
        let tagged = tag.is_some();
        // A tag the device inserts makes the frame on the wire 4 bytes
        // longer: the untagged frame (or each LSO segment) must leave room.
        let room = if tagged { VLAN_HLEN } else { 0 };
        let max = match lso {
            Some(l) => {
                if l.mss as usize + l.header_len as usize + room > self.max_frame() {
                    return Err(TxError::BadLength(len));
                }
                (l.header_len as usize + self.lso_max()).min(sq::MAX_LSO_FRAME)
            }
            None => self.max_frame() - room,
        };
        if len == 0 || len > max {
            return Err(TxError::BadLength(len));
        }
        let is_lso = lso.is_some();
        let max_frame = self.max_frame();
        let Parts {
            sq,
            tx_bufs,
            lso_bufs,
            ..
        } = &mut self.parts;
        let (Some(sq), Some(bufs)) = (
            sq.as_mut(),
            if is_lso {
                lso_bufs.as_ref()
            } else {
                tx_bufs.as_ref()
            },
        ) else {
            return Err(TxError::Down);
        };
        let Some(slot) = sq.reserve(is_lso) else {
            self.stats.tx_busy += 1;
            return Err(TxError::Busy);
        };
        let size = if is_lso {
            LSO_BUF_SIZE
        } else {
            self.tx_buf_size
        };
        let off = slot.index() * size;
        let addr = bufs.device_addr().offset(off);
        let caps = self.res.caps;
        let vlan_insert = caps.vlan_insert || self.res.inline != InlineMode::None;
        let (r, posted) = bufs.with_bytes_mut(off, len, |b| {
            let (r, mut meta) = f(b);
            if tag.is_some() {
                meta.vlan = tag;
            }
            // Asked only now (transmit_then): what the device offers, and
            // room for the tag.
            if (meta.csum && !caps.csum)
                || (meta.vlan.is_some() && !vlan_insert)
                || meta.lso.is_some() != is_lso
            {
                return (r, Err(TxError::Unsupported));
            }
            if meta.vlan.is_some() && !tagged && len + VLAN_HLEN > max_frame {
                return (r, Err(TxError::BadLength(len)));
            }
            let opts = TxOpts {
                csum: meta.csum,
                vlan: meta.vlan,
                mss: meta.lso.map(|l| l.mss),
                header_len: meta.lso.map_or(0, |l| l.header_len),
                geometry: meta.geometry.map(Geometry::from),
            };
            let posted = sq.post_with(slot, b, addr, opts).map_err(|e| match e {
                sq::PostError::Full => TxError::Busy,
                sq::PostError::BadLength => TxError::BadLength(len),
                sq::PostError::BadLso => TxError::BadLso,
            });
            (r, posted)
        });
        posted.map(|()| r)
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
