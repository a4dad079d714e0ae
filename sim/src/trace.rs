//! The command trace (`mlx5-sim --trace-commands`): one line per executed
//! command with its opcode name, op_mod, input and output lengths, status
//! and syndrome, and for ACCESS_REGISTER the register and the direction.
//! Each line carries the time since the function's last reset, so a trace
//! also measures how long a driver takes from reset to any step.
//!
//! Line format (fields separated by single spaces):
//!
//! ```text
//! cmd <seq> +<ms>ms <NAME>(0x<opcode>) op_mod 0x<op_mod> in <bytes> out <bytes> status 0x<st> syndrome 0x<syn>[ reg <NAME>(0x<id>) read|write]
//! reset +0.000ms
//! ```
//!
//! Names come from `MLX5_CMD_OP_*` (mlx5_ifc.h) and `MLX5_REG_*`
//! (driver.h); an opcode or register without a name here prints as `?`.
#![deny(unsafe_code)]

use std::io::Write;
use std::time::Duration;

use crate::bits::be16;

/// One executed command, as the trace records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub opcode: u16,
    pub op_mod: u16,
    pub inlen: usize,
    pub outlen: usize,
    pub status: u8,
    pub syndrome: u32,
    /// ACCESS_REGISTER: register id and whether it was a write.
    pub reg: Option<(u16, bool)>,
    /// Since the function's last reset.
    pub since_reset: Duration,
}

impl Record {
    /// The register an ACCESS_REGISTER input names (`access_register_in`:
    /// op_mod 0 write / 1 read at byte 0x06, register_id at byte 0x0a).
    pub fn register_of(opcode: u16, input: &[u8]) -> Option<(u16, bool)> {
        (opcode == crate::cmd::op::ACCESS_REG && input.len() >= 0x0c)
            .then(|| (be16(input, 0x0a), be16(input, 0x06) == 0))
    }
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "+{:.3}ms {}(0x{:x}) op_mod 0x{:x} in {} out {} status 0x{:x} syndrome 0x{:x}",
            self.since_reset.as_secs_f64() * 1e3,
            opcode_name(self.opcode).unwrap_or("?"),
            self.opcode,
            self.op_mod,
            self.inlen,
            self.outlen,
            self.status,
            self.syndrome
        )?;
        if let Some((id, write)) = self.reg {
            write!(
                f,
                " reg {}(0x{id:x}) {}",
                register_name(id).unwrap_or("?"),
                if write { "write" } else { "read" }
            )?;
        }
        Ok(())
    }
}

/// How much of a failed command's input the trace shows.
pub const FAILED_INPUT_BYTES: usize = 0x100;

/// Where trace lines go.
pub struct Trace {
    out: Box<dyn Write + Send>,
    seq: u64,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").field("seq", &self.seq).finish()
    }
}

impl Trace {
    pub fn new(out: Box<dyn Write + Send>) -> Trace {
        Trace { out, seq: 0 }
    }

    /// One executed command; a failed one is followed by a line with the
    /// first [`FAILED_INPUT_BYTES`] of its input in hex (`  in: 0930...`).
    /// A failing sink loses the line, never the command.
    pub fn command(&mut self, r: &Record, input: &[u8]) {
        self.seq += 1;
        let _ = writeln!(self.out, "cmd {} {r}", self.seq);
        if r.status != 0 {
            let mut hex = String::with_capacity(2 * FAILED_INPUT_BYTES);
            for b in input.iter().take(FAILED_INPUT_BYTES) {
                hex.push_str(&format!("{b:02x}"));
            }
            let _ = writeln!(self.out, "  in: {hex}");
        }
        let _ = self.out.flush();
    }

    /// A function reset (the time base of the lines after it).
    pub fn reset(&mut self) {
        let _ = writeln!(self.out, "reset +0.000ms");
        let _ = self.out.flush();
    }
}

/// `MLX5_CMD_OP_*` name of an opcode (mlx5_ifc.h), for the Ethernet
/// function's commands and those a driver may probe for.
pub fn opcode_name(op: u16) -> Option<&'static str> {
    Some(match op {
        0x100 => "QUERY_HCA_CAP",
        0x101 => "QUERY_ADAPTER",
        0x102 => "INIT_HCA",
        0x103 => "TEARDOWN_HCA",
        0x104 => "ENABLE_HCA",
        0x105 => "DISABLE_HCA",
        0x107 => "QUERY_PAGES",
        0x108 => "MANAGE_PAGES",
        0x109 => "SET_HCA_CAP",
        0x10a => "QUERY_ISSI",
        0x10b => "SET_ISSI",
        0x10d => "SET_DRIVER_VERSION",
        0x111 => "QUERY_SF_PARTITION",
        0x200 => "CREATE_MKEY",
        0x201 => "QUERY_MKEY",
        0x202 => "DESTROY_MKEY",
        0x203 => "QUERY_SPECIAL_CONTEXTS",
        0x204 => "PAGE_FAULT_RESUME",
        0x301 => "CREATE_EQ",
        0x302 => "DESTROY_EQ",
        0x303 => "QUERY_EQ",
        0x304 => "GEN_EQE",
        0x400 => "CREATE_CQ",
        0x401 => "DESTROY_CQ",
        0x402 => "QUERY_CQ",
        0x403 => "MODIFY_CQ",
        0x500 => "CREATE_QP",
        0x501 => "DESTROY_QP",
        0x700 => "CREATE_SRQ",
        0x740 => "QUERY_ESW_FUNCTIONS",
        0x750 => "QUERY_VPORT_STATE",
        0x751 => "MODIFY_VPORT_STATE",
        0x752 => "QUERY_ESW_VPORT_CONTEXT",
        0x753 => "MODIFY_ESW_VPORT_CONTEXT",
        0x754 => "QUERY_NIC_VPORT_CONTEXT",
        0x755 => "MODIFY_NIC_VPORT_CONTEXT",
        0x762 => "QUERY_HCA_VPORT_CONTEXT",
        0x76f => "QUERY_VNIC_ENV",
        0x770 => "QUERY_VPORT_COUNTER",
        0x771 => "ALLOC_Q_COUNTER",
        0x772 => "DEALLOC_Q_COUNTER",
        0x773 => "QUERY_Q_COUNTER",
        0x780 => "SET_PP_RATE_LIMIT",
        0x781 => "QUERY_RATE_LIMIT",
        0x782 => "CREATE_SCHEDULING_ELEMENT",
        0x783 => "DESTROY_SCHEDULING_ELEMENT",
        0x800 => "ALLOC_PD",
        0x801 => "DEALLOC_PD",
        0x802 => "ALLOC_UAR",
        0x803 => "DEALLOC_UAR",
        0x804 => "CONFIG_INT_MODERATION",
        0x805 => "ACCESS_REG",
        0x806 => "ATTACH_TO_MCG",
        0x807 => "DETACH_FROM_MCG",
        0x80d => "NOP",
        0x816 => "ALLOC_TRANSPORT_DOMAIN",
        0x817 => "DEALLOC_TRANSPORT_DOMAIN",
        0x827 => "ADD_VXLAN_UDP_DPORT",
        0x828 => "DELETE_VXLAN_UDP_DPORT",
        0x830 => "SET_WOL_ROL",
        0x831 => "QUERY_WOL_ROL",
        0x840 => "CREATE_LAG",
        0x841 => "MODIFY_LAG",
        0x842 => "QUERY_LAG",
        0x843 => "DESTROY_LAG",
        0x900 => "CREATE_TIR",
        0x901 => "MODIFY_TIR",
        0x902 => "DESTROY_TIR",
        0x903 => "QUERY_TIR",
        0x904 => "CREATE_SQ",
        0x905 => "MODIFY_SQ",
        0x906 => "DESTROY_SQ",
        0x907 => "QUERY_SQ",
        0x908 => "CREATE_RQ",
        0x909 => "MODIFY_RQ",
        0x910 => "SET_DELAY_DROP_PARAMS",
        0x90a => "DESTROY_RQ",
        0x90b => "QUERY_RQ",
        0x90c => "CREATE_RMP",
        0x912 => "CREATE_TIS",
        0x913 => "MODIFY_TIS",
        0x914 => "DESTROY_TIS",
        0x915 => "QUERY_TIS",
        0x916 => "CREATE_RQT",
        0x917 => "MODIFY_RQT",
        0x918 => "DESTROY_RQT",
        0x919 => "QUERY_RQT",
        0x92f => "SET_FLOW_TABLE_ROOT",
        0x930 => "CREATE_FLOW_TABLE",
        0x931 => "DESTROY_FLOW_TABLE",
        0x932 => "QUERY_FLOW_TABLE",
        0x933 => "CREATE_FLOW_GROUP",
        0x934 => "DESTROY_FLOW_GROUP",
        0x935 => "QUERY_FLOW_GROUP",
        0x936 => "SET_FLOW_TABLE_ENTRY",
        0x937 => "QUERY_FLOW_TABLE_ENTRY",
        0x938 => "DELETE_FLOW_TABLE_ENTRY",
        0x939 => "ALLOC_FLOW_COUNTER",
        0x93a => "DEALLOC_FLOW_COUNTER",
        0x93b => "QUERY_FLOW_COUNTER",
        0x93c => "MODIFY_FLOW_TABLE",
        0x93d => "ALLOC_PACKET_REFORMAT_CONTEXT",
        0x93e => "DEALLOC_PACKET_REFORMAT_CONTEXT",
        0x940 => "ALLOC_MODIFY_HEADER_CONTEXT",
        0x941 => "DEALLOC_MODIFY_HEADER_CONTEXT",
        0xa00 => "CREATE_GENERAL_OBJECT",
        0xa01 => "MODIFY_GENERAL_OBJECT",
        0xa02 => "QUERY_GENERAL_OBJECT",
        0xa03 => "DESTROY_GENERAL_OBJECT",
        0xb00 => "SYNC_STEERING",
        _ => return None,
    })
}

/// `MLX5_REG_*` name of an access register id (driver.h).
pub fn register_name(id: u16) -> Option<&'static str> {
    Some(match id {
        0x4002 => "QPTS",
        0x4005 => "QETCR",
        0x400a => "QTCT",
        0x4013 => "QPDPM",
        0x4019 => "QCAM",
        0x4020 => "DCBX_PARAM",
        0x4021 => "DCBX_APP",
        0x402e => "CORE_DUMP",
        0x5001 => "PCAP",
        0x5002 => "PMLP",
        0x5003 => "PMTU",
        0x5004 => "PTYS",
        0x5006 => "PAOS",
        0x5007 => "PFCC",
        0x5008 => "PPCNT",
        0x5009 => "PUDE",
        0x500b => "PPTB",
        0x500c => "PBMC",
        0x500e => "PELC",
        0x500f => "PVLC",
        0x5010 => "PMPE",
        0x5012 => "PMAOS",
        0x5023 => "PPLM",
        0x5031 => "PDDR",
        0x5041 => "PCMR",
        0x507f => "PCAM",
        0x6001 => "NODE_DESC",
        0x7004 => "HOST_ENDIANNESS",
        0x9009 => "MTCAP",
        0x900a => "MTMP",
        0x9014 => "MCIA",
        0x9028 => "MFRL",
        0x902b => "MLCR",
        0x902d => "MRTC",
        0x9040 => "MTRC_CAP",
        0x9041 => "MTRC_CONF",
        0x9042 => "MTRC_STDB",
        0x9043 => "MTRC_CTRL",
        0x9050 => "MPEIN",
        0x9051 => "MPCNT",
        0x9053 => "MTPPS",
        0x9054 => "MTPPSE",
        0x9055 => "MTUTC",
        0x9056 => "MPEGC",
        0x9059 => "MPIR",
        0x9060 => "MCQS",
        0x9061 => "MCQI",
        0x9062 => "MCC",
        0x9063 => "MCDA",
        0x907f => "MCAM",
        0xb001 => "SBPR",
        0xb002 => "SBCM",
        0xb01f => "SBCAM",
        0xc000 => "RESOURCE_DUMP",
        0xc00e => "DTOR",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_register_access_line_names_command_and_register() {
        // access_register_in: opcode 0x0805, op_mod 1 (read) at byte 6,
        // register_id 0x5006 (PAOS) at byte 0x0a.
        let input = [
            0x08, 0x05, 0, 0, 0, 0, 0x00, 0x01, 0, 0, 0x50, 0x06, 0, 0, 0, 1,
        ];
        let r = Record {
            opcode: 0x805,
            op_mod: 1,
            inlen: 32,
            outlen: 32,
            status: 0,
            syndrome: 0,
            reg: Record::register_of(0x805, &input),
            since_reset: Duration::from_micros(1500),
        };
        assert_eq!(
            r.to_string(),
            "+1.500ms ACCESS_REG(0x805) op_mod 0x1 in 32 out 32 status 0x0 syndrome 0x0 reg PAOS(0x5006) read"
        );
        let unknown = Record {
            opcode: 0x7ff,
            reg: None,
            status: 2,
            syndrome: 0x2_0001,
            ..r
        };
        assert!(unknown.to_string().contains("?(0x7ff) "));
        assert!(unknown.to_string().ends_with("status 0x2 syndrome 0x20001"));
    }

    #[test]
    fn lines_are_numbered() {
        #[derive(Clone, Default)]
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let mut t = Trace::new(Box::new(sink.clone()));
        let r = Record {
            opcode: 0x104,
            op_mod: 0,
            inlen: 16,
            outlen: 12,
            status: 0,
            syndrome: 0,
            reg: None,
            since_reset: Duration::ZERO,
        };
        t.reset();
        t.command(&r, &[0x01, 0x04]);
        t.command(&Record { status: 0x51, ..r }, &[0x01, 0x04]);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "reset +0.000ms");
        assert!(lines[1].starts_with("cmd 1 +0.000ms ENABLE_HCA(0x104) "));
        assert!(lines[2].starts_with("cmd 2 "));
        assert_eq!(lines[3], "  in: 0104");
    }
}
