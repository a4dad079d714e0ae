//! Command dispatch: header checks, the function's state rules, then the
//! handler of each command group. Handlers read the gathered input and fill
//! the (zeroed) output; they return the PRM status and a syndrome from
//! [`crate::syndrome`] on failure.
#![deny(unsafe_code)]

pub mod caps;
pub mod cq;
pub mod eq;
pub mod flow;
pub mod hca;
pub mod mkey;
pub mod pages;
pub mod pas;
pub mod pd;
pub mod q_counter;
pub mod reg;
pub mod rq;
pub mod rqt;
pub mod sq;
pub mod tir;
pub mod tis;
pub mod uar;
pub mod vport;
pub mod wq;

use crate::bits::{all_zero, be16, f};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// Opcodes (`MLX5_CMD_OP_*`, mlx5_ifc.h).
pub mod op {
    pub const QUERY_HCA_CAP: u16 = 0x100;
    pub const QUERY_ADAPTER: u16 = 0x101;
    pub const INIT_HCA: u16 = 0x102;
    pub const TEARDOWN_HCA: u16 = 0x103;
    pub const ENABLE_HCA: u16 = 0x104;
    pub const DISABLE_HCA: u16 = 0x105;
    pub const QUERY_PAGES: u16 = 0x107;
    pub const MANAGE_PAGES: u16 = 0x108;
    pub const SET_HCA_CAP: u16 = 0x109;
    pub const QUERY_ISSI: u16 = 0x10a;
    pub const SET_ISSI: u16 = 0x10b;
    pub const SET_DRIVER_VERSION: u16 = 0x10d;
    pub const CREATE_MKEY: u16 = 0x200;
    pub const QUERY_MKEY: u16 = 0x201;
    pub const DESTROY_MKEY: u16 = 0x202;
    pub const QUERY_SPECIAL_CONTEXTS: u16 = 0x203;
    pub const CREATE_EQ: u16 = 0x301;
    pub const DESTROY_EQ: u16 = 0x302;
    pub const QUERY_EQ: u16 = 0x303;
    pub const CREATE_CQ: u16 = 0x400;
    pub const DESTROY_CQ: u16 = 0x401;
    pub const QUERY_CQ: u16 = 0x402;
    pub const MODIFY_CQ: u16 = 0x403;
    pub const QUERY_VPORT_STATE: u16 = 0x750;
    pub const QUERY_NIC_VPORT_CONTEXT: u16 = 0x754;
    pub const QUERY_VPORT_COUNTER: u16 = 0x770;
    pub const MODIFY_NIC_VPORT_CONTEXT: u16 = 0x755;
    pub const ALLOC_Q_COUNTER: u16 = 0x771;
    pub const DEALLOC_Q_COUNTER: u16 = 0x772;
    pub const QUERY_Q_COUNTER: u16 = 0x773;
    pub const ALLOC_PD: u16 = 0x800;
    pub const DEALLOC_PD: u16 = 0x801;
    pub const ALLOC_UAR: u16 = 0x802;
    pub const DEALLOC_UAR: u16 = 0x803;
    pub const ACCESS_REG: u16 = 0x805;
    pub const NOP: u16 = 0x80d;
    pub const ALLOC_TRANSPORT_DOMAIN: u16 = 0x816;
    pub const DEALLOC_TRANSPORT_DOMAIN: u16 = 0x817;
    pub const CREATE_TIR: u16 = 0x900;
    pub const MODIFY_TIR: u16 = 0x901;
    pub const DESTROY_TIR: u16 = 0x902;
    pub const CREATE_SQ: u16 = 0x904;
    pub const MODIFY_SQ: u16 = 0x905;
    pub const DESTROY_SQ: u16 = 0x906;
    pub const QUERY_SQ: u16 = 0x907;
    pub const CREATE_RQ: u16 = 0x908;
    pub const MODIFY_RQ: u16 = 0x909;
    pub const DESTROY_RQ: u16 = 0x90a;
    pub const QUERY_RQ: u16 = 0x90b;
    pub const CREATE_TIS: u16 = 0x912;
    pub const DESTROY_TIS: u16 = 0x914;
    pub const SET_FLOW_TABLE_ROOT: u16 = 0x92f;
    pub const CREATE_FLOW_TABLE: u16 = 0x930;
    pub const DESTROY_FLOW_TABLE: u16 = 0x931;
    pub const CREATE_FLOW_GROUP: u16 = 0x933;
    pub const DESTROY_FLOW_GROUP: u16 = 0x934;
    pub const SET_FLOW_TABLE_ENTRY: u16 = 0x936;
    pub const DELETE_FLOW_TABLE_ENTRY: u16 = 0x938;
    pub const QUERY_FLOW_TABLE_ENTRY: u16 = 0x937;
    pub const ALLOC_FLOW_COUNTER: u16 = 0x939;
    pub const DEALLOC_FLOW_COUNTER: u16 = 0x93a;
    pub const QUERY_FLOW_COUNTER: u16 = 0x93b;
    pub const MODIFY_FLOW_TABLE: u16 = 0x93c;
    pub const CREATE_RQT: u16 = 0x916;
    pub const MODIFY_RQT: u16 = 0x917;
    pub const DESTROY_RQT: u16 = 0x918;
    pub const QUERY_RQT: u16 = 0x919;
}

/// Length of the common command header (opcode, uid, op_mod: 8 bytes) plus
/// the 8 bytes every input of the model's commands has at least.
pub const MIN_IN: usize = 0x10;
/// Status, syndrome and 8 more bytes: the shortest output of any command.
pub const MIN_OUT: usize = 0x10;

/// Fail with the bad-length statuses unless the input has `inlen` bytes
/// and the output room for `outlen`.
pub fn need(inp: &[u8], out: &[u8], inlen: usize, outlen: usize) -> Result<(), CmdError> {
    if inp.len() < inlen {
        return Err(syn::BAD_INPUT_LENGTH);
    }
    if out.len() < outlen {
        return Err(syn::BAD_OUTPUT_LENGTH);
    }
    Ok(())
}

/// Fail with RESERVED_SET unless every reserved field listed is zero.
pub fn reserved(inp: &[u8], fields: &[crate::bits::F]) -> Result<(), CmdError> {
    if all_zero(inp, fields) {
        Ok(())
    } else {
        Err(syn::RESERVED_SET)
    }
}

/// [`reserved`] for the reserved fields of a context that starts `base`
/// bytes into the input (the fields are given relative to the context).
pub fn reserved_in(inp: &[u8], base: usize, fields: &[crate::bits::F]) -> Result<(), CmdError> {
    if fields.iter().all(|r| all_zero(inp, &[r.at(base)])) {
        Ok(())
    } else {
        Err(syn::RESERVED_SET)
    }
}

/// What a command needs of the function's state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Allowed in any state (ENABLE_HCA decides for itself).
    Nothing,
    /// After ENABLE_HCA.
    Enabled,
    /// After INIT_HCA.
    Initialized,
}

fn needs(opcode: u16) -> Needs {
    match opcode {
        op::ENABLE_HCA => Needs::Nothing,
        op::DISABLE_HCA
        | op::QUERY_ISSI
        | op::SET_ISSI
        | op::QUERY_PAGES
        | op::MANAGE_PAGES
        | op::QUERY_HCA_CAP
        | op::SET_HCA_CAP
        | op::INIT_HCA
        | op::ACCESS_REG
        | op::NOP => Needs::Enabled,
        _ => Needs::Initialized,
    }
}

/// Execute one delivered command.
pub fn execute(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    let opcode = be16(inp, 0);
    // uid (bits 0x10..0x20) is reserved for this model (no user contexts),
    // bits 0x20..0x30 are reserved in every command header.
    reserved(inp, &[f(0x10, 0x10), f(0x20, 0x10)])?;
    let Some((inlen, outlen)) = layout(opcode) else {
        return Err(syn::UNKNOWN_OPCODE);
    };
    need(inp, out, inlen, outlen)?;
    // Commands without op_mod semantics take 0 only.
    if !has_op_mod(opcode) && be16(inp, 6) != 0 {
        return Err(syn::BAD_OP_MOD);
    }
    match needs(opcode) {
        Needs::Nothing => {}
        Needs::Enabled if !dev.hca.enabled => return Err(syn::NOT_ENABLED),
        Needs::Initialized if !dev.hca.enabled => return Err(syn::NOT_ENABLED),
        Needs::Initialized if !dev.hca.initialized => return Err(syn::NOT_INITIALIZED),
        _ => {}
    }
    match opcode {
        op::ENABLE_HCA => hca::enable(dev, inp, out),
        op::DISABLE_HCA => hca::disable(dev, inp, out),
        op::QUERY_ISSI => hca::query_issi(dev, inp, out),
        op::SET_ISSI => hca::set_issi(dev, inp, out),
        op::INIT_HCA => hca::init(dev, inp, out),
        op::TEARDOWN_HCA => hca::teardown(dev, inp, out),
        op::SET_DRIVER_VERSION => hca::set_driver_version(dev, inp, out),
        op::QUERY_ADAPTER => hca::query_adapter(dev, inp, out),
        op::NOP => hca::nop(inp, out),
        op::QUERY_PAGES => pages::query(dev, inp, out),
        op::MANAGE_PAGES => pages::manage(dev, inp, out),
        op::QUERY_HCA_CAP => caps::query_hca_cap(dev, inp, out),
        op::SET_HCA_CAP => caps::set_hca_cap(dev, inp, out),
        op::ALLOC_UAR => uar::alloc(dev, inp, out),
        op::DEALLOC_UAR => uar::dealloc(dev, inp, out),
        op::CREATE_EQ => eq::create(dev, inp, out),
        op::DESTROY_EQ => eq::destroy(dev, inp, out),
        op::QUERY_EQ => eq::query(dev, inp, out),
        op::ALLOC_PD => pd::alloc_pd(dev, inp, out),
        op::DEALLOC_PD => pd::dealloc_pd(dev, inp, out),
        op::ALLOC_TRANSPORT_DOMAIN => pd::alloc_td(dev, inp, out),
        op::DEALLOC_TRANSPORT_DOMAIN => pd::dealloc_td(dev, inp, out),
        op::QUERY_SPECIAL_CONTEXTS => pd::query_special_contexts(inp, out),
        op::CREATE_MKEY => mkey::create(dev, inp, out),
        op::DESTROY_MKEY => mkey::destroy(dev, inp, out),
        op::QUERY_MKEY => mkey::query(dev, inp, out),
        op::ALLOC_Q_COUNTER => q_counter::alloc(dev, inp, out),
        op::DEALLOC_Q_COUNTER => q_counter::dealloc(dev, inp, out),
        op::QUERY_Q_COUNTER => q_counter::query(dev, inp, out),
        op::QUERY_VPORT_STATE => vport::query_state(dev, inp, out),
        op::QUERY_VPORT_COUNTER => vport::query_counter(dev, inp, out),
        op::QUERY_NIC_VPORT_CONTEXT => vport::query_context(dev, inp, out),
        op::MODIFY_NIC_VPORT_CONTEXT => vport::modify_context(dev, inp, out),
        op::ACCESS_REG => reg::access(dev, inp, out),
        op::CREATE_CQ => cq::create(dev, inp, out),
        op::DESTROY_CQ => cq::destroy(dev, inp, out),
        op::QUERY_CQ => cq::query(dev, inp, out),
        op::MODIFY_CQ => cq::modify(dev, inp, out),
        op::CREATE_SQ => sq::create(dev, inp, out),
        op::MODIFY_SQ => sq::modify(dev, inp, out),
        op::DESTROY_SQ => sq::destroy(dev, inp, out),
        op::QUERY_SQ => sq::query(dev, inp, out),
        op::CREATE_RQ => rq::create(dev, inp, out),
        op::MODIFY_RQ => rq::modify(dev, inp, out),
        op::DESTROY_RQ => rq::destroy(dev, inp, out),
        op::QUERY_RQ => rq::query(dev, inp, out),
        op::CREATE_TIS => tis::create(dev, inp, out),
        op::DESTROY_TIS => tis::destroy(dev, inp, out),
        op::CREATE_TIR => tir::create(dev, inp, out),
        op::MODIFY_TIR => tir::modify(dev, inp, out),
        op::DESTROY_TIR => tir::destroy(dev, inp, out),
        op::CREATE_FLOW_TABLE => flow::create_table(dev, inp, out),
        op::DESTROY_FLOW_TABLE => flow::destroy_table(dev, inp, out),
        op::CREATE_FLOW_GROUP => flow::create_group(dev, inp, out),
        op::DESTROY_FLOW_GROUP => flow::destroy_group(dev, inp, out),
        op::SET_FLOW_TABLE_ENTRY => flow::set_entry(dev, inp, out),
        op::DELETE_FLOW_TABLE_ENTRY => flow::delete_entry(dev, inp, out),
        op::SET_FLOW_TABLE_ROOT => flow::set_root(dev, inp, out),
        op::CREATE_RQT => rqt::create(dev, inp, out),
        op::MODIFY_RQT => rqt::modify(dev, inp, out),
        op::DESTROY_RQT => rqt::destroy(dev, inp, out),
        op::QUERY_RQT => rqt::query(dev, inp, out),
        op::QUERY_FLOW_TABLE_ENTRY => flow::query_entry(dev, inp, out),
        op::MODIFY_FLOW_TABLE => flow::modify_table(dev, inp, out),
        op::ALLOC_FLOW_COUNTER => flow::alloc_counter(dev, inp, out),
        op::DEALLOC_FLOW_COUNTER => flow::dealloc_counter(dev, inp, out),
        op::QUERY_FLOW_COUNTER => flow::query_counter(dev, inp, out),
        _ => Err(syn::UNKNOWN_OPCODE),
    }
}

/// Commands whose op_mod means something (the handler checks its values).
fn has_op_mod(opcode: u16) -> bool {
    matches!(
        opcode,
        op::QUERY_HCA_CAP
            | op::SET_HCA_CAP
            | op::QUERY_PAGES
            | op::MANAGE_PAGES
            | op::ACCESS_REG
            | op::QUERY_VPORT_STATE
            | op::SET_FLOW_TABLE_ENTRY
            | op::SET_FLOW_TABLE_ROOT
    )
}

/// Input and output sizes of each command the model executes: the size of
/// its `<command>_in` / `<command>_out` layout in mlx5_ifc.h, without the
/// variable part a command may carry (page lists, mailbox data, register
/// data: the handler checks those against the counts in the input). A
/// shorter input or output is refused with BAD_INPUT_LEN / BAD_OUTPUT_LEN,
/// as firmware does; a longer one is accepted. `None`: not implemented.
pub fn layout(opcode: u16) -> Option<(usize, usize)> {
    use op::*;
    Some(match opcode {
        QUERY_HCA_CAP => (0x10, 0x1010),
        QUERY_ADAPTER => (0x10, 0x110),
        // init_hca_in is 0x20 bytes since sw_vhca_id / sw_owner_id were
        // appended for later parts; firmware takes the ConnectX-4 PRM's 16
        // bytes (drivers written to it, OpenBSD's mcx and illumos' mlxcx,
        // send 16) with those fields zero.
        INIT_HCA => (0x10, 0x10),
        TEARDOWN_HCA => (0x10, 0x10),
        // enable_hca_out / disable_hca_out: status, syndrome and one
        // reserved dword (12 bytes).
        ENABLE_HCA | DISABLE_HCA => (0x10, 0x0c),
        QUERY_PAGES | MANAGE_PAGES => (0x10, 0x10),
        SET_HCA_CAP => (0x1010, 0x10),
        QUERY_ISSI => (0x10, 0x70),
        SET_ISSI => (0x10, 0x10),
        SET_DRIVER_VERSION => (0x50, 0x10),
        // query_special_contexts_out grew from the PRM's 16 bytes (resd_lkey
        // at 0x0c) to 32 when null_mkey and later keys were appended;
        // drivers written to the PRM (OpenBSD's mcx) read 16.
        QUERY_SPECIAL_CONTEXTS => (0x10, 0x10),
        // create_mkey_in: mkc at 0x10, translations from 0x110.
        CREATE_MKEY => (0x110, 0x10),
        DESTROY_MKEY => (0x10, 0x10),
        QUERY_MKEY => (0x10, 0x130),
        CREATE_EQ => (0x110, 0x10),
        DESTROY_EQ => (0x10, 0x10),
        QUERY_EQ => (0x10, 0x110),
        CREATE_CQ | MODIFY_CQ => (0x110, 0x10),
        DESTROY_CQ => (0x10, 0x10),
        QUERY_CQ => (0x10, 0x110),
        QUERY_VPORT_STATE => (0x10, 0x10),
        QUERY_VPORT_COUNTER => (0x20, 0x210),
        QUERY_NIC_VPORT_CONTEXT => (0x10, 0x110),
        MODIFY_NIC_VPORT_CONTEXT => (0x200, 0x10),
        ALLOC_Q_COUNTER | DEALLOC_Q_COUNTER => (0x10, 0x10),
        QUERY_Q_COUNTER => (0x20, 0x100),
        ALLOC_PD | DEALLOC_PD | ALLOC_UAR | DEALLOC_UAR => (0x10, 0x10),
        // access_register_in/out: 16 bytes before the register data.
        ACCESS_REG => (0x10, 0x10),
        NOP => (0x10, 0x10),
        ALLOC_TRANSPORT_DOMAIN | DEALLOC_TRANSPORT_DOMAIN => (0x10, 0x10),
        CREATE_TIR | MODIFY_TIR => (0x110, 0x10),
        DESTROY_TIR => (0x10, 0x10),
        CREATE_SQ | MODIFY_SQ | CREATE_RQ | MODIFY_RQ => (0x110, 0x10),
        DESTROY_SQ | DESTROY_RQ => (0x10, 0x10),
        QUERY_SQ | QUERY_RQ => (0x10, 0x110),
        CREATE_TIS => (0xc0, 0x10),
        DESTROY_TIS => (0x10, 0x10),
        SET_FLOW_TABLE_ROOT | CREATE_FLOW_TABLE | DESTROY_FLOW_TABLE => (0x40, 0x10),
        MODIFY_FLOW_TABLE | DESTROY_FLOW_GROUP | DELETE_FLOW_TABLE_ENTRY => (0x40, 0x10),
        CREATE_FLOW_GROUP => (0x400, 0x10),
        SET_FLOW_TABLE_ENTRY => (0x340, 0x10),
        QUERY_FLOW_TABLE_ENTRY => (0x40, 0x340),
        CREATE_RQT | MODIFY_RQT => (0x110, 0x10),
        DESTROY_RQT => (0x10, 0x10),
        QUERY_RQT => (0x10, 0x110),
        ALLOC_FLOW_COUNTER | DEALLOC_FLOW_COUNTER => (0x10, 0x10),
        // query_flow_counter_out: 16 bytes, then one traffic_counter per
        // counter asked for (the handler checks those).
        QUERY_FLOW_COUNTER => (0x20, 0x10),
        _ => return None,
    })
}
