//! Send queues (PRM "Send Queue"; `mlx5_ifc_sqc_bits`, `create_sq_in/out`,
//! `modify_sq_in`, `destroy_sq_in`, `query_sq_in/out` in mlx5_ifc.h): the
//! commands that create an SQ and move it between states. The transmit
//! ring the driver writes is [`ring`] ([`Sq`]).

use alloc::vec::Vec;

use crate::cmd::{Command, SimpleCmd, op};
use crate::cq::Cqn;
use crate::error::BadOutput;
use crate::layout::Field;
use crate::pd::Pd;
use crate::tis::Tisn;
use crate::uar::Uar;
use crate::wq::{QueueState, WqParams, wqc};
use crate::wqe::InlineMode;

pub mod ring;

pub use ring::{
    BadCompletion, Burst, EMPW_MAX_INLINE, MAX_FRAME, MAX_LSO_FRAME, PostError, Reserved, Sq,
    SqConfig, SqStats, TxOpts, UAR_SEND_DOORBELL,
};

/// An SQ number.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Sqn(pub u32);

/// `mlx5_ifc_sqc_bits` (0x30 bytes, then `wq`).
pub mod sqc {
    use crate::layout::Field;
    pub const RLKY: Field = Field::new(0x00, 31, 31);
    pub const FLUSH_IN_ERROR_EN: Field = Field::new(0x00, 28, 28);
    pub const ALLOW_MULTI_PKT_SEND_WQE: Field = Field::new(0x00, 27, 27);
    pub const MIN_WQE_INLINE_MODE: Field = Field::new(0x00, 26, 24);
    pub const STATE: Field = Field::new(0x00, 23, 20);
    pub const CQN: Field = Field::new(0x08, 23, 0);
    pub const TIS_LST_SZ: Field = Field::new(0x20, 31, 16);
    pub const TIS_NUM_0: Field = Field::new(0x2c, 23, 0);
    pub const WQ: usize = 0x30;
}

/// create_sq_in / modify_sq_in / query_sq_out: sqc at 0x20.
pub const CTX: usize = 0x20;
/// sqn `[23:0]` of dword 0x08: create_sq_out, destroy/query_sq_in,
/// modify_sq_in (with the current state `[31:28]`).
pub const SQN: Field = Field::new(0x08, 23, 0);
pub const MODIFY_CUR_STATE: Field = Field::new(0x08, 31, 28);

/// CREATE_SQ.
#[derive(Clone, Debug)]
pub struct CreateSq {
    pub cqn: Cqn,
    pub tisn: Tisn,
    pub pd: Pd,
    pub uar: Uar,
    pub dbr_addr: u64,
    pub log_size: u8,
    pub inline: InlineMode,
    /// `allow_multi_pkt_send_wqe`: the SQ may post legacy MPW sessions
    /// (only where the part has `multi_pkt_send_wqe`).
    pub allow_mpw: bool,
    pub pages: Vec<u64>,
}

impl CreateSq {
    fn wq(&self) -> WqParams<'_> {
        WqParams {
            pd: self.pd.0,
            uar: self.uar.0,
            dbr_addr: self.dbr_addr,
            log_stride: 6,
            log_size: self.log_size,
            pages: &self.pages,
            striding: None,
        }
    }
}

impl Command for CreateSq {
    type Output = Sqn;
    const OPCODE: u16 = op::CREATE_SQ;
    fn in_len(&self) -> usize {
        CTX + sqc::WQ + self.wq().len()
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        let f = |x: Field| x.within(CTX);
        // Flushed WQEs complete with errors, so every buffer comes back.
        f(sqc::FLUSH_IN_ERROR_EN).set(inbox, 1);
        f(sqc::ALLOW_MULTI_PKT_SEND_WQE).set(inbox, self.allow_mpw as u32);
        f(sqc::MIN_WQE_INLINE_MODE).set(inbox, self.inline.sqc_bits());
        f(sqc::STATE).set(inbox, QueueState::Rst.bits());
        f(sqc::CQN).set(inbox, self.cqn.0);
        f(sqc::TIS_LST_SZ).set(inbox, 1);
        f(sqc::TIS_NUM_0).set(inbox, self.tisn.0);
        self.wq().write(inbox, CTX + sqc::WQ);
    }
    fn parse(&self, out: &[u8]) -> Result<Sqn, BadOutput> {
        Ok(Sqn(SQN.get(out)))
    }
}

/// MODIFY_SQ: a state transition (RST -> RDY, ERR -> RST, ...).
#[derive(Clone, Copy, Debug)]
pub struct ModifySq {
    pub sqn: Sqn,
    pub from: QueueState,
    pub to: QueueState,
}

impl Command for ModifySq {
    type Output = ();
    const OPCODE: u16 = op::MODIFY_SQ;
    fn in_len(&self) -> usize {
        CTX + sqc::WQ + wqc::PAS
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        MODIFY_CUR_STATE.set(inbox, self.from.bits());
        SQN.set(inbox, self.sqn.0);
        sqc::STATE.within(CTX).set(inbox, self.to.bits());
    }
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
    }
}

pub type DestroySq = SimpleCmd<{ op::DESTROY_SQ }>;

pub fn destroy_sq(sqn: Sqn) -> DestroySq {
    DestroySq::new(0, Some((SQN, sqn.0)))
}

/// What QUERY_SQ reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SqInfo {
    pub state: Option<QueueState>,
    pub cqn: Cqn,
    pub hw_counter: u32,
    pub sw_counter: u32,
}

/// QUERY_SQ.
#[derive(Clone, Copy, Debug)]
pub struct QuerySq(pub Sqn);

impl Command for QuerySq {
    type Output = SqInfo;
    const OPCODE: u16 = op::QUERY_SQ;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        CTX + sqc::WQ + wqc::PAS
    }
    fn build(&self, inbox: &mut [u8]) {
        SQN.set(inbox, self.0.0);
    }
    fn parse(&self, out: &[u8]) -> Result<SqInfo, BadOutput> {
        let wq = CTX + sqc::WQ;
        Ok(SqInfo {
            state: QueueState::from_bits(sqc::STATE.within(CTX).get(out)),
            cqn: Cqn(sqc::CQN.within(CTX).get(out)),
            hw_counter: wqc::HW_COUNTER.within(wq).get(out),
            sw_counter: wqc::SW_COUNTER.within(wq).get(out),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

    #[test]
    fn create_sq_golden_bytes() {
        let cmd = CreateSq {
            cqn: Cqn(0x21),
            tisn: Tisn(0x31),
            pd: Pd(0x41),
            uar: Uar(6),
            dbr_addr: 0x2_0000_1000,
            log_size: 8,
            inline: InlineMode::L2,
            allow_mpw: false,
            pages: alloc::vec![0x2_0000_0000],
        };
        let b = encode(&cmd);
        // create_sq_in: ctx at 0x20, wq at ctx + 0x30 = 0x50, pas at wq + 0xc0.
        assert_eq!(b.len(), 0x110 + 8);
        assert_eq!(&b[0..4], &[0x09, 0x04, 0, 0]);
        // sqc dword 0: flush_in_error_en [28] = 1, min_wqe_inline_mode
        // [26:24] = 1 (L2), state [23:20] = 0 (RST).
        assert_eq!(&b[0x20..0x24], &[0x11, 0x00, 0x00, 0x00]);
        // sqc 0x08 cqn -> 0x28.
        assert_eq!(&b[0x28..0x2c], &[0, 0, 0, 0x21]);
        // sqc 0x20 tis_lst_sz [31:16] = 1 -> 0x40; tis_num_0 sqc 0x2c -> 0x4c.
        assert_eq!(&b[0x40..0x44], &[0x00, 0x01, 0x00, 0x00]);
        assert_eq!(&b[0x4c..0x50], &[0, 0, 0, 0x31]);
        // wq 0x00 wq_type [31:28] = 1 cyclic -> 0x50.
        assert_eq!(&b[0x50..0x54], &[0x10, 0, 0, 0]);
        // wq 0x08 pd -> 0x58, 0x0c uar_page -> 0x5c, 0x10 dbr_addr -> 0x60.
        assert_eq!(&b[0x58..0x60], &[0, 0, 0, 0x41, 0, 0, 0, 6]);
        assert_eq!(&b[0x60..0x68], &[0, 0, 0, 2, 0, 0, 0x10, 0]);
        // wq 0x20 -> 0x70: log_wq_stride [19:16] = 6, log_wq_pg_sz [12:8] 0,
        // log_wq_sz [4:0] = 8.
        assert_eq!(&b[0x70..0x74], &[0x00, 0x06, 0x00, 0x08]);
        // pas at 0x50 + 0xc0 = 0x110.
        assert_eq!(&b[0x110..0x118], &[0, 0, 0, 2, 0, 0, 0, 0]);
    }

    #[test]
    fn modify_destroy_query_golden() {
        // modify_sq_in: sq_state [31:28] and sqn [23:0] at 0x08; new state
        // in sqc state [23:20] at 0x20.
        let b = encode(&ModifySq {
            sqn: Sqn(0x123),
            from: QueueState::Err,
            to: QueueState::Rst,
        });
        assert_eq!(&b[0..4], &[0x09, 0x05, 0, 0]);
        assert_eq!(&b[0x08..0x0c], &[0x30, 0x00, 0x01, 0x23]);
        assert_eq!(&b[0x20..0x24], &[0, 0, 0, 0]);
        let b = encode(&ModifySq {
            sqn: Sqn(1),
            from: QueueState::Rst,
            to: QueueState::Rdy,
        });
        assert_eq!(&b[0x08..0x0c], &[0x00, 0, 0, 1]);
        assert_eq!(&b[0x20..0x24], &[0x00, 0x10, 0, 0]);
        assert_eq!(
            encode(&destroy_sq(Sqn(7)))[..12],
            [0x09, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]
        );
        // query_sq_out: sqc at 0x20 (state 0x20 [23:20], cqn 0x28), wq at
        // 0x50 (hw_counter 0x68, sw_counter 0x6c).
        let mut out = alloc::vec![0u8; 0x110];
        out[0x20..0x24].copy_from_slice(&[0x00, 0x30, 0, 0]);
        out[0x28..0x2c].copy_from_slice(&[0, 0, 0, 9]);
        out[0x68..0x6c].copy_from_slice(&[0, 0, 0, 5]);
        out[0x6c..0x70].copy_from_slice(&[0, 0, 0, 6]);
        let i = QuerySq(Sqn(1)).parse(&out).unwrap();
        assert_eq!(i.state, Some(QueueState::Err));
        assert_eq!(i.cqn, Cqn(9));
        assert_eq!((i.hw_counter, i.sw_counter), (5, 6));
        assert_eq!(encode(&QuerySq(Sqn(3)))[0..2], [0x09, 0x07]);
    }
}
