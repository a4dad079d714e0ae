//! PPCNT, the port counters (`ppcnt_reg`, 256 bytes: grp at bits 0x1a..0x20,
//! clr 0x20, prio_tc 0x3b..0x40, counter_set from byte 8). Counters are
//! 64-bit (high dword first). The groups the model reports:
//!
//! | grp | layout (mlx5_ifc.h) | what moves |
//! |---|---|---|
//! | 0x00 | `eth_802_3_cntrs_grp_data_layout` | frames / octets / multicast / broadcast each way |
//! | 0x01 | `eth_2863_cntrs_grp_data_layout` | octets, unicast / multicast / broadcast each way, inbound discards |
//! | 0x02 | `eth_2819_cntrs_grp_data_layout` | drop events, octets, frames, broadcast, multicast, length buckets (received) |
//! | 0x03 | `eth_3635_cntrs_grp_data_layout` | nothing: a model has no FCS, collisions or pause |
//! | 0x05 | `eth_extended_cntrs_grp_data_layout` | nothing |
//! | 0x10 | `eth_per_prio_grp_data_layout` | priority 0 carries all traffic (no PFC/ETS) |
//! | 0x11 | `eth_per_tc_prio_grp_data_layout` | nothing |
//! | 0x12 | `phys_layer_cntrs` | time since last clear, link down events |
//!
//! `clr` clears the port's counters after the read. Other groups (the
//! statistical and congestion groups PCAM would announce, InfiniBand) are
//! refused.
#![deny(unsafe_code)]

use std::time::Instant;

use crate::bits::{F, f, get, put_be64};
use crate::function::Function;
use crate::syndrome::{self as syn, CmdError};
use crate::wire::PortStats;

pub const SIZE: usize = 0x100;
pub const GRP: F = f(0x1a, 6);
pub const CLR: F = f(0x20, 1);
pub const PRIO_TC: F = f(0x3b, 5);
/// `counter_set` starts here (bytes).
pub const SET: usize = 0x08;

/// Group numbers (`MLX5_*_COUNTERS_GROUP`, device.h).
pub mod grp {
    pub const IEEE_802_3: u64 = 0x00;
    pub const RFC_2863: u64 = 0x01;
    pub const RFC_2819: u64 = 0x02;
    pub const RFC_3635: u64 = 0x03;
    pub const EXTENDED: u64 = 0x05;
    pub const PER_PRIORITY: u64 = 0x10;
    pub const PER_TC: u64 = 0x11;
    pub const PHYSICAL_LAYER: u64 = 0x12;
}

/// What the port counters start from: cleared by `clr`.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub stats: PortStats,
    pub cleared: Instant,
}

impl Default for Baseline {
    fn default() -> Baseline {
        Baseline {
            stats: PortStats::default(),
            cleared: Instant::now(),
        }
    }
}

/// Counter `i` (0-based, 8 bytes each) of the counter set.
fn put(o: &mut [u8], i: usize, v: u64) {
    put_be64(o, SET + 8 * i, v);
}

pub fn access(dev: &mut Function, write: bool, data: &[u8], o: &mut [u8]) -> Result<(), CmdError> {
    // swid, pnat and the reserved bits; plane_ind (0x34) selects a plane of
    // multi-plane parts, which these are not.
    super::reserved(data, &[f(0x0, 8), f(0x10, 2), f(0x12, 8), f(0x21, 0x1b)])?;
    super::reserved(data, &[f(0x38, 3)])?;
    if write {
        return Err(syn::REG_VALUE);
    }
    let group = get(data, GRP);
    let prio = get(data, PRIO_TC);
    crate::bits::set(o, GRP, group);
    crate::bits::set(o, PRIO_TC, prio);
    let now = &dev.nic.wire.stats;
    let base = &dev.ppcnt_base.stats;
    let d = |a: u64, b: u64| a.wrapping_sub(b);
    let tx_frames = d(now.tx_frames, base.tx_frames);
    let rx_frames = d(now.rx_frames, base.rx_frames);
    let tx_bytes = d(now.tx_bytes, base.tx_bytes);
    let rx_bytes = d(now.rx_bytes, base.rx_bytes);
    let tx_mc = d(now.tx_multicast, base.tx_multicast);
    let tx_bc = d(now.tx_broadcast, base.tx_broadcast);
    let rx_mc = d(now.rx_multicast, base.rx_multicast);
    let rx_bc = d(now.rx_broadcast, base.rx_broadcast);
    let rx_dropped = d(now.rx_dropped_no_wqe, base.rx_dropped_no_wqe)
        + d(now.rx_dropped_link_down, base.rx_dropped_link_down)
        + d(now.rx_dropped_bad_length, base.rx_dropped_bad_length)
        + d(now.rx_dropped_too_long, base.rx_dropped_too_long);
    let too_long = d(now.rx_dropped_too_long, base.rx_dropped_too_long);
    match group {
        grp::IEEE_802_3 => {
            // a_frames_transmitted_ok, a_frames_received_ok, (FCS and
            // alignment errors), a_octets_transmitted_ok, _received_ok,
            // multicast / broadcast xmitted, multicast / broadcast received,
            // (length errors), a_frame_too_long_errors.
            for (i, v) in [
                (0, tx_frames),
                (1, rx_frames),
                (4, tx_bytes),
                (5, rx_bytes),
                (6, tx_mc),
                (7, tx_bc),
                (8, rx_mc),
                (9, rx_bc),
                (12, too_long),
            ] {
                put(o, i, v);
            }
        }
        grp::RFC_2863 => {
            // if_in_octets, if_in_ucast_pkts, if_in_discards, (errors,
            // unknown protos), if_out_octets, if_out_ucast_pkts, (discards,
            // errors), in multicast / broadcast, out multicast / broadcast.
            for (i, v) in [
                (0, rx_bytes),
                (1, rx_frames.saturating_sub(rx_mc + rx_bc)),
                (2, rx_dropped),
                (5, tx_bytes),
                (6, tx_frames.saturating_sub(tx_mc + tx_bc)),
                (9, rx_mc),
                (10, rx_bc),
                (11, tx_mc),
                (12, tx_bc),
            ] {
                put(o, i, v);
            }
        }
        grp::RFC_2819 => {
            // ether_stats_drop_events, _octets, _pkts, _broadcast_pkts,
            // _multicast_pkts, (5 error / collision counters), then the
            // length buckets from pkts64octets (counter 11).
            for (i, v) in [
                (0, rx_dropped),
                (1, rx_bytes),
                (2, rx_frames),
                (3, rx_bc),
                (4, rx_mc),
            ] {
                put(o, i, v);
            }
            for (b, (n, z)) in now.rx_sizes.iter().zip(base.rx_sizes.iter()).enumerate() {
                put(o, 11 + b, n.wrapping_sub(*z));
            }
        }
        grp::PER_PRIORITY => {
            if prio > 7 {
                return Err(syn::REG_VALUE);
            }
            // rx_octets (0), rx_frames (4), tx_octets (5), tx_frames (9):
            // all traffic is priority 0.
            if prio == 0 {
                for (i, v) in [(0, rx_bytes), (4, rx_frames), (5, tx_bytes), (9, tx_frames)] {
                    put(o, i, v);
                }
            }
        }
        grp::PER_TC => {
            if prio > 7 {
                return Err(syn::REG_VALUE);
            }
        }
        grp::PHYSICAL_LAYER => {
            // time_since_last_clear (ms), then link_down_events, a 32-bit
            // counter at bit 0x600 of the set.
            put(o, 0, dev.ppcnt_base.cleared.elapsed().as_millis() as u64);
            let downs = d(now.link_down_events, base.link_down_events);
            crate::bits::put_be32(o, SET + 0xc0, downs as u32);
        }
        grp::RFC_3635 | grp::EXTENDED => {}
        _ => return Err(syn::REG_VALUE),
    }
    if get(data, CLR) != 0 {
        dev.ppcnt_base = Baseline {
            stats: dev.nic.wire.stats.clone(),
            cleared: Instant::now(),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::footprint;

    /// `ppcnt_reg` by hand: grp is the low 6 bits of byte 3, clr the top
    /// bit of byte 4, prio_tc the low 5 bits of byte 7.
    #[test]
    fn header_fields_land_where_ifc_puts_them() {
        assert_eq!(footprint(GRP), vec![(0x03, 0x3f)]);
        assert_eq!(footprint(CLR), vec![(0x04, 0x80)]);
        assert_eq!(footprint(PRIO_TC), vec![(0x07, 0x1f)]);
    }
}
