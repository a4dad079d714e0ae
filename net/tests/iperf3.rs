//! cxos iperf3 client against the cxos iperf3 server over two simulated
//! adapters (TCP, UDP, reverse, parallel), the summary JSON line, and the
//! malformed-control-channel cases: each ends that test with a clear error
//! and the server serves the next client.

mod common;

use common::Pair;
use cxos_net::iperf3::{
    ClientPoll, ControlError, Iperf3Args, Iperf3Client, Iperf3Error, Iperf3Report, Iperf3Server,
    ParamsError, Protocol, ServerConfig, ServerPoll,
};
use cxos_net::smoltcp::iface::SocketHandle;
use cxos_net::smoltcp::socket::tcp;
use cxos_net::smoltcp::time::Duration;
use cxos_net::smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

const A: &str = "10.0.0.1/24";
const B: &str = "10.0.0.2/24";
const SERVER: IpAddress = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2));

/// The server on stack b, its console output kept.
struct Srv {
    s: Iperf3Server,
    out: String,
}

impl Srv {
    fn new(p: &mut Pair) -> Srv {
        let mut out = String::new();
        let s =
            Iperf3Server::start(ServerConfig::default(), &mut p.b.net.sockets, &mut out).unwrap();
        Srv { s, out }
    }

    fn poll(&mut self, p: &mut Pair) -> Option<Result<Iperf3Report, Iperf3Error>> {
        let now = p.now;
        match self.s.poll(&mut p.b.net.sockets, now, &mut self.out) {
            ServerPoll::Finished(r) => Some(r),
            _ => None,
        }
    }
}

struct Outcome {
    client: Result<Iperf3Report, Iperf3Error>,
    server: Result<Iperf3Report, Iperf3Error>,
    out: String,
}

/// A client on `p.a` started with `args` (its seed from the clock).
fn start_client(p: &mut Pair, args: &str, out: &mut String) -> Iperf3Client {
    let seed = p.now.total_micros() as u64;
    start_seeded(p, args, seed, out)
}

/// A client on `p.a` started with `args` and `seed`.
fn start_seeded(p: &mut Pair, args: &str, seed: u64, out: &mut String) -> Iperf3Client {
    let Iperf3Args::Client(cfg) = args.parse().unwrap() else {
        panic!("not a client: {args}")
    };
    let now = p.now;
    Iperf3Client::start(
        cfg,
        &mut p.a.net.iface,
        &mut p.a.net.sockets,
        now,
        seed,
        out,
    )
}

/// Polls until client `c` is done, `before` run first in each round; its
/// result.
fn client_result(
    p: &mut Pair,
    c: &mut Iperf3Client,
    out: &mut String,
    limit: Duration,
    mut before: impl FnMut(&mut Pair),
) -> Result<Iperf3Report, Iperf3Error> {
    let mut res = None;
    let ok = until(p, limit, |p| {
        before(p);
        let now = p.now;
        if let ClientPoll::Done(r) = c.poll(&mut p.a.net.iface, &mut p.a.net.sockets, now, out) {
            res = Some(r);
        }
        res.is_some()
    });
    assert!(ok, "client not done:\n{out}");
    res.unwrap()
}

/// Runs client `c` and the server (which must not end a test) until the
/// client's output shows `needle`.
fn run_until_output(
    p: &mut Pair,
    srv: &mut Srv,
    c: &mut Iperf3Client,
    out: &mut String,
    needle: &str,
) {
    let ok = until(p, Duration::from_secs(5), |p| {
        let now = p.now;
        assert!(srv.poll(p).is_none());
        c.poll(&mut p.a.net.iface, &mut p.a.net.sockets, now, out);
        out.contains(needle)
    });
    assert!(ok, "{out}");
}

/// What ended in one [`step`]: the client's result, the server's.
type Ended = (
    Option<Result<Iperf3Report, Iperf3Error>>,
    Option<Result<Iperf3Report, Iperf3Error>>,
);

/// One round: the pair, the client (until it is done) and the server
/// polled once, the clock moved on to the next thing due.
fn step(p: &mut Pair, srv: &mut Srv, c: &mut Iperf3Client, done: bool, out: &mut String) -> Ended {
    let progress = p.poll();
    let now = p.now;
    let mut client = None;
    if !done && let ClientPoll::Done(r) = c.poll(&mut p.a.net.iface, &mut p.a.net.sockets, now, out)
    {
        client = Some(r);
    }
    let server = srv.poll(p);
    let at = [c.poll_at(now), srv.s.poll_at(now)]
        .into_iter()
        .flatten()
        .min();
    tick(p, progress, at);
    (client, server)
}

/// Runs `iperf3 <args>` on stack a against the server on b until both ends
/// are done.
fn run_client(p: &mut Pair, srv: &mut Srv, args: &str) -> Outcome {
    let mut out = String::new();
    let mut c = start_client(p, args, &mut out);
    let mut client = None;
    let mut server = None;
    let end = p.now + Duration::from_secs(60);
    while client.is_none() || server.is_none() {
        assert!(
            p.now < end,
            "test did not finish\nclient:\n{out}\nserver:\n{}",
            srv.out
        );
        let (c_end, s_end) = step(p, srv, &mut c, client.is_some(), &mut out);
        client = client.or(c_end);
        server = server.or(s_end);
    }
    Outcome {
        client: client.unwrap(),
        server: server.unwrap(),
        out,
    }
}

/// The `iperf3-json:` line of a console output, parsed independently.
fn json_line(out: &str) -> serde_json::Value {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("iperf3-json: "))
        .unwrap_or_else(|| panic!("no iperf3-json line in:\n{out}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line}: {e}"))
}

fn check_ok(o: &Outcome, protocol: Protocol, reverse: bool, streams: u32) -> Iperf3Report {
    let c = o
        .client
        .as_ref()
        .unwrap_or_else(|e| panic!("client failed: {e}\n{}", o.out))
        .clone();
    let s = o
        .server
        .as_ref()
        .unwrap_or_else(|e| panic!("server failed: {e}\n{}", o.out))
        .clone();
    assert_eq!(
        (c.protocol, c.reverse, c.streams),
        (protocol, reverse, streams)
    );
    assert_eq!(
        (s.protocol, s.reverse, s.streams),
        (protocol, reverse, streams)
    );
    assert!(
        c.received_bytes > 0 && c.received_bytes <= c.sent_bytes,
        "{c:?}"
    );
    // Both ends agree on the totals: each took one side from the other.
    assert_eq!(
        (c.sent_bytes, c.received_bytes),
        (s.sent_bytes, s.received_bytes)
    );
    assert!(c.sender_seconds >= 2.0 && c.sender_seconds < 2.5, "{c:?}");
    assert!(o.out.contains("iperf Done."), "{}", o.out);
    let connected = if protocol == Protocol::Tcp {
        "[  5] local 10.0.0.1 port "
    } else {
        "[  5] local port "
    };
    assert!(o.out.contains(connected), "{}", o.out);
    assert!(
        o.out.contains(" connected to 10.0.0.2 port 5201\n"),
        "{}",
        o.out
    );
    assert!(o.out.contains(" sec "), "{}", o.out);
    assert!(o.out.contains("receiver"), "{}", o.out);
    // Interval lines each second: "[  5]   0.00-1.00   sec ..." then 1.00-2.00.
    assert!(o.out.contains("[  5]   0.00-1.0"), "{}", o.out);
    assert!(o.out.contains("[  5]   1.0"), "{}", o.out);
    if streams > 1 {
        assert!(o.out.contains("[SUM]"), "{}", o.out);
        assert!(
            o.out.contains(&format!("[{:>3}]", 4 + streams)),
            "{}",
            o.out
        );
    }
    let j = json_line(&o.out);
    assert_eq!(j["role"], "client");
    assert_eq!(
        j["protocol"],
        if protocol == Protocol::Tcp {
            "tcp"
        } else {
            "udp"
        }
    );
    assert_eq!(j["reverse"], reverse);
    assert_eq!(j["streams"], streams);
    assert_eq!(j["sent_bytes"].as_u64(), Some(c.sent_bytes));
    assert_eq!(j["received_bytes"].as_u64(), Some(c.received_bytes));
    assert!(j["receiver_bits_per_second"].as_f64().unwrap() > 0.0);
    assert!(j["sender_bits_per_second"].as_f64().unwrap() > 0.0);
    assert!(j["retransmits"].as_u64().is_some());
    assert!(j["lost_packets"].as_u64().is_some());
    assert!(j["jitter_ms"].as_f64().is_some());
    assert!(j["error"].is_null());
    c
}

/// Polls until `done` holds, the clock moving as in [`tick`]; false on timeout.
fn until(p: &mut Pair, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) -> bool {
    let end = p.now + limit;
    while p.now < end {
        let progress = p.poll();
        if done(p) {
            return true;
        }
        tick(p, progress, None);
    }
    false
}

/// Moves the fake clock: 1 ms per round while data flows (so that tests
/// with a duration end), else to the next deadline.
fn tick(p: &mut Pair, progress: bool, at: Option<cxos_net::smoltcp::time::Instant>) {
    if progress {
        p.advance(Duration::from_millis(1));
    } else {
        p.idle(at, Duration::from_millis(50));
    }
}

#[test]
fn tcp_forward_reverse_parallel() {
    let mut p = Pair::new(A, B);
    let mut srv = Srv::new(&mut p);
    assert!(srv.out.contains("Server listening on 5201"));

    let o = run_client(&mut p, &mut srv, "-c 10.0.0.2 -t 2");
    let r = check_ok(&o, Protocol::Tcp, false, 1);
    assert!(
        o.out
            .starts_with("Connecting to host 10.0.0.2, port 5201\n"),
        "{}",
        o.out
    );
    eprintln!(
        "tcp: {:.1} Mbit/s (simulated clock)",
        r.receiver_bits_per_second / 1e6
    );

    let o = run_client(&mut p, &mut srv, "-c 10.0.0.2 -t 2 -R");
    check_ok(&o, Protocol::Tcp, true, 1);

    let o = run_client(&mut p, &mut srv, "-c 10.0.0.2 -t 2 -P 2");
    check_ok(&o, Protocol::Tcp, false, 2);

    let o = run_client(&mut p, &mut srv, "-c 10.0.0.2 -t 2 -P 3 -R -l 32K");
    check_ok(&o, Protocol::Tcp, true, 3);

    // Four streams' windows together fit the receiving adapter's RX ring
    // (the server sizes its listeners' windows once it knows -P): nothing
    // is dropped at the server for want of a receive buffer.
    let before = p.b.sim.port_stats().rx_dropped_no_wqe;
    let o = run_client(&mut p, &mut srv, "-c 10.0.0.2 -t 2 -P 4");
    check_ok(&o, Protocol::Tcp, false, 4);
    assert_eq!(
        p.b.sim.port_stats().rx_dropped_no_wqe,
        before,
        "frames dropped at the server"
    );
    let o = run_client(&mut p, &mut srv, "-c 10.0.0.2 -t 2 -P 4 -R");
    check_ok(&o, Protocol::Tcp, true, 4);

    // -b paces TCP too (per stream, as iperf3), both ways.
    for args in ["-c 10.0.0.2 -t 2 -b 40M", "-c 10.0.0.2 -t 2 -b 20M -P 2 -R"] {
        let o = run_client(&mut p, &mut srv, args);
        let r = check_ok(
            &o,
            Protocol::Tcp,
            args.contains("-R"),
            1 + args.contains("-P") as u32,
        );
        let bps = r.sender_bits_per_second;
        assert!((39.0e6..41.5e6).contains(&bps), "{args}: paced at {bps}");
    }

    // The server printed its side: the accepted connection, streams, a summary, its JSON line.
    assert!(
        srv.out.contains("Accepted connection from 10.0.0.1, port "),
        "{}",
        srv.out
    );
    assert!(
        srv.out
            .contains("[  5] local 10.0.0.2 port 5201 connected to 10.0.0.1 port "),
        "{}",
        srv.out
    );
    let sj = json_line(&srv.out);
    assert_eq!(sj["role"], "server");
    assert_eq!(srv.s.tests_finished(), 8);
    p.close();
}

#[test]
fn udp_forward_reverse_parallel() {
    let mut p = Pair::new(A, B);
    let mut srv = Srv::new(&mut p);
    let o = run_client(&mut p, &mut srv, "-c 10.0.0.2 -u -b 20M -t 2");
    let r = check_ok(&o, Protocol::Udp, false, 1);
    // 20 Mbit/s for 2 s in 1448-byte datagrams: about 3450.
    assert!((3000..4000).contains(&r.packets), "{r:?}");
    assert_eq!(r.lost_packets, 0, "{}", o.out);
    assert!(o.out.contains("Lost/Total Datagrams"), "{}", o.out);
    let bps = r.sender_bits_per_second;
    assert!((19.0e6..21.0e6).contains(&bps), "paced at {bps}");

    let o = run_client(&mut p, &mut srv, "-c 10.0.0.2 -u -R -b 10M -t 2 -l 1000");
    let r = check_ok(&o, Protocol::Udp, true, 1);
    assert!((2300..2600).contains(&r.packets), "{r:?}");
    assert_eq!(r.lost_packets, 0);

    let o = run_client(&mut p, &mut srv, "-c 10.0.0.2 -u -P 2 -b 5M -t 2");
    let r = check_ok(&o, Protocol::Udp, false, 2);
    assert!((1500..2000).contains(&r.packets), "{r:?}");
    p.close();
}

/// A TCP socket of stack a (`buf` bytes each way) connecting to the
/// server's port; not waited for.
fn dial(p: &mut Pair, buf: usize) -> SocketHandle {
    let h = p.a.net.tcp_socket(buf, buf);
    let local = p.a.net.ephemeral_port();
    let cx = p.a.net.iface.context();
    p.a.net
        .sockets
        .get_mut::<tcp::Socket>(h)
        .connect(cx, IpEndpoint::new(SERVER, 5201), local)
        .unwrap();
    h
}

/// A socket of stack b listening on port 5300 (a scripted server).
fn listen_b(p: &mut Pair, rx: usize, tx: usize) -> SocketHandle {
    let h = p.b.net.tcp_socket(rx, tx);
    p.b.net
        .sockets
        .get_mut::<tcp::Socket>(h)
        .listen(5300)
        .unwrap();
    h
}

/// Queues `bytes` on stack b's socket `h`.
fn send_b(p: &mut Pair, h: SocketHandle, bytes: &[u8]) {
    p.b.net
        .sockets
        .get_mut::<tcp::Socket>(h)
        .send_slice(bytes)
        .unwrap();
}

/// The per-stream figures of a results message `j` (stream `st`) that
/// stock iperf3 reads are numbers.
fn assert_stream_numbers(st: &serde_json::Value, j: &serde_json::Value) {
    for k in [
        "retransmits",
        "jitter",
        "errors",
        "packets",
        "start_time",
        "end_time",
    ] {
        assert!(st[k].is_number(), "{k} in {j}");
    }
}

/// A hand-driven TCP connection from stack a to the server, for bad input.
struct Raw {
    h: SocketHandle,
}

impl Raw {
    fn connect(p: &mut Pair) -> Raw {
        let h = dial(p, 64 * 1024);
        let r = Raw { h };
        let ok = until(p, Duration::from_secs(5), |p| {
            p.a.net.sockets.get::<tcp::Socket>(h).state() == tcp::State::Established
        });
        assert!(ok, "raw connection not established");
        r
    }

    fn send(&self, p: &mut Pair, bytes: &[u8]) {
        let n =
            p.a.net
                .sockets
                .get_mut::<tcp::Socket>(self.h)
                .send_slice(bytes)
                .unwrap();
        assert_eq!(n, bytes.len());
    }

    /// Everything received so far.
    fn recv(&self, p: &mut Pair) -> Vec<u8> {
        let mut v = vec![0u8; 4096];
        let n =
            p.a.net
                .sockets
                .get_mut::<tcp::Socket>(self.h)
                .recv_slice(&mut v)
                .unwrap_or(0);
        v.truncate(n);
        v
    }

    fn close(self, p: &mut Pair) {
        p.a.net.sockets.get_mut::<tcp::Socket>(self.h).close();
    }

    fn remove(self, p: &mut Pair) {
        p.a.net.sockets.remove(self.h);
    }
}

/// Polls both stacks and the server until the server reports a finished test.
fn server_result(
    p: &mut Pair,
    srv: &mut Srv,
    limit: Duration,
) -> Result<Iperf3Report, Iperf3Error> {
    let end = p.now + limit;
    loop {
        let progress = p.poll();
        if let Some(r) = srv.poll(p) {
            return r;
        }
        assert!(p.now < end, "server did not end the test:\n{}", srv.out);
        let at = srv.s.poll_at(p.now);
        tick(p, progress, at);
    }
}

fn settle(p: &mut Pair, srv: &mut Srv, d: Duration) {
    let end = p.now + d;
    while p.now < end {
        let progress = p.poll();
        assert!(srv.poll(p).is_none(), "unexpected test end:\n{}", srv.out);
        tick(p, progress, None);
    }
}

const COOKIE: &[u8; 37] = b"abcdefghijklmnopqrstuvwxyz234567abcd\0";

fn frame(json: &str) -> Vec<u8> {
    let mut v = (json.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(json.as_bytes());
    v
}

/// After a bad client, a good one is served normally.
fn still_serves(p: &mut Pair, srv: &mut Srv) {
    let o = run_client(p, srv, "-c 10.0.0.2 -t 2");
    check_ok(&o, Protocol::Tcp, false, 1);
}

#[test]
fn malformed_control_channel_ends_the_test_and_the_server_goes_on() {
    let mut p = Pair::new(A, B);
    let mut srv = Srv::new(&mut p);
    let step = Duration::from_secs(15);

    // A cookie that is not 36 printable characters and a NUL.
    let r = Raw::connect(&mut p);
    r.send(&mut p, &[0xffu8; 37]);
    assert_eq!(
        server_result(&mut p, &mut srv, step),
        Err(Iperf3Error::BadCookie)
    );
    r.remove(&mut p);

    // Parameters that are not JSON: SERVER_ERROR with IERECVPARAMS (114) before the close.
    let r = Raw::connect(&mut p);
    r.send(&mut p, COOKIE);
    r.send(&mut p, &frame("{\"tcp\":tru"));
    let e = server_result(&mut p, &mut srv, step).unwrap_err();
    assert!(
        matches!(e, Iperf3Error::Params(ParamsError::Json(_))),
        "{e:?}"
    );
    settle(&mut p, &mut srv, Duration::from_millis(100));
    assert_eq!(r.recv(&mut p), [9, 0xfe, 0, 0, 0, 114, 0, 0, 0, 0]);
    r.remove(&mut p);
    assert!(
        srv.out.contains("iperf3: error - parameters are not JSON"),
        "{}",
        srv.out
    );

    // JSON of the wrong shape, and an option cxos does not implement (IEUNIMP 13).
    for (json, want, ierrno) in [
        ("[1,2]", ParamsError::NotAnObject, 114u8),
        (
            "{\"tcp\":true,\"bidirectional\":true}",
            ParamsError::Unsupported("bidirectional"),
            13,
        ),
        (
            "{\"tcp\":true,\"parallel\":100}",
            ParamsError::BadField("parallel"),
            6,
        ),
    ] {
        let r = Raw::connect(&mut p);
        r.send(&mut p, COOKIE);
        r.send(&mut p, &frame(json));
        assert_eq!(
            server_result(&mut p, &mut srv, step),
            Err(Iperf3Error::Params(want))
        );
        settle(&mut p, &mut srv, Duration::from_millis(100));
        assert_eq!(r.recv(&mut p), [9, 0xfe, 0, 0, 0, ierrno, 0, 0, 0, 0]);
        r.remove(&mut p);
    }

    // An oversized JSON message is refused on its length alone.
    let r = Raw::connect(&mut p);
    r.send(&mut p, COOKIE);
    r.send(&mut p, &[0, 0x10, 0, 0]);
    assert_eq!(
        server_result(&mut p, &mut srv, step),
        Err(Iperf3Error::Control(ControlError::JsonTooLong {
            len: 0x10_0000,
            max: 8192
        }))
    );
    r.remove(&mut p);

    // A truncated message, then the client closes.
    let r = Raw::connect(&mut p);
    r.send(&mut p, COOKIE);
    r.send(&mut p, &[0, 0, 0, 100, b'{', b'"']);
    settle(&mut p, &mut srv, Duration::from_millis(200));
    r.close(&mut p);
    assert_eq!(
        server_result(&mut p, &mut srv, step),
        Err(Iperf3Error::PeerClosed {
            during: "the parameter exchange"
        })
    );

    // A truncated message and silence: the step timeout ends it.
    let r = Raw::connect(&mut p);
    r.send(&mut p, COOKIE);
    r.send(&mut p, &[0, 0, 0, 100]);
    assert_eq!(
        server_result(&mut p, &mut srv, step),
        Err(Iperf3Error::Timeout {
            during: "the parameter exchange"
        })
    );
    r.remove(&mut p);

    // An unknown state byte mid-test.
    let r = Raw::connect(&mut p);
    r.send(&mut p, COOKIE);
    r.send(
        &mut p,
        &frame("{\"tcp\":true,\"time\":5,\"parallel\":1,\"len\":1024}"),
    );
    settle(&mut p, &mut srv, Duration::from_millis(100));
    assert_eq!(r.recv(&mut p), [9, 10]); // PARAM_EXCHANGE, CREATE_STREAMS
    let d = Raw::connect(&mut p);
    d.send(&mut p, COOKIE);
    settle(&mut p, &mut srv, Duration::from_millis(100));
    assert_eq!(r.recv(&mut p), [1, 2]); // TEST_START, TEST_RUNNING
    r.send(&mut p, &[3]);
    assert_eq!(
        server_result(&mut p, &mut srv, step),
        Err(Iperf3Error::Control(ControlError::UnknownState(3)))
    );
    r.remove(&mut p);
    d.remove(&mut p);

    // A data connection with a wrong cookie gets ACCESS_DENIED and ends the test.
    let r = Raw::connect(&mut p);
    r.send(&mut p, COOKIE);
    r.send(&mut p, &frame("{\"tcp\":true,\"time\":5,\"parallel\":1}"));
    settle(&mut p, &mut srv, Duration::from_millis(100));
    let d = Raw::connect(&mut p);
    d.send(&mut p, b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\0");
    assert_eq!(
        server_result(&mut p, &mut srv, step),
        Err(Iperf3Error::BadCookie)
    );
    settle(&mut p, &mut srv, Duration::from_millis(100));
    assert_eq!(d.recv(&mut p), [0xff]);
    r.remove(&mut p);
    d.remove(&mut p);

    still_serves(&mut p, &mut srv);
    p.close();
}

#[test]
fn peer_vanishing_mid_test_and_busy_server() {
    let mut p = Pair::new(A, B);
    let mut srv = Srv::new(&mut p);

    // A second client while a test runs is told ACCESS_DENIED.
    let holder = Raw::connect(&mut p);
    holder.send(&mut p, COOKIE);
    settle(&mut p, &mut srv, Duration::from_millis(100));
    let mut out = String::new();
    let mut c = start_seeded(&mut p, "-c 10.0.0.2 -t 2", 7, &mut out);
    let res = client_result(&mut p, &mut c, &mut out, Duration::from_secs(5), |p| {
        assert!(srv.poll(p).is_none())
    });
    assert_eq!(res, Err(Iperf3Error::AccessDenied));
    assert!(
        out.contains("iperf3: error - the server is busy running a test. try again later"),
        "{out}"
    );
    let j = json_line(&out);
    assert_eq!(
        j["error"],
        "iperf3: error - the server is busy running a test. try again later"
    );
    holder.remove(&mut p);
    let e = server_result(&mut p, &mut srv, Duration::from_secs(15)).unwrap_err();
    assert!(
        matches!(
            e,
            Iperf3Error::PeerClosed { .. } | Iperf3Error::Timeout { .. }
        ),
        "{e:?}"
    );

    // A client whose program stops mid-test (its stack still ACKs): the
    // server gives up after the test time plus its step timeout.
    let mut out = String::new();
    let mut c = start_seeded(&mut p, "-c 10.0.0.2 -t 2", 8, &mut out);
    run_until_output(&mut p, &mut srv, &mut c, &mut out, "[ ID] Interval");
    let e = server_result(&mut p, &mut srv, Duration::from_secs(30)).unwrap_err();
    assert_eq!(e, Iperf3Error::Timeout { during: "the test" });
    c.abort(&mut p.a.net.sockets, &mut out);

    // A client whose sockets vanish mid-test (its stack answers the
    // server's data with RST).
    let mut out = String::new();
    let mut c = start_seeded(&mut p, "-c 10.0.0.2 -t 3 -R", 9, &mut out);
    run_until_output(&mut p, &mut srv, &mut c, &mut out, "[  5]   0.00-1.0");
    let handles: Vec<SocketHandle> = p.a.net.sockets.iter().map(|(h, _)| h).collect();
    for h in handles {
        if let cxos_net::smoltcp::socket::Socket::Tcp(s) =
            p.a.net
                .sockets
                .get_mut::<cxos_net::smoltcp::socket::Socket>(h)
            && s.remote_endpoint().map(|e| e.port) == Some(5201)
        {
            p.a.net.sockets.remove(h);
        }
    }
    let e = server_result(&mut p, &mut srv, Duration::from_secs(30)).unwrap_err();
    assert_eq!(e, Iperf3Error::StreamLost, "{}", srv.out);
    drop(c);

    still_serves(&mut p, &mut srv);

    // The server vanishing mid-test: the client's data stream is reset.
    let mut out = String::new();
    let mut c = start_seeded(&mut p, "-c 10.0.0.2 -t 3", 10, &mut out);
    run_until_output(&mut p, &mut srv, &mut c, &mut out, "[  5]   0.00-1.0");
    srv.s.shutdown(&mut p.b.net.sockets, &mut srv.out);
    let res = client_result(&mut p, &mut c, &mut out, Duration::from_secs(30), |_| {});
    assert_eq!(res, Err(Iperf3Error::StreamLost), "{out}");
    assert!(
        out.contains("iperf3: error - a data connection was closed or reset during the test"),
        "{out}"
    );
    p.close();
}

#[test]
fn client_reports_refused_and_bad_servers() {
    let mut p = Pair::new(A, B);
    // Nobody listens: the connection is refused.
    let mut out = String::new();
    let mut c = start_seeded(&mut p, "-c 10.0.0.2 -p 5999 -t 1", 1, &mut out);
    let res = client_result(&mut p, &mut c, &mut out, Duration::from_secs(15), |_| {});
    assert!(matches!(res, Err(Iperf3Error::Connect(_))), "{res:?}");

    // A "server" that answers the cookie with garbage, or with SERVER_ERROR.
    for (reply, want) in [
        (
            vec![3u8],
            Iperf3Error::Control(ControlError::UnknownState(3)),
        ),
        (
            vec![0xfe, 0, 0, 0, 13, 0, 0, 0, 0],
            Iperf3Error::ServerError {
                ierrno: 13,
                errno: 0,
            },
        ),
        (
            vec![9, 10, 2],
            Iperf3Error::UnexpectedState {
                during: "stream setup",
                state: 2,
            },
        ),
        (vec![11], Iperf3Error::Terminated),
    ] {
        let l = listen_b(&mut p, 8192, 8192);
        let mut out = String::new();
        let mut c = start_seeded(&mut p, "-c 10.0.0.2 -p 5300 -t 1", 2, &mut out);
        let mut cookie = Vec::new();
        let res = client_result(&mut p, &mut c, &mut out, Duration::from_secs(15), |p| {
            let s = p.b.net.sockets.get_mut::<tcp::Socket>(l);
            let mut buf = [0u8; 64];
            if let Ok(n) = s.recv_slice(&mut buf) {
                cookie.extend_from_slice(&buf[..n]);
                if n > 0 && cookie.len() == 37 {
                    s.send_slice(&reply).unwrap();
                }
            }
        });
        assert_eq!(cookie[36], 0);
        assert!(
            cookie[..36]
                .iter()
                .all(|b| b"abcdefghijklmnopqrstuvwxyz234567".contains(b))
        );
        assert_eq!(res, Err(want), "{out}");
        p.b.net.sockets.remove(l);
    }
    p.close();
}

/// Number of sockets in a stack's set (to see that apps release theirs).
fn socket_count(net: &cxos_net::NetIf<common::Port>) -> usize {
    net.sockets.iter().count()
}

#[test]
fn app_entry_point_runs_both_ends_and_releases_sockets() {
    use cxos_net::app::AppStatus;
    let mut p = Pair::new(A, B);
    let (base_a, base_b) = (socket_count(&p.a.net), socket_count(&p.b.net));
    let now = p.now;
    let e = cxos_net::iperf3::from_args(&mut p.a.net, "-c", now)
        .err()
        .unwrap();
    assert_eq!(e, "iperf3: option -c requires an argument");
    let e = cxos_net::iperf3::from_args(&mut p.a.net, "-s -u", now)
        .err()
        .unwrap();
    assert_eq!(e, "iperf3: parameter error - -u is a client-only option");

    // `-s -1` serves one test and is done with that test's verdict.
    let mut s = cxos_net::iperf3::from_args(&mut p.b.net, "-s -1", now).unwrap();
    let mut c =
        cxos_net::iperf3::from_args(&mut p.a.net, "-c 10.0.0.2 -t 1 -u -b 2M", now).unwrap();
    let (mut so, mut co) = (String::new(), String::new());
    let (mut sv, mut cv) = (None, None);
    let end = p.now + Duration::from_secs(30);
    while sv.is_none() || cv.is_none() {
        assert!(p.now < end, "client:\n{co}\nserver:\n{so}");
        let progress = p.poll();
        let now = p.now;
        if sv.is_none()
            && let AppStatus::Done(v) = s.poll(&mut p.b.net, now, &mut so)
        {
            sv = Some(v);
        }
        if cv.is_none()
            && let AppStatus::Done(v) = c.poll(&mut p.a.net, now, &mut co)
        {
            cv = Some(v);
        }
        let at = [s.poll_at(now), c.poll_at(now)].into_iter().flatten().min();
        tick(&mut p, progress, at);
    }
    let (sv, cv) = (sv.unwrap(), cv.unwrap());
    assert!(sv.ok && cv.ok, "{sv}\n{cv}\n{so}\n{co}");
    assert!(
        cv.summary
            .starts_with("iperf3 client UDP 1 stream(s): sent "),
        "{cv}"
    );
    assert!(
        sv.summary
            .starts_with("iperf3 server UDP 1 stream(s): sent "),
        "{sv}"
    );
    assert!(so.starts_with("-----------------------------------------------------------\nServer listening on 5201\n"), "{so}");
    assert!(
        co.starts_with("Connecting to host 10.0.0.2, port 5201\n"),
        "{co}"
    );
    // Give closing connections their linger time, then nothing is left behind.
    let mut s2 = cxos_net::iperf3::from_args(&mut p.b.net, "-s", p.now).unwrap();
    let _ = until(&mut p, Duration::from_secs(3), |_| false);
    assert_eq!(socket_count(&p.a.net), base_a);

    // A client stopped mid-test tells the server (CLIENT_TERMINATE).
    let mut c = cxos_net::iperf3::from_args(&mut p.a.net, "-c 10.0.0.2 -t 5", p.now).unwrap();
    let (mut so, mut co) = (String::new(), String::new());
    let ok = until(&mut p, Duration::from_secs(5), |p| {
        let now = p.now;
        assert_eq!(s2.poll(&mut p.b.net, now, &mut so), AppStatus::Running);
        assert_eq!(c.poll(&mut p.a.net, now, &mut co), AppStatus::Running);
        co.contains("[  5]   1.0")
    });
    assert!(ok, "{co}");
    let now = p.now;
    let v = c.abort(&mut p.a.net, now, &mut co);
    assert!(!v.ok && v.summary == "iperf3: error - test aborted", "{v}");
    assert_eq!(socket_count(&p.a.net), base_a);
    let ok = until(&mut p, Duration::from_secs(5), |p| {
        let now = p.now;
        s2.poll(&mut p.b.net, now, &mut so);
        so.contains("iperf3: error - the peer terminated the test")
    });
    assert!(ok, "{so}");
    let now = p.now;
    let v = s2.abort(&mut p.b.net, now, &mut so);
    assert_eq!(v.summary, "iperf3 server stopped after 1 test(s)");
    drop(s);
    assert_eq!(
        socket_count(&p.b.net),
        base_b,
        "the server released its sockets"
    );
    p.close();
}

/// Everything `r` receives until `n` bytes arrived (or 5 s passed).
fn recv_n(p: &mut Pair, srv: &mut Srv, r: &Raw, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let ok = until(p, Duration::from_secs(5), |p| {
        assert!(srv.poll(p).is_none(), "test ended early:\n{}", srv.out);
        got.extend(r.recv(p));
        got.len() >= n
    });
    assert!(ok, "received {got:?}, wanted {n} bytes\n{}", srv.out);
    got
}

#[test]
fn server_speaks_the_protocol_byte_for_byte() {
    // A scripted client sending what stock iperf3 3.12 sends, checking every
    // byte the server answers (iperf_server_api.c's order of states).
    let mut p = Pair::new(A, B);
    let mut srv = Srv::new(&mut p);
    let ctl = Raw::connect(&mut p);
    ctl.send(&mut p, COOKIE);
    assert_eq!(recv_n(&mut p, &mut srv, &ctl, 1), [9]); // PARAM_EXCHANGE
    ctl.send(
        &mut p,
        &frame(r#"{"tcp":true,"omit":0,"time":1,"num":0,"blockcount":0,"parallel":1,"len":1024,"pacing_timer":1000,"client_version":"3.12"}"#),
    );
    assert_eq!(recv_n(&mut p, &mut srv, &ctl, 1), [10]); // CREATE_STREAMS
    let data = Raw::connect(&mut p);
    data.send(&mut p, COOKIE);
    assert_eq!(recv_n(&mut p, &mut srv, &ctl, 2), [1, 2]); // TEST_START, TEST_RUNNING
    let mut sent = 0usize;
    let ok = until(&mut p, Duration::from_secs(5), |p| {
        assert!(srv.poll(p).is_none());
        let s = p.a.net.sockets.get_mut::<tcp::Socket>(data.h);
        if sent < 200_000 {
            sent += s.send_slice(&[0x5a; 4096]).unwrap();
        }
        sent >= 200_000 && s.send_queue() == 0
    });
    assert!(ok);
    ctl.send(&mut p, &[4]); // TEST_END
    assert_eq!(recv_n(&mut p, &mut srv, &ctl, 1), [13]); // EXCHANGE_RESULTS
    // 3.12 prints its -1 ("unknown") unsigned.
    ctl.send(
        &mut p,
        &frame(&format!(
            r#"{{"cpu_util_total":1.5,"cpu_util_user":0.5,"cpu_util_system":1,"sender_has_retransmits":1,"congestion_used":"cubic","streams":[{{"id":1,"bytes":{sent},"retransmits":18446744073709551615,"jitter":0,"errors":0,"omitted_errors":0,"packets":0,"omitted_packets":0,"start_time":0,"end_time":1.0001}}]}}"#
        )),
    );
    let mut got = recv_n(&mut p, &mut srv, &ctl, 4);
    let len = u32::from_be_bytes(got[..4].try_into().unwrap()) as usize;
    got.extend(recv_n(&mut p, &mut srv, &ctl, len + 5 - got.len()));
    assert_eq!(got.len(), 4 + len + 1, "nothing after DISPLAY_RESULTS");
    assert_eq!(got[4 + len], 14); // DISPLAY_RESULTS
    let j: serde_json::Value = serde_json::from_slice(&got[4..4 + len]).unwrap();
    for k in ["cpu_util_total", "cpu_util_user", "cpu_util_system"] {
        assert!(j[k].is_number(), "{j}");
    }
    assert_eq!(j["sender_has_retransmits"], -1, "the server received: {j}");
    let st = &j["streams"][0];
    assert_eq!(st["id"], 1);
    assert_eq!(
        st["bytes"].as_u64(),
        Some(sent as u64),
        "every byte arrived: {j}"
    );
    assert_stream_numbers(st, &j);
    ctl.send(&mut p, &[16]); // IPERF_DONE
    // The next client connects at once: its connection is established
    // (by the stack) before the server polls, in the same batch as
    // IPERF_DONE. It is the next test, not refused as busy.
    let next = Raw::connect(&mut p);
    let r = server_result(&mut p, &mut srv, Duration::from_secs(5)).unwrap();
    assert_eq!((r.sent_bytes, r.received_bytes), (sent as u64, sent as u64));
    assert_eq!(r.retransmits, 0, "unknown (-1) counts as none");
    assert!((r.sender_seconds - 1.0001).abs() < 1e-9, "{r:?}");
    next.send(&mut p, COOKIE);
    assert_eq!(recv_n(&mut p, &mut srv, &next, 1), [9]); // PARAM_EXCHANGE
    assert!(!srv.out.contains("refusing"), "{}", srv.out);
    ctl.remove(&mut p);
    data.remove(&mut p);
    next.remove(&mut p);
    p.close();
}

/// Data a client still sends after TEST_END (stock iperf3's sender
/// stops writing, but its socket holds up to a window of it) is answered
/// with a reset, as Linux answers data arriving at a closed socket:
/// the stream ends at once instead of competing with the results
/// exchange, IPERF_DONE and the next client's connection.
#[test]
fn a_receiving_server_resets_the_data_connections_at_test_end() {
    let mut p = Pair::new(A, B);
    let mut srv = Srv::new(&mut p);
    let ctl = Raw::connect(&mut p);
    ctl.send(&mut p, COOKIE);
    assert_eq!(recv_n(&mut p, &mut srv, &ctl, 1), [9]); // PARAM_EXCHANGE
    ctl.send(
        &mut p,
        &frame(r#"{"tcp":true,"omit":0,"time":1,"num":0,"blockcount":0,"parallel":1,"len":1024,"pacing_timer":1000,"client_version":"3.12"}"#),
    );
    assert_eq!(recv_n(&mut p, &mut srv, &ctl, 1), [10]); // CREATE_STREAMS
    let data = Raw::connect(&mut p);
    data.send(&mut p, COOKIE);
    assert_eq!(recv_n(&mut p, &mut srv, &ctl, 2), [1, 2]); // TEST_START, TEST_RUNNING
    let data_state = |p: &Pair| p.a.net.sockets.get::<tcp::Socket>(data.h).state();
    let h = data.h;
    let feed = move |p: &mut Pair| {
        let s = p.a.net.sockets.get_mut::<tcp::Socket>(h);
        if s.can_send() {
            s.send_slice(&[0x5a; 4096]).unwrap_or(0)
        } else {
            0
        }
    };
    let mut sent = 0;
    until(&mut p, Duration::from_millis(200), |p| {
        assert!(srv.poll(p).is_none());
        sent += feed(p);
        false
    });
    assert!(sent > 0);
    ctl.send(&mut p, &[4]); // TEST_END, the data socket still sending
    let mut got = Vec::new();
    let reset = until(&mut p, Duration::from_secs(2), |p| {
        assert!(srv.poll(p).is_none(), "test ended early:\n{}", srv.out);
        feed(p);
        got.extend(ctl.recv(p));
        data_state(p) == tcp::State::Closed
    });
    assert!(
        reset,
        "the data connection is {} after TEST_END",
        data_state(&p)
    );
    assert_eq!(got.first(), Some(&13), "EXCHANGE_RESULTS first: {got:?}");
    ctl.remove(&mut p);
    data.remove(&mut p);
    p.close();
}

/// What stack b's socket `h` received so far.
fn take(p: &mut Pair, h: SocketHandle) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    let n =
        p.b.net
            .sockets
            .get_mut::<tcp::Socket>(h)
            .recv_slice(&mut buf)
            .unwrap_or(0);
    buf.truncate(n);
    buf
}

/// The cxos client under test, driven by a scripted server on stack b.
struct Scripted {
    c: Iperf3Client,
    out: String,
}

impl Scripted {
    fn poll(&mut self, p: &mut Pair) -> ClientPoll {
        let now = p.now;
        self.c
            .poll(&mut p.a.net.iface, &mut p.a.net.sockets, now, &mut self.out)
    }

    /// Sends `send` on b's socket `h`, then collects at least `want` bytes from it.
    fn exchange(&mut self, p: &mut Pair, h: SocketHandle, send: &[u8], want: usize) -> Vec<u8> {
        if !send.is_empty() {
            send_b(p, h, send);
        }
        let mut got = Vec::new();
        let ok = until(p, Duration::from_secs(5), |p| {
            assert_eq!(self.poll(p), ClientPoll::Running, "{}", self.out);
            got.extend(take(p, h));
            got.len() >= want
        });
        assert!(
            ok,
            "got {} of {want} bytes: {got:?}\n{}",
            got.len(),
            self.out
        );
        got
    }

    /// A length-prefixed JSON message from `h` (the first bytes in `first`).
    fn json(&mut self, p: &mut Pair, h: SocketHandle, first: Vec<u8>) -> serde_json::Value {
        let len = u32::from_be_bytes(first[..4].try_into().unwrap()) as usize;
        let rest = if first.len() < 4 + len {
            self.exchange(p, h, &[], 4 + len - first.len())
        } else {
            Vec::new()
        };
        let all = [first, rest].concat();
        assert_eq!(all.len(), 4 + len, "nothing after the JSON");
        serde_json::from_slice(&all[4..]).unwrap()
    }
}

#[test]
fn client_speaks_the_protocol_byte_for_byte() {
    // A scripted server answering as stock iperf3 3.12 does; every byte the
    // cxos client sends is checked (iperf_client_api.c's order).
    let mut p = Pair::new(A, B);
    let ctl = listen_b(&mut p, 256 * 1024, 16 * 1024);
    let data = listen_b(&mut p, 256 * 1024, 16 * 1024);
    let mut out = String::new();
    let c = start_seeded(&mut p, "-c 10.0.0.2 -p 5300 -t 1 -l 1000", 42, &mut out);
    let mut sc = Scripted { c, out };
    let cookie = sc.exchange(&mut p, ctl, &[], 37);
    assert_eq!(cookie.len(), 37);
    assert_eq!(cookie[36], 0);
    let first = sc.exchange(&mut p, ctl, &[9], 4); // PARAM_EXCHANGE
    let j = sc.json(&mut p, ctl, first);
    assert_eq!(j["tcp"], true, "{j}");
    assert_eq!(j["time"], 1);
    assert_eq!(j["parallel"], 1);
    assert_eq!(j["len"], 1000);
    assert_eq!(j["omit"], 0);
    assert!(j.get("reverse").is_none() && j.get("udp").is_none(), "{j}");
    assert!(j["client_version"].is_string());
    // CREATE_STREAMS: the data connection presents the same cookie.
    send_b(&mut p, ctl, &[10]);
    let got = sc.exchange(&mut p, data, &[], 37);
    assert_eq!(got[..37], cookie[..], "data stream cookie");
    // TEST_START, TEST_RUNNING: data flows until the client says TEST_END.
    let mut received = got.len() as u64 - 37;
    let mut end = Vec::new();
    send_b(&mut p, ctl, &[1, 2]);
    let ok = until(&mut p, Duration::from_secs(5), |p| {
        assert_eq!(sc.poll(p), ClientPoll::Running);
        received += take(p, data).len() as u64;
        end.extend(take(p, ctl));
        !end.is_empty()
    });
    assert!(ok, "{}", sc.out);
    assert_eq!(end, [4], "TEST_END");
    let first = sc.exchange(&mut p, ctl, &[13], 4); // EXCHANGE_RESULTS
    let j = sc.json(&mut p, ctl, first);
    for k in [
        "cpu_util_total",
        "cpu_util_user",
        "cpu_util_system",
        "sender_has_retransmits",
    ] {
        assert!(j[k].is_number(), "{k} in {j}");
    }
    let st = &j["streams"][0];
    assert_eq!(st["id"], 1);
    let sent = st["bytes"].as_u64().unwrap();
    received += take(&mut p, data).len() as u64;
    assert!(
        sent >= received && received > 0,
        "sent {sent}, received {received}"
    );
    assert_stream_numbers(st, &j);
    // The server's results and DISPLAY_RESULTS; the client answers IPERF_DONE.
    let mine = format!(
        r#"{{"cpu_util_total":0.5,"cpu_util_user":0,"cpu_util_system":0.5,"sender_has_retransmits":18446744073709551615,"congestion_used":"cubic","streams":[{{"id":1,"bytes":{received},"retransmits":18446744073709551615,"jitter":0,"errors":0,"omitted_errors":0,"packets":0,"omitted_packets":0,"start_time":0,"end_time":1.002}}]}}"#
    );
    let mut reply = frame(&mine);
    reply.push(14);
    send_b(&mut p, ctl, &reply);
    let mut done = None;
    let mut tail = Vec::new();
    let ok = until(&mut p, Duration::from_secs(5), |p| {
        if let ClientPoll::Done(r) = sc.poll(p) {
            done = Some(r);
        }
        tail.extend(take(p, ctl));
        done.is_some() && !tail.is_empty()
    });
    assert!(ok, "{}", sc.out);
    assert_eq!(tail, [16], "IPERF_DONE");
    let r = done.unwrap().unwrap();
    assert_eq!((r.sent_bytes, r.received_bytes), (sent, received));
    assert!((r.receiver_seconds - 1.002).abs() < 1e-9);
    assert!(sc.out.contains("iperf Done."));
    p.close();
}

#[test]
fn a_flood_of_connections_stays_bounded() {
    let mut p = Pair::new(A, B);
    let mut srv = Srv::new(&mut p);
    let base = socket_count(&p.b.net);
    // One client holds the server in its parameter exchange...
    let holder = Raw::connect(&mut p);
    holder.send(&mut p, COOKIE);
    // ... while 100 more connect at once.
    let mut flood = Vec::new();
    for _ in 0..100 {
        flood.push(dial(&mut p, 1024));
    }
    let mut most = 0;
    let _ = until(&mut p, Duration::from_secs(1), |p| {
        assert!(srv.poll(p).is_none());
        most = most.max(socket_count(&p.b.net));
        false
    });
    // The test's control connection, the listeners and at most 32 closing ones.
    assert!(
        most <= base + 1 + 2 + 32,
        "{most} sockets at the server (base {base})"
    );
    // Those that got in were told ACCESS_DENIED.
    let denied = flood
        .iter()
        .filter(|&&h| {
            let mut b = [0u8; 4];
            p.a.net.sockets.get_mut::<tcp::Socket>(h).recv_slice(&mut b) == Ok(1) && b[0] == 0xff
        })
        .count();
    assert!(denied >= 2, "{denied} connections were told ACCESS_DENIED");
    for h in flood {
        p.a.net.sockets.remove(h);
    }
    holder.remove(&mut p);
    let e = server_result(&mut p, &mut srv, Duration::from_secs(15)).unwrap_err();
    assert_eq!(
        e,
        Iperf3Error::Timeout {
            during: "the parameter exchange"
        }
    );
    still_serves(&mut p, &mut srv);
    p.close();
}

/// `-B`: a server bound to one address takes tests there only (a client
/// of its other address is refused), a client bound to its address
/// connects from it, and an address the interface does not hold is
/// refused before anything is opened.
#[test]
fn bind_address_server_and_client() {
    let mut p = Pair::new("10.0.0.1/24,ip6=fd00::1/64", "10.0.0.2/24,ip6=fd00::2/64");
    let mut out = String::new();
    let Iperf3Args::Server(cfg) = "-s -B fd00::2".parse().unwrap() else {
        unreachable!()
    };
    let s = Iperf3Server::start(cfg, &mut p.b.net.sockets, &mut out).unwrap();
    let mut srv = Srv { s, out };

    let o = run_client(&mut p, &mut srv, "-c fd00::2 -B fd00::1 -t 1");
    let c = o
        .client
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}\n{}", o.out));
    assert!(o.server.is_ok(), "{:?}\n{}", o.server, srv.out);
    assert!(c.received_bytes > 0, "{c:?}");
    assert!(
        o.out.contains("[  5] local fd00::1 port ")
            && o.out.contains(" connected to fd00::2 port 5201\n"),
        "{}",
        o.out
    );
    assert!(
        srv.out.contains("Accepted connection from fd00::1, port "),
        "{}",
        srv.out
    );

    // The server's IPv4 address has no listener: refused.
    let mut out = String::new();
    let mut c = start_seeded(&mut p, "-c 10.0.0.2 -t 1", 3, &mut out);
    let res = client_result(&mut p, &mut c, &mut out, Duration::from_secs(15), |_| {});
    assert!(matches!(res, Err(Iperf3Error::Connect(_))), "{res:?}");

    let sockets = socket_count(&p.a.net);
    let now = p.now;
    let e = cxos_net::iperf3::from_args(&mut p.a.net, "-c fd00::2 -B 10.0.0.9", now)
        .err()
        .unwrap();
    assert_eq!(
        e,
        "iperf3: error - unable to bind to 10.0.0.9: not an address of this interface"
    );
    assert_eq!(socket_count(&p.a.net), sockets);
    p.close();
}

#[test]
fn time_zero_runs_until_stopped_and_the_server_goes_on() {
    let mut p = Pair::new(A, B);
    let mut srv = Srv::new(&mut p);
    let mut out = String::new();
    let mut c = start_client(&mut p, "-t 0 -b 5M -c 10.0.0.2", &mut out);
    // Past iperf3's default 10 s and then some: still sending.
    let end = p.now + Duration::from_secs(25);
    while p.now < end {
        let (client, server) = step(&mut p, &mut srv, &mut c, false, &mut out);
        if let Some(r) = client {
            panic!("-t 0 ended by itself: {r:?}\n{out}");
        }
        assert!(server.is_none(), "{}", srv.out);
    }
    assert!(
        out.contains("[  5]  20.00-21.00"),
        "interval lines go on:\n{out}"
    );
    // Stopped as iperf3 is by ^C: the server is told and serves the next.
    c.stop(&mut p.a.net.sockets);
    let _ = p.poll();
    let _ = c.abort(&mut p.a.net.sockets, &mut out);
    assert!(until(&mut p, Duration::from_secs(30), |p| srv
        .poll(p)
        .is_some()));
    let o = run_client(&mut p, &mut srv, "-c 10.0.0.2 -t 1");
    assert!(o.client.is_ok(), "{}", o.out);
    p.close();
}

/// A test's data connections whose SYNs all reach the server in one poll
/// of its stack, the server app not running between them (a receive path
/// that hands frames over in batches): every one finds a listener and is
/// established, none is answered with a RST, and the test starts.
#[test]
fn streams_connecting_in_one_batch_all_find_a_listener() {
    let mut p = Pair::new(A, B);
    let mut srv = Srv::new(&mut p);
    let r = Raw::connect(&mut p);
    r.send(&mut p, COOKIE);
    r.send(
        &mut p,
        &frame("{\"tcp\":true,\"time\":1,\"parallel\":6,\"len\":1024}"),
    );
    settle(&mut p, &mut srv, Duration::from_millis(100));
    assert_eq!(r.recv(&mut p), [9, 10]); // PARAM_EXCHANGE, CREATE_STREAMS
    let mut data = Vec::new();
    for _ in 0..6 {
        data.push(dial(&mut p, 64 * 1024));
    }
    // The stacks only: the server app does not run until all are up.
    let ok = until(&mut p, Duration::from_secs(5), |p| {
        data.iter()
            .all(|&h| p.a.net.sockets.get::<tcp::Socket>(h).state() == tcp::State::Established)
    });
    let states: Vec<_> = data
        .iter()
        .map(|&h| p.a.net.sockets.get::<tcp::Socket>(h).state())
        .collect();
    assert!(ok, "data connections not all established: {states:?}");
    for &h in &data {
        let n =
            p.a.net
                .sockets
                .get_mut::<tcp::Socket>(h)
                .send_slice(COOKIE)
                .unwrap();
        assert_eq!(n, COOKIE.len());
    }
    settle(&mut p, &mut srv, Duration::from_millis(100));
    assert_eq!(r.recv(&mut p), [1, 2], "{}", srv.out); // TEST_START, TEST_RUNNING
    for h in data {
        p.a.net.sockets.remove(h);
    }
    r.remove(&mut p);
    let _ = server_result(&mut p, &mut srv, Duration::from_secs(60));
    still_serves(&mut p, &mut srv);
    p.close();
}
