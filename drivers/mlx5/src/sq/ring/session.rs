//! The producer side of the ring while a burst writes multi-packet
//! sessions ([`super::empw`], [`super::mpw`]), kept in locals (registers)
//! and stored back once: where the next session starts, the free blocks
//! from there, the completion countdown and the newest session (for the
//! doorbell). Closing a session is the same for both kinds: it becomes
//! the newest WQE, and a signalled one is remembered at its first block
//! with the buffer counter after it, as [`super::Sq::signal`] does for a
//! single WQE.

use super::{Counters, Signalled};

#[derive(Clone, Copy)]
pub(super) struct Cursor {
    /// First basic block of the next session.
    pub pc: u16,
    /// Free basic blocks from `pc` on.
    pub free: usize,
    sig_left: u16,
    cq_every: u16,
    mask: u16,
    lso_pc: u16,
    last_start: u16,
    last_head: u64,
}

impl Cursor {
    #[inline(always)]
    pub(super) fn of(c: &Counters) -> Self {
        Cursor {
            pc: c.pc,
            free: (c.mask as usize + 1) - c.pc.wrapping_sub(c.cc) as usize,
            sig_left: c.sig_left,
            cq_every: c.cq_every,
            mask: c.mask,
            lso_pc: c.lso_pc,
            last_start: c.last_start,
            last_head: c.last_head,
        }
    }

    /// The session at `pc` (control head `head`, `nbb` blocks, its
    /// buffers ending at `bufs_end`) is posted; returns whether it asks
    /// for a completion (its control segment's flags, written by the
    /// caller).
    #[inline(always)]
    pub(super) fn close(
        &mut self,
        signalled: &mut [Signalled],
        head: u64,
        nbb: u16,
        bufs_end: u16,
    ) -> bool {
        let start = self.pc;
        self.last_start = start;
        self.last_head = head;
        self.pc = start.wrapping_add(nbb);
        self.free -= nbb as usize;
        let signal = self.sig_left == 1;
        if signal {
            self.sig_left = self.cq_every;
            if let Some(s) = signalled.get_mut((start & self.mask) as usize) {
                *s = Signalled {
                    counter: start,
                    bufs_end,
                    lso_end: self.lso_pc,
                    nbb: nbb as u8,
                    valid: true,
                };
            }
        } else {
            self.sig_left -= 1;
        }
        signal
    }

    /// Store the producer side back, the buffers taken up to `bufs_pc`.
    #[inline(always)]
    pub(super) fn store(self, c: &mut Counters, bufs_pc: u16) {
        c.pc = self.pc;
        c.sig_left = self.sig_left;
        c.last_start = self.last_start;
        c.last_head = self.last_head;
        c.bufs_pc = bufs_pc;
    }
}
