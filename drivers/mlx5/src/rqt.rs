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
}
