//! Completion queues: CREATE/DESTROY/QUERY/MODIFY_CQ (`create_cq_in`,
//! `cqc`, `query_cq_out`, `modify_cq_in`, mlx5_ifc.h), CQE writing
//! (`struct mlx5_cqe64`, `struct mlx5_err_cqe`, device.h), the arm doorbell
//! (UAR +0x20) and the doorbell record (`set_ci` dword 0, arm dword 1).
//!
//! Ownership: CQE `producer` is written with owner bit
//! `(producer >> log_cq_size) & 1` in `op_own` bit 0; software owns an entry
//! when that bit matches its own wrap parity.
//! Overflow (PRM "CQ overrun"): before writing over an entry the model
//! re-reads the doorbell record's `set_ci`; with `oi` clear and no free
//! entry the CQE is not written, the CQ's status becomes CQ_OVERFLOW (0x9)
//! and a CQ error event (type 0x04, syndrome 1) is raised; the CQ writes no
//! more CQEs until destroyed. With `oi` set it overwrites.
//! Events: an armed CQ writes a completion EQE (type 0x00, CQN at EQE
//! 0x38) to its EQ on its next CQE and disarms; arming while CQEs beyond
//! the arm's consumer index exist fires at once. With moderation
//! (`cq_period`/`cq_max_count`, PRM "Completion Event Moderation") the
//! armed CQ's event waits for `cq_max_count` CQEs since arming or for
//! `cq_period` µs from its first CQE (`cq_period_mode` START_FROM_CQE) or
//! from its last event (START_FROM_EQE); [`tick`] raises the events whose
//! period ran out.
#![deny(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{pas, reserved, reserved_in};
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::sanitizer::{Purpose, Revoked};
use crate::syndrome::{self as syn, CmdError};

pub const CQE_SIZE: usize = 64;
const COUNTER_MASK: u32 = 0xff_ffff;
/// `MLX5_CQC_STATUS_CQ_OVERFLOW` / CQ error event syndrome "CQ overrun".
pub const STATUS_OVERFLOW: u8 = 0x9;
pub const CQ_ERROR_OVERRUN: u8 = 0x1;
/// First CQN handed out (numbers below are never valid, catching a driver
/// that passes another object's number).
pub const FIRST_CQN: u32 = 0x80;

/// `cqc` fields (bit offsets inside the context).
pub mod cqc {
    use crate::bits::{F, f};
    pub const STATUS: F = f(0x0, 4);
    /// reserved_at_4, dbr_umem_valid, apu_cq.
    pub const UMEM_APU: F = f(0x4, 4);
    pub const CQE_SZ: F = f(0x8, 3);
    pub const CC: F = f(0xb, 1);
    pub const SCQE_BREAK: F = f(0xd, 1);
    pub const OI: F = f(0xe, 1);
    pub const CQ_PERIOD_MODE: F = f(0xf, 2);
    pub const CQE_COMP_EN: F = f(0x11, 1);
    pub const MINI_CQE_RES_FORMAT: F = f(0x12, 2);
    pub const ST: F = f(0x14, 4);
    pub const COMPRESSION_LAYOUT: F = f(0x1e, 2);
    pub const PAGE_OFFSET: F = f(0x54, 6);
    pub const LOG_CQ_SIZE: F = f(0x63, 5);
    pub const UAR_PAGE: F = f(0x68, 0x18);
    pub const CQ_PERIOD: F = f(0x84, 0xc);
    pub const CQ_MAX_COUNT: F = f(0x90, 0x10);
    pub const C_EQN: F = f(0xa0, 0x20);
    pub const LOG_PAGE_SIZE: F = f(0xc3, 5);
    pub const LAST_NOTIFIED_INDEX: F = f(0x108, 0x18);
    pub const CONSUMER_COUNTER: F = f(0x148, 0x18);
    pub const PRODUCER_COUNTER: F = f(0x168, 0x18);
    pub const DBR_ADDR: F = f(0x1c0, 0x40);
    /// Reserved bits of `cqc`.
    pub const RESERVED: [F; 13] = [
        f(0xc, 1),
        f(0x18, 6),
        f(0x20, 0x20),
        f(0x40, 0x14),
        f(0x5a, 6),
        f(0x60, 3),
        f(0x80, 4),
        f(0xc0, 3),
        f(0xc8, 0x18),
        f(0xe0, 0x20),
        f(0x100, 8),
        f(0x140, 8),
        f(0x180, 0x40),
    ];
}

/// Byte offsets in `create_cq_in` / `query_cq_out` / `modify_cq_in`.
pub mod layout {
    pub const CTX: usize = 0x10;
    pub const PAS: usize = 0x110;
}

/// CQE byte offsets and opcodes (`struct mlx5_cqe64`, `struct mlx5_err_cqe`,
/// `MLX5_CQE_*` in cq.h).
pub mod cqe {
    pub const RSS_HASH: usize = 0x0c;
    pub const RSS_HASH_TYPE: usize = 0x10;
    pub const CHECK_SUM: usize = 0x14;
    pub const HDS_IP_EXT: usize = 0x1c;
    pub const L4_L3_HDR_TYPE: usize = 0x1d;
    pub const VLAN_INFO: usize = 0x1e;
    /// `CQE_L2_OK`, `CQE_L3_OK`, `CQE_L4_OK` (device.h) in hds_ip_ext.
    pub const L2_OK: u8 = 1 << 0;
    pub const L3_OK: u8 = 1 << 1;
    pub const L4_OK: u8 = 1 << 2;
    pub const BYTE_CNT: usize = 0x2c;
    pub const VENDOR_ERR_SYND: usize = 0x36;
    pub const SYNDROME: usize = 0x37;
    /// `sop_drop_qpn` / `s_wqe_opcode_qpn`: WQE opcode << 24 | queue number.
    pub const QPN: usize = 0x38;
    pub const WQE_COUNTER: usize = 0x3c;
    pub const OP_OWN: usize = 0x3f;
    pub const OP_REQ: u8 = 0x0;
    pub const OP_RESP_SEND: u8 = 0x2;
    pub const OP_REQ_ERR: u8 = 0xd;
    pub const OP_RESP_ERR: u8 = 0xe;
    /// `MLX5_CQE_SYNDROME_*` (cq.h).
    pub const SYN_LOCAL_LENGTH: u8 = 0x01;
    pub const SYN_LOCAL_QP_OP: u8 = 0x02;
    pub const SYN_LOCAL_PROT: u8 = 0x04;
    pub const SYN_WR_FLUSH: u8 = 0x05;
}

#[derive(Debug, Clone)]
pub struct Cq {
    pub cqn: u32,
    pub log_size: u8,
    pub uar: u32,
    pub eqn: u8,
    pub pas: Vec<u64>,
    pub dbr: u64,
    /// CQEs written (24-bit counter).
    pub producer: u32,
    /// Consumer counter last read from the doorbell record (or an arm doorbell).
    pub consumer: u32,
    pub armed: bool,
    pub oi: bool,
    pub status: u8,
    /// Moderation (PRM "Completion Event Moderation"): `cq_period` in
    /// microseconds, `cq_max_count` CQEs; both 0: every armed CQE fires.
    pub period: u16,
    pub max_count: u16,
    /// `cq_period_mode`: the period runs from the first CQE since arming
    /// (`START_FROM_CQE`) rather than from the CQ's last event.
    pub period_from_cqe: bool,
    /// Producer counter when the CQ was armed (moderation counts from it).
    pub armed_at: u32,
    /// When the CQ last raised its event (`START_FROM_EQE`'s origin).
    pub last_event: Option<Instant>,
    /// The armed CQ holds unsignalled CQEs: its event is due at this time.
    pub due: Option<Instant>,
    /// Completion events raised (the moderation tests count them).
    pub events: u64,
    /// SQs and RQs bound to this CQ.
    pub users: u32,
    /// CQEs not written because the CQ was full or in error.
    pub overruns: u64,
    /// `mini_cqe_res_format` when created with `cqe_comp_en`.
    pub compression: Option<u8>,
    /// CQEs held for a compressed session (`crate::datapath::mini_cqe`;
    /// capacity reserved at creation, at most `MAX_SESSION`).
    pub session: Vec<[u8; CQE_SIZE]>,
}

#[derive(Debug, Default)]
pub struct Cqs {
    map: BTreeMap<u32, Cq>,
    /// A burst of received frames is being delivered: compressing CQs
    /// hold their CQEs until it ends.
    pub batching: bool,
    /// CQs whose moderation period is running (`Cq::due`).
    timed: BTreeSet<u32>,
    /// A period started since [`Cqs::take_new_timer`]: a model loop
    /// asleep must wake to time it.
    new_timer: bool,
}

impl Cqs {
    pub fn get(&self, cqn: u32) -> Option<&Cq> {
        self.map.get(&cqn)
    }
    pub fn get_mut(&mut self, cqn: u32) -> Option<&mut Cq> {
        self.map.get_mut(&cqn)
    }
    pub fn uses_uar(&self, uar: u32) -> bool {
        self.map.values().any(|c| c.uar == uar)
    }
    pub fn uses_eq(&self, eqn: u8) -> bool {
        self.map.values().any(|c| c.eqn == eqn)
    }
    pub fn count(&self) -> usize {
        self.map.len()
    }
    /// The earliest moderation deadline: the model's loop wakes by then.
    pub fn next_due(&self) -> Option<Instant> {
        self.timed
            .iter()
            .filter_map(|n| self.map.get(n).and_then(|c| c.due))
            .min()
    }
    pub fn take_new_timer(&mut self) -> bool {
        std::mem::take(&mut self.new_timer)
    }
    /// CQs holding CQEs for a session.
    pub fn with_session(&self) -> impl Iterator<Item = u32> + '_ {
        self.map
            .values()
            .filter(|c| !c.session.is_empty())
            .map(|c| c.cqn)
    }
}

fn ctx(fld: F) -> F {
    fld.at(layout::CTX)
}

/// CREATE_CQ.
pub fn create(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40), f(0x280, 0x60), f(0x2e1, 0x59f)])?;
    reserved_in(inp, layout::CTX, &cqc::RESERVED)?;
    let unsupported = [
        cqc::UMEM_APU,
        cqc::CQE_SZ,
        cqc::CC,
        cqc::SCQE_BREAK,
        cqc::COMPRESSION_LAYOUT,
    ];
    if unsupported.iter().any(|u| get(inp, ctx(*u)) != 0) || get(inp, f(0x2e0, 1)) != 0 {
        return Err(syn::CQ_FEATURE);
    }
    // Compression needs the capability; the formats offered are the RSS
    // hash and the checksum (no stride index: `mini_cqe_resp_stride_index` 0).
    let compression = if get(inp, ctx(cqc::CQE_COMP_EN)) != 0 {
        let fmt = get(inp, ctx(cqc::MINI_CQE_RES_FORMAT)) as u8;
        if dev.caps.general(super::caps::hca_cap::CQE_COMPRESSION) == 0
            || fmt > crate::datapath::mini_cqe::RES_CSUM
        {
            return Err(syn::CQ_FEATURE);
        }
        Some(fmt)
    } else if get(inp, ctx(cqc::MINI_CQE_RES_FORMAT)) != 0 {
        return Err(syn::CQ_FEATURE);
    } else {
        None
    };
    let (period, max_count, period_from_cqe) = moderation(dev, inp)?;
    let log_size = get(inp, ctx(cqc::LOG_CQ_SIZE)) as u8;
    if log_size as u64 > dev.caps.general(super::caps::hca_cap::LOG_MAX_CQ_SZ) {
        return Err(syn::CQ_SIZE);
    }
    if get(inp, ctx(cqc::LOG_PAGE_SIZE)) != 0 || get(inp, ctx(cqc::PAGE_OFFSET)) != 0 {
        return Err(syn::QUEUE_PAGE_GEOMETRY);
    }
    let uar = get(inp, ctx(cqc::UAR_PAGE)) as u32;
    if !dev.uars.contains(uar) {
        return Err(syn::UNKNOWN_UAR);
    }
    let eqn = get(inp, ctx(cqc::C_EQN));
    if eqn > 0xff || dev.eqs.get(eqn as u8).is_none() {
        return Err(syn::UNKNOWN_EQ);
    }
    let dbr = get(inp, ctx(cqc::DBR_ADDR));
    if dbr == 0 || !dbr.is_multiple_of(8) {
        return Err(syn::DBR_MISALIGNED);
    }
    let bytes = (CQE_SIZE as u64) << log_size;
    let pas = pas::read(inp, layout::PAS, bytes)?;
    let max = 1u64 << dev.caps.general(super::caps::hca_cap::LOG_MAX_CQ).min(24);
    if dev.nic.cqs.map.len() as u64 >= max {
        return Err(syn::NO_CQ);
    }
    let Some(cqn) = (FIRST_CQN..=COUNTER_MASK).find(|n| !dev.nic.cqs.map.contains_key(n)) else {
        return Err(syn::NO_CQ);
    };
    pas::grant(dev, &pas, bytes, Purpose::CqBuffer);
    dev.bus.san.grant(dbr, 8, Purpose::DoorbellRecord);
    let cq = Cq {
        cqn,
        log_size,
        uar,
        eqn: eqn as u8,
        pas,
        dbr,
        producer: 0,
        consumer: 0,
        armed: false,
        oi: get(inp, ctx(cqc::OI)) != 0,
        status: 0,
        period,
        max_count,
        period_from_cqe,
        armed_at: 0,
        last_event: None,
        due: None,
        events: 0,
        users: 0,
        overruns: 0,
        compression,
        session: Vec::with_capacity(if compression.is_some() {
            crate::datapath::mini_cqe::MAX_SESSION
        } else {
            0
        }),
    };
    dev.nic.cqs.map.insert(cqn, cq);
    // create_cq_out: cqn at bit 0x48.
    set(out, f(0x48, 0x18), cqn as u64);
    Ok(())
}

/// The cqc's moderation fields, checked against `cq_moderation` and
/// `cq_period_start_from_cqe` (a part without them takes only 0/0 and
/// `START_FROM_EQE`).
fn moderation(dev: &Function, inp: &[u8]) -> Result<(u16, u16, bool), CmdError> {
    use super::caps::hca_cap;
    let period = get(inp, ctx(cqc::CQ_PERIOD)) as u16;
    let max_count = get(inp, ctx(cqc::CQ_MAX_COUNT)) as u16;
    let mode = get(inp, ctx(cqc::CQ_PERIOD_MODE));
    if (period != 0 || max_count != 0) && dev.caps.general(hca_cap::CQ_MODERATION) == 0 {
        return Err(syn::CQ_FEATURE);
    }
    match mode {
        PERIOD_FROM_EQE => Ok((period, max_count, false)),
        PERIOD_FROM_CQE if dev.caps.general(hca_cap::CQ_PERIOD_START_FROM_CQE) != 0 => {
            Ok((period, max_count, true))
        }
        _ => Err(syn::CQ_FEATURE),
    }
}

/// `enum mlx5_cq_period_mode`.
const PERIOD_FROM_EQE: u64 = 0;
const PERIOD_FROM_CQE: u64 = 1;

/// destroy_cq_in / query_cq_in / modify_cq_in: cqn at bit 0x48.
fn cqn_of(inp: &[u8]) -> u32 {
    get(inp, f(0x48, 0x18)) as u32
}

fn release(dev: &mut Function, cq: &Cq, why: Revoked) {
    pas::revoke(dev, &cq.pas, why);
    dev.bus.san.revoke(cq.dbr, why);
}

/// DESTROY_CQ: refused while an SQ or RQ still completes into it.
pub fn destroy(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let cqn = cqn_of(inp);
    match dev.nic.cqs.map.get(&cqn) {
        None => return Err(syn::UNKNOWN_CQ),
        Some(cq) if cq.users != 0 => return Err(syn::CQ_IN_USE),
        Some(_) => {}
    }
    dev.nic.cqs.timed.remove(&cqn);
    if let Some(cq) = dev.nic.cqs.map.remove(&cqn) {
        release(dev, &cq, Revoked::TakenBack);
    }
    Ok(())
}

/// Destroy every CQ (teardown).
pub fn destroy_all(dev: &mut Function) {
    let cqs = std::mem::take(&mut dev.nic.cqs.map);
    dev.nic.cqs.timed.clear();
    for cq in cqs.values() {
        release(dev, cq, Revoked::Disabled);
    }
}

/// QUERY_CQ (`query_cq_out`: context at 0x10, pas at 0x110).
pub fn query(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let Some(cq) = dev.nic.cqs.map.get(&cqn_of(inp)) else {
        return Err(syn::UNKNOWN_CQ);
    };
    set(out, ctx(cqc::STATUS), cq.status as u64);
    set(out, ctx(cqc::OI), cq.oi as u64);
    set(out, ctx(cqc::CQ_PERIOD_MODE), cq.period_from_cqe as u64);
    // st: `MLX5_CQC_ST_NOTIFICATION_REQUEST_ARMED` 0x9 / `MLX5_CQC_ST_FIRED` 0xa.
    set(out, ctx(cqc::ST), if cq.armed { 0x9 } else { 0xa });
    set(out, ctx(cqc::LOG_CQ_SIZE), cq.log_size as u64);
    set(out, ctx(cqc::UAR_PAGE), cq.uar as u64);
    set(out, ctx(cqc::CQ_PERIOD), cq.period as u64);
    set(out, ctx(cqc::CQ_MAX_COUNT), cq.max_count as u64);
    set(out, ctx(cqc::C_EQN), cq.eqn as u64);
    set(out, ctx(cqc::CONSUMER_COUNTER), cq.consumer as u64);
    set(out, ctx(cqc::PRODUCER_COUNTER), cq.producer as u64);
    set(out, ctx(cqc::DBR_ADDR), cq.dbr);
    pas::put(out, layout::PAS, &cq.pas);
    Ok(())
}

/// `modify_field_select` bits of MODIFY_CQ (`MLX5_CQ_MODIFY_PERIOD`, `_COUNT`;
/// PRM "MODIFY_CQ": bit 3 `c_eqn`, the bit cq.h's enum skips).
const MODIFY_PERIOD: u64 = 1 << 0;
const MODIFY_COUNT: u64 = 1 << 1;
const MODIFY_EQN: u64 = 1 << 3;

/// MODIFY_CQ (op_mod 0: moderation, and the EQ the CQ reports to; resize
/// is not offered). The new EQ must exist; the CQ's armed state and its
/// CQEs stay, its next event goes to the new EQ.
pub fn modify(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x280, 0x60), f(0x2e0, 0x5a0)])?;
    let select = get(inp, f(0x60, 0x20));
    if select & !(MODIFY_PERIOD | MODIFY_COUNT | MODIFY_EQN) != 0 {
        return Err(syn::CQ_MODIFY_FIELD);
    }
    let eqn = get(inp, ctx(cqc::C_EQN));
    let eq_known = eqn <= 0xff && dev.eqs.get(eqn as u8).is_some();
    let Some(cq) = dev.nic.cqs.map.get_mut(&cqn_of(inp)) else {
        return Err(syn::UNKNOWN_CQ);
    };
    if select & MODIFY_EQN != 0 {
        if !eq_known {
            return Err(syn::UNKNOWN_EQ);
        }
        cq.eqn = eqn as u8;
    }
    if select & MODIFY_PERIOD != 0 {
        cq.period = get(inp, ctx(cqc::CQ_PERIOD)) as u16;
    }
    if select & MODIFY_COUNT != 0 {
        cq.max_count = get(inp, ctx(cqc::CQ_MAX_COUNT)) as u16;
    }
    // A running period restarts under the new values: the held CQEs are
    // judged again now.
    let cqn = cq.cqn;
    if select & (MODIFY_PERIOD | MODIFY_COUNT) != 0 && cq.due.take().is_some() {
        dev.nic.cqs.timed.remove(&cqn);
        completed(dev, cqn);
    }
    Ok(())
}

/// The arm doorbell (UAR +0x20, 64-bit): `hi` = sn << 28 | cmd << 24 | ci,
/// `cqn` the low dword. Both commands (next / solicited) arm.
pub fn arm_doorbell(dev: &mut Function, page: u32, hi: u32, cqn: u32) {
    let ci = hi & COUNTER_MASK;
    let Some(cq) = dev.nic.cqs.map.get_mut(&(cqn & COUNTER_MASK)) else {
        log::debug!(target: "mlx5_sim::cq", "arm doorbell for unknown CQ {cqn:#x} dropped");
        return;
    };
    if cq.uar != page {
        log::debug!(target: "mlx5_sim::cq", "CQ {cqn:#x} armed on UAR {page}, not its UAR {}: dropped", cq.uar);
        return;
    }
    cq.consumer = ci;
    let cqn = cq.cqn;
    if cq.producer != ci {
        fire(dev, cqn, Instant::now());
    } else {
        // Every CQE consumed: nothing is left for a running period.
        cq.armed = true;
        cq.armed_at = ci;
        if cq.due.take().is_some() {
            dev.nic.cqs.timed.remove(&cqn);
        }
    }
}

/// Raise the event of CQ `cqn` (disarming it, ending its period).
fn fire(dev: &mut Function, cqn: u32, now: Instant) {
    let Some(cq) = dev.nic.cqs.map.get_mut(&cqn) else {
        return;
    };
    cq.armed = false;
    cq.due = None;
    let eqn = cq.eqn;
    let moderated = cq.period != 0 || cq.max_count != 0;
    dev.nic.cqs.timed.remove(&cqn);
    if moderated {
        dev.nic.wire.stats.cq_moderated_events += 1;
    }
    completion_event_at(dev, eqn, cqn, now);
}

/// Moderation periods that have run out at `now` raise their events
/// (called by the model's loop each iteration, and by the in-process
/// harness when the driver looks for interrupts). Work is bounded by the
/// number of CQs with a running period.
pub fn tick(dev: &mut Function, now: Instant) {
    if dev.nic.cqs.timed.is_empty() {
        return;
    }
    let cqs = &mut dev.nic.cqs;
    let mut due = Vec::new();
    cqs.timed.retain(|n| match cqs.map.get_mut(n) {
        Some(c) if c.due.is_some_and(|d| d > now) => true,
        Some(c) => {
            // Run out: an armed CQ fires; a disarmed one has nothing to do.
            if c.due.take().is_some() && c.armed {
                due.push(*n);
            }
            false
        }
        None => false,
    });
    for cqn in due {
        fire(dev, cqn, now);
    }
}

fn completion_event_at(dev: &mut Function, eqn: u8, cqn: u32, now: Instant) {
    if let Some(cq) = dev.nic.cqs.map.get_mut(&cqn) {
        cq.last_event = Some(now);
        cq.events += 1;
    }
    // `struct mlx5_eqe_comp`: cqn in the last dword of the 28-byte data.
    let mut data = [0u8; 28];
    data[24..28].copy_from_slice(&cqn.to_be_bytes());
    super::eq::write_eqe(dev, eqn, super::eq::event::COMPLETION, 0, &data);
}

/// Write `entry` (its opcode already in `op_own` bits 7:4) as the next CQE
/// of CQ `cqn`, setting the owner bit (or hold it for a compressed
/// session, `crate::datapath::mini_cqe`). Returns false when the CQE could
/// not be written (unknown CQ, overflow, CQ in error, DMA failure).
pub fn post(dev: &mut Function, cqn: u32, entry: &mut [u8; CQE_SIZE]) -> bool {
    if let Some(done) = crate::datapath::mini_cqe::hold(dev, cqn, entry) {
        return done;
    }
    post_now(dev, cqn, entry)
}

/// [`post`] without compression.
pub fn post_now(dev: &mut Function, cqn: u32, entry: &mut [u8; CQE_SIZE]) -> bool {
    let Some(at) = reserve(dev, cqn, 1) else {
        return false;
    };
    if write_slot(dev, cqn, at, entry, true) {
        completed(dev, cqn);
        true
    } else {
        false
    }
}

/// Take `n` entries of CQ `cqn` (producer counter advanced), returning
/// the producer counter of the first; `None` when the CQ is unknown, in
/// error, or overruns (PRM "CQ overrun", see the module docs).
pub fn reserve(dev: &mut Function, cqn: u32, n: u32) -> Option<u32> {
    let cq = dev.nic.cqs.map.get_mut(&cqn)?;
    if cq.status != 0 {
        cq.overruns += n as u64;
        return None;
    }
    let nent = 1u32 << cq.log_size;
    if (cq.producer.wrapping_sub(cq.consumer) & COUNTER_MASK) + n > nent && !cq.oi {
        // Looks full: fetch the consumer counter the driver last published.
        let dbr = cq.dbr;
        let mut raw = [0u8; 4];
        dev.bus.read(dbr, &mut raw, Purpose::DoorbellRecord).ok()?;
        let cq = dev.nic.cqs.map.get_mut(&cqn)?;
        cq.consumer = u32::from_be_bytes(raw) & COUNTER_MASK;
        if (cq.producer.wrapping_sub(cq.consumer) & COUNTER_MASK) + n > nent {
            overrun(dev, cqn);
            // A session of `n` CQEs is lost whole.
            if let Some(cq) = dev.nic.cqs.map.get_mut(&cqn) {
                cq.overruns += n as u64 - 1;
            }
            return None;
        }
    }
    let cq = dev.nic.cqs.map.get_mut(&cqn)?;
    let at = cq.producer;
    cq.producer = (cq.producer + n) & COUNTER_MASK;
    Some(at)
}

/// Write `entry` into the slot of producer counter `at`; with `owned`, set
/// its owner bit and write `op_own` last (the driver never sees a valid
/// owner bit over a stale body).
pub fn write_slot(
    dev: &mut Function,
    cqn: u32,
    at: u32,
    entry: &[u8; CQE_SIZE],
    owned: bool,
) -> bool {
    let Some(cq) = dev.nic.cqs.map.get(&cqn) else {
        return false;
    };
    let nent = 1u32 << cq.log_size;
    let byte = (at & (nent - 1)) as u64 * CQE_SIZE as u64;
    let Some(addr) = pas::addr(&cq.pas, byte) else {
        return false;
    };
    if !owned {
        return dev.bus.write(addr, entry, Purpose::CqBuffer).is_ok();
    }
    let owner = ((at >> cq.log_size) & 1) as u8;
    let op_own = (entry[cqe::OP_OWN] & 0xfe) | owner;
    dev.bus
        .write(addr, &entry[..CQE_SIZE - 1], Purpose::CqBuffer)
        .is_ok()
        && dev
            .bus
            .write(addr + 0x3f, &[op_own], Purpose::CqBuffer)
            .is_ok()
}

/// CQEs were written: an armed CQ fires its completion event and disarms
/// -- at once without moderation; with it, once `cq_max_count` CQEs have
/// been written since arming or `cq_period` µs have passed (checked
/// here and by [`tick`]).
pub fn completed(dev: &mut Function, cqn: u32) {
    let Some(cq) = dev.nic.cqs.map.get_mut(&cqn) else {
        return;
    };
    if !cq.armed {
        return;
    }
    let now = Instant::now();
    if cq.period == 0 && cq.max_count == 0 {
        return fire(dev, cqn, now);
    }
    let held = cq.producer.wrapping_sub(cq.armed_at) & COUNTER_MASK;
    if cq.max_count != 0 && held >= u32::from(cq.max_count) {
        return fire(dev, cqn, now);
    }
    if cq.period == 0 {
        // Count only: the event waits for the count.
        return;
    }
    let due = match cq.due {
        Some(d) => d,
        None => {
            let from = match cq.last_event {
                Some(t) if !cq.period_from_cqe => t,
                _ => now,
            };
            from + Duration::from_micros(u64::from(cq.period))
        }
    };
    if due <= now {
        return fire(dev, cqn, now);
    }
    cq.due = Some(due);
    dev.nic.cqs.new_timer |= dev.nic.cqs.timed.insert(cqn);
}

/// CQ `cqn` overruns: status CQ_OVERFLOW (it writes no more CQEs) and a
/// CQ error event with the "CQ overrun" syndrome.
pub fn overrun(dev: &mut Function, cqn: u32) {
    if !overrun_state(dev, cqn) {
        return;
    }
    let mut data = [0u8; 28];
    // `struct mlx5_eqe_cq_err`: cqn, 7 reserved bytes, syndrome.
    data[0..4].copy_from_slice(&cqn.to_be_bytes());
    data[11] = CQ_ERROR_OVERRUN;
    super::eq::raise_event(dev, super::eq::event::CQ_ERROR, 0, &data);
}

/// CQ `cqn` in the overflow state (QUERY_CQ shows it) without its event
/// (as when the event is lost); false when there is no such CQ.
pub fn overrun_state(dev: &mut Function, cqn: u32) -> bool {
    let Some(cq) = dev.nic.cqs.map.get_mut(&cqn) else {
        return false;
    };
    cq.status = STATUS_OVERFLOW;
    cq.overruns += 1;
    log::warn!(target: "mlx5_sim::cq", "CQ {cqn:#x} overrun");
    true
}

/// Fill `entry` as an error CQE (`struct mlx5_err_cqe`).
pub fn error_entry(
    entry: &mut [u8; CQE_SIZE],
    opcode: u8,
    syndrome: u8,
    wqe_opcode: u8,
    qn: u32,
    wqe_counter: u16,
) {
    entry.fill(0);
    entry[cqe::SYNDROME] = syndrome;
    entry[cqe::QPN..cqe::QPN + 4]
        .copy_from_slice(&(((wqe_opcode as u32) << 24) | (qn & COUNTER_MASK)).to_be_bytes());
    entry[cqe::WQE_COUNTER..cqe::WQE_COUNTER + 2].copy_from_slice(&wqe_counter.to_be_bytes());
    entry[cqe::OP_OWN] = opcode << 4;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `cqc` written by hand (mlx5_ifc.h `mlx5_ifc_cqc_bits`): oi (bit 0xe:
    /// byte 1, 0x02), log_cq_size 10 (bits 0x63..0x68: byte 0x0c low 5 bits),
    /// uar_page 0x11 (bytes 0x0d..0x10), cq_period 0x010 (bits 0x84..0x90),
    /// cq_max_count 0x20 (bytes 0x12..0x14), c_eqn 5 (bytes 0x14..0x18),
    /// dbr_addr 0x1234_5678_9abc_def0 (bytes 0x38..0x40).
    #[test]
    fn cqc_fields_from_hand_written_bytes() {
        let mut c = [0u8; 64];
        c[0x01] = 0x02;
        c[0x0c] = 0x0a;
        c[0x0f] = 0x11;
        c[0x11] = 0x10;
        c[0x13] = 0x20;
        c[0x17] = 0x05;
        c[0x38..0x40].copy_from_slice(&[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0]);
        assert_eq!(get(&c, cqc::OI), 1);
        assert_eq!(get(&c, cqc::LOG_CQ_SIZE), 10);
        assert_eq!(get(&c, cqc::UAR_PAGE), 0x11);
        assert_eq!(get(&c, cqc::CQ_PERIOD), 0x10);
        assert_eq!(get(&c, cqc::CQ_MAX_COUNT), 0x20);
        assert_eq!(get(&c, cqc::C_EQN), 5);
        assert_eq!(get(&c, cqc::DBR_ADDR), 0x1234_5678_9abc_def0);
        assert!(crate::bits::all_zero(&c, &cqc::RESERVED));
        // cqe_sz: bits 0x8..0xb = byte 1, mask 0xe0.
        assert_eq!(crate::bits::footprint(cqc::CQE_SZ), vec![(1, 0xe0)]);
        assert_eq!(crate::bits::footprint(cqc::ST), vec![(2, 0x0f)]);
    }

    /// `struct mlx5_err_cqe`: syndrome @0x37, s_wqe_opcode_qpn @0x38,
    /// wqe_counter @0x3c, op_own @0x3f (opcode in the high nibble).
    #[test]
    fn error_cqe_layout() {
        let mut e = [0u8; CQE_SIZE];
        error_entry(
            &mut e,
            cqe::OP_REQ_ERR,
            cqe::SYN_LOCAL_PROT,
            0x0a,
            0x1001,
            7,
        );
        assert_eq!(e[0x37], 0x04);
        assert_eq!(&e[0x38..0x3c], &[0x0a, 0x00, 0x10, 0x01]);
        assert_eq!(&e[0x3c..0x3e], &[0x00, 0x07]);
        assert_eq!(e[0x3f], 0xd0);
    }
}
