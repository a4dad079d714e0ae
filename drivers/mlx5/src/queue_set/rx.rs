//! The receive path: the next frame of the next receive queue with one,
//! handed over in place, its buffer recycled after; the per-frame
//! information ([`RxMeta`]) comes from the CQE.

use cxos_drivers::{L3Proto, L4Proto, Platform, RxMeta};

use super::{EthStats, FaultCause, QueueSet, RxQueue};
use crate::control::Control;
use crate::cqe::{self, Cqe};
use crate::rq::{RxError, RxFrame};

mod frame;

impl<C: Control> QueueSet<C> {
    #[inline(always)]
    fn rx_meta(&mut self, cqe: &Cqe) -> RxMeta {
        let (vlan_strip, csum) = (self.vlan_strip(), self.res.caps.csum);
        meta_of(&mut self.stats, vlan_strip, csum, cqe)
    }

    /// The next received frame, in place; its buffer is re-posted after
    /// `f` returns (doorbell record at [`QueueSet::flush`] or every
    /// [`crate::rq::Rq::commit_batch`] WQEs). A common completion is read
    /// by [`QueueSet::receive_at`], the others by [`QueueSet::next_frame`].
    #[inline]
    pub fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let n = self.parts.rx.len();
        if n == 1 {
            return self.receive_at(0, f).ok();
        }
        self.receive_round_robin(n, f)
    }

    /// The next frame of the receive queues after the last one that had
    /// one.
    #[inline]
    fn receive_round_robin<R>(
        &mut self,
        n: usize,
        mut f: impl FnOnce(&[u8], RxMeta) -> R,
    ) -> Option<R> {
        let mut q = self.rx_next.min(n.saturating_sub(1));
        for _ in 0..n {
            let next = if q + 1 == n { 0 } else { q + 1 };
            match self.receive_at(q, f) {
                Ok(r) => {
                    self.rx_next = next;
                    return Some(r);
                }
                Err(g) => f = g,
            }
            q = next;
        }
        None
    }

    /// The next frame of receive queue `q`, if it has one: completions
    /// that carry none (fillers, bad lengths) are consumed and their
    /// buffers released on the way; an error or a completion the driver
    /// refuses recovers the queue.
    #[inline(always)]
    pub(super) fn next_frame(&mut self, q: usize) -> Option<(RxFrame, RxMeta)> {
        // At most one ring's worth of completions without a frame: a
        // device that keeps writing them cannot hold the caller here.
        let limit = self.parts.rx.get(q)?.cq.entries();
        for _ in 0..limit {
            let x = self.parts.rx.get_mut(q)?;
            // In error, its recovery pending: nothing is taken from it.
            if x.halted {
                return None;
            }
            let cqe = x.cq.pop()?;
            if cqe.opcode() != cqe::opcode::RESP_SEND {
                self.refuse_rx(q, cqe);
                return None;
            }
            let rq = x.rq.as_mut()?;
            // A completion naming another queue than the one its CQ
            // serves: the device is confused, recover.
            if cqe.qpn() != rq.rqn.0 {
                self.rq_fault(q, FaultCause::WrongQueue { qpn: cqe.qpn() }, false);
                return None;
            }
            match rq.complete(&cqe) {
                Ok(frame) => {
                    let mut meta = self.rx_meta(&cqe);
                    meta.queue = q as u16;
                    return Some((frame, meta));
                }
                Err(e) => {
                    if !self.rx_refused(q, e) {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// A responder completion receive queue `q` took without a frame
    /// ([`crate::rq::Rq::complete`]): a bad length is counted and its
    /// buffers released, a filler's released; a counter out of order
    /// recovers the queue. Whether the queue may go on to its next
    /// completion.
    #[inline(always)]
    fn rx_refused(&mut self, q: usize, e: RxError) -> bool {
        match e {
            RxError::Length { releases, .. } => {
                self.stats.rx_length_errors += 1;
                self.release(q, releases);
                true
            }
            RxError::Filler { releases } => {
                self.release(q, releases);
                true
            }
            RxError::WqeCounter { counter, .. } => {
                self.rq_fault(
                    q,
                    FaultCause::BadCompletion {
                        wqe_counter: counter,
                    },
                    false,
                );
                false
            }
        }
    }

    /// An error CQE or one with an opcode a receive queue never gets:
    /// recover the queue.
    #[cold]
    fn refuse_rx(&mut self, q: usize, cqe: Cqe) {
        let cause = if cqe.is_error() {
            FaultCause::ErrorCqe {
                opcode: cqe.opcode(),
                syndrome: cqe.syndrome(),
                vendor_syndrome: cqe.vendor_syndrome(),
                wqe_counter: cqe.wqe_counter(),
            }
        } else {
            FaultCause::BadOpcode(cqe.opcode())
        };
        self.rq_fault(q, cause, false);
    }

    /// Give `releases` consumed WQEs of queue `q` back (posted at the next
    /// commit: [`crate::rq::Rq::commit_batch`], or [`QueueSet::flush`]).
    #[inline]
    pub(super) fn release(&mut self, q: usize, releases: u16) {
        if let Some(x) = self.parts.rx.get_mut(q) {
            release_rx(x, releases);
        }
    }
}

/// [`QueueSet::release`] on the receive queue itself.
#[inline(always)]
fn release_rx<P: Platform>(x: &mut RxQueue<P>, releases: u16) {
    if releases == 0 {
        return;
    }
    if let Some(rq) = x.rq.as_mut() {
        rq.recycle(releases as usize);
        if x.halted {
            // Its recovery posts every buffer again.
            return;
        }
        x.uncommitted += releases as usize;
        if x.uncommitted >= rq.commit_batch() {
            commit_rx(x);
        }
    }
}

/// The [`RxMeta`] of a responder CQE (`vlan_strip`: the queue set strips
/// tags; `csum`: the device checks checksums), counted in `stats`.
#[inline(always)]
fn meta_of(stats: &mut EthStats, vlan_strip: bool, csum: bool, cqe: &Cqe) -> RxMeta {
    let mut m = RxMeta::default();
    if vlan_strip && cqe.has_vlan() {
        m.vlan = Some(cqe.vlan_tci());
        stats.rx_vlan_stripped += 1;
    }
    m.rss_hash = cqe.rss_hash();
    if !csum {
        return m;
    }
    m.l3 = cqe.l3();
    m.l4 = cqe.l4();
    m.l3_csum_ok = m.l3 == L3Proto::Ipv4 && cqe.l3_ok();
    m.l4_csum_ok = m.l4 != L4Proto::Other && cqe.l4_ok();
    m.csum_ok = m.l4_csum_ok && (m.l3 == L3Proto::Ipv6 || m.l3_csum_ok);
    if m.csum_ok {
        stats.rx_csum_ok += 1;
    } else if m.l4 != L4Proto::Other || (m.l3 == L3Proto::Ipv4 && !m.l3_csum_ok) {
        stats.rx_csum_bad += 1;
    }
    m
}

/// Post a receive queue's recycled buffers (doorbell record) and publish
/// its CQ's consumer index.
#[inline]
pub(super) fn commit_rx<P: Platform>(x: &mut RxQueue<P>) {
    if let Some(rq) = x.rq.as_mut() {
        rq.commit();
    }
    x.cq.update_ci();
    x.uncommitted = 0;
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn receive_in_place_and_recycle_in_batches() {
        let mut port = QueueSet::open(MockCtl::new(), res(), cfg(false)).unwrap();
        let p = port.control().p.clone();
        let rq = port.rq().unwrap();
        let (_, rq_dbr) = rq.ring_addr();
        let b0 = rq.buf_addr(0);
        let cq = port.rx_cq().unwrap().ring_addr();
        let cq_dbr = port.rx_cq().unwrap().dbr_addr();
        assert!(port.receive(|_, _| ()).is_none());
        p.write(b0, &[0xde, 0xad, 0xbe, 0xef]);
        write_cqe(&p, cq, 0, 0x20, 0, 60);
        let got = port.receive(|b, _| (b.len(), b[..4].to_vec())).unwrap();
        assert_eq!(got, (60, vec![0xde, 0xad, 0xbe, 0xef]));
        // A byte count larger than the buffer: dropped and counted, the
        // buffer recycled; the next good frame is delivered.
        write_cqe(&p, cq, 1, 0x20, 1, 100_000);
        write_cqe(&p, cq, 2, 0x20, 2, 64);
        assert_eq!(port.receive(|b, _| b.len()), Some(64));
        assert_eq!(port.eth_stats().rx_length_errors, 1);
        // Three recycled: a quarter ring (2) is committed at once, the
        // third at flush.
        assert_eq!(p.read(rq_dbr, 4), [0, 0, 0, 10]);
        assert_eq!(p.read(cq_dbr, 4), [0, 0, 0, 2]);
        port.flush();
        assert_eq!(p.read(rq_dbr, 4), [0, 0, 0, 11]);
        assert_eq!(p.read(cq_dbr, 4), [0, 0, 0, 3]);
        // A completion for the wrong WQE is a fault: the RQ is cycled.
        write_cqe(&p, cq, 3, 0x20, 7, 64);
        assert!(port.receive(|_, _| ()).is_none());
        assert_eq!(port.run_pending_recoveries(), 0);
        let f = port.last_fault().unwrap();
        assert_eq!(f.cause, FaultCause::BadCompletion { wqe_counter: 7 });
        assert!(f.recovered);
        let _ = port.close();
    }

    #[test]
    fn receive_meta_from_the_cqe_checksum_flags_types_and_vlan() {
        let c = EthConfig {
            vlan_strip: true,
            ..cfg(false)
        };
        let mut port = QueueSet::open(MockCtl::new(), res(), c).unwrap();
        let p = port.control().p.clone();
        let cq = port.rx_cq().unwrap().ring_addr();
        // (hds_ip_ext 0x1c, l4_l3_hdr_type 0x1d, vlan_info 0x1e) -> meta
        let cases: [(u8, u8, u16, RxMeta); 5] = [
            // IPv4 (l3 2 in [3:2]) TCP ack+data (4 in [6:4]), L3 and L4
            // OK, stripped tag 0x0064 ([0] set).
            (
                0x06,
                0x49,
                0x0064,
                RxMeta {
                    csum_ok: true,
                    vlan: Some(0x64),
                    l3: L3Proto::Ipv4,
                    l4: L4Proto::Tcp,
                    l3_csum_ok: true,
                    l4_csum_ok: true,
                    ..RxMeta::default()
                },
            ),
            // IPv6 (1) UDP (2), L4 OK: good (IPv6 has no header checksum).
            (
                0x04,
                0x24,
                0,
                RxMeta {
                    csum_ok: true,
                    l3: L3Proto::Ipv6,
                    l4: L4Proto::Udp,
                    l4_csum_ok: true,
                    ..RxMeta::default()
                },
            ),
            // IPv4 UDP with a bad UDP checksum: L3 OK only.
            (
                0x02,
                0x28,
                0,
                RxMeta {
                    l3: L3Proto::Ipv4,
                    l4: L4Proto::Udp,
                    l3_csum_ok: true,
                    ..RxMeta::default()
                },
            ),
            // IPv4 TCP with a bad header checksum: L4 OK alone is not
            // enough.
            (
                0x04,
                0x18,
                0,
                RxMeta {
                    l3: L3Proto::Ipv4,
                    l4: L4Proto::Tcp,
                    l4_csum_ok: true,
                    ..RxMeta::default()
                },
            ),
            // Not IP: the OK bits mean nothing.
            (0x07, 0x00, 0, RxMeta::default()),
        ];
        for (i, (ok, ht, vlan, want)) in cases.into_iter().enumerate() {
            let at = cq + (i * 64) as u64;
            p.write(at + 0x1c, &[ok, ht]);
            p.write(at + 0x1e, &vlan.to_be_bytes());
            write_cqe(&p, cq, i, 0x20, i as u16, 60);
            let got = port.receive(|_, m| m).unwrap();
            assert_eq!(got, want, "case {i}");
        }
        let s = port.eth_stats();
        assert_eq!((s.rx_csum_ok, s.rx_csum_bad, s.rx_vlan_stripped), (2, 2, 1));
        let _ = port.close();
    }
}
