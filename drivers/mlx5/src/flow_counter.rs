//! Flow counters (PRM "Flow Counters"; `alloc_flow_counter_in/out`,
//! `dealloc_flow_counter_in`, `query_flow_counter_in/out`,
//! `traffic_counter` in mlx5_ifc.h). A flow table entry with the COUNT
//! action adds each frame it matches (packets, bytes) to the counters in
//! its `flow_counter_list`.

use crate::cmd::{Command, SimpleCmd, op};
use crate::error::BadOutput;
use crate::layout::{Field, Field64};

/// A flow counter id.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct FlowCounterId(pub u32);

/// alloc_flow_counter_out: flow_counter_id at 0x08; dealloc input: the
/// id at 0x08; query input: clear `[31]` and num_of_counters `[15:0]` of
/// 0x18, flow_counter_id at 0x1c; query output: `traffic_counter`
/// (packets, octets: be64 each) at 0x10.
pub const COUNTER_ID: Field = Field::new(0x08, 31, 0);
pub const QUERY_CLEAR: Field = Field::new(0x18, 31, 31);
pub const QUERY_NUM: Field = Field::new(0x18, 15, 0);
pub const QUERY_ID: Field = Field::new(0x1c, 31, 0);
pub const OUT_PACKETS: Field64 = Field64::new(0x10);
pub const OUT_OCTETS: Field64 = Field64::new(0x18);

/// ALLOC_FLOW_COUNTER (one counter, no bulk).
#[derive(Clone, Copy, Debug)]
pub struct AllocFlowCounter;

impl Command for AllocFlowCounter {
    type Output = FlowCounterId;
    const OPCODE: u16 = op::ALLOC_FLOW_COUNTER;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, out: &[u8]) -> Result<FlowCounterId, BadOutput> {
        Ok(FlowCounterId(COUNTER_ID.get(out)))
    }
}

pub type DeallocFlowCounter = SimpleCmd<{ op::DEALLOC_FLOW_COUNTER }>;

pub fn dealloc_flow_counter(id: FlowCounterId) -> DeallocFlowCounter {
    DeallocFlowCounter::new(0, Some((COUNTER_ID, id.0)))
}

/// Packets and bytes a counter saw.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

/// QUERY_FLOW_COUNTER of one counter.
#[derive(Clone, Copy, Debug)]
pub struct QueryFlowCounter {
    pub id: FlowCounterId,
    pub clear: bool,
}

impl Command for QueryFlowCounter {
    type Output = Traffic;
    const OPCODE: u16 = op::QUERY_FLOW_COUNTER;
    fn in_len(&self) -> usize {
        0x20
    }
    fn out_len(&self) -> usize {
        0x20
    }
    fn build(&self, inbox: &mut [u8]) {
        QUERY_CLEAR.set(inbox, self.clear as u32);
        QUERY_NUM.set(inbox, 1);
        QUERY_ID.set(inbox, self.id.0);
    }
    fn parse(&self, out: &[u8]) -> Result<Traffic, BadOutput> {
        Ok(Traffic {
            packets: OUT_PACKETS.get(out),
            bytes: OUT_OCTETS.get(out),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

    #[test]
    fn golden() {
        assert_eq!(
            encode(&AllocFlowCounter)[..8],
            [0x09, 0x39, 0, 0, 0, 0, 0, 0]
        );
        let out = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0];
        assert_eq!(AllocFlowCounter.parse(&out), Ok(FlowCounterId(0x1234)));
        assert_eq!(
            encode(&dealloc_flow_counter(FlowCounterId(0x1234)))[..12],
            [0x09, 0x3a, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34]
        );
        let b = encode(&QueryFlowCounter {
            id: FlowCounterId(9),
            clear: true,
        });
        assert_eq!(b.len(), 0x20);
        assert_eq!(&b[0..2], &[0x09, 0x3b]);
        // clear [31] + num_of_counters 1 at 0x18, id at 0x1c.
        assert_eq!(&b[0x18..0x20], &[0x80, 0, 0, 1, 0, 0, 0, 9]);
        let mut out = [0u8; 0x20];
        out[0x10..0x18].copy_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
        out[0x18..0x20].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0x05, 0xdc]);
        let t = QueryFlowCounter {
            id: FlowCounterId(9),
            clear: false,
        }
        .parse(&out)
        .unwrap();
        assert_eq!(
            t,
            Traffic {
                packets: (1 << 32) | 2,
                bytes: 1500
            }
        );
    }
}
