//! Pages the driver gives the device: QUERY_PAGES, MANAGE_PAGES and
//! page-request events (PRM "Pages Management"; `query_pages_in/out`,
//! `manage_pages_in/out` in mlx5_ifc.h, `struct mlx5_eqe_page_req` in device.h).
//!
//! The model really uses the pages: each gets a stamp when it arrives and
//! every executed command appends a 16-byte record to a log kept in them,
//! so a page the driver frees or reuses too early shows up in the sanitizer.
#![deny(unsafe_code)]

use std::collections::HashSet;

use super::reserved;
use crate::bits::{be32, be64, f, get, put_be32, put_be64};
use crate::function::Function;
use crate::personality::Personality;
use crate::sanitizer::{Purpose, Revoked};
use crate::syndrome::{self as syn, CmdError};

pub const PAGE_SIZE: u64 = 4096;
/// Pages a driver may give beyond what the model asked for (drivers round up).
const SLACK: i64 = 64;
/// Bytes of one command log record.
const LOG_RECORD: u64 = 16;

/// QUERY_PAGES op_mod values.
pub mod query_op {
    pub const BOOT: u16 = 1;
    pub const INIT: u16 = 2;
    pub const REGULAR: u16 = 3;
}

/// MANAGE_PAGES op_mod values.
pub mod manage_op {
    pub const CANT_GIVE: u16 = 0;
    pub const GIVE: u16 = 1;
    pub const TAKE: u16 = 2;
}

#[derive(Debug)]
pub struct Pages {
    boot: u32,
    init: u32,
    /// Held pages, in the order given.
    held: Vec<u64>,
    held_set: HashSet<u64>,
    /// Pages the function wants to hold while initialized.
    target: i64,
    initialized: bool,
    log_cursor: u64,
}

impl Pages {
    pub fn new(p: Personality) -> Pages {
        let c = p.caps();
        Pages {
            boot: c.boot_pages,
            init: c.init_pages,
            held: Vec::new(),
            held_set: HashSet::new(),
            target: (c.boot_pages + c.init_pages) as i64,
            initialized: false,
            log_cursor: 0,
        }
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    pub fn init_satisfied(&self) -> bool {
        self.held.len() as i64 >= (self.boot + self.init) as i64
    }

    pub fn on_init(&mut self) {
        self.initialized = true;
        self.target = (self.boot + self.init) as i64;
    }

    /// After TEARDOWN_HCA the device needs no pages: all may be taken.
    pub fn on_teardown(&mut self) {
        self.initialized = false;
        self.target = 0;
    }

    /// Pages still wanted (positive) or to be returned (negative).
    fn regular_delta(&self) -> i64 {
        if self.initialized {
            self.target - self.held.len() as i64
        } else {
            0
        }
    }

    /// Pages that may be taken now.
    fn spare(&self) -> usize {
        let keep = if self.initialized {
            self.target.max(0)
        } else {
            0
        };
        (self.held.len() as i64 - keep).max(0) as usize
    }
}

/// `query_pages_in`: function_id at bit 0x50; out: num_pages (signed) at byte 0x0c.
pub fn query(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x41, 0xf), f(0x60, 0x20)])?;
    if get(inp, f(0x40, 1)) != 0 || get(inp, f(0x50, 0x10)) != 0 {
        return Err(syn::BAD_FUNCTION);
    }
    let p = &dev.pages;
    let held = p.held.len() as i64;
    let n: i64 = match crate::bits::be16(inp, 6) {
        query_op::BOOT => (p.boot as i64 - held).max(0),
        query_op::INIT => ((p.boot + p.init) as i64 - held).max(0),
        query_op::REGULAR => p.regular_delta(),
        _ => return Err(syn::BAD_OP_MOD),
    };
    put_be32(out, 0x0c, n as i32 as u32);
    Ok(())
}

/// MANAGE_PAGES (`manage_pages_in`: input_num_entries at byte 0x0c, pas at
/// 0x10; out: output_num_entries at byte 0x08, pas at 0x10).
pub fn manage(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x41, 0xf)])?;
    if get(inp, f(0x40, 1)) != 0 || get(inp, f(0x50, 0x10)) != 0 {
        return Err(syn::BAD_FUNCTION);
    }
    let n = be32(inp, 0x0c) as usize;
    match crate::bits::be16(inp, 6) {
        manage_op::GIVE => give(dev, inp, n),
        manage_op::TAKE => take(dev, out, n),
        manage_op::CANT_GIVE => {
            // The driver could not allocate: the model stops wanting them.
            let p = &mut dev.pages;
            if p.initialized {
                p.target = p.target.min(p.held.len() as i64);
            }
            Ok(())
        }
        _ => Err(syn::BAD_OP_MOD),
    }
}

fn give(dev: &mut Function, inp: &[u8], n: usize) -> Result<(), CmdError> {
    if n == 0 {
        return Err(syn::PAGES_UNEXPECTED);
    }
    if inp.len() < 0x10 + 8 * n {
        return Err(syn::CMD_LENGTHS);
    }
    let p = &dev.pages;
    let allowed = p.target.max((p.boot + p.init) as i64) + SLACK;
    if (p.held.len() + n) as i64 > allowed {
        return Err(syn::PAGES_EXCESS);
    }
    let mut fresh = HashSet::with_capacity(n);
    for i in 0..n {
        let addr = be64(inp, 0x10 + 8 * i);
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(syn::PAGE_MISALIGNED);
        }
        if p.held_set.contains(&addr) || !fresh.insert(addr) {
            return Err(syn::PAGE_DUPLICATE);
        }
    }
    for i in 0..n {
        let addr = be64(inp, 0x10 + 8 * i);
        dev.bus.san.grant(addr, PAGE_SIZE, Purpose::Page);
        let mut stamp = [0u8; 32];
        stamp[..16].copy_from_slice(b"mlx5-sim page   ");
        put_be64(&mut stamp, 16, (dev.pages.held.len() + i) as u64);
        put_be64(&mut stamp, 24, addr);
        if dev.bus.write(addr, &stamp, Purpose::Page).is_err() {
            // Undo this command's grants: none of its pages are kept.
            for j in 0..=i {
                dev.bus
                    .san
                    .revoke(be64(inp, 0x10 + 8 * j), Revoked::TakenBack);
            }
            return Err(syn::DMA_FAILED);
        }
    }
    for i in 0..n {
        let addr = be64(inp, 0x10 + 8 * i);
        dev.pages.held.push(addr);
        dev.pages.held_set.insert(addr);
    }
    Ok(())
}

fn take(dev: &mut Function, out: &mut [u8], n: usize) -> Result<(), CmdError> {
    if out.len() < 0x10 + 8 * n {
        return Err(syn::BAD_OUTPUT_LENGTH);
    }
    let count = n.min(dev.pages.spare());
    for i in 0..count {
        let Some(addr) = dev.pages.held.pop() else {
            break;
        };
        dev.pages.held_set.remove(&addr);
        dev.bus.san.revoke(addr, Revoked::TakenBack);
        put_be64(out, 0x10 + 8 * i, addr);
    }
    put_be32(out, 0x08, count as u32);
    Ok(())
}

/// The model wants `num_pages` more (positive) or wants to return some
/// (negative): adjust the target and raise a page-request EQE (type 0x0b:
/// func_id be16 at data+2, num_pages be32 at data+4).
pub fn request(dev: &mut Function, num_pages: i32) {
    if !dev.pages.initialized {
        return;
    }
    let p = &mut dev.pages;
    p.target = (p.target + num_pages as i64).max(0);
    let mut data = [0u8; 28];
    put_be32(&mut data, 4, num_pages as u32);
    super::eq::raise_event(dev, super::eq::event::PAGE_REQUEST, 0, &data);
}

/// Append one record (opcode, op_mod, status, sequence) to the command log
/// kept in the held pages.
pub fn log_command(dev: &mut Function, opcode: u16, op_mod: u16, status: u8) {
    let held = dev.pages.held.len() as u64;
    if held == 0 {
        return;
    }
    let per_page = PAGE_SIZE / LOG_RECORD;
    // Records start after the 32-byte stamp.
    let slot = dev.pages.log_cursor % (held * (per_page - 2));
    dev.pages.log_cursor = dev.pages.log_cursor.wrapping_add(1);
    let page = dev.pages.held[(slot / (per_page - 2)) as usize];
    let at = page + 32 + (slot % (per_page - 2)) * LOG_RECORD;
    let mut rec = [0u8; 16];
    rec[0..2].copy_from_slice(&opcode.to_be_bytes());
    rec[2..4].copy_from_slice(&op_mod.to_be_bytes());
    rec[4] = status;
    rec[8..16].copy_from_slice(&dev.commands_executed.to_be_bytes());
    let _ = dev.bus.write(at, &rec, Purpose::Page);
}

/// Function ends. With `disable` (DISABLE_HCA), pages the driver did not take
/// back first get the model's final write of its context; the pages were
/// revoked by DISABLE_HCA, so the sanitizer reports each such access. A
/// function reset just forgets them.
pub fn release_all(dev: &mut Function, disable: bool) {
    dev.bus.san.revoke_all(Purpose::Page, Revoked::Disabled);
    let held = std::mem::take(&mut dev.pages.held);
    if disable {
        for addr in &held {
            let _ = dev
                .bus
                .write(*addr, b"mlx5-sim context flush", Purpose::Page);
        }
    }
    dev.pages = Pages::new(dev.personality);
}
