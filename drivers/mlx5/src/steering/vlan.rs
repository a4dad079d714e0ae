//! A MAC's VLAN table ([`VLAN_LEVEL`]): one group matching VLAN presence
//! and id (one entry per [`VlanMatch::Id`] rule, and the
//! [`VlanMatch::Untagged`] rule: no tag), one matching nothing (the
//! [`VlanMatch::Any`] rule: untagged frames and VLANs no other rule
//! claims).

use alloc::vec;
use alloc::vec::Vec;

use super::{Counted, TT, VLAN_LEVEL, VlanMatch, vlan_value};
use crate::cmd::Exec;
use crate::error::CmdError;
use crate::flow::{
    CreateFlowGroup, CreateFlowTable, Criteria, DeleteFte, DestroyFlowGroup, DestroyFlowTable, Fgn,
    Ftn, MatchValue, SetFte,
};
use crate::flow_counter::dealloc_flow_counter;

#[derive(Debug)]
pub(super) struct VlanTable {
    pub(super) table: Ftn,
    pub(super) tagged: Fgn,
    pub(super) any: Fgn,
    /// The [`VlanMatch::Any`] rule, in the last index.
    pub(super) default: Option<Counted>,
    /// (Untagged or Id, rule) per index of the tagged group.
    pub(super) vids: Vec<Option<(VlanMatch, Counted)>>,
}

impl VlanTable {
    pub(super) fn is_empty(&self) -> bool {
        self.default.is_none() && self.vids.iter().all(|v| v.is_none())
    }
}

/// A MAC's VLAN table ([`VLAN_LEVEL`]): the tagged group over all but the last
/// index, the catch-all group in the last.
pub(super) fn vlan_table(ex: &mut impl Exec, log: u8) -> Result<VlanTable, CmdError> {
    let size = 1u32 << log;
    let table = ex.exec(&CreateFlowTable {
        table_type: TT,
        level: VLAN_LEVEL,
        log_size: log,
    })?;
    let tagged = match ex.exec(&CreateFlowGroup {
        table_type: TT,
        table,
        start: 0,
        end: size - 2,
        criteria: Criteria {
            vlan: true,
            ..Criteria::default()
        },
    }) {
        Ok(g) => g,
        Err(e) => {
            let _ = ex.exec(&DestroyFlowTable {
                table_type: TT,
                table,
            });
            return Err(e);
        }
    };
    let any = match ex.exec(&CreateFlowGroup {
        table_type: TT,
        table,
        start: size - 1,
        end: size - 1,
        criteria: Criteria::default(),
    }) {
        Ok(g) => g,
        Err(e) => {
            let _ = ex.exec(&DestroyFlowGroup {
                table_type: TT,
                table,
                group: tagged,
            });
            let _ = ex.exec(&DestroyFlowTable {
                table_type: TT,
                table,
            });
            return Err(e);
        }
    };
    Ok(VlanTable {
        table,
        tagged,
        any,
        default: None,
        vids: vec![None; size as usize - 1],
    })
}

/// Set a VLAN table entry: (`index`, VLAN id or untagged) in the tagged
/// group (an untagged entry matches cvlan_tag 0, VID 0), or the catch-all
/// (`None`).
pub(super) fn set_vlan_entry(
    ex: &mut impl Exec,
    t: &VlanTable,
    at: Option<(usize, VlanMatch)>,
    r: &Counted,
) -> Result<(), CmdError> {
    let (index, group, value) = match at {
        Some((k, m)) => (k as u32, t.tagged, vlan_value(m)),
        None => (t.vids.len() as u32, t.any, MatchValue::default()),
    };
    ex.exec(&SetFte {
        table_type: TT,
        table: t.table,
        index,
        group,
        value,
        dests: &r.dests,
        counter: Some(r.counter),
    })
}

/// Delete a VLAN table's entries, counters, groups and the table (best
/// effort: used on teardown and to undo).
pub(super) fn destroy_vlan_table(ex: &mut impl Exec, t: VlanTable) {
    for (k, v) in t.vids.iter().enumerate() {
        if let Some((_, r)) = v {
            let _ = ex.exec(&DeleteFte {
                table_type: TT,
                table: t.table,
                index: k as u32,
            });
            let _ = ex.exec(&dealloc_flow_counter(r.counter));
        }
    }
    if let Some(r) = &t.default {
        let _ = ex.exec(&DeleteFte {
            table_type: TT,
            table: t.table,
            index: t.vids.len() as u32,
        });
        let _ = ex.exec(&dealloc_flow_counter(r.counter));
    }
    for g in [t.any, t.tagged] {
        let _ = ex.exec(&DestroyFlowGroup {
            table_type: TT,
            table: t.table,
            group: g,
        });
    }
    let _ = ex.exec(&DestroyFlowTable {
        table_type: TT,
        table: t.table,
    });
}
