//! The work queue context shared by SQs and RQs (`wq` in mlx5_ifc.h,
//! `mlx5_ifc_wq_bits`, embedded in `sqc` / `rqc` at bit 0x180): ring
//! geometry, page list, doorbell record, PD, UAR.
#![deny(unsafe_code)]

use std::sync::Arc;

use super::reserved;
use crate::bits::{F, be64, f, get, put_be64, set};
use crate::function::Function;
use crate::sanitizer::{Purpose, Revoked};
use crate::syndrome::{self as syn, CmdError};

const PAGE: u64 = 4096;
/// `MLX5_WQ_END_PAD_MODE_NONE` / `_ALIGN`: an RQ may pad each received
/// frame's last buffer up to the end of a cache line.
pub const END_PAD_NONE: u64 = 0;
pub const END_PAD_ALIGN: u64 = 1;
/// `MLX5_WQ_TYPE_CYCLIC`, `MLX5_WQ_TYPE_CYCLIC_STRIDING_RQ`.
pub const TYPE_CYCLIC: u64 = 0x1;
pub const TYPE_CYCLIC_STRIDING: u64 = 0x3;
/// Striding RQ: strides per WQE = 2^(log_wqe_num_of_strides + 9), stride
/// size = 2^(log_wqe_stride_size + 6) (device.h `MLX5_MPWQE_LOG_*_BASE`).
pub const LOG_NUM_STRIDES_BASE: u8 = 9;
pub const LOG_NUM_STRIDES_MAX: u8 = 16;
pub const LOG_STRIDE_SZ_BASE: u8 = 6;

/// `wq` fields (bit offsets inside the wq context).
pub mod wqc {
    use crate::bits::{F, f};
    pub const WQ_TYPE: F = f(0x0, 4);
    pub const WQ_SIGNATURE: F = f(0x4, 1);
    pub const END_PADDING_MODE: F = f(0x5, 2);
    pub const CD_SLAVE: F = f(0x7, 1);
    /// hds_skip_first_sge, log2_hds_buf_size.
    pub const HDS: F = f(0x20, 4);
    pub const PAGE_OFFSET: F = f(0x2b, 5);
    pub const LWM: F = f(0x30, 0x10);
    pub const PD: F = f(0x48, 0x18);
    pub const UAR_PAGE: F = f(0x68, 0x18);
    pub const DBR_ADDR: F = f(0x80, 0x40);
    pub const HW_COUNTER: F = f(0xc0, 0x20);
    pub const SW_COUNTER: F = f(0xe0, 0x20);
    pub const LOG_WQ_STRIDE: F = f(0x10c, 4);
    pub const LOG_WQ_PG_SZ: F = f(0x113, 5);
    pub const LOG_WQ_SZ: F = f(0x11b, 5);
    /// umem, hairpin, striding and shampo fields (0x120..0x200): none
    /// offered but the striding RQ's two below.
    pub const EXTENSIONS: F = f(0x120, 0xe0);
    pub const LOG_WQE_NUM_OF_STRIDES: F = f(0x134, 4);
    pub const TWO_BYTE_SHIFT_EN: F = f(0x138, 1);
    pub const LOG_WQE_STRIDE_SIZE: F = f(0x13d, 3);
    pub const RESERVED: [F; 7] = [
        f(0x8, 0x18),
        f(0x24, 7),
        f(0x40, 8),
        f(0x60, 8),
        f(0x100, 0xc),
        f(0x110, 3),
        f(0x118, 3),
    ];
    /// Byte offset of the page list from the start of the wq context.
    pub const PAS: usize = 0xc0;
}

/// A parsed, validated work queue.
#[derive(Debug, Clone)]
pub struct Wq {
    pub log_stride: u8,
    pub log_size: u8,
    pub pd: u32,
    pub uar: u32,
    pub dbr: u64,
    pub lwm: u16,
    /// Shared so the engines take a copy of the queue without allocating.
    pub pas: Arc<[u64]>,
    /// Striding RQ: (log2 strides per WQE, log2 stride bytes).
    pub striding: Option<(u8, u8)>,
    /// RQ end padding (`end_padding_mode` ALIGN): the receive engine fills
    /// a frame's last buffer up to the next cache line (64 bytes, or 128
    /// with `cache_line_128byte`) where the buffer has room.
    pub end_pad: bool,
}

impl Wq {
    /// Number of WQEs (strides) in the ring.
    pub fn entries(&self) -> u32 {
        1 << self.log_size
    }

    /// Bus address of byte `off` of the ring (taken modulo the ring size).
    pub fn addr(&self, off: u64) -> Option<u64> {
        let ring = 1u64 << (self.log_stride + self.log_size);
        let off = off % ring;
        self.pas
            .get((off / PAGE) as usize)
            .map(|page| page + off % PAGE)
    }

    /// Grant the ring pages and the doorbell record.
    pub fn grant(&self, dev: &mut Function) {
        let bytes = 1u64 << (self.log_stride + self.log_size);
        for a in self.pas.iter() {
            dev.bus.san.grant(*a, PAGE.min(bytes), Purpose::WqBuffer);
        }
        dev.bus.san.grant(self.dbr, 8, Purpose::DoorbellRecord);
    }

    pub fn revoke(&self, dev: &mut Function, why: Revoked) {
        for a in self.pas.iter() {
            dev.bus.san.revoke(*a, why);
        }
        dev.bus.san.revoke(self.dbr, why);
    }

    /// Write the context back (QUERY_SQ / QUERY_RQ) at byte `at` of `out`.
    pub fn write(&self, out: &mut [u8], at: usize, hw_counter: u32) {
        let w = |fld: F| fld.at(at);
        if self.end_pad {
            set(out, w(wqc::END_PADDING_MODE), END_PAD_ALIGN);
        }
        match self.striding {
            None => set(out, w(wqc::WQ_TYPE), TYPE_CYCLIC),
            Some((n, sz)) => {
                set(out, w(wqc::WQ_TYPE), TYPE_CYCLIC_STRIDING);
                set(
                    out,
                    w(wqc::LOG_WQE_NUM_OF_STRIDES),
                    (n - LOG_NUM_STRIDES_BASE) as u64,
                );
                set(
                    out,
                    w(wqc::LOG_WQE_STRIDE_SIZE),
                    (sz - LOG_STRIDE_SZ_BASE) as u64,
                );
            }
        }
        set(out, w(wqc::LWM), self.lwm as u64);
        set(out, w(wqc::PD), self.pd as u64);
        set(out, w(wqc::UAR_PAGE), self.uar as u64);
        set(out, w(wqc::DBR_ADDR), self.dbr);
        set(out, w(wqc::HW_COUNTER), hw_counter as u64);
        set(out, w(wqc::LOG_WQ_STRIDE), self.log_stride as u64);
        set(out, w(wqc::LOG_WQ_SZ), self.log_size as u64);
        for (i, a) in self.pas.iter().enumerate() {
            put_be64(out, at + wqc::PAS + 8 * i, *a);
        }
    }
}

/// Parse and validate the wq context at byte `at` of `inp`. `strides` is
/// the range of log_wq_stride the queue type accepts; `need_uar` whether
/// the queue is rung through a UAR (SQ) and must name an allocated one;
/// `rq` whether it is a receive queue (which may be striding, on parts
/// whose `striding_rq` capability says so).
pub fn parse(
    dev: &Function,
    inp: &[u8],
    at: usize,
    strides: std::ops::RangeInclusive<u8>,
    need_uar: bool,
) -> Result<Wq, CmdError> {
    let w = |fld: F| fld.at(at);
    let res: Vec<F> = wqc::RESERVED.iter().map(|r| w(*r)).collect();
    reserved(inp, &res)?;
    reserved(inp, &[f(0x200, 0x400).at(at)])?;
    let wq_type = get(inp, w(wqc::WQ_TYPE));
    let rq = !need_uar;
    let end_pad = get(inp, w(wqc::END_PADDING_MODE));
    if !(wq_type == TYPE_CYCLIC || (rq && wq_type == TYPE_CYCLIC_STRIDING))
        || get(inp, w(wqc::WQ_SIGNATURE)) != 0
        || get(inp, w(wqc::CD_SLAVE)) != 0
        || !(end_pad == END_PAD_NONE || (rq && end_pad == END_PAD_ALIGN))
        || get(inp, w(wqc::HDS)) != 0
    {
        return Err(syn::WQ_TYPE);
    }
    let mut ext = [0u8; 0x1c];
    if let Some(src) = inp.get(at + 0x24..at + 0x40) {
        ext.copy_from_slice(src);
    }
    let striding = if wq_type == TYPE_CYCLIC_STRIDING {
        let caps = dev
            .caps
            .current(super::caps::cap_type::GENERAL)
            .unwrap_or(&[]);
        let n = get(inp, w(wqc::LOG_WQE_NUM_OF_STRIDES)) as u8 + LOG_NUM_STRIDES_BASE;
        let sz = get(inp, w(wqc::LOG_WQE_STRIDE_SIZE)) as u8 + LOG_STRIDE_SZ_BASE;
        let min = get(caps, super::caps::hca_cap::LOG_MIN_STRIDE_SZ_RQ) as u8;
        let max = get(caps, super::caps::hca_cap::LOG_MAX_STRIDE_SZ_RQ) as u8;
        if get(caps, super::caps::hca_cap::STRIDING_RQ) == 0
            || n > LOG_NUM_STRIDES_MAX
            || !(min..=max).contains(&sz)
            || get(inp, w(wqc::TWO_BYTE_SHIFT_EN)) != 0
        {
            return Err(syn::WQE_STRIDES);
        }
        // The striding fields: byte 0x26 low nibble, byte 0x27 bits 2:0
        // (and two_byte_shift_en, bit 7, refused above).
        ext[2] &= 0xf0;
        ext[3] &= 0x78;
        Some((n, sz))
    } else {
        None
    };
    if ext.iter().any(|b| *b != 0) {
        return Err(syn::WQ_TYPE);
    }
    if get(inp, w(wqc::LOG_WQ_PG_SZ)) != 0 || get(inp, w(wqc::PAGE_OFFSET)) != 0 {
        return Err(syn::QUEUE_PAGE_GEOMETRY);
    }
    let log_stride = get(inp, w(wqc::LOG_WQ_STRIDE)) as u8;
    let log_size = get(inp, w(wqc::LOG_WQ_SZ)) as u8;
    if !strides.contains(&log_stride)
        || log_size as u64 > dev.caps.general(super::caps::hca_cap::LOG_MAX_WQ_SZ)
    {
        return Err(syn::WQ_GEOMETRY);
    }
    // PD 0 is the function's own domain, never handed out by ALLOC_PD:
    // firmware takes queues on it (Linux's drop RQ, which never gets a
    // buffer), and only the reserved lkey reaches memory through it.
    let pd = get(inp, w(wqc::PD)) as u32;
    if pd != 0 && !dev.domains.has_pd(pd) {
        return Err(syn::UNKNOWN_PD);
    }
    let uar = get(inp, w(wqc::UAR_PAGE)) as u32;
    if (need_uar || uar != 0) && !dev.uars.contains(uar) {
        return Err(syn::UNKNOWN_UAR);
    }
    let dbr = get(inp, w(wqc::DBR_ADDR));
    if dbr == 0 || !dbr.is_multiple_of(8) {
        return Err(syn::DBR_MISALIGNED);
    }
    let bytes = 1u64 << (log_stride + log_size);
    let npas = bytes.div_ceil(PAGE) as usize;
    let pas_at = at + wqc::PAS;
    if inp.len() < pas_at + 8 * npas {
        return Err(syn::CMD_LENGTHS);
    }
    let pas: Vec<u64> = (0..npas).map(|i| be64(inp, pas_at + 8 * i)).collect();
    if pas.iter().any(|a| a % PAGE != 0) {
        return Err(syn::PAS_MISALIGNED);
    }
    Ok(Wq {
        log_stride,
        log_size,
        pd,
        uar,
        dbr,
        lwm: get(inp, w(wqc::LWM)) as u16,
        pas: pas.into(),
        striding,
        end_pad: end_pad == END_PAD_ALIGN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `wq` written by hand (mlx5_ifc.h `mlx5_ifc_wq_bits`): wq_type 1
    /// (byte 0 high nibble), pd 0x000123 (bytes 0x09..0x0c), uar_page 0x10
    /// (bytes 0x0d..0x10), dbr_addr (bytes 0x10..0x18), log_wq_stride 6
    /// (byte 0x21 low nibble), log_wq_pg_sz 0 (byte 0x22), log_wq_sz 10
    /// (byte 0x23 low 5 bits).
    #[test]
    fn wq_fields_from_hand_written_bytes() {
        let mut c = [0u8; 0xc0];
        c[0x00] = 0x10;
        c[0x0a] = 0x01;
        c[0x0b] = 0x23;
        c[0x0f] = 0x10;
        c[0x10..0x18].copy_from_slice(&[0, 0, 0, 1, 0, 0, 0x20, 0x08]);
        c[0x21] = 0x06;
        c[0x23] = 0x0a;
        assert_eq!(get(&c, wqc::WQ_TYPE), 1);
        assert_eq!(get(&c, wqc::PD), 0x123);
        assert_eq!(get(&c, wqc::UAR_PAGE), 0x10);
        assert_eq!(get(&c, wqc::DBR_ADDR), 0x1_0000_2008);
        assert_eq!(get(&c, wqc::LOG_WQ_STRIDE), 6);
        assert_eq!(get(&c, wqc::LOG_WQ_SZ), 10);
        assert!(crate::bits::all_zero(&c, &wqc::RESERVED));
        assert!(crate::bits::all_zero(&c, &[wqc::EXTENSIONS]));
    }
}
