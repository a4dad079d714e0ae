//! Event queues: CREATE/DESTROY/QUERY_EQ (`create_eq_in`, `eqc`,
//! `query_eq_out` in mlx5_ifc.h), EQE writing (`struct mlx5_eqe`, device.h),
//! arm and update doorbells (UAR +0x40 / +0x48) and MSI-X signalling.
//!
//! Ownership: the model writes each EQE with owner bit
//! `(producer_index >> log_eq_size) & 1`; software owns an entry when the bit
//! equals `(consumer_index >> log_eq_size) & 1` inverted from the initial 1s.
//! Interrupts: an armed EQ signals its vector on the next EQE and becomes
//! fired; arming with unconsumed EQEs signals at once.
//! Overrun (PRM "EQ overrun"): with `oi` clear an EQE that would overwrite
//! an unconsumed one is not written, the EQ's status becomes
//! EQ_WRITE_FAILURE (0xa) and it accepts no more events; with `oi` set the
//! model overwrites.
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::{pas, reserved, reserved_in};
use crate::bits::{F, be64, f, get, put_be64, set};
use crate::function::Function;
use crate::sanitizer::{Purpose, Revoked};
use crate::syndrome::{self as syn, CmdError};

/// Event types (`enum mlx5_event`, device.h).
pub mod event {
    pub const COMPLETION: u8 = 0x00;
    pub const CQ_ERROR: u8 = 0x04;
    pub const INTERNAL_ERROR: u8 = 0x08;
    pub const PORT_CHANGE: u8 = 0x09;
    pub const CMD: u8 = 0x0a;
    pub const PAGE_REQUEST: u8 = 0x0b;
    pub const PORT_MODULE: u8 = 0x16;
}

/// Port change sub types (`MLX5_PORT_CHANGE_SUBTYPE_*`).
pub mod port_sub {
    pub const DOWN: u8 = 1;
    pub const ACTIVE: u8 = 4;
}

pub const EQE_SIZE: usize = 64;
/// `MLX5_EQC_STATUS_EQ_WRITE_FAILURE`.
pub const STATUS_WRITE_FAILURE: u8 = 0xa;
/// `MLX5_EQC_ST_ARMED` / `MLX5_EQC_ST_FIRED`.
pub const ST_ARMED: u8 = 0x9;
pub const ST_FIRED: u8 = 0xa;
const COUNTER_MASK: u32 = 0xff_ffff;

/// `eqc` fields (bit offsets inside the context).
pub mod eqc {
    use crate::bits::{F, f};
    pub const STATUS: F = f(0x0, 4);
    pub const EC: F = f(0xd, 1);
    pub const OI: F = f(0xe, 1);
    pub const ST: F = f(0x14, 4);
    pub const PAGE_OFFSET: F = f(0x54, 6);
    pub const LOG_EQ_SIZE: F = f(0x63, 5);
    pub const UAR_PAGE: F = f(0x68, 0x18);
    pub const INTR: F = f(0xb4, 0xc);
    pub const LOG_PAGE_SIZE: F = f(0xc3, 5);
    pub const CONSUMER_COUNTER: F = f(0x148, 0x18);
    pub const PRODUCER_COUNTER: F = f(0x168, 0x18);
    /// Reserved bits of `eqc`.
    pub const RESERVED: [F; 15] = [
        f(0x4, 9),
        f(0xf, 5),
        f(0x18, 8),
        f(0x20, 0x20),
        f(0x40, 0x14),
        f(0x5a, 6),
        f(0x60, 3),
        f(0x80, 0x20),
        f(0xa0, 0x14),
        f(0xc0, 3),
        f(0xc8, 0x18),
        f(0xe0, 0x60),
        f(0x140, 8),
        f(0x160, 8),
        f(0x180, 0x80),
    ];
}

/// Byte offsets in `create_eq_in` / `query_eq_out`.
pub mod layout {
    pub const CTX: usize = 0x10;
    pub const EVENT_BITMASK: usize = 0x58;
    pub const PAS: usize = 0x110;
}

#[derive(Debug, Clone)]
pub struct Eq {
    pub eqn: u8,
    pub log_size: u8,
    pub uar: u32,
    pub intr: u16,
    pub mask: u64,
    pub pas: Vec<u64>,
    /// EQEs written (24-bit counter).
    pub producer: u32,
    /// Consumer index last reported by a doorbell.
    pub consumer: u32,
    pub armed: bool,
    pub oi: bool,
    pub ec: bool,
    pub status: u8,
    pub overruns: u64,
}

#[derive(Debug, Default)]
pub struct Eqs {
    map: BTreeMap<u8, Eq>,
}

impl Eqs {
    /// The EQ that receives events of `event_type`: the lowest-numbered EQ
    /// subscribed to it.
    pub fn subscriber(&self, event_type: u8) -> Option<u8> {
        self.map
            .values()
            .find(|eq| event_type < 64 && eq.mask & (1u64 << event_type) != 0)
            .map(|eq| eq.eqn)
    }

    pub fn uses_uar(&self, uar: u32) -> bool {
        self.map.values().any(|eq| eq.uar == uar)
    }

    pub fn get(&self, eqn: u8) -> Option<&Eq> {
        self.map.get(&eqn)
    }

    pub fn count(&self) -> usize {
        self.map.len()
    }
}

fn ctx(fld: F) -> F {
    fld.at(layout::CTX)
}

/// CREATE_EQ.
pub fn create(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40), f(0x280, 0x40), f(0x3c0, 0x4c0)])?;
    reserved_in(inp, layout::CTX, &eqc::RESERVED)?;
    // Only the first 64 event types exist on these parts.
    if !crate::bits::all_zero(inp, &[f(0x300, 0xc0)]) {
        return Err(syn::EQ_EVENT_TYPE);
    }
    let log_size = get(inp, ctx(eqc::LOG_EQ_SIZE)) as u8;
    if log_size as u64 > dev.caps.general(super::caps::hca_cap::LOG_MAX_EQ_SZ) {
        return Err(syn::EQ_SIZE);
    }
    if get(inp, ctx(eqc::LOG_PAGE_SIZE)) != 0 || get(inp, ctx(eqc::PAGE_OFFSET)) != 0 {
        return Err(syn::EQ_PAGE_GEOMETRY);
    }
    let intr = get(inp, ctx(eqc::INTR)) as u16;
    if intr >= crate::pci_config::MSIX_VECTORS {
        return Err(syn::EQ_VECTOR);
    }
    let uar = get(inp, ctx(eqc::UAR_PAGE)) as u32;
    if !dev.uars.contains(uar) {
        return Err(syn::UNKNOWN_UAR);
    }
    let bytes = (EQE_SIZE as u64) << log_size;
    let pas = pas::read(inp, layout::PAS, bytes)?;
    let max = 1usize << dev.caps.general(super::caps::hca_cap::LOG_MAX_EQ);
    if dev.eqs.map.len() >= max.min(256) {
        return Err(syn::NO_EQ);
    }
    let Some(eqn) = (0..=255u8).find(|n| !dev.eqs.map.contains_key(n)) else {
        return Err(syn::NO_EQ);
    };
    pas::grant(dev, &pas, bytes, Purpose::EqBuffer);
    let eq = Eq {
        eqn,
        log_size,
        uar,
        intr,
        mask: be64(inp, layout::EVENT_BITMASK),
        pas,
        producer: 0,
        consumer: 0,
        armed: get(inp, ctx(eqc::ST)) == ST_ARMED as u64,
        oi: get(inp, ctx(eqc::OI)) != 0,
        ec: get(inp, ctx(eqc::EC)) != 0,
        status: 0,
        overruns: 0,
    };
    dev.eqs.map.insert(eqn, eq);
    // create_eq_out: eq_number at bit 0x58.
    set(out, f(0x58, 8), eqn as u64);
    Ok(())
}

fn eqn_of(inp: &[u8]) -> Result<u8, CmdError> {
    // destroy_eq_in / query_eq_in: eq_number at bit 0x58.
    reserved(inp, &[f(0x40, 0x18), f(0x60, 0x20)])?;
    Ok(get(inp, f(0x58, 8)) as u8)
}

/// DESTROY_EQ: the EQ's pages go back to the driver.
pub fn destroy(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    let eqn = eqn_of(inp)?;
    if dev.eqs.map.contains_key(&eqn) && dev.nic.cqs.uses_eq(eqn) {
        return Err(syn::EQ_IN_USE);
    }
    let Some(eq) = dev.eqs.map.remove(&eqn) else {
        return Err(syn::UNKNOWN_EQ);
    };
    dev.faults.queues.eq_gone(eqn);
    pas::revoke(dev, &eq.pas, Revoked::TakenBack);
    Ok(())
}

/// Destroy every EQ (teardown); their pages are revoked as taken back.
pub fn destroy_all(dev: &mut Function) {
    let eqs = std::mem::take(&mut dev.eqs.map);
    for eq in eqs.into_values() {
        pas::revoke(dev, &eq.pas, Revoked::TakenBack);
    }
}

/// QUERY_EQ (`query_eq_out`: context at 0x10, bitmask at 0x58, pas at 0x110).
pub fn query(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    let eqn = eqn_of(inp)?;
    let Some(eq) = dev.eqs.map.get(&eqn) else {
        return Err(syn::UNKNOWN_EQ);
    };
    set(out, ctx(eqc::STATUS), eq.status as u64);
    set(out, ctx(eqc::EC), eq.ec as u64);
    set(out, ctx(eqc::OI), eq.oi as u64);
    let st = if eq.armed { ST_ARMED } else { ST_FIRED };
    set(out, ctx(eqc::ST), st as u64);
    set(out, ctx(eqc::LOG_EQ_SIZE), eq.log_size as u64);
    set(out, ctx(eqc::UAR_PAGE), eq.uar as u64);
    set(out, ctx(eqc::INTR), eq.intr as u64);
    let consumer = dev.faults.queues.eq_stalled(eqn).unwrap_or(eq.consumer);
    set(out, ctx(eqc::CONSUMER_COUNTER), consumer as u64);
    set(out, ctx(eqc::PRODUCER_COUNTER), eq.producer as u64);
    put_be64(out, layout::EVENT_BITMASK, eq.mask);
    pas::put(out, layout::PAS, &eq.pas);
    Ok(())
}

/// Arm (`arm`) or update-consumer-index doorbell written to UAR `page`:
/// be32 eqn << 24 | consumer index.
pub fn doorbell(dev: &mut Function, page: u32, value: u32, arm: bool) {
    let eqn = (value >> 24) as u8;
    let ci = value & COUNTER_MASK;
    let Some(eq) = dev.eqs.map.get_mut(&eqn) else {
        log::debug!(target: "mlx5_sim::eq", "doorbell for unknown EQ {eqn} dropped");
        return;
    };
    if eq.uar != page {
        log::debug!(target: "mlx5_sim::eq", "EQ {eqn} doorbell on UAR {page}, not its UAR {}: dropped", eq.uar);
        return;
    }
    eq.consumer = ci;
    if dev.faults.queues.eq_doorbell(eqn, ci) {
        // Stalled: the device does not take this arm.
        return;
    }
    if arm {
        if eq.producer != ci {
            // Unconsumed EQEs: fire at once, stay disarmed.
            eq.armed = false;
            let v = eq.intr;
            dev.irq.signal(v);
        } else {
            eq.armed = true;
        }
    }
}

/// Write an event of `event_type` to the EQ subscribed to it (if any).
/// `data` is the 28-byte event data at EQE offset 0x20. Returns whether an
/// EQE was written.
pub fn raise_event(dev: &mut Function, event_type: u8, sub_type: u8, data: &[u8; 28]) -> bool {
    let Some(eqn) = dev.eqs.subscriber(event_type) else {
        return false;
    };
    write_eqe(dev, eqn, event_type, sub_type, data)
}

/// Write one EQE to EQ `eqn` and signal its vector when armed.
pub fn write_eqe(
    dev: &mut Function,
    eqn: u8,
    event_type: u8,
    sub_type: u8,
    data: &[u8; 28],
) -> bool {
    if dev.faults.queues.eq_stalled(eqn).is_some() {
        dev.faults.queues.dropped_events += 1;
        return false;
    }
    let Some(eq) = dev.eqs.map.get_mut(&eqn) else {
        return false;
    };
    if eq.status != 0 {
        eq.overruns += 1;
        return false;
    }
    let nent = 1u32 << eq.log_size;
    let outstanding = eq.producer.wrapping_sub(eq.consumer) & COUNTER_MASK;
    if outstanding >= nent && !eq.oi {
        eq.status = STATUS_WRITE_FAILURE;
        eq.overruns += 1;
        log::warn!(target: "mlx5_sim::eq", "EQ {eqn} overrun: write failure");
        return false;
    }
    let index = (eq.producer & (nent - 1)) as u64;
    let byte = index * EQE_SIZE as u64;
    let Some(addr) = pas::addr(&eq.pas, byte) else {
        return false;
    };
    let owner = ((eq.producer >> eq.log_size) & 1) as u8;
    eq.producer = (eq.producer + 1) & COUNTER_MASK;
    let fire = eq.armed;
    if fire {
        eq.armed = false;
    }
    let intr = eq.intr;
    let mut eqe = [0u8; EQE_SIZE];
    eqe[0x01] = event_type;
    eqe[0x03] = sub_type;
    eqe[0x20..0x3c].copy_from_slice(data);
    eqe[0x3f] = owner;
    // Body first, owner byte last: the driver must never see a valid owner
    // bit over a stale body.
    if dev
        .bus
        .write(addr, &eqe[..0x3f], Purpose::EqBuffer)
        .is_err()
        || dev
            .bus
            .write(addr + 0x3f, &eqe[0x3f..], Purpose::EqBuffer)
            .is_err()
    {
        return false;
    }
    if fire && !dev.faults.queues.take_lost_interrupt(eqn) {
        dev.irq.signal(intr);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `eqc` written by hand: status 0, oi set (bit 0xe: byte 1, 0x02),
    /// log_eq_size 6 (byte 0x0c), uar_page 0x10 (bytes 0x0d..0x10),
    /// intr 3 (bytes 0x16..0x18), log_page_size 0 (byte 0x18),
    /// consumer_counter 0x000102 (bytes 0x29..0x2c), producer 0x000203 (0x2d..0x30).
    #[test]
    fn eqc_fields_from_hand_written_bytes() {
        let mut c = [0u8; 64];
        c[0x01] = 0x02;
        c[0x0c] = 0x06;
        c[0x0f] = 0x10;
        c[0x17] = 0x03;
        c[0x2a] = 0x01;
        c[0x2b] = 0x02;
        c[0x2e] = 0x02;
        c[0x2f] = 0x03;
        assert_eq!(get(&c, eqc::OI), 1);
        assert_eq!(get(&c, eqc::EC), 0);
        assert_eq!(get(&c, eqc::LOG_EQ_SIZE), 6);
        assert_eq!(get(&c, eqc::UAR_PAGE), 0x10);
        assert_eq!(get(&c, eqc::INTR), 3);
        assert_eq!(get(&c, eqc::CONSUMER_COUNTER), 0x102);
        assert_eq!(get(&c, eqc::PRODUCER_COUNTER), 0x203);
        assert!(crate::bits::all_zero(&c, &eqc::RESERVED));
        // status is the high nibble of byte 0; st bits 0x14..0x18 the low nibble of byte 2.
        assert_eq!(crate::bits::footprint(eqc::STATUS), vec![(0, 0xf0)]);
        assert_eq!(crate::bits::footprint(eqc::ST), vec![(2, 0x0f)]);
        assert_eq!(
            crate::bits::footprint(eqc::LOG_PAGE_SIZE),
            vec![(0x18, 0x1f)]
        );
        assert_eq!(
            crate::bits::footprint(eqc::PAGE_OFFSET),
            vec![(0x0a, 0x0f), (0x0b, 0xc0)]
        );
    }
}
