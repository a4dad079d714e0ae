//! NIC receive flow steering: CREATE/DESTROY_FLOW_TABLE,
//! CREATE/DESTROY_FLOW_GROUP, SET/DELETE_FLOW_TABLE_ENTRY,
//! SET_FLOW_TABLE_ROOT (`create_flow_table_in`, `flow_table_context`,
//! `create_flow_group_in`, `fte_match_param`, `set_fte_in`,
//! `flow_context`, `dest_format_struct`, `delete_fte_in`,
//! `set_flow_table_root_in`, mlx5_ifc.h).
//!
//! What is modelled: NIC_RX tables (type 0) of the function's own vport;
//! groups whose match criteria are the outer destination MAC
//! (`outer_headers.dmac_47_16/dmac_15_0`, or nothing: a catch-all group);
//! entries with action forward (0x4) to exactly one TIR. A frame is looked
//! up in the root table, groups in order of their first index, each group
//! by a hash of the masked MAC, so the cost does not grow with the number
//! of entries. No match, or no root: the frame is dropped and counted.
//! More criteria, actions, levels and counters slot in per group / entry.
#![deny(unsafe_code)]

use std::collections::{BTreeMap, HashMap};

use super::{MIN_OUT, need, reserved};
use crate::bits::{F, f, get, set};
use crate::device::Device;
use crate::syndrome::{self as syn, CmdError};

/// `MLX5_FLOW_TABLE_TYPE_NIC_RX`.
pub const TABLE_NIC_RX: u64 = 0;
/// `MLX5_MATCH_OUTER_HEADERS`.
pub const MATCH_OUTER: u64 = 1;
/// `MLX5_FLOW_CONTEXT_ACTION_FWD_DEST`.
pub const ACTION_FWD_DEST: u64 = 0x4;
/// `MLX5_IFC_FLOW_DESTINATION_TYPE_TIR`.
pub const DEST_TIR: u64 = 0x2;
/// `fte_match_param` length in bytes (0x1000 bits... through misc5 and reserved: 0x200).
pub const MATCH_PARAM: usize = 0x200;
/// Byte offsets of dmac_47_16 / dmac_15_0 in `fte_match_set_lyr_2_4`
/// (bits 0x40 and 0x60): the six MAC bytes in wire order.
pub const DMAC: usize = 0x08;

/// Byte offsets in the commands.
pub mod layout {
    /// `create_flow_table_in.flow_table_context` (bit 0xc0).
    pub const FT_CTX: usize = 0x18;
    /// `create_flow_group_in.match_criteria` (bit 0x200).
    pub const FG_CRITERIA: usize = 0x40;
    /// `set_fte_in.flow_context` (bit 0x200).
    pub const FTE_CTX: usize = 0x40;
    /// `flow_context.match_value` (bit 0x200 of flow_context).
    pub const FTE_MATCH: usize = FTE_CTX + 0x40;
    /// `flow_context.destination` (bit 0x1800 of flow_context).
    pub const FTE_DEST: usize = FTE_CTX + 0x300;
}

/// Header fields shared by all flow commands: other_vport (0x40),
/// vport_number (0x50), table_type (0x80).
const OTHER_VPORT: F = f(0x40, 1);
const VPORT_NUMBER: F = f(0x50, 0x10);
const TABLE_TYPE: F = f(0x80, 8);
const TABLE_ID: F = f(0xa8, 0x18);

#[derive(Debug, Clone)]
pub struct Group {
    pub id: u32,
    pub start: u32,
    pub end: u32,
    /// Mask over the destination MAC (0 = catch-all group).
    pub dmac_mask: u64,
    /// masked MAC -> flow index.
    by_key: HashMap<u64, u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub group: u32,
    pub dmac: u64,
    pub tirn: u32,
    pub flow_tag: u32,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub id: u32,
    pub level: u8,
    pub log_size: u8,
    /// Groups by first index (lookup order).
    groups: BTreeMap<u32, Group>,
    entries: BTreeMap<u32, Entry>,
}

impl Table {
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
    fn group_by_id(&self, id: u32) -> Option<&Group> {
        self.groups.values().find(|g| g.id == id)
    }
}

#[derive(Debug, Default)]
pub struct Steering {
    tables: BTreeMap<u32, Table>,
    pub root: Option<u32>,
    next_group: u32,
}

impl Steering {
    pub fn clear(&mut self) {
        self.tables.clear();
        self.root = None;
    }
    pub fn table(&self, id: u32) -> Option<&Table> {
        self.tables.get(&id)
    }
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// The TIR a frame to `dmac` is steered to, if any.
    pub fn lookup(&self, dmac: u64) -> Option<u32> {
        let t = self.tables.get(&self.root?)?;
        for g in t.groups.values() {
            if let Some(idx) = g.by_key.get(&(dmac & g.dmac_mask))
                && let Some(e) = t.entries.get(idx)
            {
                return Some(e.tirn);
            }
        }
        None
    }
}

fn mac_of(buf: &[u8], at: usize) -> u64 {
    let mut m = [0u8; 8];
    for (i, b) in m[2..].iter_mut().enumerate() {
        *b = buf.get(at + i).copied().unwrap_or(0);
    }
    u64::from_be_bytes(m)
}

/// Own vport, NIC_RX only.
fn own_nic_rx(inp: &[u8]) -> Result<(), CmdError> {
    if get(inp, OTHER_VPORT) != 0 || get(inp, VPORT_NUMBER) != 0 {
        return Err(syn::BAD_FUNCTION);
    }
    if get(inp, TABLE_TYPE) != TABLE_NIC_RX {
        return Err(syn::FLOW_TABLE_TYPE);
    }
    Ok(())
}

fn nic_rx_cap(dev: &Device, fld: F) -> u64 {
    let caps = dev
        .caps
        .current(super::caps::cap_type::NIC_FLOW_TABLE)
        .unwrap_or(&[]);
    get(caps, f(super::caps::ft::RX + fld.bit, fld.width))
}

/// CREATE_FLOW_TABLE (`create_flow_table_in`: table_type bit 0x80, context at 0x18).
pub fn create_table(dev: &mut Device, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, layout::FT_CTX + 0x28, MIN_OUT)?;
    reserved(
        inp,
        &[f(0x41, 0xf), f(0x60, 0x20), f(0x88, 0x18), f(0xa0, 0x20)],
    )?;
    own_nic_rx(inp)?;
    let c = |fld: F| fld.at(layout::FT_CTX);
    // reformat_en, decap_en, sw_owner, termination_table, table_miss_action,
    // rtc_valid, table_miss_id, lag_master_next_table_id, sws/hws roots.
    let unsupported = [f(0x0, 8), f(0x10, 8), f(0x20, 0x20), f(0x40, 0x20)];
    if unsupported.iter().any(|u| get(inp, c(*u)) != 0)
        || !crate::bits::all_zero(inp, &[c(f(0x60, 0xe0))])
    {
        return Err(syn::FLOW_TABLE_PARAM);
    }
    let level = get(inp, c(f(0x8, 8)));
    let log_size = get(inp, c(f(0x18, 8)));
    if level > nic_rx_cap(dev, super::caps::ft::MAX_FT_LEVEL)
        || log_size > nic_rx_cap(dev, super::caps::ft::LOG_MAX_FT_SIZE)
    {
        return Err(syn::FLOW_TABLE_PARAM);
    }
    let max = 1u64 << nic_rx_cap(dev, super::caps::ft::LOG_MAX_FT_NUM).min(24);
    if dev.nic.flow.tables.len() as u64 >= max {
        return Err(syn::NO_FLOW_TABLE);
    }
    let Some(id) = (1..=0xff_ffffu32).find(|n| !dev.nic.flow.tables.contains_key(n)) else {
        return Err(syn::NO_FLOW_TABLE);
    };
    dev.nic.flow.tables.insert(
        id,
        Table {
            id,
            level: level as u8,
            log_size: log_size as u8,
            groups: BTreeMap::new(),
            entries: BTreeMap::new(),
        },
    );
    // create_flow_table_out: table_id at bit 0x48.
    set(out, f(0x48, 0x18), id as u64);
    Ok(())
}

/// DESTROY_FLOW_TABLE (`destroy_flow_table_in`: table_id bit 0xa8):
/// refused for tables that still have groups. Destroying the root table
/// leaves the NIC_RX root unset (every frame then misses), as drivers that
/// never disconnect the root rely on.
pub fn destroy_table(dev: &mut Device, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, 0x18, MIN_OUT)?;
    reserved(
        inp,
        &[f(0x41, 0xf), f(0x60, 0x20), f(0x88, 0x18), f(0xa0, 8)],
    )?;
    reserved(inp, &[f(0xc0, 0x140)])?;
    own_nic_rx(inp)?;
    let id = get(inp, TABLE_ID) as u32;
    let Some(t) = dev.nic.flow.tables.get(&id) else {
        return Err(syn::UNKNOWN_FLOW_TABLE);
    };
    if !t.groups.is_empty() {
        return Err(syn::FLOW_TABLE_IN_USE);
    }
    dev.nic.flow.tables.remove(&id);
    if dev.nic.flow.root == Some(id) {
        dev.nic.flow.root = None;
    }
    Ok(())
}

/// CREATE_FLOW_GROUP (`create_flow_group_in`: table_id 0xa8, start 0xe0,
/// end 0x120, match_criteria_enable 0x1f8, criteria at byte 0x40).
pub fn create_group(dev: &mut Device, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, layout::FG_CRITERIA + MATCH_PARAM, MIN_OUT)?;
    reserved(
        inp,
        &[
            f(0x41, 0xf),
            f(0x60, 0x20),
            f(0x88, 4),
            f(0x90, 0x10),
            f(0xa0, 8),
            f(0xc1, 0x1f),
            f(0x100, 0x20),
            f(0x140, 0x10),
            f(0x160, 0x80),
            f(0x1e0, 0x18),
        ],
    )?;
    own_nic_rx(inp)?;
    // group_type, source_eswitch_owner_vhca_id_valid, match_definer_id.
    if get(inp, f(0x8c, 4)) != 0 || get(inp, f(0xc0, 1)) != 0 || get(inp, f(0x150, 0x10)) != 0 {
        return Err(syn::FLOW_MATCH_CRITERIA);
    }
    let id = get(inp, TABLE_ID) as u32;
    let start = get(inp, f(0xe0, 0x20)) as u32;
    let end = get(inp, f(0x120, 0x20)) as u32;
    let enable = get(inp, f(0x1f8, 8));
    let crit = &inp[layout::FG_CRITERIA..layout::FG_CRITERIA + MATCH_PARAM];
    let dmac_mask = mac_of(crit, DMAC);
    let others_zero = crit
        .iter()
        .enumerate()
        .all(|(i, b)| (DMAC..DMAC + 6).contains(&i) || *b == 0);
    if enable & !MATCH_OUTER != 0 || !others_zero || (enable == 0 && dmac_mask != 0) {
        return Err(syn::FLOW_MATCH_CRITERIA);
    }
    let Some(t) = dev.nic.flow.tables.get_mut(&id) else {
        return Err(syn::UNKNOWN_FLOW_TABLE);
    };
    let size = 1u64 << t.log_size;
    let overlaps = t.groups.values().any(|g| start <= g.end && g.start <= end);
    if start > end || end as u64 >= size || overlaps {
        return Err(syn::FLOW_GROUP_RANGE);
    }
    dev.nic.flow.next_group = dev.nic.flow.next_group.wrapping_add(1).max(1);
    let gid = dev.nic.flow.next_group;
    t.groups.insert(
        start,
        Group {
            id: gid,
            start,
            end,
            dmac_mask,
            by_key: HashMap::new(),
        },
    );
    // create_flow_group_out: group_id at bit 0x48.
    set(out, f(0x48, 0x18), gid as u64);
    Ok(())
}

/// DESTROY_FLOW_GROUP (`destroy_flow_group_in`: table_id 0xa8, group_id
/// 0xc0): refused while the group has entries.
pub fn destroy_group(dev: &mut Device, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, 0x1c, MIN_OUT)?;
    reserved(
        inp,
        &[f(0x41, 0xf), f(0x60, 0x20), f(0x88, 0x18), f(0xa0, 8)],
    )?;
    reserved(inp, &[f(0xe0, 0x120)])?;
    own_nic_rx(inp)?;
    let id = get(inp, TABLE_ID) as u32;
    let gid = get(inp, f(0xc0, 0x20)) as u32;
    let Some(t) = dev.nic.flow.tables.get_mut(&id) else {
        return Err(syn::UNKNOWN_FLOW_TABLE);
    };
    let Some(g) = t.group_by_id(gid) else {
        return Err(syn::UNKNOWN_FLOW_GROUP);
    };
    if !g.by_key.is_empty() {
        return Err(syn::FLOW_GROUP_IN_USE);
    }
    let start = g.start;
    t.groups.remove(&start);
    Ok(())
}

/// SET_FLOW_TABLE_ENTRY (`set_fte_in`: op_mod 0 create / 1 modify,
/// table_id 0xa8, flow_index 0x100, flow_context at byte 0x40).
pub fn set_entry(dev: &mut Device, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, layout::FTE_DEST, MIN_OUT)?;
    let op_mod = crate::bits::be16(inp, 6);
    if op_mod > 1 {
        return Err(syn::BAD_OP_MOD);
    }
    reserved(
        inp,
        &[
            f(0x41, 0xf),
            f(0x60, 0x20),
            f(0x88, 0x18),
            f(0xa0, 8),
            f(0xc1, 0x17),
            f(0xe0, 0x20),
            f(0x120, 0xe0),
        ],
    )?;
    own_nic_rx(inp)?;
    // ignore_flow_level and modify_enable_mask: nothing to ignore or select
    // with one table level and whole-entry replacement.
    if get(inp, f(0xc0, 1)) != 0 || get(inp, f(0xd8, 8)) != 0 {
        return Err(syn::FLOW_ACTION);
    }
    let c = |fld: F| fld.at(layout::FTE_CTX);
    let gid = get(inp, c(f(0x20, 0x20))) as u32;
    let flow_tag = get(inp, c(f(0x48, 0x18))) as u32;
    let action = get(inp, c(f(0x70, 0x10)));
    let ndest = get(inp, c(f(0x88, 0x18)));
    // push_vlan, extended destination / hairpin / source / crypto bits,
    // counters, reformat, modify header, push_vlan_2, crypto object.
    let unsupported = [
        f(0x0, 0x20),
        f(0x80, 8),
        f(0xa8, 0x18),
        f(0xc0, 0x20),
        f(0xe0, 0x20),
        f(0x100, 0x20),
        f(0x120, 0x20),
    ];
    if action != ACTION_FWD_DEST || ndest != 1 || unsupported.iter().any(|u| get(inp, c(*u)) != 0) {
        return Err(syn::FLOW_ACTION);
    }
    reserved(inp, &[c(f(0x40, 8)), c(f(0x60, 0x10)), c(f(0xa0, 8))])?;
    if inp.len() < layout::FTE_DEST + 8 {
        return Err(syn::CMD_LENGTHS);
    }
    let dest_type = get(inp, f(0, 8).at(layout::FTE_DEST));
    let tirn = get(inp, f(8, 0x18).at(layout::FTE_DEST)) as u32;
    if dest_type != DEST_TIR || get(inp, f(0x20, 0x20).at(layout::FTE_DEST)) != 0 {
        return Err(syn::FLOW_ACTION);
    }
    if dev.nic.tirs.get(tirn).is_none() {
        return Err(syn::UNKNOWN_TIR);
    }
    let index = get(inp, f(0x100, 0x20)) as u32;
    let value = &inp[layout::FTE_MATCH..layout::FTE_MATCH + MATCH_PARAM];
    let dmac = mac_of(value, DMAC);
    let id = get(inp, TABLE_ID) as u32;
    let Some(t) = dev.nic.flow.tables.get_mut(&id) else {
        return Err(syn::UNKNOWN_FLOW_TABLE);
    };
    let Some(g) = t.group_by_id(gid) else {
        return Err(syn::UNKNOWN_FLOW_GROUP);
    };
    if index < g.start || index > g.end {
        return Err(syn::FLOW_INDEX);
    }
    let in_criteria = value
        .iter()
        .enumerate()
        .all(|(i, b)| (DMAC..DMAC + 6).contains(&i) || *b == 0);
    if !in_criteria || dmac & !g.dmac_mask != 0 {
        return Err(syn::FLOW_MATCH_VALUE);
    }
    let old = t.entries.get(&index).copied();
    match (op_mod, old) {
        (0, Some(_)) => return Err(syn::FLOW_INDEX_USED),
        (1, None) => return Err(syn::UNKNOWN_FLOW_ENTRY),
        (1, Some(o)) if o.group != gid => return Err(syn::FLOW_INDEX),
        _ => {}
    }
    let start = g.start;
    let Some(g) = t.groups.get_mut(&start) else {
        return Err(syn::UNKNOWN_FLOW_GROUP);
    };
    if let Some(&other) = g.by_key.get(&dmac)
        && other != index
    {
        return Err(syn::FLOW_MATCH_VALUE);
    }
    if let Some(o) = old {
        g.by_key.remove(&o.dmac);
    }
    g.by_key.insert(dmac, index);
    t.entries.insert(
        index,
        Entry {
            group: gid,
            dmac,
            tirn,
            flow_tag,
        },
    );
    if let Some(o) = old
        && let Some(tir) = dev.nic.tirs.get_mut(o.tirn)
    {
        tir.users = tir.users.saturating_sub(1);
    }
    if let Some(tir) = dev.nic.tirs.get_mut(tirn) {
        tir.users += 1;
    }
    Ok(())
}

/// DELETE_FLOW_TABLE_ENTRY (`delete_fte_in`: table_id 0xa8, flow_index 0x100).
pub fn delete_entry(dev: &mut Device, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, 0x24, MIN_OUT)?;
    reserved(
        inp,
        &[
            f(0x41, 0xf),
            f(0x60, 0x20),
            f(0x88, 0x18),
            f(0xa0, 8),
            f(0xc0, 0x40),
            f(0x120, 0xe0),
        ],
    )?;
    own_nic_rx(inp)?;
    let id = get(inp, TABLE_ID) as u32;
    let index = get(inp, f(0x100, 0x20)) as u32;
    let Some(t) = dev.nic.flow.tables.get_mut(&id) else {
        return Err(syn::UNKNOWN_FLOW_TABLE);
    };
    let Some(e) = t.entries.remove(&index) else {
        return Err(syn::UNKNOWN_FLOW_ENTRY);
    };
    if let Some(g) = t.groups.values_mut().find(|g| g.id == e.group) {
        g.by_key.remove(&e.dmac);
    }
    if let Some(tir) = dev.nic.tirs.get_mut(e.tirn) {
        tir.users = tir.users.saturating_sub(1);
    }
    Ok(())
}

/// SET_FLOW_TABLE_ROOT (`set_flow_table_root_in`: op_mod 0 connect /
/// 1 disconnect, table_id 0xa8, underlay_qpn 0xc8).
pub fn set_root(dev: &mut Device, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    need(inp, out, 0x20, MIN_OUT)?;
    let op_mod = crate::bits::be16(inp, 6);
    if op_mod > 1 {
        return Err(syn::BAD_OP_MOD);
    }
    reserved(
        inp,
        &[
            f(0x41, 0xf),
            f(0x60, 0x20),
            f(0x88, 0x7),
            f(0xa0, 8),
            f(0xc0, 8),
            f(0xe1, 0xf),
        ],
    )?;
    reserved(inp, &[f(0x100, 0x100)])?;
    own_nic_rx(inp)?;
    // table_of_other_vport, table_vport_number, underlay_qpn, eswitch owner.
    if get(inp, f(0x8f, 1)) != 0
        || get(inp, f(0x90, 0x10)) != 0
        || get(inp, f(0xc8, 0x18)) != 0
        || get(inp, f(0xe0, 1)) != 0
        || get(inp, f(0xf0, 0x10)) != 0
    {
        return Err(syn::BAD_FUNCTION);
    }
    let id = get(inp, TABLE_ID) as u32;
    if op_mod == 1 {
        dev.nic.flow.root = None;
        return Ok(());
    }
    if !dev.nic.flow.tables.contains_key(&id) {
        return Err(syn::UNKNOWN_FLOW_TABLE);
    }
    dev.nic.flow.root = Some(id);
    Ok(())
}

/// Forget every table (teardown); TIR use counts go with the TIRs.
pub fn destroy_all(dev: &mut Device) {
    dev.nic.flow.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fte_match_set_lyr_2_4` by hand: smac (bytes 0..6), ethertype
    /// (bytes 6..8), dmac_47_16 (bit 0x40: bytes 8..0xc), dmac_15_0
    /// (bit 0x60: bytes 0xc..0xe).
    #[test]
    fn dmac_sits_at_bytes_8_to_14() {
        let mut m = [0u8; 0x40];
        m[0x08..0x0e].copy_from_slice(&[0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(mac_of(&m, DMAC), 0x0211_2233_4455);
        assert_eq!(get(&m, f(0x40, 0x20)), 0x0211_2233);
        assert_eq!(get(&m, f(0x60, 0x10)), 0x4455);
    }

    /// `set_fte_in`: flow_context at bit 0x200; in it match_value at bit
    /// 0x200 and destination at bit 0x1800 (after execute_aso[4] at 0x1200
    /// and reserved_at_1300[0x500]).
    #[test]
    fn fte_offsets_follow_ifc() {
        assert_eq!(layout::FTE_CTX * 8, 0x200);
        assert_eq!((layout::FTE_MATCH - layout::FTE_CTX) * 8, 0x200);
        assert_eq!((layout::FTE_DEST - layout::FTE_CTX) * 8, 0x1800);
    }
}
