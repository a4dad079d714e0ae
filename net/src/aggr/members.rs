//! What an aggregation ([`super::Aggr`]) and a VNIC on it
//! ([`super::AggrVnic`]) share as `NetDevice`s over member devices:
//! staged transmit onto the member a hash picks, receive from every
//! member in turn under a budget, and forwarding of filters, stats,
//! flush, MTU and offloads to every member. The two differ only in who
//! decides which members carry traffic (LACP in the aggregation; its
//! published [`super::AggrState`] in a VNIC), which they pass in.

use alloc::vec::Vec;

use cxos_drivers::{FilterError, NetDevice, NetStats, Offloads, RxMeta, TxError, TxMeta};

/// Frames a member's filter skips (LACP's own, or a non-collecting
/// member's) in one receive call before it gives up for this call:
/// bounded work whatever the wire sends.
const RX_SKIP_BUDGET: usize = 64;

/// Member devices, in member order.
pub(super) struct Members<D> {
    devs: Vec<D>,
    /// The member the next receive starts at (members take turns).
    rx_next: usize,
    /// Where a frame is written before the hash reads it (module docs of
    /// [`super`]); allocated once, grown to the largest frame.
    stage: Vec<u8>,
}

/// What one member's receive call found.
enum Rx<R> {
    Client(R),
    Skipped,
}

impl<D: NetDevice> Members<D> {
    pub(super) fn new(devs: Vec<D>) -> Members<D> {
        Members {
            devs,
            rx_next: 0,
            stage: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.devs.len()
    }

    pub(super) fn get(&self, i: usize) -> Option<&D> {
        self.devs.get(i)
    }

    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut D> {
        self.devs.get_mut(i)
    }

    pub(super) fn iter(&self) -> core::slice::Iter<'_, D> {
        self.devs.iter()
    }

    pub(super) fn into_inner(self) -> Vec<D> {
        self.devs
    }

    /// The smallest member MTU: a frame must fit whichever member the
    /// hash picks.
    pub(super) fn mtu(&self) -> usize {
        self.devs.iter().map(|d| d.mtu()).min().unwrap_or(1500)
    }

    /// What every member offers.
    pub(super) fn offloads(&self) -> Offloads {
        let mut it = self.devs.iter().map(|d| d.offloads());
        let Some(first) = it.next() else {
            return Offloads::default();
        };
        it.fold(first, |a, b| Offloads {
            tx_ipv4_csum: a.tx_ipv4_csum && b.tx_ipv4_csum,
            tx_l4_csum: a.tx_l4_csum && b.tx_l4_csum,
            rx_csum: a.rx_csum && b.rx_csum,
            lso_max: a.lso_max.min(b.lso_max),
            vlan_insert: a.vlan_insert && b.vlan_insert,
            vlan_strip: a.vlan_strip && b.vlan_strip,
        })
    }

    pub(super) fn poll(&mut self) -> usize {
        self.devs.iter_mut().map(|d| d.poll()).sum()
    }

    pub(super) fn flush(&mut self) {
        for d in self.devs.iter_mut() {
            d.flush();
        }
    }

    pub(super) fn stats(&self) -> NetStats {
        let mut s = NetStats::default();
        for d in &self.devs {
            let t = d.stats();
            s.tx_packets += t.tx_packets;
            s.tx_bytes += t.tx_bytes;
            s.rx_packets += t.rx_packets;
            s.rx_bytes += t.rx_bytes;
            s.rx_no_buffer += t.rx_no_buffer;
            s.errors += t.errors;
            s.recoveries += t.recoveries;
        }
        s
    }

    /// `f` on every member, stopping at the first error.
    pub(super) fn each(
        &mut self,
        f: impl FnMut(&mut D) -> Result<(), FilterError>,
    ) -> Result<(), FilterError> {
        self.devs.iter_mut().try_for_each(f)
    }

    /// Room for one more frame on every distributing member (the hash may
    /// pick any of them); 0 when none distributes.
    pub(super) fn tx_free(&self, distributing: impl Fn(usize) -> bool) -> usize {
        self.devs
            .iter()
            .enumerate()
            .filter(|(i, _)| distributing(*i))
            .map(|(_, d)| d.tx_free())
            .min()
            .unwrap_or(0)
    }

    /// Stages `len` bytes written by `f`, then sends them on the member
    /// `pick` chooses for the frame, with the `meta` `f` returns. Returns
    /// `f`'s result and the member's index.
    pub(super) fn send_staged<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
        pick: impl FnOnce(&[u8]) -> Option<usize>,
    ) -> Result<(R, usize), TxError> {
        // Frame and headers of the largest LSO frame, at most.
        let max = self.mtu() + 64 + self.offloads().lso_max as usize;
        if len == 0 || len > max {
            return Err(TxError::BadLength(len));
        }
        if self.stage.len() < len {
            self.stage.resize(len, 0);
        }
        let (r, meta) = f(&mut self.stage[..len]);
        let frame = &self.stage[..len];
        let i = pick(frame)
            .filter(|&i| i < self.devs.len())
            .ok_or(TxError::Down)?;
        self.devs[i].transmit_with(len, meta, |b| b.copy_from_slice(frame))?;
        Ok((r, i))
    }

    /// The next frame of any member that `keep` (given the member's index
    /// and the frame) lets through, members taking turns; frames it
    /// refuses are consumed, at most [`RX_SKIP_BUDGET`] per call.
    pub(super) fn receive<R>(
        &mut self,
        f: impl FnOnce(&[u8], RxMeta) -> R,
        mut keep: impl FnMut(usize, &[u8]) -> bool,
    ) -> Option<R> {
        let count = self.devs.len();
        let mut f = Some(f);
        let mut skipped = 0;
        for k in 0..count {
            let i = (self.rx_next + k) % count;
            loop {
                let got = self.devs[i].receive(|frame, meta| {
                    if !keep(i, frame) {
                        return Rx::Skipped;
                    }
                    match f.take() {
                        Some(f) => Rx::Client(f(frame, meta)),
                        None => Rx::Skipped,
                    }
                });
                match got {
                    None => break,
                    Some(Rx::Client(r)) => {
                        self.rx_next = (i + 1) % count;
                        return Some(r);
                    }
                    Some(Rx::Skipped) => {
                        skipped += 1;
                        if skipped >= RX_SKIP_BUDGET {
                            return None;
                        }
                    }
                }
            }
        }
        None
    }
}

/// The `NetDevice` methods an aggregation and a VNIC on it forward to
/// their `members` ([`Members`]) alike; each type has its own
/// `send_staged(len, f)`, which picks the member.
macro_rules! forward_to_members {
    () => {
        fn mtu(&self) -> usize {
            self.members.mtu()
        }

        fn offloads(&self) -> Offloads {
            self.members.offloads()
        }

        fn transmit<R>(
            &mut self,
            len: usize,
            f: impl FnOnce(&mut [u8]) -> R,
        ) -> Result<R, TxError> {
            self.send_staged(len, |b| (f(b), TxMeta::default()))
        }

        fn transmit_with<R>(
            &mut self,
            len: usize,
            meta: TxMeta,
            f: impl FnOnce(&mut [u8]) -> R,
        ) -> Result<R, TxError> {
            self.send_staged(len, |b| (f(b), meta))
        }

        fn transmit_then<R>(
            &mut self,
            len: usize,
            f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
        ) -> Result<R, TxError> {
            self.send_staged(len, f)
        }

        fn flush(&mut self) {
            self.members.flush()
        }

        fn stats(&self) -> NetStats {
            self.members.stats()
        }

        fn add_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
            self.members.each(|d| d.add_multicast(mac))
        }

        fn remove_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
            self.members.each(|d| d.remove_multicast(mac))
        }

        fn set_promiscuous(&mut self, on: bool) -> Result<(), FilterError> {
            self.members.each(|d| d.set_promiscuous(on))
        }

        fn set_all_multicast(&mut self, on: bool) -> Result<(), FilterError> {
            self.members.each(|d| d.set_all_multicast(on))
        }
    };
}

pub(super) use forward_to_members;
