//! The per-frame receive path ([`QueueSet::receive`]) as a burst reads a
//! common completion, one entry a call: the entry at the consumer index
//! has its tail word read through a plain view and checked with one
//! masked 8-byte compare ([`crate::cq::Cq::tail_at`]: software-owned, of
//! opcode `RESP_SEND`, format 0 (not a session's title), of the queue's
//! RQN), each time it is taken (the device is not trusted to leave a
//! software-owned entry alone, so nothing found of an entry before is
//! kept); after the read barrier its byte count and
//! `wqe_id`/`wqe_counter` are read through one plain view of its body and
//! the RQ checks them as a burst does ([`crate::rq::RxCursor::take_key`]).
//! [`RxMeta`] is decoded from that entry alone. Whatever is not the common
//! case (an error, a filler, a bad length or counter, a title, a session)
//! goes through [`QueueSet::next_frame`], which consumes it as before.

use cxos_drivers::RxMeta;

use super::super::QueueSet;
use crate::control::Control;
use crate::cq::{BODY, RunExpect, TailAt, run_key};
use crate::cqe::{self, Cqe};

#[inline(always)]
fn be32(c: &[u8; BODY], o: usize) -> u32 {
    u32::from_be_bytes([c[o], c[o + 1], c[o + 2], c[o + 3]])
}

/// What the per-frame path reads of a common completion (its body, its
/// tail word checked by [`crate::cq::Cq::tail_at`]), as [`Cqe`]:
/// `wqe_counter`, the opcode `tail_at` found, `wqe_id`, `rss_hash_result`, the dword of
/// `hds_ip_ext`, `l4_l3_hdr_type` and `vlan_info`, and the byte count;
/// the others 0.
#[inline(always)]
fn common_cqe(c: &[u8; BODY]) -> Cqe {
    let mut w = [0u64; cqe::WORDS];
    // A word at 8k holds the dword at 8k in its high half, the one at
    // 8k + 4 in its low half.
    w[cqe::off::WQE_ID / 8] = (be32(c, cqe::off::WQE_ID) as u64) << 32;
    w[cqe::off::RSS_HASH / 8] = be32(c, cqe::off::RSS_HASH) as u64;
    w[cqe::off::HDR / 8] = be32(c, cqe::off::HDR) as u64;
    w[cqe::off::BYTE_CNT / 8] = be32(c, cqe::off::BYTE_CNT) as u64;
    let counter = u16::from_be_bytes([c[cqe::off::TAIL], c[cqe::off::TAIL + 1]]);
    let tail = (counter as u32) << 16 | (cqe::opcode::RESP_SEND as u32) << 4;
    Cqe::from_words(tail, &w, || 0)
}

const _: () = assert!(cqe::off::WQE_ID.is_multiple_of(8));
const _: () = assert!(cqe::off::RSS_HASH % 8 == 4 && cqe::off::HDR % 8 == 4);
const _: () = assert!(cqe::off::BYTE_CNT % 8 == 4);

impl<C: Control> QueueSet<C> {
    /// Hand the next frame of receive queue `q` to `f` with its
    /// [`RxMeta`], its buffer released after (`Err(f)` when the queue has
    /// none): the entry at the CQ's consumer index if its tail word says
    /// it is a common completion ([`crate::cq::Cq::tail_at`]) and the RQ
    /// takes it as the common case ([`crate::rq::Rq::take_common`]);
    /// anything else through [`QueueSet::next_frame`], which consumes it
    /// as before.
    #[inline(always)]
    pub(in crate::queue_set) fn receive_at<R, F>(&mut self, q: usize, f: F) -> Result<R, F>
    where
        F: FnOnce(&[u8], RxMeta) -> R,
    {
        let Some(x) = self.parts.rx.get_mut(q) else {
            return Err(f);
        };
        // In error, its recovery pending: nothing is taken from it.
        if x.halted {
            return Err(f);
        }
        let Some(rq) = x.rq.as_mut() else {
            return Err(f);
        };
        // A session is read by `next_frame` (its completions are not in
        // the ring).
        if x.cq.in_session() {
            return self.receive_slow(q, f);
        }
        let ci = x.cq.ci();
        match x
            .cq
            .tail_at(ci, RunExpect::common(cqe::opcode::RESP_SEND, rq.rqn.0))
        {
            TailAt::Common => {}
            TailAt::Empty => return Err(f),
            TailAt::Other => return self.receive_slow(q, f),
        }
        let Some((cqe, key)) = x.cq.with_body(ci, |c| (common_cqe(c), run_key(c))) else {
            return self.receive_slow(q, f);
        };
        // Not the common case (counter, strides, length, filler): left
        // for `next_frame`, which consumes it and names what is wrong.
        let Some(frame) = rq.take_common(key, cqe.byte_count()) else {
            return self.receive_slow(q, f);
        };
        x.cq.consume(1);
        let vlan_strip = self.cfg.vlan_strip && self.res.caps.vlan_strip;
        let mut meta = super::meta_of(&mut self.stats, vlan_strip, self.res.caps.csum, &cqe);
        meta.queue = q as u16;
        let r = rq.with_frame(frame, |b| f(b, meta));
        super::release_rx(x, frame.releases);
        Ok(r)
    }

    /// [`QueueSet::receive_at`] through [`QueueSet::next_frame`].
    #[inline(never)]
    fn receive_slow<R, F>(&mut self, q: usize, f: F) -> Result<R, F>
    where
        F: FnOnce(&[u8], RxMeta) -> R,
    {
        let Some((frame, meta)) = self.next_frame(q) else {
            return Err(f);
        };
        let r = match self.parts.rx.get(q).and_then(|x| x.rq.as_ref()) {
            Some(rq) => rq.with_frame(frame, |b| f(b, meta)),
            None => return Err(f),
        };
        self.release(q, frame.releases);
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::*;
    use crate::cqe::{opcode, syndrome};

    fn open16() -> (QueueSet<MockCtl>, MockPlatform, u64) {
        let c = EthConfig {
            log_rq: 4,
            ..cfg(false)
        };
        let port = QueueSet::open(MockCtl::new(), res(), c).unwrap();
        let p = port.control().p.clone();
        let cq = port.rx_cq().unwrap().ring_addr();
        (port, p, cq)
    }

    fn len(port: &mut QueueSet<MockCtl>) -> Option<usize> {
        port.receive(|b, _| b.len())
    }

    #[test]
    fn frames_cross_the_ring_wrap_and_stop_at_the_owner_bit() {
        let (mut port, p, cq) = open16();
        for i in 0..8 {
            write_cqe(&p, cq, i, 0x20, i as u16, 60);
        }
        for _ in 0..8 {
            assert_eq!(len(&mut port), Some(60));
        }
        port.flush();
        // Frames 8..20: slots 8..15 in the ring's first pass (owner 0),
        // 0..3 in its second (owner 1).
        for i in 8..20usize {
            let own = if i < 16 { 0x20 } else { 0x21 };
            write_cqe(&p, cq, i % 16, own, i as u16, 100 + i as u32);
        }
        // Slot 4 holds a first-pass entry with what the next frame would
        // say (counter 20): only its owner bit says the device has not
        // written it in this pass.
        write_cqe(&p, cq, 4, 0x20, 20, 120);
        assert_eq!(len(&mut port), Some(108));
        for i in 9..20 {
            assert_eq!(len(&mut port), Some(100 + i), "frame {i}");
        }
        assert_eq!(len(&mut port), None);
        assert_eq!(port.eth_stats().faults, 0);
        let _ = port.close();
    }

    #[test]
    fn an_error_after_common_completions_is_handled_after_their_frames() {
        let (mut port, p, cq) = open16();
        for i in 0..3 {
            write_cqe(&p, cq, i, 0x20, i as u16, 60 + i as u32);
        }
        // An error CQE whose counter and byte count a frame could have.
        p.write(cq + 3 * 64 + 0x37, &[syndrome::LOCAL_LENGTH_ERR]);
        write_cqe(&p, cq, 3, opcode::RESP_ERR << 4, 3, 64);
        assert_eq!(len(&mut port), Some(60));
        assert_eq!(len(&mut port), Some(61));
        assert_eq!(len(&mut port), Some(62));
        assert_eq!(len(&mut port), None);
        let f = port.last_fault().unwrap();
        assert!(
            matches!(
                f.cause,
                FaultCause::ErrorCqe {
                    opcode: opcode::RESP_ERR,
                    syndrome: syndrome::LOCAL_LENGTH_ERR,
                    wqe_counter: 3,
                    ..
                }
            ),
            "{f}"
        );
        assert_eq!(port.run_pending_recoveries(), 0);
        assert!(port.last_fault().unwrap().recovered);
        // The recovered RQ starts again at WQE 0, the CQ after the error.
        write_cqe(&p, cq, 4, 0x20, 0, 70);
        assert_eq!(len(&mut port), Some(70));
        let _ = port.close();
    }

    /// An entry of another queue at the consumer index after the queue
    /// was set up anew (where the entries of its old buffers were): the
    /// fault `next_frame` names.
    fn lie_after(port: &mut QueueSet<MockCtl>, p: &MockPlatform, cq: u64, slot: usize) {
        write_cqe(p, cq, slot, 0x20, 0, 64);
        p.write(cq + (slot * 64) as u64 + 0x38, &0x77u32.to_be_bytes());
        assert_eq!(len(port), None);
        let f = port.last_fault().unwrap();
        assert_eq!(f.cause, FaultCause::WrongQueue { qpn: 0x77 }, "{f}");
    }

    #[test]
    fn after_an_mtu_change_the_next_entry_is_checked() {
        let (mut port, p, cq) = open16();
        for i in 0..4 {
            write_cqe(&p, cq, i, 0x20, i as u16, 60);
        }
        assert_eq!(len(&mut port), Some(60));
        // New buffers: the RQ starts again at WQE 0; the CQ's entries
        // for the old ones are consumed.
        port.set_mtu(4000, 4000).unwrap();
        lie_after(&mut port, &p, cq, 4);
        let _ = port.close();
    }

    #[test]
    fn after_a_recovery_the_next_entry_is_checked() {
        let (mut port, p, cq) = open16();
        for i in 0..4 {
            write_cqe(&p, cq, i, 0x20, i as u16, 60);
        }
        // The third entry is for the wrong WQE: a fault, the RQ cycled
        // and the CQ drained with the fourth left.
        write_cqe(&p, cq, 2, 0x20, 9, 60);
        assert_eq!(len(&mut port), Some(60));
        assert_eq!(len(&mut port), Some(60));
        assert_eq!(len(&mut port), None);
        assert_eq!(port.run_pending_recoveries(), 0);
        assert_eq!(
            port.last_fault().unwrap().cause,
            FaultCause::BadCompletion { wqe_counter: 9 }
        );
        lie_after(&mut port, &p, cq, 4);
        let _ = port.close();
    }
}
