//! cxos networking: a smoltcp `phy::Device` over [`cxos_drivers::net::NetDevice`],
//! one smoltcp `Interface` per device or VNIC, and the built-in tests
//! (ping, iperf3-compatible server and client, raw L2, TCP echo/discard).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub use smoltcp;

pub mod aggr;
pub mod app;
pub mod config;
pub mod l2;
pub mod lacp;
pub mod netif;
pub mod phy;
pub mod ping;
pub mod pktgen;
pub mod snoop;
pub mod tcp_service;

pub use config::{ConfigError, IfConfig, Ipv4Config};
pub use netif::{IfStats, Lease, Mac, NetEvent, NetIf, NetIfError, OpenError};

pub mod iperf3;
