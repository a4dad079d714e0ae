//! A scripted platform for unit tests: DMA regions in host memory, a BAR0
//! byte array, a fake clock. The test plays the device by hand, so it
//! controls exactly when and in which order commands complete.

extern crate std;

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use cxos_drivers::{Clock, ConfigSpace, DmaAlloc, Mmio, Msix, PciAddress, PlatformError};

/// DMA regions are plain heap memory the test reads and writes as the
/// device.
pub use cxos_drivers::VecDma as MockDma;

#[derive(Debug, Default)]
pub struct MockState {
    pub bar0: Vec<u8>,
    pub regions: BTreeMap<u64, std::rc::Weak<RefCell<Vec<u8>>>>,
    pub next_addr: u64,
    pub doorbells: Vec<u32>,
    pub clock: Cell<u64>,
    /// PCI vendor and device id in config space.
    pub config_ids: (u16, u16),
    /// The queue (SQN or RQN) each CQ ring serves, by the ring's device
    /// address, as [`MockCtl`] saw them created: what a CQE's `qpn` names.
    pub cq_qpn: BTreeMap<u64, u32>,
}

#[derive(Debug, Clone)]
pub struct MockPlatform {
    pub s: Rc<RefCell<MockState>>,
}

impl MockPlatform {
    /// A function whose init segment offers 32 command entries of 64 bytes.
    pub fn new() -> Self {
        let mut bar0 = vec![0u8; 0x10000];
        bar0[0x04..0x06].copy_from_slice(&5u16.to_be_bytes());
        bar0[0x17] = 0x56; // log_cmdq_size 5 [7:4], log_cmdq_stride 6 [3:0]
        Self {
            s: Rc::new(RefCell::new(MockState {
                bar0,
                next_addr: 0x10_0000,
                ..Default::default()
            })),
        }
    }

    /// The DMA memory at a device address, as the device would see it.
    pub fn dma(&self, addr: u64) -> (Rc<RefCell<Vec<u8>>>, usize) {
        let s = self.s.borrow();
        let (&base, w) = s.regions.range(..=addr).next_back().expect("mapped");
        (w.upgrade().expect("live region"), (addr - base) as usize)
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let (b, o) = self.dma(addr);
        b.borrow()[o..o + len].to_vec()
    }

    pub fn write(&self, addr: u64, data: &[u8]) {
        let (b, o) = self.dma(addr);
        b.borrow_mut()[o..o + data.len()].copy_from_slice(data);
    }

    pub fn live_regions(&self) -> usize {
        self.s
            .borrow()
            .regions
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

// Every part is the mock itself (it is single-threaded: the barriers have
// nothing to order).
cxos_drivers::platform_of_one!(MockPlatform);

impl DmaAlloc for MockPlatform {
    type Region = MockDma;
    fn dma_alloc(&self, size: usize) -> Result<MockDma, PlatformError> {
        let mut s = self.s.borrow_mut();
        let addr = s.next_addr;
        s.next_addr += (size as u64).div_ceil(4096) * 4096 + 4096;
        let dma = MockDma::new(addr, size);
        s.regions.insert(addr, Rc::downgrade(dma.bytes()));
        Ok(dma)
    }
}

impl Mmio for MockPlatform {
    fn bar0_len(&self) -> usize {
        self.s.borrow().bar0.len()
    }
    fn bar0_read_be32(&self, o: usize) -> u32 {
        let s = self.s.borrow();
        u32::from_be_bytes([s.bar0[o], s.bar0[o + 1], s.bar0[o + 2], s.bar0[o + 3]])
    }
    fn bar0_write_be32(&self, o: usize, v: u32) {
        let mut s = self.s.borrow_mut();
        if o == 0x18 {
            s.doorbells.push(v);
        }
        s.bar0[o..o + 4].copy_from_slice(&v.to_be_bytes());
    }
    fn bar0_read_be64(&self, o: usize) -> u64 {
        cxos_drivers::soft_mmio::read_be64_split(|o| self.bar0_read_be32(o), o)
    }
    fn bar0_write_be64(&self, o: usize, v: u64) {
        cxos_drivers::soft_mmio::write_be64_split(|o, v| self.bar0_write_be32(o, v), o, v)
    }
    fn barrier_before_doorbell_record(&self) {}
    fn barrier_before_mmio_doorbell(&self) {}
    fn barrier_after_ownership_read(&self) {}
}

impl ConfigSpace for MockPlatform {
    fn pci_address(&self) -> PciAddress {
        PciAddress::new(0, 1, 0, 0)
    }
    fn config_read16(&self, o: u16) -> u16 {
        let ids = self.s.borrow().config_ids;
        match o {
            0 => ids.0,
            2 => ids.1,
            _ => 0,
        }
    }
    fn config_write16(&self, _o: u16, _v: u16) {}
    fn config_read32(&self, _o: u16) -> u32 {
        0
    }
    fn config_write32(&self, _o: u16, _v: u32) {}
}

impl Msix for MockPlatform {
    fn msix_table_size(&self) -> u16 {
        0
    }
    fn msix_enable(&self, _min: u16, _wanted: u16) -> Result<u16, PlatformError> {
        Err(PlatformError::MsixUnsupported)
    }
    fn msix_disable(&self) {}
    fn msix_take_pending(&self, _v: u16) -> bool {
        false
    }
    fn msix_count(&self, _v: u16) -> u64 {
        0
    }
    fn msix_set_masked(&self, _v: u16, _m: bool) {}
}

impl Clock for MockPlatform {
    fn now_ns(&self) -> u64 {
        let s = self.s.borrow();
        s.clock.set(s.clock.get() + 1000);
        s.clock.get()
    }
    fn delay_us(&self, us: u64) {
        let s = self.s.borrow();
        s.clock.set(s.clock.get() + us * 1000);
    }
    fn relax(&self) {}
}

/// A scripted command executor: records every command's opcode and input,
/// answers each with status 0 and a fresh object id at output 0x08 (where
/// every CREATE_*/ALLOC_* output in mlx5_ifc.h puts its handle), or with a
/// chosen failure.
#[derive(Debug, Default)]
pub struct MockExec {
    pub log: Vec<(u16, Vec<u8>)>,
    pub next_id: u32,
    /// Fail the command with this opcode (status 3, syndrome 0x1234).
    pub fail_opcode: Option<u16>,
    /// Output bytes to answer a command with: (opcode, offset, bytes).
    pub replies: Vec<(u16, usize, Vec<u8>)>,
}

impl crate::cmd::Exec for MockExec {
    fn exec<C: crate::cmd::Command>(
        &mut self,
        cmd: &C,
    ) -> Result<C::Output, crate::error::CmdError> {
        let input = crate::cmd::encode(cmd);
        self.log.push((C::OPCODE, input));
        let fail = |failure| crate::error::CmdError {
            opcode: C::OPCODE,
            op_mod: cmd.op_mod(),
            failure,
        };
        if self.fail_opcode == Some(C::OPCODE) {
            return Err(fail(crate::error::CmdFailure::Status {
                status: 3,
                syndrome: 0x1234,
            }));
        }
        self.next_id += 1;
        let mut out = vec![0u8; cmd.out_len().max(0x10)];
        out[0x08..0x0c].copy_from_slice(&self.next_id.to_be_bytes());
        for (op, at, bytes) in &self.replies {
            if *op == C::OPCODE {
                out[*at..*at + bytes.len()].copy_from_slice(bytes);
            }
        }
        cmd.parse(&out)
            .map_err(|e| fail(crate::error::CmdFailure::BadOutput(e)))
    }
}

impl MockExec {
    /// Inputs of every command with `opcode`, oldest first.
    pub fn inputs(&self, opcode: u16) -> Vec<&[u8]> {
        self.log
            .iter()
            .filter(|(o, _)| *o == opcode)
            .map(|(_, i)| i.as_slice())
            .collect()
    }

    pub fn opcodes(&self) -> Vec<u16> {
        self.log.iter().map(|(o, _)| *o).collect()
    }
}

/// Counts heap allocations of the unit-test binary (the fast-path tests
/// assert zero per packet).
#[global_allocator]
static ALLOC: mlx5_sim::harness::CountingAlloc = mlx5_sim::harness::CountingAlloc::new();

/// Scripted commands plus the mock platform: a [`crate::control::Control`].
#[derive(Debug)]
pub struct MockCtl {
    pub ex: MockExec,
    pub p: MockPlatform,
    /// Completion events the next `poll_comp_eq` reports.
    pub events: Vec<crate::cq::Cqn>,
    pub eq_polls: u32,
    pub retired: usize,
    /// (CQN, ring address) of every CQ created.
    cq_rings: Vec<(u32, u64)>,
    /// Fault records the queue sets made.
    pub faults: crate::fault::FaultLog,
    /// Queue events the next `take_queue_events` hands out.
    pub queue_events: Vec<crate::fault::QueueEvent>,
}

impl MockCtl {
    pub fn new() -> Self {
        Self {
            ex: MockExec::default(),
            p: MockPlatform::new(),
            faults: crate::fault::FaultLog::default(),
            queue_events: Vec::new(),
            events: Vec::new(),
            eq_polls: 0,
            retired: 0,
            cq_rings: Vec::new(),
        }
    }
}

impl crate::cmd::Exec for MockCtl {
    fn exec<C: crate::cmd::Command>(
        &mut self,
        cmd: &C,
    ) -> Result<C::Output, crate::error::CmdError> {
        use crate::cmd::op;
        let out = self.ex.exec(cmd)?;
        // Which queue each CQ serves: CREATE_CQ's first page (pas at
        // 0x110) by its CQN, then CREATE_SQ / CREATE_RQ name the CQN in
        // their context (ctx at 0x20, cqn [23:0] of ctx dword 0x08).
        if let Some((_, input)) = self.ex.log.last() {
            let be =
                |o: usize| u32::from_be_bytes([input[o], input[o + 1], input[o + 2], input[o + 3]]);
            let id = self.ex.next_id;
            match C::OPCODE {
                op::CREATE_CQ => {
                    let ring = ((be(0x110) as u64) << 32) | be(0x114) as u64;
                    self.cq_rings.push((id, ring));
                }
                op::CREATE_SQ | op::CREATE_RQ => {
                    let cqn = be(0x28) & 0x00ff_ffff;
                    if let Some(&(_, ring)) = self.cq_rings.iter().find(|(c, _)| *c == cqn) {
                        self.p.s.borrow_mut().cq_qpn.insert(ring, id);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

impl crate::control::Control for MockCtl {
    type P = MockPlatform;
    fn dma(&self) -> &MockPlatform {
        &self.p
    }
    fn mmio(&self) -> &MockPlatform {
        &self.p
    }
    fn clock(&self) -> &MockPlatform {
        &self.p
    }
    /// Completion events come from `events`: there is no EQ to share.
    fn shared_comp_eq(
        &self,
        _index: usize,
    ) -> Option<alloc::sync::Arc<crate::eq::CompEq<MockPlatform>>> {
        None
    }
    fn poll_comp_eq(&mut self, _index: usize, mut f: impl FnMut(crate::cq::Cqn)) -> usize {
        self.eq_polls += 1;
        let n = self.events.len();
        for c in self.events.drain(..) {
            f(c);
        }
        n
    }
    fn retire(&mut self, _mem: MockDma) {
        self.retired += 1;
    }
    fn link(&self) -> cxos_drivers::LinkState {
        cxos_drivers::LinkState {
            up: true,
            speed_mbps: 100_000,
        }
    }
    fn record_fault(&mut self, r: crate::fault::FaultRecord) -> crate::fault::FaultRecord {
        self.faults.push(r)
    }
    fn settle_fault(&mut self, r: crate::fault::FaultRecord) -> crate::fault::FaultRecord {
        self.faults.settle(r)
    }
    fn take_queue_events(
        &mut self,
        mine: &dyn Fn(crate::fault::FaultObject) -> bool,
        max: usize,
    ) -> heapless::Vec<crate::fault::QueueEvent, { crate::fault::QUEUE_EVENTS }> {
        let mut out = heapless::Vec::new();
        self.queue_events.retain(|e| {
            if out.len() < max && mine(e.object()) {
                let _ = out.push(*e);
                false
            } else {
                true
            }
        });
        out
    }
    fn fault_verdict(&mut self, object: crate::fault::FaultObject) -> crate::fault::Verdict {
        let now = cxos_drivers::Clock::now_ns(&self.p);
        self.faults.verdict(object, now)
    }
}
