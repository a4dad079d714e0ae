//! The producer side of the ring while a burst writes multi-packet
//! sessions ([`super::empw`], [`super::mpw`]), kept in locals (registers)
//! and stored back once: where the next session starts, the free blocks
//! from there, the completion countdown and the newest session (for the
//! doorbell). Closing a session is the same for both kinds: it becomes
//! the newest WQE, and a signalled one is remembered at its first block
//! with the buffer counter after it, as [`super::Sq::signal`] does for a
//! single WQE.

use super::{Burst, Counters, Signalled, SqStats};

impl Counters {
    /// Free basic blocks from `pc` on.
    #[inline(always)]
    pub(super) fn free_blocks(&self) -> usize {
        (self.mask as usize + 1) - self.pc.wrapping_sub(self.cc) as usize
    }

    /// The session at `pc` (control head `head`, `nbb` blocks, its
    /// buffers ending at `bufs_end`) is posted: it is the newest WQE.
    /// Returns whether it asks for a completion (its control segment's
    /// flags, written by the caller).
    #[inline(always)]
    pub(super) fn close_session(
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
        self.bufs_pc = bufs_end;
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

impl SqStats {
    /// A multi-packet burst is over: `sent` of `n` frames (`bytes` in all)
    /// went out, with checksum flags (`csum`) and an inserted tag
    /// (`vlan`) on each; it stopped early on a full ring unless a frame
    /// was refused (`bad`).
    #[inline(always)]
    pub(super) fn sessions_sent(
        &mut self,
        sent: usize,
        n: usize,
        bad: bool,
        bytes: u64,
        csum: bool,
        vlan: bool,
    ) -> Burst {
        self.packets += sent as u64;
        self.bytes += bytes;
        if csum {
            self.csum += sent as u64;
        }
        if vlan {
            self.vlan_insert += sent as u64;
        }
        let full = sent < n && !bad;
        if full {
            self.full += 1;
        }
        Burst { sent, full }
    }
}
