//! HCA life cycle: ENABLE/DISABLE_HCA, QUERY/SET_ISSI, INIT/TEARDOWN_HCA,
//! SET_DRIVER_VERSION, QUERY_ADAPTER, NOP.
#![deny(unsafe_code)]

use super::reserved;
use crate::bits::{f, get, put_be16, put_be32, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// The function's life-cycle state.
#[derive(Debug, Default, Clone)]
pub struct Hca {
    pub enabled: bool,
    pub initialized: bool,
    pub issi: u16,
    /// Text of the last SET_DRIVER_VERSION.
    pub driver_version: String,
    /// Profile of the last TEARDOWN_HCA (0 graceful, 1 force).
    pub last_teardown_profile: Option<u16>,
}

/// ISSIs the model supports: 0 and 1 (`supported_issi_dw0` bits 0 and 1).
pub const SUPPORTED_ISSI: u32 = 0b11;

/// `enable_hca_in` / `disable_hca_in` (mlx5_ifc.h): embedded_cpu_function at
/// bit 0x40, function_id at 0x50; reserved 0x41..0x50 and 0x60..0x80.
const FN_EMBEDDED: crate::bits::F = f(0x40, 1);
const FN_ID: crate::bits::F = f(0x50, 0x10);

fn own_function(inp: &[u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x41, 0xf), f(0x60, 0x20)])?;
    if get(inp, FN_EMBEDDED) != 0 || get(inp, FN_ID) != 0 {
        return Err(syn::BAD_FUNCTION);
    }
    Ok(())
}

pub fn enable(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    own_function(inp)?;
    if dev.hca.enabled {
        return Err(syn::ALREADY_ENABLED);
    }
    dev.hca.enabled = true;
    Ok(())
}

pub fn disable(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    own_function(inp)?;
    dev.end_function(true);
    Ok(())
}

/// `query_issi_out`: current_issi at bit 0x50, supported_issi_dw0 at byte 0x6c.
pub const QUERY_ISSI_OUT: usize = 0x70;

pub fn query_issi(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40)])?;
    put_be16(out, 0x0a, dev.hca.issi);
    put_be32(out, 0x6c, SUPPORTED_ISSI);
    Ok(())
}

pub fn set_issi(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x10), f(0x60, 0x20)])?;
    if dev.hca.initialized {
        return Err(syn::ALREADY_INITIALIZED);
    }
    let issi = get(inp, f(0x50, 0x10));
    if issi >= 32 || SUPPORTED_ISSI & (1 << issi) == 0 {
        return Err(syn::ISSI_UNSUPPORTED);
    }
    dev.hca.issi = issi as u16;
    Ok(())
}

/// INIT_HCA (`init_hca_in`): needs every boot and init page the model asked for.
pub fn init(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x20)])?;
    if dev.hca.initialized {
        return Err(syn::ALREADY_INITIALIZED);
    }
    if !dev.pages.init_satisfied() {
        return Err(syn::INIT_WITHOUT_PAGES);
    }
    dev.hca.initialized = true;
    dev.pages.on_init();
    Ok(())
}

/// TEARDOWN_HCA (`teardown_hca_in`: profile at bit 0x50; out: state at bit 0x7f).
pub fn teardown(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x10), f(0x60, 0x20)])?;
    let profile = get(inp, f(0x50, 0x10)) as u16;
    if profile > 1 {
        return Err(syn::TEARDOWN_PROFILE);
    }
    dev.note_leftovers();
    teardown_objects(dev);
    dev.hca.initialized = false;
    dev.hca.last_teardown_profile = Some(profile);
    dev.pages.on_teardown();
    // Force close reports its state: 0 = success.
    set(out, f(0x7f, 1), 0);
    Ok(())
}

/// Destroy every object the function created (TEARDOWN_HCA, DISABLE_HCA,
/// reset), revoking the driver memory they used.
pub fn teardown_objects(dev: &mut Function) {
    crate::datapath::teardown(dev);
    super::eq::destroy_all(dev);
    dev.uars.clear();
    dev.mkeys.clear();
    dev.domains.clear();
    dev.q_counters.clear();
    dev.vport = super::vport::Vport::new(dev.personality, dev.mac);
    dev.caps.reset_current();
}

/// `set_driver_version_in`: 64 bytes of text at byte 0x10.
pub fn set_driver_version(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40)])?;
    let raw = &inp[0x10..0x50];
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    dev.hca.driver_version = String::from_utf8_lossy(&raw[..end]).into_owned();
    Ok(())
}

/// QUERY_ADAPTER output: `query_adapter_param_block` at byte 0x10 with
/// ieee_vendor_id at block bit 0xc8, vsd_vendor_id at block byte 0x1e, vsd at
/// block byte 0x20 (208 bytes), psid at block byte 0xf0 (16 bytes).
pub const QUERY_ADAPTER_OUT: usize = 0x110;

pub fn query_adapter(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40)])?;
    let blk = 0x10;
    // Mellanox OUI 00:02:c9.
    set(out, f(0xc8, 0x18).at(blk), 0x0002c9);
    put_be16(out, blk + 0x1e, 0x15b3);
    let (maj, min, sub) = dev.personality.fw_version();
    let vsd = format!("mlx5-sim {} fw {maj}.{min}.{sub}", dev.personality.name());
    let n = vsd.len().min(208);
    out[blk + 0x20..blk + 0x20 + n].copy_from_slice(&vsd.as_bytes()[..n]);
    let psid = dev.personality.psid().as_bytes();
    out[blk + 0xf0..blk + 0xf0 + psid.len()].copy_from_slice(psid);
    Ok(())
}

/// NOP (`nop_in`: reserved 0x40..0x80).
pub fn nop(inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x40)])?;
    Ok(())
}
