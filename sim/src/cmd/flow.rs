//! NIC receive flow steering: CREATE/DESTROY/MODIFY_FLOW_TABLE,
//! CREATE/DESTROY_FLOW_GROUP, SET/DELETE/QUERY_FLOW_TABLE_ENTRY,
//! SET_FLOW_TABLE_ROOT, ALLOC/DEALLOC/QUERY_FLOW_COUNTER
//! (`create_flow_table_in`, `flow_table_context`, `modify_flow_table_in`,
//! `create_flow_group_in`, `fte_match_param`, `fte_match_set_lyr_2_4`,
//! `set_fte_in`, `query_fte_in/out`, `flow_context`, `dest_format_struct`,
//! `flow_counter_list`, `delete_fte_in`, `set_flow_table_root_in`,
//! `alloc_flow_counter_in/out`, `dealloc_flow_counter_in`,
//! `query_flow_counter_in/out`, `traffic_counter`, mlx5_ifc.h).
//!
//! What is modelled: NIC_RX tables (type 0) of the function's own vport, at
//! levels 0..=max_ft_level; a table's miss goes to its miss table
//! (`table_miss_action` 1) or drops the frame (0). Groups match on any
//! field of the outer headers' `fte_match_set_lyr_2_4` but `l4_type` and
//! `ipv4_ihl` (MACs, ethertype, VLAN, IP version / protocol / DSCP / ECN /
//! TTL / fragment, addresses, TCP and UDP ports, TCP flags); criteria in
//! the misc, inner or later parameter sets are refused. Each group finds
//! its entry by a hash of the masked key, so the
//! cost does not grow with the number of entries. Groups are tried in order
//! of their first index. Entry actions: FWD_DEST (to TIRs, replicated to
//! each, and / or to deeper tables), DROP, each optionally with COUNT into
//! flow counters (packets and bytes as received).
#![deny(unsafe_code)]

use std::collections::{BTreeMap, HashMap};

use super::reserved;
use crate::bits::{F, f, get, set};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};

/// `MLX5_FLOW_TABLE_TYPE_NIC_RX`.
pub const TABLE_NIC_RX: u64 = 0;
/// `MLX5_MATCH_OUTER_HEADERS`.
pub const MATCH_OUTER: u64 = 1;
/// `MLX5_FLOW_CONTEXT_ACTION_DROP` / `_FWD_DEST` / `_COUNT`.
pub const ACTION_DROP: u64 = 0x2;
pub const ACTION_FWD_DEST: u64 = 0x4;
pub const ACTION_COUNT: u64 = 0x8;
/// `MLX5_IFC_FLOW_DESTINATION_TYPE_FLOW_TABLE` / `_TIR`.
pub const DEST_FLOW_TABLE: u64 = 0x1;
pub const DEST_TIR: u64 = 0x2;
/// `MLX5_FLOW_TABLE_MISS_ACTION_FWD`.
pub const MISS_FWD: u64 = 1;
/// `MLX5_MODIFY_FLOW_TABLE_MISS_TABLE_ID`.
pub const MODIFY_MISS_TABLE_ID: u64 = 1 << 0;
/// `fte_match_param` length in bytes (outer, misc, inner, misc2..5, reserved).
pub const MATCH_PARAM: usize = 0x200;
/// Byte offsets of dmac_47_16 / dmac_15_0 in `fte_match_set_lyr_2_4`
/// (bits 0x40 and 0x60): the six MAC bytes in wire order.
pub const DMAC: usize = 0x08;
/// Most destinations of one entry (`log_max_destination` = 5).
pub const MAX_DEST: usize = 32;
/// Most flow counters of one entry.
pub const MAX_COUNTERS: usize = 8;

/// Byte offsets in the commands.
pub mod layout {
    /// `create_flow_table_in.flow_table_context` (bit 0xc0); also in
    /// `modify_flow_table_in`.
    pub const FT_CTX: usize = 0x18;
    /// `create_flow_group_in.match_criteria` (bit 0x200).
    pub const FG_CRITERIA: usize = 0x40;
    /// `set_fte_in.flow_context` (bit 0x200); `query_fte_out` has it at
    /// the same place (after reserved_at_40[0x1c0]).
    pub const FTE_CTX: usize = 0x40;
    /// `flow_context.match_value` (bit 0x200 of flow_context).
    pub const FTE_MATCH: usize = FTE_CTX + 0x40;
    /// `flow_context.destination` (bit 0x1800 of flow_context).
    pub const FTE_DEST: usize = FTE_CTX + 0x300;
}

/// `fte_match_set_lyr_2_4` fields (bit offsets): every outer L2-L4 field
/// the model matches on.
pub mod lyr {
    use crate::bits::{F, f};
    pub const SMAC_47_16: F = f(0x0, 0x20);
    pub const SMAC_15_0: F = f(0x20, 0x10);
    pub const ETHERTYPE: F = f(0x30, 0x10);
    pub const DMAC_47_16: F = f(0x40, 0x20);
    pub const DMAC_15_0: F = f(0x60, 0x10);
    pub const FIRST_PRIO: F = f(0x70, 3);
    pub const FIRST_CFI: F = f(0x73, 1);
    pub const FIRST_VID: F = f(0x74, 0xc);
    pub const IP_PROTOCOL: F = f(0x80, 8);
    pub const IP_DSCP: F = f(0x88, 6);
    pub const IP_ECN: F = f(0x8e, 2);
    pub const CVLAN_TAG: F = f(0x90, 1);
    pub const SVLAN_TAG: F = f(0x91, 1);
    pub const FRAG: F = f(0x92, 1);
    pub const IP_VERSION: F = f(0x93, 4);
    pub const TCP_FLAGS: F = f(0x97, 9);
    pub const TCP_SPORT: F = f(0xa0, 0x10);
    pub const TCP_DPORT: F = f(0xb0, 0x10);
    pub const TTL_HOPLIMIT: F = f(0xd8, 8);
    pub const UDP_SPORT: F = f(0xe0, 0x10);
    pub const UDP_DPORT: F = f(0xf0, 0x10);
    /// `src_ipv4_src_ipv6` / `dst_ipv4_dst_ipv6`: 128 bits, an IPv4
    /// address in the last 32.
    pub const SRC_IP: usize = 0x20;
    pub const DST_IP: usize = 0x30;
    pub const ALL: [F; 21] = [
        SMAC_47_16,
        SMAC_15_0,
        ETHERTYPE,
        DMAC_47_16,
        DMAC_15_0,
        FIRST_PRIO,
        FIRST_CFI,
        FIRST_VID,
        IP_PROTOCOL,
        IP_DSCP,
        IP_ECN,
        CVLAN_TAG,
        SVLAN_TAG,
        FRAG,
        IP_VERSION,
        TCP_FLAGS,
        TCP_SPORT,
        TCP_DPORT,
        TTL_HOPLIMIT,
        UDP_SPORT,
        UDP_DPORT,
    ];
}

/// Header fields shared by all flow commands: other_vport (0x40),
/// vport_number (0x50), table_type (0x80), table_id (0xa8).
const OTHER_VPORT: F = f(0x40, 1);
const VPORT_NUMBER: F = f(0x50, 0x10);
const TABLE_TYPE: F = f(0x80, 8);
const TABLE_ID: F = f(0xa8, 0x18);
/// `flow_index` of set_fte_in / delete_fte_in / query_fte_in.
const FLOW_INDEX: F = f(0x100, 0x20);

/// The match key of a frame, or a group's mask, or an entry's value: the
/// `fte_match_set_lyr_2_4` fields of the outer headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Key {
    pub dmac: u64,
    pub smac: u64,
    pub ethertype: u16,
    pub first_prio: u8,
    pub first_cfi: bool,
    pub first_vid: u16,
    pub cvlan_tag: bool,
    pub svlan_tag: bool,
    pub ip_protocol: u8,
    pub ip_version: u8,
    pub ip_dscp: u8,
    pub ip_ecn: u8,
    pub frag: bool,
    pub ttl_hoplimit: u8,
    pub tcp_flags: u16,
    pub tcp_sport: u16,
    pub tcp_dport: u16,
    pub udp_sport: u16,
    pub udp_dport: u16,
    /// IPv6 address, or an IPv4 address in the low 32 bits.
    pub src_ip: u128,
    pub dst_ip: u128,
}

/// Hashes the fields packed into eight words (one hasher step each).
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.dmac | (self.ethertype as u64) << 48);
        state.write_u64(
            self.smac
                | (self.first_vid as u64) << 48
                | (self.first_prio as u64) << 60
                | (self.first_cfi as u64) << 63,
        );
        state.write_u64(
            self.ip_protocol as u64
                | (self.ip_version as u64) << 8
                | (self.cvlan_tag as u64) << 16
                | (self.svlan_tag as u64) << 17
                | (self.frag as u64) << 18
                | (self.ip_dscp as u64) << 24
                | (self.ip_ecn as u64) << 30
                | (self.ttl_hoplimit as u64) << 32
                | (self.tcp_flags as u64) << 40,
        );
        state.write_u64(
            self.tcp_sport as u64
                | (self.tcp_dport as u64) << 16
                | (self.udp_sport as u64) << 32
                | (self.udp_dport as u64) << 48,
        );
        state.write_u64(self.src_ip as u64);
        state.write_u64((self.src_ip >> 64) as u64);
        state.write_u64(self.dst_ip as u64);
        state.write_u64((self.dst_ip >> 64) as u64);
    }
}

impl Key {
    fn and(&self, m: &Key) -> Key {
        Key {
            dmac: self.dmac & m.dmac,
            smac: self.smac & m.smac,
            ethertype: self.ethertype & m.ethertype,
            first_prio: self.first_prio & m.first_prio,
            first_cfi: self.first_cfi & m.first_cfi,
            first_vid: self.first_vid & m.first_vid,
            cvlan_tag: self.cvlan_tag & m.cvlan_tag,
            svlan_tag: self.svlan_tag & m.svlan_tag,
            ip_protocol: self.ip_protocol & m.ip_protocol,
            ip_version: self.ip_version & m.ip_version,
            ip_dscp: self.ip_dscp & m.ip_dscp,
            ip_ecn: self.ip_ecn & m.ip_ecn,
            frag: self.frag & m.frag,
            ttl_hoplimit: self.ttl_hoplimit & m.ttl_hoplimit,
            tcp_flags: self.tcp_flags & m.tcp_flags,
            tcp_sport: self.tcp_sport & m.tcp_sport,
            tcp_dport: self.tcp_dport & m.tcp_dport,
            udp_sport: self.udp_sport & m.udp_sport,
            udp_dport: self.udp_dport & m.udp_dport,
            src_ip: self.src_ip & m.src_ip,
            dst_ip: self.dst_ip & m.dst_ip,
        }
    }

    /// Read from an `fte_match_set_lyr_2_4` at byte `at` of `b`.
    pub fn read(b: &[u8], at: usize) -> Key {
        let g = |fld: F| get(b, fld.at(at));
        let ip = |off: usize| {
            let mut w = [0u8; 16];
            if let Some(src) = b.get(at + off..at + off + 16) {
                w.copy_from_slice(src);
            }
            u128::from_be_bytes(w)
        };
        Key {
            dmac: (g(lyr::DMAC_47_16) << 16) | g(lyr::DMAC_15_0),
            smac: (g(lyr::SMAC_47_16) << 16) | g(lyr::SMAC_15_0),
            ethertype: g(lyr::ETHERTYPE) as u16,
            first_prio: g(lyr::FIRST_PRIO) as u8,
            first_cfi: g(lyr::FIRST_CFI) != 0,
            first_vid: g(lyr::FIRST_VID) as u16,
            cvlan_tag: g(lyr::CVLAN_TAG) != 0,
            svlan_tag: g(lyr::SVLAN_TAG) != 0,
            ip_protocol: g(lyr::IP_PROTOCOL) as u8,
            ip_version: g(lyr::IP_VERSION) as u8,
            ip_dscp: g(lyr::IP_DSCP) as u8,
            ip_ecn: g(lyr::IP_ECN) as u8,
            frag: g(lyr::FRAG) != 0,
            ttl_hoplimit: g(lyr::TTL_HOPLIMIT) as u8,
            tcp_flags: g(lyr::TCP_FLAGS) as u16,
            tcp_sport: g(lyr::TCP_SPORT) as u16,
            tcp_dport: g(lyr::TCP_DPORT) as u16,
            udp_sport: g(lyr::UDP_SPORT) as u16,
            udp_dport: g(lyr::UDP_DPORT) as u16,
            src_ip: ip(lyr::SRC_IP),
            dst_ip: ip(lyr::DST_IP),
        }
    }

    /// Write as an `fte_match_set_lyr_2_4` at byte `at` of `b`.
    pub fn write(&self, b: &mut [u8], at: usize) {
        let mut s = |fld: F, v: u64| set(b, fld.at(at), v);
        s(lyr::DMAC_47_16, self.dmac >> 16);
        s(lyr::DMAC_15_0, self.dmac & 0xffff);
        s(lyr::SMAC_47_16, self.smac >> 16);
        s(lyr::SMAC_15_0, self.smac & 0xffff);
        s(lyr::ETHERTYPE, self.ethertype as u64);
        s(lyr::FIRST_PRIO, self.first_prio as u64);
        s(lyr::FIRST_CFI, self.first_cfi as u64);
        s(lyr::FIRST_VID, self.first_vid as u64);
        s(lyr::CVLAN_TAG, self.cvlan_tag as u64);
        s(lyr::SVLAN_TAG, self.svlan_tag as u64);
        s(lyr::IP_PROTOCOL, self.ip_protocol as u64);
        s(lyr::IP_VERSION, self.ip_version as u64);
        s(lyr::IP_DSCP, self.ip_dscp as u64);
        s(lyr::IP_ECN, self.ip_ecn as u64);
        s(lyr::FRAG, self.frag as u64);
        s(lyr::TTL_HOPLIMIT, self.ttl_hoplimit as u64);
        s(lyr::TCP_FLAGS, self.tcp_flags as u64);
        s(lyr::TCP_SPORT, self.tcp_sport as u64);
        s(lyr::TCP_DPORT, self.tcp_dport as u64);
        s(lyr::UDP_SPORT, self.udp_sport as u64);
        s(lyr::UDP_DPORT, self.udp_dport as u64);
        for (off, v) in [(lyr::SRC_IP, self.src_ip), (lyr::DST_IP, self.dst_ip)] {
            if let Some(dst) = b.get_mut(at + off..at + off + 16) {
                dst.copy_from_slice(&v.to_be_bytes());
            }
        }
    }

    /// The key of a received frame (headers parsed by the receive engine).
    pub fn of_frame(f: &[u8], h: &crate::datapath::frame::Headers) -> Key {
        use crate::datapath::frame::{L3, L4};
        let mac = |at: usize| match f.get(at..at + 6) {
            Some(m) => u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]),
            None => 0,
        };
        let (cvlan, svlan, prio, cfi, vid) = match h.vlan {
            Some((tpid, tci)) => (
                tpid == 0x8100,
                tpid == 0x88a8,
                (tci >> 13) as u8,
                tci & 0x1000 != 0,
                tci & 0xfff,
            ),
            None => (false, false, 0, false, 0),
        };
        let l3 = h.l2_len;
        let byte = |at: usize| f.get(at).copied().unwrap_or(0);
        let addr = |at: usize, len: usize| {
            let mut w = [0u8; 16];
            if let Some(src) = f.get(at..at + len) {
                w[16 - len..].copy_from_slice(src);
            }
            u128::from_be_bytes(w)
        };
        let mut k = Key {
            dmac: mac(0),
            smac: mac(6),
            ethertype: h.ethertype,
            first_prio: prio,
            first_cfi: cfi,
            first_vid: vid,
            cvlan_tag: cvlan,
            svlan_tag: svlan,
            ..Key::default()
        };
        let tos = match h.l3 {
            L3::Ipv4 => {
                k.ip_version = 4;
                k.ttl_hoplimit = byte(l3 + 8);
                k.src_ip = addr(l3 + 12, 4);
                k.dst_ip = addr(l3 + 16, 4);
                byte(l3 + 1)
            }
            L3::Ipv6 => {
                k.ip_version = 6;
                k.ttl_hoplimit = byte(l3 + 7);
                k.src_ip = addr(l3 + 8, 16);
                k.dst_ip = addr(l3 + 24, 16);
                (byte(l3) << 4) | (byte(l3 + 1) >> 4)
            }
            L3::None => return k,
        };
        k.ip_protocol = h.ip_proto;
        k.ip_dscp = tos >> 2;
        k.ip_ecn = tos & 3;
        k.frag = h.frag;
        let l4 = h.l4_off();
        let port = |at: usize| u16::from_be_bytes([byte(at), byte(at + 1)]);
        match h.l4 {
            L4::Tcp => {
                k.tcp_sport = port(l4);
                k.tcp_dport = port(l4 + 2);
                k.tcp_flags = u16::from_be_bytes([byte(l4 + 12), byte(l4 + 13)]) & 0x1ff;
            }
            L4::Udp => {
                k.udp_sport = port(l4);
                k.udp_dport = port(l4 + 2);
            }
            L4::None => {}
        }
        k
    }
}

/// Whether the `fte_match_param` at byte `at` has bits outside the
/// modelled outer fields (misc, inner and the later parameter sets;
/// `l4_type`, `ipv4_ihl` and the reserved bits of the outer set).
fn has_unmodelled_bits(b: &[u8], at: usize) -> bool {
    let mut outer = [0u8; 0x40];
    if let Some(src) = b.get(at..at + 0x40) {
        outer.copy_from_slice(src);
    }
    for fld in lyr::ALL {
        set(&mut outer, fld, 0);
    }
    outer[lyr::SRC_IP..lyr::SRC_IP + 32].fill(0);
    outer.iter().any(|x| *x != 0)
        || b.get(at + 0x40..at + MATCH_PARAM)
            .is_none_or(|rest| rest.iter().any(|x| *x != 0))
}

/// Multiply-rotate hashing (the FxHash scheme) for the per-group entry
/// maps: the frame path hashes one key per group it tries, and SipHash's
/// flooding resistance buys nothing in a test model.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(v as u64);
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type KeyMap = HashMap<Key, u32, std::hash::BuildHasherDefault<KeyHasher>>;

#[derive(Debug, Clone)]
pub struct Group {
    pub id: u32,
    pub start: u32,
    pub end: u32,
    pub mask: Key,
    /// masked key -> flow index.
    by_key: KeyMap,
}

/// Where an entry sends a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Tir(u32),
    Table(u32),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub group: u32,
    pub value: Key,
    pub flow_tag: u32,
    pub action: u16,
    pub dests: Vec<Dest>,
    pub counters: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub id: u32,
    pub level: u8,
    pub log_size: u8,
    /// Miss table (`table_miss_action` FWD); none: a miss drops.
    pub miss: Option<u32>,
    /// Groups by first index (lookup order).
    groups: BTreeMap<u32, Group>,
    entries: BTreeMap<u32, Entry>,
}

impl Table {
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
    pub fn entries(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries.iter().map(|(i, e)| (*i, e))
    }
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }
    fn group_by_id(&self, id: u32) -> Option<&Group> {
        self.groups.values().find(|g| g.id == id)
    }
}

/// A flow counter: packets and bytes of the frames entries counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
    /// Entries counting into it.
    pub users: u32,
}

/// What steering decided for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver to the first `n` TIRs of the destination buffer.
    Forward(usize),
    /// An entry's DROP action.
    Drop,
    /// No entry matched (and no miss table took it), or no root.
    Miss,
}

#[derive(Debug, Default)]
pub struct Steering {
    tables: BTreeMap<u32, Table>,
    pub root: Option<u32>,
    next_group: u32,
    counters: BTreeMap<u32, Counter>,
}

impl Steering {
    pub fn clear(&mut self) {
        self.tables.clear();
        self.root = None;
        self.counters.clear();
    }
    pub fn table(&self, id: u32) -> Option<&Table> {
        self.tables.get(&id)
    }
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }
    pub fn counter(&self, id: u32) -> Option<Counter> {
        self.counters.get(&id).copied()
    }
    pub fn counter_count(&self) -> usize {
        self.counters.len()
    }

    /// Steer a frame with `key` of `len` bytes from the root table: the
    /// TIRs it goes to land in `tirs`. Counts into the counters of every
    /// entry it passes. No allocation.
    pub fn lookup(&mut self, key: &Key, len: usize, tirs: &mut [u32; MAX_DEST]) -> Verdict {
        let Some(root) = self.root else {
            return Verdict::Miss;
        };
        let mut n = 0;
        let v = walk(
            &self.tables,
            &mut self.counters,
            root,
            key,
            len as u64,
            tirs,
            &mut n,
        );
        match v {
            Verdict::Forward(_) if n == 0 => Verdict::Miss,
            Verdict::Forward(_) => Verdict::Forward(n),
            other => other,
        }
    }
}

/// Look `key` up in `table` (and the tables it forwards or misses to:
/// always deeper levels, so this ends).
fn walk(
    tables: &BTreeMap<u32, Table>,
    counters: &mut BTreeMap<u32, Counter>,
    table: u32,
    key: &Key,
    len: u64,
    tirs: &mut [u32; MAX_DEST],
    n: &mut usize,
) -> Verdict {
    let Some(t) = tables.get(&table) else {
        return Verdict::Miss;
    };
    let hit = t.groups.values().find_map(|g| {
        g.by_key
            .get(&key.and(&g.mask))
            .and_then(|i| t.entries.get(i))
    });
    let Some(e) = hit else {
        return match t.miss {
            Some(m) => walk(tables, counters, m, key, len, tirs, n),
            None => Verdict::Miss,
        };
    };
    for c in &e.counters {
        if let Some(c) = counters.get_mut(c) {
            c.packets += 1;
            c.bytes += len;
        }
    }
    if e.action as u64 & ACTION_DROP != 0 {
        return Verdict::Drop;
    }
    let mut verdict = Verdict::Miss;
    for d in &e.dests {
        match *d {
            Dest::Tir(tirn) => {
                if *n < MAX_DEST && !tirs[..*n].contains(&tirn) {
                    tirs[*n] = tirn;
                    *n += 1;
                }
                verdict = Verdict::Forward(*n);
            }
            Dest::Table(next) => match walk(tables, counters, next, key, len, tirs, n) {
                Verdict::Forward(k) => verdict = Verdict::Forward(k),
                Verdict::Drop if verdict == Verdict::Miss => verdict = Verdict::Drop,
                _ => {}
            },
        }
    }
    verdict
}

/// Own vport, NIC_RX only.
fn own_nic_rx(inp: &[u8]) -> Result<(), CmdError> {
    if get(inp, OTHER_VPORT) != 0 || get(inp, VPORT_NUMBER) != 0 {
        return Err(syn::BAD_FUNCTION);
    }
    if get(inp, TABLE_TYPE) != TABLE_NIC_RX {
        return Err(syn::FLOW_TABLE_TYPE);
    }
    Ok(())
}

/// The table a command's `table_id` (bit 0xa8) names.
fn table<'a>(dev: &'a Function, inp: &[u8]) -> Result<&'a Table, CmdError> {
    let id = get(inp, TABLE_ID) as u32;
    dev.nic.flow.tables.get(&id).ok_or(syn::UNKNOWN_FLOW_TABLE)
}

/// [`table`], to change.
fn table_mut<'a>(dev: &'a mut Function, inp: &[u8]) -> Result<&'a mut Table, CmdError> {
    let id = get(inp, TABLE_ID) as u32;
    dev.nic
        .flow
        .tables
        .get_mut(&id)
        .ok_or(syn::UNKNOWN_FLOW_TABLE)
}

fn nic_rx_cap(dev: &Function, fld: F) -> u64 {
    let caps = dev
        .caps
        .current(super::caps::cap_type::NIC_FLOW_TABLE)
        .unwrap_or(&[]);
    get(caps, f(super::caps::ft::RX + fld.bit, fld.width))
}

/// `flow_table_context` fields (bit offsets inside the context).
mod ftc {
    use crate::bits::{F, f};
    /// reformat_en, decap_en, sw_owner, termination_table.
    pub const FLAGS: F = f(0x0, 4);
    pub const MISS_ACTION: F = f(0x4, 4);
    pub const LEVEL: F = f(0x8, 8);
    pub const RTC_VALID: F = f(0x10, 1);
    pub const LOG_SIZE: F = f(0x18, 8);
    pub const MISS_ID: F = f(0x28, 0x18);
    pub const LAG_MASTER_NEXT: F = f(0x48, 0x18);
    pub const RESERVED: [F; 4] = [f(0x11, 7), f(0x20, 8), f(0x40, 8), f(0x60, 0x60)];
    /// sws / hws roots (0xc0..0x140).
    pub const ROOTS: F = f(0xc0, 0x80);
}

/// The miss table a `flow_table_context` at byte `at` asks for, checked
/// against the table's `level`.
fn miss_of(dev: &Function, inp: &[u8], at: usize, level: u8) -> Result<Option<u32>, CmdError> {
    let c = |fld: F| fld.at(at);
    match get(inp, c(ftc::MISS_ACTION)) {
        0 => {
            if get(inp, c(ftc::MISS_ID)) != 0 {
                return Err(syn::FLOW_TABLE_PARAM);
            }
            Ok(None)
        }
        MISS_FWD => {
            let id = get(inp, c(ftc::MISS_ID)) as u32;
            match dev.nic.flow.tables.get(&id) {
                None => Err(syn::UNKNOWN_FLOW_TABLE),
                Some(t) if t.level <= level => Err(syn::FLOW_TABLE_PARAM),
                Some(_) => Ok(Some(id)),
            }
        }
        _ => Err(syn::FLOW_TABLE_PARAM),
    }
}

/// Tables that forward or miss to `id` (entries' destinations, miss ids).
fn referenced(dev: &Function, id: u32) -> bool {
    dev.nic.flow.tables.values().any(|t| {
        t.miss == Some(id)
            || t.entries
                .values()
                .any(|e| e.dests.contains(&Dest::Table(id)))
    })
}

/// CREATE_FLOW_TABLE (`create_flow_table_in`: table_type bit 0x80, context at 0x18).
pub fn create_table(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(
        inp,
        &[f(0x41, 0xf), f(0x60, 0x20), f(0x88, 0x18), f(0xa0, 0x20)],
    )?;
    own_nic_rx(inp)?;
    let c = |fld: F| fld.at(layout::FT_CTX);
    super::reserved_in(inp, layout::FT_CTX, &ftc::RESERVED)?;
    if get(inp, c(ftc::FLAGS)) != 0
        || get(inp, c(ftc::RTC_VALID)) != 0
        || get(inp, c(ftc::LAG_MASTER_NEXT)) != 0
        || !crate::bits::all_zero(inp, &[c(ftc::ROOTS)])
    {
        return Err(syn::FLOW_TABLE_PARAM);
    }
    let level = get(inp, c(ftc::LEVEL));
    let log_size = get(inp, c(ftc::LOG_SIZE));
    if level > nic_rx_cap(dev, super::caps::ft::MAX_FT_LEVEL)
        || log_size > nic_rx_cap(dev, super::caps::ft::LOG_MAX_FT_SIZE)
    {
        return Err(syn::FLOW_TABLE_PARAM);
    }
    let miss = miss_of(dev, inp, layout::FT_CTX, level as u8)?;
    let max = 1u64 << nic_rx_cap(dev, super::caps::ft::LOG_MAX_FT_NUM).min(24);
    if dev.nic.flow.tables.len() as u64 >= max {
        return Err(syn::NO_FLOW_TABLE);
    }
    let Some(id) = (1..=0xff_ffffu32).find(|n| !dev.nic.flow.tables.contains_key(n)) else {
        return Err(syn::NO_FLOW_TABLE);
    };
    dev.nic.flow.tables.insert(
        id,
        Table {
            id,
            level: level as u8,
            log_size: log_size as u8,
            miss,
            groups: BTreeMap::new(),
            entries: BTreeMap::new(),
        },
    );
    // create_flow_table_out: table_id at bit 0x48.
    set(out, f(0x48, 0x18), id as u64);
    Ok(())
}

/// MODIFY_FLOW_TABLE (`modify_flow_table_in`: modify_field_select bit
/// 0x70, table_id 0xa8, context at 0x18): the miss action and table only.
pub fn modify_table(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(
        inp,
        &[f(0x41, 0xf), f(0x60, 0x10), f(0x88, 0x18), f(0xa0, 8)],
    )?;
    own_nic_rx(inp)?;
    if get(inp, f(0x70, 0x10)) != MODIFY_MISS_TABLE_ID {
        return Err(syn::FLOW_TABLE_PARAM);
    }
    let level = table(dev, inp)?.level;
    let miss = miss_of(dev, inp, layout::FT_CTX, level)?;
    table_mut(dev, inp)?.miss = miss;
    Ok(())
}

/// DESTROY_FLOW_TABLE (`destroy_flow_table_in`: table_id bit 0xa8):
/// refused for tables that still have groups or that another table
/// forwards or misses to. Destroying the root table leaves the NIC_RX root
/// unset (every frame then misses), as drivers that never disconnect the
/// root rely on.
pub fn destroy_table(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(
        inp,
        &[f(0x41, 0xf), f(0x60, 0x20), f(0x88, 0x18), f(0xa0, 8)],
    )?;
    reserved(inp, &[f(0xc0, 0x140)])?;
    own_nic_rx(inp)?;
    let id = get(inp, TABLE_ID) as u32;
    if !table(dev, inp)?.groups.is_empty() || referenced(dev, id) {
        return Err(syn::FLOW_TABLE_IN_USE);
    }
    dev.nic.flow.tables.remove(&id);
    if dev.nic.flow.root == Some(id) {
        dev.nic.flow.root = None;
    }
    Ok(())
}

/// CREATE_FLOW_GROUP (`create_flow_group_in`: table_id 0xa8, start 0xe0,
/// end 0x120, match_criteria_enable 0x1f8, criteria at byte 0x40).
pub fn create_group(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(
        inp,
        &[
            f(0x41, 0xf),
            f(0x60, 0x20),
            f(0x88, 4),
            f(0x90, 0x10),
            f(0xa0, 8),
            f(0xc1, 0x1f),
            f(0x100, 0x20),
            f(0x140, 0x10),
            f(0x160, 0x80),
            f(0x1e0, 0x18),
        ],
    )?;
    own_nic_rx(inp)?;
    // group_type, source_eswitch_owner_vhca_id_valid, match_definer_id.
    if get(inp, f(0x8c, 4)) != 0 || get(inp, f(0xc0, 1)) != 0 || get(inp, f(0x150, 0x10)) != 0 {
        return Err(syn::FLOW_MATCH_CRITERIA);
    }
    let start = get(inp, f(0xe0, 0x20)) as u32;
    let end = get(inp, f(0x120, 0x20)) as u32;
    let enable = get(inp, f(0x1f8, 8));
    let mask = Key::read(inp, layout::FG_CRITERIA);
    if enable & !MATCH_OUTER != 0
        || has_unmodelled_bits(inp, layout::FG_CRITERIA)
        || (enable == 0 && mask != Key::default())
    {
        return Err(syn::FLOW_MATCH_CRITERIA);
    }
    // The table borrowed field by field: next_group changes below.
    let id = get(inp, TABLE_ID) as u32;
    let Some(t) = dev.nic.flow.tables.get_mut(&id) else {
        return Err(syn::UNKNOWN_FLOW_TABLE);
    };
    let size = 1u64 << t.log_size;
    let overlaps = t.groups.values().any(|g| start <= g.end && g.start <= end);
    if start > end || end as u64 >= size || overlaps {
        return Err(syn::FLOW_GROUP_RANGE);
    }
    dev.nic.flow.next_group = dev.nic.flow.next_group.wrapping_add(1).max(1);
    let gid = dev.nic.flow.next_group;
    t.groups.insert(
        start,
        Group {
            id: gid,
            start,
            end,
            mask,
            by_key: KeyMap::default(),
        },
    );
    // create_flow_group_out: group_id at bit 0x48.
    set(out, f(0x48, 0x18), gid as u64);
    Ok(())
}

/// DESTROY_FLOW_GROUP (`destroy_flow_group_in`: table_id 0xa8, group_id
/// 0xc0): refused while the group has entries.
pub fn destroy_group(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(
        inp,
        &[f(0x41, 0xf), f(0x60, 0x20), f(0x88, 0x18), f(0xa0, 8)],
    )?;
    reserved(inp, &[f(0xe0, 0x120)])?;
    own_nic_rx(inp)?;
    let gid = get(inp, f(0xc0, 0x20)) as u32;
    let t = table_mut(dev, inp)?;
    let Some(g) = t.group_by_id(gid) else {
        return Err(syn::UNKNOWN_FLOW_GROUP);
    };
    if !g.by_key.is_empty() {
        return Err(syn::FLOW_GROUP_IN_USE);
    }
    let start = g.start;
    t.groups.remove(&start);
    Ok(())
}

/// `flow_context` fields (bit offsets inside the context).
mod fc {
    use crate::bits::{F, f};
    pub const GROUP_ID: F = f(0x20, 0x20);
    pub const FLOW_TAG: F = f(0x48, 0x18);
    pub const ACTION: F = f(0x70, 0x10);
    /// extended_destination, uplink_hairpin_en, flow_source, encrypt_decrypt_type.
    pub const DEST_FLAGS: F = f(0x80, 8);
    pub const DEST_LIST_SIZE: F = f(0x88, 0x18);
    pub const COUNTER_LIST_SIZE: F = f(0xa8, 0x18);
    /// push_vlan, packet_reformat_id, modify_header_id, push_vlan_2,
    /// encrypt_decrypt_obj_id: none offered.
    pub const UNOFFERED: [F; 5] = [
        f(0x0, 0x20),
        f(0xc0, 0x20),
        f(0xe0, 0x20),
        f(0x100, 0x20),
        f(0x120, 0x20),
    ];
    pub const RESERVED: [F; 3] = [f(0x40, 8), f(0x60, 0x10), f(0xa0, 8)];
    /// reserved_at_140 and execute_aso / reserved_at_1300 (0x1200..0x1800).
    pub const TAIL: [F; 2] = [f(0x140, 0xc0), f(0x1200, 0x600)];
}

/// Parse and check the flow context of a SET_FLOW_TABLE_ENTRY for table
/// `level` (the match value is read and checked by the caller).
fn parse_entry(dev: &Function, inp: &[u8], level: u8) -> Result<Entry, CmdError> {
    let c = |fld: F| fld.at(layout::FTE_CTX);
    super::reserved_in(inp, layout::FTE_CTX, &fc::RESERVED)?;
    super::reserved_in(inp, layout::FTE_CTX, &fc::TAIL)?;
    let action = get(inp, c(fc::ACTION));
    let ndest = get(inp, c(fc::DEST_LIST_SIZE)) as usize;
    let ncount = get(inp, c(fc::COUNTER_LIST_SIZE)) as usize;
    let kind = action & !ACTION_COUNT;
    let max_dest = 1usize << nic_rx_cap(dev, super::caps::ft::LOG_MAX_DESTINATION).min(5);
    if get(inp, c(fc::DEST_FLAGS)) != 0
        || fc::UNOFFERED.iter().any(|u| get(inp, c(*u)) != 0)
        || !(kind == ACTION_FWD_DEST || kind == ACTION_DROP)
        || (kind == ACTION_FWD_DEST && !(1..=max_dest).contains(&ndest))
        || (kind == ACTION_DROP && ndest != 0)
        || ((action & ACTION_COUNT != 0) != (ncount != 0))
        || ncount > MAX_COUNTERS
    {
        return Err(syn::FLOW_ACTION);
    }
    if inp.len() < layout::FTE_DEST + 8 * (ndest + ncount) {
        return Err(syn::CMD_LENGTHS);
    }
    let mut dests = Vec::with_capacity(ndest);
    for i in 0..ndest {
        let at = layout::FTE_DEST + 8 * i;
        let kind = get(inp, f(0, 8).at(at));
        let id = get(inp, f(8, 0x18).at(at)) as u32;
        if get(inp, f(0x20, 0x20).at(at)) != 0 {
            return Err(syn::FLOW_ACTION);
        }
        let d = match kind {
            DEST_TIR if dev.nic.tirs.get(id).is_none() => return Err(syn::UNKNOWN_TIR),
            DEST_TIR => Dest::Tir(id),
            DEST_FLOW_TABLE => match dev.nic.flow.tables.get(&id) {
                None => return Err(syn::UNKNOWN_FLOW_TABLE),
                Some(t) if t.level <= level => return Err(syn::FLOW_ACTION),
                Some(_) => Dest::Table(id),
            },
            _ => return Err(syn::FLOW_ACTION),
        };
        if dests.contains(&d) {
            return Err(syn::FLOW_ACTION);
        }
        dests.push(d);
    }
    let mut counters = Vec::with_capacity(ncount);
    for i in 0..ncount {
        let at = layout::FTE_DEST + 8 * (ndest + i);
        let id = get(inp, f(0, 0x20).at(at));
        if get(inp, f(0x20, 0x20).at(at)) != 0 {
            return Err(syn::FLOW_ACTION);
        }
        if !dev.nic.flow.counters.contains_key(&(id as u32)) {
            return Err(syn::UNKNOWN_FLOW_COUNTER);
        }
        counters.push(id as u32);
    }
    Ok(Entry {
        group: get(inp, c(fc::GROUP_ID)) as u32,
        value: Key::read(inp, layout::FTE_MATCH),
        flow_tag: get(inp, c(fc::FLOW_TAG)) as u32,
        action: action as u16,
        dests,
        counters,
    })
}

/// Take (`up`) or drop the references an entry holds on TIRs and counters.
fn account(dev: &mut Function, e: &Entry, up: bool) {
    for d in &e.dests {
        if let Dest::Tir(t) = d
            && let Some(tir) = dev.nic.tirs.get_mut(*t)
        {
            tir.users = if up {
                tir.users + 1
            } else {
                tir.users.saturating_sub(1)
            };
        }
    }
    for id in &e.counters {
        if let Some(c) = dev.nic.flow.counters.get_mut(id) {
            c.users = if up {
                c.users + 1
            } else {
                c.users.saturating_sub(1)
            };
        }
    }
}

/// SET_FLOW_TABLE_ENTRY (`set_fte_in`: op_mod 0 create / 1 modify,
/// table_id 0xa8, flow_index 0x100, flow_context at byte 0x40).
pub fn set_entry(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    let op_mod = crate::bits::be16(inp, 6);
    if op_mod > 1 {
        return Err(syn::BAD_OP_MOD);
    }
    reserved(
        inp,
        &[
            f(0x41, 0xf),
            f(0x60, 0x20),
            f(0x88, 0x18),
            f(0xa0, 8),
            f(0xc1, 0x17),
            f(0xe0, 0x20),
            f(0x120, 0xe0),
        ],
    )?;
    own_nic_rx(inp)?;
    // ignore_flow_level and modify_enable_mask: levels are always honoured
    // and a modify replaces the whole entry.
    if get(inp, f(0xc0, 1)) != 0 || get(inp, f(0xd8, 8)) != 0 {
        return Err(syn::FLOW_ACTION);
    }
    let level = table(dev, inp)?.level;
    let entry = parse_entry(dev, inp, level)?;
    let (gid, value) = (entry.group, entry.value);
    let index = get(inp, FLOW_INDEX) as u32;
    let t = table_mut(dev, inp)?;
    let Some(g) = t.group_by_id(gid) else {
        return Err(syn::UNKNOWN_FLOW_GROUP);
    };
    if index < g.start || index > g.end {
        return Err(syn::FLOW_INDEX);
    }
    if has_unmodelled_bits(inp, layout::FTE_MATCH) || value.and(&g.mask) != value {
        return Err(syn::FLOW_MATCH_VALUE);
    }
    match (op_mod, t.entries.get(&index)) {
        (0, Some(_)) => return Err(syn::FLOW_INDEX_USED),
        (1, None) => return Err(syn::UNKNOWN_FLOW_ENTRY),
        (1, Some(o)) if o.group != gid => return Err(syn::FLOW_INDEX),
        _ => {}
    }
    if let Some(&other) = g.by_key.get(&value)
        && other != index
    {
        return Err(syn::FLOW_MATCH_VALUE);
    }
    let start = g.start;
    let old = t.entries.insert(index, entry.clone());
    if let Some(g) = t.groups.get_mut(&start) {
        if let Some(o) = &old {
            g.by_key.remove(&o.value);
        }
        g.by_key.insert(value, index);
    }
    if let Some(o) = old {
        account(dev, &o, false);
    }
    account(dev, &entry, true);
    Ok(())
}

/// DELETE_FLOW_TABLE_ENTRY (`delete_fte_in`: table_id 0xa8, flow_index 0x100).
pub fn delete_entry(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(
        inp,
        &[
            f(0x41, 0xf),
            f(0x60, 0x20),
            f(0x88, 0x18),
            f(0xa0, 8),
            f(0xc0, 0x40),
            f(0x120, 0xe0),
        ],
    )?;
    own_nic_rx(inp)?;
    let t = table_mut(dev, inp)?;
    let Some(e) = t.entries.remove(&(get(inp, FLOW_INDEX) as u32)) else {
        return Err(syn::UNKNOWN_FLOW_ENTRY);
    };
    if let Some(g) = t.groups.values_mut().find(|g| g.id == e.group) {
        g.by_key.remove(&e.value);
    }
    account(dev, &e, false);
    Ok(())
}

/// QUERY_FLOW_TABLE_ENTRY (`query_fte_in`: table_type 0x80, table_id 0xa8,
/// flow_index 0x100; `query_fte_out`: flow_context at byte 0x40 with its
/// destination and counter lists).
pub fn query_entry(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(
        inp,
        &[
            f(0x40, 0x40),
            f(0x88, 0x18),
            f(0xa0, 8),
            f(0xc0, 0x40),
            f(0x120, 0xe0),
        ],
    )?;
    own_nic_rx(inp)?;
    let Some(e) = table(dev, inp)?.entries.get(&(get(inp, FLOW_INDEX) as u32)) else {
        return Err(syn::UNKNOWN_FLOW_ENTRY);
    };
    if out.len() < layout::FTE_DEST + 8 * (e.dests.len() + e.counters.len()) {
        return Err(syn::BAD_OUTPUT_LENGTH);
    }
    let c = |fld: F| fld.at(layout::FTE_CTX);
    set(out, c(fc::GROUP_ID), e.group as u64);
    set(out, c(fc::FLOW_TAG), e.flow_tag as u64);
    set(out, c(fc::ACTION), e.action as u64);
    set(out, c(fc::DEST_LIST_SIZE), e.dests.len() as u64);
    set(out, c(fc::COUNTER_LIST_SIZE), e.counters.len() as u64);
    e.value.write(out, layout::FTE_MATCH);
    for (i, d) in e.dests.iter().enumerate() {
        let at = layout::FTE_DEST + 8 * i;
        let (kind, n) = match d {
            Dest::Tir(n) => (DEST_TIR, *n),
            Dest::Table(n) => (DEST_FLOW_TABLE, *n),
        };
        set(out, f(0, 8).at(at), kind);
        set(out, f(8, 0x18).at(at), n as u64);
    }
    for (i, id) in e.counters.iter().enumerate() {
        let at = layout::FTE_DEST + 8 * (e.dests.len() + i);
        set(out, f(0, 0x20).at(at), *id as u64);
    }
    Ok(())
}

/// SET_FLOW_TABLE_ROOT (`set_flow_table_root_in`: op_mod 0 connect /
/// 1 disconnect, table_id 0xa8, underlay_qpn 0xc8).
pub fn set_root(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    let op_mod = crate::bits::be16(inp, 6);
    if op_mod > 1 {
        return Err(syn::BAD_OP_MOD);
    }
    reserved(
        inp,
        &[
            f(0x41, 0xf),
            f(0x60, 0x20),
            f(0x88, 0x7),
            f(0xa0, 8),
            f(0xc0, 8),
            f(0xe1, 0xf),
        ],
    )?;
    reserved(inp, &[f(0x100, 0x100)])?;
    own_nic_rx(inp)?;
    // table_of_other_vport, table_vport_number, underlay_qpn, eswitch owner.
    if get(inp, f(0x8f, 1)) != 0
        || get(inp, f(0x90, 0x10)) != 0
        || get(inp, f(0xc8, 0x18)) != 0
        || get(inp, f(0xe0, 1)) != 0
        || get(inp, f(0xf0, 0x10)) != 0
    {
        return Err(syn::BAD_FUNCTION);
    }
    let id = get(inp, TABLE_ID) as u32;
    if op_mod == 1 {
        dev.nic.flow.root = None;
        return Ok(());
    }
    if !dev.nic.flow.tables.contains_key(&id) {
        return Err(syn::UNKNOWN_FLOW_TABLE);
    }
    dev.nic.flow.root = Some(id);
    Ok(())
}

/// ALLOC_FLOW_COUNTER (`alloc_flow_counter_in`: flow_counter_bulk_log_size
/// bit 0x53, flow_counter_bulk 0x58; out: flow_counter_id at bit 0x40).
/// One counter per command (bulk allocation is not offered).
pub fn alloc_counter(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x13)])?;
    if get(inp, f(0x53, 5)) != 0 || get(inp, f(0x58, 8)) != 0 {
        return Err(syn::FLOW_COUNTER_BULK);
    }
    let max = 1u64 << nic_rx_cap(dev, super::caps::ft::LOG_MAX_FLOW_COUNTER).min(24);
    if dev.nic.flow.counters.len() as u64 >= max {
        return Err(syn::NO_FLOW_COUNTER);
    }
    let Some(id) = (1..=u32::MAX).find(|n| !dev.nic.flow.counters.contains_key(n)) else {
        return Err(syn::NO_FLOW_COUNTER);
    };
    dev.nic.flow.counters.insert(id, Counter::default());
    set(out, f(0x40, 0x20), id as u64);
    Ok(())
}

/// DEALLOC_FLOW_COUNTER (`dealloc_flow_counter_in`: flow_counter_id bit
/// 0x40): refused while an entry counts into it.
pub fn dealloc_counter(dev: &mut Function, inp: &[u8], _out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x60, 0x20)])?;
    let id = get(inp, f(0x40, 0x20)) as u32;
    match dev.nic.flow.counters.get(&id) {
        None => Err(syn::UNKNOWN_FLOW_COUNTER),
        Some(c) if c.users != 0 => Err(syn::FLOW_COUNTER_IN_USE),
        Some(_) => {
            dev.nic.flow.counters.remove(&id);
            Ok(())
        }
    }
}

/// QUERY_FLOW_COUNTER (`query_flow_counter_in`: clear bit 0xc0,
/// num_of_counters 0xd0 (0 means one), flow_counter_id 0xe0; out:
/// `traffic_counter` {packets, octets} per counter from byte 0x10).
pub fn query_counter(dev: &mut Function, inp: &[u8], out: &mut [u8]) -> Result<(), CmdError> {
    reserved(inp, &[f(0x40, 0x80), f(0xc1, 0xf)])?;
    let clear = get(inp, f(0xc0, 1)) != 0;
    let n = (get(inp, f(0xd0, 0x10)) as u32).max(1);
    let first = get(inp, f(0xe0, 0x20)) as u32;
    if out.len() < 0x10 + 16 * n as usize {
        return Err(syn::BAD_OUTPUT_LENGTH);
    }
    if (0..n).any(|i| {
        !first
            .checked_add(i)
            .is_some_and(|id| dev.nic.flow.counters.contains_key(&id))
    }) {
        return Err(syn::UNKNOWN_FLOW_COUNTER);
    }
    for i in 0..n {
        let Some(c) = dev.nic.flow.counters.get_mut(&(first + i)) else {
            continue;
        };
        let at = 0x10 + 16 * i as usize;
        crate::bits::put_be64(out, at, c.packets);
        crate::bits::put_be64(out, at + 8, c.bytes);
        if clear {
            c.packets = 0;
            c.bytes = 0;
        }
    }
    Ok(())
}

/// Forget every table and counter (teardown); TIR use counts go with the TIRs.
pub fn destroy_all(dev: &mut Function) {
    dev.nic.flow.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fte_match_set_lyr_2_4` by hand: smac (bytes 0..6), ethertype
    /// (bytes 6..8), dmac_47_16 (bit 0x40: bytes 8..0xc), dmac_15_0
    /// (bit 0x60: bytes 0xc..0xe), first_prio/cfi/vid (bytes 0xe..0x10:
    /// prio 5 cfi 0 vid 0x123 = 0xa123), ip_protocol byte 0x10, cvlan_tag
    /// (bit 0x90: byte 0x12, 0x80), ip_version (bits 0x93..0x97: byte 0x12,
    /// 6 << 1 = 0x0c).
    #[test]
    fn lyr_2_4_fields_from_hand_written_bytes() {
        let mut m = [0u8; 0x40];
        m[0x00..0x06].copy_from_slice(&[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
        m[0x06..0x08].copy_from_slice(&[0x86, 0xdd]);
        m[0x08..0x0e].copy_from_slice(&[0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        m[0x0e..0x10].copy_from_slice(&[0xa1, 0x23]);
        m[0x10] = 17;
        m[0x12] = 0x80 | 0x0c;
        let k = Key::read(&m, 0);
        assert_eq!(k.dmac, 0x0211_2233_4455);
        assert_eq!(k.smac, 0x02aa_bbcc_ddee);
        assert_eq!(k.ethertype, 0x86dd);
        assert_eq!((k.first_prio, k.first_vid), (5, 0x123));
        assert_eq!((k.ip_protocol, k.ip_version), (17, 6));
        assert!(k.cvlan_tag && !k.svlan_tag);
        let mut back = [0u8; 0x40];
        k.write(&mut back, 0);
        assert_eq!(back, m);
        assert!(!has_unmodelled_bits(
            &[m.as_slice(), &[0u8; 0x1c0]].concat(),
            0
        ));
        // first_cfi (bit 0x73: byte 0x0e, 0x10), tcp_dport (bytes
        // 0x16..0x18), ttl_hoplimit (byte 0x1b), udp_sport (bytes
        // 0x1c..0x1e) and the addresses (bytes 0x20..0x40, IPv4 in the
        // last four of each) are matched too.
        m[0x0e] |= 0x10;
        m[0x16..0x18].copy_from_slice(&[0x01, 0xbb]);
        m[0x1b] = 64;
        m[0x1c..0x1e].copy_from_slice(&[0x00, 0x35]);
        m[0x2c..0x30].copy_from_slice(&[10, 0, 0, 1]);
        m[0x30..0x40].copy_from_slice(&[0xfd; 16]);
        let k = Key::read(&m, 0);
        assert!(k.first_cfi);
        assert_eq!((k.tcp_dport, k.ttl_hoplimit, k.udp_sport), (443, 64, 53));
        assert_eq!(k.src_ip, 0x0a00_0001);
        assert_eq!(k.dst_ip, u128::from_be_bytes([0xfd; 16]));
        let full = [m.as_slice(), &[0u8; 0x1c0]].concat();
        assert!(!has_unmodelled_bits(&full, 0));
        // l4_type (bits 0xc0..0xc2: byte 0x18, 0xc0) is not modelled, nor is
        // anything past the outer set (misc_parameters from byte 0x40).
        let mut l4_type = full.clone();
        l4_type[0x18] = 0x40;
        assert!(has_unmodelled_bits(&l4_type, 0));
        let mut misc = full;
        misc[0x40] = 1;
        assert!(has_unmodelled_bits(&misc, 0));
    }

    /// `set_fte_in`: flow_context at bit 0x200; in it match_value at bit
    /// 0x200 and destination at bit 0x1800 (after execute_aso[4] at 0x1200
    /// and reserved_at_1300[0x500]).
    #[test]
    fn fte_offsets_follow_ifc() {
        assert_eq!(layout::FTE_CTX * 8, 0x200);
        assert_eq!((layout::FTE_MATCH - layout::FTE_CTX) * 8, 0x200);
        assert_eq!((layout::FTE_DEST - layout::FTE_CTX) * 8, 0x1800);
    }

    /// `flow_context` by hand: group_id dword 1, flow_tag bytes 9..0xc,
    /// action bytes 0xe..0x10 (FWD_DEST | COUNT = 0x000c),
    /// destination_list_size bytes 0x11..0x14, flow_counter_list_size
    /// bytes 0x15..0x18.
    #[test]
    fn flow_context_fields_from_hand_written_bytes() {
        let mut c = [0u8; 0x20];
        c[0x07] = 0x05;
        c[0x0b] = 0x42;
        c[0x0f] = 0x0c;
        c[0x13] = 0x02;
        c[0x17] = 0x01;
        assert_eq!(get(&c, fc::GROUP_ID), 5);
        assert_eq!(get(&c, fc::FLOW_TAG), 0x42);
        assert_eq!(get(&c, fc::ACTION), ACTION_FWD_DEST | ACTION_COUNT);
        assert_eq!(get(&c, fc::DEST_LIST_SIZE), 2);
        assert_eq!(get(&c, fc::COUNTER_LIST_SIZE), 1);
        assert!(crate::bits::all_zero(&c, &fc::RESERVED));
    }
}
