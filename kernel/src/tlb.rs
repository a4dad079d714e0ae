//! TLB shootdown bookkeeping (Intel SDM vol. 3 4.10.5 "Propagation of
//! paging-structure changes to multiple processors"): a CPU that changes
//! or removes a mapping other CPUs may have cached invalidates its own
//! TLB, publishes what changed, sends the others an IPI and waits until
//! each acknowledged the request.
//!
//! The initiators are serialised by the kernel's page-table lock; the
//! targets run [`Shootdown::serve`] from the IPI handler, or while they
//! spin for that lock themselves (two CPUs changing mappings at once must
//! not wait for each other with interrupts off). Everything here is
//! atomics, so host tests drive it from threads.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Pages one request names; a batch with more invalidates everything.
pub const MAX_PAGES: usize = 16;

/// What one page-table change needs invalidated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushBatch {
    pages: heapless::Vec<u64, MAX_PAGES>,
    all: bool,
}

impl FlushBatch {
    pub const fn new() -> Self {
        Self {
            pages: heapless::Vec::new(),
            all: false,
        }
    }

    /// The translation of `addr` changed.
    pub fn add(&mut self, addr: u64) {
        if self.all || self.pages.contains(&addr) {
            return;
        }
        if self.pages.push(addr).is_err() {
            self.all = true;
            self.pages.clear();
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.pages.is_empty()
    }

    /// The pages to invalidate; `None`: everything.
    pub fn pages(&self) -> Option<&[u64]> {
        (!self.all).then_some(&self.pages[..])
    }
}

/// One invalidation a target CPU carries out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidate {
    Page(u64),
    All,
}

/// The request being served and every CPU's acknowledgement.
#[derive(Debug)]
pub struct Shootdown<const CPUS: usize> {
    /// Bumped by each request (0: none yet).
    generation: AtomicU64,
    all: AtomicBool,
    count: AtomicUsize,
    pages: [AtomicU64; MAX_PAGES],
    /// The last generation each CPU carried out.
    acked: [AtomicU64; CPUS],
    /// Requests each CPU served (shown by `cpus`).
    served: [AtomicU64; CPUS],
}

impl<const CPUS: usize> Default for Shootdown<CPUS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CPUS: usize> Shootdown<CPUS> {
    pub const fn new() -> Self {
        Self {
            generation: AtomicU64::new(0),
            all: AtomicBool::new(false),
            count: AtomicUsize::new(0),
            pages: [const { AtomicU64::new(0) }; MAX_PAGES],
            acked: [const { AtomicU64::new(0) }; CPUS],
            served: [const { AtomicU64::new(0) }; CPUS],
        }
    }

    /// Publish `batch` as the next request; its generation. The caller
    /// holds the page-table lock and has invalidated its own TLB.
    pub fn publish(&self, batch: &FlushBatch) -> u64 {
        match batch.pages() {
            Some(pages) => {
                for (slot, p) in self.pages.iter().zip(pages) {
                    slot.store(*p, Ordering::Relaxed);
                }
                self.count.store(pages.len(), Ordering::Relaxed);
                self.all.store(false, Ordering::Relaxed);
            }
            None => self.all.store(true, Ordering::Relaxed),
        }
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether `cpu` has a request it has not carried out.
    pub fn pending(&self, cpu: usize) -> bool {
        cpu < CPUS
            && self.acked[cpu].load(Ordering::Acquire) < self.generation.load(Ordering::Acquire)
    }

    /// On target `cpu`: carry out the current request through
    /// `invalidate` and acknowledge it. A request that changes while it
    /// is read, or one that follows a request this CPU missed (its
    /// initiator gave up waiting and went on), turns into a full
    /// invalidation.
    pub fn serve(&self, cpu: usize, mut invalidate: impl FnMut(Invalidate)) {
        if cpu >= CPUS {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let acked = self.acked[cpu].load(Ordering::Acquire);
        if acked >= generation {
            return;
        }
        let all = self.all.load(Ordering::Relaxed);
        let count = self.count.load(Ordering::Relaxed).min(MAX_PAGES);
        let mut pages = [0u64; MAX_PAGES];
        for (p, slot) in pages.iter_mut().zip(&self.pages).take(count) {
            *p = slot.load(Ordering::Relaxed);
        }
        let now = self.generation.load(Ordering::Acquire);
        // An earlier request this CPU never carried out named pages it
        // can no longer read: everything goes.
        if all || now != generation || acked + 1 < generation {
            invalidate(Invalidate::All);
        } else {
            pages[..count]
                .iter()
                .for_each(|p| invalidate(Invalidate::Page(*p)));
        }
        self.served[cpu].fetch_add(1, Ordering::Relaxed);
        self.acked[cpu].fetch_max(now, Ordering::AcqRel);
    }

    /// The CPUs of `targets` that have not acknowledged `generation`, as a
    /// bit mask (the initiator waits for it to clear).
    pub fn unacked(&self, generation: u64, targets: impl Iterator<Item = usize>) -> u64 {
        targets
            .filter(|&c| c < CPUS && c < 64 && self.acked[c].load(Ordering::Acquire) < generation)
            .fold(0, |mask, c| mask | 1 << c)
    }

    /// Requests `cpu` has served.
    pub fn served(&self, cpu: usize) -> u64 {
        self.served
            .get(cpu)
            .map_or(0, |s| s.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    #[test]
    fn batch_collects_pages_then_overflows_to_all() {
        let mut b = FlushBatch::new();
        assert!(b.is_empty());
        b.add(0x1000);
        b.add(0x1000);
        b.add(0x20_0000);
        assert_eq!(b.pages(), Some(&[0x1000, 0x20_0000][..]));
        for i in 0..MAX_PAGES as u64 {
            b.add(0x4000_0000 + i * 0x1000);
        }
        assert_eq!(b.pages(), None, "more than {MAX_PAGES} pages: everything");
        assert!(!b.is_empty());
        b.add(0x5000);
        assert_eq!(b.pages(), None);
    }

    #[test]
    fn targets_carry_out_and_acknowledge_each_request() {
        let s = Shootdown::<4>::new();
        let mut batch = FlushBatch::new();
        batch.add(0x7000);
        batch.add(0x9000);
        let g = s.publish(&batch);
        assert_eq!(g, 1);
        assert_eq!(s.unacked(g, 1..4), 0b1110);
        assert!(s.pending(2) && !s.pending(7));
        let mut seen = Vec::new();
        s.serve(2, |i| seen.push(i));
        assert_eq!(seen, [Invalidate::Page(0x7000), Invalidate::Page(0x9000)]);
        assert_eq!(s.unacked(g, 1..4), 0b1010);
        // Served twice (the IPI after the lock spin served it): once.
        s.serve(2, |i| seen.push(i));
        assert_eq!(seen.len(), 2);
        assert_eq!(s.served(2), 1);
        s.serve(1, |_| {});
        s.serve(3, |_| {});
        assert_eq!(s.unacked(g, 1..4), 0);
        assert!(!s.pending(1));

        let mut all = FlushBatch::new();
        for i in 0..=MAX_PAGES as u64 {
            all.add(i * 0x1000);
        }
        let g = s.publish(&all);
        let mut seen = Vec::new();
        s.serve(1, |i| seen.push(i));
        assert_eq!(seen, [Invalidate::All]);
        assert_eq!(s.unacked(g, 1..4), 0b1000 | 0b100);
    }

    #[test]
    fn a_target_that_missed_a_request_flushes_everything_once() {
        let s = Shootdown::<2>::new();
        let mut a = FlushBatch::new();
        a.add(0x1000);
        s.publish(&a);
        // CPU 1 never answered; the next request replaces the pages.
        let mut b = FlushBatch::new();
        b.add(0x2000);
        let g = s.publish(&b);
        let mut seen = Vec::new();
        s.serve(1, |i| seen.push(i));
        // It cannot know what the first request named: 0x2000 alone would
        // leave 0x1000 stale.
        assert_eq!(seen, [Invalidate::All]);
        s.publish(&a);
        seen.clear();
        s.serve(1, |i| seen.push(i));
        assert_eq!(seen, [Invalidate::Page(0x1000)], "in step again");
        assert_eq!(s.unacked(g, 1..2), 0);
    }

    /// Threads as CPUs: an initiator publishes requests and waits for
    /// every acknowledgement while three targets serve them as their
    /// "IPIs" (a channel message) arrive; every target sees every page.
    #[test]
    fn threads_acknowledge_every_request() {
        const TARGETS: usize = 3;
        const ROUNDS: u64 = 200;
        let s = Arc::new(Shootdown::<{ TARGETS + 1 }>::new());
        let mut ipis = Vec::new();
        let mut workers = Vec::new();
        for cpu in 1..=TARGETS {
            let (tx, rx) = mpsc::channel::<()>();
            ipis.push(tx);
            let s = Arc::clone(&s);
            workers.push(std::thread::spawn(move || {
                let mut seen = Vec::new();
                while rx.recv().is_ok() {
                    s.serve(cpu, |i| seen.push(i));
                }
                seen
            }));
        }
        for round in 0..ROUNDS {
            let mut batch = FlushBatch::new();
            batch.add(round * 0x1000);
            let g = s.publish(&batch);
            for tx in &ipis {
                tx.send(()).unwrap();
            }
            while s.unacked(g, 1..=TARGETS) != 0 {
                std::thread::yield_now();
            }
        }
        drop(ipis);
        for w in workers {
            let seen = w.join().unwrap();
            let want: Vec<Invalidate> = (0..ROUNDS).map(|r| Invalidate::Page(r * 0x1000)).collect();
            assert_eq!(seen, want);
        }
    }
}
