//! The device is untrusted input: a deterministic fuzz of everything the
//! driver reads from it. Three layers, each with a fixed seed (a failure
//! prints its case number; `FUZZ_CASES=<n>` scales every layer):
//!
//! - parsers: every command's output parser, the CQE and EQE parsers, the
//!   port register and capability parsers and the init segment readers on
//!   random bytes: each returns a value or a typed error;
//! - a garbage device: attach against a function whose init segment is
//!   random and whose firmware answers every command with random output,
//!   random status and sometimes not at all: attach fails with a typed
//!   error (or succeeds) and every DMA byte comes back; and the model with
//!   firmware that corrupts a share of the bytes of every command output,
//!   so bring-up and a queue set's open get deep before something breaks:
//!   typed errors, all memory back, the function reusable;
//! - a hostile model: the driver attached to the model with a queue set
//!   open, while random EQEs land on EQ0 and the completion EQ, random
//!   CQEs on the queue set's CQs and random page requests arrive; then the
//!   device turns honest again: frames still flow, and close and detach
//!   are clean (no error, no page lost, no sanitizer record, all DMA back).
//!
//! Zero panics is the property: a panic fails the test.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use cxos_drivers::{Clock, ConfigSpace, DmaAlloc, Mmio, Msix, PciAddress, PlatformError};
use mlx5::caps::{CapMode, CapType, EthCaps, FlowCaps, GeneralCaps, QueryHcaCap};
use mlx5::cmd::Command;
use mlx5::cq::{Cqn, QueryCq};
use mlx5::cqe::{self, Cqe};
use mlx5::eq::{Eqe, event};
use mlx5::flow::{Ftn, QueryFte};
use mlx5::flow_counter::{FlowCounterId, QueryFlowCounter};
use mlx5::hca::QueryIssi;
use mlx5::pages::{PageKind, QueryPages, TakePages};
use mlx5::pd::{AllocPd, AllocTransportDomain, QuerySpecialContexts};
use mlx5::port::{self, AccessRegister, PortInfo};
use mlx5::q_counter::{AllocQCounter, QCounterId, QueryQCounter};
use mlx5::rq::{QueryRq, Rqn};
use mlx5::sq::{QuerySq, Sqn};
use mlx5::uar::AllocUar;
use mlx5::vport::QueryNicVportContext;
use mlx5::{Adapter, Config, EthConfig, HealthConfig, init_seg};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

/// splitmix64: small, fast, and the same sequence everywhere.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        // Mostly small numbers in real outputs: zero some dwords so that
        // counts and indexes are sometimes in range.
        for dw in v.chunks_mut(4) {
            if self.percent(40) {
                dw.fill(0);
            } else if self.percent(20) && dw.len() == 4 {
                let small = (self.below(300) as u32).to_be_bytes();
                dw.copy_from_slice(&small);
            }
        }
        v
    }
}

/// Cases per layer: `FUZZ_CASES` or the default.
fn cases(default: usize) -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Cases per second, printed for BENCHMARKS.md (never asserted).
fn rate(n: usize, t: std::time::Instant) -> String {
    let s = t.elapsed().as_secs_f64();
    format!("{s:.2} s, {:.0} cases/s", n as f64 / s)
}

/// `cmd.parse` on random outputs of its length: a value or a typed error.
fn parse_random<C: Command>(rng: &mut Rng, cmd: &C) -> bool {
    let out = rng.bytes(cmd.out_len());
    match cmd.parse(&out) {
        Ok(_) => true,
        Err(e) => {
            assert!(!format!("{e}").is_empty());
            false
        }
    }
}

#[test]
fn parsers_take_random_device_output() {
    let mut rng = Rng(0x5eed_0001);
    let n = cases(4000);
    let t = std::time::Instant::now();
    let mut refused = 0usize;
    let mut total = 0usize;
    for case in 0..n {
        let r = &mut rng;
        let id = r.next() as u32;
        let count = r.below(257) as usize;
        let results = [
            parse_random(r, &QueryPages(PageKind::Boot)),
            parse_random(r, &TakePages { count }),
            parse_random(
                r,
                &QueryHcaCap {
                    kind: CapType::General,
                    mode: CapMode::Current,
                },
            ),
            parse_random(r, &QueryIssi),
            parse_random(r, &AllocUar),
            parse_random(r, &AllocPd),
            parse_random(r, &AllocTransportDomain),
            parse_random(r, &QuerySpecialContexts),
            parse_random(r, &QueryNicVportContext),
            parse_random(r, &AllocQCounter),
            parse_random(
                r,
                &QueryQCounter {
                    id: QCounterId(id as u8),
                    clear: false,
                },
            ),
            parse_random(
                r,
                &QueryFlowCounter {
                    id: FlowCounterId(id),
                    clear: false,
                },
            ),
            parse_random(r, &QueryCq(Cqn(id))),
            parse_random(r, &QuerySq(Sqn(id))),
            parse_random(r, &QueryRq(Rqn(id))),
            parse_random(
                r,
                &QueryFte {
                    table_type: 0,
                    table: Ftn(id),
                    index: id,
                },
            ),
        ];
        total += results.len();
        refused += results.iter().filter(|ok| !**ok).count();
        // Capability blocks and port registers.
        let block = r.bytes(0x1000);
        let g = GeneralCaps::parse(&block);
        let _ = (g.max_eqs(), EthCaps::parse(&block), FlowCaps::parse(&block));
        let _ = mlx5::adapter::check_supported(&g);
        let mut info = PortInfo::default();
        for reg in [
            port::REG_PAOS,
            port::REG_PTYS,
            port::REG_PMTU,
            port::REG_PMLP,
        ] {
            let req = port::read_request(reg);
            let cmd = AccessRegister {
                reg,
                write: false,
                data: &req,
            };
            let out = r.bytes(cmd.out_len());
            if let Ok(data) = cmd.parse(&out) {
                match reg {
                    port::REG_PAOS => info.apply_paos(&data),
                    port::REG_PTYS => info.apply_ptys(&data),
                    port::REG_PMTU => info.apply_pmtu(&data),
                    _ => info.apply_pmlp(&data),
                }
            }
        }
        let _ = format!("{}", port::Speed(info.speed_mbps));
        // CQEs: every accessor of the one parser.
        let mut raw = [0u8; cqe::LEN];
        r.fill(&mut raw);
        let c = Cqe::parse(&raw);
        let _ = (
            c.op_own(),
            c.opcode(),
            c.is_error(),
            c.wqe_counter(),
            c.wqe_id(),
            c.byte_count(),
            c.mpwrq(),
            c.is_filler(),
            c.strides(),
            c.stride_bytes(),
            c.qpn(),
            c.hdr_type(),
            c.has_vlan(),
            c.vlan_tci(),
            c.l3(),
            c.l4(),
            c.checks(),
            c.l3_ok(),
            c.l4_ok(),
            c.check_sum(),
            c.rss_hash(),
            c.syndrome(),
            c.vendor_syndrome(),
            cqe::syndrome::name(c.syndrome()),
        );
        // EQEs: every accessor.
        let mut data = [0u8; 28];
        r.fill(&mut data);
        let e = Eqe {
            event_type: r.next() as u8,
            sub_type: r.next() as u8,
            data,
        };
        let _ = (e.cmd_vector(), e.page_request(), e.port(), e.cqn());
        // The init segment.
        let bar = RandomBar(Rc::new(r.bytes(init_seg::LEN.next_multiple_of(4))));
        let _ = (
            init_seg::fw_version(&bar),
            init_seg::cmdif_rev(&bar),
            init_seg::initializing(&bar),
            init_seg::cmdq_geometry(&bar),
            init_seg::health_counter(&bar),
            init_seg::cmd_exec_to(&bar),
            init_seg::cmd_q_init_to(&bar),
            init_seg::health_syndrome(&bar),
            init_seg::health_syndrome_name(init_seg::health_syndrome(&bar)),
            format!("{:?}", init_seg::health_buffer(&bar)),
            mlx5::cmdq::timeout_from_device(init_seg::cmd_exec_to(&bar), 60_000, 15_000),
        );
        let _ = case;
    }
    eprintln!(
        "parsers: {n} cases, {total} command outputs ({refused} refused with a typed error); {}",
        rate(n, t)
    );
    assert!(refused > 0 && refused < total, "both outcomes seen");
}

/// BAR0 as random bytes (reads only).
#[derive(Clone, Debug)]
struct RandomBar(Rc<Vec<u8>>);

impl Mmio for RandomBar {
    fn bar0_len(&self) -> usize {
        self.0.len()
    }
    fn bar0_read_be32(&self, o: usize) -> u32 {
        u32::from_be_bytes([self.0[o], self.0[o + 1], self.0[o + 2], self.0[o + 3]])
    }
    fn bar0_write_be32(&self, _o: usize, _v: u32) {}
    fn bar0_read_be64(&self, o: usize) -> u64 {
        cxos_drivers::soft_mmio::read_be64_split(|o| self.bar0_read_be32(o), o)
    }
    fn bar0_write_be64(&self, _o: usize, _v: u64) {}
    fn barrier_before_doorbell_record(&self) {}
    fn barrier_before_mmio_doorbell(&self) {}
    fn barrier_after_ownership_read(&self) {}
}

// ---------------------------------------------------------------------
// A garbage device: random init segment, random answers to commands.

#[derive(Debug)]
struct GarbageState {
    bar0: Vec<u8>,
    regions: BTreeMap<u64, Weak<RefCell<Vec<u8>>>>,
    next_addr: u64,
    rng: Rng,
    clock: u64,
    msix_table: u16,
    /// Command answers given.
    answered: u64,
}

/// One function of the garbage device: every part of the platform.
#[derive(Clone, Debug)]
struct Garbage(Rc<RefCell<GarbageState>>);

/// DMA regions: heap memory the garbage device writes through weak
/// handles.
type GarbageDma = cxos_drivers::VecDma;

const BAR0_LEN: usize = 0x10000;

impl Garbage {
    fn new(seed: u64) -> Garbage {
        let mut rng = Rng(seed);
        let mut bar0 = rng.bytes(BAR0_LEN);
        // Mostly a device that gets past the first checks.
        if rng.percent(90) {
            bar0[0x04..0x06].copy_from_slice(&5u16.to_be_bytes());
        }
        if rng.percent(70) {
            bar0[0x1fc] &= 0x7f; // initializing clear
        }
        if rng.percent(70) {
            bar0[0x17] = 0x56; // 32 entries of 64 bytes
        }
        if rng.percent(80) {
            bar0[0x23c..0x240].fill(0); // health syndrome 0
        }
        let msix_table = rng.below(6) as u16;
        Garbage(Rc::new(RefCell::new(GarbageState {
            bar0,
            regions: BTreeMap::new(),
            next_addr: 0x1_0000_0000,
            rng,
            clock: 0,
            msix_table,
            answered: 0,
        })))
    }

    fn live_regions(&self) -> usize {
        self.0
            .borrow()
            .regions
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// The bytes at device address `addr`, if the driver owns a region
    /// there.
    fn with_dma(&self, addr: u64, len: usize, f: impl FnOnce(&mut [u8])) {
        let buf = {
            let s = self.0.borrow();
            let Some((&base, w)) = s.regions.range(..=addr).next_back() else {
                return;
            };
            let Some(buf) = w.upgrade() else { return };
            let off = (addr - base) as usize;
            if off + len > buf.borrow().len() {
                return;
            }
            (buf, off)
        };
        let (buf, off) = buf;
        f(&mut buf.borrow_mut()[off..off + len]);
    }

    fn read_be64(&self, addr: u64) -> u64 {
        let mut v = 0;
        self.with_dma(addr, 8, |b| v = u64::from_be_bytes(b.try_into().unwrap()));
        v
    }

    /// The doorbell of command slots `bits`: answer each with random
    /// output, status and delivery, or (sometimes) never.
    fn answer(&self, bits: u32) {
        let (cmdq, stride) = {
            let s = self.0.borrow();
            let hi = u32::from_be_bytes(s.bar0[0x10..0x14].try_into().unwrap());
            let lo = u32::from_be_bytes(s.bar0[0x14..0x18].try_into().unwrap());
            let stride = 1u64 << (s.bar0[0x17] & 0xf);
            (((hi as u64) << 32) | (lo & !0xfff) as u64, stride)
        };
        for slot in 0..32u64 {
            if bits & (1 << slot) == 0 {
                continue;
            }
            let entry = cmdq + slot * stride;
            let mut rng = Rng(self.0.borrow_mut().rng.next());
            if rng.percent(3) {
                continue; // lost
            }
            self.0.borrow_mut().answered += 1;
            let out_ptr = self.read_be64(entry + 0x30) & !0x3ff;
            let mut out_len = 0u32;
            self.with_dma(entry + 0x38, 4, |b| {
                out_len = u32::from_be_bytes(b.try_into().unwrap())
            });
            let mut inline = rng.bytes(16);
            inline[0] = if rng.percent(85) { 0 } else { rng.next() as u8 };
            self.with_dma(entry + 0x20, 16, |b| b.copy_from_slice(&inline));
            // Output mailboxes: random data along the chain the driver built.
            let mut left = (out_len as usize).saturating_sub(16);
            let mut block = out_ptr;
            let mut hops = 0;
            while left > 0 && block != 0 && hops < 64 {
                let n = left.min(0x200);
                let data = rng.bytes(n);
                self.with_dma(block, n, |b| b.copy_from_slice(&data));
                left -= n;
                block = self.read_be64(block + 0x230) & !0x3ff;
                hops += 1;
            }
            let token_ok = rng.percent(97);
            let delivery = if rng.percent(95) {
                0
            } else {
                rng.next() as u8 & 0xfe
            };
            self.with_dma(entry + 0x3c, 4, |b| {
                if !token_ok {
                    b[0] = b[0].wrapping_add(1);
                }
                // Ownership last: status_own[0] = 0 hands it back.
                b[3] = delivery;
            });
        }
    }
}

impl DmaAlloc for Garbage {
    type Region = GarbageDma;
    fn dma_alloc(&self, size: usize) -> Result<GarbageDma, PlatformError> {
        let mut s = self.0.borrow_mut();
        if size > 64 << 20 {
            return Err(PlatformError::OutOfDmaMemory { requested: size });
        }
        let addr = s.next_addr;
        s.next_addr += (size as u64).next_multiple_of(4096) + 4096;
        let dma = GarbageDma::new(addr, size);
        s.regions.insert(addr, Rc::downgrade(dma.bytes()));
        Ok(dma)
    }
}

impl Mmio for Garbage {
    fn bar0_len(&self) -> usize {
        BAR0_LEN
    }
    fn bar0_read_be32(&self, o: usize) -> u32 {
        let s = self.0.borrow();
        u32::from_be_bytes(s.bar0[o..o + 4].try_into().unwrap())
    }
    fn bar0_write_be32(&self, o: usize, v: u32) {
        self.0.borrow_mut().bar0[o..o + 4].copy_from_slice(&v.to_be_bytes());
        if o == init_seg::CMD_DBELL {
            self.answer(v);
        }
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

impl ConfigSpace for Garbage {
    fn pci_address(&self) -> PciAddress {
        PciAddress::new(0, 1, 0, 0)
    }
    fn config_read16(&self, o: u16) -> u16 {
        match o {
            0 => 0x15b3,
            2 => 0x1017,
            _ => self.0.borrow_mut().rng.next() as u16,
        }
    }
    fn config_write16(&self, _o: u16, _v: u16) {}
    fn config_read32(&self, o: u16) -> u32 {
        (self.config_read16(o + 2) as u32) << 16 | self.config_read16(o) as u32
    }
    fn config_write32(&self, _o: u16, _v: u32) {}
}

impl Msix for Garbage {
    fn msix_table_size(&self) -> u16 {
        self.0.borrow().msix_table
    }
    fn msix_enable(&self, min: u16, wanted: u16) -> Result<u16, PlatformError> {
        let t = self.0.borrow().msix_table;
        if t < min {
            return Err(PlatformError::NoVectors {
                requested: min,
                available: t,
            });
        }
        Ok(wanted.min(t))
    }
    fn msix_disable(&self) {}
    fn msix_take_pending(&self, _v: u16) -> bool {
        self.0.borrow_mut().rng.percent(30)
    }
    fn msix_count(&self, _v: u16) -> u64 {
        self.0.borrow_mut().rng.next()
    }
    fn msix_set_masked(&self, _v: u16, _m: bool) {}
}

impl Clock for Garbage {
    fn now_ns(&self) -> u64 {
        let mut s = self.0.borrow_mut();
        s.clock += 250_000;
        s.clock
    }
    fn delay_us(&self, us: u64) {
        self.0.borrow_mut().clock += us * 1000;
    }
    fn relax(&self) {}
}

cxos_drivers::platform_of_one!(Garbage);

#[test]
fn attach_against_a_garbage_device_fails_typed_and_gives_all_memory_back() {
    common::logger();
    let n = cases(3000);
    let t = std::time::Instant::now();
    let mut by_step: BTreeMap<String, usize> = BTreeMap::new();
    let mut attached = 0;
    let mut answered = 0;
    for case in 0..n {
        let dev = Garbage::new(0x6a7b_0000 + case as u64);
        let cfg = Config {
            cmd_timeout_ms: Some(2),
            fw_init_timeout_ms: Some(2),
            max_pages: 64,
            max_total_pages: 128,
            comp_eqs: 2,
            eq0_log_size: 4,
            comp_eq_log_size: 4,
            reclaim_retries: 2,
            health: HealthConfig {
                poll_interval_ms: 1,
                max_misses: 3,
            },
            ..Config::default()
        };
        match Adapter::attach(dev.clone(), cfg) {
            Ok(mut a) => {
                attached += 1;
                let _ = a.poll();
                let _ = a.poll_health();
                let _ = a.report();
                let (_, r) = a.detach();
                let _ = format!("{r:?}");
            }
            Err(f) => {
                let msg = format!("{}", f.error);
                assert!(msg.contains(f.error.step.name()), "case {case}: {msg}");
                *by_step.entry(f.error.step.name().to_string()).or_default() += 1;
            }
        }
        answered += dev.0.borrow().answered;
        assert_eq!(dev.live_regions(), 0, "case {case}: DMA memory kept");
    }
    eprintln!(
        "garbage device: {n} cases, {attached} attached, {answered} commands answered; {}; failed at: {by_step:?}",
        rate(n, t)
    );
    assert!(by_step.len() >= 5, "the fuzz reached only {by_step:?}");
}

#[test]
fn attach_and_open_against_firmware_that_corrupts_its_outputs() {
    common::logger();
    let n = cases(400);
    let t = std::time::Instant::now();
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let dma_start = sim.dma_in_use();
    let mut by_step: BTreeMap<String, usize> = BTreeMap::new();
    let (mut opened, mut attached) = (0, 0);
    let mut p = sim.clone();
    for case in 0..n {
        // From a byte in a thousand to one in ten: shallow and deep runs.
        let per_mille = [1, 3, 10, 30, 100][case % 5];
        sim.inject(mlx5_sim::Fault::CorruptOutputs {
            seed: 0xc0de_0000 + case as u64,
            per_mille,
        });
        let cfg = Config {
            max_total_pages: 2048,
            ..common::short_timeouts()
        };
        p = match Adapter::attach(p, cfg) {
            Ok(a) => {
                attached += 1;
                let r = mlx5::Resources::of(&a);
                let a = match r {
                    Ok(r) => match mlx5::QueueSet::open(a, r, EthConfig::default()) {
                        Ok(mut port) => {
                            opened += 1;
                            port.poll();
                            let _ = port.refresh_counters();
                            let _ = port.rings();
                            port.close().0
                        }
                        Err(f) => {
                            assert!(!format!("{}", f.error).is_empty());
                            f.control
                        }
                    },
                    Err(e) => {
                        assert!(!format!("{e}").is_empty());
                        a
                    }
                };
                a.detach().0
            }
            Err(f) => {
                let msg = format!("{}", f.error);
                assert!(msg.contains(f.error.step.name()), "case {case}: {msg}");
                *by_step.entry(f.error.step.name().to_string()).or_default() += 1;
                f.platform
            }
        };
        assert_eq!(sim.dma_in_use(), dma_start, "case {case}: DMA memory kept");
        sim.clear_faults();
    }
    eprintln!(
        "corrupting firmware: {n} cases, {attached} attached, {opened} opened a queue set; {}; failed at: {by_step:?}",
        rate(n, t)
    );
    // The same function, honest again, attaches and detaches cleanly.
    sim.function_reset();
    let a = Adapter::attach(p, common::config()).unwrap_or_else(|f| panic!("{}", f.error));
    let (_, d) = a.detach();
    assert_eq!((d.errors, d.pages_lost), (0, 0), "{d:?}");
    assert_eq!(sim.dma_in_use(), dma_start);
    assert!(
        attached > 0 && opened > 0 && by_step.len() >= 5,
        "{by_step:?}"
    );
}

// ---------------------------------------------------------------------
// A hostile model: random events, completions and page requests against
// a live adapter with a queue set.

/// Event types a hostile device may raise on EQ0 without meaning a fatal
/// error (INTERNAL_ERROR marks the adapter failed: its own case below).
const EQ0_TYPES: [u8; 10] = [
    event::CMD,
    event::PAGE_REQUEST,
    event::PORT_CHANGE,
    event::CQ_ERROR,
    event::WQ_CATASTROPHIC,
    event::WQ_INVALID_REQUEST,
    event::WQ_ACCESS_ERROR,
    event::NIC_VPORT_CHANGE,
    event::PORT_MODULE,
    0x3f,
];

fn hostile_round(sim: &SimPlatform, rng: &mut Rng, eq0: u8, comp: u8, cqs: &[u32]) {
    for _ in 0..1 + rng.below(4) {
        let mut data = [0u8; 28];
        rng.fill(&mut data);
        let what = rng.below(100);
        sim.with_model(|f| {
            if what < 35 {
                let t = EQ0_TYPES[rng.below(EQ0_TYPES.len() as u64) as usize];
                if t == event::PAGE_REQUEST {
                    // func_id 0 mostly, a count anywhere in i32.
                    if rng.percent(90) {
                        data[2..4].fill(0);
                    }
                    if rng.percent(50) {
                        let n = rng.below(600) as i32 - 200;
                        data[4..8].copy_from_slice(&n.to_be_bytes());
                    }
                }
                mlx5_sim::cmd::eq::write_eqe(f, eq0, t, rng.next() as u8, &data);
            } else if what < 60 {
                // Completion events naming our CQs, others, or anything.
                let cqn = match rng.below(3) {
                    0 => cqs[rng.below(cqs.len() as u64) as usize],
                    1 => rng.below(0x200) as u32,
                    _ => rng.next() as u32,
                };
                data[24..28].copy_from_slice(&cqn.to_be_bytes());
                let t = if rng.percent(90) {
                    event::COMPLETION
                } else {
                    rng.next() as u8
                };
                mlx5_sim::cmd::eq::write_eqe(f, comp, t, 0, &data);
            } else {
                // A random CQE on one of the queue set's CQs.
                let cqn = cqs[rng.below(cqs.len() as u64) as usize];
                let mut e = [0u8; 64];
                rng.fill(&mut e);
                if rng.percent(60) {
                    e[0x38..0x3c].fill(0);
                }
                // Not the invalid opcode (0xf): with the right owner bit
                // it reads as an entry not yet written, so the CQ stalls,
                // overruns and goes to the error state (a CQ_ERROR event),
                // which only recreating the queues undoes (the
                // fault-management work), and the check below that frames
                // still flow would not hold.
                if e[0x3f] >> 4 == cqe::opcode::INVALID {
                    e[0x3f] &= 0x0f;
                }
                mlx5_sim::cmd::cq::post(f, cqn, &mut e);
            }
        });
    }
}

#[test]
fn a_hostile_model_leaves_the_driver_working_and_detach_clean() {
    let n = cases(3000);
    let sim = SimPlatform::new_loopback(Personality::ConnectX5, Mode::Synchronous);
    let dma_start = sim.dma_in_use();
    let cfg = Config {
        max_total_pages: 4096,
        ..common::config()
    };
    // The default policy: a second fault of one queue inside the grace
    // period waits for the periodic check.
    let a = Adapter::attach(sim.clone(), cfg).unwrap_or_else(|f| panic!("attach: {}", f.error));
    let r = mlx5::Resources::of(&a).expect("resources");
    let eq0 = a.eq0().expect("EQ0").0.0;
    let comp = r.eqn.0;
    let mut port = mlx5::QueueSet::open(
        a,
        r,
        EthConfig {
            interrupts: true,
            ..EthConfig::default()
        },
    )
    .unwrap_or_else(|f| panic!("open: {}", f.error));
    let mut cqs = vec![port.tx_cq().expect("tx cq").cqn.0];
    cqs.extend((0..port.rx_queues()).filter_map(|i| port.rx_cq_at(i).map(|c| c.cqn.0)));
    let mut rng = Rng(0x0bad_d1ce);
    let t = std::time::Instant::now();
    for _ in 0..n {
        hostile_round(&sim, &mut rng, eq0, comp, &cqs);
        let _ = port.control_mut().poll();
        port.poll();
        // The per-frame path and the burst's (runs, sessions, the
        // metadata of each) take the same hostile completions.
        if rng.percent(50) {
            while port.receive(|b, _| b.len()).is_some() {}
        } else {
            while port.receive_burst(16, |b, i| {
                std::hint::black_box((b.len(), i.meta()));
            }) > 0
            {}
        }
        port.flush();
        if rng.percent(20) {
            let _ = port.transmit(60 + rng.below(1400) as usize, |b| b.fill(0xab));
            port.flush();
        }
    }
    let stats = port.control().stats();
    let eth = port.eth_stats();
    eprintln!(
        "hostile model: {n} rounds, {}; eq0 events {} (spurious completions {}, page events {}, \
         port {}, other {}), pages held {} refused {}, queue faults {} recovered {}",
        rate(n, t),
        stats.eq0_events,
        stats.spurious_completions,
        stats.page_events,
        stats.port_events,
        stats.other_events,
        port.control().pages_held(),
        stats.pages_refused,
        eth.faults,
        eth.recoveries,
    );
    assert!(!port.control().is_failed(), "no fatal event was sent");
    assert!(port.control().pages_held() <= 4096);
    assert!(eth.faults > 0 && stats.spurious_completions > 0 && stats.page_events > 0);
    // Honest again: the model wants no more pages than it holds, and
    // frames go round the loop.
    let _ = port.control_mut().poll();
    let before = port.net_stats().rx_packets;
    let mut got = 0;
    let mac = port_mac(&sim);
    for i in 0..20u8 {
        let frame = |b: &mut [u8]| {
            b.fill(i);
            b[..6].copy_from_slice(&mac);
            b[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 9]);
            b[12..14].copy_from_slice(&[0x88, 0xb5]);
        };
        // Recoveries deferred by the grace period run from the periodic
        // check when it ends, whenever that falls (it depends on how fast
        // the storm ran): until then the SQ may refuse with Busy, and a
        // frame in flight when one runs is flushed with its queue. So the
        // frame goes again until one arrives.
        let mut tries = 0u32;
        let arrived = common::eventually(|| {
            port.check();
            port.poll();
            if port.receive(|b, _| b.len()).is_some() {
                port.flush();
                return true;
            }
            port.flush();
            if tries.is_multiple_of(50) && port.transmit(100, frame).is_ok() {
                port.flush();
            }
            tries += 1;
            false
        });
        assert!(arrived, "frame {i} after the storm");
        got += 1;
    }
    assert_eq!(got, 20);
    assert!(port.net_stats().rx_packets >= before + 20);
    let (a, rep) = port.close();
    assert_eq!(rep.errors, 0, "close: {rep:?}");
    let (_, d) = a.detach();
    assert_eq!(d.errors, 0, "detach: {d:?}");
    assert_eq!(d.pages_lost, 0);
    assert!(!d.reset);
    assert_eq!(sim.pages_held(), 0);
    assert_eq!(sim.dma_in_use(), dma_start);
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "sanitizer: {v:?}");
}

/// A CQE in the compressed format (a session title, `op_own` format 3,
/// its `byte_cnt` the session's count) on a CQ created without
/// compression is no session: the driver must not skip the count's slots
/// (it would publish a consumer index past the device's producer, the
/// CQ would overrun at the next completion with its event possibly lost
/// among others, and the frames in flight when the periodic QUERY_CQ
/// recreates it would be gone: the hostile-model fuzz's lost frame). It
/// is an ordinary completion the queue checks like any other.
#[test]
fn a_title_on_a_cq_without_compression_is_no_session() {
    let sim = SimPlatform::new_loopback(Personality::ConnectX5, Mode::Synchronous);
    let dma_start = sim.dma_in_use();
    let a =
        Adapter::attach(sim.clone(), common::config()).unwrap_or_else(|f| panic!("{}", f.error));
    let r = mlx5::Resources::of(&a).expect("resources");
    let mut port = mlx5::QueueSet::open(a, r, EthConfig::default())
        .unwrap_or_else(|f| panic!("open: {}", f.error));
    let mac = port_mac(&sim);
    let frame = |b: &mut [u8]| {
        b.fill(7);
        b[..6].copy_from_slice(&mac);
        b[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 9]);
        b[12..14].copy_from_slice(&[0x88, 0xb5]);
    };
    let loop_one = |port: &mut common::Port| {
        port.transmit(100, frame).unwrap();
        port.flush();
        common::eventually(|| {
            port.poll();
            port.run_pending_recoveries();
            let got = port.receive(|b, _| b.len()).is_some();
            port.flush();
            got
        })
    };
    assert!(loop_one(&mut port));
    let cqs = [port.tx_cq().unwrap().cqn.0, port.rx_cq_at(0).unwrap().cqn.0];
    for cqn in cqs {
        let mut e = [0u8; 64];
        // byte_cnt (0x2c): a session of 200; op_own (0x3f): opcode REQ /
        // RESP_SEND [7:4], format 3 [3:2].
        e[0x2c..0x30].copy_from_slice(&200u32.to_be_bytes());
        let op = if cqn == cqs[0] { 0x0 } else { 0x2 };
        e[0x3f] = (op << 4) | (3 << 2);
        sim.with_model(|f| assert!(mlx5_sim::cmd::cq::post(f, cqn, &mut e)));
        for _ in 0..4 {
            port.poll();
            while port.receive(|b, _| b.len()).is_some() {}
            port.flush();
        }
        // The owner's recovery step (the packet path only records).
        port.run_pending_recoveries();
        sim.with_model(|f| {
            let c = f.nic.cqs.get(cqn).expect("the CQ is still there");
            let ahead = c.consumer.wrapping_sub(c.producer) & 0xff_ffff;
            assert!(
                c.consumer == c.producer || ahead > 0x80_0000,
                "CQ {cqn:#x}: consumer {:#x} past producer {:#x}",
                c.consumer,
                c.producer
            );
        });
        // The next completions land, no overrun, frames go round.
        for _ in 0..4 {
            assert!(loop_one(&mut port), "after the title on CQ {cqn:#x}");
        }
        sim.with_model(|f| {
            let c = f.nic.cqs.get(cqn).expect("the CQ");
            assert_eq!((c.status, c.overruns), (0, 0), "CQ {cqn:#x}");
        });
    }
    let (a, rep) = port.close();
    assert_eq!(rep.errors, 0, "close: {rep:?}");
    let (_, d) = a.detach();
    assert_eq!((d.errors, d.pages_lost), (0, 0), "{d:?}");
    assert_eq!(sim.dma_in_use(), dma_start);
    assert!(sim.sanitizer_violations().is_empty());
}

fn port_mac(sim: &SimPlatform) -> [u8; 6] {
    sim.mac()
}

#[test]
fn a_fatal_event_marks_the_adapter_failed_and_detach_still_frees_everything() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let dma_start = sim.dma_in_use();
    let mut a =
        Adapter::attach(sim.clone(), common::config()).unwrap_or_else(|f| panic!("{}", f.error));
    let eq0 = a.eq0().expect("EQ0").0.0;
    let mut rng = Rng(7);
    let mut data = [0u8; 28];
    rng.fill(&mut data);
    sim.with_model(|f| mlx5_sim::cmd::eq::write_eqe(f, eq0, event::INTERNAL_ERROR, 0, &data));
    assert!(a.poll().is_err());
    assert!(a.is_failed());
    let (_, d) = a.detach();
    assert!(d.reset, "{d:?}");
    assert_eq!(sim.dma_in_use(), dma_start);
    assert!(sim.sanitizer_violations().is_empty());
}

// ---------------------------------------------------------------------
// Transceiver reads: MCIA replies and the module EEPROM bytes they carry
// are device data like any other.

/// Fix the SFF check codes of a random image (sometimes), so decoding
/// goes past them: SFF-8472 CC_BASE (byte 63 over 0-62), CC_EXT (95 over
/// 64-94), A2h CC_DMI (95 over 0-94); SFF-8636 CC_BASE (191 over
/// 128-190), CC_EXT (223 over 192-222).
fn fix_check_codes(low: &mut [u8], a2: Option<&mut [u8]>) {
    let fix = |b: &mut [u8], from: usize, at: usize| {
        if b.len() > at {
            b[at] = mlx5::sff::check_code(&b[from..at]);
        }
    };
    if low.first() == Some(&0x03) {
        fix(low, 0, 63);
        fix(low, 64, 95);
    } else {
        fix(low, 128, 191);
        fix(low, 192, 223);
    }
    if let Some(a2) = a2 {
        fix(a2, 0, 95);
    }
}

/// A random EEPROM image: an identifier the decoder knows most of the
/// time, random flags (so the A2h / page 03h paths are taken), random
/// lengths for the optional pages, check codes right half the time.
fn random_image(rng: &mut Rng) -> (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut low = rng.bytes(256);
    if rng.percent(80) {
        low[0] = [0x03, 0x0c, 0x0d, 0x11][rng.below(4) as usize];
    }
    let len = |rng: &mut Rng, full: usize| {
        if rng.percent(70) {
            full
        } else {
            rng.below(full as u64 + 1) as usize
        }
    };
    low.truncate(len(rng, 256));
    let mut a2 = rng.percent(50).then(|| {
        let n = len(rng, 256);
        rng.bytes(n)
    });
    let page3 = rng.percent(50).then(|| {
        let n = len(rng, 128);
        rng.bytes(n)
    });
    if rng.percent(50) {
        fix_check_codes(&mut low, a2.as_deref_mut());
    }
    (low, a2, page3)
}

#[test]
fn transceiver_reads_take_random_mcia_replies_and_eeprom_bytes() {
    let n = cases(3000);
    let mut rng = Rng(0x5eed_0c1a);
    let t = std::time::Instant::now();
    // The parsers: MCIA replies as ACCESS_REGISTER output, then the
    // decoder on random images.
    let mut decoded = 0;
    for _ in 0..n {
        let req = mlx5::module::mcia_read(0, 0x50, 0, 0, 48);
        let cmd = AccessRegister {
            reg: mlx5::module::REG_MCIA,
            write: false,
            data: &req,
        };
        let out = rng.bytes(cmd.out_len());
        if let Ok(d) = cmd.parse(&out) {
            let status = mlx5::module::mcia::STATUS.get(&d) as u8;
            let _ = mlx5::module::mcia_status_name(status);
            let _ = d.get(mlx5::module::mcia::DWORDS..mlx5::module::mcia::DWORDS + 48);
        }
        let (low, a2, page3) = random_image(&mut rng);
        let img = mlx5::module::ModuleImage {
            low,
            a2,
            page3,
            commands: 0,
        };
        match img.decode() {
            Ok(t) => {
                decoded += 1;
                let _ = format!("{t:?}");
            }
            Err(e) => assert!(!format!("{e}").is_empty()),
        }
    }
    // Through the driver: the model's cage holds a module with a random
    // image or in a random error state, and its firmware sometimes
    // corrupts the MCIA replies themselves (status, header, data).
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let dma_start = sim.dma_in_use();
    let mut a = Adapter::attach(sim.clone(), common::config())
        .unwrap_or_else(|f| panic!("attach: {}", f.error));
    let (mut read, mut refused) = (0, 0);
    for case in 0..n / 10 {
        let (low, a2, page3) = random_image(&mut rng);
        let error = rng.percent(10).then(|| rng.below(12) as u8);
        let pulled = rng.percent(5);
        sim.with_model(|d| {
            let m = d.phys_port.module.as_mut().expect("a module");
            m.eeprom.low = [0; 256];
            m.eeprom.low[..low.len()].copy_from_slice(&low);
            m.eeprom.a2 = a2.map(|b| {
                let mut p = [0u8; 256];
                p[..b.len()].copy_from_slice(&b);
                p
            });
            m.eeprom.pages = page3
                .map(|b| {
                    let mut p = [0u8; 128];
                    p[..b.len()].copy_from_slice(&b);
                    vec![(3, p)]
                })
                .unwrap_or_default();
            m.error = error;
            if pulled {
                d.pull_module_at_read = Some(d.module_reads + 1 + rng.below(8));
            }
        });
        if rng.percent(20) {
            sim.inject(mlx5_sim::Fault::CorruptOutputs {
                seed: 0x0c1a_0000 + case as u64,
                per_mille: [10, 100][case % 2],
            });
        }
        match a.read_module() {
            Ok(img) => {
                read += 1;
                let _ = img
                    .decode()
                    .map_err(|e| assert!(!format!("{e}").is_empty()));
            }
            Err(e) => {
                refused += 1;
                assert!(!format!("{e}").is_empty());
            }
        }
        let _ = a.module_state();
        let _ = a.poll();
        sim.clear_faults();
        sim.with_model(|d| {
            d.pull_module_at_read = None;
            if d.phys_port.module.is_none() {
                d.insert_module(mlx5_sim::module::ModuleKind::Dac100g)
                    .unwrap();
            }
        });
        let _ = a.poll();
    }
    eprintln!(
        "transceiver: {n} MCIA replies and images ({decoded} decoded), {} reads through the \
         driver ({read} read, {refused} refused); {}",
        n / 10,
        rate(n + n / 10, t)
    );
    assert!(decoded > 0 && read > 0 && refused > 0);
    // Honest again: the module reads and decodes, detach is clean.
    sim.with_model(|d| {
        d.remove_module();
        d.insert_module(mlx5_sim::module::ModuleKind::Dac100g)
            .unwrap();
    });
    let _ = a.poll();
    a.transceiver().expect("an honest module decodes");
    let (_, d) = a.detach();
    assert_eq!((d.errors, d.pages_lost), (0, 0), "{d:?}");
    assert_eq!(sim.dma_in_use(), dma_start);
    assert!(sim.sanitizer_violations().is_empty());
}
