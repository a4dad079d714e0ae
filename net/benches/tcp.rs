//! TCP throughput between two cxos-net stacks, each on the mlx5 driver
//! over its own in-process model, the two models wired back to back
//! (synchronous mode: both stacks, both drivers and both models share this
//! one thread, so the figures are lower bounds for stack + driver).
//!
//! `cargo bench -p cxos-net --bench tcp` prints
//! `bench: net.tcp_gbps: <x> Gbit/s` (IPv4, MTU 1500, 256 KiB socket
//! buffers, payload bytes over wall time), `bench: net.tcp_gbps_mtu9000`,
//! and `bench: net.tcp_ns_per_segment: <ns> ns` (wall time per data
//! segment of the MTU 1500 run). `CXOS_NET_BENCH_MB` sets the megabytes per
//! run (default 512).
//!
//! Instructions per TCP segment come from callgrind over `round` (one poll
//! of both stacks plus the application's send/recv calls), with the model
//! subtracted (it runs inside the doorbell writes):
//! `CXOS_NET_BENCH_MB=16 CXOS_NET_BENCH_1500_ONLY=1 valgrind --tool=callgrind --callgrind-out-file=cg.out
//! --toggle-collect='tcp::round' <bench binary>` then
//! `callgrind_annotate --inclusive=yes cg.out`; the bench prints the
//! segment count to divide by (`bench: net.tcp_segments_1500: <n> segments`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant as WallClock;

use common::Pair;
use cxos_net::smoltcp::iface::SocketHandle;
use cxos_net::smoltcp::socket::tcp;
use cxos_net::smoltcp::time::Duration;
use cxos_net::smoltcp::wire::IpAddress;
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::Mode;

const BUF: usize = 256 * 1024;

struct Flow {
    tx: SocketHandle,
    rx: SocketHandle,
    total: u64,
    sent: u64,
    got: u64,
}

/// One round: both stacks polled once, the sender fills its socket, the
/// receiver drains its socket. Whether anything moved.
#[inline(never)]
fn round(p: &mut Pair, f: &mut Flow) -> bool {
    let progress = p.poll();
    let s = p.a.net.sockets.get_mut::<tcp::Socket>(f.tx);
    while f.sent < f.total && s.can_send() {
        let left = f.total - f.sent;
        let n = s
            .send(|b| {
                let n = b.len().min(left as usize);
                (n, n)
            })
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        f.sent += n as u64;
    }
    if f.sent == f.total && s.may_send() {
        s.close();
    }
    let r = p.b.net.sockets.get_mut::<tcp::Socket>(f.rx);
    while r.can_recv() {
        f.got += r.recv(|b| (b.len(), b.len())).unwrap_or(0) as u64;
    }
    progress
}

/// Move `mb` megabytes a -> b; (seconds, data segments a sent).
fn run(mtu: usize, mb: u64) -> (f64, u64) {
    let eth = EthConfig {
        mtu,
        interrupts: false,
        ..EthConfig::default()
    };
    let mut p = Pair::with(
        Personality::ConnectX5,
        Personality::ConnectX5,
        Mode::Synchronous,
        eth,
        "10.0.0.1/24",
        "10.0.0.2/24",
    );
    let rx = p.b.net.tcp_socket(BUF, BUF);
    p.b.net
        .sockets
        .get_mut::<tcp::Socket>(rx)
        .listen(5001)
        .unwrap();
    let tx = p.a.net.tcp_socket(BUF, BUF);
    let local = p.a.net.ephemeral_port();
    let cx = p.a.net.iface.context();
    p.a.net
        .sockets
        .get_mut::<tcp::Socket>(tx)
        .connect(cx, (IpAddress::v4(10, 0, 0, 2), 5001), local)
        .unwrap();
    let mut f = Flow {
        tx,
        rx,
        total: mb * 1024 * 1024,
        sent: 0,
        got: 0,
    };
    // Connection set-up outside the timed part.
    while !p.a.net.sockets.get::<tcp::Socket>(tx).may_send() {
        if !p.poll() {
            p.idle(None, Duration::from_millis(10));
        }
    }
    let frames_before = p.a.net.stats().phy.tx_frames;
    let start = WallClock::now();
    while f.got < f.total {
        if !round(&mut p, &mut f) {
            p.idle(None, Duration::from_millis(10));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Data segments: a's frames in the transfer (a sends data, b ACKs).
    let segments = p.a.net.stats().phy.tx_frames - frames_before;
    p.close();
    (secs, segments)
}

fn main() {
    common::logger();
    let mb: u64 = std::env::var("CXOS_NET_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let bits = (mb * 1024 * 1024 * 8) as f64;
    let (secs, segments) = run(1500, mb);
    println!("bench: net.tcp_gbps: {:.2} Gbit/s", bits / secs / 1e9);
    println!(
        "bench: net.tcp_ns_per_segment: {:.0} ns",
        secs * 1e9 / segments as f64
    );
    println!("bench: net.tcp_segments_1500: {segments} segments");
    // Callgrind runs want the MTU 1500 run alone.
    if std::env::var_os("CXOS_NET_BENCH_1500_ONLY").is_none() {
        let (secs, _) = run(9000, mb);
        println!(
            "bench: net.tcp_gbps_mtu9000: {:.2} Gbit/s",
            bits / secs / 1e9
        );
    }
}
