//! The NIC vport context (PRM "QUERY_NIC_VPORT_CONTEXT";
//! `query_nic_vport_context_in/out_bits`, `nic_vport_context_bits`,
//! `mac_address_layout_bits` in mlx5_ifc.h).

use core::fmt;

use crate::cmd::{Command, op};
use crate::error::BadOutput;

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
    fn parse(&self, out: &[u8]) -> Result<VportInfo, BadOutput> {
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

/// modify_nic_vport_context_in: field_select at 0x0c
/// (`modify_nic_vport_field_select`), nic_vport_context at 0x100; the
/// context's address list (`current_uc_mac_address`, one
/// `mac_address_layout` of 8 bytes each, MAC in the last 6) at 0x100 of
/// the context.
pub mod modify {
    use crate::layout::Field;
    pub const SELECT_PROMISC: Field = Field::new(0x0c, 4, 4);
    pub const SELECT_ADDRESSES_LIST: Field = Field::new(0x0c, 2, 2);
    pub const CTX: usize = 0x100;
    /// allowed_list_type `[26:24]`, allowed_list_size `[11:0]` of 0xf0.
    pub const LIST_TYPE: Field = Field::new(0xf0, 26, 24);
    pub const LIST_SIZE: Field = Field::new(0xf0, 11, 0);
    pub const LIST: usize = 0x100;
    /// `MLX5_NVPRT_LIST_TYPE_UC` / `_MC`.
    pub const LIST_UC: u32 = 0;
    pub const LIST_MC: u32 = 1;
}

/// What MODIFY_NIC_VPORT_CONTEXT changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VportChange<'a> {
    /// promisc_uc / promisc_mc / promisc_all.
    Promisc { uc: bool, mc: bool, all: bool },
    /// The whole unicast or multicast address list.
    Addresses { multicast: bool, macs: &'a [Mac] },
}

/// MODIFY_NIC_VPORT_CONTEXT of this function's own vport.
#[derive(Clone, Debug)]
pub struct ModifyNicVportContext<'a>(pub VportChange<'a>);

impl Command for ModifyNicVportContext<'_> {
    type Output = ();
    const OPCODE: u16 = op::MODIFY_NIC_VPORT_CONTEXT;
    fn in_len(&self) -> usize {
        let n = match self.0 {
            VportChange::Addresses { macs, .. } => macs.len(),
            VportChange::Promisc { .. } => 0,
        };
        modify::CTX + modify::LIST + 8 * n
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        let c = modify::CTX;
        match self.0 {
            VportChange::Promisc { uc, mc, all } => {
                modify::SELECT_PROMISC.set(inbox, 1);
                ctx::PROMISC_UC.within(c).set(inbox, uc as u32);
                ctx::PROMISC_MC.within(c).set(inbox, mc as u32);
                ctx::PROMISC_ALL.within(c).set(inbox, all as u32);
            }
            VportChange::Addresses { multicast, macs } => {
                modify::SELECT_ADDRESSES_LIST.set(inbox, 1);
                let ty = if multicast {
                    modify::LIST_MC
                } else {
                    modify::LIST_UC
                };
                modify::LIST_TYPE.within(c).set(inbox, ty);
                modify::LIST_SIZE.within(c).set(inbox, macs.len() as u32);
                for (i, m) in macs.iter().enumerate() {
                    let at = c + modify::LIST + 8 * i + 2;
                    inbox[at..at + 6].copy_from_slice(&m.0);
                }
            }
        }
    }
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
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

    #[test]
    fn modify_golden() {
        use crate::cmd::encode;
        let b = encode(&ModifyNicVportContext(VportChange::Promisc {
            uc: false,
            mc: true,
            all: false,
        }));
        assert_eq!(b.len(), 0x200);
        assert_eq!(&b[0..4], &[0x07, 0x55, 0, 0]);
        // field_select at 0x0c: promisc [4].
        assert_eq!(&b[0x0c..0x10], &[0, 0, 0, 0x10]);
        // context at 0x100, its 0xf0 dword: promisc_mc [30].
        assert_eq!(&b[0x1f0..0x1f4], &[0x40, 0, 0, 0]);
        let macs = [Mac([0x33, 0x33, 0, 0, 0, 1]), Mac([1, 0, 0x5e, 0, 0, 0xfb])];
        let b = encode(&ModifyNicVportContext(VportChange::Addresses {
            multicast: true,
            macs: &macs,
        }));
        assert_eq!(b.len(), 0x210);
        // addresses_list [2]; list type MC (1) [26:24], size 2 [11:0].
        assert_eq!(&b[0x0c..0x10], &[0, 0, 0, 0x04]);
        assert_eq!(&b[0x1f0..0x1f4], &[0x01, 0, 0, 0x02]);
        // current_uc_mac_address at context 0x100 = 0x200, 8 bytes each,
        // MAC in bytes 2..8.
        assert_eq!(
            &b[0x200..0x210],
            &[0, 0, 0x33, 0x33, 0, 0, 0, 1, 0, 0, 1, 0, 0x5e, 0, 0, 0xfb]
        );
    }
}
