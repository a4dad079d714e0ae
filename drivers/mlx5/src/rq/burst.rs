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
        let mut c = RxCursor {
            ci: self.ci,
            posted: self.posted,
            outstanding: self.outstanding,
            key: 0,
            left: 0,
            pos: 0,
            nstrides: self.nstrides,
            shift: self.stride_shift,
            mask: self.mask,
            buf_size: self.buf_size,
            wqes_done: 0,
        };
        c.enter(self.used);
        c
    }

    #[inline(always)]
    pub fn set_cursor(&mut self, c: RxCursor) {
        self.ci = c.ci;
        if c.nstrides != 0 {
            self.used = c.key & 0xffff;
        }
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

    /// Striding: the current WQE's unused strides ([`RxCursor::span`]),
    /// from the queue's own fields.
    #[inline(always)]
    pub fn span(&self) -> Span {
        let left = if self.posted == self.ci {
            0
        } else {
            self.nstrides.saturating_sub(self.used)
        };
        Span {
            pos: (self.ci & self.mask) as usize * self.buf_size
                + ((self.used as usize) << self.stride_shift),
            len: (left as usize) << self.stride_shift,
            key: ((self.ci as u32) << 16) | self.used,
            shift: self.stride_shift,
        }
    }

    /// Striding: take back what a loop left of a window made from
    /// [`Rq::span`] ([`StrideWindow::parts`]: its length when made, the
    /// bytes left, the next key). Whether the WQE was used up (one more
    /// to recycle; the queue stands at the next WQE).
    #[inline(always)]
    pub fn settle_span(&mut self, (full, rest, key): (usize, usize, u32)) -> bool {
        if rest == full {
            return false;
        }
        if rest == 0 {
            self.ci = self.ci.wrapping_add(1);
            self.used = 0;
            self.outstanding += 1;
            self.stats.wqes_done += 1;
            return true;
        }
        self.used = key & 0xffff;
        false
    }

    /// Striding: what a counted run scan expects
    /// ([`crate::cq::RunExpect::counted`]): the next completion's
    /// `wqe_counter` (the first unused stride) and the strides each frame
    /// is guessed to take ([`Rq::learn_step`]).
    #[inline(always)]
    pub fn run_counter(&self) -> (u16, u16) {
        (self.used as u16, self.step)
    }

    /// Striding: the strides of up to `n` frames of `step` strides each
    /// from the current WQE's first unused one, as many frames as the WQE
    /// has strides left (none when it is not posted), in the receive
    /// buffers `all`: their bytes (a whole number of frames), the bytes of
    /// one frame's strides, and the WQE's `wqe_id` as a CQE stores it
    /// (big-endian). [`Rq::took_strides`] takes back how many a loop took.
    #[inline(always)]
    pub fn step_strides<'a>(&self, all: &'a [u8], n: u32, step: u32) -> (&'a [u8], usize, [u8; 2]) {
        let left = if self.posted == self.ci {
            0
        } else {
            self.nstrides.saturating_sub(self.used)
        };
        // The whole run fits the WQE (the usual case): no division.
        let m = if n as u64 * step as u64 <= left as u64 {
            n
        } else {
            left / step.max(1)
        };
        let size = (step as usize) << self.stride_shift;
        let pos = (self.ci & self.mask) as usize * self.buf_size
            + ((self.used as usize) << self.stride_shift);
        let strides = all.get(pos..pos + m as usize * size).unwrap_or(&[]);
        (strides, size, self.ci.to_be_bytes())
    }

    /// Striding: `m` frames of `step` strides each of those
    /// [`Rq::step_strides`] gave were taken. Whether that used up the WQE
    /// (one more to recycle; the queue stands at the next WQE).
    #[inline(always)]
    pub fn took_strides(&mut self, m: u32, step: u32) -> bool {
        self.used += m * step;
        if self.used < self.nstrides {
            return false;
        }
        self.ci = self.ci.wrapping_add(1);
        self.used = 0;
        self.outstanding += 1;
        self.stats.wqes_done += 1;
        true
    }

    /// Striding: the strides the frame a burst last looked at took, the
    /// next run's guess (kept only when a WQE can hold them).
    #[inline(always)]
    pub fn learn_step(&mut self, strides: u32) {
        if strides.wrapping_sub(1) < self.nstrides {
            self.step = strides as u16;
        }
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
/// the frame and whether it used up its WQE (one WQE to recycle). On a
/// striding RQ the cursor keeps what the next completion must say
/// (`key`: its `wqe_id` and first stride), the strides left in the WQE
/// (none when the WQE is not posted) and where the next stride starts,
/// so a frame costs a few compares and adds.
#[derive(Clone, Copy, Debug)]
pub struct RxCursor {
    ci: u16,
    posted: u16,
    outstanding: u16,
    /// Striding: `wqe_id << 16 | wqe_counter` of the next completion.
    key: u32,
    /// Striding: strides left in WQE `ci` (0 if it is not posted).
    left: u32,
    /// Striding: byte offset of the next stride in the buffer region.
    pos: usize,
    nstrides: u32,
    shift: u32,
    mask: u16,
    buf_size: usize,
    wqes_done: u64,
}

impl RxCursor {
    /// Striding: stand at stride `used` of WQE `ci`.
    #[inline(always)]
    fn enter(&mut self, used: u32) {
        if self.nstrides == 0 {
            return;
        }
        self.key = ((self.ci as u32) << 16) | used;
        self.left = if self.posted == self.ci {
            0
        } else {
            self.nstrides.saturating_sub(used)
        };
        self.pos = (self.ci & self.mask) as usize * self.buf_size + ((used as usize) << self.shift);
    }

    #[inline(always)]
    pub fn take(&mut self, wqe_id: u16, counter: u16, byte_cnt: u32) -> Option<(Taken, bool)> {
        self.take_key(((wqe_id as u32) << 16) | counter as u32, byte_cnt)
    }

    /// [`RxCursor::take`] with `wqe_id` and `counter` as one word
    /// (`wqe_id << 16 | counter`).
    #[inline(always)]
    pub fn take_key(&mut self, key: u32, byte_cnt: u32) -> Option<(Taken, bool)> {
        if self.nstrides == 0 {
            let ci = self.ci;
            let len = byte_cnt as usize;
            if self.posted == ci || key as u16 != ci || len.wrapping_sub(1) >= self.buf_size {
                return None;
            }
            self.ci = ci.wrapping_add(1);
            self.outstanding += 1;
            return Some((
                Taken {
                    offset: (ci & self.mask) as usize * self.buf_size,
                    len,
                },
                true,
            ));
        }
        // `mpwrq_cqe_bc`: filler [31], strides [30:16], bytes [15:0]. With
        // the filler bit kept, `strides - 1 < left` refuses a filler, zero
        // strides and more than the WQE has left in one compare.
        let strides = byte_cnt >> 16;
        let len = (byte_cnt & 0xffff) as usize;
        let size = (strides as usize) << self.shift;
        if key != self.key || strides.wrapping_sub(1) >= self.left || len.wrapping_sub(1) >= size {
            return None;
        }
        let offset = self.pos;
        self.pos += size;
        self.key = self.key.wrapping_add(strides);
        self.left -= strides;
        let done = self.left == 0;
        if done {
            self.ci = self.ci.wrapping_add(1);
            self.outstanding += 1;
            self.wqes_done += 1;
            self.enter(0);
        }
        Some((Taken { offset, len }, done))
    }

    /// Whether the next completion must say `wqe_id` and `counter`
    /// (a compressed session's title: the completions after it continue
    /// from there, see [`RxCursor::take_next`]).
    #[inline(always)]
    pub fn expects(&self, wqe_id: u16, counter: u16) -> bool {
        if self.nstrides == 0 {
            counter == self.ci
        } else {
            ((wqe_id as u32) << 16) | counter as u32 == self.key
        }
    }

    /// [`RxCursor::take`] for the completions of a compressed session
    /// after its first ([`RxCursor::expects`]): their `wqe_id` and
    /// `wqe_counter` are the ones the cursor expects by construction, so
    /// only the byte count is checked. Also gives the completion's step
    /// of `wqe_counter` (its strides, or 1 on a cyclic RQ).
    #[inline(always)]
    pub fn take_next(&mut self, byte_cnt: u32) -> Option<(Taken, u16)> {
        if self.nstrides == 0 {
            let ci = self.ci;
            let len = byte_cnt as usize;
            if self.posted == ci || len.wrapping_sub(1) >= self.buf_size {
                return None;
            }
            self.ci = ci.wrapping_add(1);
            self.outstanding += 1;
            let offset = (ci & self.mask) as usize * self.buf_size;
            return Some((Taken { offset, len }, 1));
        }
        let strides = byte_cnt >> 16;
        let len = (byte_cnt & 0xffff) as usize;
        let size = (strides as usize) << self.shift;
        if strides.wrapping_sub(1) >= self.left || len.wrapping_sub(1) >= size {
            return None;
        }
        let offset = self.pos;
        self.pos += size;
        self.key = self.key.wrapping_add(strides);
        self.left -= strides;
        if self.left == 0 {
            self.ci = self.ci.wrapping_add(1);
            self.outstanding += 1;
            self.wqes_done += 1;
            self.enter(0);
        }
        Some((Taken { offset, len }, strides as u16))
    }

    /// Striding: the strides left in the current WQE, as the part of the
    /// receive buffers `all` they cover (empty when the WQE is not
    /// posted). A burst loop takes frames off its front
    /// ([`StrideWindow::take`]): the window's own bounds are then the
    /// checks that a completion's strides are left in the WQE and that
    /// its frame lies in the buffers, one compare for both.
    #[inline(always)]
    pub fn window<'a>(&self, all: &'a [u8]) -> StrideWindow<'a> {
        StrideWindow::at(all, self.span())
    }

    /// Striding: where the window ([`RxCursor::window`]) lies, as plain
    /// numbers a loop inside the buffers' view makes it from
    /// ([`StrideWindow::at`]); [`RxCursor::settle_span`] takes back what
    /// the loop left of it.
    #[inline(always)]
    pub fn span(&self) -> Span {
        Span {
            pos: self.pos,
            len: (self.left as usize) << self.shift,
            key: self.key,
            shift: self.shift,
        }
    }

    /// Striding: [`RxCursor::settle`] for a window made from this
    /// cursor's [`RxCursor::span`] that was `full` bytes long, of which
    /// `rest` are left, and whose next completion is `key`. Whether the
    /// WQE was used up (the cursor stands at the next one).
    #[inline(always)]
    pub fn settle_span(&mut self, full: usize, rest: usize, key: u32) -> bool {
        if rest == full {
            return false;
        }
        let left = (rest >> self.shift) as u32;
        self.pos += ((self.left - left) as usize) << self.shift;
        self.left = left;
        self.key = key;
        if left == 0 {
            self.ci = self.ci.wrapping_add(1);
            self.outstanding += 1;
            self.wqes_done += 1;
            self.enter(0);
            return true;
        }
        false
    }

    /// Striding: take back a window this cursor gave ([`RxCursor::window`])
    /// after its loop took frames off it: `w.rest` strides are left in
    /// the WQE. When none are, the WQE is used up (one more to recycle)
    /// and the cursor stands at the next one; the caller asks a new window.
    #[inline(always)]
    pub fn settle(&mut self, w: &StrideWindow<'_>) {
        self.settle_span(w.full, w.rest.len(), w.key);
    }

    #[inline(always)]
    pub fn is_striding(&self) -> bool {
        self.nstrides != 0
    }

    /// Buffers handed out and not yet recycled (one more for each WQE a
    /// frame used up).
    #[inline(always)]
    pub fn outstanding(&self) -> u16 {
        self.outstanding
    }
}

/// The strides left in a striding RQ's current WQE as a burst loop keeps
/// them: the part of the receive buffers they cover and what the next
/// completion must say (`wqe_id << 16 | wqe_counter`). See
/// [`RxCursor::window`].
#[derive(Clone, Copy, Debug)]
pub struct StrideWindow<'a> {
    rest: &'a [u8],
    /// `rest`'s length when the cursor gave it.
    full: usize,
    key: u32,
    /// `key`'s `wqe_id` as the CQE holds it (big-endian), the same for
    /// every completion of the window.
    id_be: [u8; 2],
    shift: u32,
}

/// Where a striding RQ's window lies in the receive buffers
/// ([`RxCursor::span`]): its byte range, its key and the stride shift.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pos: usize,
    len: usize,
    key: u32,
    shift: u32,
}

impl<'a> StrideWindow<'a> {
    /// The window `span` says, in the receive buffers `all` (empty when
    /// the span is not inside them).
    #[inline(always)]
    pub fn at(all: &'a [u8], span: Span) -> StrideWindow<'a> {
        let rest = all
            .get(span.pos..span.pos.wrapping_add(span.len))
            .unwrap_or(&[]);
        StrideWindow {
            rest,
            full: rest.len(),
            key: span.key,
            id_be: ((span.key >> 16) as u16).to_be_bytes(),
            shift: span.shift,
        }
    }

    /// What a loop left of the window, for [`RxCursor::settle_span`]:
    /// its length when made, the bytes left, the next key.
    #[inline(always)]
    pub fn parts(&self) -> (usize, usize, u32) {
        (self.full, self.rest.len(), self.key)
    }

    /// `wqe_id << 16 | wqe_counter` the next completion must say.
    #[inline(always)]
    pub fn key(&self) -> u32 {
        self.key
    }

    /// Whether a completion whose `wqe_id` and `wqe_counter` fields hold
    /// `id_be` and `counter_be` (big-endian, as in the CQE) is the next
    /// one of the window ([`StrideWindow::key`]): the `wqe_id` compared as
    /// stored (it is the window's), only the counter swapped.
    #[inline(always)]
    pub fn expects_be(&self, id_be: [u8; 2], counter_be: [u8; 2]) -> bool {
        u16::from_ne_bytes(id_be) == u16::from_ne_bytes(self.id_be)
            && u16::from_be_bytes(counter_be) == self.key as u16
    }

    /// Whether the WQE's strides are used up (or it is not posted).
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The frame of a completion whose byte count (`mpwrq_cqe_bc`:
    /// filler `[31]`, strides `[30:16]`, bytes `[15:0]`) is `byte_cnt`,
    /// taken off the window's front with the strides it used (the
    /// completion's `wqe_id` and `wqe_counter` checked by the caller
    /// against [`StrideWindow::key`]). `None`, taking nothing: zero
    /// strides or bytes, more bytes than the strides hold, more strides
    /// than the WQE has left, or the filler bit (then the strides exceed
    /// any WQE). Also gives the strides used.
    #[inline(always)]
    pub fn take(&mut self, byte_cnt: u32) -> Option<(&'a [u8], u32)> {
        let strides = byte_cnt >> 16;
        let len = (byte_cnt & 0xffff) as usize;
        let size = (strides as usize) << self.shift;
        // The bytes must be some and fit the strides, checked before the
        // strides are taken off.
        if len == 0 || len > size {
            return None;
        }
        let (used, rest) = self.rest.split_at_checked(size)?;
        let frame = used.get(..len)?;
        self.rest = rest;
        self.key = self.key.wrapping_add(strides);
        Some((frame, strides))
    }
}
