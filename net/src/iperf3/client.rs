//! `iperf3 -c`: the client state machine (iperf_client_api.c's flow).
//!
//! connect control → cookie → PARAM_EXCHANGE: send parameters →
//! CREATE_STREAMS: open the data streams one after the other (so both ends
//! number them alike) → TEST_START, TEST_RUNNING: move data for `-t` seconds →
//! send TEST_END → EXCHANGE_RESULTS: send ours, read the server's →
//! DISPLAY_RESULTS: print the summary, send IPERF_DONE, close.

use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt::Write;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use super::args::ClientConfig;
use super::engine::{Engine, Stream, Transport};
use super::proto::{
    COOKIE_SIZE, ControlItem, ControlReader, Cookie, Expect, MAX_RESULTS_JSON, Params, Protocol,
    Results, State, UDP_CONNECT_MSG, XorShift, frame_json, is_udp_connect_reply,
};
use super::report::{Iperf3Report, JSON_LINE_PREFIX, Role, error_json, summarize};
use super::{
    CONTROL_SOCKET_BUFFER, ClientPoll, DATA_SOCKET_BUFFER, Iperf3Error, STEP_TIMEOUT, flush,
    new_tcp_socket, new_udp_socket, read_some,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the control connection.
    Connect,
    /// Reading control state bytes (and doing what they start).
    Control,
    /// Reading the server's results object.
    PeerResults,
    /// IPERF_DONE queued: flushing and closing before reporting.
    Closing,
    Finished,
}

/// A data stream being opened.
#[derive(Debug)]
struct Opening {
    transport: Transport,
    /// UDP: when the connect datagram was last sent, and how often.
    sent_at: Option<Instant>,
    tries: u32,
}

#[derive(Debug)]
pub struct Iperf3Client {
    cfg: ClientConfig,
    cookie: Cookie,
    rng: XorShift,
    phase: Phase,
    control: Option<SocketHandle>,
    reader: ControlReader,
    pending: Vec<u8>,
    deadline: Instant,
    creating: bool,
    opening: Option<Opening>,
    ready: Vec<Stream>,
    engine: Option<Engine>,
    local_results: Option<Results>,
    peer_results: Option<Results>,
    /// Every socket this client added, removed when it finishes.
    owned: Vec<SocketHandle>,
    outcome: Option<Result<Iperf3Report, Iperf3Error>>,
}

impl Iperf3Client {
    /// Starts a test: opens the control connection. `seed` feeds the cookie
    /// and the local port choice (any varying number: a clock, a counter).
    pub fn start(
        cfg: ClientConfig,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        seed: u64,
        out: &mut dyn Write,
    ) -> Iperf3Client {
        let mut c = Iperf3Client {
            cookie: Cookie::from_seed(seed),
            rng: XorShift::new(seed.rotate_left(17) ^ 0x5eed),
            phase: Phase::Connect,
            control: None,
            reader: ControlReader::default(),
            pending: Vec::new(),
            deadline: now + STEP_TIMEOUT,
            creating: false,
            opening: None,
            ready: Vec::new(),
            engine: None,
            local_results: None,
            peer_results: None,
            owned: Vec::new(),
            outcome: None,
            cfg,
        };
        let _ = writeln!(
            out,
            "Connecting to host {}, port {}",
            c.cfg.server, c.cfg.port
        );
        match c.open_tcp(iface, sockets, CONTROL_SOCKET_BUFFER, CONTROL_SOCKET_BUFFER) {
            Ok(h) => c.control = Some(h),
            Err(e) => c.fail(e, sockets, out),
        }
        c
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// A fresh local endpoint: a dynamic port, on the `-B` address if
    /// one was given.
    fn local(&mut self) -> IpListenEndpoint {
        IpListenEndpoint {
            addr: self.cfg.bind,
            port: 49152 + (self.rng.next() % 16384) as u16,
        }
    }

    fn open_tcp(
        &mut self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        rx: usize,
        tx: usize,
    ) -> Result<SocketHandle, Iperf3Error> {
        let mut s = new_tcp_socket(rx, tx);
        s.set_timeout(Some(Duration::from_secs(30)));
        let remote = IpEndpoint::new(self.cfg.server, self.cfg.port);
        let local = self.local();
        s.connect(iface.context(), remote, local)
            .map_err(|e| Iperf3Error::Socket(e.to_string()))?;
        let h = sockets.add(s);
        self.owned.push(h);
        Ok(h)
    }

    fn open_udp(&mut self, sockets: &mut SocketSet<'static>) -> Result<SocketHandle, Iperf3Error> {
        let mut s = new_udp_socket(512, 1024 * 1024);
        let local = self.local();
        s.bind(local)
            .map_err(|e| Iperf3Error::Socket(e.to_string()))?;
        let h = sockets.add(s);
        self.owned.push(h);
        Ok(h)
    }

    /// When the client next needs a poll without network input.
    pub fn poll_at(&self, now: Instant) -> Option<Instant> {
        match self.phase {
            Phase::Finished => None,
            _ => {
                let mut at = self.deadline;
                if let Some(e) = &self.engine
                    && e.end.is_none()
                {
                    at = at.min(e.next_report_at());
                    if let Some(end) = end_at(self.cfg.time, e.start) {
                        at = at.min(end);
                    }
                    if let Some(s) = e.next_send_at(now) {
                        at = at.min(s);
                    }
                }
                if let Some(t) = self.opening.as_ref().and_then(|o| o.sent_at) {
                    at = at.min(t + Duration::from_secs(1));
                }
                Some(at)
            }
        }
    }

    /// The outcome once finished.
    pub fn outcome(&self) -> Option<&Result<Iperf3Report, Iperf3Error>> {
        self.outcome.as_ref()
    }

    /// Stops the test now: sockets are released, the error line printed.
    /// First half of stopping a running test: tells the server
    /// (CLIENT_TERMINATE, as iperf3 does on interrupt), closes the control
    /// connection and resets the data connections. Poll the interface once
    /// so this goes out, then call [`Iperf3Client::abort`].
    pub fn stop(&mut self, sockets: &mut SocketSet<'static>) {
        if self.phase == Phase::Finished {
            return;
        }
        for &h in &self.owned {
            if let smoltcp::socket::Socket::Tcp(s) = sockets.get_mut::<smoltcp::socket::Socket>(h) {
                if Some(h) == self.control {
                    if s.may_send() {
                        let _ = s.send_slice(&[State::ClientTerminate.byte()]);
                    }
                    s.close();
                } else {
                    s.abort();
                }
            }
        }
    }

    /// Ends the test now: sockets are removed, the error line printed.
    pub fn abort(&mut self, sockets: &mut SocketSet<'static>, out: &mut dyn Write) -> Iperf3Error {
        if self.phase != Phase::Finished {
            self.fail(Iperf3Error::Aborted, sockets, out);
        }
        match &self.outcome {
            Some(Err(e)) => e.clone(),
            _ => Iperf3Error::Aborted,
        }
    }

    fn fail(&mut self, e: Iperf3Error, sockets: &mut SocketSet<'static>, out: &mut dyn Write) {
        let _ = writeln!(out, "{e}");
        let _ = writeln!(out, "{JSON_LINE_PREFIX}{}", error_json(Role::Client, &e));
        self.release(sockets, true);
        self.outcome = Some(Err(e));
        self.phase = Phase::Finished;
    }

    fn release(&mut self, sockets: &mut SocketSet<'static>, abort: bool) {
        for h in self.owned.drain(..) {
            // Sockets were added as TCP or UDP; remove() returns either.
            match sockets.remove(h) {
                smoltcp::socket::Socket::Tcp(mut s) if abort => s.abort(),
                _ => {}
            }
        }
        self.control = None;
    }

    pub fn poll(
        &mut self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        out: &mut dyn Write,
    ) -> ClientPoll {
        if self.phase != Phase::Finished
            && let Err(e) = self.step(iface, sockets, now, out)
        {
            self.fail(e, sockets, out);
        }
        match &self.outcome {
            Some(o) if self.phase == Phase::Finished => ClientPoll::Done(o.clone()),
            _ => ClientPoll::Running,
        }
    }

    fn step(
        &mut self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        out: &mut dyn Write,
    ) -> Result<(), Iperf3Error> {
        let Some(ctl) = self.control else {
            return Err(Iperf3Error::Socket("no control socket".into()));
        };
        let state = sockets.get::<tcp::Socket>(ctl).state();
        if self.phase == Phase::Connect {
            match state {
                tcp::State::Established => {
                    self.pending.extend_from_slice(&self.cookie.0);
                    self.phase = Phase::Control;
                    self.deadline = now + STEP_TIMEOUT;
                }
                tcp::State::Closed | tcp::State::TimeWait | tcp::State::Closing => {
                    return Err(Iperf3Error::Connect("connection refused".into()));
                }
                _ if now >= self.deadline => {
                    return Err(Iperf3Error::Connect("timed out".into()));
                }
                _ => return Ok(()),
            }
        }
        flush(sockets, ctl, &mut self.pending);

        if self.phase == Phase::Closing {
            let s = sockets.get_mut::<tcp::Socket>(ctl);
            // Drain whatever the server still sends; close once IPERF_DONE is
            // queued, finish when the server has acknowledged our FIN.
            while s.recv(|b| (b.len(), ())).is_ok() && s.can_recv() {}
            if self.pending.is_empty() {
                s.close();
            }
            let closed = matches!(
                s.state(),
                tcp::State::FinWait2 | tcp::State::TimeWait | tcp::State::Closed
            );
            if closed || now >= self.deadline {
                self.release(sockets, false);
                self.phase = Phase::Finished;
            }
            return Ok(());
        }

        // Control input.
        loop {
            let expect = match self.phase {
                Phase::PeerResults => Expect::Json {
                    max: MAX_RESULTS_JSON,
                },
                _ => Expect::State,
            };
            let wanted = self.reader.wanted(expect).max(1);
            read_some(sockets, ctl, wanted, &mut self.reader);
            let item = self.reader.next(expect).map_err(Iperf3Error::Control)?;
            let Some(item) = item else { break };
            self.on_control(item, iface, sockets, now, out)?;
            if self.phase == Phase::Closing {
                return Ok(());
            }
        }
        let s = sockets.get::<tcp::Socket>(ctl);
        if !s.may_recv() && !s.can_recv() {
            return Err(Iperf3Error::PeerClosed {
                during: self.during(),
            });
        }

        if self.creating {
            self.open_streams(iface, sockets, now, out)?;
        }
        if let Some(engine) = &mut self.engine {
            if engine.stream_lost(sockets) {
                return Err(Iperf3Error::StreamLost);
            }
            engine.pump(sockets, now);
            engine.report(now, out);
            if engine.end.is_none()
                && end_at(self.cfg.time, engine.start).is_some_and(|end| now >= end)
            {
                engine.finish(now, out);
                self.pending.push(State::TestEnd.byte());
                flush(sockets, ctl, &mut self.pending);
                self.deadline = now + STEP_TIMEOUT;
            }
        }
        let waiting_for_peer = self.engine.as_ref().is_none_or(|e| e.end.is_some());
        if waiting_for_peer && now >= self.deadline {
            return Err(Iperf3Error::Timeout {
                during: self.during(),
            });
        }
        Ok(())
    }

    fn during(&self) -> &'static str {
        match (&self.phase, &self.engine) {
            (Phase::Connect, _) => "connect",
            (Phase::PeerResults, _) => "the results exchange",
            (_, Some(e)) if e.end.is_some() => "the results exchange",
            (_, Some(_)) => "the test",
            _ if self.creating => "stream setup",
            _ => "the parameter exchange",
        }
    }

    fn on_control(
        &mut self,
        item: ControlItem,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        out: &mut dyn Write,
    ) -> Result<(), Iperf3Error> {
        self.deadline = now + STEP_TIMEOUT;
        let state = match item {
            ControlItem::ServerError { ierrno, errno } => {
                return Err(Iperf3Error::ServerError { ierrno, errno });
            }
            ControlItem::Json(text) => {
                let peer = Results::from_json(&text).map_err(Iperf3Error::Results)?;
                let local = self.local_results.as_ref().map_or(0, |r| r.streams.len());
                let ours = |id: u32| self.ready_ids().contains(&id);
                if peer.streams.len() != local || !peer.streams.iter().all(|s| ours(s.id)) {
                    return Err(Iperf3Error::Results(super::ResultsError::BadField("id")));
                }
                self.peer_results = Some(peer);
                self.phase = Phase::Control;
                return Ok(());
            }
            ControlItem::State(s) => s,
        };
        let unexpected = Iperf3Error::UnexpectedState {
            during: self.during(),
            state: state.byte() as i8,
        };
        match state {
            State::ParamExchange if self.engine.is_none() && !self.creating => {
                let params = Params {
                    protocol: self.cfg.protocol,
                    time: self.cfg.time,
                    parallel: self.cfg.parallel,
                    reverse: self.cfg.reverse,
                    len: self.cfg.len,
                    bandwidth: self.cfg.bandwidth,
                    udp_counters_64bit: false,
                };
                frame_json(&params.to_json(), &mut self.pending);
            }
            State::CreateStreams
                if self.engine.is_none() && !self.creating && self.ready.is_empty() =>
            {
                self.creating = true;
                self.open_streams(iface, sockets, now, out)?;
            }
            State::TestStart if self.engine.is_none() => {}
            State::TestRunning if self.engine.is_none() => {
                if self.creating {
                    // The server has all streams: the last UDP connect reply
                    // may sit unread in its socket.
                    self.open_streams(iface, sockets, now, out)?;
                }
                if self.creating || self.ready.len() != self.cfg.parallel as usize {
                    return Err(unexpected);
                }
                let streams = core::mem::take(&mut self.ready);
                let engine = Engine::new(
                    self.cfg.protocol,
                    !self.cfg.reverse,
                    self.cfg.len as usize,
                    self.cfg.bandwidth,
                    false,
                    streams,
                    now,
                );
                engine.header(out);
                self.engine = Some(engine);
            }
            State::ExchangeResults if self.engine.as_ref().is_some_and(|e| e.end.is_some()) => {
                let engine = self.engine.as_ref().ok_or(unexpected.clone())?;
                let results = engine.results(now);
                frame_json(&results.to_json(), &mut self.pending);
                self.local_results = Some(results);
                self.phase = Phase::PeerResults;
            }
            State::DisplayResults if self.peer_results.is_some() => {
                let (Some(engine), Some(local), Some(peer)) =
                    (&self.engine, &self.local_results, &self.peer_results)
                else {
                    return Err(unexpected);
                };
                let report = summarize(Role::Client, self.cfg.reverse, engine, local, peer, out);
                let _ = writeln!(out);
                let _ = writeln!(out, "iperf Done.");
                let _ = writeln!(out, "{JSON_LINE_PREFIX}{}", report.to_json());
                self.outcome = Some(Ok(report));
                self.pending.push(State::IperfDone.byte());
                if let Some(h) = self.control {
                    flush(sockets, h, &mut self.pending);
                }
                for h in self.owned.clone() {
                    if Some(h) != self.control
                        && let smoltcp::socket::Socket::Tcp(s) =
                            sockets.get_mut::<smoltcp::socket::Socket>(h)
                    {
                        s.close();
                    }
                }
                self.phase = Phase::Closing;
                self.deadline = now + Duration::from_secs(2);
            }
            State::AccessDenied => return Err(Iperf3Error::AccessDenied),
            State::ServerTerminate => return Err(Iperf3Error::Terminated),
            _ => return Err(unexpected),
        }
        Ok(())
    }

    fn ready_ids(&self) -> Vec<u32> {
        match &self.engine {
            Some(e) => e.streams.iter().map(|s| s.id).collect(),
            None => self.ready.iter().map(|s| s.id).collect(),
        }
    }

    /// Opens data streams one at a time: the next starts when the previous
    /// is connected and has its cookie (TCP) or the connect reply (UDP).
    fn open_streams(
        &mut self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        out: &mut dyn Write,
    ) -> Result<(), Iperf3Error> {
        loop {
            if self.ready.len() == self.cfg.parallel as usize {
                self.creating = false;
                return Ok(());
            }
            let Some(open) = &mut self.opening else {
                let transport = match self.cfg.protocol {
                    Protocol::Tcp => Transport::Tcp(self.open_tcp(
                        iface,
                        sockets,
                        super::stream_receive_buffer(self.cfg.parallel),
                        DATA_SOCKET_BUFFER,
                    )?),
                    Protocol::Udp => Transport::Udp {
                        handle: self.open_udp(sockets)?,
                        remote: IpEndpoint::new(self.cfg.server, self.cfg.port),
                    },
                };
                self.opening = Some(Opening {
                    transport,
                    sent_at: None,
                    tries: 0,
                });
                continue;
            };
            match open.transport {
                Transport::Tcp(h) => {
                    let s = sockets.get_mut::<tcp::Socket>(h);
                    match s.state() {
                        tcp::State::Established => {
                            // The cookie fits the fresh send buffer whole.
                            if s.send_slice(&self.cookie.0) != Ok(COOKIE_SIZE) {
                                return Err(Iperf3Error::Socket(
                                    "cannot send the stream cookie".into(),
                                ));
                            }
                        }
                        tcp::State::Closed | tcp::State::TimeWait => {
                            return Err(Iperf3Error::Connect("data connection refused".into()));
                        }
                        _ => return Ok(()),
                    }
                }
                Transport::Udp { handle, remote } => {
                    let s = sockets.get_mut::<udp::Socket>(handle);
                    let mut replied = false;
                    while let Ok((data, meta)) = s.recv() {
                        if meta.endpoint == remote && is_udp_connect_reply(data) {
                            replied = true;
                            break;
                        }
                    }
                    if !replied {
                        let resend = open
                            .sent_at
                            .is_none_or(|t| now >= t + Duration::from_secs(1));
                        if resend {
                            if open.tries >= 5 {
                                return Err(Iperf3Error::Timeout {
                                    during: "UDP stream setup",
                                });
                            }
                            if s.send_slice(&UDP_CONNECT_MSG.to_le_bytes(), remote).is_ok() {
                                open.sent_at = Some(now);
                                open.tries += 1;
                            }
                        }
                        return Ok(());
                    }
                }
            }
            let transport = open.transport;
            self.opening = None;
            let st = Stream::new(self.ready.len(), transport);
            // iperf3's "connected" line for each stream.
            let (local, port) = match transport {
                Transport::Tcp(h) => match sockets.get::<tcp::Socket>(h).local_endpoint() {
                    Some(l) => (Some(l.addr), l.port),
                    None => (None, 0),
                },
                Transport::Udp { handle, .. } => {
                    (None, sockets.get::<udp::Socket>(handle).endpoint().port)
                }
            };
            let _ = write!(out, "[{:>3}] local ", st.label);
            if let Some(a) = local {
                let _ = write!(out, "{a} ");
            }
            let _ = writeln!(
                out,
                "port {port} connected to {} port {}",
                self.cfg.server, self.cfg.port
            );
            self.ready.push(st);
        }
    }
}

/// When a test of `time` seconds that started at `start` ends; `-t 0`:
/// never (it runs until stopped).
fn end_at(time: u32, start: Instant) -> Option<Instant> {
    (time != 0).then(|| start + secs(time))
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}
