//! A raw mlx5 command client, written for these tests independently of the
//! driver and of the model's own layout code: every offset below is typed
//! in from mlx5_ifc.h / device.h (cited beside it), so a shared mistake in
//! the model's layouts would not pass here unnoticed.
#![allow(dead_code)]

pub mod ms_rss;

use cxos_drivers::{Clock, DmaAlloc, DmaRegion, Mmio};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimDma, SimPlatform};
use std::time::{Duration, Instant};

// Opcodes (mlx5_ifc.h MLX5_CMD_OP_*).
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
pub const QUERY_SPECIAL_CONTEXTS: u16 = 0x203;
pub const CREATE_EQ: u16 = 0x301;
pub const DESTROY_EQ: u16 = 0x302;
pub const QUERY_EQ: u16 = 0x303;
pub const QUERY_VPORT_STATE: u16 = 0x750;
pub const QUERY_NIC_VPORT_CONTEXT: u16 = 0x754;
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
pub const ALLOC_TD: u16 = 0x816;
pub const DEALLOC_TD: u16 = 0x817;

/// A message buffer with big-endian setters at byte offsets.
#[derive(Clone, Debug)]
pub struct Msg(pub Vec<u8>);

impl Msg {
    /// `len` bytes with opcode (be16 @0) and op_mod (be16 @6) filled in.
    pub fn new(opcode: u16, op_mod: u16, len: usize) -> Msg {
        let mut m = Msg(vec![0; len]);
        m.be16(0, opcode).be16(6, op_mod);
        m
    }
    pub fn u8(&mut self, off: usize, v: u8) -> &mut Msg {
        self.0[off] = v;
        self
    }
    pub fn be16(&mut self, off: usize, v: u16) -> &mut Msg {
        self.0[off..off + 2].copy_from_slice(&v.to_be_bytes());
        self
    }
    pub fn be32(&mut self, off: usize, v: u32) -> &mut Msg {
        self.0[off..off + 4].copy_from_slice(&v.to_be_bytes());
        self
    }
    pub fn be64(&mut self, off: usize, v: u64) -> &mut Msg {
        self.0[off..off + 8].copy_from_slice(&v.to_be_bytes());
        self
    }
}

pub fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}
pub fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}
pub fn be64(b: &[u8], off: usize) -> u64 {
    u64::from_be_bytes(b[off..off + 8].try_into().unwrap())
}

/// What came back in the entry: delivery status (entry byte 0x3f >> 1) and
/// the output (status @0, syndrome @4) when delivered.
#[derive(Debug)]
pub struct Reply {
    pub delivery: u8,
    pub out: Vec<u8>,
}

impl Reply {
    pub fn status(&self) -> u8 {
        self.out[0]
    }
    pub fn syndrome(&self) -> u32 {
        be32(&self.out, 4)
    }
}

/// How the client builds its entries (for delivery-error tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tweak {
    pub entry_type: Option<u8>,
    pub bad_block_number: bool,
    pub bad_token: bool,
    pub misalign_in: bool,
    pub reserved_byte: bool,
}

pub struct Raw {
    pub p: SimPlatform,
    cmdq: SimDma,
    token: u8,
    /// Buffers kept alive until the next command on the slot.
    keep: Vec<SimDma>,
    pub slot: u32,
}

/// Mailbox block (device.h `struct mlx5_cmd_prot_block`): data 512 bytes,
/// next @0x230, block_num @0x238, token @0x23d; blocks at 1 KiB strides.
const BLOCK_STRIDE: usize = 1024;
const BLOCK_DATA: usize = 512;

/// Polls `initializing` (init segment 0x1fc bit 31) until firmware clears
/// it; the model's firmware boots in a few milliseconds.
pub fn wait_initialized(p: &SimPlatform) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while p.bar0_read_be32(0x1fc) >> 31 != 0 {
        assert!(
            std::time::Instant::now() < until,
            "initializing never clears"
        );
        std::thread::yield_now();
    }
}

impl Raw {
    pub fn new(pers: Personality, mode: Mode) -> Raw {
        let p = SimPlatform::new(pers, mode);
        Raw::on(p)
    }

    pub fn on(p: SimPlatform) -> Raw {
        // init segment (device.h struct mlx5_init_seg): cmdif_rev @0x004 [31:16].
        assert_eq!(p.bar0_read_be32(0x004) >> 16, 5);
        // PRM start-up: wait for initializing (0x1fc bit 31) to clear, write
        // the command queue address (0x010 high, 0x014 low), wait again.
        wait_initialized(&p);
        let cmdq = p.dma_alloc(4096).unwrap();
        let a = cmdq.device_addr().get();
        p.bar0_write_be32(0x010, (a >> 32) as u32);
        p.bar0_write_be32(0x014, a as u32);
        wait_initialized(&p);
        Raw {
            p,
            cmdq,
            token: 0,
            keep: Vec::new(),
            slot: 0,
        }
    }

    fn chain(&mut self, data: &[u8], token: u8, t: Tweak) -> u64 {
        if data.len() <= 16 {
            return 0;
        }
        let rest = &data[16..];
        let n = rest.len().div_ceil(BLOCK_DATA);
        let buf = self.p.dma_alloc(n * BLOCK_STRIDE).unwrap();
        let base = buf.device_addr().get();
        for i in 0..n {
            let b = i * BLOCK_STRIDE;
            let chunk = &rest[i * BLOCK_DATA..rest.len().min((i + 1) * BLOCK_DATA)];
            buf.write_bytes(b, chunk);
            let next = if i + 1 < n {
                base + ((i + 1) * BLOCK_STRIDE) as u64
            } else {
                0
            };
            buf.write_be64(b + 0x230, next);
            let num = if t.bad_block_number && i == n - 1 {
                i as u32 + 7
            } else {
                i as u32
            };
            buf.write_be32(b + 0x238, num);
            buf.write_u8(b + 0x23d, if t.bad_token { token ^ 0x55 } else { token });
        }
        self.keep.push(buf);
        if t.misalign_in { base + 64 } else { base }
    }

    /// Submit `input` with room for `outlen` output bytes on the current slot.
    pub fn submit(&mut self, input: &[u8], outlen: usize, t: Tweak) {
        self.keep.clear();
        self.token = self.token.wrapping_add(1).max(1);
        let token = self.token;
        let in_ptr = self.chain(input, token, t);
        let zero_out = vec![0u8; outlen];
        let out_ptr = self.chain(&zero_out, token, Tweak::default());
        // Command entry (device.h struct mlx5_cmd_layout).
        let e = self.slot as usize * 64;
        let q = &self.cmdq;
        q.fill(e, 64, 0);
        q.write_u8(e, t.entry_type.unwrap_or(7)); // type @0x00
        if t.reserved_byte {
            q.write_u8(e + 1, 0x80);
        }
        q.write_be32(e + 0x04, input.len() as u32); // inlen
        q.write_be64(e + 0x08, in_ptr); // in_ptr
        q.write_bytes(e + 0x10, &input[..input.len().min(16)]); // in[4]
        q.write_be64(e + 0x30, out_ptr); // out_ptr
        q.write_be32(e + 0x38, outlen as u32); // outlen
        q.write_u8(e + 0x3c, token); // token
        q.write_u8(e + 0x3f, 1); // status_own: hardware owns
        self.p.bar0_write_be32(0x018, 1 << self.slot); // cmd_dbell
    }

    /// Whether the current slot was handed back.
    pub fn done(&self) -> bool {
        self.cmdq.read_u8(self.slot as usize * 64 + 0x3f) & 1 == 0
    }

    /// Wait (generously, the model may be on a loaded thread) for completion.
    pub fn wait(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.done() {
            if Instant::now() > deadline {
                return false;
            }
            self.p.relax();
        }
        true
    }

    /// Collect the reply of the current slot.
    pub fn reply(&self, outlen: usize) -> Reply {
        let e = self.slot as usize * 64;
        let delivery = self.cmdq.read_u8(e + 0x3f) >> 1;
        let mut out = vec![0u8; outlen];
        let inline = outlen.min(16);
        self.cmdq.read_bytes(e + 0x20, &mut out[..inline]);
        if outlen > 16 {
            // The output chain is the last buffer kept.
            let buf = self.keep.last().unwrap();
            let rest = &mut out[16..];
            let n = rest.len().div_ceil(BLOCK_DATA);
            for i in 0..n {
                let lo = i * BLOCK_DATA;
                let hi = rest.len().min(lo + BLOCK_DATA);
                buf.read_bytes(i * BLOCK_STRIDE, &mut rest[lo..hi]);
            }
        }
        Reply { delivery, out }
    }

    pub fn exec_tweaked(&mut self, input: &[u8], outlen: usize, t: Tweak) -> Reply {
        self.submit(input, outlen, t);
        assert!(self.wait(), "command {:#x} never completed", be16(input, 0));
        self.reply(outlen)
    }

    pub fn exec(&mut self, input: &Msg, outlen: usize) -> Reply {
        self.exec_tweaked(&input.0, outlen, Tweak::default())
    }

    /// Execute and require delivery OK and status OK; returns the output.
    pub fn ok(&mut self, input: &Msg, outlen: usize) -> Vec<u8> {
        let r = self.exec(input, outlen);
        assert_eq!(r.delivery, 0, "delivery status of {:#x}", be16(&input.0, 0));
        assert_eq!(
            (r.status(), r.syndrome()),
            (0, 0),
            "status/syndrome of opcode {:#x} op_mod {:#x}",
            be16(&input.0, 0),
            be16(&input.0, 6)
        );
        r.out
    }

    /// Execute expecting a command failure; returns (status, syndrome).
    pub fn fails(&mut self, input: &Msg, outlen: usize) -> (u8, u32) {
        let r = self.exec(input, outlen);
        assert_eq!(r.delivery, 0, "delivery status");
        (r.status(), r.syndrome())
    }

    // ---- bring-up steps ----

    pub fn simple(&mut self, opcode: u16, op_mod: u16) -> Vec<u8> {
        self.ok(&Msg::new(opcode, op_mod, 0x10), 0x10)
    }

    /// QUERY_PAGES (query_pages_out: num_pages @0x0c, signed).
    pub fn query_pages(&mut self, op_mod: u16) -> i32 {
        let out = self.ok(&Msg::new(QUERY_PAGES, op_mod, 0x10), 0x10);
        be32(&out, 0x0c) as i32
    }

    /// MANAGE_PAGES give (input_num_entries @0x0c, pas @0x10); keeps the pages.
    pub fn give_pages(&mut self, n: usize, pages: &mut Vec<SimDma>) {
        let mut m = Msg::new(MANAGE_PAGES, 1, 0x10 + 8 * n);
        m.be32(0x0c, n as u32);
        for i in 0..n {
            let pg = self.p.dma_alloc(4096).unwrap();
            m.be64(0x10 + 8 * i, pg.device_addr().get());
            pages.push(pg);
        }
        self.ok(&m, 0x10);
    }

    /// MANAGE_PAGES take of up to `n`: returns the addresses given back and
    /// frees those pages.
    pub fn take_pages(&mut self, n: usize, pages: &mut Vec<SimDma>) -> Vec<u64> {
        let mut m = Msg::new(MANAGE_PAGES, 2, 0x10);
        m.be32(0x0c, n as u32);
        let out = self.ok(&m, 0x10 + 8 * n);
        let count = be32(&out, 0x08) as usize; // output_num_entries
        let addrs: Vec<u64> = (0..count).map(|i| be64(&out, 0x10 + 8 * i)).collect();
        pages.retain(|p| !addrs.contains(&p.device_addr().get()));
        addrs
    }

    /// ALLOC_UAR (alloc_uar_out: uar @ bits 0x48..0x60 -> be32 @0x08 & 0xffffff).
    pub fn alloc_uar(&mut self) -> u32 {
        be32(&self.simple(ALLOC_UAR, 0), 0x08) & 0xff_ffff
    }

    /// CREATE_EQ with a fresh buffer of 2^log_size EQEs whose owner bytes
    /// are initialised to 1 (create_eq_in: eqc @0x10 -- log_eq_size bits
    /// 0x63 (byte 0x1c [4:0]), uar_page bits 0x68 (bytes 0x1d..0x20), intr
    /// bits 0xb4 (be16 @0x26 [11:0]); event_bitmask @0x58; pas @0x110).
    pub fn create_eq(&mut self, uar: u32, vector: u16, mask: u64, log_size: u8) -> (u8, SimDma) {
        let bytes = 64usize << log_size;
        let buf = self.p.dma_alloc(bytes).unwrap();
        for i in 0..(1usize << log_size) {
            buf.write_u8(i * 64 + 0x3f, 1);
        }
        let npages = bytes.div_ceil(4096);
        let mut m = Msg::new(CREATE_EQ, 0, 0x110 + 8 * npages);
        m.be32(0x1c, ((log_size as u32) << 24) | uar);
        m.be16(0x26, vector);
        m.be64(0x58, mask);
        for i in 0..npages {
            m.be64(0x110 + 8 * i, buf.device_addr().get() + (i * 4096) as u64);
        }
        let out = self.ok(&m, 0x10);
        (out[0x0b], buf) // eq_number bits 0x58..0x60
    }

    /// The whole bring-up, as a driver would do it (Linux order).
    pub fn bring_up(&mut self) -> Up {
        let mut pages = Vec::new();
        self.simple(ENABLE_HCA, 0);
        let issi = self.ok(&Msg::new(QUERY_ISSI, 0, 0x10), 0x70);
        assert_eq!(
            be32(&issi, 0x6c) & 2,
            2,
            "ISSI 1 supported (supported_issi_dw0 @0x6c)"
        );
        let mut set_issi = Msg::new(SET_ISSI, 0, 0x10);
        set_issi.be16(0x0a, 1); // current_issi bits 0x50
        self.ok(&set_issi, 0x10);
        let boot = self.query_pages(1);
        assert!(boot > 0);
        self.give_pages(boot as usize, &mut pages);
        assert_eq!(self.query_pages(1), 0, "boot pages satisfied");
        // QUERY_HCA_CAP general, current (op_mod 1): 4096 bytes at @0x10.
        let caps = self.ok(&Msg::new(QUERY_HCA_CAP, 1, 0x10), 0x1010);
        // SET_HCA_CAP general with the current caps sent back.
        let mut set = Msg::new(SET_HCA_CAP, 0, 0x1010);
        set.0[0x10..].copy_from_slice(&caps[0x10..]);
        self.ok(&set, 0x10);
        let init = self.query_pages(2);
        assert!(init > 0);
        self.give_pages(init as usize, &mut pages);
        self.simple(INIT_HCA, 0);
        let mut ver = Msg::new(SET_DRIVER_VERSION, 0, 0x50);
        ver.0[0x10..0x1a].copy_from_slice(b"raw-client");
        self.ok(&ver, 0x10);
        let adapter = self.ok(&Msg::new(QUERY_ADAPTER, 0, 0x10), 0x110);
        assert_eq!(be16(&adapter, 0x10 + 0x1e), 0x15b3, "vsd_vendor_id");
        let uar = self.alloc_uar();
        let (eq, eq_buf) = self.create_eq(uar, 0, (1 << 0x0a) | (1 << 0x0b) | (1 << 0x09), 6);
        let pd = be32(&self.simple(ALLOC_PD, 0), 0x08) & 0xff_ffff;
        let td = be32(&self.simple(ALLOC_TD, 0), 0x08) & 0xff_ffff;
        let special = self.simple(QUERY_SPECIAL_CONTEXTS, 0);
        let resd_lkey = be32(&special, 0x0c);
        let qc = self.simple(ALLOC_Q_COUNTER, 0)[0x0b];
        Up {
            pages,
            uar,
            eq,
            eq_buf,
            pd,
            td,
            resd_lkey,
            q_counter: qc,
        }
    }

    /// Teardown in reverse; every page back, then DISABLE_HCA.
    pub fn tear_down(&mut self, mut up: Up) {
        let mut m = Msg::new(DEALLOC_Q_COUNTER, 0, 0x10);
        m.u8(0x0b, up.q_counter);
        self.ok(&m, 0x10);
        let mut m = Msg::new(DEALLOC_TD, 0, 0x10);
        m.be32(0x08, up.td);
        self.ok(&m, 0x10);
        let mut m = Msg::new(DEALLOC_PD, 0, 0x10);
        m.be32(0x08, up.pd);
        self.ok(&m, 0x10);
        let mut m = Msg::new(DESTROY_EQ, 0, 0x10);
        m.u8(0x0b, up.eq);
        self.ok(&m, 0x10);
        let mut m = Msg::new(DEALLOC_UAR, 0, 0x10);
        m.be32(0x08, up.uar);
        self.ok(&m, 0x10);
        self.simple(TEARDOWN_HCA, 0);
        while !up.pages.is_empty() {
            let got = self.take_pages(16, &mut up.pages);
            assert!(!got.is_empty(), "model returns pages after teardown");
        }
        self.simple(DISABLE_HCA, 0);
    }
}

/// What bring-up built.
pub struct Up {
    pub pages: Vec<SimDma>,
    pub uar: u32,
    pub eq: u8,
    pub eq_buf: SimDma,
    pub pd: u32,
    pub td: u32,
    pub resd_lkey: u32,
    pub q_counter: u8,
}

pub const MODES: [Mode; 2] = [Mode::Synchronous, Mode::Threaded];

/// Page addresses for tests that only need addresses (kept alive by the
/// platform's test allocator list).
pub trait PagesForTests {
    fn dma_alloc_pages(&self, n: usize) -> Vec<u64>;
}

impl PagesForTests for SimPlatform {
    fn dma_alloc_pages(&self, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| {
                let pg = self.dma_alloc(4096).unwrap();
                let a = pg.device_addr().get();
                std::mem::forget(pg);
                a
            })
            .collect()
    }
}

/// Reads EQEs the way a driver does (device.h struct mlx5_eqe: type @0x01,
/// sub_type @0x03, data @0x20..0x3c, owner @0x3f; valid when the owner bit
/// equals (ci >> log_size) & 1).
pub struct EqReader {
    pub log_size: u8,
    pub ci: u32,
}

pub struct Eqe {
    pub ty: u8,
    pub sub: u8,
    pub data: [u8; 28],
}

impl EqReader {
    pub fn poll(&mut self, buf: &SimDma) -> Option<Eqe> {
        let n = 1u32 << self.log_size;
        let at = ((self.ci & (n - 1)) * 64) as usize;
        let owner = buf.read_u8(at + 0x3f) & 1;
        if owner as u32 != (self.ci >> self.log_size) & 1 {
            return None;
        }
        let mut data = [0u8; 28];
        buf.read_bytes(at + 0x20, &mut data);
        self.ci += 1;
        Some(Eqe {
            ty: buf.read_u8(at + 1),
            sub: buf.read_u8(at + 3),
            data,
        })
    }

    /// Next EQE that is not a command completion (those interleave with
    /// everything while an EQ subscribes to them).
    pub fn next_event(&mut self, buf: &SimDma) -> Option<Eqe> {
        loop {
            let e = self.poll(buf)?;
            if e.ty != 0x0a {
                return Some(e);
            }
        }
    }

    /// Poll until an EQE shows up (the threaded model writes it just after
    /// handing the command back).
    pub fn wait_eqe(&mut self, p: &SimPlatform, buf: &SimDma) -> Option<Eqe> {
        let mut got = None;
        eventually(p, || {
            got = self.poll(buf);
            got.is_some()
        });
        got
    }

    pub fn drain(&mut self, buf: &SimDma) -> Vec<Eqe> {
        std::iter::from_fn(|| self.poll(buf)).collect()
    }

    /// Arm (UAR + 0x40) or update (UAR + 0x48): be32 eqn << 24 | ci.
    pub fn doorbell(&self, p: &SimPlatform, uar: u32, eqn: u8, arm: bool) {
        let off = uar as usize * 4096 + if arm { 0x40 } else { 0x48 };
        p.bar0_write_be32(off, ((eqn as u32) << 24) | (self.ci & 0xff_ffff));
    }
}

impl Raw {
    /// Put a NOP in `slot` without ringing (several slots in flight).
    pub fn stage_nop(&mut self, slot: u32) {
        let e = slot as usize * 64;
        let q = &self.cmdq;
        q.fill(e, 64, 0);
        q.write_u8(e, 7);
        q.write_be32(e + 4, 0x10);
        q.write_be16(e + 0x10, NOP);
        q.write_be32(e + 0x38, 0x10);
        q.write_u8(e + 0x3c, 0x42);
        q.write_u8(e + 0x3f, 1);
    }

    pub fn slot_done(&self, slot: u32) -> bool {
        self.cmdq.read_u8(slot as usize * 64 + 0x3f) & 1 == 0
    }

    pub fn slot_status(&self, slot: u32) -> (u8, u8) {
        let e = slot as usize * 64;
        (
            self.cmdq.read_u8(e + 0x3f) >> 1,
            self.cmdq.read_u8(e + 0x20),
        )
    }

    /// Raw access to the command queue (fuzzing).
    pub fn cmdq(&self) -> &SimDma {
        &self.cmdq
    }
}

/// Wait generously for `cond` (threaded model on a loaded machine).
pub fn eventually(p: &SimPlatform, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        p.relax();
    }
    true
}

impl Raw {
    /// eqc.status of EQ `eqn` (QUERY_EQ: byte 0x10 high nibble).
    pub fn with_eq_status(&mut self, eqn: u8) -> u8 {
        let mut q = Msg::new(QUERY_EQ, 0, 0x10);
        q.u8(0x0b, eqn);
        self.ok(&q, 0x110)[0x10] >> 4
    }
}

impl Raw {
    /// Submit with the input chain cut after its first block (next = 0).
    pub fn exec_truncated_chain(&mut self, input: &[u8], outlen: usize) -> Reply {
        self.submit(input, outlen, Tweak::default());
        assert!(self.wait());
        // Answered once; now hand it back with the chain cut.
        let e = self.slot as usize * 64;
        let in_ptr = self.cmdq.read_be64(e + 0x08);
        let buf = &self.keep[0];
        assert_eq!(buf.device_addr().get(), in_ptr);
        buf.write_be64(0x230, 0);
        self.cmdq.write_u8(e + 0x3f, 1);
        self.p.bar0_write_be32(0x018, 1 << self.slot);
        assert!(self.wait());
        self.reply(outlen)
    }
}
