//! Receive queue tables (PRM "RQ Table"; `mlx5_ifc_rqtc_bits`,
//! `create_rqt_in/out`, `destroy_rqt_in` in mlx5_ifc.h). An indirect TIR
//! hashes a frame and delivers it to the RQ the table lists at the hash's
//! low bits: the spreading of receive-side scaling.

use alloc::vec::Vec;

use crate::cmd::{Command, SimpleCmd, op};
use crate::error::BadOutput;
use crate::layout::Field;
use crate::rq::Rqn;

/// An RQT number.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Rqtn(pub u32);

/// `rqtc_bits`: rqt_max_size `[15:0]` of 0x14, rqt_actual_size `[15:0]` of
/// 0x18, the rq_num list (`rq_num_bits`, rq_num `[23:0]`) from 0xf0.
pub mod rqtc {
    use crate::layout::Field;
    pub const MAX_SIZE: Field = Field::new(0x14, 15, 0);
    pub const ACTUAL_SIZE: Field = Field::new(0x18, 15, 0);
    pub const LIST: usize = 0xf0;
    pub const RQ_NUM: Field = Field::new(0x00, 23, 0);
}

/// create_rqt_in: rqt_context at 0x20.
pub const CTX: usize = 0x20;
/// rqtn `[23:0]` of dword 0x08 in create_rqt_out and destroy_rqt_in.
pub const RQTN: Field = Field::new(0x08, 23, 0);

/// CREATE_RQT listing `rqns` (its size is the table's size).
#[derive(Clone, Debug)]
pub struct CreateRqt {
    pub rqns: Vec<Rqn>,
}

impl Command for CreateRqt {
    type Output = Rqtn;
    const OPCODE: u16 = op::CREATE_RQT;
    fn in_len(&self) -> usize {
        CTX + rqtc::LIST + 4 * self.rqns.len()
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        let n = self.rqns.len() as u32;
        rqtc::MAX_SIZE.within(CTX).set(inbox, n);
        rqtc::ACTUAL_SIZE.within(CTX).set(inbox, n);
        for (i, r) in self.rqns.iter().enumerate() {
            rqtc::RQ_NUM
                .within(CTX + rqtc::LIST + 4 * i)
                .set(inbox, r.0);
        }
    }
    fn parse(&self, out: &[u8]) -> Result<Rqtn, BadOutput> {
        Ok(Rqtn(RQTN.get(out)))
    }
}

/// modify_rqt_in: bitmask (`rqt_bitmask_bits`) at 0x10, rqn_list `[0]` of
/// its second dword (0x14).
pub const MODIFY_BITMASK_RQN_LIST: Field = Field::new(0x14, 0, 0);

/// MODIFY_RQT: replace the table's RQ list (a recreated RQ takes the place
/// of the one it replaces, the TIRs that hash over the table unchanged).
#[derive(Clone, Debug)]
pub struct ModifyRqt {
    pub rqt: Rqtn,
    pub rqns: Vec<Rqn>,
}

impl Command for ModifyRqt {
    type Output = ();
    const OPCODE: u16 = op::MODIFY_RQT;
    fn in_len(&self) -> usize {
        CTX + rqtc::LIST + 4 * self.rqns.len()
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        RQTN.set(inbox, self.rqt.0);
        MODIFY_BITMASK_RQN_LIST.set(inbox, 1);
        let n = self.rqns.len() as u32;
        rqtc::MAX_SIZE.within(CTX).set(inbox, n);
        rqtc::ACTUAL_SIZE.within(CTX).set(inbox, n);
        for (i, r) in self.rqns.iter().enumerate() {
            rqtc::RQ_NUM
                .within(CTX + rqtc::LIST + 4 * i)
                .set(inbox, r.0);
        }
    }
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
    }
}

/// QUERY_RQT of a table of at most `size` entries: its RQ list
/// (query_rqt_in: rqtn at 0x08; query_rqt_out: rqt_context at 0x20).
#[derive(Clone, Copy, Debug)]
pub struct QueryRqt {
    pub rqt: Rqtn,
    pub size: usize,
}

impl Command for QueryRqt {
    type Output = Vec<Rqn>;
    const OPCODE: u16 = op::QUERY_RQT;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        CTX + rqtc::LIST + 4 * self.size
    }
    fn build(&self, inbox: &mut [u8]) {
        RQTN.set(inbox, self.rqt.0);
    }
    fn parse(&self, out: &[u8]) -> Result<Vec<Rqn>, BadOutput> {
        let n = rqtc::ACTUAL_SIZE.within(CTX).get(out) as usize;
        if n > self.size {
            return Err(BadOutput::TooManyRqs {
                listed: n,
                room: self.size,
            });
        }
        Ok((0..n)
            .map(|i| Rqn(rqtc::RQ_NUM.within(CTX + rqtc::LIST + 4 * i).get(out)))
            .collect())
    }
}

pub type DestroyRqt = SimpleCmd<{ op::DESTROY_RQT }>;

pub fn destroy_rqt(rqt: Rqtn) -> DestroyRqt {
    DestroyRqt::new(0, Some((RQTN, rqt.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

    #[test]
    fn golden() {
        let b = encode(&CreateRqt {
            rqns: alloc::vec![Rqn(0x11), Rqn(0x2233)],
        });
        assert_eq!(b.len(), 0x118);
        assert_eq!(&b[0..4], &[0x09, 0x16, 0, 0]);
        // rqtc at 0x20: max size at 0x34, actual size at 0x38, list at
        // 0x110.
        assert_eq!(&b[0x34..0x3c], &[0, 0, 0, 2, 0, 0, 0, 2]);
        assert_eq!(&b[0x110..0x118], &[0, 0, 0, 0x11, 0, 0, 0x22, 0x33]);
        let out = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0];
        assert_eq!(
            CreateRqt {
                rqns: alloc::vec![]
            }
            .parse(&out),
            Ok(Rqtn(7))
        );
        assert_eq!(
            encode(&destroy_rqt(Rqtn(7)))[..12],
            [0x09, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]
        );
    }

    #[test]
    fn query_golden() {
        let q = QueryRqt {
            rqt: Rqtn(0x0a0b0c),
            size: 2,
        };
        let b = encode(&q);
        assert_eq!(b.len(), 0x10);
        // opcode 0x919 at 0x00, rqtn [23:0] of 0x08.
        assert_eq!(
            &b[..12],
            &[0x09, 0x19, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b, 0x0c]
        );
        assert_eq!(q.out_len(), 0x118);
        // rqt_context at 0x20: rqt_actual_size at 0x38 (0x20 + 0x18), the
        // list at 0x110 (0x20 + 0xf0), rq_num the low 24 bits.
        let mut out = alloc::vec![0u8; 0x118];
        out[0x3b] = 2;
        out[0x110..0x118].copy_from_slice(&[0xff, 0, 0, 0x11, 0, 0x01, 0x22, 0x33]);
        assert_eq!(q.parse(&out), Ok(alloc::vec![Rqn(0x11), Rqn(0x012233)]));
        out[0x3b] = 3;
        assert_eq!(
            q.parse(&out),
            Err(BadOutput::TooManyRqs { listed: 3, room: 2 })
        );
    }

    #[test]
    fn modify_golden() {
        let b = encode(&ModifyRqt {
            rqt: Rqtn(0x05),
            rqns: alloc::vec![Rqn(0x44)],
        });
        assert_eq!(b.len(), 0x114);
        // opcode 0x917; rqtn [23:0] at 0x08; bitmask rqn_list bit 0 of 0x14.
        assert_eq!(&b[0..4], &[0x09, 0x17, 0, 0]);
        assert_eq!(&b[0x08..0x0c], &[0, 0, 0, 0x05]);
        assert_eq!(&b[0x10..0x18], &[0, 0, 0, 0, 0, 0, 0, 1]);
        // rqtc at 0x20: max / actual size 1, list entry at 0x110.
        assert_eq!(&b[0x34..0x3c], &[0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(&b[0x110..0x114], &[0, 0, 0, 0x44]);
    }
}
