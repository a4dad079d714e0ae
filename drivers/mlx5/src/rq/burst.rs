//! The receive ring as a burst uses it: a responder completion that is
//! the common case (the next WQE, the next strides, a length that fits)
//! is taken with a handful of compares; anything else is left for
//! [`Rq::complete`], which names what is wrong.

use cxos_drivers::{DmaRegion, Platform};

use super::Rq;

/// Where a frame a burst took lies in the RQ's buffer region.
#[derive(Clone, Copy, Debug)]
pub struct Taken {
    pub offset: usize,
    pub len: usize,
}

impl<P: Platform> Rq<P> {
    /// Whether this is a striding RQ.
    #[inline(always)]
    pub fn is_striding(&self) -> bool {
        self.nstrides != 0
    }

    /// The ring's position and geometry for a burst loop, in a value the
    /// loop keeps in registers; [`Rq::set_cursor`] writes it back.
    #[inline(always)]
    pub fn cursor(&self) -> RxCursor {
        RxCursor {
            ci: self.ci,
            posted: self.posted,
            outstanding: self.outstanding,
            used: self.used,
            nstrides: self.nstrides,
            shift: self.stride_shift,
            mask: self.mask,
            buf_size: self.buf_size,
            wqes_done: 0,
        }
    }

    #[inline(always)]
    pub fn set_cursor(&mut self, c: RxCursor) {
        self.ci = c.ci;
        self.used = c.used;
        self.outstanding = c.outstanding;
        self.stats.wqes_done += c.wqes_done;
    }

    /// Run `g` over a plain view of every receive buffer (software reads
    /// only the frames completions handed it).
    #[inline(always)]
    pub fn with_buffers<R>(&self, g: impl FnOnce(&[u8]) -> R) -> R {
        let len = (self.buf_size << self.log_size).min(self.bufs.len());
        self.bufs.with_bytes(0, len, g)
    }

    /// Read a frame a burst took, in place.
    #[inline(always)]
    pub fn with_taken<R>(&self, t: Taken, g: impl FnOnce(&[u8]) -> R) -> R {
        self.bufs.with_bytes(t.offset, t.len, g)
    }

    /// Count `packets` frames of `bytes` bytes a burst took.
    #[inline(always)]
    pub fn count(&mut self, packets: u64, bytes: u64) {
        self.stats.packets += packets;
        self.stats.bytes += bytes;
    }
}

/// An RQ's position and geometry as a burst loop keeps them ([`Rq::cursor`]).
///
/// [`RxCursor::take`] takes the frame of a responder CQE (`wqe_id` from
/// its first dword, `counter` its `wqe_counter`, `byte_cnt` its byte
/// count) if it is the common case: `None` consumes nothing. It returns
/// the frame and whether it used up its WQE (one WQE to recycle).
#[derive(Clone, Copy, Debug)]
pub struct RxCursor {
    ci: u16,
    posted: u16,
    outstanding: u16,
    used: u32,
    nstrides: u32,
    shift: u32,
    mask: u16,
    buf_size: usize,
    wqes_done: u64,
}

impl RxCursor {
    #[inline(always)]
    pub fn take(&mut self, wqe_id: u16, counter: u16, byte_cnt: u32) -> Option<(Taken, bool)> {
        let ci = self.ci;
        if self.posted == ci {
            return None;
        }
        let slot = (ci & self.mask) as usize;
        if self.nstrides == 0 {
            let len = byte_cnt as usize;
            if counter != ci || len.wrapping_sub(1) >= self.buf_size {
                return None;
            }
            self.ci = ci.wrapping_add(1);
            self.outstanding += 1;
            return Some((
                Taken {
                    offset: slot * self.buf_size,
                    len,
                },
                true,
            ));
        }
        // `mpwrq_cqe_bc`: filler [31], strides [30:16], bytes [15:0]; a
        // filler or zero strides falls to `complete`.
        let strides = (byte_cnt >> 16) & 0x7fff;
        let len = (byte_cnt & 0xffff) as usize;
        let used = self.used;
        let end = used + strides;
        if wqe_id != ci
            || (byte_cnt as i32) < 0
            || counter as u32 != used
            || strides.wrapping_sub(1) >= self.nstrides
            || end > self.nstrides
            || len.wrapping_sub(1) >= (strides as usize) << self.shift
        {
            return None;
        }
        let offset = slot * self.buf_size + ((used as usize) << self.shift);
        let done = end == self.nstrides;
        if done {
            self.ci = ci.wrapping_add(1);
            self.used = 0;
            self.outstanding += 1;
            self.wqes_done += 1;
        } else {
            self.used = end;
        }
        Some((Taken { offset, len }, done))
    }

    #[inline(always)]
    pub fn is_striding(&self) -> bool {
        self.nstrides != 0
    }
}
