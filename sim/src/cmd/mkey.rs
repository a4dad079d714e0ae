//! Memory keys: CREATE_MKEY / DESTROY_MKEY / QUERY_MKEY (`create_mkey_in`,
//! `mkc`, `create_mkey_out`, `destroy_mkey_in`, `query_mkey_in/out`,
//! mlx5_ifc.h), and the check every data segment's lkey goes through.
//!
//! What is modelled: physical-address mkeys (`access_mode` PA, 0) with
//! local read / local write rights, bound to a protection domain and either
//! to an address range (`start_addr`, `len`) or to all of memory
//! (`length64`). An mkey is `index << 8 | mkey_7_0`; the index comes from
//! the device, the low byte (the key variant) from the driver. The
//! reserved lkey (QUERY_SPECIAL_CONTEXTS) also addresses memory physically,
//! with no domain. Translated modes (MTT, KLM, KSM), UMR (`umr_en`, `free`),
//! signature (`bsf_en`), user memory and relaxed ordering are not offered:
//! the capabilities that would invite them read 0, and a context asking for
//! them is refused with MKEY_FEATURE.
#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::reserved;
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// `create_mkey_in.memory_key_mkey_entry` (bit 0x80), also
/// `query_mkey_out.memory_key_mkey_entry`.
pub const MKC: usize = 0x10;

/// `mkc` fields (bit offsets inside the context).
pub mod mkc {
    use crate::bits::{F, f};
    pub const FREE: F = f(0x1, 1);
    pub const ACCESS_MODE_4_2: F = f(0x3, 3);
    pub const RELAXED_ORDERING_WRITE: F = f(0xd, 1);
    pub const SMALL_FENCE: F = f(0xf, 1);
    pub const UMR_EN: F = f(0x10, 1);
    pub const A: F = f(0x11, 1);
    pub const RW: F = f(0x12, 1);
    pub const RR: F = f(0x13, 1);
    pub const LW: F = f(0x14, 1);
    pub const LR: F = f(0x15, 1);
    pub const ACCESS_MODE_1_0: F = f(0x16, 2);
    pub const MA_TRANSLATION_MODE: F = f(0x1a, 2);
    pub const QPN: F = f(0x20, 0x18);
    pub const MKEY_7_0: F = f(0x38, 8);
    pub const LENGTH64: F = f(0x60, 1);
    /// bsf_en, sync_umr, expected_sigerr_count, en_rinval.
    pub const BSF_EN: F = f(0x61, 1);
    pub const SYNC_UMR: F = f(0x62, 1);
    pub const EXPECTED_SIGERR: F = f(0x65, 1);
    pub const EN_RINVAL: F = f(0x67, 1);
    pub const PD: F = f(0x68, 0x18);
    pub const START_ADDR: F = f(0x80, 0x40);
    pub const LEN: F = f(0xc0, 0x40);
    pub const BSF_OCTWORD_SIZE: F = f(0x100, 0x20);
    pub const CROSSING_TARGET_VHCA_ID: F = f(0x180, 0x10);
    pub const TRANSLATIONS_OCTWORD_SIZE: F = f(0x1a0, 0x20);
    pub const RELAXED_ORDERING_READ: F = f(0x1d9, 1);
    pub const LOG_PAGE_SIZE: F = f(0x1da, 6);
    pub const RESERVED: [F; 9] = [
        f(0x0, 1),
        f(0x2, 1),
        f(0x6, 7),
        f(0xe, 1),
        f(0x18, 2),
        f(0x1c, 4),
        f(0x40, 0x20),
        f(0x63, 2),
        f(0x66, 1),
    ];
    pub const RESERVED_TAIL: [F; 3] = [f(0x120, 0x60), f(0x190, 0x10), f(0x1c0, 0x19)];
}

/// `MLX5_MKC_ACCESS_MODE_PA`.
pub const ACCESS_MODE_PA: u64 = 0;
/// `mkc.qpn` of an mkey bound to no QP (the only kind an Ethernet function
/// has).
pub const NO_QPN: u64 = 0xff_ffff;
/// Indexes handed out start here: index 1 is the reserved lkey's (0x100).
const FIRST_INDEX: u32 = 0x10;

/// One memory key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mkey {
    pub index: u32,
    /// `mkey_7_0`: the key variant the driver chose.
    pub variant: u8,
    pub pd: u32,
    pub local_read: bool,
    pub local_write: bool,
    pub remote: u8,
    /// `length64`: the key covers all of memory.
    pub all: bool,
    pub start: u64,
    pub len: u64,
}

impl Mkey {
    /// The key value (`index << 8 | mkey_7_0`).
    pub fn key(&self) -> u32 {
        self.index << 8 | self.variant as u32
    }
}

/// Why a data segment's memory access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// No such key (index unknown or variant different).
    Unknown,
    /// The key belongs to another protection domain.
    Domain,
    /// The key lacks the right (local write for a receive buffer, local
    /// read for a send buffer).
    Access,
    /// The access lies outside the key's range.
    Range,
}

/// The function's memory keys.
#[derive(Debug, Default)]
pub struct Mkeys {
    map: BTreeMap<u32, Mkey>,
}

impl Mkeys {
    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn uses_pd(&self, pd: u32) -> bool {
        self.map.values().any(|k| k.pd == pd)
    }

    pub fn get(&self, key: u32) -> Option<&Mkey> {
        self.map.get(&(key >> 8)).filter(|k| k.variant == key as u8)
    }

    /// The bus address of `len` bytes at `addr` through `lkey`, for a
    /// queue of protection domain `pd`; `write`: the device writes them
    /// (receive), else reads them (send). The reserved lkey maps every
    /// address to itself.
    pub fn translate(
        &self,
        lkey: u32,
        pd: u32,
        addr: u64,
        len: u64,
        write: bool,
    ) -> Result<u64, KeyError> {
        if lkey == super::pd::RESERVED_LKEY {
            return Ok(addr);
        }
        let k = self.get(lkey).ok_or(KeyError::Unknown)?;
        if k.pd != pd {
            return Err(KeyError::Domain);
        }
        if (write && !k.local_write) || (!write && !k.local_read) {
            return Err(KeyError::Access);
        }
        if !k.all {
            let end = addr.checked_add(len).ok_or(KeyError::Range)?;
            if addr < k.start || end > k.start.saturating_add(k.len) {
                return Err(KeyError::Range);
            }
        }
        Ok(addr)
    }
}

fn ctx(fld: F) -> F {
    fld.at(MKC)
}

/// CREATE_MKEY (`create_mkey_in`: pg_access / mkey_umem_valid /
/// data_direct at bits 0x60..0x63, mkc at byte 0x10,
/// translations_octword_actual_size at bit 0x300; out: mkey_index at bit
/// 0x48).
pub fn create(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x20), f(0x63, 0x1d), f(0x280, 0x80)])?;
    super::reserved_in(inp, MKC, &mkc::RESERVED)?;
    super::reserved_in(inp, MKC, &mkc::RESERVED_TAIL)?;
    let g = |fld: F| get(inp, ctx(fld));
    let access_mode = g(mkc::ACCESS_MODE_4_2) << 2 | g(mkc::ACCESS_MODE_1_0);
    let unoffered = [
        // pg_access, mkey_umem_valid, data_direct.
        f(0x60, 3),
        ctx(mkc::FREE),
        ctx(mkc::UMR_EN),
        ctx(mkc::RELAXED_ORDERING_WRITE),
        ctx(mkc::RELAXED_ORDERING_READ),
        ctx(mkc::SMALL_FENCE),
        ctx(mkc::MA_TRANSLATION_MODE),
        ctx(mkc::BSF_EN),
        ctx(mkc::SYNC_UMR),
        ctx(mkc::EXPECTED_SIGERR),
        ctx(mkc::EN_RINVAL),
        ctx(mkc::BSF_OCTWORD_SIZE),
        ctx(mkc::CROSSING_TARGET_VHCA_ID),
        ctx(mkc::TRANSLATIONS_OCTWORD_SIZE),
        ctx(mkc::LOG_PAGE_SIZE),
        // translations_octword_actual_size.
        f(0x300, 0x20),
    ];
    if access_mode != ACCESS_MODE_PA || unoffered.iter().any(|u| get(inp, *u) != 0) {
        return Err(syn::MKEY_FEATURE);
    }
    if g(mkc::QPN) != NO_QPN {
        return Err(syn::MKEY_FEATURE);
    }
    let all = g(mkc::LENGTH64) != 0;
    let (start, len) = (g(mkc::START_ADDR), g(mkc::LEN));
    if !all && (len == 0 || start.checked_add(len).is_none()) {
        return Err(syn::MKEY_RANGE);
    }
    let pd = g(mkc::PD) as u32;
    if !dev.domains.has_pd(pd) {
        return Err(syn::UNKNOWN_PD);
    }
    let limit = 1u64 << dev.caps.general(super::caps::hca_cap::LOG_MAX_MKEY).min(24);
    if dev.mkeys.map.len() as u64 >= limit {
        return Err(syn::NO_MKEY);
    }
    let Some(index) = (FIRST_INDEX..=0xff_ffff).find(|i| !dev.mkeys.map.contains_key(i)) else {
        return Err(syn::NO_MKEY);
    };
    dev.mkeys.map.insert(
        index,
        Mkey {
            index,
            variant: g(mkc::MKEY_7_0) as u8,
            pd,
            local_read: g(mkc::LR) != 0,
            local_write: g(mkc::LW) != 0,
            remote: (g(mkc::A) << 2 | g(mkc::RW) << 1 | g(mkc::RR)) as u8,
            all,
            start,
            len,
        },
    );
    set(out, f(0x48, 0x18), index as u64);
    Ok(())
}

/// DESTROY_MKEY (`destroy_mkey_in`: mkey_index at bit 0x48).
pub fn destroy(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x60, 0x20)])?;
    let index = get(inp, f(0x48, 0x18)) as u32;
    dev.mkeys
        .map
        .remove(&index)
        .map(drop)
        .ok_or(syn::UNKNOWN_MKEY)
}

/// QUERY_MKEY (`query_mkey_in`: mkey_index at bit 0x48, pg_access 0x60;
/// `query_mkey_out`: mkc at byte 0x10).
pub fn query(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 8), f(0x61, 0x1f)])?;
    if get(inp, f(0x60, 1)) != 0 {
        return Err(syn::MKEY_FEATURE);
    }
    let index = get(inp, f(0x48, 0x18)) as u32;
    let k = *dev.mkeys.map.get(&index).ok_or(syn::UNKNOWN_MKEY)?;
    let mut s = |fld: F, v: u64| set(out, ctx(fld), v);
    s(mkc::ACCESS_MODE_1_0, ACCESS_MODE_PA);
    s(mkc::LR, k.local_read as u64);
    s(mkc::LW, k.local_write as u64);
    s(mkc::RR, (k.remote & 1) as u64);
    s(mkc::RW, (k.remote >> 1 & 1) as u64);
    s(mkc::A, (k.remote >> 2 & 1) as u64);
    s(mkc::QPN, NO_QPN);
    s(mkc::MKEY_7_0, k.variant as u64);
    s(mkc::LENGTH64, k.all as u64);
    s(mkc::PD, k.pd as u64);
    s(mkc::START_ADDR, k.start);
    s(mkc::LEN, k.len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::footprint;

    /// `mkc` by hand (mlx5_ifc.h `struct mlx5_ifc_mkc_bits`): byte offsets
    /// and masks of the fields the model reads.
    #[test]
    fn mkc_fields_land_where_ifc_puts_them() {
        let golden: &[(F, &[(usize, u8)])] = &[
            (mkc::FREE, &[(0x00, 0x40)]),
            (mkc::ACCESS_MODE_4_2, &[(0x00, 0x1c)]),
            (mkc::UMR_EN, &[(0x02, 0x80)]),
            (mkc::A, &[(0x02, 0x40)]),
            (mkc::RW, &[(0x02, 0x20)]),
            (mkc::RR, &[(0x02, 0x10)]),
            (mkc::LW, &[(0x02, 0x08)]),
            (mkc::LR, &[(0x02, 0x04)]),
            (mkc::ACCESS_MODE_1_0, &[(0x02, 0x03)]),
            (mkc::QPN, &[(0x04, 0xff), (0x05, 0xff), (0x06, 0xff)]),
            (mkc::MKEY_7_0, &[(0x07, 0xff)]),
            (mkc::LENGTH64, &[(0x0c, 0x80)]),
            (mkc::PD, &[(0x0d, 0xff), (0x0e, 0xff), (0x0f, 0xff)]),
            (mkc::LOG_PAGE_SIZE, &[(0x3b, 0x3f)]),
        ];
        for (fld, want) in golden {
            assert_eq!(footprint(*fld), want.to_vec(), "{fld:?}");
        }
        // start_addr @0x10, len @0x18 (64 bits each),
        // translations_octword_size @0x34.
        assert_eq!((mkc::START_ADDR.byte(), mkc::START_ADDR.width), (0x10, 64));
        assert_eq!((mkc::LEN.byte(), mkc::LEN.width), (0x18, 64));
        assert_eq!(mkc::TRANSLATIONS_OCTWORD_SIZE.byte(), 0x34);
    }

    #[test]
    fn translate_checks_key_domain_rights_and_range() {
        let mut keys = Mkeys::default();
        let k = Mkey {
            index: 0x20,
            variant: 0x5a,
            pd: 3,
            local_read: true,
            local_write: false,
            remote: 0,
            all: false,
            start: 0x1000,
            len: 0x1000,
        };
        keys.map.insert(k.index, k);
        assert_eq!(k.key(), 0x205a);
        assert_eq!(keys.translate(0x205a, 3, 0x1800, 0x100, false), Ok(0x1800));
        assert_eq!(
            keys.translate(0x2000, 3, 0x1800, 0x100, false),
            Err(KeyError::Unknown)
        );
        assert_eq!(
            keys.translate(0x205a, 4, 0x1800, 0x100, false),
            Err(KeyError::Domain)
        );
        assert_eq!(
            keys.translate(0x205a, 3, 0x1800, 0x100, true),
            Err(KeyError::Access)
        );
        assert_eq!(
            keys.translate(0x205a, 3, 0x1f80, 0x100, false),
            Err(KeyError::Range)
        );
        // The reserved lkey addresses everything, in any domain.
        assert_eq!(
            keys.translate(super::super::pd::RESERVED_LKEY, 9, 0x9000, 1, true),
            Ok(0x9000)
        );
    }
}
