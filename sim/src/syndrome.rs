//! Every status and syndrome the model answers with, in one place.
//!
//! Statuses are the PRM's command statuses (`MLX5_CMD_STAT_*` in device.h)
//! and delivery statuses (the `status` field of the command entry, PRM
//! "Command Queue Entry"). The syndromes are the model's own, stable across
//! versions: `0x00SS_NNNN` where `SS` is the status the syndrome goes with
//! and `NNNN` numbers the rule. Tests and the driver may match on them.
#![deny(unsafe_code)]

/// Command status (first byte of every command output).
pub mod status {
    pub const OK: u8 = 0x00;
    pub const INTERNAL_ERROR: u8 = 0x01;
    pub const BAD_OPCODE: u8 = 0x02;
    pub const BAD_PARAM: u8 = 0x03;
    pub const BAD_SYS_STATE: u8 = 0x04;
    pub const BAD_RESOURCE: u8 = 0x05;
    pub const RESOURCE_BUSY: u8 = 0x06;
    pub const EXCEED_LIM: u8 = 0x08;
    pub const BAD_RES_STATE: u8 = 0x09;
    pub const BAD_INDEX: u8 = 0x0a;
    pub const NO_RESOURCES: u8 = 0x0f;
    pub const BAD_INPUT_LEN: u8 = 0x50;
    pub const BAD_OUTPUT_LEN: u8 = 0x51;
}

/// Delivery status (command entry byte 0x3f, bits 7:1).
pub mod delivery {
    pub const OK: u8 = 0x00;
    pub const SIGNATURE: u8 = 0x01;
    pub const TOKEN: u8 = 0x02;
    pub const BAD_BLOCK_NUMBER: u8 = 0x03;
    pub const OUTPUT_POINTER_ALIGNMENT: u8 = 0x04;
    pub const INPUT_POINTER_ALIGNMENT: u8 = 0x05;
    pub const FW_ERROR: u8 = 0x06;
    pub const INPUT_LENGTH: u8 = 0x07;
    pub const OUTPUT_LENGTH: u8 = 0x08;
    pub const RESERVED_NOT_ZERO: u8 = 0x09;
    pub const BAD_COMMAND_TYPE: u8 = 0x10;
}

/// A failed command: status and syndrome as written to the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdError {
    pub status: u8,
    pub syndrome: u32,
}

macro_rules! syndromes {
    ($($name:ident = $status:ident, $syn:literal, $why:literal;)*) => {
        $(
            #[doc = $why]
            pub const $name: CmdError = CmdError { status: status::$status, syndrome: $syn };
        )*
        /// (name, status, syndrome, when) of every syndrome the model uses.
        pub const TABLE: &[(&str, u8, u32, &str)] = &[
            $((stringify!($name), status::$status, $syn, $why),)*
        ];
    };
}

syndromes! {
    UNKNOWN_OPCODE = BAD_OPCODE, 0x0002_0001, "opcode the model does not implement (as hardware answers)";
    BAD_OP_MOD = BAD_PARAM, 0x0003_0001, "op_mod not defined for this opcode";
    RESERVED_SET = BAD_PARAM, 0x0003_0002, "a reserved field of the input is not zero";
    BAD_FUNCTION = BAD_PARAM, 0x0003_0003, "function_id / embedded_cpu_function / other_function / other_vport names another function";
    ISSI_UNSUPPORTED = BAD_PARAM, 0x0003_0004, "SET_ISSI with an ISSI the part does not support";
    PAGE_MISALIGNED = BAD_PARAM, 0x0003_0005, "MANAGE_PAGES give: page address not 4 KiB aligned";
    PAGE_DUPLICATE = BAD_PARAM, 0x0003_0006, "MANAGE_PAGES give: page already held by the model (or twice in one list)";
    CAP_TYPE = BAD_PARAM, 0x0003_0007, "QUERY/SET_HCA_CAP of a capability type the part does not have or cannot set";
    CAP_VALUE = BAD_PARAM, 0x0003_0008, "SET_HCA_CAP: a settable field exceeds its maximum";
    TEARDOWN_PROFILE = BAD_PARAM, 0x0003_0009, "TEARDOWN_HCA profile other than 0 graceful / 1 force";
    EQ_SIZE = BAD_PARAM, 0x0003_000a, "CREATE_EQ log_eq_size above log_max_eq_sz";
    EQ_VECTOR = BAD_PARAM, 0x0003_000b, "CREATE_EQ intr (MSI-X vector) beyond the function's 64 vectors";
    EQ_PAGE_GEOMETRY = BAD_PARAM, 0x0003_000c, "CREATE_EQ log_page_size or page_offset the model does not support (4 KiB pages, offset 0)";
    PAS_MISALIGNED = BAD_PARAM, 0x0003_000d, "page list entry not 4 KiB aligned";
    EQ_EVENT_TYPE = BAD_PARAM, 0x0003_000e, "CREATE_EQ event bitmask words 1-3 (event types 64 and up) not zero: these parts have none";
    VPORT_MTU = BAD_PARAM, 0x0003_000f, "MODIFY_NIC_VPORT_CONTEXT MTU outside 68..=max MTU";
    VPORT_LIST = BAD_PARAM, 0x0003_0010, "MODIFY_NIC_VPORT_CONTEXT MAC list longer than log_max_current_uc/mc_list or of unknown type";
    REG_ID = BAD_PARAM, 0x0003_0011, "ACCESS_REGISTER of a register the model does not implement";
    REG_PORT = BAD_PARAM, 0x0003_0012, "ACCESS_REGISTER local_port other than 1";
    REG_VALUE = BAD_PARAM, 0x0003_0013, "ACCESS_REGISTER write of a value the register does not accept";
    PMTU_VALUE = BAD_PARAM, 0x0003_0014, "PMTU admin_mtu above max_mtu or below 68";
    CMD_LENGTHS = BAD_PARAM, 0x0003_0015, "MANAGE_PAGES / CREATE_EQ / MODIFY_NIC_VPORT_CONTEXT: input shorter than its own count of entries";
    VPORT_FIELD = BAD_PARAM, 0x0003_0016, "MODIFY_NIC_VPORT_CONTEXT field_select names a field that cannot be modified";
    PAGES_UNEXPECTED = BAD_PARAM, 0x0003_0017, "MANAGE_PAGES give with a page count of 0";
    REG_LENGTH = BAD_PARAM, 0x0003_0018, "ACCESS_REGISTER input too short for the register";
    CQ_SIZE = BAD_PARAM, 0x0003_0019, "CREATE_CQ log_cq_size above log_max_cq_sz";
    CQ_FEATURE = BAD_PARAM, 0x0003_001a, "CREATE_CQ asks for what the model does not offer: cqe_sz other than 64 bytes, collapsed CQ, compression, umem, apu, moderation or a cq_period_mode the part lacks";
    QUEUE_PAGE_GEOMETRY = BAD_PARAM, 0x0003_001b, "CQ/SQ/RQ log_page_size / log_wq_pg_sz or page_offset other than 4 KiB pages at offset 0";
    DBR_MISALIGNED = BAD_PARAM, 0x0003_001c, "doorbell record address not 8-byte aligned or zero";
    WQ_TYPE = BAD_PARAM, 0x0003_001d, "wq_type other than cyclic (or striding on an RQ), or a wq feature the model does not offer (signature, cd_slave, end padding on an SQ, umem, hairpin, header-data split)";
    WQ_GEOMETRY = BAD_PARAM, 0x0003_001e, "log_wq_sz above log_max_wq_sz, or log_wq_stride not 64 bytes (SQ) / 16..64 bytes (RQ)";
    QUEUE_CREATE_STATE = BAD_PARAM, 0x0003_001f, "CREATE_SQ/RQ with a state other than RST";
    QUEUE_FEATURE = BAD_PARAM, 0x0003_0020, "SQ/RQ/TIS/TIR context asks for a feature the model does not offer (rlky, hairpin, rate limits, LRO, RMP, TLS, lag, ...)";
    TIS_LIST = BAD_PARAM, 0x0003_0021, "CREATE_SQ tis_lst_sz above 1 (log_max_tis_per_sq 0), or a TIS number with tis_lst_sz 0";
    TIR_DISP_TYPE = BAD_PARAM, 0x0003_0022, "CREATE_TIR disp_type other than direct / indirect, or an indirect TIR with a hash function other than Toeplitz / inverted XOR8 (symmetric: Toeplitz only)";
    FLOW_TABLE_TYPE = BAD_PARAM, 0x0003_0023, "flow table command for a table type other than NIC_RX, or for another vport";
    FLOW_TABLE_PARAM = BAD_PARAM, 0x0003_0024, "CREATE/MODIFY_FLOW_TABLE level, log_size, miss action or field select the model does not accept (a miss table must be at a deeper level)";
    FLOW_GROUP_RANGE = BAD_PARAM, 0x0003_0025, "CREATE_FLOW_GROUP index range empty, beyond the table or overlapping another group";
    FLOW_MATCH_CRITERIA = BAD_PARAM, 0x0003_0026, "CREATE_FLOW_GROUP match criteria outside the outer fte_match_set_lyr_2_4 (misc, inner and later parameter sets), or its l4_type / ipv4_ihl";
    FLOW_INDEX = BAD_PARAM, 0x0003_0027, "SET_FLOW_TABLE_ENTRY flow_index outside its group";
    FLOW_ACTION = BAD_PARAM, 0x0003_0028, "SET_FLOW_TABLE_ENTRY action other than FWD_DEST (1..32 TIR / deeper-table destinations) or DROP (none), optionally with COUNT (1..8 counters)";
    FLOW_MATCH_VALUE = BAD_PARAM, 0x0003_0029, "SET_FLOW_TABLE_ENTRY match value with bits outside the group's criteria, or a value another entry of the group has";
    CQ_MODIFY_FIELD = BAD_PARAM, 0x0003_002a, "MODIFY_CQ field_select bits other than period / count / c_eqn";
    QUEUE_MODIFY_FIELD = BAD_PARAM, 0x0003_002b, "MODIFY_SQ/RQ modify_bitmask names a field that cannot be modified";
    FLOW_COUNTER_BULK = BAD_PARAM, 0x0003_002c, "ALLOC_FLOW_COUNTER bulk allocation (not offered: one counter per command)";
    RQT_SIZE = BAD_PARAM, 0x0003_002d, "CREATE/MODIFY_RQT rqt_actual_size 0 or above rqt_max_size, rqt_max_size above 1 << log_max_rqt_size, or a list type other than RQs";
    RQT_MODIFY_FIELD = BAD_PARAM, 0x0003_002e, "MODIFY_RQT bitmask other than rqn_list";
    TIR_HASH_FIELDS = BAD_PARAM, 0x0003_002f, "indirect TIR hash field selection the model does not offer (inner headers, L4 ports without addresses, IPsec SPI with ports)";
    WQE_STRIDES = BAD_PARAM, 0x0003_0030, "striding RQ on a part without striding_rq, or stride count / size outside the part's range";
    MKEY_FEATURE = BAD_PARAM, 0x0003_0031, "CREATE/QUERY_MKEY asks for what the model does not offer: an access mode other than PA, UMR or free mkeys, signature, user memory, relaxed ordering, a QP binding (qpn other than 0xffffff), page access";
    MKEY_RANGE = BAD_PARAM, 0x0003_0032, "CREATE_MKEY without length64 and with a zero or wrapping start_addr / len";
    TIR_MODIFY_FIELD = BAD_PARAM, 0x0003_0033, "MODIFY_TIR bitmask empty or naming a field that cannot be modified (hashing of a direct TIR)";
    NOT_ENABLED = BAD_SYS_STATE, 0x0004_0001, "any command but ENABLE_HCA before ENABLE_HCA (or after DISABLE_HCA)";
    NOT_INITIALIZED = BAD_SYS_STATE, 0x0004_0002, "command that needs INIT_HCA first";
    ALREADY_INITIALIZED = BAD_SYS_STATE, 0x0004_0003, "INIT_HCA / SET_ISSI / SET_HCA_CAP after INIT_HCA";
    ALREADY_ENABLED = BAD_SYS_STATE, 0x0004_0004, "ENABLE_HCA on an enabled function";
    UNKNOWN_UAR = BAD_RESOURCE, 0x0005_0001, "UAR index not allocated to this function";
    UNKNOWN_EQ = BAD_RESOURCE, 0x0005_0002, "EQ number not allocated";
    UNKNOWN_PD = BAD_RESOURCE, 0x0005_0003, "protection domain not allocated";
    UNKNOWN_TD = BAD_RESOURCE, 0x0005_0004, "transport domain not allocated";
    UNKNOWN_Q_COUNTER = BAD_RESOURCE, 0x0005_0005, "Q counter set not allocated";
    UNKNOWN_CQ = BAD_RESOURCE, 0x0005_0006, "CQ number not allocated";
    UNKNOWN_SQ = BAD_RESOURCE, 0x0005_0007, "SQ number not allocated";
    UNKNOWN_RQ = BAD_RESOURCE, 0x0005_0008, "RQ number not allocated";
    UNKNOWN_TIS = BAD_RESOURCE, 0x0005_0009, "TIS number not allocated";
    UNKNOWN_TIR = BAD_RESOURCE, 0x0005_000a, "TIR number not allocated";
    UNKNOWN_FLOW_TABLE = BAD_RESOURCE, 0x0005_000b, "flow table id not allocated";
    UNKNOWN_FLOW_GROUP = BAD_RESOURCE, 0x0005_000c, "flow group id not allocated in that table";
    UNKNOWN_FLOW_ENTRY = BAD_RESOURCE, 0x0005_000d, "DELETE_FLOW_TABLE_ENTRY of an index with no entry";
    UNKNOWN_FLOW_COUNTER = BAD_RESOURCE, 0x0005_000e, "flow counter id not allocated";
    UNKNOWN_RQT = BAD_RESOURCE, 0x0005_000f, "RQT number not allocated";
    UNKNOWN_MKEY = BAD_RESOURCE, 0x0005_0010, "DESTROY/QUERY_MKEY of an mkey index not allocated";
    UAR_IN_USE = RESOURCE_BUSY, 0x0006_0001, "DEALLOC_UAR of a UAR an EQ, CQ or SQ still uses";
    CQ_IN_USE = RESOURCE_BUSY, 0x0006_0002, "DESTROY_CQ of a CQ an SQ or RQ still uses";
    TIS_IN_USE = RESOURCE_BUSY, 0x0006_0003, "DESTROY_TIS of a TIS an SQ still uses";
    RQ_IN_USE = RESOURCE_BUSY, 0x0006_0004, "DESTROY_RQ of an RQ a TIR or an RQT still points at";
    TIR_IN_USE = RESOURCE_BUSY, 0x0006_0005, "DESTROY_TIR of a TIR a flow entry forwards to";
    FLOW_TABLE_IN_USE = RESOURCE_BUSY, 0x0006_0006, "DESTROY_FLOW_TABLE of a table that still has groups, or that an entry forwards to or a table misses to";
    FLOW_GROUP_IN_USE = RESOURCE_BUSY, 0x0006_0007, "DESTROY_FLOW_GROUP of a group that still has entries";
    FLOW_INDEX_USED = RESOURCE_BUSY, 0x0006_0008, "SET_FLOW_TABLE_ENTRY (op_mod 0, create) on an index that has an entry";
    EQ_IN_USE = RESOURCE_BUSY, 0x0006_0009, "DESTROY_EQ of an EQ a CQ still reports to";
    Q_COUNTER_IN_USE = RESOURCE_BUSY, 0x0006_000a, "DEALLOC_Q_COUNTER of a set an RQ still counts into";
    PD_IN_USE = RESOURCE_BUSY, 0x0006_000b, "DEALLOC_PD of a PD an SQ, RQ, TIS or mkey still uses";
    TD_IN_USE = RESOURCE_BUSY, 0x0006_000c, "DEALLOC_TRANSPORT_DOMAIN of a domain a TIS or TIR still uses";
    FLOW_COUNTER_IN_USE = RESOURCE_BUSY, 0x0006_000d, "DEALLOC_FLOW_COUNTER of a counter a flow entry still counts into";
    RQT_IN_USE = RESOURCE_BUSY, 0x0006_000e, "DESTROY_RQT of an RQT an indirect TIR uses";
    QUEUE_STATE = BAD_RES_STATE, 0x0009_0001, "MODIFY_SQ/RQ whose current state is not the object's state, or a transition the PRM does not allow (ERR->RDY, RST->ERR)";
    PAGES_EXCESS = EXCEED_LIM, 0x0008_0001, "MANAGE_PAGES give beyond the pages the model asked for plus slack";
    INIT_WITHOUT_PAGES = NO_RESOURCES, 0x000f_0001, "INIT_HCA while the model holds fewer pages than boot + init";
    NO_UAR = NO_RESOURCES, 0x000f_0002, "no free UAR index";
    NO_EQ = NO_RESOURCES, 0x000f_0003, "EQ limit (log_max_eq) reached";
    NO_PD = NO_RESOURCES, 0x000f_0004, "PD limit (log_max_pd) reached";
    NO_TD = NO_RESOURCES, 0x000f_0005, "transport domain limit reached";
    NO_Q_COUNTER = NO_RESOURCES, 0x000f_0006, "Q counter limit (max_qp_cnt) reached";
    NO_CQ = NO_RESOURCES, 0x000f_0007, "CQ limit (log_max_cq) reached";
    NO_SQ = NO_RESOURCES, 0x000f_0008, "SQ limit (log_max_sq) reached";
    NO_RQ = NO_RESOURCES, 0x000f_0009, "RQ limit (log_max_rq) reached";
    NO_TIS = NO_RESOURCES, 0x000f_000a, "TIS limit (log_max_tis) reached";
    NO_TIR = NO_RESOURCES, 0x000f_000b, "TIR limit (log_max_tir) reached";
    NO_FLOW_TABLE = NO_RESOURCES, 0x000f_000c, "flow table limit (log_max_ft_num) reached";
    NO_FLOW_COUNTER = NO_RESOURCES, 0x000f_000d, "flow counter limit (log_max_flow_counter) reached";
    NO_RQT = NO_RESOURCES, 0x000f_000e, "RQT limit (log_max_rqt) reached";
    NO_MKEY = NO_RESOURCES, 0x000f_000f, "mkey limit (log_max_mkey) reached";
    BAD_INPUT_LENGTH = BAD_INPUT_LEN, 0x0050_0001, "input shorter than the command's layout";
    BAD_OUTPUT_LENGTH = BAD_OUTPUT_LEN, 0x0051_0001, "output shorter than the command's layout";
    DMA_FAILED = INTERNAL_ERROR, 0x0001_0001, "a DMA the command needed failed (see the sanitizer)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syndromes_are_unique_and_carry_their_status() {
        for (i, a) in TABLE.iter().enumerate() {
            assert_eq!((a.2 >> 16) as u8, a.1, "{} encodes its status", a.0);
            for b in &TABLE[i + 1..] {
                assert_ne!(a.2, b.2, "{} and {} share a syndrome", a.0, b.0);
            }
        }
    }
}
