//! The initialization segment at BAR0 offset 0 (PRM "Initialization
//! Segment"; `struct mlx5_init_seg` in device.h, `mlx5_ifc_initial_seg_bits`
//! and `mlx5_ifc_health_buffer_bits` in mlx5_ifc.h).

use cxos_drivers::Mmio;

use crate::layout::Field;

/// fw_rev_minor `[31:16]`, fw_rev_major `[15:0]`.
pub const FW_REV: usize = 0x000;
pub const FW_REV_MINOR: Field = Field::new(0x000, 31, 16);
pub const FW_REV_MAJOR: Field = Field::new(0x000, 15, 0);
/// cmd_interface_rev `[31:16]`, fw_rev_subminor `[15:0]`.
pub const CMDIF_REV_FW_SUB: usize = 0x004;
pub const CMDIF_REV: Field = Field::new(0x004, 31, 16);
pub const FW_REV_SUBMINOR: Field = Field::new(0x004, 15, 0);
/// cmdq_phy_addr`[63:32]`.
pub const CMDQ_ADDR_H: usize = 0x010;
/// cmdq_phy_addr`[31:12]`, nic_interface `[9:8]`, log_cmdq_size `[7:4]`,
/// log_cmdq_stride `[3:0]`.
pub const CMDQ_ADDR_L_SZ: usize = 0x014;
pub const LOG_CMDQ_SIZE: Field = Field::new(0x014, 7, 4);
pub const LOG_CMDQ_STRIDE: Field = Field::new(0x014, 3, 0);
/// command_doorbell_vector: bit i rings command entry i.
pub const CMD_DBELL: usize = 0x018;
/// initializing `[31]`: 1 while firmware is not ready.
pub const INITIALIZING: usize = 0x1fc;
/// health_buffer (64 bytes).
pub const HEALTH: usize = 0x200;
/// Inside the health buffer (offsets relative to [`HEALTH`]).
pub const HEALTH_ASSERT_VAR: usize = 0x00;
pub const HEALTH_ASSERT_EXIT_PTR: usize = 0x20;
pub const HEALTH_ASSERT_CALLRA: usize = 0x24;
pub const HEALTH_FW_VER: usize = 0x30;
pub const HEALTH_HW_ID: usize = 0x34;
/// irisc_index `[31:24]`, synd `[23:16]`, ext_synd `[15:0]`.
pub const HEALTH_SYND_DW: usize = 0x3c;
pub const HEALTH_SYND: Field = Field::new(0x3c, 23, 16);
pub const HEALTH_EXT_SYND: Field = Field::new(0x3c, 15, 0);
pub const HEALTH_IRISC: Field = Field::new(0x3c, 31, 24);
/// cmd_exec_to and cmd_q_init_to (`default_timeout` values; see [`crate::cmdq`] for
/// how they are used).
pub const CMD_EXEC_TO: usize = 0xff8;
pub const CMD_Q_INIT_TO: usize = 0xffc;
/// health_syndrome `[31:24]`, health_counter `[23:0]`.
pub const HEALTH_COUNTER: usize = 0x1010;
pub const HEALTH_COUNTER_MASK: u32 = 0x00ff_ffff;
/// Bytes of BAR0 the driver reads in the initialization segment.
pub const LEN: usize = HEALTH_COUNTER + 4;

const _: () = assert!(HEALTH + HEALTH_SYND_DW + 4 == 0x240);
const _: () = assert!(CMD_EXEC_TO == 0x240 + 878 * 4);

/// Firmware version `major.minor.subminor`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FwVersion {
    pub major: u16,
    pub minor: u16,
    pub subminor: u16,
}

impl core::fmt::Display for FwVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.subminor)
    }
}

pub fn fw_version<M: Mmio>(p: &M) -> FwVersion {
    let rev = p.bar0_read_be32(FW_REV);
    let sub = p.bar0_read_be32(CMDIF_REV_FW_SUB);
    FwVersion {
        major: FW_REV_MAJOR.extract(rev) as u16,
        minor: FW_REV_MINOR.extract(rev) as u16,
        subminor: FW_REV_SUBMINOR.extract(sub) as u16,
    }
}

pub fn cmdif_rev<M: Mmio>(p: &M) -> u16 {
    CMDIF_REV.extract(p.bar0_read_be32(CMDIF_REV_FW_SUB)) as u16
}

pub fn initializing<M: Mmio>(p: &M) -> bool {
    p.bar0_read_be32(INITIALIZING) & (1 << 31) != 0
}

/// log2 of the number of command entries and of the entry stride.
pub fn cmdq_geometry<M: Mmio>(p: &M) -> (u8, u8) {
    let dw = p.bar0_read_be32(CMDQ_ADDR_L_SZ);
    (
        LOG_CMDQ_SIZE.extract(dw) as u8,
        LOG_CMDQ_STRIDE.extract(dw) as u8,
    )
}

/// The command queue address the device holds (0 after a reset).
pub fn cmdq_addr<M: Mmio>(p: &M) -> u64 {
    ((p.bar0_read_be32(CMDQ_ADDR_H) as u64) << 32)
        | (p.bar0_read_be32(CMDQ_ADDR_L_SZ) & 0xffff_f000) as u64
}

/// Program the command queue address: high word first, then the low word
/// (writing the low word starts firmware initialization). nic_interface 0
/// (full driver).
pub fn set_cmdq_addr<M: Mmio>(p: &M, addr: u64) {
    // The (zeroed) entry page is the device's from here on.
    p.barrier_before_mmio_doorbell();
    p.bar0_write_be32(CMDQ_ADDR_H, (addr >> 32) as u32);
    p.bar0_write_be32(CMDQ_ADDR_L_SZ, addr as u32 & 0xffff_f000);
}

/// Ring the command doorbell of `slot`: the entry (ownership bit last)
/// reaches the device before the BAR write.
pub fn ring_cmd_doorbell<M: Mmio>(p: &M, slot: usize) {
    p.barrier_before_mmio_doorbell();
    p.bar0_write_be32(CMD_DBELL, 1 << slot);
}

pub fn health_counter<M: Mmio>(p: &M) -> u32 {
    p.bar0_read_be32(HEALTH_COUNTER) & HEALTH_COUNTER_MASK
}

/// The command timeout the device advertises, a `default_timeout`
/// (see [`crate::cmdq::default_timeout_ms`]; 0: none).
pub fn cmd_exec_to<M: Mmio>(p: &M) -> u32 {
    p.bar0_read_be32(CMD_EXEC_TO)
}

/// How long firmware may take to initialize the command queue, a
/// `default_timeout` (0: not advertised).
pub fn cmd_q_init_to<M: Mmio>(p: &M) -> u32 {
    p.bar0_read_be32(CMD_Q_INIT_TO)
}

/// The health buffer's syndrome fields.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HealthBuffer {
    pub assert_var: [u32; 6],
    pub assert_exit_ptr: u32,
    pub assert_callra: u32,
    pub fw_ver: u32,
    pub hw_id: u32,
    pub irisc_index: u8,
    pub synd: u8,
    pub ext_synd: u16,
}

pub fn health_syndrome<M: Mmio>(p: &M) -> u8 {
    HEALTH_SYND.extract(p.bar0_read_be32(HEALTH + HEALTH_SYND_DW)) as u8
}

pub fn health_buffer<M: Mmio>(p: &M) -> HealthBuffer {
    let mut assert_var = [0u32; 6];
    for (i, v) in assert_var.iter_mut().enumerate() {
        *v = p.bar0_read_be32(HEALTH + HEALTH_ASSERT_VAR + 4 * i);
    }
    let dw = p.bar0_read_be32(HEALTH + HEALTH_SYND_DW);
    HealthBuffer {
        assert_var,
        assert_exit_ptr: p.bar0_read_be32(HEALTH + HEALTH_ASSERT_EXIT_PTR),
        assert_callra: p.bar0_read_be32(HEALTH + HEALTH_ASSERT_CALLRA),
        fw_ver: p.bar0_read_be32(HEALTH + HEALTH_FW_VER),
        hw_id: p.bar0_read_be32(HEALTH + HEALTH_HW_ID),
        irisc_index: HEALTH_IRISC.extract(dw) as u8,
        synd: HEALTH_SYND.extract(dw) as u8,
        ext_synd: HEALTH_EXT_SYND.extract(dw) as u16,
    }
}

/// Health syndrome names (`MLX5_INITIAL_SEG_HEALTH_SYNDROME_*`, mlx5_ifc.h).
pub fn health_syndrome_name(synd: u8) -> &'static str {
    match synd {
        0x01 => "firmware internal error",
        0x07 => "dead IRISC",
        0x08 => "hardware fatal error",
        0x09 => "firmware CRC error",
        0x0a => "ICM fetch PCI error",
        0x0b => "ICM page error",
        0x0c => "asynchronous EQ buffer overrun",
        0x0d => "EQ in error",
        0x0e => "EQ invalid",
        0x0f => "FFSER error",
        0x10 => "high temperature",
        0x12 => "ICM PCI poisoned",
        _ => "unknown syndrome",
    }
}
