//! The cxos iperf3 client against the cxos iperf3 server between two
//! cxos-net stacks on two in-process models wired back to back
//! (synchronous mode: everything shares this one thread, so the figures are
//! lower bounds), against the wall clock.
//!
//! `cargo bench -p cxos-net --bench iperf3` prints
//! `bench: net.iperf3_tcp_gbps: <x> Gbit/s` (one stream, receiver side),
//! `bench: net.iperf3_tcp_reverse_gbps`, `bench: net.iperf3_tcp_p4_gbps`
//! (-P 4) and `bench: net.iperf3_udp_gbps` / `bench: net.iperf3_udp_loss`
//! (-u -b 10G, 1448-byte datagrams: what arrives when the sender is not
//! paced by the receiver). `CXOS_IPERF3_BENCH_SECS` sets each run's length
//! (default 3).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant as WallClock;

use common::Pair;
use cxos_net::iperf3::{
    ClientPoll, Iperf3Args, Iperf3Client, Iperf3Report, Iperf3Server, ServerConfig,
};
use cxos_net::smoltcp::time::Instant;

/// Runs `iperf3 <args>` from stack a against the server on b, the clock
/// being the wall clock since `epoch`.
fn run(p: &mut Pair, srv: &mut Iperf3Server, epoch: WallClock, args: &str) -> Iperf3Report {
    let Iperf3Args::Client(cfg) = args.parse().expect("client arguments") else {
        panic!("not a client: {args}")
    };
    let clock = |p: &mut Pair| {
        p.now = Instant::from_micros(epoch.elapsed().as_micros() as i64);
        p.now
    };
    let now = clock(p);
    let (mut out, mut srv_out) = (String::new(), String::new());
    let mut c = Iperf3Client::start(
        cfg,
        &mut p.a.net.iface,
        &mut p.a.net.sockets,
        now,
        now.total_micros() as u64,
        &mut out,
    );
    loop {
        p.poll();
        let now = clock(p);
        srv.poll(&mut p.b.net.sockets, now, &mut srv_out);
        if let ClientPoll::Done(r) = c.poll(&mut p.a.net.iface, &mut p.a.net.sockets, now, &mut out)
        {
            return r.unwrap_or_else(|e| panic!("{args}: {e}\n{out}"));
        }
    }
}

fn main() {
    let secs: u32 = std::env::var("CXOS_IPERF3_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut p = Pair::new("10.0.0.1/24", "10.0.0.2/24");
    let epoch = WallClock::now();
    let mut sink = String::new();
    let mut srv = Iperf3Server::start(ServerConfig::default(), &mut p.b.net.sockets, &mut sink)
        .expect("server");
    for (name, args) in [
        ("net.iperf3_tcp_gbps", format!("-c 10.0.0.2 -t {secs}")),
        (
            "net.iperf3_tcp_reverse_gbps",
            format!("-c 10.0.0.2 -t {secs} -R"),
        ),
        (
            "net.iperf3_tcp_p4_gbps",
            format!("-c 10.0.0.2 -t {secs} -P 4"),
        ),
    ] {
        let r = run(&mut p, &mut srv, epoch, &args);
        println!(
            "bench: {name}: {:.2} Gbit/s",
            r.receiver_bits_per_second / 1e9
        );
    }
    let r = run(
        &mut p,
        &mut srv,
        epoch,
        &format!("-c 10.0.0.2 -t {secs} -u -b 10G"),
    );
    println!(
        "bench: net.iperf3_udp_gbps: {:.2} Gbit/s",
        r.receiver_bits_per_second / 1e9
    );
    let loss = if r.packets > 0 {
        r.lost_packets as f64 * 100.0 / r.packets as f64
    } else {
        0.0
    };
    println!("bench: net.iperf3_udp_loss: {loss:.2} %");
    p.close();
}
