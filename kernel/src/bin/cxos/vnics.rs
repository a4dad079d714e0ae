//! The VNIC definitions (feature `net`): extra interfaces `vnic<N>` on a
//! ConnectX function (`over:net<i>`, default the first), each a MAC (given or generated), optionally on
//! a VLAN, with its own receive queue(s) and its own network stack (own
//! addresses, static or DHCP). The adapter steers frames to them (the
//! driver's `mlx5::vnic`); nothing is demultiplexed in software.
//!
//! Defined by the command line (`vnic.<N>=...`) and the shell (`vnic
//! create|delete`); the definitions outlive a detach: every attach of the
//! first function creates them again (`mlx5nic`).

use alloc::string::String;
use alloc::vec::Vec;
use core::str::FromStr;

use cxos_kernel::vnic_def::{VnicDef, VnicDefs};
use cxos_net::config::IfConfig;
use spin::Mutex;

use crate::println;

static DEFS: Mutex<VnicDefs> = Mutex::new(VnicDefs::new());

/// Take the command line's `vnic.<N>=` values (printing the contract's
/// diagnostic for a bad one).
pub fn init(vnics: &[(u32, String)]) {
    let mut defs = DEFS.lock();
    for (n, text) in vnics {
        match VnicDef::from_str(text) {
            Ok(d) => {
                defs.define(*n, d);
            }
            Err(e) => {
                println!("cmdline: bad value '{text}' for 'vnic.{n}', using no VNIC");
                println!("cmdline: ({e})");
            }
        }
    }
}

/// Every definition, by number.
pub fn list() -> Vec<(u32, VnicDef)> {
    DEFS.lock().list()
}

/// Define `def` under the lowest free number; `None` when all are taken.
pub fn define(def: VnicDef) -> Option<u32> {
    DEFS.lock().define_next(def)
}

/// Forget VNIC `n`; false if it was not defined.
pub fn undefine(n: u32) -> bool {
    DEFS.lock().remove(n)
}

/// Give VNIC `n` the addresses of `ip` from its next creation on; false
/// if it is not defined.
pub fn set_ip(n: u32, ip: &IfConfig) -> bool {
    DEFS.lock().set_ip(n, *ip)
}
