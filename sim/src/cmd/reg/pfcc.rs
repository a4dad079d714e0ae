//! PFCC, flow control (`pfcc_reg`, 32 bytes): global pause each way (pptx,
//! pprx; written unless their `_mask_n` bit is set), per-priority flow
//! control (pfctx, pfcrx; the bits `prio_mask_tx` / `prio_mask_rx` name are
//! written) and the device stall watermarks (written when their masks are
//! set). The model keeps the configuration and reports it back; its wire
//! never congests, so no pause frame is ever sent or honoured.
#![deny(unsafe_code)]

use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

pub const SIZE: usize = 0x20;

pub mod fld {
    use crate::bits::{F, f};
    pub const BUF_OWNERSHIP: F = f(0x4, 2);
    pub const PPAN_MASK_N: F = f(0x1b, 1);
    pub const MINOR_STALL_MASK: F = f(0x1c, 1);
    pub const CRITICAL_STALL_MASK: F = f(0x1d, 1);
    pub const PPAN: F = f(0x20, 4);
    pub const PRIO_MASK_TX: F = f(0x28, 8);
    pub const PRIO_MASK_RX: F = f(0x38, 8);
    pub const PPTX: F = f(0x40, 1);
    pub const APTX: F = f(0x41, 1);
    pub const PPTX_MASK_N: F = f(0x42, 1);
    pub const PFCTX: F = f(0x48, 8);
    pub const PPRX: F = f(0x60, 1);
    pub const APRX: F = f(0x61, 1);
    pub const PPRX_MASK_N: F = f(0x62, 1);
    pub const PFCRX: F = f(0x68, 8);
    pub const STALL_MINOR: F = f(0x80, 0x10);
    pub const STALL_CRITICAL: F = f(0x90, 0x10);
    pub const RESERVED: [F; 9] = [
        f(0x0, 4),
        f(0x6, 2),
        f(0x10, 0xb),
        f(0x1e, 2),
        f(0x24, 4),
        f(0x30, 8),
        f(0x43, 5),
        f(0x50, 0x10),
        f(0x63, 5),
    ];
}

/// The port's flow control configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowControl {
    pub pause_tx: bool,
    pub pause_rx: bool,
    pub pfc_tx: u8,
    pub pfc_rx: u8,
    pub stall_minor: u16,
    pub stall_critical: u16,
}

impl Default for FlowControl {
    /// Global pause on both ways, no PFC: what the parts come up with.
    fn default() -> FlowControl {
        FlowControl {
            pause_tx: true,
            pause_rx: true,
            pfc_tx: 0,
            pfc_rx: 0,
            stall_minor: 0,
            stall_critical: 0,
        }
    }
}

pub fn access(dev: &mut Function, write: bool, data: &[u8], o: &mut [u8]) -> Result<(), CmdError> {
    super::reserved(data, &fld::RESERVED)?;
    super::reserved(data, &[f(0x70, 0x10), f(0xa0, 0x60)])?;
    let g = |x: F| get(data, x);
    if write {
        // Buffer ownership, pause autonegotiation and the "attempted"
        // status bits are not settable.
        if g(fld::BUF_OWNERSHIP) != 0 || g(fld::PPAN) != 0 || g(fld::APTX) != 0 || g(fld::APRX) != 0
        {
            return Err(syn::REG_VALUE);
        }
        let c = &mut dev.phys_port.flow_control;
        if g(fld::PPTX_MASK_N) == 0 {
            c.pause_tx = g(fld::PPTX) != 0;
        }
        if g(fld::PPRX_MASK_N) == 0 {
            c.pause_rx = g(fld::PPRX) != 0;
        }
        let (mtx, mrx) = (g(fld::PRIO_MASK_TX) as u8, g(fld::PRIO_MASK_RX) as u8);
        c.pfc_tx = (c.pfc_tx & !mtx) | (g(fld::PFCTX) as u8 & mtx);
        c.pfc_rx = (c.pfc_rx & !mrx) | (g(fld::PFCRX) as u8 & mrx);
        if g(fld::MINOR_STALL_MASK) != 0 {
            c.stall_minor = g(fld::STALL_MINOR) as u16;
        }
        if g(fld::CRITICAL_STALL_MASK) != 0 {
            c.stall_critical = g(fld::STALL_CRITICAL) as u16;
        }
    }
    let c = dev.phys_port.flow_control;
    set(o, fld::PPTX, c.pause_tx as u64);
    set(o, fld::PPRX, c.pause_rx as u64);
    set(o, fld::PFCTX, c.pfc_tx as u64);
    set(o, fld::PFCRX, c.pfc_rx as u64);
    set(o, fld::STALL_MINOR, c.stall_minor as u64);
    set(o, fld::STALL_CRITICAL, c.stall_critical as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::footprint;

    /// `pfcc_reg` by hand: pptx / pprx the top bits of bytes 8 and 0xc,
    /// pfctx / pfcrx bytes 9 and 0xd, prio masks bytes 5 and 7.
    #[test]
    fn fields_land_where_ifc_puts_them() {
        assert_eq!(footprint(fld::PPTX), vec![(0x08, 0x80)]);
        assert_eq!(footprint(fld::PPRX), vec![(0x0c, 0x80)]);
        assert_eq!(footprint(fld::PFCTX), vec![(0x09, 0xff)]);
        assert_eq!(footprint(fld::PFCRX), vec![(0x0d, 0xff)]);
        assert_eq!(footprint(fld::PRIO_MASK_TX), vec![(0x05, 0xff)]);
        assert_eq!(footprint(fld::PRIO_MASK_RX), vec![(0x07, 0xff)]);
        assert_eq!(footprint(fld::PPTX_MASK_N), vec![(0x08, 0x20)]);
    }
}
