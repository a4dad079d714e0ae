//! Receive steering of the model, driven by the raw client: flow tables at
//! several levels with groups on dmac / cvlan_tag / first_vid / ethertype /
//! ip_protocol, forward-to-table, drop, flow counters, miss tables,
//! QUERY_FLOW_TABLE_ENTRY, the vport's promiscuous / all-multicast flags,
//! and RSS (RQTs, indirect TIRs, Toeplitz) putting flows on the predicted RQ.
//! Offsets are typed in from mlx5_ifc.h and cited beside them.

mod common;
mod dp;

use common::*;
use cxos_drivers::{DmaAlloc, DmaRegion};
use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::inspect::Dest;
use mlx5_sim::harness::{Mode, SimDma, SimPlatform};

fn number(out: &[u8]) -> u32 {
    be32(out, 0x08) & 0xff_ffff
}

/// CREATE_FLOW_TABLE (NIC_RX): flow_table_context at 0x18: table_miss_action
/// byte 0x18 low nibble, level byte 0x19, log_size byte 0x1b, table_miss_id
/// bytes 0x1d..0x20.
fn create_table(n: &mut Net, level: u8, log_size: u8, miss: Option<u32>) -> u32 {
    let mut m = Msg::new(CREATE_FLOW_TABLE, 0, 0x58);
    m.u8(0x19, level);
    m.u8(0x1b, log_size);
    if let Some(id) = miss {
        m.u8(0x18, 1);
        m.be32(0x1c, id);
    }
    number(&n.raw.ok(&m, 0x10))
}

/// Criteria / values are `fte_match_set_lyr_2_4` bytes (outer headers):
/// dmac 0x08..0x0e, first_prio/cfi/vid 0x0e..0x10 (vid low 12 bits),
/// ethertype 0x06..0x08, ip_protocol 0x10, cvlan_tag byte 0x12 bit 7.
#[derive(Clone, Copy, Default)]
struct Match {
    dmac: Option<[u8; 6]>,
    vid: Option<u16>,
    cvlan: Option<bool>,
    ethertype: Option<u16>,
    ip_protocol: Option<u8>,
}

impl Match {
    fn write(&self, m: &mut Msg, at: usize, mask: bool) {
        if let Some(mac) = self.dmac {
            for (i, b) in mac.iter().enumerate() {
                m.u8(at + 8 + i, if mask { 0xff } else { *b });
            }
        }
        if let Some(v) = self.vid {
            m.be16(at + 0x0e, if mask { 0x0fff } else { v });
        }
        if let Some(c) = self.cvlan {
            m.u8(at + 0x12, if mask || c { 0x80 } else { 0 });
        }
        if let Some(e) = self.ethertype {
            m.be16(at + 0x06, if mask { 0xffff } else { e });
        }
        if let Some(p) = self.ip_protocol {
            m.u8(at + 0x10, if mask { 0xff } else { p });
        }
    }
}

/// CREATE_FLOW_GROUP: table_id dword 5, start dword 7, end dword 9,
/// match_criteria_enable byte 0x3f (1 outer), criteria at 0x40.
fn create_group(n: &mut Net, table: u32, start: u32, end: u32, crit: Match) -> u32 {
    let mut m = Msg::new(CREATE_FLOW_GROUP, 0, 0x400);
    m.be32(0x14, table);
    m.be32(0x1c, start);
    m.be32(0x24, end);
    let mut probe = Msg::new(0, 0, 0x40);
    crit.write(&mut probe, 0, true);
    if probe.0.iter().any(|b| *b != 0) {
        m.u8(0x3f, 1);
    }
    crit.write(&mut m, 0x40, true);
    number(&n.raw.ok(&m, 0x10))
}

const DROP: u32 = 0x2;
const FWD: u32 = 0x4;
const COUNT: u32 = 0x8;
const DEST_TABLE: u32 = 0x1;
const DEST_TIR: u32 = 0x2;

/// SET_FLOW_TABLE_ENTRY: table_id dword 5, flow_index dword 8; flow_context
/// at 0x40: group_id +0x04, action +0x0c, destination_list_size +0x10,
/// flow_counter_list_size +0x14, match_value +0x40, destinations at +0x300
/// (type << 24 | id, then a reserved dword), counters after them
/// (flow_counter_id, reserved dword).
#[allow(clippy::too_many_arguments)]
fn fte(
    table: u32,
    index: u32,
    group: u32,
    value: Match,
    action: u32,
    dests: &[(u32, u32)],
    counters: &[u32],
    op_mod: u16,
) -> Msg {
    let mut m = Msg::new(
        SET_FLOW_TABLE_ENTRY,
        op_mod,
        0x340 + 8 * (dests.len() + counters.len()),
    );
    m.be32(0x14, table);
    m.be32(0x20, index);
    m.be32(0x44, group);
    m.be32(0x4c, action);
    m.be32(0x50, dests.len() as u32);
    m.be32(0x54, counters.len() as u32);
    value.write(&mut m, 0x80, false);
    for (i, (t, id)) in dests.iter().enumerate() {
        m.be32(0x340 + 8 * i, t << 24 | id);
    }
    for (i, c) in counters.iter().enumerate() {
        m.be32(0x340 + 8 * (dests.len() + i), *c);
    }
    m
}

/// ALLOC_FLOW_COUNTER: the id at out dword 2.
fn alloc_counter(n: &mut Net) -> u32 {
    be32(
        &n.raw.ok(&Msg::new(ALLOC_FLOW_COUNTER, 0, 0x10), 0x10),
        0x08,
    )
}

/// QUERY_FLOW_COUNTER: clear bit 0xc0 (byte 0x18, 0x80), flow_counter_id
/// dword 7; out: packets at 0x10, octets at 0x18.
fn query_counter(n: &mut Net, id: u32, clear: bool) -> (u64, u64) {
    let mut m = Msg::new(QUERY_FLOW_COUNTER, 0, 0x20);
    if clear {
        m.u8(0x18, 0x80);
    }
    m.be32(0x1c, id);
    let out = n.raw.ok(&m, 0x20);
    (be64(&out, 0x10), be64(&out, 0x18))
}

/// An IPv4 frame with protocol `proto` to `dst`, with an 802.1Q tag `vid`.
fn ip4(dst: [u8; 6], vid: Option<u16>, proto: u8, len: usize) -> Vec<u8> {
    let mut f = frame(dst, [2, 0, 0, 0, 0, 9], len, 3);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    f[20..22].copy_from_slice(&[0, 0]);
    f[23] = proto;
    if let Some(v) = vid {
        f.splice(12..12, [0x81, 0x00, (v >> 8) as u8, v as u8]);
    }
    f
}

#[test]
fn tables_at_levels_with_vlan_and_protocol_groups_counters_drop_and_miss() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    let mac = n.mac;
    // Level 1: per-VLAN table: tagged vid 10, and untagged.
    let vlan_t = create_table(&mut n, 1, 4, None);
    let tagged = Match {
        cvlan: Some(true),
        vid: Some(0),
        ..Match::default()
    };
    let g_tag = create_group(&mut n, vlan_t, 0, 7, tagged);
    let untagged = Match {
        cvlan: Some(false),
        ..Match::default()
    };
    let g_untag = create_group(&mut n, vlan_t, 8, 8, untagged);
    let c_root = alloc_counter(&mut n);
    let c_vid10 = alloc_counter(&mut n);
    let vid10 = Match {
        cvlan: Some(true),
        vid: Some(10),
        ..Match::default()
    };
    let tir = n.tirn;
    n.raw.ok(
        &fte(
            vlan_t,
            0,
            g_tag,
            vid10,
            FWD | COUNT,
            &[(DEST_TIR, tir)],
            &[c_vid10],
            0,
        ),
        0x10,
    );
    n.raw.ok(
        &fte(
            vlan_t,
            8,
            g_untag,
            untagged,
            FWD,
            &[(DEST_TIR, tir)],
            &[],
            0,
        ),
        0x10,
    );
    // Root entry for our MAC (index 0, op_mod 1 = modify): to the VLAN table, counted.
    let dmac = Match {
        dmac: Some(mac),
        ..Match::default()
    };
    let (root, root_group) = (n.table, n.group);
    let m = fte(
        root,
        0,
        root_group,
        dmac,
        FWD | COUNT,
        &[(DEST_TABLE, vlan_t)],
        &[c_root],
        1,
    );
    n.raw.ok(&m, 0x10);

    p.inject_rx(&ip4(mac, None, 6, 100));
    p.inject_rx(&ip4(mac, Some(10), 6, 100));
    p.inject_rx(&ip4(mac, Some(20), 6, 100));
    assert!(n.rx_cq.poll().is_some() && n.rx_cq.poll().is_some());
    assert!(n.rx_cq.poll().is_none(), "vid 20 has no entry");
    assert_eq!(p.port_stats().rx_dropped_no_steering, 1);
    assert_eq!(query_counter(&mut n, c_root, false), (3, 308));
    assert_eq!(query_counter(&mut n, c_vid10, true), (1, 104));
    assert_eq!(query_counter(&mut n, c_vid10, false), (0, 0), "cleared");

    // Level 2: UDP over IPv4 is dropped (and counted); the VLAN table
    // misses into it (MODIFY_FLOW_TABLE: modify_field_select dword 3 bit 0,
    // table_id dword 5, context at 0x18 as in CREATE).
    let proto_t = create_table(&mut n, 2, 2, None);
    let by_proto = Match {
        ethertype: Some(0),
        ip_protocol: Some(0),
        ..Match::default()
    };
    let g_proto = create_group(&mut n, proto_t, 0, 3, by_proto);
    let c_drop = alloc_counter(&mut n);
    let udp4 = Match {
        ethertype: Some(0x0800),
        ip_protocol: Some(17),
        ..Match::default()
    };
    n.raw.ok(
        &fte(proto_t, 0, g_proto, udp4, DROP | COUNT, &[], &[c_drop], 0),
        0x10,
    );
    let mut m = Msg::new(MODIFY_FLOW_TABLE, 0, 0x40);
    m.be32(0x0c, 1);
    m.be32(0x14, vlan_t);
    m.u8(0x18, 1);
    m.be32(0x1c, proto_t);
    n.raw.ok(&m, 0x10);
    p.inject_rx(&ip4(mac, Some(20), 17, 100));
    p.inject_rx(&ip4(mac, Some(20), 6, 100));
    assert!(n.rx_cq.poll().is_none());
    let s = p.port_stats();
    assert_eq!((s.rx_dropped_by_rule, s.rx_dropped_no_steering), (1, 2));
    assert_eq!(query_counter(&mut n, c_drop, false), (1, 104));

    // QUERY_FLOW_TABLE_ENTRY of the root entry: flow_context at out 0x40.
    let mut q = Msg::new(QUERY_FLOW_TABLE_ENTRY, 0, 0x40);
    q.be32(0x14, root);
    q.be32(0x20, 0);
    let out = n.raw.ok(&q, 0x340 + 16);
    assert_eq!(be32(&out, 0x44), root_group);
    assert_eq!(be32(&out, 0x4c), FWD | COUNT);
    assert_eq!((be32(&out, 0x50), be32(&out, 0x54)), (1, 1));
    assert_eq!(&out[0x88..0x8e], &mac);
    assert_eq!(be32(&out, 0x340), DEST_TABLE << 24 | vlan_t);
    assert_eq!(be32(&out, 0x348), c_root);

    // Refusals.
    let mut m = Msg::new(DEALLOC_FLOW_COUNTER, 0, 0x10);
    m.be32(0x08, c_root);
    assert_eq!(
        n.raw.fails(&m, 0x10),
        (RESOURCE_BUSY, 0x0006_000d),
        "counter in use"
    );
    let mut m = Msg::new(DESTROY_FLOW_TABLE, 0, 0x40);
    m.be32(0x14, proto_t);
    assert_eq!(
        n.raw.fails(&m, 0x10),
        (RESOURCE_BUSY, 0x0006_0006),
        "miss target"
    );
    let back = fte(vlan_t, 1, g_tag, vid10, FWD, &[(DEST_TABLE, root)], &[], 0);
    assert_eq!(
        n.raw.fails(&back, 0x10),
        (BAD_PARAM, 0x0003_0028),
        "to a shallower table"
    );
    let drop_to = fte(vlan_t, 1, g_tag, vid10, DROP, &[(DEST_TIR, tir)], &[], 0);
    assert_eq!(
        n.raw.fails(&drop_to, 0x10),
        (BAD_PARAM, 0x0003_0028),
        "drop with a destination"
    );
    let no_counter = fte(
        vlan_t,
        1,
        g_tag,
        vid10,
        FWD | COUNT,
        &[(DEST_TIR, tir)],
        &[0x7777],
        0,
    );
    assert_eq!(n.raw.fails(&no_counter, 0x10), (BAD_RESOURCE, 0x0005_000e));
    let mut m = Msg::new(CREATE_FLOW_TABLE, 0, 0x58);
    m.u8(0x19, 3);
    m.u8(0x18, 1);
    m.be32(0x1c, vlan_t);
    assert_eq!(
        n.raw.fails(&m, 0x10),
        (BAD_PARAM, 0x0003_0024),
        "miss to a shallower table"
    );
    let mut m = Msg::new(CREATE_FLOW_GROUP, 0, 0x400);
    m.be32(0x14, proto_t);
    m.be32(0x1c, 3);
    m.be32(0x24, 3);
    m.u8(0x3f, 1);
    // fte_match_param.misc_parameters (bytes 0x40..0x80 of the criteria):
    // source_sqn at byte 0x44 is not modelled.
    m.u8(0x40 + 0x44, 0x01);
    assert_eq!(n.raw.fails(&m, 0x10), (BAD_PARAM, 0x0003_0026));
    let mut m = Msg::new(ALLOC_FLOW_COUNTER, 0, 0x10);
    m.u8(0x0b, 4); // flow_counter_bulk
    assert_eq!(n.raw.fails(&m, 0x10), (BAD_PARAM, 0x0003_002c));
    // Counters go once unused: point the root entry back at the TIR.
    n.set_entry(0, mac, 1);
    let mut m = Msg::new(DEALLOC_FLOW_COUNTER, 0, 0x10);
    m.be32(0x08, c_root);
    n.raw.ok(&m, 0x10);
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_RESOURCE);
    // The harness's view of the same state.
    assert_eq!(p.flow_tables().len(), 3);
    assert_eq!(p.flow_root(), Some(root));
    assert_eq!(p.flow_counter(c_root), None);
    assert_eq!(p.flow_counter(c_drop), Some((1, 104)));
    let entries = p.flow_entries();
    let e = entries
        .iter()
        .find(|e| e.table == vlan_t && e.index == 0)
        .expect("vid 10 entry");
    assert_eq!(
        (e.table_level, e.value.first_vid, e.value.cvlan_tag),
        (1, 10, true)
    );
    assert_eq!(e.dests, vec![Dest::Tir(tir)]);
    assert_eq!(e.counters, vec![c_vid10]);
    let d = entries.iter().find(|e| e.table == proto_t).unwrap();
    assert_eq!(
        (d.action, d.value.ip_protocol, d.value.ethertype),
        (0xa, 17, 0x0800)
    );
    assert_eq!(p.rq_frames(n.rqn), Some(2));
    assert!(p.sanitizer_violations().is_empty());
}

#[test]
fn vport_promiscuous_and_all_multicast_flags_gate_what_reaches_the_tables() {
    let p = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    // A root table with the dmac group and a catch-all group (no criteria).
    let t = create_table(&mut n, 0, 5, None);
    let g = create_group(
        &mut n,
        t,
        0,
        15,
        Match {
            dmac: Some([0; 6]),
            ..Match::default()
        },
    );
    let all = create_group(&mut n, t, 31, 31, Match::default());
    let tir = n.tirn;
    for (i, mac) in [n.mac, [0xff; 6]].iter().enumerate() {
        let v = Match {
            dmac: Some(*mac),
            ..Match::default()
        };
        n.raw.ok(
            &fte(t, i as u32, g, v, FWD, &[(DEST_TIR, tir)], &[], 0),
            0x10,
        );
    }
    n.raw.ok(
        &fte(
            t,
            31,
            all,
            Match::default(),
            FWD,
            &[(DEST_TIR, tir)],
            &[],
            0,
        ),
        0x10,
    );
    let mut m = Msg::new(SET_FLOW_TABLE_ROOT, 0, 0x40);
    m.be32(0x14, t);
    n.raw.ok(&m, 0x10);

    let stranger = [0x02, 0x99, 0, 0, 0, 1];
    let group = [0x01, 0x00, 0x5e, 0, 0, 1];
    let arrives = |n: &mut Net, dst: [u8; 6]| {
        p.inject_rx(&frame(dst, [2; 6], 64, 0));
        let got = n.rx_cq.poll().is_some();
        if got {
            n.repost_rx();
        }
        got
    };
    let own = n.mac;
    assert!(arrives(&mut n, own) && arrives(&mut n, [0xff; 6]));
    assert!(!arrives(&mut n, stranger) && !arrives(&mut n, group));
    assert_eq!(p.port_stats().rx_dropped_vport_filter, 2);
    n.set_promisc(true, false, false);
    assert!(arrives(&mut n, stranger) && !arrives(&mut n, group));
    n.set_promisc(false, true, false);
    assert!(!arrives(&mut n, stranger) && arrives(&mut n, group));
    n.set_promisc(false, false, false);
    n.set_mac_list(true, &[group]);
    assert!(arrives(&mut n, group), "in the multicast list");
    assert!(!arrives(&mut n, [0x01, 0x00, 0x5e, 0, 0, 2]));
    n.set_promisc(false, false, true);
    assert!(arrives(&mut n, stranger) && arrives(&mut n, [0x33, 0x33, 0, 0, 0, 1]));
    n.set_promisc(false, false, false);
    assert!(!arrives(&mut n, stranger));
    assert_eq!(p.port_stats().rx_dropped_vport_filter, 6);
    let v = p.vport_filter();
    assert_eq!(
        (v.promisc_uc, v.promisc_mc, v.promisc_all, v.mc),
        (false, false, false, vec![group])
    );
}

/// An RQ of 16 one-segment WQEs on `n`'s receive CQ, its own ring and
/// buffers, posted and RDY.
struct ExtraRq {
    rqn: u32,
    _ring: SimDma,
    _dbr: SimDma,
    bufs: SimDma,
}

fn extra_rq(n: &mut Net) -> ExtraRq {
    let p = n.raw.p.clone();
    let ring = p.dma_alloc(4096).unwrap();
    let dbr = p.dma_alloc(64).unwrap();
    let bufs = p.dma_alloc(16 * 2048).unwrap();
    for i in 0..16 {
        ring.write_be32(i * 16, 2048);
        ring.write_be32(i * 16 + 4, n.up.resd_lkey);
        ring.write_be64(i * 16 + 8, bufs.device_addr().get() + 2048 * i as u64);
    }
    dbr.write_be32(0, 16);
    let mut m = n.rq_msg(0, 4);
    // The wq context at 0x50: dbr_addr +0x10, log_wq_sz byte +0x23, pas +0xc0.
    m.be64(0x50 + 0x10, dbr.device_addr().get());
    m.u8(0x50 + 0x23, 4);
    m.be64(0x50 + 0xc0, ring.device_addr().get());
    let rqn = number(&n.raw.ok(&m, 0x10));
    let m = Net::modify_msg(MODIFY_RQ, rqn, RST, RDY);
    n.raw.ok(&m, 0x10);
    ExtraRq {
        rqn,
        _ring: ring,
        _dbr: dbr,
        bufs,
    }
}

/// CREATE_RQT / MODIFY_RQT: rqtc at 0x20: rqt_max_size bytes 0x36..0x38,
/// rqt_actual_size bytes 0x3a..0x3c, rq_num[] from 0x110 (0x20 + 0xf0).
fn rqt_msg(opcode: u16, rqtn: u32, rqns: &[u32]) -> Msg {
    let mut m = Msg::new(opcode, 0, 0x110 + 4 * rqns.len());
    if opcode == MODIFY_RQT {
        m.be32(0x08, rqtn);
        m.be64(0x10, 1); // rqt_bitmask.rqn_list
    } else {
        m.be16(0x36, 8);
    }
    m.be16(0x3a, rqns.len() as u16);
    for (i, r) in rqns.iter().enumerate() {
        m.be32(0x110 + 4 * i, *r);
    }
    m
}

/// CREATE_TIR indirect: tirc at 0x20: disp_type byte 0x24 high nibble (1),
/// indirect_table dword 0x40, rx_hash_fn byte 0x44 high nibble (2 Toeplitz)
/// with transport_domain in the same dword, key at 0x48..0x70, outer
/// selector dword 0x70: l3_prot_type bit 31 (IPv6), l4_prot_type bit 30
/// (UDP), selected_fields bits 0..3 (src ip, dst ip, sport, dport).
fn indirect_tir(n: &mut Net, rqtn: u32, v6: bool, udp: bool, fields: u32) -> u32 {
    let mut m = Msg::new(CREATE_TIR, 0, 0x110);
    m.u8(0x24, 0x10);
    m.be32(0x40, rqtn);
    m.be32(0x44, 0x2000_0000 | n.up.td);
    for (i, b) in ms_rss::MS_KEY.iter().enumerate() {
        m.u8(0x48 + i, *b);
    }
    m.be32(0x70, (v6 as u32) << 31 | (udp as u32) << 30 | fields);
    number(&n.raw.ok(&m, 0x10))
}

fn tcp4(dst: [u8; 6], src_ip: [u8; 4], dst_ip: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = ip4(dst, None, 6, 80);
    f[26..30].copy_from_slice(&src_ip);
    f[30..34].copy_from_slice(&dst_ip);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[46] = 0x50;
    f
}

#[test]
fn rss_puts_each_flow_on_the_rq_its_toeplitz_hash_picks() {
    let p = SimPlatform::new(Personality::ConnectX6, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    let rqs: Vec<ExtraRq> = (0..4).map(|_| extra_rq(&mut n)).collect();
    let rqns: Vec<u32> = rqs.iter().map(|r| r.rqn).collect();
    let rqtn = number(&n.raw.ok(&rqt_msg(CREATE_RQT, 0, &rqns), 0x10));
    let tirn = indirect_tir(&mut n, rqtn, false, false, 0xf);
    let m = n.fte(0, n.mac, 1, tirn);
    n.raw.ok(&m, 0x10);
    let mut order = rqns.clone();
    for round in 0..2 {
        // Microsoft's verification vectors, their 4-tuple hash.
        for (dst, dport, src, sport, _, hash) in ms_rss::MS_IPV4 {
            let f = tcp4(n.mac, src, dst, sport, dport);
            p.inject_rx(&f);
            let e = n.rx_cq.poll().expect("delivered");
            assert_eq!(cqe_opcode(&e), 2);
            // CQE rss_hash_result 0x0c, rss_hash_type 0x10 (IPv4 1 << 2 | TCP 1 << 6).
            assert_eq!(be32(&e, 0x0c), hash);
            assert_eq!(e[0x10], 0x44);
            let want = order[hash as usize % 4];
            assert_eq!(cqe_qpn(&e), want, "round {round} flow {src:?}");
            let r = rqs.iter().find(|r| r.rqn == want).unwrap();
            let mut got = vec![0u8; f.len()];
            r.bufs
                .read_bytes(2048 * cqe_wqe_counter(&e) as usize, &mut got);
            assert_eq!(got, f);
        }
        // MODIFY_RQT: the reversed list moves the flows accordingly.
        order.reverse();
        n.raw.ok(&rqt_msg(MODIFY_RQT, rqtn, &order), 0x10);
    }
    let per_rq: u64 = rqns.iter().map(|r| p.rq_frames(*r).unwrap()).sum();
    assert_eq!(per_rq, 10);
    assert_eq!(p.rqt(rqtn), Some(rqns.clone()));
    // A TIR hashing IPv6 does not hash IPv4 frames: RQT entry 0, hash 0.
    let v6_tir = indirect_tir(&mut n, rqtn, true, false, 0xf);
    let m = n.fte(0, n.mac, 1, v6_tir);
    n.raw.ok(&m, 0x10);
    p.inject_rx(&tcp4(n.mac, [1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    let e = n.rx_cq.poll().unwrap();
    assert_eq!((be32(&e, 0x0c), e[0x10], cqe_qpn(&e)), (0, 0, order[0]));
    // In use: the RQT by the TIRs, the RQs by the RQT.
    let mut m = Msg::new(DESTROY_RQT, 0, 0x10);
    m.be32(0x08, rqtn);
    assert_eq!(n.raw.fails(&m, 0x10), (RESOURCE_BUSY, 0x0006_000e));
    let mut m = Msg::new(DESTROY_RQ, 0, 0x10);
    m.be32(0x08, rqns[0]);
    assert_eq!(n.raw.fails(&m, 0x10).0, RESOURCE_BUSY);
    // Bad tables: actual size above max, unknown RQ, bad hash function.
    let mut m = rqt_msg(CREATE_RQT, 0, &rqns);
    m.be16(0x36, 2);
    assert_eq!(n.raw.fails(&m, 0x10), (BAD_PARAM, 0x0003_002d));
    let m = rqt_msg(CREATE_RQT, 0, &[0x77]);
    assert_eq!(n.raw.fails(&m, 0x10).0, BAD_RESOURCE);
    let mut m = Msg::new(CREATE_TIR, 0, 0x110);
    m.u8(0x24, 0x10);
    m.be32(0x40, rqtn);
    m.be32(0x44, 0x3000_0000 | n.up.td); // rx_hash_fn 3: not defined
    assert_eq!(n.raw.fails(&m, 0x10), (BAD_PARAM, 0x0003_0022));
    assert!(p.sanitizer_violations().is_empty());
}
