//! One PCI function of the adapter model: config space, BAR0 (init segment
//! and UAR pages), the command queue and every object the commands create.
//! Front ends (the in-process harness, later vfio-user) call in here; the
//! model reaches driver memory only through [`Bus`] and signals MSI-X only
//! through [`Interrupts`].
#![deny(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cmd;
use crate::cmd::{
    caps::Caps, eq::Eqs, hca::Hca, mkey::Mkeys, pages::Pages, pd::Domains, q_counter::QCounters,
    uar::Uars, vport::Vport,
};
use crate::cmdif::{self, Undeliverable, entry};
use crate::dma::{DmaSpace, Interrupts};
use crate::faults::{CommandFault, Fault, Faults};
use crate::init_seg::{self, InitSeg, InitSegEvent};
use crate::pci_config::{ConfigEvent, PciConfig};
use crate::personality::Personality;
use crate::phys_port::PhysPort;
use crate::sanitizer::{Bus, Purpose, Revoked, Violation};
use crate::syndrome::{delivery, status};

/// Bytes of BAR0 the init segment decodes; UAR pages follow the MSI-X pages.
pub const UAR_PAGE_SIZE: usize = 4096;

/// The model of one function.
pub struct Function {
    pub personality: Personality,
    /// Permanent MAC of the port (kept across teardown and reset).
    pub mac: [u8; 6],
    /// The board this function's port is on (shared with its siblings).
    pub identity: crate::adapter::Identity,
    pub config: PciConfig,
    pub iseg: InitSeg,
    pub bus: Bus,
    pub irq: Arc<dyn Interrupts>,
    pub faults: Faults,
    pub caps: Caps,
    pub hca: Hca,
    pub pages: Pages,
    pub uars: Uars,
    pub eqs: Eqs,
    pub domains: Domains,
    pub mkeys: Mkeys,
    pub q_counters: QCounters,
    pub vport: Vport,
    pub phys_port: PhysPort,
    /// Data path objects and the port's wire side.
    pub nic: crate::datapath::Nic,
    cmdq: CmdQueue,
    pub commands_executed: u64,
    /// MCIA accesses served (the EEPROM-read figure counts them).
    pub module_reads: u64,
    /// A hand on the cage: when `module_reads` reaches this count (after
    /// that read is answered), the module is pulled (as `remove_module`),
    /// so a test can take it out between two MCIA reads of one EEPROM read.
    pub pull_module_at_read: Option<u64>,
    /// HOST_ENDIANNESS register `he` (atomic response byte order).
    pub host_endianness: u8,
    /// Objects alive when the function was last torn down.
    pub left_at_teardown: usize,
    /// Where PPCNT's counters were last cleared.
    pub ppcnt_base: crate::cmd::reg::ppcnt::Baseline,
    /// When the function was last reset (the trace's time base).
    reset_at: Instant,
    /// `--trace-commands`: every executed command, one line each.
    trace: Option<crate::trace::Trace>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("personality", &self.personality)
            .field("commands_executed", &self.commands_executed)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct CmdQueue {
    addr: Option<u64>,
    /// Doorbell bits not yet processed.
    pending: u32,
    /// Slots whose command was accepted and will never complete (fault).
    stuck: u32,
    /// Slots rung while a command-completion EQ existed.
    want_eqe: u32,
    input: Vec<u8>,
    output: Vec<u8>,
}

impl Function {
    pub fn new(p: Personality, dma: Arc<dyn DmaSpace>, irq: Arc<dyn Interrupts>) -> Function {
        Function::with_mac(p, crate::cmd::vport::default_mac(p), dma, irq)
    }

    pub fn with_mac(
        p: Personality,
        mac: [u8; 6],
        dma: Arc<dyn DmaSpace>,
        irq: Arc<dyn Interrupts>,
    ) -> Function {
        Function {
            personality: p,
            mac,
            identity: crate::adapter::Identity::new(p, 0, 1),
            config: PciConfig::new(p),
            iseg: InitSeg::new(p.fw_version()),
            bus: Bus::new(dma),
            irq,
            faults: Faults::default(),
            caps: Caps::new(p),
            hca: Hca::default(),
            pages: Pages::new(p),
            uars: Uars::default(),
            eqs: Eqs::default(),
            domains: Domains::default(),
            mkeys: Mkeys::default(),
            q_counters: QCounters::default(),
            vport: Vport::new(p, mac),
            phys_port: PhysPort::new(p),
            nic: crate::datapath::Nic::default(),
            cmdq: CmdQueue {
                input: Vec::with_capacity(4096),
                output: Vec::with_capacity(4096),
                ..CmdQueue::default()
            },
            commands_executed: 0,
            module_reads: 0,
            pull_module_at_read: None,
            host_endianness: 0,
            ppcnt_base: Default::default(),
            left_at_teardown: 0,
            reset_at: Instant::now(),
            trace: None,
        }
    }

    /// Record how many objects the driver left for teardown to destroy
    /// (TEARDOWN_HCA, DISABLE_HCA, reset): a driver that cleans up leaves 0.
    pub fn note_leftovers(&mut self) {
        let left: usize = self.objects().iter().map(|(_, n)| n).sum();
        if left > 0 || self.hca.initialized {
            self.left_at_teardown = left;
        }
    }

    /// Trace every command from now on (see [`crate::trace`]).
    pub fn set_trace(&mut self, trace: crate::trace::Trace) {
        self.trace = Some(trace);
    }

    /// How long firmware boots after a reset before `initializing` clears.
    pub fn set_fw_boot_delay(&mut self, delay: Duration) {
        self.iseg.set_fw_boot_delay(delay);
    }

    /// Time since the last function reset (or since the model was built).
    pub fn since_reset(&self) -> Duration {
        self.reset_at.elapsed()
    }

    /// Function reset (FLR): everything the driver built is gone, the
    /// command queue address is forgotten and `initializing` is set again.
    /// Firmware restarts: an injected health syndrome or stopped health
    /// counter is gone with it (armed command faults stay: they are the
    /// test's, not the function's).
    pub fn reset(&mut self) {
        self.end_function(false);
        self.faults.clear_health();
        self.bus
            .san
            .revoke_all(Purpose::CmdEntry, Revoked::Disabled);
        self.cmdq = CmdQueue {
            input: std::mem::take(&mut self.cmdq.input),
            output: std::mem::take(&mut self.cmdq.output),
            ..CmdQueue::default()
        };
        self.iseg.reset();
        self.reset_at = Instant::now();
        if let Some(t) = self.trace.as_mut() {
            t.reset();
        }
        self.config.reset();
        self.hca = Hca::default();
        // Back to the defaults, a function without BlueFlame staying one.
        self.caps.reset_current();
    }

    /// DISABLE_HCA (`disable`) or reset: tear down every object and drop
    /// the pages (see [`cmd::pages::release_all`]).
    pub fn end_function(&mut self, disable: bool) {
        self.note_leftovers();
        cmd::hca::teardown_objects(self);
        cmd::pages::release_all(self, disable);
        self.hca.enabled = false;
        self.hca.initialized = false;
    }

    // ---- config space ----

    pub fn config_read(&self, off: u16, size: usize) -> u32 {
        self.config.read(off, size)
    }

    pub fn config_write(&mut self, off: u16, size: usize, value: u32) {
        if self.config.write(off, size, value) == ConfigEvent::FunctionReset {
            self.reset();
        }
    }

    // ---- BAR0 ----

    /// 32-bit BAR0 read (big-endian register value).
    pub fn bar_read32(&self, off: usize) -> u32 {
        if off < init_seg::reg::END {
            self.iseg
                .read(off, self.faults.health_frozen, self.faults.health_syndrome)
        } else {
            // UAR pages are write-only doorbells; reads return zero.
            0
        }
    }

    /// 32-bit BAR0 write. Returns true when command work is pending (the
    /// front end then runs [`Function::process`], inline or on its thread).
    pub fn bar_write32(&mut self, off: usize, value: u32) -> bool {
        if off < init_seg::reg::END {
            match self.iseg.write(off, value) {
                InitSegEvent::None => {}
                InitSegEvent::CmdqAddress { addr } => self.set_cmdq(addr),
                InitSegEvent::Doorbell(bits) => return self.ring(bits),
                InitSegEvent::NotReady => {
                    log::debug!(target: "mlx5_sim::cmd", "command queue address written while initializing: dropped");
                }
            }
            return false;
        }
        let page = off / UAR_PAGE_SIZE;
        let within = off % UAR_PAGE_SIZE;
        cmd::uar::doorbell32(self, page as u32, within, value)
    }

    /// 64-bit BAR0 write: the high dword lands at `off`, the low at `off + 4`
    /// (big-endian), as two halves of one posted write.
    pub fn bar_write64(&mut self, off: usize, value: u64) -> bool {
        let a = self.bar_write32(off, (value >> 32) as u32);
        let b = self.bar_write32(off + 4, value as u32);
        a || b
    }

    pub fn bar_read64(&self, off: usize) -> u64 {
        ((self.bar_read32(off) as u64) << 32) | self.bar_read32(off + 4) as u64
    }

    fn set_cmdq(&mut self, addr: u64) {
        self.bus
            .san
            .revoke_all(Purpose::CmdEntry, Revoked::TakenBack);
        let len = (entry::SIZE << init_seg::LOG_CMDQ_SIZE) as u64;
        self.bus.san.grant(addr, len, Purpose::CmdEntry);
        self.cmdq.addr = Some(addr);
    }

    fn ring(&mut self, bits: u32) -> bool {
        let slots = if init_seg::LOG_CMDQ_SIZE >= 5 {
            u32::MAX
        } else {
            (1u32 << (1 << init_seg::LOG_CMDQ_SIZE)) - 1
        };
        let bits = bits & slots & !self.cmdq.stuck;
        if self.cmdq.addr.is_none() || self.iseg.initializing() || bits == 0 {
            return false;
        }
        if self.eqs.subscriber(crate::cmd::eq::event::CMD).is_some() {
            self.cmdq.want_eqe |= bits;
        }
        self.cmdq.pending |= bits;
        true
    }

    /// Whether command or transmit work is waiting for [`Function::process`].
    pub fn has_work(&self) -> bool {
        self.cmdq.pending != 0 || self.nic.has_work()
    }

    /// Execute every rung command slot, lowest first, then pending transmit work.
    pub fn process(&mut self) {
        self.process_commands();
        crate::datapath::run(self);
        self.cq_timers();
    }

    /// Raise the completion events whose CQ moderation period has run out
    /// (the model's loops call it each iteration).
    pub fn cq_timers(&mut self) {
        crate::cmd::cq::tick(self, Instant::now());
    }

    /// When the next CQ moderation period runs out: the model's loop
    /// sleeps no longer than that.
    pub fn next_cq_timer(&self) -> Option<Instant> {
        self.nic.cqs.next_due()
    }

    /// A CQ moderation period started since the last call (on a thread
    /// other than the model's: receive): the model's loop must be woken.
    pub fn take_new_cq_timer(&mut self) -> bool {
        self.nic.cqs.take_new_timer()
    }

    /// A frame arrives at the port from the wire.
    pub fn receive(&mut self, frame: &[u8]) {
        crate::datapath::rx::receive(self, frame);
    }

    /// Frames that arrive together: a CQ created with `cqe_comp_en` writes
    /// their CQEs as compressed sessions when the burst ends
    /// (`crate::datapath::mini_cqe`).
    pub fn receive_burst<'a>(&mut self, frames: impl IntoIterator<Item = &'a [u8]>) {
        self.nic.cqs.batching = true;
        for f in frames {
            crate::datapath::rx::receive(self, f);
        }
        self.nic.cqs.batching = false;
        crate::datapath::mini_cqe::flush_all(self);
    }

    /// A frame from a wire that may have more behind it: as in
    /// [`Function::receive_burst`], compressing CQs hold its CQE until
    /// [`Function::end_burst`] (the vfio-user server's model thread ends
    /// the burst when it next runs, so the frames a reader delivered in
    /// the meantime share a session).
    /// True when CQEs are held (the burst must be ended).
    pub fn receive_held(&mut self, frame: &[u8]) -> bool {
        self.nic.cqs.batching = true;
        crate::datapath::rx::receive(self, frame);
        self.nic.cqs.with_session().next().is_some()
    }

    /// End a burst [`Function::receive_held`] began: held CQEs are written.
    pub fn end_burst(&mut self) {
        if self.nic.cqs.batching {
            self.nic.cqs.batching = false;
            crate::datapath::mini_cqe::flush_all(self);
        }
    }

    fn process_commands(&mut self) {
        let mut completed_eqe = 0u32;
        while self.cmdq.pending != 0 {
            let slot = self.cmdq.pending.trailing_zeros();
            self.cmdq.pending &= !(1 << slot);
            if self.run_slot(slot) && self.cmdq.want_eqe & (1 << slot) != 0 {
                completed_eqe |= 1 << slot;
            }
            self.cmdq.want_eqe &= !(1 << slot);
        }
        if completed_eqe != 0 {
            let mut data = [0u8; 28];
            data[0..4].copy_from_slice(&completed_eqe.to_be_bytes());
            cmd::eq::raise_event(self, cmd::eq::event::CMD, 0, &data);
        }
    }

    /// Run one slot; true when it completed (ownership returned).
    fn run_slot(&mut self, slot: u32) -> bool {
        let Some(base) = self.cmdq.addr else {
            return false;
        };
        let at = base + (slot as u64) * entry::SIZE as u64;
        let mut e = [0u8; 64];
        if self.bus.read(at, &mut e, Purpose::CmdEntry).is_err() {
            return false;
        }
        if e[entry::STATUS_OWN] & 1 == 0 {
            // Rung without handing the entry to hardware: nothing to do.
            log::debug!(target: "mlx5_sim::cmd", "slot {slot} rung while software-owned");
            return false;
        }
        let mut input = std::mem::take(&mut self.cmdq.input);
        let mut output = std::mem::take(&mut self.cmdq.output);
        let done = self.deliver(at, &mut e, &mut input, &mut output);
        self.cmdq.input = input;
        self.cmdq.output = output;
        if !done {
            self.cmdq.stuck |= 1 << slot;
        }
        done
    }

    /// Deliver and execute the command of entry `e` at `at`; false when an
    /// injected fault keeps it from completing.
    fn deliver(
        &mut self,
        at: u64,
        e: &mut [u8; 64],
        input: &mut Vec<u8>,
        output: &mut Vec<u8>,
    ) -> bool {
        let g = match cmdif::gather(&mut self.bus, e, input) {
            Ok(g) => g,
            Err(Undeliverable::Status(ds)) => {
                log::debug!(target: "mlx5_sim::cmd", "delivery status {ds:#x}");
                self.complete(at, e, ds);
                return true;
            }
            Err(Undeliverable::Dma(_)) => {
                self.complete(at, e, delivery::FW_ERROR);
                return true;
            }
        };
        output.clear();
        output.resize(g.outlen, 0);
        let opcode = crate::bits::be16(input, 0);
        let op_mod = crate::bits::be16(input, 6);
        let injected = if self.faults.any_command_fault() {
            self.faults.take_command(opcode)
        } else {
            None
        };
        let result = match injected {
            Some(CommandFault::NoCompletion) => return false,
            Some(CommandFault::Status { status, syndrome }) => {
                Err(crate::syndrome::CmdError { status, syndrome })
            }
            None => cmd::execute(self, input, output),
        };
        self.commands_executed += 1;
        let (st, syn) = match result {
            Ok(()) => (status::OK, 0),
            Err(err) => {
                log::debug!(target: "mlx5_sim::cmd", "opcode {opcode:#x} op_mod {op_mod:#x}: status {:#x} syndrome {:#x}", err.status, err.syndrome);
                output.fill(0);
                (err.status, err.syndrome)
            }
        };
        if let Some(trace) = self.trace.as_mut() {
            trace.command(
                &crate::trace::Record {
                    opcode,
                    op_mod,
                    inlen: input.len(),
                    outlen: g.outlen,
                    status: st,
                    syndrome: syn,
                    reg: crate::trace::Record::register_of(opcode, input),
                    since_reset: self.reset_at.elapsed(),
                },
                input,
            );
        }
        if st == status::OK && output.len() > 8 {
            self.faults.corrupt_output(&mut output[8..]);
        }
        output[0] = st;
        output[4..8].copy_from_slice(&syn.to_be_bytes());
        cmd::pages::log_command(self, opcode, op_mod, st);
        if cmdif::scatter(&mut self.bus, e, &g, output).is_err() {
            self.complete(at, e, delivery::FW_ERROR);
            return true;
        }
        self.complete(at, e, delivery::OK);
        true
    }

    /// Write the output inline part and the status byte (ownership to software) last.
    fn complete(&mut self, at: u64, e: &mut [u8; 64], delivery_status: u8) {
        e[entry::STATUS_OWN] = delivery_status << 1;
        // The output inline area and the status byte are one 32-byte write
        // of 0x20..0x40; the ownership byte is written after it so a poller
        // never sees ownership before the output.
        let _ = self.bus.write(at + 0x20, &e[0x20..0x3f], Purpose::CmdEntry);
        let _ = self.bus.write(at + 0x3f, &e[0x3f..0x40], Purpose::CmdEntry);
    }

    // ---- test and control API ----

    pub fn inject(&mut self, f: Fault) {
        if let Fault::Queue(q) = f {
            if let Err(e) = crate::queue_faults::inject(self, q) {
                log::warn!(target: "mlx5_sim::faults", "{e}");
            }
            return;
        }
        if f == Fault::InternalError {
            // No data (device.h's event has none).
            if !cmd::eq::raise_event(self, cmd::eq::event::INTERNAL_ERROR, 0, &[0; 28]) {
                log::warn!(target: "mlx5_sim::faults", "internal error: no EQ takes the event");
            }
            return;
        }
        let now = self.iseg.health_counter_running();
        self.faults.inject(f, now);
        if matches!(f, Fault::InitializingStuck) {
            self.iseg.stuck = true;
        }
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
        self.iseg.stuck = false;
    }

    /// Every object the driver holds, by kind (`objects` on the control
    /// socket).
    pub fn objects(&self) -> [(&'static str, usize); 14] {
        let (pds, tds) = self.domains.counts();
        [
            ("uars", self.uars.count()),
            ("eqs", self.eqs.count()),
            ("cqs", self.nic.cqs.count()),
            ("sqs", self.nic.sqs.count()),
            ("rqs", self.nic.rqs.count()),
            ("tises", self.nic.tises.count()),
            ("tirs", self.nic.tirs.count()),
            ("rqts", self.nic.rqts.count()),
            ("flow-tables", self.nic.flow.table_count()),
            ("flow-counters", self.nic.flow.counter_count()),
            ("q-counters", self.q_counters.count()),
            ("mkeys", self.mkeys.len()),
            ("pds", pds),
            ("tds", tds),
        ]
    }

    /// Carrier up or down; a port-change EQE when the operational state changes.
    pub fn set_link(&mut self, up: bool) {
        let before = self.phys_port.view();
        self.phys_port.far_end_up = up;
        cmd::reg::link_update(self, before);
    }

    /// Take the module out of the cage: a PORT_MODULE event (unplugged)
    /// and the link goes down. Whether there was one.
    pub fn remove_module(&mut self) -> bool {
        let before = self.phys_port.view();
        if self.phys_port.module.take().is_none() {
            return false;
        }
        cmd::reg::module::module_event(self);
        cmd::reg::link_update(self, before);
        true
    }

    /// Plug `kind` into the empty cage: a PORT_MODULE event (plugged) and
    /// the link comes up at the fastest shared protocol. The reason when
    /// the cage is taken or the module cannot work there.
    pub fn insert_module(&mut self, kind: crate::module::ModuleKind) -> Result<(), String> {
        if let Some(m) = &self.phys_port.module {
            return Err(format!("the cage holds {}: remove it first", m.describe()));
        }
        kind.fits(self.phys_port.cage, self.phys_port.caps())?;
        let before = self.phys_port.view();
        self.phys_port.module = Some(crate::module::Plugged::of(kind));
        cmd::reg::module::module_event(self);
        cmd::reg::link_update(self, before);
        Ok(())
    }

    /// Put the module in error `error_type` (`port_module_event_error_type`):
    /// a PORT_MODULE event (plugged, error) and the link goes down.
    pub fn module_error(&mut self, error_type: u8) -> Result<(), String> {
        let before = self.phys_port.view();
        let Some(m) = self.phys_port.module.as_mut() else {
            return Err("no module in the cage".into());
        };
        m.error = Some(error_type);
        cmd::reg::module::module_event(self);
        cmd::reg::link_update(self, before);
        Ok(())
    }

    /// Ask for `n` more pages (> 0) or offer to return some (< 0) with a
    /// page-request EQE; ignored before INIT_HCA.
    pub fn request_pages(&mut self, n: i32) {
        cmd::pages::request(self, n);
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.bus.san.violations().to_vec()
    }
}
