//! The initialization segment at BAR0 offset 0 (`struct mlx5_init_seg`,
//! device.h; PRM "Initialization Segment").
#![deny(unsafe_code)]

use std::time::{Duration, Instant};

/// Register offsets (`struct mlx5_init_seg`, device.h).
pub mod reg {
    /// fw_rev_minor [31:16], fw_rev_major [15:0].
    pub const FW_REV: usize = 0x000;
    /// cmdif_rev [31:16], fw_rev_subminor [15:0].
    pub const CMDIF_REV_FW_SUB: usize = 0x004;
    pub const CMDQ_ADDR_H: usize = 0x010;
    /// cmdq_phy_addr [31:12], nic_interface [9:8], log_cmdq_size [7:4],
    /// log_cmdq_stride [3:0].
    pub const CMDQ_ADDR_L_SZ: usize = 0x014;
    pub const CMD_DBELL: usize = 0x018;
    /// Bit 31: initializing.
    pub const INITIALIZING: usize = 0x1fc;
    /// `struct health_buffer` (device.h) starts here.
    pub const HEALTH: usize = 0x200;
    /// health_buffer.fw_ver.
    pub const HEALTH_FW_VER: usize = 0x230;
    /// health_buffer: irisc_index (0x23c), synd (0x23d), ext_synd (0x23e).
    pub const HEALTH_SYND_DWORD: usize = 0x23c;
    pub const CMD_EXEC_TO: usize = 0xff8;
    pub const CMD_Q_INIT_TO: usize = 0xffc;
    pub const INTERNAL_TIMER_H: usize = 0x1000;
    pub const INTERNAL_TIMER_L: usize = 0x1004;
    pub const HEALTH_COUNTER: usize = 0x1010;
    /// End of the segment as the model decodes it.
    pub const END: usize = 0x2000;
}

/// The command interface revision this model speaks.
pub const CMDIF_REV: u32 = 5;
/// log2 of the command queue entries the device offers (32).
pub const LOG_CMDQ_SIZE: u32 = 5;
/// log2 of the command queue entry stride (64 bytes).
pub const LOG_CMDQ_STRIDE: u32 = 6;
/// Health counter period: it moves every 100 µs, well inside the contract's
/// "at least once per millisecond".
const HEALTH_TICK_NS: u128 = 100_000;
/// How long firmware boots after a reset before it clears `initializing`
/// (unless the front end configures another delay). Real parts take
/// hundreds of milliseconds; the model keeps tests fast.
pub const DEFAULT_FW_BOOT_DELAY: Duration = Duration::from_millis(5);

/// What a write to the segment asks the device to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitSegEvent {
    None,
    /// The command queue address is complete (low word written).
    CmdqAddress {
        addr: u64,
    },
    /// Doorbell for these command slots.
    Doorbell(u32),
    /// A command queue address write while `initializing`: dropped.
    NotReady,
}

/// The segment. `initializing` is firmware's: set by a reset, cleared by
/// firmware itself once it has booted (`fw_boot_delay` later), whatever the
/// driver does meanwhile (PRM "HCA Driver Start-up": the driver waits for
/// it to clear before it writes the command queue address, and again
/// after). Until then firmware does not take configuration: writes to the
/// command queue address are dropped.
#[derive(Debug)]
pub struct InitSeg {
    fw: (u16, u16, u16),
    cmdq_addr_h: u32,
    cmdq_addr_l: u32,
    pub nic_interface: u8,
    start: Instant,
    fw_boot_delay: Duration,
    /// When firmware finishes booting after the last reset.
    ready_at: Instant,
    /// A fault holds `initializing` set.
    pub stuck: bool,
}

impl InitSeg {
    pub fn new(fw: (u16, u16, u16)) -> InitSeg {
        let now = Instant::now();
        InitSeg {
            fw,
            cmdq_addr_h: 0,
            cmdq_addr_l: 0,
            nic_interface: 0,
            start: now,
            fw_boot_delay: DEFAULT_FW_BOOT_DELAY,
            ready_at: now + DEFAULT_FW_BOOT_DELAY,
            stuck: false,
        }
    }

    /// Back to the state after a function reset: firmware boots again.
    pub fn reset(&mut self) {
        let (start, delay, stuck) = (self.start, self.fw_boot_delay, self.stuck);
        *self = InitSeg::new(self.fw);
        self.start = start;
        self.fw_boot_delay = delay;
        self.ready_at = Instant::now() + delay;
        self.stuck = stuck;
    }

    /// How long firmware boots after a reset; applies from the next reset
    /// (and to the boot in progress, counted from its start).
    pub fn set_fw_boot_delay(&mut self, delay: Duration) {
        self.ready_at = self.ready_at - self.fw_boot_delay + delay;
        self.fw_boot_delay = delay;
    }

    pub fn fw_boot_delay(&self) -> Duration {
        self.fw_boot_delay
    }

    /// Init segment 0x1fc bit 31.
    pub fn initializing(&self) -> bool {
        self.stuck || Instant::now() < self.ready_at
    }

    /// Free-running device timer, in ns since the model was built.
    pub fn timer_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn health_counter_running(&self) -> u32 {
        (self.start.elapsed().as_nanos() / HEALTH_TICK_NS) as u32
    }

    /// 32-bit read. `frozen`/`synd` come from the fault state.
    pub fn read(&self, off: usize, frozen: Option<u32>, synd: u8) -> u32 {
        match off {
            reg::FW_REV => ((self.fw.1 as u32) << 16) | self.fw.0 as u32,
            reg::CMDIF_REV_FW_SUB => (CMDIF_REV << 16) | self.fw.2 as u32,
            reg::CMDQ_ADDR_H => self.cmdq_addr_h,
            reg::CMDQ_ADDR_L_SZ => {
                (self.cmdq_addr_l & 0xffff_f000)
                    | ((self.nic_interface as u32) << 8)
                    | (LOG_CMDQ_SIZE << 4)
                    | LOG_CMDQ_STRIDE
            }
            reg::INITIALIZING => (self.initializing() as u32) << 31,
            reg::HEALTH_FW_VER => {
                ((self.fw.0 as u32) << 24) | ((self.fw.1 as u32 & 0xff) << 16) | self.fw.2 as u32
            }
            reg::HEALTH_SYND_DWORD => (synd as u32) << 16,
            // Timeouts as `default_timeout` fields: to_multiplier [31:29]
            // (0 ms, 1 s, 2 min, 3 h), to_value [19:0]. The model reports
            // milliseconds: command execution 60 s, queue init 10 s. Their
            // presence also says the DTOR register is there (Linux reads it
            // when cmd_q_init_to is not 0).
            reg::CMD_EXEC_TO => 60_000,
            reg::CMD_Q_INIT_TO => 10_000,
            reg::INTERNAL_TIMER_H => (self.timer_ns() >> 32) as u32,
            reg::INTERNAL_TIMER_L => self.timer_ns() as u32,
            reg::HEALTH_COUNTER => frozen.unwrap_or_else(|| self.health_counter_running()),
            _ => 0,
        }
    }

    /// 32-bit write; read-only registers ignore writes as on hardware, and
    /// so does the command queue address while firmware is initializing.
    pub fn write(&mut self, off: usize, value: u32) -> InitSegEvent {
        match off {
            reg::CMDQ_ADDR_H | reg::CMDQ_ADDR_L_SZ if self.initializing() => InitSegEvent::NotReady,
            reg::CMDQ_ADDR_H => {
                self.cmdq_addr_h = value;
                InitSegEvent::None
            }
            reg::CMDQ_ADDR_L_SZ => {
                self.cmdq_addr_l = value & 0xffff_f000;
                self.nic_interface = ((value >> 8) & 3) as u8;
                InitSegEvent::CmdqAddress {
                    addr: ((self.cmdq_addr_h as u64) << 32) | self.cmdq_addr_l as u64,
                }
            }
            reg::CMD_DBELL => InitSegEvent::Doorbell(value),
            _ => InitSegEvent::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_sit_where_device_h_puts_them() {
        let mut s = InitSeg::new((16, 35, 2000));
        s.set_fw_boot_delay(Duration::ZERO);
        // fw_rev: minor 35 (0x23) in [31:16], major 16 in [15:0].
        assert_eq!(s.read(0x000, None, 0), 0x0023_0010);
        // cmdif_rev 5 in [31:16], subminor 2000 (0x7d0).
        assert_eq!(s.read(0x004, None, 0), 0x0005_07d0);
        assert_eq!(s.read(0x1fc, None, 0), 0);
        assert_eq!(s.read(0x014, None, 0) & 0xff, 0x56);
        assert_eq!(s.write(0x010, 0x1), InitSegEvent::None);
        assert_eq!(
            s.write(0x014, 0x2345_6000),
            InitSegEvent::CmdqAddress {
                addr: 0x1_2345_6000
            }
        );
        assert_eq!(s.write(0x018, 0b101), InitSegEvent::Doorbell(0b101));
        // synd is byte 0x23d: bits 23:16 of the dword at 0x23c.
        assert_eq!(s.read(0x23c, None, 0x7), 0x0007_0000);
        assert_eq!(s.read(0x1010, Some(42), 0), 42);
    }

    #[test]
    fn initializing_clears_by_itself_after_the_boot_delay() {
        let mut s = InitSeg::new((16, 35, 2000));
        s.set_fw_boot_delay(Duration::from_millis(30));
        // 0x1fc bit 31 set right after reset; the address is not taken.
        assert_eq!(s.read(0x1fc, None, 0), 0x8000_0000);
        assert_eq!(s.write(0x010, 0x1), InitSegEvent::NotReady);
        assert_eq!(s.write(0x014, 0x2345_6000), InitSegEvent::NotReady);
        assert_eq!(s.read(0x014, None, 0) & 0xffff_f000, 0);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(s.read(0x1fc, None, 0), 0, "clears with no driver action");
        assert_eq!(
            s.write(0x014, 0x2345_6000),
            InitSegEvent::CmdqAddress { addr: 0x2345_6000 }
        );
        // A reset boots firmware again; a fault holds the bit set.
        s.reset();
        assert_eq!(s.read(0x1fc, None, 0), 0x8000_0000);
        s.set_fw_boot_delay(Duration::ZERO);
        assert_eq!(s.read(0x1fc, None, 0), 0);
        s.stuck = true;
        assert_eq!(s.read(0x1fc, None, 0), 0x8000_0000);
    }
}
