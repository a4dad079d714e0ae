//! The receive hand-off between two CPUs: a bounded single-producer,
//! single-consumer ring of received frames (issue 21). The CPU that polled
//! a frame from its receive queue for an interface another CPU owns copies
//! it into a slot (the receive buffer goes straight back to its own RQ),
//! and the owning CPU's stack takes it from there. Memory is fixed when
//! the ring is made (`slots` buffers of `frame` bytes); a full ring or a
//! frame larger than a slot drops the frame and counts it, so a slow
//! consumer never makes the producer wait or allocate.
//!
//! No lock: the producer alone writes `tail` and the slots from `tail`
//! on, the consumer alone writes `head` and reads the slots before `tail`
//! (Lamport's ring; the release store of one index publishes the slot
//! contents it covers to the other side's acquire load).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One frame slot: its bytes, their length and the metadata that came
/// with them.
struct Slot<M> {
    len: usize,
    meta: M,
    buf: Box<[u8]>,
}

struct Shared<M> {
    slots: Box<[UnsafeCell<Slot<M>>]>,
    /// Frames taken (consumer's index).
    head: AtomicUsize,
    /// Frames put (producer's index).
    tail: AtomicUsize,
    dropped_full: AtomicU64,
    dropped_big: AtomicU64,
}

// SAFETY: a slot is only reached through the one `Producer` (slots in
// [tail, head + capacity)) or the one `Consumer` (slots in [head, tail)),
// never both at once: each side moves its own index only after it is done
// with the slot (release) and reads the other's with acquire, so the two
// ranges never overlap and every access to a slot is ordered after the
// other side's last one. `M: Send` crosses with the frame.
unsafe impl<M: Send> Sync for Shared<M> {}
// SAFETY: as above; the slots own their memory.
unsafe impl<M: Send> Send for Shared<M> {}

/// What the ring saw (either side can read it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandoffStats {
    pub passed: u64,
    pub dropped_full: u64,
    pub dropped_big: u64,
    /// Frames in the ring now.
    pub queued: usize,
}

/// The polling CPU's end.
pub struct Producer<M> {
    ring: Arc<Shared<M>>,
}

/// The owning CPU's end.
pub struct Consumer<M> {
    ring: Arc<Shared<M>>,
}

impl<M> core::fmt::Debug for Producer<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Producer({:?})", self.ring.stats())
    }
}

impl<M> core::fmt::Debug for Consumer<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Consumer({:?})", self.ring.stats())
    }
}

/// A ring of `slots` frames of up to `frame` bytes each (`slots` at
/// least 1).
pub fn ring<M: Copy + Default + Send>(slots: usize, frame: usize) -> (Producer<M>, Consumer<M>) {
    ring_from(slots, frame, 0, (0, 0))
}

/// [`ring`] with both indexes starting at `at` and the drop counters at
/// `dropped` (full, big): a ring taking over from another
/// ([`Consumer::resize`]) goes on counting where that one was.
fn ring_from<M: Copy + Default + Send>(
    slots: usize,
    frame: usize,
    at: usize,
    dropped: (u64, u64),
) -> (Producer<M>, Consumer<M>) {
    let slots: Box<[UnsafeCell<Slot<M>>]> = (0..slots.max(1))
        .map(|_| {
            UnsafeCell::new(Slot {
                len: 0,
                meta: M::default(),
                buf: vec![0u8; frame].into_boxed_slice(),
            })
        })
        .collect();
    let ring = Arc::new(Shared {
        slots,
        head: AtomicUsize::new(at),
        tail: AtomicUsize::new(at),
        dropped_full: AtomicU64::new(dropped.0),
        dropped_big: AtomicU64::new(dropped.1),
    });
    (Producer { ring: ring.clone() }, Consumer { ring })
}

impl<M> Shared<M> {
    fn stats(&self) -> HandoffStats {
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        HandoffStats {
            passed: head as u64,
            dropped_full: self.dropped_full.load(Ordering::Relaxed),
            dropped_big: self.dropped_big.load(Ordering::Relaxed),
            queued: tail.wrapping_sub(head),
        }
    }
}

impl<M: Copy> Producer<M> {
    /// Copy `frame` and `meta` into the next slot; false (counted) if the
    /// ring is full or the frame is larger than a slot.
    pub fn push(&mut self, frame: &[u8], meta: M) -> bool {
        let r = &*self.ring;
        let tail = r.tail.load(Ordering::Relaxed);
        let head = r.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) >= r.slots.len() {
            r.dropped_full.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let cell = &r.slots[tail % r.slots.len()];
        // SAFETY: slot `tail` is outside [head, tail), the consumer's
        // range, and only this (unique) producer writes past `tail`; the
        // consumer's release of `head` ordered its last read of the slot
        // before the acquire above.
        let slot = unsafe { &mut *cell.get() };
        if frame.len() > slot.buf.len() {
            r.dropped_big.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        slot.buf[..frame.len()].copy_from_slice(frame);
        slot.len = frame.len();
        slot.meta = meta;
        r.tail.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    pub fn stats(&self) -> HandoffStats {
        self.ring.stats()
    }
}

impl<M: Copy> Consumer<M> {
    /// Hand the oldest frame to `f` and free its slot; `None` if the ring
    /// is empty.
    pub fn pop<R>(&mut self, f: impl FnOnce(&[u8], M) -> R) -> Option<R> {
        let r = &*self.ring;
        let head = r.head.load(Ordering::Relaxed);
        let tail = r.tail.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let cell = &r.slots[head % r.slots.len()];
        // SAFETY: slot `head` is in [head, tail): the producer published
        // it with its release of `tail` (acquired above) and does not
        // touch it again until this consumer moves `head` past it.
        let slot = unsafe { &*cell.get() };
        let out = f(&slot.buf[..slot.len], slot.meta);
        r.head.store(head.wrapping_add(1), Ordering::Release);
        Some(out)
    }

    /// Replace this ring and `tx`, its producer, by a ring of `slots`
    /// frames of up to `frame` bytes (the interface's frame size changed):
    /// the frames still queued move over in order, so none is lost to
    /// the change; one larger than the new slots is dropped and counted
    /// as too big (a smaller MTU), and the counters go on from the old
    /// ring's. Both ends are taken (`&mut`), so neither side touches the
    /// old ring meanwhile. False (nothing changed) if `tx` is not this
    /// ring's producer. Allocates the new ring: a control path, never
    /// per frame.
    #[must_use]
    pub fn resize(&mut self, tx: &mut Producer<M>, slots: usize, frame: usize) -> bool
    where
        M: Default + Send,
    {
        if !Arc::ptr_eq(&self.ring, &tx.ring) {
            return false;
        }
        let head = self.ring.head.load(Ordering::Acquire);
        let s = self.ring.stats();
        // The new ring's indexes start at the old `head`: the frames
        // moved are queued there, not yet taken.
        let (mut ntx, nrx) = ring_from(slots, frame, head, (s.dropped_full, s.dropped_big));
        // A frame the new ring refuses is counted there.
        while self.pop(|b, m| ntx.push(b, m)).is_some() {}
        *tx = ntx;
        *self = nrx;
        true
    }

    /// Whether a frame is waiting.
    pub fn is_empty(&self) -> bool {
        let r = &*self.ring;
        r.head.load(Ordering::Relaxed) == r.tail.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> HandoffStats {
        self.ring.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_in_order_with_their_metadata() {
        let (mut p, mut c) = ring::<u16>(4, 64);
        assert!(c.pop(|_, _| ()).is_none());
        for i in 0..3u8 {
            assert!(p.push(&[i; 10][..usize::from(i) + 1], u16::from(i) * 7));
        }
        for i in 0..3u8 {
            let (bytes, meta) = c.pop(|b, m| (b.to_vec(), m)).unwrap();
            assert_eq!(bytes, vec![i; usize::from(i) + 1]);
            assert_eq!(meta, u16::from(i) * 7);
        }
        assert!(c.is_empty());
        assert_eq!(
            c.stats(),
            HandoffStats {
                passed: 3,
                ..HandoffStats::default()
            }
        );
    }

    #[test]
    fn a_full_ring_or_a_big_frame_drops_and_counts() {
        let (mut p, mut c) = ring::<()>(2, 8);
        assert!(p.push(&[1], ()));
        assert!(p.push(&[2], ()));
        assert!(!p.push(&[3], ()), "third frame into two slots");
        let s = p.stats();
        assert_eq!((s.dropped_full, s.queued), (1, 2));
        // Taking one makes room for exactly one; a frame over the slot
        // size still drops.
        assert_eq!(c.pop(|b, _| b[0]), Some(1));
        assert!(!p.push(&[0; 9], ()));
        assert_eq!(p.stats().dropped_big, 1);
        assert!(p.push(&[4], ()));
        assert_eq!(c.pop(|b, _| b[0]), Some(2));
        assert_eq!(c.pop(|b, _| b[0]), Some(4));
        assert_eq!(
            c.stats(),
            HandoffStats {
                passed: 3,
                dropped_full: 1,
                dropped_big: 1,
                queued: 0
            }
        );
    }

    /// A frame size change (an interface's MTU) while frames wait: they
    /// come out of the resized ring, in order, before any pushed after
    /// it; one larger than the new slots is dropped and counted; the
    /// counters go on (every frame put is passed, dropped or queued).
    #[test]
    fn a_resize_keeps_the_queued_frames_that_fit() {
        let (mut p, mut c) = ring::<u8>(4, 64);
        assert!(p.push(&[0; 10], 0));
        assert_eq!(c.pop(|_, m| m), Some(0));
        assert!(p.push(&[1; 60], 1));
        assert!(p.push(&[2; 20], 2));
        assert!(p.push(&[3; 30], 3));
        assert!(!p.push(&[9; 65], 9), "too big for the old slots");
        // Smaller slots: frame 1 (60 bytes) no longer fits.
        assert!(c.resize(&mut p, 4, 32));
        assert_eq!(
            c.stats(),
            HandoffStats {
                passed: 1,
                dropped_full: 0,
                dropped_big: 2,
                queued: 2
            }
        );
        assert!(!p.push(&[4; 33], 4), "the new slot size holds");
        assert!(p.push(&[4; 32], 4));
        assert!(p.push(&[5; 1], 5));
        assert!(!p.push(&[6; 1], 6), "four slots: two moved, two new");
        let mut got = std::vec::Vec::new();
        while let Some(x) = c.pop(|b, m| (m, b.len(), b.iter().all(|&x| x == m))) {
            got.push(x);
        }
        assert_eq!(
            got,
            vec![(2, 20, true), (3, 30, true), (4, 32, true), (5, 1, true)]
        );
        let s = c.stats();
        assert_eq!(
            (s.passed, s.dropped_full, s.dropped_big, s.queued),
            (5, 1, 3, 0)
        );
        // Larger slots take larger frames.
        assert!(p.push(&[7; 20], 7));
        assert!(c.resize(&mut p, 2, 9000));
        assert!(p.push(&[8; 9000], 8));
        assert_eq!(c.pop(|_, m| m), Some(7));
        assert_eq!(c.pop(|b, m| (b.len(), m)), Some((9000, 8)));
        // Another ring's producer: refused, nothing changed.
        let (mut other, _) = ring::<u8>(1, 8);
        assert!(!c.resize(&mut other, 8, 8));
        assert!(other.push(&[1; 8], 1) && !p.push(&[1; 9001], 1));
    }

    /// Two threads, as two CPUs: every frame the producer put is taken
    /// exactly once, in order, intact; every one it could not put is
    /// counted; nothing else.
    #[test]
    fn across_threads_nothing_is_lost_or_duplicated() {
        const FRAMES: u32 = 200_000;
        let (mut p, mut c) = ring::<u32>(64, 16);
        let producer = std::thread::spawn(move || {
            let mut put = std::vec::Vec::new();
            for seq in 0..FRAMES {
                let mut f = [0u8; 16];
                f[..4].copy_from_slice(&seq.to_le_bytes());
                f[4..8].copy_from_slice(&(!seq).to_le_bytes());
                if p.push(&f[..8 + (seq % 8) as usize], seq) {
                    put.push(seq);
                }
            }
            (put, p.stats())
        });
        let mut got = std::vec::Vec::new();
        loop {
            match c.pop(|b, m| {
                let seq = u32::from_le_bytes(b[..4].try_into().unwrap());
                let inv = u32::from_le_bytes(b[4..8].try_into().unwrap());
                assert_eq!((seq, !inv, b.len()), (m, m, 8 + (m % 8) as usize));
                m
            }) {
                Some(seq) => got.push(seq),
                None if producer.is_finished() && c.is_empty() => break,
                None => std::hint::spin_loop(),
            }
        }
        let (put, stats) = producer.join().unwrap();
        assert_eq!(got, put);
        assert_eq!(
            stats.dropped_full + put.len() as u64,
            u64::from(FRAMES),
            "every frame is either passed or counted"
        );
        assert_eq!(stats.dropped_big, 0);
    }
}
