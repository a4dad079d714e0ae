//! DMA sanitizer: every device access to driver memory goes through [`Bus`],
//! which checks it against the regions the driver handed over and records a
//! [`Violation`] instead of touching memory it must not touch.
//!
//! Regions are granted when the driver hands them over (command queue
//! address, EQ/CQ/WQ page lists, doorbell records, MANAGE_PAGES give) and revoked when it takes them
//! back (DESTROY_EQ, MANAGE_PAGES take) or when DISABLE_HCA ends the
//! function's life. Mailboxes are granted for the duration of the command
//! that points at them, so they are only checked by the bus itself.
#![deny(unsafe_code)]

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use crate::dma::{DmaFault, DmaSpace};

/// What a device access was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A command queue entry (the queue is granted by the init segment write).
    CmdEntry,
    /// An input or output mailbox block of a command in flight.
    Mailbox,
    /// An EQ buffer page (granted by CREATE_EQ).
    EqBuffer,
    /// A page given with MANAGE_PAGES, used by the model as its own memory.
    Page,
    /// A CQ buffer page (granted by CREATE_CQ).
    CqBuffer,
    /// A send or receive work queue page (granted by CREATE_SQ / CREATE_RQ).
    WqBuffer,
    /// A doorbell record of a CQ, SQ or RQ (granted by its CREATE command).
    DoorbellRecord,
    /// Packet data named by a data segment with the reserved lkey: any bus
    /// address the driver owns, so only the bus itself checks it.
    Packet,
}

impl Purpose {
    /// Whether accesses for this purpose must fall inside a granted region.
    fn needs_grant(self) -> bool {
        !matches!(self, Purpose::Mailbox | Purpose::Packet)
    }
}

/// Why a region stopped being the device's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// The driver took it back (DESTROY_EQ, MANAGE_PAGES take, new cmdq address).
    TakenBack,
    /// DISABLE_HCA (or a function reset) ended the function.
    Disabled,
}

/// What was wrong with an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// The bus refused the access (unmapped, freed, crossing a region end).
    Fault(DmaFault),
    /// The address lies in no region the driver handed over for this use
    /// (never handed over, or handed over again for another use).
    Ungranted,
    /// The region was handed over once but has been taken back.
    AfterTakeBack,
    /// The region was handed over before DISABLE_HCA.
    AfterDisable,
    /// A BlueFlame write that is not the WQE in the ring it names
    /// (`crate::datapath::blueflame`; `addr`/`len`: the WQE compared).
    BlueFlameMismatch,
    /// A BlueFlame write (past a plain doorbell's 8 bytes) to a function
    /// that does not report `cmd_hca_cap.bf` (`addr`: the UAR page
    /// offset written).
    BlueFlameWithoutCap,
}

/// One access the device should not have made (or could not make).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub addr: u64,
    pub len: usize,
    pub write: bool,
    pub purpose: Purpose,
    pub kind: ViolationKind,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = if self.write { "write" } else { "read" };
        let why = match self.kind {
            ViolationKind::Fault(fault) => {
                return write!(
                    f,
                    "DMA {dir} of {} bytes at {:#x} ({:?}): {fault}",
                    self.len, self.addr, self.purpose
                );
            }
            ViolationKind::Ungranted => "outside every region handed over for this use",
            ViolationKind::AfterTakeBack => "to a region the driver already took back",
            ViolationKind::AfterDisable => "to a region handed over before DISABLE_HCA",
            ViolationKind::BlueFlameMismatch => {
                return write!(
                    f,
                    "BlueFlame write differs from the WQE in memory ({} bytes at {:#x})",
                    self.len, self.addr
                );
            }
            ViolationKind::BlueFlameWithoutCap => {
                return write!(
                    f,
                    "BlueFlame write at UAR offset {:#x} on a function without BlueFlame",
                    self.addr
                );
            }
        };
        write!(
            f,
            "DMA {dir} of {} bytes at {:#x} ({:?}): {why}",
            self.len, self.addr, self.purpose
        )
    }
}

#[derive(Clone, Copy, Debug)]
struct Grant {
    end: u64,
    purpose: Purpose,
}

/// Purposes with a hot-grant slot ([`Purpose`] discriminants).
const HOT_SLOTS: usize = 9;

/// Most violations kept; the rest are counted only.
const MAX_VIOLATIONS: usize = 4096;
/// Most revoked regions remembered for diagnosis.
const MAX_REVOKED: usize = 4096;

/// Regions handed over, regions taken back, violations seen.
#[derive(Debug)]
pub struct Sanitizer {
    grants: BTreeMap<u64, Grant>,
    /// The grant each purpose last hit, as (start, end): the data path
    /// touches the same few rings over and over. Cleared whenever a grant
    /// is added or removed. (With overlapping grants of different purposes
    /// an access inside the hot region is accepted even when a later-starting
    /// grant of another purpose covers it too: the lenient reading.)
    hot: [Cell<(u64, u64)>; HOT_SLOTS],
    revoked: VecDeque<(u64, u64, Revoked)>,
    violations: Vec<Violation>,
    dropped: u64,
}

impl Default for Sanitizer {
    /// The revoked history is allocated at full size up front: the heap
    /// stays flat however many regions come and go.
    fn default() -> Self {
        Sanitizer {
            grants: BTreeMap::new(),
            hot: Default::default(),
            revoked: VecDeque::with_capacity(MAX_REVOKED),
            violations: Vec::new(),
            dropped: 0,
        }
    }
}

impl Sanitizer {
    /// The driver handed `[start, start+len)` over for `purpose`.
    pub fn grant(&mut self, start: u64, len: u64, purpose: Purpose) {
        self.cool();
        self.revoked
            .retain(|(s, e, _)| *e <= start || *s >= start.saturating_add(len));
        self.grants.insert(
            start,
            Grant {
                end: start.saturating_add(len),
                purpose,
            },
        );
    }

    /// The region starting at `start` is no longer the device's.
    pub fn revoke(&mut self, start: u64, why: Revoked) {
        self.cool();
        if let Some(g) = self.grants.remove(&start) {
            self.remember(start, g.end, why);
        }
    }

    /// Revoke every region granted for `purpose`.
    pub fn revoke_all(&mut self, purpose: Purpose, why: Revoked) {
        self.cool();
        let starts: Vec<(u64, u64)> = self
            .grants
            .iter()
            .filter(|(_, g)| g.purpose == purpose)
            .map(|(s, g)| (*s, g.end))
            .collect();
        for (s, e) in starts {
            self.grants.remove(&s);
            self.remember(s, e, why);
        }
    }

    fn cool(&mut self) {
        for h in &self.hot {
            h.set((0, 0));
        }
    }

    fn remember(&mut self, start: u64, end: u64, why: Revoked) {
        if self.revoked.len() == MAX_REVOKED {
            self.revoked.pop_front();
        }
        self.revoked.push_back((start, end, why));
    }

    /// Whether `[addr, addr+len)` may be accessed for `purpose`.
    pub fn check(&self, addr: u64, len: usize, purpose: Purpose) -> Option<ViolationKind> {
        if !purpose.needs_grant() {
            return None;
        }
        let end = addr.saturating_add(len as u64);
        let hot = &self.hot[purpose as usize % HOT_SLOTS];
        let (hs, he) = hot.get();
        if addr >= hs && end <= he && he > hs {
            return None;
        }
        if let Some((s, g)) = self.grants.range(..=addr).next_back()
            && end <= g.end
            && g.purpose == purpose
        {
            hot.set((*s, g.end));
            return None;
        }
        let revoked = self
            .revoked
            .iter()
            .rev()
            .find(|(s, e, _)| addr >= *s && addr < *e);
        Some(match revoked {
            Some((_, _, Revoked::TakenBack)) => ViolationKind::AfterTakeBack,
            Some((_, _, Revoked::Disabled)) => ViolationKind::AfterDisable,
            None => ViolationKind::Ungranted,
        })
    }

    pub fn record(&mut self, v: Violation) {
        log::warn!(target: "mlx5_sim::sanitizer", "{v}");
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(v);
        } else {
            self.dropped += 1;
        }
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Number of bytes in regions granted for `purpose`.
    pub fn granted_bytes(&self, purpose: Purpose) -> u64 {
        self.grants
            .iter()
            .filter(|(_, g)| g.purpose == purpose)
            .map(|(s, g)| g.end - s)
            .sum()
    }
}

/// The model's only way to driver memory: sanitizer check, then the bus.
pub struct Bus {
    space: Arc<dyn DmaSpace>,
    pub san: Sanitizer,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus").field("san", &self.san).finish()
    }
}

/// An access failed; the violation has been recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaError(pub ViolationKind);

impl Bus {
    pub fn new(space: Arc<dyn DmaSpace>) -> Bus {
        Bus {
            space,
            san: Sanitizer::default(),
        }
    }

    pub fn read(&mut self, addr: u64, dst: &mut [u8], purpose: Purpose) -> Result<(), DmaError> {
        // Zero bytes touch no memory: nothing to check (a frame that ends
        // exactly at the end of a buffer scatters an empty remainder there).
        if dst.is_empty() {
            return Ok(());
        }
        self.access(addr, dst.len(), false, purpose)?;
        match self.space.read(addr, dst) {
            Ok(()) => Ok(()),
            Err(fault) => {
                Err(self.fail(addr, dst.len(), false, purpose, ViolationKind::Fault(fault)))
            }
        }
    }

    pub fn write(&mut self, addr: u64, src: &[u8], purpose: Purpose) -> Result<(), DmaError> {
        if src.is_empty() {
            return Ok(());
        }
        self.access(addr, src.len(), true, purpose)?;
        match self.space.write(addr, src) {
            Ok(()) => Ok(()),
            Err(fault) => {
                Err(self.fail(addr, src.len(), true, purpose, ViolationKind::Fault(fault)))
            }
        }
    }

    fn access(
        &mut self,
        addr: u64,
        len: usize,
        write: bool,
        purpose: Purpose,
    ) -> Result<(), DmaError> {
        match self.san.check(addr, len, purpose) {
            None => Ok(()),
            Some(kind) => Err(self.fail(addr, len, write, purpose, kind)),
        }
    }

    fn fail(
        &mut self,
        addr: u64,
        len: usize,
        write: bool,
        purpose: Purpose,
        kind: ViolationKind,
    ) -> DmaError {
        self.san.record(Violation {
            addr,
            len,
            write,
            purpose,
            kind,
        });
        DmaError(kind)
    }
}
