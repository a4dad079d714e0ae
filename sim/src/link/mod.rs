//! Links: what the model's port is cabled to, for front ends that carry
//! frames beyond the process (the vfio-user server, and hosted tests that
//! talk to stock tools).
//!
//! - [`LinkSpec`]: `none`, `sink`, `tap:IFNAME` (feature `tap`), `unix:PATH`
//!   (to another model) or `qemu:PATH` (a stock QEMU NIC connects:
//!   [`qemu`]), parsed from the command line; [`LinkSpec::open`] makes a
//!   [`Link`].
//! - `sink` is a cable whose far end takes every frame at line rate: the
//!   port's frames are counted as written and released at once (no copy,
//!   no thread, no system call), the carrier is up. Benchmarks use it so
//!   that a test peer (a TAP, one write(2) per frame on a shared CPU)
//!   does not set the packet rate: a real port drains 148 Mpps.
//! - [`LinkPort`]: a running link. Frames the port transmits are queued
//!   with [`LinkPort::send_batch`] (never blocks: a full queue drops and
//!   counts) and written by the link's writer thread; frames arriving from
//!   the link are handed by its reader thread to the front end's
//!   [`Deliver`] callback (which puts them into the model's receive path).
//! - [`pcap`]: capture of both directions; front ends record where they
//!   hand frames to and from the link.
#![deny(unsafe_code)]

pub mod pcap;
pub mod qemu;
#[cfg(feature = "tap")]
#[allow(unsafe_code)]
pub mod tap;
pub mod unix;

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

pub use pcap::{Direction, Limits as PcapLimits, Pcap};
pub use qemu::QemuWire;
#[cfg(feature = "tap")]
pub use tap::TapDevice;
pub use unix::UnixWire;

/// Frames waiting for the writer thread; more are dropped and counted.
pub const QUEUE_MAX: usize = 2048;

/// A link as named on a command line: `none`, `tap:IFNAME`, `unix:PATH`,
/// `qemu:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSpec {
    None,
    Sink,
    Tap(String),
    Unix(PathBuf),
    Qemu(PathBuf),
}

impl std::str::FromStr for LinkSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<LinkSpec, String> {
        match s.split_once(':') {
            None if s == "none" => Ok(LinkSpec::None),
            None if s == "sink" => Ok(LinkSpec::Sink),
            Some(("tap", name)) => {
                #[cfg(feature = "tap")]
                tap::check_name(name).map_err(|e| e.to_string())?;
                #[cfg(not(feature = "tap"))]
                if name.is_empty() {
                    return Err("tap: needs an interface name".into());
                }
                Ok(LinkSpec::Tap(name.to_string()))
            }
            Some(("unix", path)) if !path.is_empty() => Ok(LinkSpec::Unix(PathBuf::from(path))),
            Some(("unix", _)) => Err("unix: needs a socket path".into()),
            Some(("qemu", path)) if !path.is_empty() => Ok(LinkSpec::Qemu(PathBuf::from(path))),
            Some(("qemu", _)) => Err("qemu: needs a socket path".into()),
            _ => Err(format!(
                "'{s}' is not a wire (tap:IFNAME, unix:PATH, qemu:PATH, sink or none)"
            )),
        }
    }
}

impl std::fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkSpec::None => f.write_str("none"),
            LinkSpec::Sink => f.write_str("sink"),
            LinkSpec::Tap(name) => write!(f, "tap:{name}"),
            LinkSpec::Unix(path) => write!(f, "unix:{}", path.display()),
            LinkSpec::Qemu(path) => write!(f, "qemu:{}", path.display()),
        }
    }
}

impl LinkSpec {
    /// Opens the link (the TAP is opened or created now, the QEMU wire's
    /// socket listens now; the unix wire connects later, on its own
    /// thread).
    pub fn open(&self) -> io::Result<Link> {
        match self {
            LinkSpec::None => Ok(Link::None),
            LinkSpec::Sink => Ok(Link::Sink),
            #[cfg(feature = "tap")]
            LinkSpec::Tap(name) => Ok(Link::Tap(TapDevice::open(name)?)),
            #[cfg(not(feature = "tap"))]
            LinkSpec::Tap(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "built without the `tap` feature",
            )),
            LinkSpec::Unix(path) => Ok(Link::Unix(UnixWire { path: path.clone() })),
            LinkSpec::Qemu(path) => Ok(Link::Qemu(qemu::QemuListener::bind(&QemuWire {
                path: path.clone(),
            })?)),
        }
    }
}

/// An opened link.
#[derive(Debug)]
pub enum Link {
    /// No cable: transmitted frames are counted and dropped.
    None,
    /// A far end that takes every frame: counted as written, released.
    Sink,
    #[cfg(feature = "tap")]
    Tap(TapDevice),
    Unix(UnixWire),
    /// Listening for QEMU's stream netdev.
    Qemu(qemu::QemuListener),
}

impl Link {
    fn describe(&self) -> String {
        match self {
            Link::None => "none".into(),
            Link::Sink => "sink".into(),
            #[cfg(feature = "tap")]
            Link::Tap(t) => format!("tap:{}", t.name()),
            Link::Unix(w) => format!("unix:{}", w.path.display()),
            Link::Qemu(l) => format!("qemu:{}", l.path().display()),
        }
    }
}

/// Counters of a running link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames written to the link.
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Dropped: the writer's queue was full.
    pub tx_dropped_queue_full: u64,
    /// Dropped: no peer connected (unix wire) or no cable (`none`).
    pub tx_dropped_no_peer: u64,
    /// Dropped: the link refused the write (e.g. TAP interface down).
    pub tx_errors: u64,
    /// Frames read from the link and delivered to the port.
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Unix or QEMU wire: connections made (the first and every
    /// reconnection).
    pub connects: u64,
    /// Unix or QEMU wire: a peer is connected now (always true for a TAP).
    pub connected: bool,
    /// Unix wire: carrier changes the peer announced (its cable pulled or
    /// plugged back).
    pub peer_carrier_changes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    tx_frames: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped_queue_full: AtomicU64,
    tx_dropped_no_peer: AtomicU64,
    tx_errors: AtomicU64,
    rx_frames: AtomicU64,
    rx_bytes: AtomicU64,
    connects: AtomicU64,
    connected: AtomicBool,
    carrier_rx: AtomicU64,
}

/// Puts a frame that arrived from the link into the port's receive path.
pub type Deliver = Box<dyn FnMut(&[u8]) + Send>;
/// The peer's cable went up (true) or down: the port follows.
pub type OnCarrier = Box<dyn FnMut(bool) + Send>;

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Vec<u8>>,
    /// Emptied buffers from the writer, reused for the next frames.
    spare: Vec<Vec<u8>>,
}

/// What the caller and the link's threads share.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    queue: Mutex<Queue>,
    ready: Condvar,
    counters: Counters,
    /// Unix or QEMU wire: the stream the writer writes to, while connected.
    stream: Mutex<Option<Arc<std::os::unix::net::UnixStream>>>,
    /// Unix wire: a carrier record to send (0 none, 1 down, 2 up).
    carrier_out: AtomicU8,
    /// Our own cable is pulled (told to each new peer).
    local_down: AtomicBool,
}

impl Shared {
    /// Queues a carrier record for the writer.
    fn announce(&self, up: bool) {
        let q = lock(&self.queue);
        self.carrier_out.store(1 + u8::from(up), Ordering::Release);
        drop(q);
        self.ready.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running link: a writer thread (frames to the link) and, except for
/// `none`, a reader thread (frames from it). Dropping it stops both.
pub struct LinkPort {
    shared: Arc<Shared>,
    describe: String,
    /// `sink`: frames are counted in [`LinkPort::send_batch`], not queued.
    sink: bool,
    /// Wakes a TAP reader blocked in poll.
    #[cfg(feature = "tap")]
    wake: Option<std::os::unix::net::UnixStream>,
    /// The TAP, for its carrier.
    #[cfg(feature = "tap")]
    tap: Option<Arc<TapDevice>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for LinkPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkPort")
            .field("link", &self.describe)
            .finish_non_exhaustive()
    }
}

impl LinkPort {
    /// Starts the link's threads; frames from it go to `deliver` (the
    /// peer's carrier changes are ignored).
    pub fn start(link: Link, deliver: Deliver) -> io::Result<LinkPort> {
        LinkPort::start_with_carrier(link, deliver, Box::new(|_| {}))
    }

    /// [`LinkPort::start`], and a unix wire's peer pulling or plugging its
    /// cable is told to `on_carrier`.
    pub fn start_with_carrier(
        link: Link,
        deliver: Deliver,
        on_carrier: OnCarrier,
    ) -> io::Result<LinkPort> {
        let shared = Arc::new(Shared::default());
        let describe = link.describe();
        let mut port = LinkPort {
            shared: shared.clone(),
            describe,
            sink: matches!(link, Link::Sink),
            #[cfg(feature = "tap")]
            wake: None,
            #[cfg(feature = "tap")]
            tap: None,
            threads: Vec::new(),
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("mlx5-sim {name}"))
                .spawn(f)
        };
        match link {
            Link::None => {
                let s = shared.clone();
                port.threads.push(spawn(
                    "wire none",
                    Box::new(move || writer(&s, |_| Err(None), |_| {})),
                )?);
            }
            Link::Sink => shared.counters.connected.store(true, Ordering::Relaxed),
            #[cfg(feature = "tap")]
            Link::Tap(tap) => {
                shared.counters.connected.store(true, Ordering::Relaxed);
                let tap = Arc::new(tap);
                port.tap = Some(tap.clone());
                let (wake_tx, wake_rx) = std::os::unix::net::UnixStream::pair()?;
                port.wake = Some(wake_tx);
                let (s, t) = (shared.clone(), tap.clone());
                port.threads.push(spawn(
                    "tap tx",
                    Box::new(move || writer(&s, |f| t.write_frame(f).map_err(Some), |_| {})),
                )?);
                let s = shared.clone();
                port.threads.push(spawn(
                    "tap rx",
                    Box::new(move || tap_reader(&s, &tap, &wake_rx, deliver)),
                )?);
            }
            Link::Unix(wire) => {
                let s = shared.clone();
                port.threads
                    .push(spawn("unix tx", Box::new(move || stream_writer(&s, true)))?);
                let s = shared.clone();
                port.threads.push(spawn(
                    "unix rx",
                    Box::new(move || unix_reader(&s, &wire, deliver, on_carrier)),
                )?);
            }
            Link::Qemu(listener) => {
                let s = shared.clone();
                port.threads.push(spawn(
                    "qemu tx",
                    Box::new(move || stream_writer(&s, false)),
                )?);
                let s = shared.clone();
                port.threads.push(spawn(
                    "qemu rx",
                    Box::new(move || qemu_reader(&s, &listener, deliver)),
                )?);
            }
        }
        Ok(port)
    }

    /// The port's carrier went up or down: a TAP shows it (NO-CARRIER on
    /// the interface while down), a unix wire tells its peer; `none` and
    /// the QEMU wire carry no carrier.
    pub fn set_carrier(&self, up: bool) {
        self.shared.local_down.store(!up, Ordering::Release);
        self.shared.announce(up);
        #[cfg(feature = "tap")]
        if let Some(tap) = &self.tap
            && let Err(e) = tap.set_carrier(up)
        {
            log::warn!(target: "mlx5_sim::wire", "tap {}: {e}", tap.name());
        }
        #[cfg(not(feature = "tap"))]
        let _ = up;
    }

    /// What the link is (`tap:cx0`, `unix:/run/w.sock`, `none`).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Queues `frames` for the link (copied; never blocks). A sink
    /// counts them written here.
    pub fn send_batch<F: AsRef<[u8]>>(&self, frames: &[F]) {
        if frames.is_empty() {
            return;
        }
        if self.sink {
            let bytes: usize = frames.iter().map(|f| f.as_ref().len()).sum();
            let c = &self.shared.counters;
            c.tx_frames
                .fetch_add(frames.len() as u64, Ordering::Relaxed);
            c.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            return;
        }
        let mut q = lock(&self.shared.queue);
        for f in frames {
            if q.frames.len() >= QUEUE_MAX {
                self.shared
                    .counters
                    .tx_dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut b = q.spare.pop().unwrap_or_default();
            b.clear();
            b.extend_from_slice(f.as_ref());
            q.frames.push_back(b);
        }
        drop(q);
        self.shared.ready.notify_one();
    }

    pub fn stats(&self) -> LinkStats {
        let c = &self.shared.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkStats {
            tx_frames: n(&c.tx_frames),
            tx_bytes: n(&c.tx_bytes),
            tx_dropped_queue_full: n(&c.tx_dropped_queue_full),
            tx_dropped_no_peer: n(&c.tx_dropped_no_peer),
            tx_errors: n(&c.tx_errors),
            rx_frames: n(&c.rx_frames),
            rx_bytes: n(&c.rx_bytes),
            connects: n(&c.connects),
            connected: c.connected.load(Ordering::Relaxed),
            peer_carrier_changes: n(&c.carrier_rx),
        }
    }
}

impl Drop for LinkPort {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Take the queue lock so a writer between its check and its wait sees the flag.
        drop(lock(&self.shared.queue));
        self.shared.ready.notify_all();
        #[cfg(feature = "tap")]
        if let Some(w) = &self.wake {
            use std::io::Write;
            let _ = (&*w).write_all(&[1]);
        }
        if let Some(st) = lock(&self.shared.stream).as_ref() {
            let _ = st.shutdown(std::net::Shutdown::Both);
        }
        // The last owner of the front end may be one of our own threads
        // (a reader delivering a frame): it ends by itself once it returns.
        let me = std::thread::current().id();
        for t in self.threads.drain(..) {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

/// The writer thread: takes queued frames and hands each to `put`, which
/// writes it or fails with `Some(error)` (counted, logged once) or `None`
/// (no peer: counted); a carrier change to announce goes to `carrier`
/// first.
fn writer(
    s: &Shared,
    mut put: impl FnMut(&[u8]) -> Result<(), Option<io::Error>>,
    mut carrier: impl FnMut(bool),
) {
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(64);
    let mut complained = false;
    loop {
        let announce = {
            let mut q = lock(&s.queue);
            q.spare.append(&mut batch);
            while q.frames.is_empty()
                && s.carrier_out.load(Ordering::Acquire) == 0
                && !s.stop.load(Ordering::Acquire)
            {
                q = s.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            let n = q.frames.len().min(64);
            batch.extend(q.frames.drain(..n));
            s.carrier_out.swap(0, Ordering::AcqRel)
        };
        if announce != 0 {
            carrier(announce == 2);
        }
        let c = &s.counters;
        for f in &batch {
            match put(f) {
                Ok(()) => {
                    c.tx_frames.fetch_add(1, Ordering::Relaxed);
                    c.tx_bytes.fetch_add(f.len() as u64, Ordering::Relaxed);
                    complained = false;
                }
                Err(None) => {
                    c.tx_dropped_no_peer.fetch_add(1, Ordering::Relaxed);
                }
                Err(Some(e)) => {
                    c.tx_errors.fetch_add(1, Ordering::Relaxed);
                    if !complained {
                        log::warn!(target: "mlx5_sim::wire", "frame not written to the link: {e}");
                        complained = true;
                    }
                }
            }
        }
    }
}

/// The writer thread of a stream link (unix or QEMU wire): frames as a
/// length and the bytes, to whichever peer is connected; `carrier_records`:
/// the unix wire's carrier records (QEMU's protocol has none).
fn stream_writer(s: &Shared, carrier_records: bool) {
    let mut buf = Vec::with_capacity(4 + unix::FRAME_MAX);
    let stream = || lock(&s.stream).clone();
    let put = |f: &[u8]| {
        if f.is_empty() || f.len() > unix::FRAME_MAX {
            // The peer would take it for garbage and hang up.
            return Err(Some(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a {}-byte frame does not fit the wire", f.len()),
            )));
        }
        match stream() {
            Some(st) => unix::write_frame_with(&*st, &mut buf, f).map_err(|e| {
                // A partial frame breaks the stream's framing: end it.
                let _ = st.shutdown(std::net::Shutdown::Both);
                Some(e)
            }),
            None => Err(None),
        }
    };
    let carrier = |up: bool| {
        if !carrier_records {
            return;
        }
        if let Some(st) = stream()
            && unix::write_carrier(&*st, up).is_err()
        {
            let _ = st.shutdown(std::net::Shutdown::Both);
        }
    };
    writer(s, put, carrier)
}

fn count_rx(s: &Shared, len: usize) {
    s.counters.rx_frames.fetch_add(1, Ordering::Relaxed);
    s.counters.rx_bytes.fetch_add(len as u64, Ordering::Relaxed);
}

#[cfg(feature = "tap")]
fn tap_reader(
    s: &Shared,
    tap: &TapDevice,
    wake: &std::os::unix::net::UnixStream,
    mut deliver: Deliver,
) {
    use std::os::fd::AsFd;
    let mut buf = vec![0u8; 65_536];
    while !s.stop.load(Ordering::Acquire) {
        match tap::poll_in(tap.as_fd(), wake.as_fd()) {
            Ok((_, true)) => return,
            Ok((true, false)) => {}
            Ok((false, false)) => continue,
            Err(e) => {
                log::warn!(target: "mlx5_sim::wire", "tap {}: poll: {e}", tap.name());
                return;
            }
        }
        match tap.read_frame(&mut buf) {
            Ok(n) => {
                count_rx(s, n);
                deliver(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::warn!(target: "mlx5_sim::wire", "tap {}: read: {e}", tap.name());
                return;
            }
        }
    }
}

fn unix_reader(s: &Shared, wire: &UnixWire, mut deliver: Deliver, mut on_carrier: OnCarrier) {
    let mut connector = unix::Connector::new(wire);
    let mut reader = unix::FrameReader::default();
    while let Some(stream) = connector.connect(&s.stop) {
        let stream = Arc::new(stream);
        *lock(&s.stream) = Some(stream.clone());
        s.counters.connects.fetch_add(1, Ordering::Relaxed);
        s.counters.connected.store(true, Ordering::Relaxed);
        log::info!(target: "mlx5_sim::wire", "unix wire {}: peer connected", wire.path.display());
        // A new peer learns that our cable is pulled.
        if s.local_down.load(Ordering::Acquire) {
            s.announce(false);
        }
        reader.reset();
        let why = loop {
            if s.stop.load(Ordering::Acquire) {
                break "stopping".to_string();
            }
            match reader.read(&*stream) {
                Ok(unix::Read1::Frame(n)) => {
                    count_rx(s, n);
                    deliver(reader.frame(n));
                }
                Ok(unix::Read1::Carrier(up)) => {
                    s.counters.carrier_rx.fetch_add(1, Ordering::Relaxed);
                    log::info!(target: "mlx5_sim::wire", "unix wire {}: peer's cable {}", wire.path.display(), if up { "plugged" } else { "pulled" });
                    on_carrier(up);
                }
                Ok(unix::Read1::Pending) => {}
                Ok(unix::Read1::Closed) => break "peer left".to_string(),
                Err(e) => break e.to_string(),
            }
        };
        s.counters.connected.store(false, Ordering::Relaxed);
        *lock(&s.stream) = None;
        let _ = stream.shutdown(std::net::Shutdown::Both);
        log::info!(target: "mlx5_sim::wire", "unix wire {}: disconnected ({why})", wire.path.display());
    }
}

/// The QEMU wire's reader: one peer at a time, the next accepted when it
/// leaves or breaks the framing.
fn qemu_reader(s: &Shared, listener: &qemu::QemuListener, mut deliver: Deliver) {
    let path = listener.path().display().to_string();
    let mut reader = unix::FrameReader::without_carrier();
    while let Some(stream) = listener.accept(&s.stop) {
        let stream = Arc::new(stream);
        *lock(&s.stream) = Some(stream.clone());
        s.counters.connects.fetch_add(1, Ordering::Relaxed);
        s.counters.connected.store(true, Ordering::Relaxed);
        log::info!(target: "mlx5_sim::wire", "qemu wire {path}: peer connected");
        reader.reset();
        let why = loop {
            if s.stop.load(Ordering::Acquire) {
                break "stopping".to_string();
            }
            match reader.read(&*stream) {
                Ok(unix::Read1::Frame(n)) => {
                    count_rx(s, n);
                    deliver(reader.frame(n));
                }
                // Never produced without carrier records.
                Ok(unix::Read1::Carrier(_)) | Ok(unix::Read1::Pending) => {}
                Ok(unix::Read1::Closed) => break "peer left".to_string(),
                Err(e) => break e.to_string(),
            }
        };
        s.counters.connected.store(false, Ordering::Relaxed);
        *lock(&s.stream) = None;
        let _ = stream.shutdown(std::net::Shutdown::Both);
        log::info!(target: "mlx5_sim::wire", "qemu wire {path}: disconnected ({why})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[test]
    fn specs_parse_and_print() {
        assert_eq!("none".parse::<LinkSpec>(), Ok(LinkSpec::None));
        assert_eq!(
            "tap:cx0".parse::<LinkSpec>(),
            Ok(LinkSpec::Tap("cx0".into()))
        );
        assert_eq!(
            "unix:/run/a b.sock".parse::<LinkSpec>(),
            Ok(LinkSpec::Unix("/run/a b.sock".into()))
        );
        assert_eq!(
            "qemu:/run/q.sock".parse::<LinkSpec>(),
            Ok(LinkSpec::Qemu("/run/q.sock".into()))
        );
        for bad in [
            "",
            "tap:",
            "unix:",
            "qemu:",
            "udp:1.2.3.4",
            "None",
            "tap",
            "qemu",
        ] {
            assert!(bad.parse::<LinkSpec>().is_err(), "{bad:?}");
        }
        for s in ["none", "tap:cx0", "unix:/x/y", "qemu:/x/q"] {
            assert_eq!(s.parse::<LinkSpec>().unwrap().to_string(), s);
        }
    }

    fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn none_counts_and_drops_and_stops() {
        let p = LinkPort::start(Link::None, Box::new(|_| {})).unwrap();
        p.send_batch(&[vec![0u8; 60], vec![1u8; 70]]);
        wait_for("the drops", || p.stats().tx_dropped_no_peer == 2);
        assert_eq!(p.stats().tx_frames, 0);
        drop(p);
    }

    #[test]
    fn a_sink_takes_every_frame_without_a_thread() {
        assert_eq!("sink".parse::<LinkSpec>(), Ok(LinkSpec::Sink));
        assert_eq!(LinkSpec::Sink.to_string(), "sink");
        let p = LinkPort::start(LinkSpec::Sink.open().unwrap(), Box::new(|_| {})).unwrap();
        assert_eq!(p.describe(), "sink");
        assert!(p.threads.is_empty());
        for _ in 0..QUEUE_MAX {
            p.send_batch(&[vec![0u8; 60], vec![1u8; 1514]]);
        }
        // Counted at once, none queued or dropped; the carrier stays up.
        p.set_carrier(true);
        let st = p.stats();
        assert_eq!(st.tx_frames, 2 * QUEUE_MAX as u64);
        assert_eq!(st.tx_bytes, (60 + 1514) * QUEUE_MAX as u64);
        assert_eq!(
            (
                st.tx_dropped_queue_full,
                st.tx_dropped_no_peer,
                st.tx_errors
            ),
            (0, 0, 0)
        );
        assert!(st.connected);
        assert!(lock(&p.shared.queue).frames.is_empty());
    }

    /// The writer is decoupled from the port: a peer that stops reading
    /// never blocks `send_batch`; the queue stays bounded (what does not fit
    /// is dropped and counted), and what is carried arrives in order.
    #[test]
    fn a_stalled_peer_costs_counted_drops_never_a_blocked_port() {
        use std::sync::Mutex as StdMutex;
        let dir = std::env::temp_dir().join(format!("mlx5-sim-ls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let spec: LinkSpec = format!("unix:{}", dir.join("w").display()).parse().unwrap();
        let gate = Arc::new(StdMutex::new(()));
        let got = Arc::new(StdMutex::new(Vec::<u32>::new()));
        let a = LinkPort::start(spec.open().unwrap(), Box::new(|_| {})).unwrap();
        let (g, seen) = (gate.clone(), got.clone());
        let b = LinkPort::start(
            spec.open().unwrap(),
            Box::new(move |f| {
                drop(g.lock().unwrap());
                seen.lock()
                    .unwrap()
                    .push(u32::from_be_bytes([f[0], f[1], f[2], f[3]]));
            }),
        )
        .unwrap();
        wait_for("a connection", || {
            a.stats().connected && b.stats().connected
        });
        // b's reader stalls in its first delivery: the sockets fill, then
        // a's writer blocks, then a's queue fills.
        let stall = gate.lock().unwrap();
        let sent = 4 * QUEUE_MAX as u32;
        for chunk in (0..sent).collect::<Vec<_>>().chunks(64) {
            let frames: Vec<Vec<u8>> = chunk
                .iter()
                .map(|i| [&i.to_be_bytes()[..], &[0x5a; 996]].concat())
                .collect();
            a.send_batch(&frames);
        }
        let dropped = a.stats().tx_dropped_queue_full;
        assert!(
            dropped >= u64::from(sent) - 2 * QUEUE_MAX as u64,
            "a stalled peer must cost drops, not memory: {dropped} dropped"
        );
        assert!(lock(&a.shared.queue).frames.len() <= QUEUE_MAX);
        drop(stall);
        let carried = u64::from(sent) - dropped;
        wait_for("the queued frames", || {
            got.lock().unwrap().len() as u64 == carried
        });
        let got = got.lock().unwrap().clone();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
        assert_eq!(got[0], 0);
        assert_eq!(a.stats().tx_frames, carried);
        drop((a, b));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_ports_on_a_unix_wire_carry_frames_both_ways_and_reconnect() {
        let dir = std::env::temp_dir().join(format!("mlx5-sim-lp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let spec: LinkSpec = format!("unix:{}", dir.join("w").display()).parse().unwrap();
        let port = |tx: mpsc::Sender<Vec<u8>>| {
            LinkPort::start(
                spec.open().unwrap(),
                Box::new(move |f| {
                    let _ = tx.send(f.to_vec());
                }),
            )
            .unwrap()
        };
        let (ta, ra) = mpsc::channel();
        let (tb, rb) = mpsc::channel();
        let a = port(ta);
        let b = port(tb.clone());
        wait_for("a connection", || {
            a.stats().connected && b.stats().connected
        });
        a.send_batch(&[vec![0xaa; 60], vec![0xab; 1514]]);
        b.send_batch(&[vec![0xbb; 64]]);
        let t = Duration::from_secs(20);
        assert_eq!(rb.recv_timeout(t).unwrap(), vec![0xaa; 60]);
        assert_eq!(rb.recv_timeout(t).unwrap(), vec![0xab; 1514]);
        assert_eq!(ra.recv_timeout(t).unwrap(), vec![0xbb; 64]);
        // b goes away and a new b comes: the wire works again.
        drop(b);
        wait_for("a to notice", || !a.stats().connected);
        let b = port(tb);
        wait_for("a reconnection", || {
            a.stats().connected && b.stats().connected
        });
        assert_eq!(a.stats().connects, 2);
        // A frame too long for the wire is refused here, and the
        // connection stays up for the next one.
        a.send_batch(&[vec![0xad; unix::FRAME_MAX + 1], vec![0xac; 100]]);
        assert_eq!(rb.recv_timeout(t).unwrap(), vec![0xac; 100]);
        assert_eq!(a.stats().tx_errors, 1);
        assert_eq!(a.stats().connects, 2);
        // The sender counts a frame after its write returns, which may be
        // after the receiver already has it.
        wait_for("a's counters", || {
            let sa = a.stats();
            (sa.tx_frames, sa.rx_frames, sa.rx_bytes) == (3, 1, 64)
        });
        drop((a, b));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pulled_cable_is_seen_at_the_other_end_also_by_a_new_peer() {
        let dir = std::env::temp_dir().join(format!("mlx5-sim-lc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let spec: LinkSpec = format!("unix:{}", dir.join("w").display()).parse().unwrap();
        let port = |tx: mpsc::Sender<bool>| {
            LinkPort::start_with_carrier(
                spec.open().unwrap(),
                Box::new(|_| {}),
                Box::new(move |up| {
                    let _ = tx.send(up);
                }),
            )
            .unwrap()
        };
        let t = Duration::from_secs(20);
        let (ta, ra) = mpsc::channel();
        let (tb, rb) = mpsc::channel();
        let a = port(ta);
        let b = port(tb.clone());
        wait_for("a connection", || {
            a.stats().connected && b.stats().connected
        });
        a.set_carrier(false);
        assert_eq!(rb.recv_timeout(t), Ok(false));
        a.set_carrier(true);
        assert_eq!(rb.recv_timeout(t), Ok(true));
        b.set_carrier(false);
        assert_eq!(ra.recv_timeout(t), Ok(false));
        assert_eq!(a.stats().peer_carrier_changes, 1);
        // a pulls its cable with nobody there; a new b joins and is told
        // at once.
        b.set_carrier(true);
        assert_eq!(ra.recv_timeout(t), Ok(true));
        drop(b);
        a.set_carrier(false);
        let b = port(tb);
        assert_eq!(rb.recv_timeout(t), Ok(false));
        assert!(ra.try_recv().is_err(), "nothing echoed back");
        drop((a, b));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A peer speaking QEMU's stream netdev protocol (what `-netdev
    /// stream,server=off,addr.type=unix,addr.path=PATH` does): frames both
    /// ways, a peer that breaks the framing is dropped, and a QEMU that
    /// reconnects is served again.
    #[test]
    fn a_qemu_peer_exchanges_frames_and_reconnects() {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixStream;
        let dir = std::env::temp_dir().join(format!("mlx5-sim-lq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("q.sock");
        let spec: LinkSpec = format!("qemu:{}", path.display()).parse().unwrap();
        let (tx, rx) = mpsc::channel();
        let port = LinkPort::start(
            spec.open().unwrap(),
            Box::new(move |f| {
                let _ = tx.send(f.to_vec());
            }),
        )
        .unwrap();
        assert_eq!(port.describe(), format!("qemu:{}", path.display()));
        let t = Duration::from_secs(20);
        // What QEMU sends for a frame: its length, big-endian, then it.
        let qemu_frame = |f: &[u8]| [&(f.len() as u32).to_be_bytes()[..], f].concat();
        for round in 0..2u8 {
            let mut qemu = UnixStream::connect(&path).unwrap();
            wait_for("the connection", || port.stats().connected);
            qemu.write_all(&qemu_frame(&[round; 60])).unwrap();
            // Split across writes, as a stream may deliver it.
            let big = qemu_frame(&[0xee; 1514]);
            qemu.write_all(&big[..3]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            qemu.write_all(&big[3..]).unwrap();
            assert_eq!(rx.recv_timeout(t).unwrap(), vec![round; 60]);
            assert_eq!(rx.recv_timeout(t).unwrap(), vec![0xee; 1514]);
            port.send_batch(&[vec![0xbb; 64]]);
            let mut got = vec![0u8; 4 + 64];
            qemu.set_read_timeout(Some(t)).unwrap();
            qemu.read_exact(&mut got).unwrap();
            assert_eq!(got, qemu_frame(&[0xbb; 64]));
            // QEMU goes away (the VM exits or its netdev reconnects).
            drop(qemu);
            wait_for("the disconnection", || !port.stats().connected);
        }
        assert_eq!(port.stats().connects, 2);
        // A peer announcing a frame longer than the wire carries is cut off
        // before anything reaches the port; the next one is served.
        let mut bad = UnixStream::connect(&path).unwrap();
        bad.write_all(&(unix::FRAME_MAX as u32 + 1).to_be_bytes())
            .unwrap();
        bad.write_all(&[0; 64]).unwrap();
        let mut sink = Vec::new();
        bad.set_read_timeout(Some(t)).unwrap();
        // The model hung up: end of stream, or a reset (our bytes unread).
        match bad.read_to_end(&mut sink) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("{other:?}"),
        }
        let mut qemu = UnixStream::connect(&path).unwrap();
        qemu.write_all(&qemu_frame(&[3; 70])).unwrap();
        assert_eq!(rx.recv_timeout(t).unwrap(), vec![3; 70]);
        assert!(rx.try_recv().is_err());
        wait_for("counters", || {
            let st = port.stats();
            (st.rx_frames, st.tx_frames, st.connects) == (5, 2, 4)
        });
        drop(qemu);
        drop(port);
        // The socket goes with the port.
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
