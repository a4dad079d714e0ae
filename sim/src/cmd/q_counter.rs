//! Queue counters: ALLOC/DEALLOC/QUERY_Q_COUNTER (`alloc_q_counter_out`,
//! `dealloc_q_counter_in`, `query_q_counter_in/out`, mlx5_ifc.h). The data
//! path (receive engine) counts `out_of_buffer` drops into them.
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::reserved;
use crate::bits::{f, get, put_be32, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// `query_q_counter_out` length (0x100 bytes: through reserved_at_6e0).
pub const QUERY_OUT: usize = 0x100;
/// out_of_buffer at out bit 0x180 (byte 0x30).
pub const OUT_OF_BUFFER: usize = 0x30;

/// Counters of one set.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QCounterSet {
    pub out_of_buffer: u32,
}

#[derive(Debug, Default)]
pub struct QCounters {
    sets: BTreeMap<u8, QCounterSet>,
}

impl QCounters {
    pub fn clear(&mut self) {
        self.sets.clear();
    }
    pub fn count(&self) -> usize {
        self.sets.len()
    }
    pub fn get_mut(&mut self, id: u8) -> Option<&mut QCounterSet> {
        self.sets.get_mut(&id)
    }
    pub fn contains(&self, id: u8) -> bool {
        self.sets.contains_key(&id)
    }
}

/// ALLOC_Q_COUNTER: counter_set_id at out bit 0x58. Set 0 is the
/// function's default set and never handed out.
pub fn alloc(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40)])?;
    let max = dev.caps.general(super::caps::hca_cap::MAX_QP_CNT).min(255) as u8;
    let Some(id) = (1..=max).find(|i| !dev.q_counters.sets.contains_key(i)) else {
        return Err(syn::NO_Q_COUNTER);
    };
    dev.q_counters.sets.insert(id, QCounterSet::default());
    set(out, f(0x58, 8), id as u64);
    Ok(())
}

/// DEALLOC_Q_COUNTER: counter_set_id at in bit 0x58.
pub fn dealloc(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x18), f(0x60, 0x20)])?;
    let id = get(inp, f(0x58, 8)) as u8;
    if dev.q_counters.sets.contains_key(&id) && dev.nic.uses_q_counter(id) {
        return Err(syn::Q_COUNTER_IN_USE);
    }
    if dev.q_counters.sets.remove(&id).is_none() {
        return Err(syn::UNKNOWN_Q_COUNTER);
    }
    Ok(())
}

/// QUERY_Q_COUNTER (`query_q_counter_in`: other_vport 0x40, clear 0xc0,
/// aggregate 0xc1, counter_set_id 0xf8; input 0x20 bytes).
pub fn query(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(
        inp,
        &[f(0x41, 0xf), f(0x60, 0x60), f(0xc2, 0x1e), f(0xe0, 0x18)],
    )?;
    if get(inp, f(0x40, 1)) != 0 || get(inp, f(0x50, 0x10)) != 0 || get(inp, f(0xc1, 1)) != 0 {
        return Err(syn::BAD_FUNCTION);
    }
    let id = get(inp, f(0xf8, 8)) as u8;
    let clear = get(inp, f(0xc0, 1)) != 0;
    let Some(c) = dev.q_counters.sets.get_mut(&id) else {
        return Err(syn::UNKNOWN_Q_COUNTER);
    };
    put_be32(out, OUT_OF_BUFFER, c.out_of_buffer);
    if clear {
        *c = QCounterSet::default();
    }
    Ok(())
}
