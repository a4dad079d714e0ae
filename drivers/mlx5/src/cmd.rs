//! Commands: the typed builder/parser trait, opcodes and their names, and
//! the header every command input and output starts with (PRM "Command
//! Interface"; `opcode`/`op_mod` of every `*_in_bits`, `status`/`syndrome`
//! of every `*_out_bits` in mlx5_ifc.h).

use crate::layout::Field;

/// opcode `[31:16]` of input dword 0.
pub const IN_OPCODE: Field = Field::new(0x00, 31, 16);
/// op_mod `[15:0]` of input dword 1.
pub const IN_OP_MOD: Field = Field::new(0x04, 15, 0);
/// status `[31:24]` of output dword 0.
pub const OUT_STATUS: Field = Field::new(0x00, 31, 24);
/// syndrome, output dword 1.
pub const OUT_SYNDROME: Field = Field::new(0x04, 31, 0);
/// Smallest input and output: the 16-byte header.
pub const HEADER_LEN: usize = 0x10;

/// One command: its opcode, input and output sizes, how to fill the input
/// and how to read the output. The command layer writes opcode/op_mod and
/// checks status/syndrome; `build` fills the rest, `parse` reads a
/// successful output (validating every value before use).
pub trait Command {
    type Output;
    const OPCODE: u16;
    fn op_mod(&self) -> u16 {
        0
    }
    /// Input length in bytes (>= 16).
    fn in_len(&self) -> usize;
    /// Output length in bytes (>= 16).
    fn out_len(&self) -> usize;
    /// Fill the input after the header; `inbox` is zeroed, `in_len` long.
    fn build(&self, inbox: &mut [u8]);
    /// Read a successful output, `out_len` bytes long.
    fn parse(&self, outbox: &[u8]) -> Result<Self::Output, crate::error::BadOutput>;
}

/// A command lent out: what a cooperative [`Exec`] hands to a ticket
/// (which owns its command) without copying the command.
impl<T: Command> Command for &T {
    type Output = T::Output;
    const OPCODE: u16 = T::OPCODE;
    fn op_mod(&self) -> u16 {
        (**self).op_mod()
    }
    fn in_len(&self) -> usize {
        (**self).in_len()
    }
    fn out_len(&self) -> usize {
        (**self).out_len()
    }
    fn build(&self, inbox: &mut [u8]) {
        (**self).build(inbox)
    }
    fn parse(&self, outbox: &[u8]) -> Result<Self::Output, crate::error::BadOutput> {
        (**self).parse(outbox)
    }
}

/// Something that runs commands: the adapter (and, in unit tests, a
/// scripted executor). Objects that only need commands (flow tables, queue
/// state changes) take this instead of the whole adapter.
pub trait Exec {
    fn exec<C: Command>(&mut self, cmd: &C) -> Result<C::Output, crate::error::CmdError>;
}

/// Opcodes (PRM "Command Reference"; `MLX5_CMD_OP_*` in mlx5_ifc.h).
pub mod op {
    pub const QUERY_HCA_CAP: u16 = 0x100;
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
    pub const QUERY_SPECIAL_CONTEXTS: u16 = 0x203;
    pub const CREATE_EQ: u16 = 0x301;
    pub const DESTROY_EQ: u16 = 0x302;
    pub const QUERY_EQ: u16 = 0x303;
    pub const QUERY_NIC_VPORT_CONTEXT: u16 = 0x754;
    pub const MODIFY_NIC_VPORT_CONTEXT: u16 = 0x755;
    pub const ALLOC_PD: u16 = 0x800;
    pub const DEALLOC_PD: u16 = 0x801;
    pub const ALLOC_UAR: u16 = 0x802;
    pub const DEALLOC_UAR: u16 = 0x803;
    pub const ACCESS_REGISTER: u16 = 0x805;
    pub const ALLOC_TRANSPORT_DOMAIN: u16 = 0x816;
    pub const DEALLOC_TRANSPORT_DOMAIN: u16 = 0x817;
    pub const CREATE_CQ: u16 = 0x400;
    pub const DESTROY_CQ: u16 = 0x401;
    pub const QUERY_CQ: u16 = 0x402;
    pub const MODIFY_CQ: u16 = 0x403;
    pub const ALLOC_Q_COUNTER: u16 = 0x771;
    pub const DEALLOC_Q_COUNTER: u16 = 0x772;
    pub const QUERY_Q_COUNTER: u16 = 0x773;
    pub const CREATE_TIR: u16 = 0x900;
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
    pub const QUERY_FLOW_TABLE_ENTRY: u16 = 0x937;
    pub const DELETE_FLOW_TABLE_ENTRY: u16 = 0x938;
    pub const ALLOC_FLOW_COUNTER: u16 = 0x939;
    pub const DEALLOC_FLOW_COUNTER: u16 = 0x93a;
    pub const QUERY_FLOW_COUNTER: u16 = 0x93b;
    pub const CREATE_RQT: u16 = 0x916;
    pub const MODIFY_RQT: u16 = 0x917;
    pub const DESTROY_RQT: u16 = 0x918;
    pub const QUERY_RQT: u16 = 0x919;
}

/// The command's name for traces and messages.
pub fn opcode_name(opcode: u16) -> &'static str {
    match opcode {
        op::QUERY_HCA_CAP => "QUERY_HCA_CAP",
        op::INIT_HCA => "INIT_HCA",
        op::TEARDOWN_HCA => "TEARDOWN_HCA",
        op::ENABLE_HCA => "ENABLE_HCA",
        op::DISABLE_HCA => "DISABLE_HCA",
        op::QUERY_PAGES => "QUERY_PAGES",
        op::MANAGE_PAGES => "MANAGE_PAGES",
        op::SET_HCA_CAP => "SET_HCA_CAP",
        op::QUERY_ISSI => "QUERY_ISSI",
        op::SET_ISSI => "SET_ISSI",
        op::SET_DRIVER_VERSION => "SET_DRIVER_VERSION",
        op::QUERY_SPECIAL_CONTEXTS => "QUERY_SPECIAL_CONTEXTS",
        op::CREATE_EQ => "CREATE_EQ",
        op::DESTROY_EQ => "DESTROY_EQ",
        op::QUERY_EQ => "QUERY_EQ",
        op::QUERY_NIC_VPORT_CONTEXT => "QUERY_NIC_VPORT_CONTEXT",
        op::MODIFY_NIC_VPORT_CONTEXT => "MODIFY_NIC_VPORT_CONTEXT",
        op::ALLOC_PD => "ALLOC_PD",
        op::DEALLOC_PD => "DEALLOC_PD",
        op::ALLOC_UAR => "ALLOC_UAR",
        op::DEALLOC_UAR => "DEALLOC_UAR",
        op::ACCESS_REGISTER => "ACCESS_REGISTER",
        op::ALLOC_TRANSPORT_DOMAIN => "ALLOC_TRANSPORT_DOMAIN",
        op::DEALLOC_TRANSPORT_DOMAIN => "DEALLOC_TRANSPORT_DOMAIN",
        op::CREATE_CQ => "CREATE_CQ",
        op::DESTROY_CQ => "DESTROY_CQ",
        op::QUERY_CQ => "QUERY_CQ",
        op::MODIFY_CQ => "MODIFY_CQ",
        op::ALLOC_Q_COUNTER => "ALLOC_Q_COUNTER",
        op::DEALLOC_Q_COUNTER => "DEALLOC_Q_COUNTER",
        op::QUERY_Q_COUNTER => "QUERY_Q_COUNTER",
        op::CREATE_TIR => "CREATE_TIR",
        op::DESTROY_TIR => "DESTROY_TIR",
        op::CREATE_SQ => "CREATE_SQ",
        op::MODIFY_SQ => "MODIFY_SQ",
        op::DESTROY_SQ => "DESTROY_SQ",
        op::QUERY_SQ => "QUERY_SQ",
        op::CREATE_RQ => "CREATE_RQ",
        op::MODIFY_RQ => "MODIFY_RQ",
        op::DESTROY_RQ => "DESTROY_RQ",
        op::QUERY_RQ => "QUERY_RQ",
        op::CREATE_TIS => "CREATE_TIS",
        op::DESTROY_TIS => "DESTROY_TIS",
        op::SET_FLOW_TABLE_ROOT => "SET_FLOW_TABLE_ROOT",
        op::CREATE_FLOW_TABLE => "CREATE_FLOW_TABLE",
        op::DESTROY_FLOW_TABLE => "DESTROY_FLOW_TABLE",
        op::CREATE_FLOW_GROUP => "CREATE_FLOW_GROUP",
        op::DESTROY_FLOW_GROUP => "DESTROY_FLOW_GROUP",
        op::SET_FLOW_TABLE_ENTRY => "SET_FLOW_TABLE_ENTRY",
        op::QUERY_FLOW_TABLE_ENTRY => "QUERY_FLOW_TABLE_ENTRY",
        op::DELETE_FLOW_TABLE_ENTRY => "DELETE_FLOW_TABLE_ENTRY",
        op::ALLOC_FLOW_COUNTER => "ALLOC_FLOW_COUNTER",
        op::DEALLOC_FLOW_COUNTER => "DEALLOC_FLOW_COUNTER",
        op::QUERY_FLOW_COUNTER => "QUERY_FLOW_COUNTER",
        op::CREATE_RQT => "CREATE_RQT",
        op::MODIFY_RQT => "MODIFY_RQT",
        op::QUERY_RQT => "QUERY_RQT",
        op::DESTROY_RQT => "DESTROY_RQT",
        _ => "UNKNOWN_COMMAND",
    }
}

/// A command whose input is the header plus at most one field and whose
/// output is only the header: DEALLOC_*, DESTROY_EQ, DISABLE_HCA...; the
/// opcode is a const parameter so that each is its own type.
#[derive(Clone, Copy, Debug)]
pub struct SimpleCmd<const OPCODE: u16> {
    pub op_mod: u16,
    pub arg: Option<(Field, u32)>,
}

impl<const OPCODE: u16> SimpleCmd<OPCODE> {
    pub const fn new(op_mod: u16, arg: Option<(Field, u32)>) -> Self {
        Self { op_mod, arg }
    }
}

impl<const OPCODE: u16> Command for SimpleCmd<OPCODE> {
    type Output = ();
    const OPCODE: u16 = OPCODE;
    fn op_mod(&self) -> u16 {
        self.op_mod
    }
    fn in_len(&self) -> usize {
        HEADER_LEN
    }
    fn out_len(&self) -> usize {
        HEADER_LEN
    }
    fn build(&self, inbox: &mut [u8]) {
        if let Some((field, value)) = self.arg {
            field.set(inbox, value);
        }
    }
    fn parse(&self, _outbox: &[u8]) -> Result<(), crate::error::BadOutput> {
        Ok(())
    }
}

/// Build a command's complete input (header included), as the command
/// layer sends it. Used by the layer and by golden-byte tests.
pub fn encode<C: Command>(cmd: &C) -> alloc::vec::Vec<u8> {
    let mut inbox = alloc::vec![0u8; cmd.in_len().max(HEADER_LEN)];
    cmd.build(&mut inbox);
    IN_OPCODE.set(&mut inbox, C::OPCODE as u32);
    IN_OP_MOD.set(&mut inbox, cmd.op_mod() as u32);
    inbox
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_golden_bytes() {
        // DESTROY_EQ (0x302) op_mod 0 with eq_number 5 at destroy_eq_in
        // byte 0x0b ([7:0] of dword 0x08).
        let cmd = SimpleCmd::<{ op::DESTROY_EQ }>::new(0, Some((Field::new(0x08, 7, 0), 5)));
        let bytes = encode(&cmd);
        #[rustfmt::skip]
        let golden: [u8; 16] = [
            0x03, 0x02, 0x00, 0x00, // 0x00 opcode [31:16]
            0x00, 0x00, 0x00, 0x00, // 0x04 op_mod [15:0]
            0x00, 0x00, 0x00, 0x05, // 0x08 eq_number [7:0]
            0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(bytes, golden);
    }

    #[test]
    fn header_op_mod_lands_in_low_half_of_dword1() {
        let cmd = SimpleCmd::<{ op::QUERY_PAGES }>::new(2, None);
        let bytes = encode(&cmd);
        assert_eq!(&bytes[..8], &[0x01, 0x07, 0, 0, 0, 0, 0x00, 0x02]);
    }
}
