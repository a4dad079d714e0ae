//! Protection domain, transport domain and the reserved lkey (PRM
//! "ALLOC_PD", "ALLOC_TRANSPORT_DOMAIN", "QUERY_SPECIAL_CONTEXTS";
//! `alloc_pd_out`, `dealloc_pd_in`, `alloc_transport_domain_out`,
//! `dealloc_transport_domain_in`, `query_special_contexts_out` in
//! mlx5_ifc.h).

use crate::cmd::{Command, SimpleCmd, op};
use crate::error::BadOutput;
use crate::layout::Field;

/// A protection domain.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Pd(pub u32);
/// A transport domain.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Tdn(pub u32);
/// A memory key for local access.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Lkey(pub u32);

/// pd / transport_domain: `[23:0]` of dword 0x08 of the out (alloc) and in
/// (dealloc) structures.
pub const HANDLE_FIELD: Field = Field::new(0x08, 23, 0);
/// query_special_contexts_out: resd_lkey at 0x0c.
pub const RESD_LKEY: Field = Field::new(0x0c, 31, 0);

#[derive(Clone, Copy, Debug)]
pub struct AllocPd;

impl Command for AllocPd {
    type Output = Pd;
    const OPCODE: u16 = op::ALLOC_PD;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, out: &[u8]) -> Result<Pd, BadOutput> {
        Ok(Pd(HANDLE_FIELD.get(out)))
    }
}

pub type DeallocPd = SimpleCmd<{ op::DEALLOC_PD }>;

pub fn dealloc_pd(pd: Pd) -> DeallocPd {
    DeallocPd::new(0, Some((HANDLE_FIELD, pd.0)))
}

#[derive(Clone, Copy, Debug)]
pub struct AllocTransportDomain;

impl Command for AllocTransportDomain {
    type Output = Tdn;
    const OPCODE: u16 = op::ALLOC_TRANSPORT_DOMAIN;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, out: &[u8]) -> Result<Tdn, BadOutput> {
        Ok(Tdn(HANDLE_FIELD.get(out)))
    }
}

pub type DeallocTransportDomain = SimpleCmd<{ op::DEALLOC_TRANSPORT_DOMAIN }>;

pub fn dealloc_transport_domain(td: Tdn) -> DeallocTransportDomain {
    DeallocTransportDomain::new(0, Some((HANDLE_FIELD, td.0)))
}

#[derive(Clone, Copy, Debug)]
pub struct QuerySpecialContexts;

impl Command for QuerySpecialContexts {
    type Output = Lkey;
    const OPCODE: u16 = op::QUERY_SPECIAL_CONTEXTS;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        0x20
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, out: &[u8]) -> Result<Lkey, BadOutput> {
        Ok(Lkey(RESD_LKEY.get(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

    #[test]
    fn golden() {
        // dealloc_pd_in: opcode 0x801, pd [23:0] at 0x08.
        assert_eq!(
            encode(&dealloc_pd(Pd(0x10203))),
            [
                0x08, 0x01, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0x02, 0x03, 0, 0, 0, 0
            ]
        );
        // dealloc_transport_domain_in: opcode 0x817.
        assert_eq!(
            encode(&dealloc_transport_domain(Tdn(9)))[..12],
            [0x08, 0x17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]
        );
        // query_special_contexts_out: resd_lkey at 0x0c.
        let mut out = [0u8; 0x20];
        out[0x0c..0x10].copy_from_slice(&[0x00, 0x00, 0x01, 0x00]);
        out[0x08] = 0xff; // dump_fill_mkey, not the reserved lkey
        assert_eq!(QuerySpecialContexts.parse(&out), Ok(Lkey(0x100)));
        // alloc_pd_out: pd [23:0] at 0x08, top byte reserved.
        let mut out = [0u8; 0x10];
        out[0x08..0x0c].copy_from_slice(&[0xee, 0x00, 0x00, 0x2a]);
        assert_eq!(AllocPd.parse(&out), Ok(Pd(42)));
    }
}
