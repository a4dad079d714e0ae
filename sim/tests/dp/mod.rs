//! A raw data path client for the model's tests, written independently of
//! the driver and of the model's layout code: every offset is typed in from
//! mlx5_ifc.h (contexts, commands), qp.h (WQE segments) and device.h / cq.h
//! (CQEs), cited beside it.
#![allow(dead_code)]

use crate::common::*;
use cxos_drivers::{DmaAlloc, DmaRegion, Mmio, Msix};
use mlx5_sim::Personality;
use mlx5_sim::harness::{SimDma, SimPlatform};

pub const CREATE_CQ: u16 = 0x400;
pub const DESTROY_CQ: u16 = 0x401;
pub const QUERY_CQ: u16 = 0x402;
pub const MODIFY_CQ: u16 = 0x403;
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

pub const RST: u8 = 0;
pub const RDY: u8 = 1;
pub const ERR: u8 = 3;

/// Status values (device.h MLX5_CMD_STAT_*).
pub const BAD_PARAM: u8 = 0x03;
pub const BAD_RESOURCE: u8 = 0x05;
pub const RESOURCE_BUSY: u8 = 0x06;
pub const BAD_RES_STATE: u8 = 0x09;

/// Receive buffer size: a 9000-byte MTU frame plus header and tag fits.
pub const RX_BUF: usize = 9216;

fn number(out: &[u8]) -> u32 {
    // Every create_*_out: the object number at bits 0x48..0x60.
    be32(out, 0x08) & 0xff_ffff
}

/// A CQ as a driver reads it (cq.h / device.h `struct mlx5_cqe64`).
pub struct CqRing {
    pub cqn: u32,
    pub buf: SimDma,
    pub dbr: SimDma,
    pub log: u8,
    pub ci: u32,
    pub sn: u32,
    pub uar: u32,
}

impl CqRing {
    /// The next CQE (64 bytes) if software owns it; publishes set_ci.
    pub fn poll(&mut self) -> Option<[u8; 64]> {
        let n = 1u32 << self.log;
        let at = ((self.ci & (n - 1)) * 64) as usize;
        let op_own = self.buf.read_u8(at + 0x3f);
        if op_own >> 4 == 0xf || (op_own & 1) as u32 != (self.ci >> self.log) & 1 {
            return None;
        }
        let mut e = [0u8; 64];
        self.buf.read_bytes(at, &mut e);
        self.ci += 1;
        // CQ doorbell record dword 0: set_ci (24 bits).
        self.dbr.write_be32(0, self.ci & 0xff_ffff);
        Some(e)
    }

    /// Poll until a CQE shows up (threaded model).
    pub fn wait(&mut self, p: &SimPlatform) -> Option<[u8; 64]> {
        let mut got = None;
        eventually(p, || {
            got = self.poll();
            got.is_some()
        });
        got
    }

    /// Arm for the next completion: dbr dword 1, then UAR +0x20 (64-bit:
    /// sn << 28 | cmd 0 << 24 | ci, CQN).
    pub fn arm(&mut self, p: &SimPlatform) {
        let word = ((self.sn & 3) << 28) | (self.ci & 0xff_ffff);
        self.dbr.write_be32(4, word);
        p.bar0_write_be64(
            self.uar as usize * 4096 + 0x20,
            ((word as u64) << 32) | self.cqn as u64,
        );
        self.sn += 1;
    }
}

pub fn cqe_opcode(e: &[u8; 64]) -> u8 {
    e[0x3f] >> 4
}
pub fn cqe_byte_cnt(e: &[u8; 64]) -> u32 {
    be32(e, 0x2c)
}
pub fn cqe_wqe_counter(e: &[u8; 64]) -> u16 {
    be16(e, 0x3c)
}
pub fn cqe_syndrome(e: &[u8; 64]) -> u8 {
    e[0x37]
}
pub fn cqe_qpn(e: &[u8; 64]) -> u32 {
    be32(e, 0x38) & 0xff_ffff
}

/// One port's queues: a send queue and a receive queue steered by MAC.
pub struct Net {
    pub raw: Raw,
    pub up: Up,
    pub mac: [u8; 6],
    pub comp_eq: u8,
    pub comp_eq_buf: SimDma,
    pub tx_cq: CqRing,
    pub rx_cq: CqRing,
    pub tisn: u32,
    pub sqn: u32,
    pub sq: SimDma,
    pub sq_dbr: SimDma,
    pub sq_log: u8,
    pub sq_pc: u16,
    /// Bytes the part requires inline (0 or 18: L2 + VLAN room).
    pub inline: usize,
    pub tx_bufs: SimDma,
    pub rqn: u32,
    pub rq: SimDma,
    pub rq_dbr: SimDma,
    pub rq_log: u8,
    pub rq_pc: u16,
    pub rx_bufs: SimDma,
    pub tirn: u32,
    pub table: u32,
    pub group: u32,
}

pub const COMP_VECTOR: u16 = 1;

impl Net {
    pub fn create_cq(raw: &mut Raw, uar: u32, eqn: u8, log: u8) -> CqRing {
        let p = raw.p.clone();
        let bytes = 64usize << log;
        let buf = p.dma_alloc(bytes).unwrap();
        for i in 0..(1usize << log) {
            buf.write_u8(i * 64 + 0x3f, 0xf1); // MLX5_CQE_INVALID << 4 | owner 1
        }
        let dbr = p.dma_alloc(64).unwrap();
        let npages = bytes.div_ceil(4096);
        let mut m = Msg::new(CREATE_CQ, 0, 0x110 + 8 * npages);
        // create_cq_in.cq_context at 0x10 (mlx5_ifc_cqc_bits): log_cq_size
        // bits 0x63..0x68 and uar_page 0x68..0x80 = dword 3; c_eqn dword 5;
        // dbr_addr bits 0x1c0 (byte 0x38).
        m.be32(0x10 + 0x0c, ((log as u32) << 24) | uar);
        m.be32(0x10 + 0x14, eqn as u32);
        m.be64(0x10 + 0x38, dbr.device_addr().get());
        for i in 0..npages {
            m.be64(0x110 + 8 * i, buf.device_addr().get() + 4096 * i as u64);
        }
        let cqn = number(&raw.ok(&m, 0x10));
        CqRing {
            cqn,
            buf,
            dbr,
            log,
            ci: 0,
            sn: 0,
            uar,
        }
    }

    /// Bring the function up and build: completion EQ (vector 1), TX and RX
    /// CQs, TIS, SQ (RDY), RQ (RDY, all WQEs posted), TIR, NIC_RX root
    /// table with a dmac group, entries for the port MAC and broadcast.
    pub fn open(p: SimPlatform) -> Net {
        let mut raw = Raw::on(p.clone());
        let up = raw.bring_up();
        let mac = p.mac();
        p.msix_enable(1, 4).unwrap();
        let (comp_eq, comp_eq_buf) = raw.create_eq(up.uar, COMP_VECTOR, 0, 7);
        // Arm the completion EQ: UAR +0x40, eqn << 24 | consumer index 0.
        p.bar0_write_be32(up.uar as usize * 4096 + 0x40, (comp_eq as u32) << 24);
        let tx_cq = Net::create_cq(&mut raw, up.uar, comp_eq, 8);
        let rx_cq = Net::create_cq(&mut raw, up.uar, comp_eq, 8);
        // create_tis_in: tisc at 0x20, transport_domain bits 0x128 (dword 9).
        let mut m = Msg::new(CREATE_TIS, 0, 0xc0);
        m.be32(0x20 + 0x24, up.td);
        let tisn = number(&raw.ok(&m, 0x10));
        let inline = match raw.p.personality() {
            Personality::ConnectX4 | Personality::ConnectX4Lx => 18,
            _ => 0,
        };
        let mut n = Net {
            raw,
            up,
            mac,
            comp_eq,
            comp_eq_buf,
            tx_cq,
            rx_cq,
            tisn,
            sqn: 0,
            sq: p.dma_alloc(64 << 7).unwrap(),
            sq_dbr: p.dma_alloc(64).unwrap(),
            sq_log: 7,
            sq_pc: 0,
            inline,
            tx_bufs: p.dma_alloc(128 * RX_BUF).unwrap(),
            rqn: 0,
            rq: p.dma_alloc(16 << 6).unwrap(),
            rq_dbr: p.dma_alloc(64).unwrap(),
            rq_log: 6,
            rq_pc: 0,
            rx_bufs: p.dma_alloc(64 * RX_BUF).unwrap(),
            tirn: 0,
            table: 0,
            group: 0,
        };
        n.sqn = n.create_sq();
        n.modify_sq(RST, RDY);
        n.rqn = n.create_rq(n.up.q_counter, 4);
        n.post_all_rx();
        n.modify_rq(RST, RDY);
        // create_tir_in: tirc at 0x20: inline_rqn bits 0xe8 (dword 7),
        // transport_domain bits 0x128 (dword 9).
        let mut m = Msg::new(CREATE_TIR, 0, 0x110);
        m.be32(0x20 + 0x1c, n.rqn);
        m.be32(0x20 + 0x24, n.up.td);
        n.tirn = number(&n.raw.ok(&m, 0x10));
        // create_flow_table_in: table_type byte 0x10 (0 NIC_RX);
        // flow_table_context at 0x18: level byte 1, log_size byte 3.
        let mut m = Msg::new(CREATE_FLOW_TABLE, 0, 0x58);
        m.u8(0x18 + 3, 4);
        n.table = number(&n.raw.ok(&m, 0x10));
        n.group = n.create_dmac_group(0, 15);
        n.set_root();
        n.set_entry(0, mac, 0);
        n.set_entry(1, [0xff; 6], 0);
        n.rx_cq.arm(&n.raw.p);
        n.tx_cq.arm(&n.raw.p);
        n
    }

    pub fn create_dmac_group(&mut self, start: u32, end: u32) -> u32 {
        // create_flow_group_in: table_id bits 0xa8 (dword 5), start_flow_index
        // 0xe0 (dword 7), end_flow_index 0x120 (dword 9), match_criteria_enable
        // byte 0x3f, match_criteria at 0x40: outer dmac_47_16 / dmac_15_0 at +8..+0xe.
        let mut m = Msg::new(CREATE_FLOW_GROUP, 0, 0x400);
        m.be32(0x14, self.table);
        m.be32(0x1c, start);
        m.be32(0x24, end);
        m.u8(0x3f, 1);
        for i in 0..6 {
            m.u8(0x48 + i, 0xff);
        }
        number(&self.raw.ok(&m, 0x10))
    }

    pub fn set_root(&mut self) {
        // set_flow_table_root_in: table_type byte 0x10, table_id dword 5.
        let mut m = Msg::new(SET_FLOW_TABLE_ROOT, 0, 0x40);
        m.be32(0x14, self.table);
        self.raw.ok(&m, 0x10);
    }

    pub fn fte(&self, index: u32, mac: [u8; 6], op_mod: u16, tirn: u32) -> Msg {
        // set_fte_in: table_id dword 5, flow_index dword 8; flow_context at
        // 0x40: group_id +0x04, action +0x0c (low 16 bits: 0x4 FWD_DEST),
        // destination_list_size +0x10 (low 24 bits), match_value at +0x40
        // (dmac at +0x48), destination[0] at +0x300: type 2 (TIR) << 24 | id.
        let mut m = Msg::new(SET_FLOW_TABLE_ENTRY, op_mod, 0x348);
        m.be32(0x14, self.table);
        m.be32(0x20, index);
        m.be32(0x44, self.group);
        m.be32(0x4c, 0x4);
        m.be32(0x50, 1);
        for (i, b) in mac.iter().enumerate() {
            m.u8(0x88 + i, *b);
        }
        m.be32(0x340, (2 << 24) | tirn);
        m
    }

    pub fn set_entry(&mut self, index: u32, mac: [u8; 6], op_mod: u16) {
        let m = self.fte(index, mac, op_mod, self.tirn);
        self.raw.ok(&m, 0x10);
    }

    pub fn sq_msg(&self, cqn: u32, tisn: u32) -> Msg {
        let npages = (64usize << self.sq_log).div_ceil(4096);
        let mut m = Msg::new(CREATE_SQ, 0, 0x110 + 8 * npages);
        // sqc at 0x20: byte 0 = flush_in_error_en (bit 3: 0x10) |
        // min_wqe_inline_mode (bits 5..8); cqn dword 2; tis_lst_sz bits
        // 0x100 (be16 at +0x20); tis_num_0 dword 0xb.
        m.u8(0x20, 0x10 | if self.inline > 0 { 1 } else { 0 });
        m.be32(0x20 + 0x08, cqn);
        m.be16(0x20 + 0x20, 1);
        m.be32(0x20 + 0x2c, tisn);
        self.wq(&mut m, 6, self.sq_log, self.up.uar, &self.sq, &self.sq_dbr);
        m
    }

    /// The wq context at 0x50 (`mlx5_ifc_wq_bits`): wq_type 1 (byte 0 high
    /// nibble), pd dword 2, uar_page dword 3, dbr_addr bytes 0x10..0x18,
    /// log_wq_stride byte 0x21, log_wq_pg_sz byte 0x22, log_wq_sz byte 0x23,
    /// pas at +0xc0.
    fn wq(&self, m: &mut Msg, stride: u8, log: u8, uar: u32, ring: &SimDma, dbr: &SimDma) {
        let w = 0x50;
        m.u8(w, 0x10);
        m.be32(w + 0x08, self.up.pd);
        m.be32(w + 0x0c, uar);
        m.be64(w + 0x10, dbr.device_addr().get());
        m.u8(w + 0x21, stride);
        m.u8(w + 0x23, log);
        let npages = (1usize << (stride + log)).div_ceil(4096);
        for i in 0..npages {
            m.be64(w + 0xc0 + 8 * i, ring.device_addr().get() + 4096 * i as u64);
        }
    }

    fn create_sq(&mut self) -> u32 {
        let m = self.sq_msg(self.tx_cq.cqn, self.tisn);
        number(&self.raw.ok(&m, 0x10))
    }

    pub fn rq_msg(&self, counter_set: u8, stride: u8) -> Msg {
        let npages = (1usize << (stride + self.rq_log)).div_ceil(4096);
        let mut m = Msg::new(CREATE_RQ, 0, 0x110 + 8 * npages);
        // rqc at 0x20: vsd bit 3 (byte 0, 0x10); flush_in_error_en bit 0xd
        // (byte 1, 0x04); cqn dword 2; counter_set_id byte 0xc.
        m.u8(0x20, 0x10);
        m.u8(0x21, 0x04);
        m.be32(0x20 + 0x08, self.rx_cq.cqn);
        m.u8(0x20 + 0x0c, counter_set);
        self.wq(&mut m, stride, self.rq_log, 0, &self.rq, &self.rq_dbr);
        m
    }

    fn create_rq(&mut self, counter_set: u8, stride: u8) -> u32 {
        let m = self.rq_msg(counter_set, stride);
        number(&self.raw.ok(&m, 0x10))
    }

    /// modify_sq_in / modify_rq_in: dword 2 = current state << 28 | number;
    /// new state in the context at 0x20, byte 1 high nibble.
    pub fn modify_msg(opcode: u16, qn: u32, from: u8, to: u8) -> Msg {
        let mut m = Msg::new(opcode, 0, 0x110);
        m.be32(0x08, ((from as u32) << 28) | qn);
        m.u8(0x21, to << 4);
        m
    }

    pub fn modify_sq(&mut self, from: u8, to: u8) {
        let m = Net::modify_msg(MODIFY_SQ, self.sqn, from, to);
        self.raw.ok(&m, 0x10);
        if to == RST {
            self.sq_pc = 0;
            self.sq_dbr.write_be32(4, 0);
        }
    }

    pub fn modify_rq(&mut self, from: u8, to: u8) {
        let m = Net::modify_msg(MODIFY_RQ, self.rqn, from, to);
        self.raw.ok(&m, 0x10);
    }

    /// State from QUERY_SQ / QUERY_RQ (context at 0x20, byte 1 high nibble).
    pub fn query_state(&mut self, opcode: u16, qn: u32) -> u8 {
        let mut m = Msg::new(opcode, 0, 0x10);
        m.be32(0x08, qn);
        self.raw.ok(&m, 0x20 + 0x30 + 0xc0 + 8)[0x21] >> 4
    }

    /// Post RQ WQE `index` (one data segment: byte_count, lkey, addr) for buffer `index % 64`.
    pub fn post_rx(&mut self, index: u16, lkey: u32, addr: Option<u64>, len: u32) {
        let slot = index as usize & ((1 << self.rq_log) - 1);
        let at = slot * 16;
        let addr = addr.unwrap_or(self.rx_bufs.device_addr().get() + (slot * RX_BUF) as u64);
        self.rq.write_be32(at, len);
        self.rq.write_be32(at + 4, lkey);
        self.rq.write_be64(at + 8, addr);
    }

    pub fn post_all_rx(&mut self) {
        let lkey = self.up.resd_lkey;
        for _ in 0..(1u16 << self.rq_log) {
            self.post_rx(self.rq_pc, lkey, None, RX_BUF as u32);
            self.rq_pc = self.rq_pc.wrapping_add(1);
        }
        self.rq_dbr.write_be32(0, self.rq_pc as u32);
    }

    /// Give RQ WQE back after its CQE (same buffer).
    pub fn repost_rx(&mut self) {
        let lkey = self.up.resd_lkey;
        self.post_rx(self.rq_pc, lkey, None, RX_BUF as u32);
        self.rq_pc = self.rq_pc.wrapping_add(1);
        self.rq_dbr.write_be32(0, self.rq_pc as u32);
    }

    /// Write a SEND WQE for `frame` (copied into a transmit buffer) at the
    /// producer counter; `lkey` / `addr` / `len` override the data segment.
    pub fn post_tx(&mut self, frame: &[u8], signal: bool, bad: Option<(u32, u64, u32)>) -> u16 {
        let index = self.sq_pc;
        let slot = index as usize & ((1 << self.sq_log) - 1);
        let buf_off = slot * RX_BUF;
        self.tx_bufs.write_bytes(buf_off, frame);
        let at = slot * 64;
        self.sq.fill(at, 64, 0);
        let ihs = self.inline.min(frame.len());
        // Control segment (qp.h struct mlx5_wqe_ctrl_seg): opmod_idx_opcode,
        // qpn_ds, fm_ce_se at byte 11 (0x08: CQ update).
        let ds: u32 = if ihs > 0 { 4 } else { 3 };
        self.sq.write_be32(at, ((index as u32) << 8) | 0x0a);
        self.sq.write_be32(at + 4, (self.sqn << 8) | ds);
        if signal {
            self.sq.write_u8(at + 11, 0x08);
        }
        // Ethernet segment at 16 (struct mlx5_wqe_eth_seg): inline_hdr.sz at
        // +12, inline bytes from +14 continuing into the next segment.
        self.sq.write_be16(at + 16 + 12, ihs as u16);
        self.sq.write_bytes(at + 16 + 14, &frame[..ihs]);
        let dseg = at + if ihs > 0 { 48 } else { 32 };
        let (lkey, addr, len) = bad.unwrap_or((
            self.up.resd_lkey,
            self.tx_bufs.device_addr().get() + (buf_off + ihs) as u64,
            (frame.len() - ihs) as u32,
        ));
        self.sq.write_be32(dseg, len);
        self.sq.write_be32(dseg + 4, lkey);
        self.sq.write_be64(dseg + 8, addr);
        self.sq_pc = self.sq_pc.wrapping_add(1);
        index
    }

    /// Send doorbell: record dword 1 = producer counter, then the first 8
    /// bytes of the last control segment to UAR +0x800.
    pub fn ring_tx(&mut self) {
        self.ring_tx_at(0x800);
    }

    /// Send doorbell through BlueFlame buffer 0 (0x800) or 1 (0x900).
    pub fn ring_tx_at(&mut self, offset: usize) {
        self.sq_dbr.write_be32(4, self.sq_pc as u32);
        let last = self.sq_pc.wrapping_sub(1) as usize & ((1 << self.sq_log) - 1);
        let ctrl = self.sq.read_be64(last * 64);
        self.raw
            .p
            .bar0_write_be64(self.up.uar as usize * 4096 + offset, ctrl);
    }

    /// Send doorbell for the WQE at `index` (which may span several WQEBBs):
    /// record dword 1 = producer counter, the WQE's first 8 bytes to UAR +0x800.
    pub fn ring_wqe(&mut self, index: u16) {
        self.sq_dbr.write_be32(4, self.sq_pc as u32);
        let slot = index as usize & ((1 << self.sq_log) - 1);
        let ctrl = self.sq.read_be64(slot * 64);
        self.raw
            .p
            .bar0_write_be64(self.up.uar as usize * 4096 + 0x800, ctrl);
    }

    /// Bytes of received frame for RX CQE with wqe_counter `c`.
    pub fn rx_bytes(&self, c: u16, len: usize) -> Vec<u8> {
        let slot = c as usize & ((1 << self.rq_log) - 1);
        let mut v = vec![0u8; len];
        self.rx_bufs.read_bytes(slot * RX_BUF, &mut v);
        v
    }

    /// out_of_buffer of this port's Q counter (query_q_counter_in:
    /// counter_set_id byte 0x1f; out: out_of_buffer at 0x30).
    pub fn out_of_buffer(&mut self) -> u32 {
        let mut m = Msg::new(QUERY_Q_COUNTER, 0, 0x20);
        m.u8(0x1f, self.up.q_counter);
        be32(&self.raw.ok(&m, 0x100), 0x30)
    }
}

/// What a test WQE asks of the transmit engine beyond a plain SEND.
#[derive(Clone, Copy, Debug, Default)]
pub struct TxOpts {
    /// Opcode (0 means SEND 0x0a; LSO is 0x0e).
    pub opcode: u8,
    /// Ethernet segment cs_flags (qp.h: 0x40 L3, 0x80 L4).
    pub cs_flags: u8,
    pub mss: u16,
    /// Bytes inlined (None: the part's `self.inline`).
    pub inline: Option<usize>,
    /// VLAN insert: (insert.type, vlan_tci) at eth seg +12 / +14
    /// (0x8000 MLX5_ETH_WQE_INSERT_VLAN, | 1 SVLAN).
    pub insert: Option<(u16, u16)>,
}

impl Net {
    /// A WQE with the options of `o`: control segment, Ethernet segment
    /// (struct mlx5_wqe_eth_seg: cs_flags +4, mss +6, inline_hdr.sz or
    /// insert.type +12, inline bytes or vlan_tci from +14), one data segment
    /// for the rest; always signalled. Returns the WQE index.
    pub fn post_wqe(&mut self, frame: &[u8], o: TxOpts) -> u16 {
        let index = self.sq_pc;
        let slot = index as usize & ((1 << self.sq_log) - 1);
        let buf_off = slot * RX_BUF;
        self.tx_bufs.write_bytes(buf_off, frame);
        let ihs = if o.insert.is_some() {
            0
        } else {
            o.inline.unwrap_or(self.inline).min(frame.len())
        };
        // Inline bytes beyond the first 2 take 16-byte segments after the eth seg.
        let eth_ds = 1 + ihs.saturating_sub(2).div_ceil(16);
        let ds = 1 + eth_ds + 1;
        let nbb = (ds * 16).div_ceil(64);
        let at = slot * 64;
        for k in 0..nbb {
            let s = (index as usize + k) & ((1 << self.sq_log) - 1);
            self.sq.fill(s * 64, 64, 0);
        }
        let opcode = if o.opcode == 0 { 0x0a } else { o.opcode };
        // On the stack: the allocation tests use this client too.
        let mut buf = [0u8; 1024];
        let w = &mut buf[..nbb * 64];
        w[0..4].copy_from_slice(&(((index as u32) << 8) | opcode as u32).to_be_bytes());
        w[4..8].copy_from_slice(&((self.sqn << 8) | ds as u32).to_be_bytes());
        w[11] = 0x08;
        w[16 + 4] = o.cs_flags;
        w[16 + 6..16 + 8].copy_from_slice(&o.mss.to_be_bytes());
        match o.insert {
            Some((ty, tci)) => {
                w[16 + 12..16 + 14].copy_from_slice(&ty.to_be_bytes());
                w[16 + 14..16 + 16].copy_from_slice(&tci.to_be_bytes());
            }
            None => {
                w[16 + 12..16 + 14].copy_from_slice(&(ihs as u16).to_be_bytes());
                w[16 + 14..16 + 14 + ihs].copy_from_slice(&frame[..ihs]);
            }
        }
        let d = 16 + eth_ds * 16;
        w[d..d + 4].copy_from_slice(&((frame.len() - ihs) as u32).to_be_bytes());
        w[d + 4..d + 8].copy_from_slice(&self.up.resd_lkey.to_be_bytes());
        let addr = self.tx_bufs.device_addr().get() + (buf_off + ihs) as u64;
        w[d + 8..d + 16].copy_from_slice(&addr.to_be_bytes());
        for k in 0..nbb {
            let s = (index as usize + k) & ((1 << self.sq_log) - 1);
            self.sq.write_bytes(s * 64, &w[k * 64..(k + 1) * 64]);
        }
        let _ = at;
        self.sq_pc = self.sq_pc.wrapping_add(nbb as u16);
        index
    }

    /// MODIFY_NIC_VPORT_CONTEXT (modify_nic_vport_context_in: field_select
    /// dword 3 (promisc 0x10, addresses_list 0x04 in byte 0x0f); context at
    /// 0x100: promisc_uc/mc/all byte 0xf0 bits 7/6/5, allowed_list_type
    /// byte 0xf0 low 3 bits, allowed_list_size bytes 0xf2..0xf4; the list
    /// at 0x200, 8 bytes per address (2 reserved, 6 MAC)).
    pub fn set_promisc(&mut self, uc: bool, mc: bool, all: bool) {
        let mut m = Msg::new(MODIFY_NIC_VPORT_CONTEXT, 0, 0x200);
        m.u8(0x0f, 0x10);
        m.u8(
            0x100 + 0xf0,
            (uc as u8) << 7 | (mc as u8) << 6 | (all as u8) << 5,
        );
        self.raw.ok(&m, 0x10);
    }

    pub fn set_mac_list(&mut self, multicast: bool, macs: &[[u8; 6]]) {
        let mut m = Msg::new(MODIFY_NIC_VPORT_CONTEXT, 0, 0x200 + 8 * macs.len());
        m.u8(0x0f, 0x04);
        m.u8(0x100 + 0xf0, multicast as u8);
        m.be16(0x100 + 0xf2, macs.len() as u16);
        for (i, mac) in macs.iter().enumerate() {
            for (j, b) in mac.iter().enumerate() {
                m.u8(0x200 + 8 * i + 2 + j, *b);
            }
        }
        self.raw.ok(&m, 0x10);
    }
}

/// A frame to `dst` from `src` of `len` bytes (ethertype 0x88b5, local
/// experimental) with a recognisable payload.
pub fn frame(dst: [u8; 6], src: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12] = 0x88;
    f[13] = 0xb5;
    for (i, b) in f[14..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7).wrapping_add(seed);
    }
    f
}

/// A data segment (`struct mlx5_wqe_data_seg`): byte_count at 0, lkey at
/// 4, addr at 8.
pub fn data_seg(count: u32, lkey: u32, addr: u64) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[0..4].copy_from_slice(&count.to_be_bytes());
    s[4..8].copy_from_slice(&lkey.to_be_bytes());
    s[8..16].copy_from_slice(&addr.to_be_bytes());
    s
}

/// Push an inline data segment carrying `frames` back to back onto
/// `segs`: byte_count (their total | 0x8000_0000) at 0, the bytes from 4,
/// zeros to the last segment's end.
pub fn push_inline(segs: &mut Vec<[u8; 16]>, frames: &[&[u8]]) {
    let total: usize = frames.iter().map(|f| f.len()).sum();
    let mut bytes = (total as u32 | 0x8000_0000).to_be_bytes().to_vec();
    for f in frames {
        bytes.extend_from_slice(f);
    }
    bytes.resize(bytes.len().div_ceil(16) * 16, 0);
    for c in bytes.chunks(16) {
        segs.push(c.try_into().unwrap());
    }
}

impl Net {
    /// Post the multi-packet session `segs` (control segment first, left
    /// zero: filled here) at the producer counter, its segments wrapping
    /// at the ring's end like the device's fetch: `opmod_idx_opcode` =
    /// `opmod` in bits 31:24, the wqe_index, `opcode`; `qpn_ds`; CQE always
    /// (`fm_ce_se` 0x08 at 11). Returns its wqe_index.
    pub fn post_session_segs(&mut self, opmod: u8, opcode: u8, mut segs: Vec<[u8; 16]>) -> u16 {
        let index = self.sq_pc;
        let ds = segs.len() as u32;
        segs[0][0..4].copy_from_slice(
            &((opmod as u32) << 24 | (index as u32) << 8 | opcode as u32).to_be_bytes(),
        );
        segs[0][4..8].copy_from_slice(&((self.sqn << 8) | ds).to_be_bytes());
        segs[0][11] = 0x08;
        let ring = 64usize << self.sq_log;
        for (k, s) in segs.iter().enumerate() {
            self.sq
                .write_bytes((index as usize * 64 + k * 16) % ring, s);
        }
        self.sq_pc = self.sq_pc.wrapping_add(segs.len().div_ceil(4) as u16);
        self.ring_wqe(index);
        index
    }
}

/// `f` as it arrives: padded with zeros to the 60-byte minimum.
pub fn padded(f: &[u8]) -> Vec<u8> {
    let mut v = f.to_vec();
    v.resize(v.len().max(60), 0);
    v
}
