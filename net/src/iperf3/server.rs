//! `iperf3 -s`: the server state machine (iperf_server_api.c's flow), one
//! test at a time, ready for the next client after each, also after errors.
//!
//! cookie → PARAM_EXCHANGE, read parameters → CREATE_STREAMS, accept the
//! data streams (TCP: connection + cookie; UDP: connect datagram, answered)
//! → TEST_START, TEST_RUNNING → (client) TEST_END → EXCHANGE_RESULTS: read
//! the client's results, send ours → DISPLAY_RESULTS → (client) IPERF_DONE.

use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt::Write;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use super::args::ServerConfig;
use super::engine::{Engine, Stream, Transport};
use super::proto::{
    COOKIE_SIZE, ControlItem, ControlReader, Cookie, Expect, IE_BLOCK_SIZE, IE_NUM_STREAMS,
    IE_RECV_PARAMS, IE_UNIMP, MAX_PARAMS_JSON, MAX_RESULTS_JSON, MAX_STREAMS, MAX_TIME, Params,
    ParamsError, Protocol, Results, State, UDP_CONNECT_REPLY, frame_json, is_udp_connect,
};
use super::report::{Iperf3Report, JSON_LINE_PREFIX, Role, error_json, summarize};
use super::{
    DATA_SOCKET_BUFFER, Iperf3Error, STEP_TIMEOUT, flush, new_tcp_socket, new_udp_socket, read_some,
};

/// Listening sockets kept ready, so a second SYN arriving in the same poll
/// as the first still finds a listener (more while a test's streams come:
/// `Server::listeners_wanted`).
const LISTENERS: usize = 2;
/// Closing connections beyond which no new listener is opened.
const MAX_CLOSING: usize = 32;
/// How long a closed connection may take to finish its FIN exchange.
const LINGER: Duration = Duration::from_secs(2);

/// What a server poll reports.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerPoll {
    /// Listening, no test.
    Idle,
    /// A test is in progress.
    Busy,
    /// A test just ended (reported once per test); the server listens again
    /// (unless it was started with `-1`).
    Finished(Result<Iperf3Report, Iperf3Error>),
    /// `-1` given and the test is over: the server has released its sockets
    /// (after `Finished`, polls report `Busy` until the connections closed).
    Stopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Cookie,
    Params,
    Streams,
    Running,
    ClientResults,
    AwaitDone,
}

#[derive(Debug)]
struct Candidate {
    handle: SocketHandle,
    cookie: Vec<u8>,
}

#[derive(Debug)]
struct Test {
    control: SocketHandle,
    peer: Option<IpEndpoint>,
    phase: Phase,
    cookie_bytes: Vec<u8>,
    cookie: Option<Cookie>,
    reader: ControlReader,
    pending: Vec<u8>,
    params: Option<Params>,
    candidates: Vec<Candidate>,
    streams: Vec<Stream>,
    udp: Option<SocketHandle>,
    engine: Option<Engine>,
    local_results: Option<Results>,
    report: Option<Iperf3Report>,
    deadline: Instant,
}

impl Test {
    fn during(&self) -> &'static str {
        match self.phase {
            Phase::Cookie => "the cookie exchange",
            Phase::Params => "the parameter exchange",
            Phase::Streams => "stream setup",
            Phase::Running => "the test",
            Phase::ClientResults | Phase::AwaitDone => "the results exchange",
        }
    }
}

#[derive(Debug)]
pub struct Iperf3Server {
    cfg: ServerConfig,
    listeners: Vec<SocketHandle>,
    test: Option<Test>,
    /// Connections refused while busy: answered ACCESS_DENIED once established.
    refusing: Vec<(SocketHandle, Instant)>,
    /// Closed sockets finishing their FIN exchange, removed at the deadline.
    lingering: Vec<(SocketHandle, Instant)>,
    /// Receive buffer of new listening sockets: sized for the coming
    /// streams once a test's parameters are known.
    listen_rx: usize,
    tests: u32,
    last: Option<Result<Iperf3Report, Iperf3Error>>,
    stopped: bool,
    /// A test started after the poll's step (see [`Iperf3Server::poll`]):
    /// the next poll is due at once.
    started_late: bool,
}

impl Iperf3Server {
    /// Starts listening on `cfg.port` (TCP; UDP during UDP tests).
    pub fn start(
        cfg: ServerConfig,
        sockets: &mut SocketSet<'static>,
        out: &mut dyn Write,
    ) -> Result<Iperf3Server, Iperf3Error> {
        let mut s = Iperf3Server {
            cfg,
            listeners: Vec::new(),
            test: None,
            refusing: Vec::new(),
            lingering: Vec::new(),
            listen_rx: DATA_SOCKET_BUFFER,
            tests: 0,
            last: None,
            stopped: false,
            started_late: false,
        };
        s.top_up(sockets)?;
        s.banner(out);
        Ok(s)
    }

    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// Where it listens: the port, on every address or the `-B` one.
    fn local(&self) -> IpListenEndpoint {
        IpListenEndpoint {
            addr: self.cfg.bind,
            port: self.cfg.port,
        }
    }

    /// Tests finished so far (successful or not).
    pub fn tests_finished(&self) -> u32 {
        self.tests
    }

    /// The outcome of the last finished test.
    pub fn last_result(&self) -> Option<&Result<Iperf3Report, Iperf3Error>> {
        self.last.as_ref()
    }

    pub fn is_busy(&self) -> bool {
        self.test.is_some()
    }

    fn banner(&self, out: &mut dyn Write) {
        let _ = writeln!(
            out,
            "-----------------------------------------------------------"
        );
        let _ = writeln!(out, "Server listening on {}", self.cfg.port);
        let _ = writeln!(
            out,
            "-----------------------------------------------------------"
        );
    }

    /// Replaces the idle listeners by ones with `rx`-byte receive buffers.
    fn resize_listeners(
        &mut self,
        sockets: &mut SocketSet<'static>,
        rx: usize,
    ) -> Result<(), Iperf3Error> {
        if rx == self.listen_rx {
            return Ok(());
        }
        self.listen_rx = rx;
        let mut keep = Vec::new();
        for h in self.listeners.drain(..) {
            if sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen {
                sockets.remove(h);
            } else {
                keep.push(h);
            }
        }
        self.listeners = keep;
        self.top_up(sockets)
    }

    fn top_up(&mut self, sockets: &mut SocketSet<'static>) -> Result<(), Iperf3Error> {
        // Connections still closing hold their buffers: while too many are,
        // new SYNs find no listener (and get a RST) instead of more memory.
        if self.refusing.len() + self.lingering.len() >= MAX_CLOSING {
            return Ok(());
        }
        while self.listeners.len() < self.listeners_wanted() {
            let mut s = new_tcp_socket(self.listen_rx, DATA_SOCKET_BUFFER);
            s.listen(self.local())
                .map_err(|e| Iperf3Error::Socket(e.to_string()))?;
            self.listeners.push(sockets.add(s));
        }
        Ok(())
    }

    /// Listeners to keep ready: [`LISTENERS`], or while a TCP test's data
    /// connections are coming, one per stream still expected (and one for
    /// the next test's control connection). A client opens its streams one
    /// after another, but a poll that takes several handshakes' frames at
    /// once (a busy or batching receive path) must not leave a SYN without
    /// a listener: smoltcp answers it with a RST and the client gives up.
    fn listeners_wanted(&self) -> usize {
        let expected = self.test.as_ref().map_or(0, |t| match &t.params {
            Some(p) if t.phase == Phase::Streams && p.protocol == Protocol::Tcp => {
                (p.parallel as usize).saturating_sub(t.candidates.len() + t.streams.len())
            }
            _ => 0,
        });
        LISTENERS.max(expected.min(MAX_STREAMS as usize) + 1)
    }

    /// When the server next needs a poll without network input.
    pub fn poll_at(&self, now: Instant) -> Option<Instant> {
        if self.started_late {
            return Some(now);
        }
        let mut at: Option<Instant> = self
            .lingering
            .iter()
            .chain(&self.refusing)
            .map(|&(_, t)| t)
            .min();
        if let Some(t) = &self.test {
            let mut d = t.deadline;
            if let Some(e) = &t.engine
                && e.end.is_none()
            {
                d = d.min(e.next_report_at());
                if let Some(s) = e.next_send_at(now) {
                    d = d.min(s);
                }
            }
            at = Some(at.map_or(d, |a| a.min(d)));
        }
        at
    }

    /// First half of stopping: tells a running test's client
    /// (SERVER_TERMINATE), closes the control connection, resets the data
    /// connections. Poll the interface once so this goes out, then call
    /// [`Iperf3Server::shutdown`].
    pub fn stop(&mut self, sockets: &mut SocketSet<'static>) {
        if let Some(t) = &self.test {
            let s = sockets.get_mut::<tcp::Socket>(t.control);
            if s.may_send() {
                let _ = s.send_slice(&[State::ServerTerminate.byte()]);
            }
            s.close();
            let data = t.candidates.iter().map(|c| c.handle).chain(
                t.engine
                    .iter()
                    .flat_map(|e| e.streams.iter())
                    .chain(&t.streams)
                    .filter_map(|st| match st.transport {
                        Transport::Tcp(h) => Some(h),
                        Transport::Udp { .. } => None,
                    }),
            );
            for h in data {
                sockets.get_mut::<tcp::Socket>(h).abort();
            }
        }
    }

    /// Ends the running test (if any) and removes every socket.
    pub fn shutdown(&mut self, sockets: &mut SocketSet<'static>, out: &mut dyn Write) {
        if let Some(t) = self.test.take() {
            let _ = self.end_test(t, Err(Iperf3Error::Aborted), sockets, Instant::ZERO, out);
        }
        for h in self
            .listeners
            .drain(..)
            .chain(self.refusing.drain(..).map(|(h, _)| h))
        {
            sockets.remove(h);
        }
        for (h, _) in self.lingering.drain(..) {
            sockets.remove(h);
        }
        self.stopped = true;
    }

    /// Advances the server (accepting, running, ending tests). The server
    /// never opens connections, so unlike the client it needs no `Interface`.
    pub fn poll(
        &mut self,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        out: &mut dyn Write,
    ) -> ServerPoll {
        if self.stopped {
            // `-1`: the last connections finish closing before the server reports stopped.
            self.reap(sockets, now);
            return if self.lingering.is_empty() {
                ServerPoll::Stopped
            } else {
                ServerPoll::Busy
            };
        }
        self.reap(sockets, now);
        self.started_late = false;
        let mut busy = Vec::new();
        self.accept(sockets, now, &mut busy);
        let mut finished = None;
        if let Some(mut t) = self.test.take() {
            match self.step(&mut t, sockets, now, out) {
                Ok(None) => self.test = Some(t),
                Ok(Some(report)) => {
                    finished = Some(self.end_test(t, Ok(report), sockets, now, out))
                }
                Err(e) => finished = Some(self.end_test(t, Err(e), sockets, now, out)),
            }
        }
        // The last client's IPERF_DONE and the next client's SYN can arrive
        // in one batch of frames (a client started right after the last one
        // exited, the stack polled late): the test that just ended frees
        // the server for the first of them rather than refusing it as busy.
        if !busy.is_empty() && self.test.is_none() && !(finished.is_some() && self.cfg.one_off) {
            self.listeners.append(&mut busy);
            self.accept(sockets, now, &mut busy);
            self.started_late = self.test.is_some();
        }
        for h in busy {
            if let Some(ep) = sockets.get::<tcp::Socket>(h).remote_endpoint() {
                let _ = writeln!(out, "iperf3: refusing {ep}: a test is running");
            }
            self.refusing.push((h, now + STEP_TIMEOUT));
        }
        if finished.is_some() && self.cfg.one_off {
            for h in self
                .listeners
                .drain(..)
                .chain(self.refusing.drain(..).map(|(h, _)| h))
            {
                sockets.remove(h);
            }
            self.stopped = true;
        } else if let Err(e) = self.top_up(sockets) {
            let _ = writeln!(out, "{e}");
        }
        match finished {
            Some(r) => ServerPoll::Finished(r),
            None if self.test.is_some() => ServerPoll::Busy,
            None => ServerPoll::Idle,
        }
    }

    /// Removes lingering sockets that finished closing or ran out of time.
    fn reap(&mut self, sockets: &mut SocketSet<'static>, now: Instant) {
        self.lingering.retain(|&(h, deadline)| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            let done =
                matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) || now >= deadline;
            if done {
                s.abort();
                sockets.remove(h);
            }
            !done
        });
        let mut still = Vec::new();
        for (h, deadline) in self.refusing.drain(..) {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if s.state() == tcp::State::Established {
                // iperf_server_api.c answers a second client with ACCESS_DENIED.
                let _ = s.send_slice(&[State::AccessDenied.byte()]);
                s.close();
                self.lingering.push((h, now + LINGER));
            } else if s.state() == tcp::State::SynReceived && now < deadline {
                still.push((h, deadline));
            } else {
                s.abort();
                sockets.remove(h);
            }
        }
        self.refusing = still;
    }

    /// Takes connections off the listeners: the first becomes a test's
    /// control connection, data connections join the test in CREATE_STREAMS,
    /// anything else goes to `busy` (refused unless the test ends now).
    fn accept(
        &mut self,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        busy: &mut Vec<SocketHandle>,
    ) {
        let mut i = 0;
        while i < self.listeners.len() {
            let h = self.listeners[i];
            let state = sockets.get::<tcp::Socket>(h).state();
            if state == tcp::State::Listen {
                i += 1;
                continue;
            }
            self.listeners.swap_remove(i);
            match &mut self.test {
                None => {
                    let s = sockets.get_mut::<tcp::Socket>(h);
                    s.set_timeout(Some(Duration::from_secs(30)));
                    self.test = Some(Test {
                        control: h,
                        peer: s.remote_endpoint(),
                        phase: Phase::Cookie,
                        cookie_bytes: Vec::new(),
                        cookie: None,
                        reader: ControlReader::default(),
                        pending: Vec::new(),
                        params: None,
                        candidates: Vec::new(),
                        streams: Vec::new(),
                        udp: None,
                        engine: None,
                        local_results: None,
                        report: None,
                        deadline: now + STEP_TIMEOUT,
                    });
                }
                // Data connections, at most one per expected stream at a time
                // (a flood of connections must not grow the socket set).
                Some(t)
                    if t.phase == Phase::Streams
                        && t.params.as_ref().is_some_and(|p| {
                            p.protocol == Protocol::Tcp
                                && t.candidates.len() + t.streams.len() < p.parallel as usize
                        }) =>
                {
                    t.candidates.push(Candidate {
                        handle: h,
                        cookie: Vec::new(),
                    });
                }
                Some(_) => busy.push(h),
            }
        }
    }

    /// Ends a test: closes its sockets, prints the outcome, listens again.
    fn end_test(
        &mut self,
        t: Test,
        result: Result<Iperf3Report, Iperf3Error>,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        out: &mut dyn Write,
    ) -> Result<Iperf3Report, Iperf3Error> {
        match &result {
            Ok(report) => {
                let _ = writeln!(out, "{JSON_LINE_PREFIX}{}", report.to_json());
            }
            Err(e) => {
                let _ = writeln!(out, "{e}");
                let _ = writeln!(out, "{JSON_LINE_PREFIX}{}", error_json(Role::Server, e));
            }
        }
        let mut tcp_handles: Vec<SocketHandle> = Vec::new();
        tcp_handles.push(t.control);
        tcp_handles.extend(t.candidates.iter().map(|c| c.handle));
        let streams = t.engine.map(|e| e.streams).unwrap_or(t.streams);
        for st in &streams {
            if let Transport::Tcp(h) = st.transport {
                tcp_handles.push(h);
            }
        }
        for h in tcp_handles {
            // Graceful close (a SERVER_ERROR may still be queued); a peer that is
            // gone is cut off when the linger time is over.
            sockets.get_mut::<tcp::Socket>(h).close();
            self.lingering.push((h, now + LINGER));
        }
        if let Some(u) = t.udp {
            sockets.remove(u);
        }
        if let Err(e) = self.resize_listeners(sockets, DATA_SOCKET_BUFFER) {
            let _ = writeln!(out, "{e}");
        }
        self.tests += 1;
        self.last = Some(result.clone());
        if !self.cfg.one_off {
            self.banner(out);
        }
        result
    }

    /// Advances the test; `Ok(Some)` when it completed.
    fn step(
        &mut self,
        t: &mut Test,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        out: &mut dyn Write,
    ) -> Result<Option<Iperf3Report>, Iperf3Error> {
        let ctl = t.control;
        {
            let s = sockets.get::<tcp::Socket>(ctl);
            match s.state() {
                tcp::State::SynReceived => {
                    return if now >= t.deadline {
                        Err(Iperf3Error::Timeout { during: t.during() })
                    } else {
                        Ok(None)
                    };
                }
                tcp::State::Listen | tcp::State::Closed => {
                    return Err(Iperf3Error::PeerClosed { during: t.during() });
                }
                _ => {}
            }
        }
        flush(sockets, ctl, &mut t.pending);

        if t.phase == Phase::Cookie {
            let s = sockets.get_mut::<tcp::Socket>(ctl);
            let mut buf = [0u8; COOKIE_SIZE];
            let want = COOKIE_SIZE - t.cookie_bytes.len();
            if let Ok(n) = s.recv_slice(&mut buf[..want]) {
                t.cookie_bytes.extend_from_slice(&buf[..n]);
            }
            if t.cookie_bytes.len() == COOKIE_SIZE {
                let mut c = [0u8; COOKIE_SIZE];
                c.copy_from_slice(&t.cookie_bytes);
                let printable = c[..COOKIE_SIZE - 1].iter().all(|b| b.is_ascii_graphic());
                if !printable || c[COOKIE_SIZE - 1] != 0 {
                    return Err(Iperf3Error::BadCookie);
                }
                t.cookie = Some(Cookie(c));
                if let Some(p) = t.peer {
                    let _ = writeln!(out, "Accepted connection from {}, port {}", p.addr, p.port);
                }
                t.pending.push(State::ParamExchange.byte());
                flush(sockets, ctl, &mut t.pending);
                t.phase = Phase::Params;
                t.deadline = now + STEP_TIMEOUT;
            }
        }

        // Control input.
        loop {
            let expect = match t.phase {
                Phase::Cookie | Phase::Streams => break,
                Phase::Params => Expect::Json {
                    max: MAX_PARAMS_JSON,
                },
                Phase::ClientResults => Expect::Json {
                    max: MAX_RESULTS_JSON,
                },
                Phase::Running | Phase::AwaitDone => Expect::State,
            };
            read_some(sockets, ctl, t.reader.wanted(expect).max(1), &mut t.reader);
            let item = match t.reader.next(expect) {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => return Err(Iperf3Error::Control(e)),
            };
            t.deadline = now + STEP_TIMEOUT;
            match (t.phase, item) {
                (Phase::Params, ControlItem::Json(text)) => {
                    let params = match Params::from_json(&text) {
                        Ok(p) => p,
                        Err(e) => {
                            let ierrno = match e {
                                ParamsError::BadField("parallel") => IE_NUM_STREAMS,
                                ParamsError::BadField("len") => IE_BLOCK_SIZE,
                                ParamsError::Unsupported(_) => IE_UNIMP,
                                _ => IE_RECV_PARAMS,
                            };
                            t.pending.push(State::ServerError.byte());
                            t.pending.extend_from_slice(&ierrno.to_be_bytes());
                            t.pending.extend_from_slice(&0i32.to_be_bytes());
                            flush(sockets, ctl, &mut t.pending);
                            return Err(Iperf3Error::Params(e));
                        }
                    };
                    if params.protocol == Protocol::Udp {
                        let mut u = new_udp_socket(1024, 2 * 1024 * 1024);
                        u.bind(self.local())
                            .map_err(|e| Iperf3Error::Socket(e.to_string()))?;
                        t.udp = Some(sockets.add(u));
                    }
                    // The data connections come from the listeners: size their
                    // windows for this many streams.
                    self.resize_listeners(sockets, super::stream_receive_buffer(params.parallel))?;
                    t.params = Some(params);
                    t.pending.push(State::CreateStreams.byte());
                    flush(sockets, ctl, &mut t.pending);
                    t.phase = Phase::Streams;
                }
                (Phase::Running, ControlItem::State(State::TestEnd)) => {
                    let Some(engine) = &mut t.engine else { break };
                    engine.finish(now, out);
                    // iperf3's server closes the data connections at TEST_END.
                    // Sending, the close is graceful: a receiving client blocked
                    // in a read of a partial block sees the end of the stream
                    // instead of waiting for its timeout. Receiving, Linux answers
                    // that close (data unread, or more arriving after it) with a
                    // reset (RFC 2525 2.17), so the client's last data stops at
                    // once: it must not keep flowing for a window's worth through
                    // the results exchange, the client's IPERF_DONE and the next
                    // client's connection (a frame of theirs dropped among it
                    // costs a retransmission timeout, and that next client finds
                    // the server still busy with this test).
                    for st in &engine.streams {
                        if let Transport::Tcp(h) = st.transport {
                            let s = sockets.get_mut::<tcp::Socket>(h);
                            if engine.sending && !s.can_recv() {
                                s.close();
                            } else {
                                s.abort();
                            }
                        }
                    }
                    t.pending.push(State::ExchangeResults.byte());
                    flush(sockets, ctl, &mut t.pending);
                    t.phase = Phase::ClientResults;
                }
                (Phase::ClientResults, ControlItem::Json(text)) => {
                    let peer = Results::from_json(&text).map_err(Iperf3Error::Results)?;
                    let Some(engine) = &t.engine else { break };
                    let ids: Vec<u32> = engine.streams.iter().map(|s| s.id).collect();
                    if peer.streams.len() != ids.len()
                        || !peer.streams.iter().all(|s| ids.contains(&s.id))
                    {
                        return Err(Iperf3Error::Results(super::ResultsError::BadField("id")));
                    }
                    let local = engine.results(now);
                    frame_json(&local.to_json(), &mut t.pending);
                    t.pending.push(State::DisplayResults.byte());
                    flush(sockets, ctl, &mut t.pending);
                    let reverse = t.params.as_ref().is_some_and(|p| p.reverse);
                    t.report = Some(summarize(Role::Server, reverse, engine, &local, &peer, out));
                    t.local_results = Some(local);
                    t.phase = Phase::AwaitDone;
                }
                (Phase::AwaitDone, ControlItem::State(State::IperfDone)) => {
                    return Ok(t.report.take());
                }
                (_, ControlItem::State(State::ClientTerminate)) => {
                    return Err(Iperf3Error::Terminated);
                }
                (_, ControlItem::State(s)) => {
                    return Err(Iperf3Error::UnexpectedState {
                        during: t.during(),
                        state: s.byte() as i8,
                    });
                }
                (_, ControlItem::ServerError { .. }) => {
                    return Err(Iperf3Error::UnexpectedState {
                        during: t.during(),
                        state: -2,
                    });
                }
                (_, ControlItem::Json(_)) => {
                    return Err(Iperf3Error::UnexpectedState {
                        during: t.during(),
                        state: 0,
                    });
                }
            }
        }

        {
            let s = sockets.get::<tcp::Socket>(ctl);
            if !s.may_recv() && !s.can_recv() {
                if t.phase == Phase::AwaitDone {
                    // The client may close without IPERF_DONE once it has the results.
                    return Ok(t.report.take());
                }
                return Err(Iperf3Error::PeerClosed { during: t.during() });
            }
        }

        if t.phase == Phase::Streams {
            self.accept_streams(t, sockets, now, out)?;
        }
        if let Some(engine) = &mut t.engine {
            if engine.stream_lost(sockets) {
                return Err(Iperf3Error::StreamLost);
            }
            engine.pump(sockets, now);
            engine.report(now, out);
        }
        if now >= t.deadline {
            return Err(Iperf3Error::Timeout { during: t.during() });
        }
        Ok(None)
    }

    fn accept_streams(
        &mut self,
        t: &mut Test,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        out: &mut dyn Write,
    ) -> Result<(), Iperf3Error> {
        let Some(params) = t.params.clone() else {
            return Ok(());
        };
        let Some(cookie) = t.cookie else {
            return Ok(());
        };
        let wanted = params.parallel as usize;
        match params.protocol {
            Protocol::Tcp => {
                let mut i = 0;
                while i < t.candidates.len() {
                    let c = &mut t.candidates[i];
                    let s = sockets.get_mut::<tcp::Socket>(c.handle);
                    let mut buf = [0u8; COOKIE_SIZE];
                    let want = COOKIE_SIZE - c.cookie.len();
                    if let Ok(n) = s.recv_slice(&mut buf[..want]) {
                        c.cookie.extend_from_slice(&buf[..n]);
                    }
                    if c.cookie.len() < COOKIE_SIZE {
                        if !s.is_open() || s.state() == tcp::State::Listen {
                            let h = t.candidates.swap_remove(i).handle;
                            sockets.get_mut::<tcp::Socket>(h).abort();
                            self.lingering.push((h, now));
                            continue;
                        }
                        i += 1;
                        continue;
                    }
                    let c = t.candidates.swap_remove(i);
                    let s = sockets.get_mut::<tcp::Socket>(c.handle);
                    if c.cookie[..] != cookie.0[..] {
                        // iperf_tcp_accept answers a stranger's data connection with ACCESS_DENIED.
                        let _ = s.send_slice(&[State::AccessDenied.byte()]);
                        s.close();
                        self.lingering.push((c.handle, now + LINGER));
                        return Err(Iperf3Error::BadCookie);
                    }
                    if t.streams.len() >= wanted {
                        s.abort();
                        self.lingering.push((c.handle, now));
                        continue;
                    }
                    s.set_timeout(Some(Duration::from_secs(30)));
                    let st = Stream::new(t.streams.len(), Transport::Tcp(c.handle));
                    if let (Some(l), Some(r)) = (s.local_endpoint(), s.remote_endpoint()) {
                        let _ = writeln!(
                            out,
                            "[{:>3}] local {} port {} connected to {} port {}",
                            st.label, l.addr, l.port, r.addr, r.port
                        );
                    }
                    t.streams.push(st);
                }
            }
            Protocol::Udp => {
                let Some(u) = t.udp else { return Ok(()) };
                let s = sockets.get_mut::<udp::Socket>(u);
                let mut hello: Vec<IpEndpoint> = Vec::new();
                while let Ok((data, meta)) = s.recv() {
                    if is_udp_connect(data) {
                        hello.push(meta.endpoint);
                    }
                }
                for ep in hello {
                    let known = t.streams.iter().any(
                        |st| matches!(st.transport, Transport::Udp { remote, .. } if remote == ep),
                    );
                    // A repeated hello (the reply was lost) is answered again.
                    let _ = s.send_slice(&UDP_CONNECT_REPLY.to_le_bytes(), ep);
                    if known || t.streams.len() >= wanted {
                        continue;
                    }
                    let st = Stream::new(
                        t.streams.len(),
                        Transport::Udp {
                            handle: u,
                            remote: ep,
                        },
                    );
                    let _ = writeln!(
                        out,
                        "[{:>3}] local port {} connected to {} port {}",
                        st.label, self.cfg.port, ep.addr, ep.port
                    );
                    t.streams.push(st);
                }
            }
        }
        if t.streams.len() == wanted {
            t.pending.push(State::TestStart.byte());
            t.pending.push(State::TestRunning.byte());
            flush(sockets, t.control, &mut t.pending);
            let streams = core::mem::take(&mut t.streams);
            let engine = Engine::new(
                params.protocol,
                params.reverse,
                params.len as usize,
                params.bandwidth,
                params.udp_counters_64bit,
                streams,
                now,
            );
            engine.header(out);
            t.engine = Some(engine);
            t.phase = Phase::Running;
            // The client ends the test after `time` seconds (0: when it
            // likes, as iperf3's -t 0); allow for slack.
            let time = if params.time == 0 {
                MAX_TIME
            } else {
                params.time
            };
            t.deadline = now + Duration::from_secs(u64::from(time)) + STEP_TIMEOUT;
        }
        Ok(())
    }
}
