//! EQs and events: command-completion EQEs with MSI-X, several slots in
//! flight, arm / update doorbells, page requests of both signs, port
//! changes, EQ overrun, MSI-X masking.
mod common;

use common::*;
use cxos_drivers::{DmaAlloc, DmaRegion, Mmio, Msix};
use mlx5_sim::Personality;
use mlx5_sim::harness::Mode;

#[test]
fn command_completion_eqes_raise_msix() {
    for mode in MODES {
        let mut r = Raw::new(Personality::ConnectX6Dx, mode);
        let up = r.bring_up();
        assert_eq!(r.p.msix_enable(1, 4).unwrap(), 4);
        let mut eq = EqReader { log_size: 6, ci: 0 };
        // Commands after CREATE_EQ already completed through EQEs (no MSI-X:
        // the EQ was never armed).
        let early = eq.drain(&up.eq_buf);
        assert_eq!(
            early.len(),
            4,
            "ALLOC_PD, ALLOC_TD, QUERY_SPECIAL_CONTEXTS, ALLOC_Q_COUNTER"
        );
        assert!(early.iter().all(|e| e.ty == 0x0a && be32(&e.data, 0) == 1));
        assert_eq!(r.p.msix_count(0), 0);
        eq.doorbell(&r.p, up.uar, up.eq, true);
        r.simple(NOP, 0);
        assert!(eventually(&r.p, || r.p.msix_take_pending(0)));
        assert!(!r.p.msix_take_pending(0), "pending flag is taken once");
        let e = eq.wait_eqe(&r.p, &up.eq_buf).expect("EQE for the NOP");
        assert_eq!((e.ty, be32(&e.data, 0)), (0x0a, 1 << 0));
        // Not re-armed: the next completion writes an EQE but no interrupt.
        // (commands_executed() takes the model's lock: its pass is over.)
        r.simple(NOP, 0);
        r.p.commands_executed();
        assert_eq!(r.p.msix_count(0), 1);
        // Arming with that EQE unconsumed fires at once.
        eq.doorbell(&r.p, up.uar, up.eq, true);
        assert_eq!(r.p.msix_count(0), 2);
        assert!(eq.wait_eqe(&r.p, &up.eq_buf).is_some());
        // Update without arm: no interrupt on the next completion.
        eq.doorbell(&r.p, up.uar, up.eq, false);
        r.simple(NOP, 0);
        assert!(eq.wait_eqe(&r.p, &up.eq_buf).is_some());
        r.p.commands_executed();
        assert_eq!(r.p.msix_count(0), 2);
        // Several slots in flight, one doorbell.
        eq.doorbell(&r.p, up.uar, up.eq, true);
        r.stage_nop(1);
        r.stage_nop(2);
        r.p.bar0_write_be32(0x018, 0b110);
        assert!(eventually(&r.p, || r.slot_done(1) && r.slot_done(2)));
        assert_eq!(r.slot_status(1), (0, 0));
        assert_eq!(r.slot_status(2), (0, 0));
        let mut vectors = 0;
        assert!(eventually(&r.p, || {
            while let Some(e) = eq.poll(&up.eq_buf) {
                vectors |= be32(&e.data, 0);
            }
            vectors == 0b110
        }));
        // A doorbell on another UAR page is not this EQ's: dropped.
        let other = r.alloc_uar();
        assert!(
            eq.wait_eqe(&r.p, &up.eq_buf).is_some(),
            "ALLOC_UAR completion"
        );
        r.p.commands_executed();
        let before = r.p.msix_count(0);
        eq.doorbell(&r.p, other, up.eq, true);
        r.p.commands_executed();
        assert_eq!(r.p.msix_count(0), before, "no arm from a foreign UAR");
        eq.doorbell(&r.p, up.uar, up.eq, true);
        r.simple(NOP, 0);
        assert!(eventually(&r.p, || r.p.msix_count(0) == before + 1));
        assert!(r.p.sanitizer_violations().is_empty());
    }
}

#[test]
fn page_requests_of_both_signs() {
    for mode in MODES {
        let mut r = Raw::new(Personality::ConnectX5, mode);
        let mut up = r.bring_up();
        let mut eq = EqReader { log_size: 6, ci: 0 };
        let _ = eq.drain(&up.eq_buf);
        let held = r.p.pages_held();
        r.p.request_pages(5);
        let e = eq.next_event(&up.eq_buf).expect("page request EQE");
        // struct mlx5_eqe_page_req: func_id be16 @data+2, num_pages be32 @data+4.
        assert_eq!(
            (e.ty, be16(&e.data, 2), be32(&e.data, 4) as i32),
            (0x0b, 0, 5)
        );
        assert_eq!(r.query_pages(3), 5, "QUERY_PAGES regular");
        r.give_pages(5, &mut up.pages);
        assert_eq!(r.query_pages(3), 0);
        assert_eq!(r.p.pages_held(), held + 5);
        r.p.request_pages(-3);
        let e = eq.next_event(&up.eq_buf).expect("page return EQE");
        assert_eq!((e.ty, be32(&e.data, 4) as i32), (0x0b, -3));
        assert_eq!(r.query_pages(3), -3);
        let got = r.take_pages(8, &mut up.pages);
        assert_eq!(got.len(), 3, "only what the model offered");
        assert_eq!(r.p.pages_held(), held + 2);
        assert_eq!(r.take_pages(8, &mut up.pages).len(), 0);
        // MANAGE_PAGES op_mod 0: the driver cannot give; the model stops asking.
        r.p.request_pages(4);
        let _ = eq.drain(&up.eq_buf);
        let mut cant = Msg::new(MANAGE_PAGES, 0, 0x10);
        cant.be32(0x0c, 4);
        r.ok(&cant, 0x10);
        assert_eq!(r.query_pages(3), 0);
        r.tear_down(up);
        assert_eq!(r.p.pages_held(), 0);
        assert!(r.p.sanitizer_violations().is_empty());
    }
}

#[test]
fn port_change_events_and_port_registers() {
    let mut r = Raw::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let up = r.bring_up();
    let mut eq = EqReader { log_size: 6, ci: 0 };
    let _ = eq.drain(&up.eq_buf);
    // Only port changes here: stop command-completion EQEs by moving them
    // to nowhere (keep the EQ, re-create it without bit 0x0a).
    let mut m = Msg::new(DESTROY_EQ, 0, 0x10);
    m.u8(0x0b, up.eq);
    r.ok(&m, 0x10);
    let (eqn, eq_buf) = r.create_eq(up.uar, 0, 1 << 9, 6);
    let _ = eqn;
    let up = Up { eq_buf, ..up };
    let mut eq = EqReader { log_size: 6, ci: 0 };
    let paos = |r: &mut Raw, write: Option<u8>| {
        let mut m = Msg::new(ACCESS_REG, if write.is_some() { 0 } else { 1 }, 0x20);
        m.be16(0x0a, 0x5006).u8(0x11, 1);
        if let Some(admin) = write {
            m.u8(0x12, admin).u8(0x14, 0x80); // admin_status, ase
        }
        let out = r.ok(&m, 0x20);
        // paos_reg: admin_status bits 0x14 (byte 2 low nibble), oper_status bits 0x1c (byte 3 low nibble).
        (out[0x12] & 0xf, out[0x13] & 0xf)
    };
    let vport_state = |r: &mut Raw| r.simple(QUERY_VPORT_STATE, 0)[0x0f] & 0xf;
    assert_eq!(paos(&mut r, None), (1, 1));
    assert_eq!(vport_state(&mut r), 1);
    r.p.set_link(false);
    let e = eq.poll(&up.eq_buf).expect("port change");
    // struct mlx5_eqe_port_state: port in bits 7:4 of data byte 8.
    assert_eq!((e.ty, e.sub, e.data[8] >> 4), (0x09, 1, 1));
    assert_eq!(paos(&mut r, None), (1, 2));
    assert_eq!(vport_state(&mut r), 0);
    r.p.set_link(false);
    assert!(eq.poll(&up.eq_buf).is_none(), "no change, no event");
    r.p.set_link(true);
    let e = eq.poll(&up.eq_buf).expect("port up");
    assert_eq!((e.ty, e.sub), (0x09, 4));
    // Administrative down through PAOS, and up again.
    assert_eq!(paos(&mut r, Some(2)), (2, 2));
    assert_eq!(eq.poll(&up.eq_buf).map(|e| e.sub), Some(1));
    assert_eq!(paos(&mut r, Some(1)), (1, 1));
    assert_eq!(eq.poll(&up.eq_buf).map(|e| e.sub), Some(4));
    // PTYS: ConnectX-4 Lx runs 25GBASE-CR (bit 27) on legacy protocols only.
    let mut m = Msg::new(ACCESS_REG, 1, 0x50);
    m.be16(0x0a, 0x5004).u8(0x11, 1).u8(0x13, 0x04); // proto_mask Ethernet
    let out = r.ok(&m, 0x50);
    let d = 0x10;
    assert_eq!(be32(&out, d + 0x08), 0, "ext_eth_proto_capability");
    assert_ne!(
        be32(&out, d + 0x0c) & (1 << 27),
        0,
        "eth_proto_capability has 25G CR"
    );
    assert_eq!(be32(&out, d + 0x24), 1 << 27, "eth_proto_oper");
    // PMTU: set 9000, read it back.
    let mut m = Msg::new(ACCESS_REG, 0, 0x20);
    m.be16(0x0a, 0x5003).u8(0x11, 1).be16(0x18, 9000);
    r.ok(&m, 0x20);
    let mut m = Msg::new(ACCESS_REG, 1, 0x20);
    m.be16(0x0a, 0x5003).u8(0x11, 1);
    let out = r.ok(&m, 0x20);
    // pmtu_reg: max_mtu be16 @4, admin_mtu @8, oper_mtu @0xc.
    assert_eq!((be16(&out, d + 8), be16(&out, d + 0x0c)), (9000, 9000));
    assert!(be16(&out, d + 4) >= 9000);
    // PMLP: one lane on the Lx.
    let mut m = Msg::new(ACCESS_REG, 1, 0x50);
    m.be16(0x0a, 0x5002).u8(0x11, 1);
    assert_eq!(r.ok(&m, 0x50)[d + 3], 1, "pmlp width");
    assert!(r.p.sanitizer_violations().is_empty());
}

#[test]
fn ptys_speeds_differ_per_part() {
    let mut seen = Vec::new();
    for pers in Personality::ALL {
        let mut r = Raw::new(pers, Mode::Synchronous);
        let _up = r.bring_up();
        let mut m = Msg::new(ACCESS_REG, 1, 0x50);
        m.be16(0x0a, 0x5004).u8(0x11, 1).u8(0x13, 0x04);
        let out = r.ok(&m, 0x50);
        let oper = (be32(&out, 0x10 + 0x20), be32(&out, 0x10 + 0x24));
        assert_ne!(oper, (0, 0), "{pers:?} link up with a protocol");
        seen.push(oper);
    }
    // CX6 runs an extended protocol (200GAUI-4, ext bit 12).
    assert_eq!(seen[3], (1 << 12, 0));
    assert_eq!(seen[0], (0, 1 << 20), "CX4 100GBASE-CR4");
}

#[test]
fn eq_overrun_per_oi() {
    for oi in [false, true] {
        let mut r = Raw::new(Personality::ConnectX5, Mode::Synchronous);
        let up = r.bring_up();
        let mut m = Msg::new(DESTROY_EQ, 0, 0x10);
        m.u8(0x0b, up.eq);
        r.ok(&m, 0x10);
        // Two-entry EQ for port changes only; oi is eqc bit 0xe (byte 0x11, 0x02).
        let buf = r.p.dma_alloc(4096).unwrap();
        for i in 0..2 {
            buf.write_u8(i * 64 + 0x3f, 1);
        }
        let mut m = Msg::new(CREATE_EQ, 0, 0x118);
        m.be32(0x1c, (1 << 24) | up.uar)
            .be64(0x58, 1 << 9)
            .be64(0x110, buf.device_addr().get());
        if oi {
            m.u8(0x11, 0x02);
        }
        let eqn = r.ok(&m, 0x10)[0x0b];
        for i in 0..3 {
            r.p.set_link(i % 2 == 1);
        }
        let mut q = Msg::new(QUERY_EQ, 0, 0x10);
        q.u8(0x0b, eqn);
        let out = r.ok(&q, 0x110);
        // eqc.status bits 0..4 (byte 0x10 high nibble); producer_counter bits 0x168 (be32 @0x10+0x2c).
        let status = out[0x10] >> 4;
        let producer = be32(&out, 0x10 + 0x2c) & 0xff_ffff;
        if oi {
            assert_eq!((status, producer), (0, 3), "overwrites with oi");
        } else {
            assert_eq!((status, producer), (0x0a, 2), "write failure without oi");
        }
        assert!(r.p.sanitizer_violations().is_empty());
        drop(up);
    }
}

#[test]
fn masked_vector_is_held_in_the_pba() {
    let mut r = Raw::new(Personality::ConnectX5, Mode::Synchronous);
    let up = r.bring_up();
    r.p.msix_enable(2, 2).unwrap();
    let mut eq = EqReader { log_size: 6, ci: 0 };
    let _ = eq.drain(&up.eq_buf);
    r.p.msix_set_masked(0, true);
    eq.doorbell(&r.p, up.uar, up.eq, true);
    r.simple(NOP, 0);
    assert!(!r.p.msix_take_pending(0));
    // PBA at BAR0 + 0x3000: bit 0.
    assert_eq!(r.p.bar0_read_be32(0x3000) & 1, 1);
    r.p.msix_set_masked(0, false);
    assert!(r.p.msix_take_pending(0));
    assert_eq!(r.p.bar0_read_be32(0x3000) & 1, 0);
}
