//! TCP echo (RFC 862, port 7) and discard (RFC 863, port 9) services:
//! a few listening sockets each, re-armed after every connection. They run
//! until aborted.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use cxos_drivers::net::NetDevice;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use crate::app::{App, AppStatus, Verdict};
use crate::netif::NetIf;

pub const ECHO_PORT: u16 = 7;
pub const DISCARD_PORT: u16 = 9;
/// Socket buffers each way.
const BUFFER: usize = 64 * 1024;

/// Which service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpServiceKind {
    Echo,
    Discard,
}

/// Why a service could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// Port 0 or already listened on by another socket of the interface.
    PortInUse(u16),
    NoSockets,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::PortInUse(p) => write!(f, "port {p} is in use"),
            ServiceError::NoSockets => f.write_str("a service needs at least one socket"),
        }
    }
}

/// A TCP service on one port with `backlog` concurrent connections.
#[derive(Debug)]
pub struct TcpService {
    kind: TcpServiceKind,
    port: u16,
    sockets: Vec<SocketHandle>,
    /// Connections accepted so far.
    connections: u64,
    /// Whether each socket counted its current connection.
    counted: Vec<bool>,
    bytes: u64,
    done: Option<Verdict>,
}

impl TcpService {
    pub fn new<D: NetDevice>(
        net: &mut NetIf<D>,
        kind: TcpServiceKind,
        port: u16,
        backlog: usize,
    ) -> Result<TcpService, ServiceError> {
        if backlog == 0 {
            return Err(ServiceError::NoSockets);
        }
        let taken = net.sockets.iter().any(|(_, s)| match s {
            smoltcp::socket::Socket::Tcp(t) => {
                t.listen_endpoint().port == port
                    || t.local_endpoint().is_some_and(|e| e.port == port)
            }
            _ => false,
        });
        if port == 0 || taken {
            return Err(ServiceError::PortInUse(port));
        }
        let mut sockets = Vec::new();
        for _ in 0..backlog {
            let h = net.tcp_socket(BUFFER, BUFFER);
            let s = net.sockets.get_mut::<tcp::Socket>(h);
            // Port is non-zero and the socket fresh: listen cannot fail.
            let _ = s.listen(port);
            sockets.push(h);
        }
        Ok(TcpService {
            kind,
            port,
            counted: alloc::vec![false; sockets.len()],
            sockets,
            connections: 0,
            bytes: 0,
            done: None,
        })
    }

    /// Echo on port 7 with 4 concurrent connections.
    pub fn echo<D: NetDevice>(net: &mut NetIf<D>) -> Result<TcpService, ServiceError> {
        TcpService::new(net, TcpServiceKind::Echo, ECHO_PORT, 4)
    }

    /// Discard on port 9 with 4 concurrent connections.
    pub fn discard<D: NetDevice>(net: &mut NetIf<D>) -> Result<TcpService, ServiceError> {
        TcpService::new(net, TcpServiceKind::Discard, DISCARD_PORT, 4)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// Bytes received (and, for echo, sent back).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn serve(&mut self, s: &mut tcp::Socket<'_>) -> u64 {
        let mut moved = 0u64;
        match self.kind {
            TcpServiceKind::Discard => {
                while let Ok(n) = s.recv(|b| (b.len(), b.len())) {
                    if n == 0 {
                        break;
                    }
                    moved += n as u64;
                }
            }
            TcpServiceKind::Echo => {
                // Move what fits: the send buffer's room bounds the
                // receive, so nothing is held back here.
                while s.can_recv() && s.can_send() {
                    let room = s.send_capacity() - s.send_queue();
                    let mut chunk = [0u8; 2048];
                    let want = room.min(chunk.len());
                    let Ok(n) = s.recv_slice(&mut chunk[..want]) else {
                        break;
                    };
                    if n == 0 {
                        break;
                    }
                    // `room` bytes are free: the whole chunk goes in.
                    let _ = s.send_slice(&chunk[..n]);
                    moved += n as u64;
                }
            }
        }
        moved
    }

    fn summary(&self) -> String {
        let mut s = String::new();
        let name = match self.kind {
            TcpServiceKind::Echo => "echo",
            TcpServiceKind::Discard => "discard",
        };
        let _ = write!(
            s,
            "tcp {name} on port {}: {} connections, {} bytes",
            self.port, self.connections, self.bytes
        );
        s
    }
}

impl<D: NetDevice> App<D> for TcpService {
    fn name(&self) -> &str {
        match self.kind {
            TcpServiceKind::Echo => "echo",
            TcpServiceKind::Discard => "discard",
        }
    }

    fn poll(&mut self, net: &mut NetIf<D>, _now: Instant, _out: &mut dyn fmt::Write) -> AppStatus {
        if let Some(v) = &self.done {
            return AppStatus::Done(v.clone());
        }
        for i in 0..self.sockets.len() {
            let h = self.sockets[i];
            let s = net.sockets.get_mut::<tcp::Socket>(h);
            if s.is_active() && !self.counted[i] {
                self.counted[i] = true;
                self.connections += 1;
            }
            let moved = self.serve(s);
            self.bytes += moved;
            // The peer finished sending and everything was answered:
            // close our side too.
            if !s.may_recv() && s.may_send() && s.send_queue() == 0 {
                s.close();
            }
            if !s.is_open() {
                self.counted[i] = false;
                let _ = s.listen(self.port);
            }
        }
        AppStatus::Running
    }

    fn abort(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> Verdict {
        if let Some(v) = &self.done {
            return v.clone();
        }
        for &h in &self.sockets {
            net.sockets.get_mut::<tcp::Socket>(h).abort();
        }
        // One poll sends the resets before the sockets go.
        net.poll(now);
        for h in self.sockets.drain(..) {
            net.sockets.remove(h);
        }
        let line = self.summary();
        let _ = writeln!(out, "{line}");
        let v = Verdict::pass(line);
        self.done = Some(v.clone());
        v
    }
}
