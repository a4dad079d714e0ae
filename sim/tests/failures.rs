//! Every failure rule of the model, hit by the raw client, with the status
//! and syndrome checked against hand-written values (sim/src/syndrome.rs is
//! the one place they are defined).
mod common;

use common::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::Mode;

fn raw() -> Raw {
    Raw::new(Personality::ConnectX5, Mode::Synchronous)
}

#[test]
fn state_rules() {
    let mut r = raw();
    // Before ENABLE_HCA.
    assert_eq!(
        r.fails(&Msg::new(QUERY_ISSI, 0, 0x10), 0x70),
        (0x04, 0x0004_0001)
    );
    assert_eq!(r.fails(&Msg::new(NOP, 0, 0x10), 0x10), (0x04, 0x0004_0001));
    r.simple(ENABLE_HCA, 0);
    assert_eq!(
        r.fails(&Msg::new(ENABLE_HCA, 0, 0x10), 0x10),
        (0x04, 0x0004_0004)
    );
    // Needs INIT_HCA.
    assert_eq!(
        r.fails(&Msg::new(ALLOC_UAR, 0, 0x10), 0x10),
        (0x04, 0x0004_0002)
    );
    assert_eq!(
        r.fails(&Msg::new(TEARDOWN_HCA, 0, 0x10), 0x10),
        (0x04, 0x0004_0002)
    );
    // INIT_HCA without pages, then with boot pages only.
    assert_eq!(
        r.fails(&Msg::new(INIT_HCA, 0, 0x10), 0x10),
        (0x0f, 0x000f_0001)
    );
    let mut pages = Vec::new();
    let boot = r.query_pages(1) as usize;
    r.give_pages(boot, &mut pages);
    assert_eq!(
        r.fails(&Msg::new(INIT_HCA, 0, 0x10), 0x10),
        (0x0f, 0x000f_0001)
    );
    let init = r.query_pages(2) as usize;
    r.give_pages(init, &mut pages);
    r.simple(INIT_HCA, 0);
    assert_eq!(
        r.fails(&Msg::new(INIT_HCA, 0, 0x10), 0x10),
        (0x04, 0x0004_0003)
    );
    let mut issi = Msg::new(SET_ISSI, 0, 0x10);
    issi.be16(0x0a, 1);
    assert_eq!(r.fails(&issi, 0x10), (0x04, 0x0004_0003));
    let caps = r.ok(&Msg::new(QUERY_HCA_CAP, 1, 0x10), 0x1010);
    let mut set = Msg::new(SET_HCA_CAP, 0, 0x1010);
    set.0[0x10..].copy_from_slice(&caps[0x10..]);
    assert_eq!(r.fails(&set, 0x10), (0x04, 0x0004_0003));
    // TEARDOWN then commands needing INIT fail again; pages can all be taken.
    r.simple(TEARDOWN_HCA, 0);
    assert_eq!(
        r.fails(&Msg::new(ALLOC_PD, 0, 0x10), 0x10),
        (0x04, 0x0004_0002)
    );
    while !pages.is_empty() {
        r.take_pages(64, &mut pages);
    }
    r.simple(DISABLE_HCA, 0);
    assert_eq!(
        r.fails(&Msg::new(QUERY_PAGES, 1, 0x10), 0x10),
        (0x04, 0x0004_0001)
    );
    assert!(r.p.sanitizer_violations().is_empty());
}

#[test]
fn header_and_generic_rules() {
    let mut r = raw();
    r.simple(ENABLE_HCA, 0);
    // Unknown opcodes, as hardware answers (CREATE_CQ is not modelled yet,
    // 0x999 does not exist).
    assert_eq!(
        r.fails(&Msg::new(0x999, 0, 0x10), 0x10),
        (0x02, 0x0002_0001)
    );
    // Reserved bits: uid (bits 0x10..0x20), header dword 1 high half, NOP body.
    let mut m = Msg::new(NOP, 0, 0x10);
    m.be16(2, 1);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0002));
    let mut m = Msg::new(NOP, 0, 0x10);
    m.be16(4, 1);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0002));
    let mut m = Msg::new(NOP, 0, 0x10);
    m.u8(0x0f, 1);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0002));
    // Lengths.
    let r1 = r.exec(&Msg::new(NOP, 0, 0x0c), 0x10);
    assert_eq!((r1.status(), r1.syndrome()), (0x50, 0x0050_0001));
    let r2 = r.exec(&Msg::new(QUERY_ISSI, 0, 0x10), 0x10);
    assert_eq!((r2.status(), r2.syndrome()), (0x51, 0x0051_0001));
    // op_mod and function ids.
    assert_eq!(
        r.fails(&Msg::new(QUERY_PAGES, 4, 0x10), 0x10),
        (0x03, 0x0003_0001)
    );
    let mut m = Msg::new(QUERY_PAGES, 1, 0x10);
    m.be16(0x0a, 3); // function_id bits 0x50
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0003));
    let mut m = Msg::new(SET_ISSI, 0, 0x10);
    m.be16(0x0a, 2);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0004));
    assert_eq!(
        r.fails(&Msg::new(QUERY_HCA_CAP, 5 << 1, 0x10), 0x1010),
        (0x03, 0x0003_0007)
    );
    // SET_HCA_CAP: Ethernet caps are not settable; checksum beyond max.
    let caps = r.ok(&Msg::new(QUERY_HCA_CAP, 1, 0x10), 0x1010);
    let mut set = Msg::new(SET_HCA_CAP, 1 << 1, 0x1010);
    set.0[0x10..].copy_from_slice(&caps[0x10..]);
    assert_eq!(r.fails(&set, 0x10), (0x03, 0x0003_0007));
    let mut set = Msg::new(SET_HCA_CAP, 0, 0x1010);
    set.0[0x10..].copy_from_slice(&caps[0x10..]);
    // cmd_hca_cap.cmdif_checksum: bits 0x210..0x212 = byte 0x42 bits 7:6 of the area.
    set.0[0x10 + 0x42] |= 0xc0;
    assert_eq!(r.fails(&set, 0x10), (0x03, 0x0003_0008));
}

#[test]
fn page_rules() {
    let mut r = raw();
    r.simple(ENABLE_HCA, 0);
    let keep = r.p.dma_alloc_pages(2);
    // Misaligned page.
    let mut m = Msg::new(MANAGE_PAGES, 1, 0x18);
    m.be32(0x0c, 1).be64(0x10, keep[0] + 8);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0005));
    // Same page twice in one list.
    let mut m = Msg::new(MANAGE_PAGES, 1, 0x20);
    m.be32(0x0c, 2).be64(0x10, keep[0]).be64(0x18, keep[0]);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0006));
    // Count larger than the list.
    let mut m = Msg::new(MANAGE_PAGES, 1, 0x18);
    m.be32(0x0c, 2).be64(0x10, keep[0]);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0015));
    // Zero pages.
    let mut m = Msg::new(MANAGE_PAGES, 1, 0x10);
    m.be32(0x0c, 0);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0017));
    // A page already held.
    let mut m = Msg::new(MANAGE_PAGES, 1, 0x18);
    m.be32(0x0c, 1).be64(0x10, keep[1]);
    r.ok(&m, 0x10);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0006));
    // Far more than asked for.
    let mut pages = Vec::new();
    let mut big = Msg::new(MANAGE_PAGES, 1, 0x10 + 8 * 400);
    big.be32(0x0c, 400);
    for i in 0..400 {
        let pg = cxos_drivers::DmaAlloc::dma_alloc(&r.p, 4096).unwrap();
        big.be64(
            0x10 + 8 * i,
            cxos_drivers::DmaRegion::device_addr(&pg).get(),
        );
        pages.push(pg);
    }
    assert_eq!(r.fails(&big, 0x10), (0x08, 0x0008_0001));
    // Unknown op_mod.
    assert_eq!(
        r.fails(&Msg::new(MANAGE_PAGES, 3, 0x10), 0x10),
        (0x03, 0x0003_0001)
    );
    // Take with too little output room for the count asked.
    let mut t = Msg::new(MANAGE_PAGES, 2, 0x10);
    t.be32(0x0c, 4);
    let rep = r.exec(&t, 0x18);
    assert_eq!((rep.status(), rep.syndrome()), (0x51, 0x0051_0001));
}

#[test]
fn object_rules() {
    let mut r = Raw::new(Personality::ConnectX4, Mode::Synchronous);
    let up = r.bring_up();
    // TEARDOWN profile.
    let mut m = Msg::new(TEARDOWN_HCA, 0, 0x10);
    m.be16(0x0a, 2);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0009));
    // Unknown handles.
    let mut m = Msg::new(DESTROY_EQ, 0, 0x10);
    m.u8(0x0b, 200);
    assert_eq!(r.fails(&m, 0x10), (0x05, 0x0005_0002));
    let mut m = Msg::new(QUERY_EQ, 0, 0x10);
    m.u8(0x0b, 200);
    assert_eq!(r.fails(&m, 0x110), (0x05, 0x0005_0002));
    let mut m = Msg::new(DEALLOC_PD, 0, 0x10);
    m.be32(0x08, 0x77_7777);
    assert_eq!(r.fails(&m, 0x10), (0x05, 0x0005_0003));
    let mut m = Msg::new(DEALLOC_TD, 0, 0x10);
    m.be32(0x08, 0x77_7777);
    assert_eq!(r.fails(&m, 0x10), (0x05, 0x0005_0004));
    let mut m = Msg::new(DEALLOC_Q_COUNTER, 0, 0x10);
    m.u8(0x0b, 250);
    assert_eq!(r.fails(&m, 0x10), (0x05, 0x0005_0005));
    let mut m = Msg::new(QUERY_Q_COUNTER, 0, 0x20);
    m.u8(0x1f, 250);
    assert_eq!(r.fails(&m, 0x100), (0x05, 0x0005_0005));
    let mut m = Msg::new(DEALLOC_UAR, 0, 0x10);
    m.be32(0x08, 3);
    assert_eq!(r.fails(&m, 0x10), (0x05, 0x0005_0001));
    // A UAR an EQ uses.
    let mut m = Msg::new(DEALLOC_UAR, 0, 0x10);
    m.be32(0x08, up.uar);
    assert_eq!(r.fails(&m, 0x10), (0x06, 0x0006_0001));
    // Q counter limit (ConnectX-4: max_qp_cnt 255; one is in use).
    for _ in 0..254 {
        r.simple(ALLOC_Q_COUNTER, 0);
    }
    assert_eq!(
        r.fails(&Msg::new(ALLOC_Q_COUNTER, 0, 0x10), 0x10),
        (0x0f, 0x000f_0006)
    );
    // UAR limit: 1024 per function.
    for _ in 0..1023 {
        r.alloc_uar();
    }
    assert_eq!(
        r.fails(&Msg::new(ALLOC_UAR, 0, 0x10), 0x10),
        (0x0f, 0x000f_0002)
    );
    drop(up);
}

#[test]
fn eq_rules() {
    let mut r = Raw::new(Personality::ConnectX4, Mode::Synchronous);
    let up = r.bring_up();
    let buf = cxos_drivers::DmaAlloc::dma_alloc(&r.p, 4096).unwrap();
    let pa = cxos_drivers::DmaRegion::device_addr(&buf).get();
    let eq = |log: u32, uar: u32, vector: u16| {
        let mut m = Msg::new(CREATE_EQ, 0, 0x118);
        m.be32(0x1c, (log << 24) | uar)
            .be16(0x26, vector)
            .be64(0x110, pa);
        m
    };
    // log_eq_size above log_max_eq_sz (22).
    let mut m = eq(23, up.uar, 0);
    m.0.resize(0x110 + 8 * 4096, 0);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_000a));
    // Vector beyond 64.
    assert_eq!(r.fails(&eq(6, up.uar, 64), 0x10), (0x03, 0x0003_000b));
    // log_page_size (eqc bits 0xc3..0xc8 = byte 0x10+0x18 low 5 bits).
    let mut m = eq(6, up.uar, 0);
    m.u8(0x28, 1);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_000c));
    // Misaligned page list entry.
    let mut m = eq(6, up.uar, 0);
    m.be64(0x110, pa + 0x80);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_000d));
    // Event types above 63.
    let mut m = eq(6, up.uar, 0);
    m.be64(0x60, 1);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_000e));
    // Unallocated UAR.
    assert_eq!(r.fails(&eq(6, 9, 0), 0x10), (0x05, 0x0005_0001));
    // 128 EQEs need 2 pages: one entry is not enough.
    assert_eq!(r.fails(&eq(7, up.uar, 0), 0x10), (0x03, 0x0003_0015));
    // Reserved bit inside the context (eqc reserved_at_4).
    let mut m = eq(6, up.uar, 0);
    m.u8(0x10, 0x08);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0002));
    // EQ limit: ConnectX-4 has log_max_eq 6 (64 EQs), one exists.
    let mut bufs = Vec::new();
    for _ in 0..63 {
        bufs.push(r.create_eq(up.uar, 1, 0, 1));
    }
    assert_eq!(r.fails(&eq(6, up.uar, 0), 0x10), (0x0f, 0x000f_0003));
    drop(up);
}

#[test]
fn vport_and_register_rules() {
    let mut r = raw();
    let up = r.bring_up();
    // other_vport (bit 0x40).
    let mut m = Msg::new(QUERY_NIC_VPORT_CONTEXT, 0, 0x10);
    m.u8(0x08, 0x80);
    assert_eq!(r.fails(&m, 0x110), (0x03, 0x0003_0003));
    // MTU too big: field_select.mtu is bit 0x79 (byte 0x0f, 0x40); context @0x100, mtu @ctx+0x26.
    let mut m = Msg::new(MODIFY_NIC_VPORT_CONTEXT, 0, 0x200);
    m.u8(0x0f, 0x40).be16(0x126, 20000);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_000f));
    // Unsupported field (node_guid, bit 0x76: byte 0x0e, 0x02).
    let mut m = Msg::new(MODIFY_NIC_VPORT_CONTEXT, 0, 0x200);
    m.u8(0x0e, 0x02);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0016));
    // UC list longer than 2^log_max_current_uc_list (128): addresses_list
    // bit 0x7d (byte 0x0f, 0x04); allowed_list_size bits 0x794 of the context
    // = be16 @ctx+0xf2 low 12 bits.
    let mut m = Msg::new(MODIFY_NIC_VPORT_CONTEXT, 0, 0x200 + 8 * 200);
    m.u8(0x0f, 0x04).be16(0x1f2, 200);
    assert_eq!(r.fails(&m, 0x10), (0x03, 0x0003_0010));
    // ACCESS_REGISTER: unknown register, wrong port, bad values, short input.
    let reg = |id: u16, op: u16, size: usize| {
        let mut m = Msg::new(ACCESS_REG, op, 0x10 + size);
        m.be16(0x0a, id).u8(0x11, 1);
        m
    };
    assert_eq!(r.fails(&reg(0x9999, 1, 16), 0x20), (0x03, 0x0003_0011));
    let mut m = reg(0x5006, 1, 16);
    m.u8(0x11, 2);
    assert_eq!(r.fails(&m, 0x20), (0x03, 0x0003_0012));
    // PAOS write with ase and admin_status 5 (bits 0x14..0x18: byte 0x12 low nibble).
    let mut m = reg(0x5006, 0, 16);
    m.u8(0x12, 5).u8(0x14, 0x80);
    assert_eq!(r.fails(&m, 0x20), (0x03, 0x0003_0013));
    // PMTU admin_mtu (bits 0x40..0x50 = be16 @ data+8) above max.
    let mut m = reg(0x5003, 0, 16);
    m.be16(0x18, 30000);
    assert_eq!(r.fails(&m, 0x20), (0x03, 0x0003_0014));
    // PMLP is read-only in the model.
    assert_eq!(r.fails(&reg(0x5002, 0, 64), 0x50), (0x03, 0x0003_0013));
    // PTYS input shorter than the register.
    assert_eq!(r.fails(&reg(0x5004, 1, 16), 0x50), (0x03, 0x0003_0018));
    // Unknown op_mod.
    assert_eq!(r.fails(&reg(0x5006, 2, 16), 0x20), (0x03, 0x0003_0001));
    drop(up);
}

#[test]
fn delivery_statuses() {
    let mut r = raw();
    r.simple(ENABLE_HCA, 0);
    // QUERY_HCA_CAP needs output mailboxes; MANAGE_PAGES-sized input needs input ones.
    let long_in = Msg::new(NOP, 0, 0x10 + 600);
    let t = |f: fn(&mut Tweak)| {
        let mut t = Tweak::default();
        f(&mut t);
        t
    };
    let rep = r.exec_tweaked(&long_in.0, 0x10, t(|t| t.entry_type = Some(3)));
    assert_eq!(rep.delivery, 0x10, "bad command type");
    let rep = r.exec_tweaked(&long_in.0, 0x10, t(|t| t.bad_token = true));
    assert_eq!(rep.delivery, 0x02, "token");
    let rep = r.exec_tweaked(&long_in.0, 0x10, t(|t| t.bad_block_number = true));
    assert_eq!(rep.delivery, 0x03, "block number");
    let rep = r.exec_tweaked(&long_in.0, 0x10, t(|t| t.misalign_in = true));
    assert_eq!(rep.delivery, 0x05, "input pointer alignment");
    let rep = r.exec_tweaked(&long_in.0, 0x10, t(|t| t.reserved_byte = true));
    assert_eq!(rep.delivery, 0x09, "reserved not zero");
    let rep = r.exec_tweaked(&[0x08, 0x0d, 0, 0], 0x10, Tweak::default());
    assert_eq!(rep.delivery, 0x07, "input length below the header");
    // A chain that ends before the input does: input length.
    let rep = r.exec_truncated_chain(&Msg::new(NOP, 0, 0x10 + 600).0, 0x10);
    assert_eq!(rep.delivery, 0x07, "chain shorter than inlen");
    // A long NOP delivered correctly executes (its body is all zero).
    let rep = r.exec_tweaked(&long_in.0, 0x10, Tweak::default());
    assert_eq!((rep.delivery, rep.status()), (0, 0));
    assert!(r.p.sanitizer_violations().is_empty());
}

#[test]
fn op_mod_must_be_zero_where_it_means_nothing() {
    let mut r = raw();
    r.simple(ENABLE_HCA, 0);
    assert_eq!(r.fails(&Msg::new(NOP, 1, 0x10), 0x10), (0x03, 0x0003_0001));
    let up_less = r.fails(&Msg::new(DISABLE_HCA, 5, 0x10), 0x10);
    assert_eq!(up_less, (0x03, 0x0003_0001));
}

#[test]
fn q_counter_query_and_clear() {
    let mut r = raw();
    let up = r.bring_up();
    // query_q_counter_in: clear bit 0xc0 (byte 0x18, 0x80), counter_set_id byte 0x1f.
    let mut m = Msg::new(QUERY_Q_COUNTER, 0, 0x20);
    m.u8(0x1f, up.q_counter).u8(0x18, 0x80);
    let out = r.ok(&m, 0x100);
    // out_of_buffer bits 0x180 (be32 @0x30): nothing dropped yet.
    assert_eq!(be32(&out, 0x30), 0);
    // aggregate (bit 0xc1) is not offered.
    let mut m = Msg::new(QUERY_Q_COUNTER, 0, 0x20);
    m.u8(0x1f, up.q_counter).u8(0x18, 0x40);
    assert_eq!(r.fails(&m, 0x100), (0x03, 0x0003_0003));
    // A second set is a different id.
    let second = r.simple(ALLOC_Q_COUNTER, 0)[0x0b];
    assert_ne!(second, up.q_counter);
}

#[test]
fn pd_and_td_limits() {
    use mlx5_sim::cmd::caps::{cap_type, hca_cap};
    let mut r = raw();
    let up = r.bring_up();
    // Shrink the limits (log_max_pd / log_max_transport_domain) to 2 so
    // they can be reached: 4 of each, one of each already allocated.
    r.p.with_model(|d| {
        d.caps
            .set_current(cap_type::GENERAL, hca_cap::LOG_MAX_PD, 2);
        d.caps
            .set_current(cap_type::GENERAL, hca_cap::LOG_MAX_TRANSPORT_DOMAIN, 2);
    });
    for _ in 0..3 {
        r.simple(ALLOC_PD, 0);
        r.simple(ALLOC_TD, 0);
    }
    assert_eq!(
        r.fails(&Msg::new(ALLOC_PD, 0, 0x10), 0x10),
        (0x0f, 0x000f_0004)
    );
    assert_eq!(
        r.fails(&Msg::new(ALLOC_TD, 0, 0x10), 0x10),
        (0x0f, 0x000f_0005)
    );
    // Freeing one makes room again.
    let mut m = Msg::new(DEALLOC_PD, 0, 0x10);
    m.be32(0x08, up.pd);
    r.ok(&m, 0x10);
    r.simple(ALLOC_PD, 0);
}

/// Every command's input and output must hold its mlx5_ifc.h layout
/// (sizes typed in from the header: `<command>_in` / `_out` bits / 8),
/// no more: one byte short of either is refused with BAD_INPUT_LEN (0x50,
/// syndrome 0x0050_0001) or BAD_OUTPUT_LEN (0x51, 0x0051_0001), the exact
/// size is taken. INIT_HCA and QUERY_SPECIAL_CONTEXTS keep the ConnectX-4
/// PRM's 16-byte input / output (fields appended later are optional).
#[test]
fn lengths_follow_the_ifc_layouts() {
    const SIZES: &[(u16, usize, usize)] = &[
        (0x100, 0x10, 0x1010), // query_hca_cap: 16-byte header + 4 KiB capability
        (0x101, 0x10, 0x110),  // query_adapter_out: 0x880 bits
        (0x102, 0x10, 0x10),   // init_hca (PRM 16 bytes; ifc 0x20 with sw_owner_id)
        (0x103, 0x10, 0x10),   // teardown_hca
        (0x104, 0x10, 0x0c),   // enable_hca_out: 0x60 bits
        (0x105, 0x10, 0x0c),   // disable_hca_out: 0x60 bits
        (0x107, 0x10, 0x10),   // query_pages
        (0x108, 0x10, 0x10),   // manage_pages (+ page list)
        (0x109, 0x1010, 0x10), // set_hca_cap
        (0x10a, 0x10, 0x70),   // query_issi_out: supported_issi at 0x20, 80 bytes
        (0x10b, 0x10, 0x10),   // set_issi
        (0x10d, 0x50, 0x10),   // set_driver_version_in: 64-byte string at 0x10
        (0x203, 0x10, 0x10),   // query_special_contexts (PRM 16 bytes)
        (0x301, 0x110, 0x10),  // create_eq_in: eqc at 0x10, bitmask 0x58, pas 0x110
        (0x302, 0x10, 0x10),   // destroy_eq
        (0x303, 0x10, 0x110),  // query_eq_out
        (0x400, 0x110, 0x10),  // create_cq_in
        (0x401, 0x10, 0x10),   // destroy_cq
        (0x402, 0x10, 0x110),  // query_cq_out
        (0x403, 0x110, 0x10),  // modify_cq_in
        (0x750, 0x10, 0x10),   // query_vport_state
        (0x754, 0x10, 0x110),  // query_nic_vport_context_out: context at 0x10
        (0x755, 0x200, 0x10),  // modify_nic_vport_context_in: context at 0x100
        (0x771, 0x10, 0x10),   // alloc_q_counter
        (0x772, 0x10, 0x10),   // dealloc_q_counter
        (0x773, 0x20, 0x100),  // query_q_counter
        (0x800, 0x10, 0x10),   // alloc_pd
        (0x801, 0x10, 0x10),   // dealloc_pd
        (0x802, 0x10, 0x10),   // alloc_uar
        (0x803, 0x10, 0x10),   // dealloc_uar
        (0x805, 0x10, 0x10),   // access_register (+ register data)
        (0x80d, 0x10, 0x10),   // nop
        (0x816, 0x10, 0x10),   // alloc_transport_domain
        (0x817, 0x10, 0x10),   // dealloc_transport_domain
        (0x900, 0x110, 0x10),  // create_tir_in: tirc at 0x20
        (0x902, 0x10, 0x10),   // destroy_tir
        (0x904, 0x110, 0x10),  // create_sq_in: sqc at 0x20, wq at 0x50
        (0x905, 0x110, 0x10),  // modify_sq_in
        (0x906, 0x10, 0x10),   // destroy_sq
        (0x907, 0x10, 0x110),  // query_sq_out
        (0x908, 0x110, 0x10),  // create_rq_in
        (0x909, 0x110, 0x10),  // modify_rq_in
        (0x90a, 0x10, 0x10),   // destroy_rq
        (0x90b, 0x10, 0x110),  // query_rq_out
        (0x912, 0xc0, 0x10),   // create_tis_in: tisc at 0x20
        (0x914, 0x10, 0x10),   // destroy_tis
        (0x916, 0x110, 0x10),  // create_rqt_in
        (0x917, 0x110, 0x10),  // modify_rqt_in
        (0x918, 0x10, 0x10),   // destroy_rqt
        (0x919, 0x10, 0x110),  // query_rqt_out
        (0x92f, 0x40, 0x10),   // set_flow_table_root_in
        (0x930, 0x40, 0x10),   // create_flow_table_in: context at 0x18
        (0x931, 0x40, 0x10),   // destroy_flow_table_in
        (0x933, 0x400, 0x10),  // create_flow_group_in: criteria at 0x40
        (0x934, 0x40, 0x10),   // destroy_flow_group_in
        (0x936, 0x340, 0x10),  // set_fte_in: flow_context at 0x40
        (0x937, 0x40, 0x340),  // query_fte_out
        (0x938, 0x40, 0x10),   // delete_fte_in
        (0x939, 0x10, 0x10),   // alloc_flow_counter
        (0x93a, 0x10, 0x10),   // dealloc_flow_counter
        (0x93b, 0x20, 0x10),   // query_flow_counter (+ traffic_counter each)
        (0x93c, 0x40, 0x10),   // modify_flow_table_in
    ];
    let mut r = raw();
    let up = r.bring_up();
    for &(opcode, inlen, outlen) in SIZES {
        let short_in = r.exec(&Msg::new(opcode, 0, inlen - 1), outlen);
        assert_eq!(
            (short_in.status(), short_in.syndrome()),
            (0x50, 0x0050_0001),
            "opcode {opcode:#x} with {} input bytes",
            inlen - 1
        );
        let short_out = r.exec(&Msg::new(opcode, 0, inlen), outlen - 1);
        assert_eq!(
            (short_out.status(), short_out.syndrome()),
            (0x51, 0x0051_0001),
            "opcode {opcode:#x} with {} output bytes",
            outlen - 1
        );
    }
    // The exact sizes are taken: ENABLE_HCA with Linux's 12-byte output
    // is refused only because the function is already enabled.
    assert_eq!(
        r.fails(&Msg::new(0x104, 0, 0x10), 0x0c),
        (0x04, 0x0004_0004)
    );
    assert_eq!(r.ok(&Msg::new(0x80d, 0, 0x10), 0x10).len(), 0x10);
    r.tear_down(up);
}
