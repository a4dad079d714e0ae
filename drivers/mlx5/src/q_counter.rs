//! Queue counters (PRM "Q Counters"; `alloc_q_counter_out`,
//! `dealloc_q_counter_in`, `query_q_counter_in/out` in mlx5_ifc.h). An RQ
//! names its counter set in `rqc.counter_set_id`; `out_of_buffer` counts
//! frames dropped because no receive WQE was posted.

use crate::cmd::{Command, SimpleCmd, op};
use crate::error::BadOutput;
use crate::layout::Field;

/// A Q counter set id.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct QCounterId(pub u8);

/// counter_set_id `[7:0]` of dword 0x08: alloc_q_counter_out and
/// dealloc_q_counter_in.
pub const COUNTER_SET_ID: Field = Field::new(0x08, 7, 0);
/// query_q_counter_in: clear `[31]` of 0x18, counter_set_id `[7:0]` of 0x1c.
pub const QUERY_CLEAR: Field = Field::new(0x18, 31, 31);
pub const QUERY_COUNTER_SET_ID: Field = Field::new(0x1c, 7, 0);
/// query_q_counter_out fields.
pub const OUT_OF_BUFFER: Field = Field::new(0x30, 31, 0);
pub const OUT_OF_SEQUENCE: Field = Field::new(0x38, 31, 0);
pub const QUERY_OUT_LEN: usize = 0x100;

#[derive(Clone, Copy, Debug)]
pub struct AllocQCounter;

impl Command for AllocQCounter {
    type Output = QCounterId;
    const OPCODE: u16 = op::ALLOC_Q_COUNTER;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, out: &[u8]) -> Result<QCounterId, BadOutput> {
        match COUNTER_SET_ID.get(out) {
            0 => Err(BadOutput::ReservedQCounter),
            id => Ok(QCounterId(id as u8)),
        }
    }
}

pub type DeallocQCounter = SimpleCmd<{ op::DEALLOC_Q_COUNTER }>;

pub fn dealloc_q_counter(id: QCounterId) -> DeallocQCounter {
    DeallocQCounter::new(0, Some((COUNTER_SET_ID, id.0 as u32)))
}

/// What QUERY_Q_COUNTER reports (the Ethernet-relevant counters).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct QCounters {
    pub out_of_buffer: u32,
    pub out_of_sequence: u32,
}

/// QUERY_Q_COUNTER, optionally clearing the set.
#[derive(Clone, Copy, Debug)]
pub struct QueryQCounter {
    pub id: QCounterId,
    pub clear: bool,
}

impl Command for QueryQCounter {
    type Output = QCounters;
    const OPCODE: u16 = op::QUERY_Q_COUNTER;
    fn in_len(&self) -> usize {
        0x20
    }
    fn out_len(&self) -> usize {
        QUERY_OUT_LEN
    }
    fn build(&self, inbox: &mut [u8]) {
        QUERY_CLEAR.set(inbox, self.clear as u32);
        QUERY_COUNTER_SET_ID.set(inbox, self.id.0 as u32);
    }
    fn parse(&self, out: &[u8]) -> Result<QCounters, BadOutput> {
        Ok(QCounters {
            out_of_buffer: OUT_OF_BUFFER.get(out),
            out_of_sequence: OUT_OF_SEQUENCE.get(out),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

    #[test]
    fn golden() {
        assert_eq!(encode(&AllocQCounter)[..4], [0x07, 0x71, 0, 0]);
        let mut out = [0u8; 16];
        out[0x0b] = 3;
        assert_eq!(AllocQCounter.parse(&out), Ok(QCounterId(3)));
        out[0x0b] = 0;
        assert!(AllocQCounter.parse(&out).is_err());
        assert_eq!(
            encode(&dealloc_q_counter(QCounterId(3)))[..12],
            [0x07, 0x72, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]
        );
        let b = encode(&QueryQCounter {
            id: QCounterId(5),
            clear: true,
        });
        assert_eq!(b.len(), 0x20);
        assert_eq!(&b[0..4], &[0x07, 0x73, 0, 0]);
        // clear [31] of 0x18, counter_set_id [7:0] of 0x1c.
        assert_eq!(&b[0x18..0x20], &[0x80, 0, 0, 0, 0, 0, 0, 5]);
        // query_q_counter_out: out_of_buffer at bit 0x180 = byte 0x30,
        // out_of_sequence at 0x38.
        let mut out = [0u8; QUERY_OUT_LEN];
        out[0x30..0x34].copy_from_slice(&[0, 0, 0x01, 0x02]);
        out[0x38..0x3c].copy_from_slice(&[0, 0, 0, 9]);
        let q = QueryQCounter {
            id: QCounterId(5),
            clear: false,
        }
        .parse(&out)
        .unwrap();
        assert_eq!(q.out_of_buffer, 0x102);
        assert_eq!(q.out_of_sequence, 9);
    }
}
