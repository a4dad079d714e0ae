//! cxos networking: a smoltcp `phy::Device` over [`cxos_drivers::net::NetDevice`],
//! one smoltcp `Interface` per device or VNIC, and the built-in tests
//! (ping, iperf3-compatible server and client, raw L2, TCP echo/discard).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
