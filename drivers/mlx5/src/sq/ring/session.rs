//! What a multi-packet session ([`super::empw`], [`super::mpw`]) does to
//! the ring's counters when it closes: one WQE of `nbb` basic blocks is
//! the newest, the completion countdown moves by one, and a signalled
//! session is remembered at its first block with the buffer counter
//! after it, as [`super::Sq::signal`] does for a single WQE. Inlined
//! into both session loops (no call, the counters stay in registers).

use super::{Counters, Signalled};

impl Counters {
    /// The session at `start` (control head `head`, `nbb` blocks, its
    /// buffers ending at `bufs_end`) is posted; returns whether it asks
    /// for a completion (its control segment's flags, written by the
    /// caller).
    #[inline(always)]
    pub(super) fn close_session(
        &mut self,
        signalled: &mut [Signalled],
        start: u16,
        head: u64,
        nbb: u16,
        bufs_end: u16,
    ) -> bool {
        self.last_start = start;
        self.last_head = head;
        self.pc = start.wrapping_add(nbb);
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
}
