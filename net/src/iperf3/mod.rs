//! iperf3-compatible server and client (owner: helper "iperf").
//!
//! Both are non-blocking state machines over smoltcp TCP/UDP sockets that
//! speak the protocol of stock iperf3 3.x: a 37-byte cookie on every TCP
//! connection, one-byte control states, 4-byte-length-prefixed JSON for the
//! parameters and the results, TCP data streams opened with the cookie, UDP
//! data streams opened with a 4-byte "connect" datagram and carrying a
//! timestamp/packet-number header for loss and jitter.
//!
//! Each `poll` takes the interface and socket set (borrowed from the caller's
//! `NetIf`), the current time and a console sink; it never blocks. Console
//! output imitates iperf3's: interval lines each second, a final summary and
//! one machine-readable line `iperf3-json: {...}`.

mod args;
mod client;
mod engine;
pub mod json;
pub mod proto;
mod report;
mod server;

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;

pub use args::{ArgsError, ClientConfig, Iperf3Args, ServerConfig};
pub use client::Iperf3Client;
pub use proto::{ControlError, DEFAULT_PORT, ParamsError, Protocol, ResultsError};
pub use report::{Iperf3Report, JSON_LINE_PREFIX, Role};
pub use server::{Iperf3Server, ServerPoll};

use cxos_drivers::net::NetDevice;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;

use crate::app::{App, AppStatus, Verdict};
use crate::netif::NetIf;

/// Receive and send buffer of each TCP data socket (the TCP window).
pub const DATA_SOCKET_BUFFER: usize = 256 * 1024;
/// Buffers of the control connection.
pub const CONTROL_SOCKET_BUFFER: usize = 8 * 1024;
/// How long each protocol step may take before the test is abandoned.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a test ended without results. Display gives a one-line message.
#[derive(Clone, Debug, PartialEq)]
pub enum Iperf3Error {
    /// The control connection could not be opened (refused, reset, no route).
    Connect(String),
    /// The server is running another test (ACCESS_DENIED).
    AccessDenied,
    /// The server refused the test (SERVER_ERROR with iperf3's error number).
    ServerError {
        ierrno: i32,
        errno: i32,
    },
    /// A TCP connection presented a cookie that is not the test's.
    BadCookie,
    /// The control channel carried bytes that are not iperf3's protocol.
    Control(ControlError),
    Params(ParamsError),
    Results(ResultsError),
    /// A state byte that is valid but not expected now.
    UnexpectedState {
        during: &'static str,
        state: i8,
    },
    /// The peer closed or reset the control connection.
    PeerClosed {
        during: &'static str,
    },
    /// A data connection was closed or reset while the test ran.
    StreamLost,
    /// The peer stopped answering.
    Timeout {
        during: &'static str,
    },
    /// The peer ended the test early (CLIENT_TERMINATE / SERVER_TERMINATE).
    Terminated,
    /// A local socket operation failed (bind, connect: no address, no route).
    Socket(String),
    /// Stopped by the user or the kernel.
    Aborted,
}

impl fmt::Display for Iperf3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "iperf3: error - ")?;
        match self {
            Iperf3Error::Connect(why) => write!(f, "unable to connect to server: {why}"),
            Iperf3Error::AccessDenied => {
                write!(f, "the server is busy running a test. try again later")
            }
            Iperf3Error::ServerError { ierrno, errno } => {
                write!(
                    f,
                    "the server refused the test (iperf3 error {ierrno}, errno {errno})"
                )
            }
            Iperf3Error::BadCookie => write!(f, "a connection presented a wrong cookie"),
            Iperf3Error::Control(e) => write!(f, "control channel: {e}"),
            Iperf3Error::Params(e) => write!(f, "{e}"),
            Iperf3Error::Results(e) => write!(f, "{e}"),
            Iperf3Error::UnexpectedState { during, state } => {
                write!(f, "unexpected control state {state} during {during}")
            }
            Iperf3Error::PeerClosed { during } => {
                write!(f, "the peer closed the control connection during {during}")
            }
            Iperf3Error::Timeout { during } => write!(f, "the peer did not answer during {during}"),
            Iperf3Error::Terminated => write!(f, "the peer terminated the test"),
            Iperf3Error::StreamLost => {
                write!(f, "a data connection was closed or reset during the test")
            }
            Iperf3Error::Socket(why) => write!(f, "socket: {why}"),
            Iperf3Error::Aborted => write!(f, "test aborted"),
        }
    }
}

/// What a client poll reports.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientPoll {
    Running,
    /// The test is over (returned by every later poll as well).
    Done(Result<Iperf3Report, Iperf3Error>),
}

/// Receive windows of all data streams of a test together. smoltcp sends
/// a whole window at once; one burst larger than the receiving adapter's
/// RX ring is mostly dropped and smoltcp recovers from that badly
/// (measured: -P 4 with 256 KiB windows ran at 0.01 Gbit/s between two
/// in-process models, -P 2 at 9 Gbit/s). cxos's rings hold 256 frames of
/// the MTU (336 on a striding RQ): one stream's 256 KiB window (181
/// frames) fits.
pub const RECEIVE_WINDOW_BUDGET: usize = 512 * 1024;

/// The receive buffer (window) of each of `parallel` data streams.
pub fn stream_receive_buffer(parallel: u32) -> usize {
    (RECEIVE_WINDOW_BUDGET / parallel.max(1) as usize).clamp(32 * 1024, DATA_SOCKET_BUFFER)
}

fn new_tcp_socket(rx: usize, tx: usize) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(alloc::vec![0; rx]),
        tcp::SocketBuffer::new(alloc::vec![0; tx]),
    );
    s.set_nagle_enabled(false);
    s
}

fn new_udp_socket(packets: usize, bytes: usize) -> udp::Socket<'static> {
    udp::Socket::new(
        udp::PacketBuffer::new(
            alloc::vec![udp::PacketMetadata::EMPTY; packets],
            alloc::vec![0; bytes],
        ),
        udp::PacketBuffer::new(
            alloc::vec![udp::PacketMetadata::EMPTY; packets],
            alloc::vec![0; bytes],
        ),
    )
}

/// Sends as much of `pending` as the socket takes.
fn flush(sockets: &mut SocketSet<'static>, h: SocketHandle, pending: &mut alloc::vec::Vec<u8>) {
    if pending.is_empty() {
        return;
    }
    let s = sockets.get_mut::<tcp::Socket>(h);
    if let Ok(n) = s.send_slice(pending) {
        pending.drain(..n);
    }
}

/// Pulls at most `max` bytes from a TCP socket.
fn read_some(
    sockets: &mut SocketSet<'static>,
    h: SocketHandle,
    max: usize,
    into: &mut proto::ControlReader,
) {
    if max == 0 {
        return;
    }
    let s = sockets.get_mut::<tcp::Socket>(h);
    let mut buf = [0u8; 512];
    let mut left = max;
    while left > 0 && s.can_recv() {
        let want = left.min(buf.len());
        match s.recv_slice(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                into.push(&buf[..n]);
                left -= n;
            }
        }
    }
}

/// `iperf3 <args>` as a built-in app: a server (a service unless `-1`) or
/// a client test, started from an argument string such as "-c 10.0.0.1 -R -t 3".
#[derive(Debug)]
pub enum Iperf3App {
    Server(Iperf3Server),
    Client(Iperf3Client),
}

/// The kernel's entry point: `iperf3 <args>` from the shell or `test=`.
/// Lines printed while starting ("Connecting to host ...", "Server
/// listening on ...") come out on the first poll. `Err` is a one-line message.
pub fn from_args<D: NetDevice>(
    net: &mut NetIf<D>,
    args: &str,
    now: Instant,
) -> Result<Box<dyn App<D> + Send>, String> {
    let mut startup = String::new();
    match Iperf3App::start(net, args, now, &mut startup) {
        Ok(app) => Ok(Box::new(Started { app, startup })),
        Err(e) => {
            let mut s = String::new();
            let _ = fmt::Write::write_fmt(&mut s, format_args!("{e}"));
            Err(s)
        }
    }
}

/// An [`Iperf3App`] with the console lines of its start still to print.
#[derive(Debug)]
struct Started {
    app: Iperf3App,
    startup: String,
}

impl<D: NetDevice> App<D> for Started {
    fn name(&self) -> &str {
        App::<D>::name(&self.app)
    }

    fn poll(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> AppStatus {
        if !self.startup.is_empty() {
            let _ = out.write_str(&self.startup);
            self.startup.clear();
        }
        self.app.poll(net, now, out)
    }

    fn poll_at(&self, now: Instant) -> Option<Instant> {
        App::<D>::poll_at(&self.app, now)
    }

    fn abort(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> Verdict {
        if !self.startup.is_empty() {
            let _ = out.write_str(&self.startup);
            self.startup.clear();
        }
        self.app.abort(net, now, out)
    }
}

/// Why `iperf3 <args>` could not start.
#[derive(Clone, Debug, PartialEq)]
pub enum StartError {
    Args(ArgsError),
    /// `-B` names an address the interface does not have.
    NotLocal(IpAddress),
    Socket(Iperf3Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Args(e) => write!(f, "{e}"),
            StartError::NotLocal(a) => write!(
                f,
                "iperf3: error - unable to bind to {a}: not an address of this interface"
            ),
            StartError::Socket(e) => write!(f, "{e}"),
        }
    }
}

impl Iperf3App {
    /// Parses `args` and starts the server or client on `net`.
    pub fn start<D: NetDevice>(
        net: &mut NetIf<D>,
        args: &str,
        now: Instant,
        out: &mut dyn fmt::Write,
    ) -> Result<Iperf3App, StartError> {
        let args = args.parse::<Iperf3Args>().map_err(StartError::Args)?;
        let bind = match &args {
            Iperf3Args::Server(c) => c.bind,
            Iperf3Args::Client(c) => c.bind,
        };
        if let Some(a) = bind
            && !net.iface.ip_addrs().iter().any(|c| c.address() == a)
        {
            return Err(StartError::NotLocal(a));
        }
        match args {
            Iperf3Args::Server(cfg) => Iperf3Server::start(cfg, &mut net.sockets, out)
                .map(Iperf3App::Server)
                .map_err(StartError::Socket),
            Iperf3Args::Client(cfg) => {
                // Cookie and local ports differ per run: mix the clock and the MAC.
                let mac = net.mac();
                let seed = now.total_micros() as u64
                    ^ u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0])
                        .rotate_left(24);
                let client =
                    Iperf3Client::start(cfg, &mut net.iface, &mut net.sockets, now, seed, out);
                Ok(Iperf3App::Client(client))
            }
        }
    }
}

fn verdict(role: Role, r: &Result<Iperf3Report, Iperf3Error>) -> Verdict {
    use core::fmt::Write as _;
    match r {
        Ok(rep) => {
            let mut s = String::new();
            let _ = write!(
                s,
                "iperf3 {} {}{} {} stream(s): sent {} bytes in {:.2} s, received {} bytes in {:.2} s, {:.1} Mbit/s",
                if role == Role::Client {
                    "client"
                } else {
                    "server"
                },
                rep.protocol.name(),
                if rep.reverse { " reverse" } else { "" },
                rep.streams,
                rep.sent_bytes,
                rep.sender_seconds,
                rep.received_bytes,
                rep.receiver_seconds,
                rep.receiver_bits_per_second / 1e6
            );
            if rep.received_bytes == 0 {
                Verdict::fail(s)
            } else {
                Verdict::pass(s)
            }
        }
        Err(e) => {
            let mut s = String::new();
            let _ = write!(s, "{e}");
            Verdict::fail(s)
        }
    }
}

impl<D: NetDevice> App<D> for Iperf3App {
    fn name(&self) -> &str {
        match self {
            Iperf3App::Server(_) => "iperf3 -s",
            Iperf3App::Client(_) => "iperf3 -c",
        }
    }

    fn poll(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> AppStatus {
        match self {
            Iperf3App::Client(c) => match c.poll(&mut net.iface, &mut net.sockets, now, out) {
                ClientPoll::Running => AppStatus::Running,
                ClientPoll::Done(r) => AppStatus::Done(verdict(Role::Client, &r)),
            },
            Iperf3App::Server(s) => match s.poll(&mut net.sockets, now, out) {
                // Only with `-1`: that test's verdict, once its sockets are gone.
                ServerPoll::Stopped => AppStatus::Done(match s.last_result() {
                    Some(r) => verdict(Role::Server, r),
                    None => Verdict::fail("iperf3 server stopped"),
                }),
                _ => AppStatus::Running,
            },
        }
    }

    fn poll_at(&self, now: Instant) -> Option<Instant> {
        match self {
            Iperf3App::Client(c) => c.poll_at(now),
            Iperf3App::Server(s) => s.poll_at(now),
        }
    }

    fn abort(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> Verdict {
        match self {
            Iperf3App::Client(c) => {
                if let Some(r) = c.outcome() {
                    return verdict(Role::Client, r);
                }
                // Let the goodbye and the resets leave before the sockets go.
                c.stop(&mut net.sockets);
                net.poll(now);
                let e = c.abort(&mut net.sockets, out);
                verdict(Role::Client, &Err(e))
            }
            Iperf3App::Server(s) => {
                let n = s.tests_finished();
                s.stop(&mut net.sockets);
                net.poll(now);
                s.shutdown(&mut net.sockets, out);
                let mut msg = String::new();
                let _ = fmt::Write::write_fmt(
                    &mut msg,
                    format_args!("iperf3 server stopped after {n} test(s)"),
                );
                Verdict::pass(msg)
            }
        }
    }
}
