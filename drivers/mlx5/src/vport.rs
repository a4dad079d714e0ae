//! The NIC vport context (PRM "QUERY_NIC_VPORT_CONTEXT";
//! `query_nic_vport_context_in/out_bits`, `nic_vport_context_bits`,
//! `mac_address_layout_bits` in mlx5_ifc.h).

use core::fmt;

use crate::cmd::{Command, op};

/// query_nic_vport_context_out: nic_vport_context at 0x10.
pub const CTX: usize = 0x10;
pub const QUERY_OUT_LEN: usize = CTX + 0x100;

/// `nic_vport_context` fields.
pub mod ctx {
    use crate::layout::Field;
    pub const MIN_WQE_INLINE_MODE: Field = Field::new(0x00, 26, 24);
    pub const MTU: Field = Field::new(0x24, 15, 0);
    pub const PROMISC_UC: Field = Field::new(0xf0, 31, 31);
    pub const PROMISC_MC: Field = Field::new(0xf0, 30, 30);
    pub const PROMISC_ALL: Field = Field::new(0xf0, 29, 29);
    /// permanent_address (`mac_address_layout`): mac_addr_47_32 `[15:0]` of
    /// 0xf4, mac_addr_31_0 at 0xf8.
    pub const MAC_47_32: Field = Field::new(0xf4, 15, 0);
    pub const MAC_31_0: Field = Field::new(0xf8, 31, 0);
}

const _: () = assert!(CTX + ctx::MAC_31_0.end() <= QUERY_OUT_LEN);

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// What the driver reads from its vport.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct VportInfo {
    pub mac: Mac,
    pub mtu: u16,
    pub min_wqe_inline_mode: u8,
    pub promisc_uc: bool,
    pub promisc_mc: bool,
    pub promisc_all: bool,
}

/// QUERY_NIC_VPORT_CONTEXT of this function's own vport.
#[derive(Clone, Copy, Debug)]
pub struct QueryNicVportContext;

impl Command for QueryNicVportContext {
    type Output = VportInfo;
    const OPCODE: u16 = op::QUERY_NIC_VPORT_CONTEXT;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        QUERY_OUT_LEN
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, out: &[u8]) -> Result<VportInfo, &'static str> {
        let hi = ctx::MAC_47_32.within(CTX).get(out) as u16;
        let lo = ctx::MAC_31_0.within(CTX).get(out);
        let mut mac = [0u8; 6];
        mac[..2].copy_from_slice(&hi.to_be_bytes());
        mac[2..].copy_from_slice(&lo.to_be_bytes());
        Ok(VportInfo {
            mac: Mac(mac),
            mtu: ctx::MTU.within(CTX).get(out) as u16,
            min_wqe_inline_mode: ctx::MIN_WQE_INLINE_MODE.within(CTX).get(out) as u8,
            promisc_uc: ctx::PROMISC_UC.within(CTX).get(out) != 0,
            promisc_mc: ctx::PROMISC_MC.within(CTX).get(out) != 0,
            promisc_all: ctx::PROMISC_ALL.within(CTX).get(out) != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn parse_golden() {
        let mut out = [0u8; QUERY_OUT_LEN];
        // min_wqe_inline_mode [26:24] at 0x10.
        out[0x10] = 0x01;
        // mtu [15:0] at 0x34 (bytes 0x36-0x37) = 1500.
        out[0x36..0x38].copy_from_slice(&[0x05, 0xdc]);
        // promisc_all [29] at 0x100.
        out[0x100] = 0x20;
        // permanent_address at 0x104: MAC at 0x106..0x10c.
        out[0x106..0x10c].copy_from_slice(&[0x0c, 0x42, 0xa1, 0x01, 0x02, 0x03]);
        let v = QueryNicVportContext.parse(&out).unwrap();
        assert_eq!(v.mac, Mac([0x0c, 0x42, 0xa1, 0x01, 0x02, 0x03]));
        assert_eq!(format!("{}", v.mac), "0c:42:a1:01:02:03");
        assert_eq!(v.mtu, 1500);
        assert_eq!(v.min_wqe_inline_mode, 1);
        assert!(v.promisc_all && !v.promisc_uc && !v.promisc_mc);
    }
}
