//! What a queue set needs from the adapter that owns (or shares) the
//! function: the [`Control`] trait (commands, the platform handles the
//! queues clone, completion events, a place for memory the device may
//! still reference, the link state), and the [`Resources`] and
//! [`DataPathCaps`] bring-up provides.

use alloc::sync::Arc;

use cxos_drivers::{LinkState, Platform, Region};

use crate::adapter::Adapter;
use crate::cmd::{Command, Exec};
use crate::cmd_engine::{CmdPoll, Ticket};
use crate::cq::Cqn;
use crate::eq::{CompEq, Eqn};
use crate::error::{CmdError, CmdFailure};
use crate::error::{Error, Missing, Unsupported};
use crate::fault::{FaultObject, FaultRecord, QUEUE_EVENTS, QueueEvent, Verdict};
use crate::pd::{Lkey, Pd, Tdn};
use crate::uar::Uar;
use crate::vport::Mac;
use crate::wqe::InlineMode;

/// What the data path needs from the adapter: commands, the platform's
/// DMA allocator, MMIO and clock handles (cloned into the queues, so the
/// packet path reaches none of them through the adapter), completion
/// events, and a place for memory the device may still reference.
pub trait Control: Exec {
    type P: Platform;
    fn dma(&self) -> &<Self::P as Platform>::Dma;
    fn mmio(&self) -> &<Self::P as Platform>::Mmio;
    fn clock(&self) -> &<Self::P as Platform>::Clock;
    /// Pop completion events of completion EQ `index` (calling `f` with
    /// each CQN) and re-arm it.
    fn poll_comp_eq(&mut self, index: usize, f: impl FnMut(Cqn)) -> usize;
    /// Completion EQ `index` as a shared handle (its own lock), for data
    /// paths that share the adapter and poll their EQs without it (VNICs);
    /// `None` when there is no such EQ or it cannot be shared.
    fn shared_comp_eq(&self, index: usize) -> Option<Arc<CompEq<Self::P>>>;
    /// Keep memory whose queue could not be destroyed.
    fn retire(&mut self, mem: Region<Self::P>);
    /// Link state of the physical port as last read from its registers.
    fn link(&self) -> LinkState;
    /// Keep, count and print a fault record in the adapter's log
    /// ([`crate::fault`]); returns it as kept.
    fn record_fault(&mut self, r: FaultRecord) -> FaultRecord;
    /// Settle a [`crate::fault::FaultOutcome::Pending`] record (`r` carries
    /// its sequence number) with its outcome, in its place in the log.
    fn settle_fault(&mut self, r: FaultRecord) -> FaultRecord {
        self.record_fault(r)
    }
    /// The packet path left a queue recovery for the owner's recovery
    /// step (`QueueSet::run_pending_recoveries`): ask for it soon.
    fn recovery_wanted(&mut self) {}
    /// The adapter's recovery policy for `object` now.
    fn fault_verdict(&mut self, object: FaultObject) -> Verdict;
    /// Queue error events from EQ0 naming objects `mine` accepts (at most
    /// `max`).
    fn take_queue_events(
        &mut self,
        mine: &dyn Fn(FaultObject) -> bool,
        max: usize,
    ) -> heapless::Vec<QueueEvent, QUEUE_EVENTS>;
    /// A queue set replaced CQ `old` by `new` (CQ recovery): events of
    /// `new` are the caller's from now on.
    fn cq_replaced(&mut self, old: Cqn, new: Cqn) {
        let _ = (old, new);
    }
    /// Completion EQs there are, and the number of the one at `index`
    /// (receive queues spread over them).
    fn comp_eq_count(&self) -> usize {
        1
    }
    fn comp_eqn(&self, index: usize) -> Option<Eqn> {
        let _ = index;
        None
    }
    /// EQ0's number and the consumer counter the driver holds for it
    /// (the periodic QUERY_EQ of EQ0); `None` when not this data path's
    /// to check.
    fn eq0_state(&self) -> Option<(Eqn, u32)> {
        None
    }
    /// Write EQ0's consumer counter again and arm it (EQ0 stall recovery).
    fn eq0_rearm(&mut self) {}
    /// The periodic check of EQ0's interrupts (a lost one is recorded).
    fn eq0_check_interrupt(&mut self) {}
    /// Start `cmd` without waiting for it (the periodic checks: a lost
    /// command must not hold their caller). A control that only runs
    /// commands to completion answers at once.
    fn start<K: Command>(&mut self, cmd: K) -> Started<K> {
        Started::Done(self.exec(&cmd))
    }
    /// Look once at a command [`Control::start`] left with the device
    /// (pending until done or timed out).
    fn collect<K: Command>(&mut self, t: Ticket<K>) -> CmdPoll<K> {
        // Only a control whose `start` hands out tickets gets here.
        CmdPoll::Done(Err(CmdError {
            opcode: K::OPCODE,
            op_mod: t.command().op_mod(),
            failure: CmdFailure::AdapterFailed,
        }))
    }
}

/// What [`Control::start`] did with a command.
#[derive(Debug)]
#[must_use = "a started command must be collected"]
pub enum Started<K: Command> {
    /// With the device: [`Control::collect`] it on a later round.
    Out(Ticket<K>),
    /// Finished already (or refused): its outcome.
    Done(Result<K::Output, CmdError>),
}

impl<P: Platform> Control for Adapter<P> {
    type P = P;
    fn dma(&self) -> &P::Dma {
        self.platform().dma()
    }
    fn mmio(&self) -> &P::Mmio {
        self.platform().mmio()
    }
    fn clock(&self) -> &P::Clock {
        self.platform().clock()
    }
    fn poll_comp_eq(&mut self, index: usize, f: impl FnMut(Cqn)) -> usize {
        Adapter::poll_comp_eq(self, index, f)
    }
    fn shared_comp_eq(&self, index: usize) -> Option<Arc<CompEq<P>>> {
        Adapter::shared_comp_eq(self, index)
    }
    fn retire(&mut self, mem: Region<P>) {
        Adapter::retire(self, mem)
    }
    fn record_fault(&mut self, r: FaultRecord) -> FaultRecord {
        Adapter::record_fault(self, r)
    }
    fn settle_fault(&mut self, r: FaultRecord) -> FaultRecord {
        Adapter::settle_fault(self, r)
    }
    fn fault_verdict(&mut self, object: FaultObject) -> Verdict {
        Adapter::fault_verdict(self, object)
    }
    fn take_queue_events(
        &mut self,
        mine: &dyn Fn(FaultObject) -> bool,
        max: usize,
    ) -> heapless::Vec<QueueEvent, QUEUE_EVENTS> {
        Adapter::take_queue_events(self, mine, max)
    }
    fn comp_eq_count(&self) -> usize {
        self.comp_eqs().len()
    }
    fn comp_eqn(&self, index: usize) -> Option<Eqn> {
        self.comp_eqs().get(index).map(|e| e.0)
    }
    fn eq0_state(&self) -> Option<(Eqn, u32)> {
        Adapter::eq0_state(self)
    }
    fn eq0_rearm(&mut self) {
        Adapter::eq0_rearm(self)
    }
    fn eq0_check_interrupt(&mut self) {
        Adapter::eq0_check_interrupt(self)
    }
    fn start<K: Command>(&mut self, cmd: K) -> Started<K> {
        match self.submit(cmd) {
            Ok(t) => Started::Out(t),
            Err(e) => Started::Done(Err(e)),
        }
    }
    fn collect<K: Command>(&mut self, t: Ticket<K>) -> CmdPoll<K> {
        self.poll_command(t)
    }
    fn link(&self) -> LinkState {
        LinkState {
            up: self.link_up(),
            speed_mbps: if self.link_up() {
                self.port().speed_mbps
            } else {
                0
            },
        }
    }
}

/// What the adapter's bring-up provides to a data path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Resources {
    pub pd: Pd,
    pub td: Tdn,
    pub uar: Uar,
    pub lkey: Lkey,
    /// Completion EQ (number, and index for [`Control::poll_comp_eq`]).
    pub eqn: Eqn,
    pub eq_index: usize,
    pub inline: InlineMode,
    pub mac: Mac,
    /// What the part offers the data path.
    pub caps: DataPathCaps,
}

/// Data path capabilities of the part (`per_protocol_networking_offload_caps`
/// and `cmd_hca_cap`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DataPathCaps {
    /// `csum_cap`: transmit checksum insertion, receive verification.
    pub csum: bool,
    /// `vlan_cap`: receive VLAN stripping.
    pub vlan_strip: bool,
    /// `wqe_vlan_insert`: the Ethernet segment's `insert`.
    pub vlan_insert: bool,
    /// `max_lso_cap`: log2 of the largest LSO message (0: none).
    pub log_max_lso: u8,
    /// `striding_rq` and the stride sizes it takes (log2 bytes).
    pub striding_rq: bool,
    pub log_min_stride: u8,
    pub log_max_stride: u8,
    /// `cqe_compression`: receive CQs may write compressed sessions.
    pub cqe_compression: bool,
    /// `enhanced_multi_pkt_send_wqe`: ENHANCED_MPSW send WQEs.
    pub empw: bool,
    /// `multi_pkt_send_wqe`: legacy MPW send WQEs (LSO opcode, opmod 1).
    pub mpw: bool,
    /// `cq_moderation`: CQs take `cq_period`/`cq_max_count`.
    pub cq_moderation: bool,
    /// `cq_period_start_from_cqe`: the period may run from the first CQE.
    pub cq_period_from_cqe: bool,
    /// One BlueFlame buffer's size (`bf`: half of the `1 <<
    /// log_bf_reg_size` register; 0 without BlueFlame).
    pub bf_size: u16,
}

impl DataPathCaps {
    pub fn of(c: &crate::caps::Caps) -> DataPathCaps {
        let on = c.general.eth_net_offloads;
        DataPathCaps {
            csum: on && c.eth.csum,
            vlan_strip: on && c.eth.vlan,
            vlan_insert: on && c.eth.wqe_vlan_insert,
            log_max_lso: if on { c.eth.max_lso } else { 0 },
            striding_rq: c.general.striding_rq,
            log_min_stride: c.general.log_min_stride_sz_rq,
            log_max_stride: c.general.log_max_stride_sz_rq,
            cqe_compression: c.general.cqe_compression,
            empw: c.eth.enhanced_multi_pkt_send_wqe,
            mpw: on && c.eth.multi_pkt_send_wqe != 0,
            cq_moderation: c.general.cq_moderation,
            cq_period_from_cqe: c.general.cq_period_start_from_cqe,
            bf_size: bf_size(c.general.bf, c.general.log_bf_reg_size),
        }
    }
}

/// One BlueFlame buffer's size from the capabilities, or 0 (no
/// BlueFlame). The two buffers of a register pair lie in the UAR page's
/// BlueFlame area (offset 0x800 to the page's end, 2 KiB), and a write is
/// 64 bytes: a device reporting a register pair larger than that area
/// (`log_bf_reg_size` ≥ 12, which would send the second buffer's writes
/// into the next UAR page) or a buffer under 64 bytes gets no BlueFlame.
fn bf_size(bf: bool, log_bf_reg_size: u8) -> u16 {
    match log_bf_reg_size {
        7..=11 if bf => (1u16 << log_bf_reg_size) / 2,
        _ => 0,
    }
}

impl Resources {
    /// From an attached adapter (completion EQ 0).
    pub fn of<P: Platform>(a: &Adapter<P>) -> Result<Resources, Error> {
        let (eqn, _) = *a.comp_eqs().first().ok_or(Missing::CompEq)?;
        let inline =
            InlineMode::resolve(a.caps().eth.wqe_inline_mode, a.vport().min_wqe_inline_mode)
                .map_err(Unsupported::InlineMode)?;
        Ok(Resources {
            pd: a.pd().ok_or(Missing::Pd)?,
            td: a.tdn().ok_or(Missing::TransportDomain)?,
            uar: a.uar().ok_or(Missing::Uar)?,
            lkey: a.reserved_lkey().ok_or(Missing::ReservedLkey)?,
            eqn,
            eq_index: 0,
            inline,
            mac: a.mac(),
            caps: DataPathCaps::of(a.caps()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::bf_size;

    #[test]
    fn blueflame_buffers_stay_in_the_uar_page() {
        // The usual 512-byte register pair: two 256-byte buffers.
        assert_eq!(bf_size(true, 9), 256);
        // The largest pair the 2 KiB BlueFlame area (0x800..0x1000) holds.
        assert_eq!(bf_size(true, 11), 0x400);
        // Larger pairs would put the second buffer past the UAR page.
        assert_eq!(bf_size(true, 12), 0);
        assert_eq!(bf_size(true, 31), 0);
        // A buffer smaller than one 64-byte write.
        assert_eq!(bf_size(true, 6), 0);
        assert_eq!(bf_size(false, 9), 0);
    }
}
