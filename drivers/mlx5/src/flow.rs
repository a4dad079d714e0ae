//! NIC receive flow tables (PRM "Flow Table"; `flow_table_context_bits`,
//! `create_flow_table_in/out`, `destroy_flow_table_in`,
//! `create_flow_group_in/out`, `destroy_flow_group_in`, `set_fte_in`,
//! `delete_fte_in`, `set_flow_table_root_in`, `flow_context_bits`,
//! `fte_match_param_bits` / `fte_match_set_lyr_2_4_bits`,
//! `dest_format_struct_bits` in mlx5_ifc.h).
//!
//! Steering layout (the one the illumos mlxcx driver describes): the
//! port's root NIC_RX table matches the destination MAC only; each entry
//! forwards to a TIR, or (once VNICs carry VLANs) to that MAC's own VLAN
//! table. [`MacSteering`] owns the root table and its one destination-MAC
//! group and adds and removes entries at run time: the adapter's MAC and
//! broadcast now, one entry per VNIC MAC later. A frame no entry matches
//! is dropped by the adapter, never looked at by software.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::cmd::{Command, Exec, op};
use crate::error::CmdError;
use crate::layout::Field;
use crate::tir::Tirn;
use crate::vport::Mac;

/// A flow table id.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Ftn(pub u32);
/// A flow group id.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Fgn(pub u32);

/// `MLX5_FLOW_TABLE_TYPE_NIC_RX`.
pub const TABLE_TYPE_NIC_RX: u8 = 0;
/// `MLX5_FLOW_CONTEXT_ACTION_FWD_DEST`.
pub const ACTION_FWD_DEST: u32 = 0x4;
/// `MLX5_IFC_FLOW_DESTINATION_TYPE_*`.
pub const DEST_TYPE_FLOW_TABLE: u32 = 0x1;
pub const DEST_TYPE_TIR: u32 = 0x2;
/// match_criteria_enable bit for outer headers (`MLX5_MATCH_OUTER_HEADERS`).
pub const MATCH_OUTER_HEADERS: u32 = 1 << 0;

/// Fields shared by every flow command's input: table_type `[31:24]` of
/// 0x10, table_id `[23:0]` of 0x14.
pub const TABLE_TYPE: Field = Field::new(0x10, 31, 24);
pub const TABLE_ID: Field = Field::new(0x14, 23, 0);
/// Output handle: table_id / group_id `[23:0]` of 0x08.
pub const OUT_ID: Field = Field::new(0x08, 23, 0);

/// create_flow_table_in: flow_table_context at 0x18 (level `[23:16]`,
/// log_size `[7:0]` of its dword 0).
pub const FT_CTX: usize = 0x18;
pub const FT_LEVEL: Field = Field::new(0x00, 23, 16);
pub const FT_LOG_SIZE: Field = Field::new(0x00, 7, 0);
pub const CREATE_FT_IN_LEN: usize = FT_CTX + 0x40;

/// create_flow_group_in fields.
pub mod fg {
    use crate::layout::Field;
    pub const START_FLOW_INDEX: Field = Field::new(0x1c, 31, 0);
    pub const END_FLOW_INDEX: Field = Field::new(0x24, 31, 0);
    pub const MATCH_CRITERIA_ENABLE: Field = Field::new(0x3c, 7, 0);
    pub const MATCH_CRITERIA: usize = 0x40;
    pub const IN_LEN: usize = 0x400;
    /// destroy_flow_group_in: group_id at 0x18.
    pub const GROUP_ID: Field = Field::new(0x18, 31, 0);
}

/// `fte_match_set_lyr_2_4_bits` (outer_headers is the first 0x40 bytes of
/// `fte_match_param`).
pub mod outer {
    use crate::layout::Field;
    pub const DMAC_47_16: Field = Field::new(0x08, 31, 0);
    pub const DMAC_15_0: Field = Field::new(0x0c, 31, 16);
    pub const FIRST_VID: Field = Field::new(0x0c, 11, 0);
    pub const CVLAN_TAG: Field = Field::new(0x10, 15, 15);
}

/// set_fte_in / delete_fte_in: flow_index at 0x20; set_fte_in:
/// flow_context at 0x40.
pub const FLOW_INDEX: Field = Field::new(0x20, 31, 0);
pub mod fte {
    use crate::layout::Field;
    pub const CTX: usize = 0x40;
    /// `flow_context_bits`.
    pub const GROUP_ID: Field = Field::new(0x04, 31, 0);
    pub const ACTION: Field = Field::new(0x0c, 15, 0);
    pub const DESTINATION_LIST_SIZE: Field = Field::new(0x10, 23, 0);
    pub const MATCH_VALUE: usize = 0x40;
    pub const DESTINATION: usize = 0x300;
    /// `dest_format_struct_bits`, 8 bytes each.
    pub const DEST_TYPE: Field = Field::new(0x00, 31, 24);
    pub const DEST_ID: Field = Field::new(0x00, 23, 0);
    pub const DEST_LEN: usize = 8;
}
const SET_FTE_IN_LEN: usize = fte::CTX + fte::DESTINATION + fte::DEST_LEN;
const DELETE_FTE_IN_LEN: usize = 0x40;

/// Which outer-header fields a group matches on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Criteria {
    pub dmac: bool,
    /// VLAN present and its id (per-MAC VLAN tables, VNICs).
    pub vlan: bool,
}

/// The values an entry matches.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MatchValue {
    pub dmac: Option<Mac>,
    pub vlan: Option<u16>,
}

fn write_dmac(buf: &mut [u8], base: usize, mac: [u8; 6]) {
    let hi = u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let lo = u16::from_be_bytes([mac[4], mac[5]]) as u32;
    outer::DMAC_47_16.within(base).set(buf, hi);
    outer::DMAC_15_0.within(base).set(buf, lo);
}

/// Where an entry forwards.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Destination {
    Tir(Tirn),
    Table(Ftn),
}

impl Destination {
    fn type_and_id(self) -> (u32, u32) {
        match self {
            Destination::Tir(t) => (DEST_TYPE_TIR, t.0),
            Destination::Table(t) => (DEST_TYPE_FLOW_TABLE, t.0),
        }
    }
}

/// CREATE_FLOW_TABLE.
#[derive(Clone, Copy, Debug)]
pub struct CreateFlowTable {
    pub table_type: u8,
    pub level: u8,
    pub log_size: u8,
}

impl Command for CreateFlowTable {
    type Output = Ftn;
    const OPCODE: u16 = op::CREATE_FLOW_TABLE;
    fn in_len(&self) -> usize {
        CREATE_FT_IN_LEN
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        TABLE_TYPE.set(inbox, self.table_type as u32);
        FT_LEVEL.within(FT_CTX).set(inbox, self.level as u32);
        FT_LOG_SIZE.within(FT_CTX).set(inbox, self.log_size as u32);
    }
    fn parse(&self, out: &[u8]) -> Result<Ftn, &'static str> {
        Ok(Ftn(OUT_ID.get(out)))
    }
}

/// DESTROY_FLOW_TABLE / SET_FLOW_TABLE_ROOT: table type and id only.
#[derive(Clone, Copy, Debug)]
pub struct TableCmd<const OPCODE: u16> {
    pub table_type: u8,
    pub table: Ftn,
}

impl<const OPCODE: u16> Command for TableCmd<OPCODE> {
    type Output = ();
    const OPCODE: u16 = OPCODE;
    fn in_len(&self) -> usize {
        0x40
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        TABLE_TYPE.set(inbox, self.table_type as u32);
        TABLE_ID.set(inbox, self.table.0);
    }
    fn parse(&self, _out: &[u8]) -> Result<(), &'static str> {
        Ok(())
    }
}

pub type DestroyFlowTable = TableCmd<{ op::DESTROY_FLOW_TABLE }>;
pub type SetFlowTableRoot = TableCmd<{ op::SET_FLOW_TABLE_ROOT }>;

/// CREATE_FLOW_GROUP: entries `start..=end` matching on `criteria`.
#[derive(Clone, Copy, Debug)]
pub struct CreateFlowGroup {
    pub table_type: u8,
    pub table: Ftn,
    pub start: u32,
    pub end: u32,
    pub criteria: Criteria,
}

impl Command for CreateFlowGroup {
    type Output = Fgn;
    const OPCODE: u16 = op::CREATE_FLOW_GROUP;
    fn in_len(&self) -> usize {
        fg::IN_LEN
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        TABLE_TYPE.set(inbox, self.table_type as u32);
        TABLE_ID.set(inbox, self.table.0);
        fg::START_FLOW_INDEX.set(inbox, self.start);
        fg::END_FLOW_INDEX.set(inbox, self.end);
        let c = self.criteria;
        if c.dmac || c.vlan {
            fg::MATCH_CRITERIA_ENABLE.set(inbox, MATCH_OUTER_HEADERS);
        }
        let m = fg::MATCH_CRITERIA;
        if c.dmac {
            write_dmac(inbox, m, [0xff; 6]);
        }
        if c.vlan {
            outer::CVLAN_TAG.within(m).set(inbox, 1);
            outer::FIRST_VID.within(m).set(inbox, 0xfff);
        }
    }
    fn parse(&self, out: &[u8]) -> Result<Fgn, &'static str> {
        Ok(Fgn(OUT_ID.get(out)))
    }
}

/// DESTROY_FLOW_GROUP.
#[derive(Clone, Copy, Debug)]
pub struct DestroyFlowGroup {
    pub table_type: u8,
    pub table: Ftn,
    pub group: Fgn,
}

impl Command for DestroyFlowGroup {
    type Output = ();
    const OPCODE: u16 = op::DESTROY_FLOW_GROUP;
    fn in_len(&self) -> usize {
        0x40
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        TABLE_TYPE.set(inbox, self.table_type as u32);
        TABLE_ID.set(inbox, self.table.0);
        fg::GROUP_ID.set(inbox, self.group.0);
    }
    fn parse(&self, _out: &[u8]) -> Result<(), &'static str> {
        Ok(())
    }
}

/// SET_FLOW_TABLE_ENTRY (op_mod 0: a new entry): match `value`, forward to
/// one destination.
#[derive(Clone, Copy, Debug)]
pub struct SetFte {
    pub table_type: u8,
    pub table: Ftn,
    pub index: u32,
    pub group: Fgn,
    pub value: MatchValue,
    pub dest: Destination,
}

impl Command for SetFte {
    type Output = ();
    const OPCODE: u16 = op::SET_FLOW_TABLE_ENTRY;
    fn in_len(&self) -> usize {
        SET_FTE_IN_LEN
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        TABLE_TYPE.set(inbox, self.table_type as u32);
        TABLE_ID.set(inbox, self.table.0);
        FLOW_INDEX.set(inbox, self.index);
        let c = fte::CTX;
        fte::GROUP_ID.within(c).set(inbox, self.group.0);
        fte::ACTION.within(c).set(inbox, ACTION_FWD_DEST);
        fte::DESTINATION_LIST_SIZE.within(c).set(inbox, 1);
        let m = c + fte::MATCH_VALUE;
        if let Some(mac) = self.value.dmac {
            write_dmac(inbox, m, mac.0);
        }
        if let Some(vid) = self.value.vlan {
            outer::CVLAN_TAG.within(m).set(inbox, 1);
            outer::FIRST_VID.within(m).set(inbox, vid as u32);
        }
        let (ty, id) = self.dest.type_and_id();
        let d = c + fte::DESTINATION;
        fte::DEST_TYPE.within(d).set(inbox, ty);
        fte::DEST_ID.within(d).set(inbox, id);
    }
    fn parse(&self, _out: &[u8]) -> Result<(), &'static str> {
        Ok(())
    }
}

/// DELETE_FLOW_TABLE_ENTRY.
#[derive(Clone, Copy, Debug)]
pub struct DeleteFte {
    pub table_type: u8,
    pub table: Ftn,
    pub index: u32,
}

impl Command for DeleteFte {
    type Output = ();
    const OPCODE: u16 = op::DELETE_FLOW_TABLE_ENTRY;
    fn in_len(&self) -> usize {
        DELETE_FTE_IN_LEN
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        TABLE_TYPE.set(inbox, self.table_type as u32);
        TABLE_ID.set(inbox, self.table.0);
        FLOW_INDEX.set(inbox, self.index);
    }
    fn parse(&self, _out: &[u8]) -> Result<(), &'static str> {
        Ok(())
    }
}

/// An installed entry of [`MacSteering`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct FlowEntry(pub u32);

/// Why an entry was not added.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FlowError {
    /// Every index of the group is in use.
    TableFull,
    /// This MAC already has an entry.
    Duplicate(FlowEntry),
    /// No such entry.
    NoEntry(FlowEntry),
    Command(CmdError),
}

impl From<CmdError> for FlowError {
    fn from(e: CmdError) -> Self {
        FlowError::Command(e)
    }
}

/// The broadcast address.
pub const BROADCAST: Mac = Mac([0xff; 6]);

/// The port's root NIC_RX table: one group matching the destination MAC,
/// entries added and removed at run time.
#[derive(Debug)]
pub struct MacSteering {
    pub table: Ftn,
    pub group: Fgn,
    entries: Vec<Option<(Mac, Destination)>>,
}

impl MacSteering {
    /// Create the table (level 0, 2^log_size entries), its destination-MAC
    /// group over every entry, and make it the NIC_RX root. On failure
    /// whatever was created is destroyed again.
    pub fn create(ex: &mut impl Exec, log_size: u8) -> Result<Self, CmdError> {
        let tt = TABLE_TYPE_NIC_RX;
        let table = ex.exec(&CreateFlowTable {
            table_type: tt,
            level: 0,
            log_size,
        })?;
        let destroy_table = DestroyFlowTable {
            table_type: tt,
            table,
        };
        let size = 1u32 << log_size;
        let group = match ex.exec(&CreateFlowGroup {
            table_type: tt,
            table,
            start: 0,
            end: size - 1,
            criteria: Criteria {
                dmac: true,
                vlan: false,
            },
        }) {
            Ok(g) => g,
            Err(e) => {
                let _ = ex.exec(&destroy_table);
                return Err(e);
            }
        };
        if let Err(e) = ex.exec(&SetFlowTableRoot {
            table_type: tt,
            table,
        }) {
            let _ = ex.exec(&DestroyFlowGroup {
                table_type: tt,
                table,
                group,
            });
            let _ = ex.exec(&destroy_table);
            return Err(e);
        }
        Ok(Self {
            table,
            group,
            entries: vec![None; size as usize],
        })
    }

    /// Steer frames for `mac` to `dest`.
    pub fn add(
        &mut self,
        ex: &mut impl Exec,
        mac: Mac,
        dest: Destination,
    ) -> Result<FlowEntry, FlowError> {
        if let Some(e) = self.find(mac) {
            return Err(FlowError::Duplicate(e));
        }
        let Some(index) = self.entries.iter().position(|e| e.is_none()) else {
            return Err(FlowError::TableFull);
        };
        ex.exec(&SetFte {
            table_type: TABLE_TYPE_NIC_RX,
            table: self.table,
            index: index as u32,
            group: self.group,
            value: MatchValue {
                dmac: Some(mac),
                vlan: None,
            },
            dest,
        })?;
        self.entries[index] = Some((mac, dest));
        Ok(FlowEntry(index as u32))
    }

    /// Remove one entry.
    pub fn remove(&mut self, ex: &mut impl Exec, entry: FlowEntry) -> Result<(), FlowError> {
        let i = entry.0 as usize;
        if self.entries.get(i).is_none_or(|e| e.is_none()) {
            return Err(FlowError::NoEntry(entry));
        }
        ex.exec(&DeleteFte {
            table_type: TABLE_TYPE_NIC_RX,
            table: self.table,
            index: entry.0,
        })?;
        self.entries[i] = None;
        Ok(())
    }

    pub fn find(&self, mac: Mac) -> Option<FlowEntry> {
        self.entries
            .iter()
            .position(|e| e.is_some_and(|(m, _)| m == mac))
            .map(|i| FlowEntry(i as u32))
    }

    /// Installed entries: (entry, MAC, destination).
    pub fn entries(&self) -> impl Iterator<Item = (FlowEntry, Mac, Destination)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|(m, d)| (FlowEntry(i as u32), m, d)))
    }

    /// Delete every entry, the group and the table. Keeps going past
    /// failures and returns the first.
    pub fn destroy(mut self, ex: &mut impl Exec) -> Result<(), CmdError> {
        let mut first = Ok(());
        let mut keep = |r: Result<(), CmdError>| {
            if let (Err(e), Ok(())) = (r, &first) {
                first = Err(e);
            }
        };
        for i in 0..self.entries.len() {
            if self.entries[i].take().is_some() {
                keep(ex.exec(&DeleteFte {
                    table_type: TABLE_TYPE_NIC_RX,
                    table: self.table,
                    index: i as u32,
                }));
            }
        }
        keep(ex.exec(&DestroyFlowGroup {
            table_type: TABLE_TYPE_NIC_RX,
            table: self.table,
            group: self.group,
        }));
        keep(ex.exec(&DestroyFlowTable {
            table_type: TABLE_TYPE_NIC_RX,
            table: self.table,
        }));
        first
    }

    /// The table as the driver programmed it, for the shell.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "nic_rx root table {} group {} (dmac) {}/{} entries",
            self.table.0,
            self.group.0,
            self.entries().count(),
            self.entries.len()
        );
        for (e, m, d) in self.entries() {
            let _ = match d {
                Destination::Tir(t) => writeln!(s, "  [{}] dmac {} -> tir {}", e.0, m, t.0),
                Destination::Table(t) => writeln!(s, "  [{}] dmac {} -> table {}", e.0, m, t.0),
            };
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;
    use crate::mock::MockExec;

    #[test]
    fn create_table_and_root_golden() {
        let b = encode(&CreateFlowTable {
            table_type: TABLE_TYPE_NIC_RX,
            level: 0,
            log_size: 4,
        });
        assert_eq!(b.len(), 0x58);
        assert_eq!(&b[0..4], &[0x09, 0x30, 0, 0]);
        // table_type [31:24] of 0x10 = 0 (NIC_RX); context at 0x18:
        // level [23:16], log_size [7:0].
        assert_eq!(&b[0x10..0x14], &[0, 0, 0, 0]);
        assert_eq!(&b[0x18..0x1c], &[0x00, 0x00, 0x00, 0x04]);
        let b = encode(&CreateFlowTable {
            table_type: 1,
            level: 2,
            log_size: 10,
        });
        assert_eq!(&b[0x10..0x14], &[0x01, 0, 0, 0]);
        assert_eq!(&b[0x18..0x1c], &[0x00, 0x02, 0x00, 0x0a]);
        // set_flow_table_root_in: opcode 0x92f, table_id [23:0] at 0x14.
        let b = encode(&SetFlowTableRoot {
            table_type: 0,
            table: Ftn(0x0102),
        });
        assert_eq!(b.len(), 0x40);
        assert_eq!(&b[0..4], &[0x09, 0x2f, 0, 0]);
        assert_eq!(&b[0x14..0x18], &[0, 0, 0x01, 0x02]);
        let b = encode(&DestroyFlowTable {
            table_type: 0,
            table: Ftn(3),
        });
        assert_eq!(&b[0..4], &[0x09, 0x31, 0, 0]);
        assert_eq!(&b[0x14..0x18], &[0, 0, 0, 3]);
    }

    #[test]
    fn create_flow_group_golden() {
        let b = encode(&CreateFlowGroup {
            table_type: 0,
            table: Ftn(7),
            start: 0,
            end: 15,
            criteria: Criteria {
                dmac: true,
                vlan: true,
            },
        });
        assert_eq!(b.len(), 0x400);
        assert_eq!(&b[0..4], &[0x09, 0x33, 0, 0]);
        assert_eq!(&b[0x14..0x18], &[0, 0, 0, 7]);
        // start_flow_index 0x1c, end_flow_index 0x24.
        assert_eq!(&b[0x1c..0x20], &[0, 0, 0, 0]);
        assert_eq!(&b[0x24..0x28], &[0, 0, 0, 15]);
        // match_criteria_enable [7:0] of 0x3c: outer headers.
        assert_eq!(&b[0x3c..0x40], &[0, 0, 0, 1]);
        // match_criteria at 0x40: outer smac (0x40..0x48) not matched;
        // dmac_47_16 at 0x48, dmac_15_0 [31:16] + first_vid [11:0] at 0x4c;
        // cvlan_tag [15] of 0x50.
        assert_eq!(&b[0x40..0x48], &[0; 8]);
        assert_eq!(
            &b[0x48..0x54],
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff, 0x00, 0x00, 0x80, 0x00
            ]
        );
        let b = encode(&DestroyFlowGroup {
            table_type: 0,
            table: Ftn(7),
            group: Fgn(9),
        });
        assert_eq!(&b[0..4], &[0x09, 0x34, 0, 0]);
        assert_eq!(&b[0x14..0x1c], &[0, 0, 0, 7, 0, 0, 0, 9]);
    }

    #[test]
    fn set_and_delete_fte_golden() {
        let b = encode(&SetFte {
            table_type: 0,
            table: Ftn(7),
            index: 3,
            group: Fgn(9),
            value: MatchValue {
                dmac: Some(Mac([0x02, 0x11, 0x22, 0x33, 0x44, 0x55])),
                vlan: None,
            },
            dest: Destination::Tir(Tirn(0x0abc)),
        });
        assert_eq!(b.len(), 0x348);
        assert_eq!(&b[0..4], &[0x09, 0x36, 0, 0]);
        assert_eq!(&b[0x14..0x18], &[0, 0, 0, 7]);
        // flow_index at 0x20.
        assert_eq!(&b[0x20..0x24], &[0, 0, 0, 3]);
        // flow_context at 0x40: group_id 0x44, action [15:0] of 0x4c = 4
        // (FWD_DEST), destination_list_size [23:0] of 0x50 = 1.
        assert_eq!(&b[0x44..0x48], &[0, 0, 0, 9]);
        assert_eq!(&b[0x4c..0x50], &[0, 0, 0, 4]);
        assert_eq!(&b[0x50..0x54], &[0, 0, 0, 1]);
        // match_value at 0x80: dmac at outer 0x08 -> 0x88..0x8e.
        assert_eq!(&b[0x88..0x90], &[0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0]);
        // destination at flow_context + 0x300 = 0x340: type TIR 2 [31:24],
        // id [23:0].
        assert_eq!(&b[0x340..0x348], &[0x02, 0x00, 0x0a, 0xbc, 0, 0, 0, 0]);
        let b = encode(&SetFte {
            table_type: 0,
            table: Ftn(7),
            index: 0,
            group: Fgn(9),
            value: MatchValue {
                dmac: None,
                vlan: Some(10),
            },
            dest: Destination::Table(Ftn(0x20)),
        });
        assert_eq!(&b[0x8c..0x94], &[0, 0, 0x00, 0x0a, 0, 0, 0x80, 0]);
        assert_eq!(&b[0x340..0x344], &[0x01, 0x00, 0x00, 0x20]);
        let b = encode(&DeleteFte {
            table_type: 0,
            table: Ftn(7),
            index: 3,
        });
        assert_eq!(b.len(), 0x40);
        assert_eq!(&b[0..4], &[0x09, 0x38, 0, 0]);
        assert_eq!(&b[0x14..0x18], &[0, 0, 0, 7]);
        assert_eq!(&b[0x20..0x24], &[0, 0, 0, 3]);
    }

    #[test]
    fn mac_steering_adds_and_removes_at_run_time() {
        let mut ex = MockExec::default();
        let mut st = MacSteering::create(&mut ex, 2).unwrap();
        assert_eq!(
            ex.opcodes(),
            [
                op::CREATE_FLOW_TABLE,
                op::CREATE_FLOW_GROUP,
                op::SET_FLOW_TABLE_ROOT
            ]
        );
        let me = Mac([2, 0, 0, 0, 0, 1]);
        let e0 = st.add(&mut ex, me, Destination::Tir(Tirn(5))).unwrap();
        let e1 = st
            .add(&mut ex, BROADCAST, Destination::Tir(Tirn(5)))
            .unwrap();
        assert_eq!((e0, e1), (FlowEntry(0), FlowEntry(1)));
        assert_eq!(
            st.add(&mut ex, me, Destination::Tir(Tirn(5))),
            Err(FlowError::Duplicate(e0))
        );
        for i in 2..4u8 {
            st.add(&mut ex, Mac([2, 0, 0, 0, 1, i]), Destination::Tir(Tirn(6)))
                .unwrap();
        }
        assert_eq!(
            st.add(&mut ex, Mac([2, 0, 0, 0, 2, 0]), Destination::Tir(Tirn(6))),
            Err(FlowError::TableFull)
        );
        st.remove(&mut ex, e0).unwrap();
        assert_eq!(st.remove(&mut ex, e0), Err(FlowError::NoEntry(e0)));
        assert_eq!(st.find(me), None);
        // The freed index is reused.
        assert_eq!(
            st.add(&mut ex, me, Destination::Tir(Tirn(7))),
            Ok(FlowEntry(0))
        );
        assert!(st.report().contains("dmac ff:ff:ff:ff:ff:ff -> tir 5"));
        let before = ex.log.len();
        st.destroy(&mut ex).unwrap();
        let tail: Vec<u16> = ex.opcodes()[before..].to_vec();
        assert_eq!(
            tail,
            [
                op::DELETE_FLOW_TABLE_ENTRY,
                op::DELETE_FLOW_TABLE_ENTRY,
                op::DELETE_FLOW_TABLE_ENTRY,
                op::DELETE_FLOW_TABLE_ENTRY,
                op::DESTROY_FLOW_GROUP,
                op::DESTROY_FLOW_TABLE
            ]
        );
    }

    #[test]
    fn failed_root_undoes_group_and_table() {
        let mut ex = MockExec {
            fail_opcode: Some(op::SET_FLOW_TABLE_ROOT),
            ..MockExec::default()
        };
        let e = MacSteering::create(&mut ex, 2).unwrap_err();
        assert_eq!(e.opcode, op::SET_FLOW_TABLE_ROOT);
        assert_eq!(
            ex.opcodes(),
            [
                op::CREATE_FLOW_TABLE,
                op::CREATE_FLOW_GROUP,
                op::SET_FLOW_TABLE_ROOT,
                op::DESTROY_FLOW_GROUP,
                op::DESTROY_FLOW_TABLE
            ]
        );
    }
}
