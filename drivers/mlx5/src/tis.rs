//! Transport interface send (PRM "TIS"; `mlx5_ifc_tisc_bits`,
//! `create_tis_in/out`, `destroy_tis_in` in mlx5_ifc.h). Every SQ sends
//! through a TIS, which ties it to the transport domain (and, later, a
//! priority or LAG port).

use crate::cmd::{Command, SimpleCmd, op};
use crate::error::BadOutput;
use crate::layout::Field;
use crate::pd::{Pd, Tdn};

/// A TIS number (the transport interface an SQ sends through).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Tisn(pub u32);

/// `mlx5_ifc_tisc_bits` (0xa0 bytes).
pub mod tisc {
    use crate::layout::Field;
    pub const PRIO: Field = Field::new(0x00, 19, 16);
    pub const TRANSPORT_DOMAIN: Field = Field::new(0x24, 23, 0);
    pub const PD: Field = Field::new(0x2c, 23, 0);
    pub const LEN: usize = 0xa0;
}

/// create_tis_in: tisc at 0x20.
pub const CTX: usize = 0x20;
/// tisn `[23:0]` of dword 0x08 in create_tis_out and destroy_tis_in.
pub const TISN: Field = Field::new(0x08, 23, 0);

/// CREATE_TIS.
#[derive(Clone, Copy, Debug)]
pub struct CreateTis {
    pub td: Tdn,
    pub pd: Pd,
    pub prio: u8,
}

impl Command for CreateTis {
    type Output = Tisn;
    const OPCODE: u16 = op::CREATE_TIS;
    fn in_len(&self) -> usize {
        CTX + tisc::LEN
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        tisc::PRIO.within(CTX).set(inbox, self.prio as u32);
        tisc::TRANSPORT_DOMAIN.within(CTX).set(inbox, self.td.0);
        tisc::PD.within(CTX).set(inbox, self.pd.0);
    }
    fn parse(&self, out: &[u8]) -> Result<Tisn, BadOutput> {
        Ok(Tisn(TISN.get(out)))
    }
}

pub type DestroyTis = SimpleCmd<{ op::DESTROY_TIS }>;

pub fn destroy_tis(tisn: Tisn) -> DestroyTis {
    DestroyTis::new(0, Some((TISN, tisn.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

    #[test]
    fn golden() {
        let b = encode(&CreateTis {
            td: Tdn(0x0102),
            pd: Pd(0x0304),
            prio: 0,
        });
        assert_eq!(b.len(), 0xc0);
        assert_eq!(&b[0..4], &[0x09, 0x12, 0, 0]);
        // tisc 0x24 transport_domain -> 0x44, tisc 0x2c pd -> 0x4c.
        assert_eq!(&b[0x44..0x48], &[0, 0, 0x01, 0x02]);
        assert_eq!(&b[0x4c..0x50], &[0, 0, 0x03, 0x04]);
        assert!(b[0x20..0x44].iter().all(|&x| x == 0));
        let out = [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0x0d, 0, 0, 0, 0];
        assert_eq!(
            CreateTis {
                td: Tdn(0),
                pd: Pd(0),
                prio: 0
            }
            .parse(&out),
            Ok(Tisn(0x0d))
        );
        // destroy_tis_in: opcode 0x914, tisn at 0x08.
        assert_eq!(
            encode(&destroy_tis(Tisn(0x0d)))[..12],
            [0x09, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d]
        );
    }
}
