//! NIC receive flow tables (PRM "Flow Table"; `flow_table_context_bits`,
//! `create_flow_table_in/out`, `destroy_flow_table_in`,
//! `create_flow_group_in/out`, `destroy_flow_group_in`, `set_fte_in`,
//! `delete_fte_in`, `set_flow_table_root_in`, `flow_context_bits`,
//! `fte_match_param_bits` / `fte_match_set_lyr_2_4_bits`,
//! `dest_format_struct_bits` in mlx5_ifc.h).
//!
//! These are the commands; [`crate::steering`] builds the function's
//! receive tables from them.

use crate::error::BadOutput;
use cxos_drivers::FilterError;

use crate::cmd::{Command, op};
use crate::error::CmdError;
use crate::flow_counter::FlowCounterId;
use crate::layout::Field;
use crate::tir::Tirn;
use crate::vport::Mac;

/// A flow table id.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Ftn(pub u32);
/// A flow group id.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Default)]
pub struct Fgn(pub u32);

/// `MLX5_FLOW_TABLE_TYPE_NIC_RX`.
pub const TABLE_TYPE_NIC_RX: u8 = 0;
/// `MLX5_FLOW_CONTEXT_ACTION_DROP` / `_FWD_DEST` / `_COUNT`.
pub const ACTION_DROP: u32 = 0x2;
pub const ACTION_FWD_DEST: u32 = 0x4;
pub const ACTION_COUNT: u32 = 0x8;
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
    pub const ETHERTYPE: Field = Field::new(0x04, 15, 0);
    pub const DMAC_47_16: Field = Field::new(0x08, 31, 0);
    pub const IP_PROTOCOL: Field = Field::new(0x10, 31, 24);
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
    pub const FLOW_COUNTER_LIST_SIZE: Field = Field::new(0x14, 23, 0);
    pub const MATCH_VALUE: usize = 0x40;
    pub const DESTINATION: usize = 0x300;
    /// `dest_format_struct_bits`, 8 bytes each.
    pub const DEST_TYPE: Field = Field::new(0x00, 31, 24);
    pub const DEST_ID: Field = Field::new(0x00, 23, 0);
    pub const DEST_LEN: usize = 8;
}
/// Destinations one entry may list (`log_max_destination` of the NIC_RX
/// flow table caps is at least 5 on every part the driver knows).
pub const MAX_DESTINATIONS: usize = 32;
/// The destinations of one entry as the steering keeps them.
pub type Dests = heapless::Vec<Destination, MAX_DESTINATIONS>;

/// One destination.
pub fn one_dest(d: Destination) -> Dests {
    let mut v = Dests::new();
    // Room for MAX_DESTINATIONS, at least one.
    let _ = v.push(d);
    v
}

/// Flow counters one entry may list (the driver uses one).
pub const MAX_COUNTERS: usize = 8;
const DELETE_FTE_IN_LEN: usize = 0x40;

/// Which outer-header fields a group matches on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Criteria {
    pub dmac: bool,
    /// VLAN present and its id (per-MAC VLAN tables, VNICs).
    pub vlan: bool,
    /// Only the destination MAC's group (multicast) bit.
    pub dmac_mcast: bool,
    /// The ethertype (after a VLAN tag) and the IP protocol.
    pub ethertype: bool,
    pub ip_protocol: bool,
}

/// The values an entry matches.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MatchValue {
    pub dmac: Option<Mac>,
    pub vlan: Option<u16>,
    pub ethertype: Option<u16>,
    pub ip_protocol: Option<u8>,
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

impl From<Tirn> for Destination {
    fn from(t: Tirn) -> Self {
        Destination::Tir(t)
    }
}

impl From<Ftn> for Destination {
    fn from(t: Ftn) -> Self {
        Destination::Table(t)
    }
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
    fn parse(&self, out: &[u8]) -> Result<Ftn, BadOutput> {
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
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
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
        if c.dmac || c.vlan || c.dmac_mcast || c.ethertype || c.ip_protocol {
            fg::MATCH_CRITERIA_ENABLE.set(inbox, MATCH_OUTER_HEADERS);
        }
        let m = fg::MATCH_CRITERIA;
        if c.dmac {
            write_dmac(inbox, m, [0xff; 6]);
        } else if c.dmac_mcast {
            write_dmac(inbox, m, [0x01, 0, 0, 0, 0, 0]);
        }
        if c.vlan {
            outer::CVLAN_TAG.within(m).set(inbox, 1);
            outer::FIRST_VID.within(m).set(inbox, 0xfff);
        }
        if c.ethertype {
            outer::ETHERTYPE.within(m).set(inbox, 0xffff);
        }
        if c.ip_protocol {
            outer::IP_PROTOCOL.within(m).set(inbox, 0xff);
        }
    }
    fn parse(&self, out: &[u8]) -> Result<Fgn, BadOutput> {
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
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
    }
}

/// SET_FLOW_TABLE_ENTRY (op_mod 0: a new entry): match `value`, forward to
/// every destination of `dests` (the adapter replicates the frame to
/// each; none: drop), and count into `counter`.
#[derive(Clone, Copy, Debug)]
pub struct SetFte<'a> {
    pub table_type: u8,
    pub table: Ftn,
    pub index: u32,
    pub group: Fgn,
    pub value: MatchValue,
    pub dests: &'a [Destination],
    pub counter: Option<FlowCounterId>,
}

impl Command for SetFte<'_> {
    type Output = ();
    const OPCODE: u16 = op::SET_FLOW_TABLE_ENTRY;
    fn in_len(&self) -> usize {
        // The destination list, then the counter list (`flow_counter_list`:
        // the counter id in the first dword), 8 bytes an entry; room for
        // two at least.
        let n = self.dests.len().min(MAX_DESTINATIONS) + self.counter.is_some() as usize;
        fte::CTX + fte::DESTINATION + n.max(2) * fte::DEST_LEN
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
        let dests = &self.dests[..self.dests.len().min(MAX_DESTINATIONS)];
        let mut action = if dests.is_empty() {
            ACTION_DROP
        } else {
            ACTION_FWD_DEST
        };
        if self.counter.is_some() {
            action |= ACTION_COUNT;
        }
        fte::ACTION.within(c).set(inbox, action);
        fte::DESTINATION_LIST_SIZE
            .within(c)
            .set(inbox, dests.len() as u32);
        let m = c + fte::MATCH_VALUE;
        if let Some(mac) = self.value.dmac {
            write_dmac(inbox, m, mac.0);
        }
        if let Some(vid) = self.value.vlan {
            outer::CVLAN_TAG.within(m).set(inbox, 1);
            outer::FIRST_VID.within(m).set(inbox, vid as u32);
        }
        if let Some(t) = self.value.ethertype {
            outer::ETHERTYPE.within(m).set(inbox, t as u32);
        }
        if let Some(p) = self.value.ip_protocol {
            outer::IP_PROTOCOL.within(m).set(inbox, p as u32);
        }
        let mut d = c + fte::DESTINATION;
        for dest in dests {
            let (ty, id) = dest.type_and_id();
            fte::DEST_TYPE.within(d).set(inbox, ty);
            fte::DEST_ID.within(d).set(inbox, id);
            d += fte::DEST_LEN;
        }
        if let Some(ctr) = self.counter {
            fte::FLOW_COUNTER_LIST_SIZE.within(c).set(inbox, 1);
            Field::new(d, 31, 0).set(inbox, ctr.0);
        }
    }
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
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
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
    }
}

/// QUERY_FLOW_TABLE_ENTRY (`query_fte_in`: table_type `[31:24]` of 0x10,
/// table_id 0x14, flow_index 0x20; `query_fte_out`: the entry's
/// `flow_context` at 0x40, laid out as in `set_fte_in`): what the adapter
/// holds at `index` of `table`.
#[derive(Clone, Copy, Debug)]
pub struct QueryFte {
    pub table_type: u8,
    pub table: Ftn,
    pub index: u32,
}

/// An entry as the adapter reports it ([`QueryFte`]).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct FteView {
    pub group: Fgn,
    pub action: u32,
    pub value: MatchValue,
    pub dests: alloc::vec::Vec<Destination>,
    pub counters: alloc::vec::Vec<FlowCounterId>,
}

/// query_fte_out: the flow context at 0x40.
const QUERY_FTE_CTX: usize = 0x40;
const QUERY_FTE_OUT_LEN: usize =
    QUERY_FTE_CTX + fte::DESTINATION + (MAX_DESTINATIONS + MAX_COUNTERS) * fte::DEST_LEN;

impl Command for QueryFte {
    type Output = FteView;
    const OPCODE: u16 = op::QUERY_FLOW_TABLE_ENTRY;
    fn in_len(&self) -> usize {
        DELETE_FTE_IN_LEN
    }
    fn out_len(&self) -> usize {
        QUERY_FTE_OUT_LEN
    }
    fn build(&self, inbox: &mut [u8]) {
        TABLE_TYPE.set(inbox, self.table_type as u32);
        TABLE_ID.set(inbox, self.table.0);
        FLOW_INDEX.set(inbox, self.index);
    }
    fn parse(&self, out: &[u8]) -> Result<FteView, BadOutput> {
        let c = QUERY_FTE_CTX;
        let ndest = fte::DESTINATION_LIST_SIZE.within(c).get(out) as usize;
        let ncount = fte::FLOW_COUNTER_LIST_SIZE.within(c).get(out) as usize;
        if ndest > MAX_DESTINATIONS || ncount > MAX_COUNTERS {
            return Err(BadOutput::TooManyDestinations {
                dests: ndest,
                counters: ncount,
            });
        }
        let m = c + fte::MATCH_VALUE;
        let hi = outer::DMAC_47_16.within(m).get(out).to_be_bytes();
        let lo = (outer::DMAC_15_0.within(m).get(out) as u16).to_be_bytes();
        let mac = [hi[0], hi[1], hi[2], hi[3], lo[0], lo[1]];
        let nonzero = |v: u32| (v != 0).then_some(v);
        let value = MatchValue {
            dmac: (mac != [0; 6]).then_some(Mac(mac)),
            vlan: (outer::CVLAN_TAG.within(m).get(out) != 0)
                .then(|| outer::FIRST_VID.within(m).get(out) as u16),
            ethertype: nonzero(outer::ETHERTYPE.within(m).get(out)).map(|v| v as u16),
            ip_protocol: nonzero(outer::IP_PROTOCOL.within(m).get(out)).map(|v| v as u8),
        };
        let mut dests = alloc::vec::Vec::with_capacity(ndest);
        let mut d = c + fte::DESTINATION;
        for _ in 0..ndest {
            let id = fte::DEST_ID.within(d).get(out);
            dests.push(match fte::DEST_TYPE.within(d).get(out) {
                DEST_TYPE_TIR => Destination::Tir(Tirn(id)),
                DEST_TYPE_FLOW_TABLE => Destination::Table(Ftn(id)),
                other => return Err(BadOutput::UnknownDestination(other as u8)),
            });
            d += fte::DEST_LEN;
        }
        let counters = (0..ncount)
            .map(|i| FlowCounterId(Field::new(d + i * fte::DEST_LEN, 31, 0).get(out)))
            .collect();
        Ok(FteView {
            group: Fgn(fte::GROUP_ID.within(c).get(out)),
            action: fte::ACTION.within(c).get(out),
            value,
            dests,
            counters,
        })
    }
}

/// An installed root entry of the function's steering ([`crate::steering::Steering`]).
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
    /// Not something this steering does (a VLAN id over 4095, forwarding
    /// a MAC to a table).
    Unsupported,
    /// Another steering change is waiting for the device (a change waits
    /// with the steering taken out of the shared adapter; see
    /// `crate::vnic::Nic`).
    Busy,
    Command(CmdError),
}

impl core::fmt::Display for FlowError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FlowError::TableFull => f.write_str("flow table full"),
            FlowError::Duplicate(e) => write!(f, "rule exists (root entry {})", e.0),
            FlowError::NoEntry(_) => f.write_str("no such rule"),
            FlowError::Unsupported => f.write_str("not supported by the steering"),
            FlowError::Busy => f.write_str("busy: another steering change waits for the device"),
            FlowError::Command(c) => write!(f, "{c}"),
        }
    }
}

impl core::error::Error for FlowError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            FlowError::Command(c) => Some(c),
            _ => None,
        }
    }
}

/// What the network stack learns of a refused filter change.
impl From<FlowError> for FilterError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::TableFull => FilterError::Full,
            FlowError::Unsupported | FlowError::NoEntry(_) | FlowError::Duplicate(_) => {
                FilterError::Unsupported
            }
            FlowError::Command(_) | FlowError::Busy => FilterError::Device,
        }
    }
}

impl From<CmdError> for FlowError {
    fn from(e: CmdError) -> Self {
        FlowError::Command(e)
    }
}

/// The broadcast address.
pub const BROADCAST: Mac = Mac([0xff; 6]);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

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
                ..Criteria::default()
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
                ..MatchValue::default()
            },
            dests: &[Destination::Tir(Tirn(0x0abc))],
            counter: None,
        });
        assert_eq!(b.len(), 0x350);
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
                vlan: Some(10),
                ethertype: Some(0x86dd),
                ip_protocol: Some(17),
                ..MatchValue::default()
            },
            dests: &[Destination::Table(Ftn(0x20))],
            counter: Some(FlowCounterId(0x77)),
        });
        assert_eq!(&b[0x8c..0x94], &[0, 0, 0x00, 0x0a, 0x11, 0, 0x80, 0]);
        // ethertype [15:0] of outer 0x04 -> 0x84.
        assert_eq!(&b[0x84..0x88], &[0, 0, 0x86, 0xdd]);
        assert_eq!(&b[0x340..0x344], &[0x01, 0x00, 0x00, 0x20]);
        // action FWD_DEST | COUNT = 0xc; flow_counter_list_size [23:0] of
        // flow_context 0x14 -> 0x54; the counter id follows the one
        // destination: 0x348.
        assert_eq!(&b[0x4c..0x50], &[0, 0, 0, 0x0c]);
        assert_eq!(&b[0x54..0x58], &[0, 0, 0, 1]);
        assert_eq!(&b[0x348..0x34c], &[0, 0, 0, 0x77]);
        // Drop and count: action 0x2 | 0x8, no destination, the counter
        // first in the list.
        let b = encode(&SetFte {
            table_type: 0,
            table: Ftn(7),
            index: 1,
            group: Fgn(9),
            value: MatchValue::default(),
            dests: &[],
            counter: Some(FlowCounterId(5)),
        });
        assert_eq!(&b[0x4c..0x58], &[0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&b[0x340..0x344], &[0, 0, 0, 5]);
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
    fn set_fte_with_several_destinations_golden() {
        let b = encode(&SetFte {
            table_type: 0,
            table: Ftn(7),
            index: 2,
            group: Fgn(9),
            value: MatchValue::default(),
            dests: &[Destination::Tir(Tirn(5)), Destination::Tir(Tirn(6))],
            counter: Some(FlowCounterId(3)),
        });
        // Two destinations and a counter: 0x340 + 3 * 8.
        assert_eq!(b.len(), 0x358);
        // destination_list_size [23:0] of flow_context 0x10 -> 0x50.
        assert_eq!(&b[0x50..0x58], &[0, 0, 0, 2, 0, 0, 0, 1]);
        assert_eq!(
            &b[0x340..0x354],
            &[
                0x02, 0, 0, 5, 0, 0, 0, 0, 0x02, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 3
            ]
        );
    }

    #[test]
    fn query_fte_golden_and_parse() {
        let q = QueryFte {
            table_type: 0,
            table: Ftn(0x21),
            index: 4,
        };
        let b = encode(&q);
        // query_fte_in: opcode 0x937, table_id 0x14, flow_index 0x20; 0x40 long.
        assert_eq!(b.len(), 0x40);
        assert_eq!(&b[0..4], &[0x09, 0x37, 0, 0]);
        assert_eq!(&b[0x14..0x18], &[0, 0, 0, 0x21]);
        assert_eq!(&b[0x20..0x24], &[0, 0, 0, 4]);
        // query_fte_out: flow_context at 0x40 (group_id 0x44, action 0x4c,
        // destination_list_size 0x50, flow_counter_list_size 0x54), match
        // value at 0x80 (dmac 0x88, first_vid [11:0] of 0x8c, cvlan_tag bit
        // 15 of 0x90), destinations at 0x340, then the counters.
        let mut out = alloc::vec![0u8; q.out_len()];
        out[0x44..0x48].copy_from_slice(&[0, 0, 0, 9]);
        out[0x4c..0x50].copy_from_slice(&[0, 0, 0, 0x0c]);
        out[0x50..0x58].copy_from_slice(&[0, 0, 0, 2, 0, 0, 0, 1]);
        out[0x88..0x94].copy_from_slice(&[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x0a, 0, 0, 0x80, 0,
        ]);
        out[0x340..0x354].copy_from_slice(&[
            0x02, 0, 0, 5, 0, 0, 0, 0, 0x01, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 7,
        ]);
        let v = q.parse(&out).unwrap();
        assert_eq!(
            v,
            FteView {
                group: Fgn(9),
                action: ACTION_FWD_DEST | ACTION_COUNT,
                value: MatchValue {
                    dmac: Some(BROADCAST),
                    vlan: Some(10),
                    ..MatchValue::default()
                },
                dests: alloc::vec![Destination::Tir(Tirn(5)), Destination::Table(Ftn(0x20))],
                counters: alloc::vec![FlowCounterId(7)],
            }
        );
        // An untrusted answer: too many destinations, or an unknown type.
        let mut bad = out.clone();
        bad[0x50..0x54].copy_from_slice(&[0, 0, 0, 33]);
        assert!(q.parse(&bad).is_err());
        let mut bad = out.clone();
        bad[0x340] = 0x07;
        assert!(q.parse(&bad).is_err());
    }
}
