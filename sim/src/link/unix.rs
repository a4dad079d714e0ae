//! A unix-socket wire between two model processes (two VMs back to back).
//!
//! Both ends name the same socket path. Whichever end finds no listener
//! there becomes the listener; the other connects. Either may start first,
//! and either may leave and come back: the listener accepts the next
//! connection, the connecting end finds the old listener gone (its socket
//! file stale), takes the listener's role itself and waits for the peer.
//!
//! A listener appears at the path only once it listens (bound under a
//! temporary name, then hard-linked to the path, which fails if the path
//! exists), so a connect to an existing path that is refused means the
//! file is stale. The listener checks that the path still names its socket
//! and starts over if it does not (another end removed it as stale).
//!
//! On the stream: an 8-byte hello ([`HELLO`]) each way, then records, each
//! a big-endian u32 and: a frame's length (1..=[`FRAME_MAX`]) and its
//! bytes, or [`CARRIER`] | 0/1 alone: the sender's cable was pulled /
//! plugged back (the receiving port follows, as a cable's two ends do). A
//! peer that sends anything else is disconnected.
#![deny(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// The first bytes each end sends.
pub const HELLO: [u8; 8] = *b"cxwire1\n";
/// Longest frame carried (a jumbo frame with room to spare); longer or
/// empty ones mean the peer is not a wire.
pub const FRAME_MAX: usize = 16 * 1024;
/// Bit 31 of a record's word: a carrier record (bit 0: up), no payload.
pub const CARRIER: u32 = 0x8000_0000;
/// How often blocking waits look at the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// How long each end waits for the other's hello. Generous: the listener
/// accepts only every [`TICK`], and a loaded machine may not run its
/// thread for a while. An end that gave up too early (it was 1 s) went on
/// to connect again while the listener took the abandoned connection for
/// the peer: a spurious reconnection, and the frames sent on it lost.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The path both ends name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixWire {
    pub path: PathBuf,
}

/// This end's listening socket and the identity of its file.
#[derive(Debug)]
struct Listening {
    listener: UnixListener,
    dev: u64,
    ino: u64,
}

impl Listening {
    /// Whether `path` still names this socket.
    fn owns(&self, path: &Path) -> bool {
        path.symlink_metadata()
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }
}

/// Establishes connections for one end, keeping the listener role across
/// peers that come and go.
#[derive(Debug)]
pub struct Connector {
    path: PathBuf,
    listening: Option<Listening>,
}

impl Connector {
    pub fn new(wire: &UnixWire) -> Connector {
        Connector {
            path: wire.path.clone(),
            listening: None,
        }
    }

    /// The next connection to the peer, hello exchanged; `None` once `stop` is set.
    pub fn connect(&mut self, stop: &AtomicBool) -> Option<UnixStream> {
        let mut complained = false;
        while !stop.load(Ordering::Acquire) {
            match self.try_once() {
                Ok(Some(stream)) => match handshake(&stream) {
                    Ok(()) => return Some(stream),
                    Err(e) => {
                        log::warn!(target: "mlx5_sim::wire", "unix wire {}: peer refused: {e}", self.path.display())
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    if !complained {
                        log::warn!(target: "mlx5_sim::wire", "unix wire {}: {e}; retrying", self.path.display());
                        complained = true;
                    }
                    std::thread::sleep(TICK * 4);
                }
            }
        }
        None
    }

    /// One attempt: a connection, or none yet (wait and call again).
    fn try_once(&mut self) -> io::Result<Option<UnixStream>> {
        if let Some(l) = &self.listening {
            if !l.owns(&self.path) {
                log::info!(target: "mlx5_sim::wire", "unix wire {}: our listener was replaced; starting over", self.path.display());
                self.listening = None;
                return Ok(None);
            }
            return match l.listener.accept() {
                Ok((s, _)) => Ok(Some(s)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(TICK);
                    Ok(None)
                }
                Err(e) => Err(e),
            };
        }
        match UnixStream::connect(&self.path) {
            Ok(s) => return Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                // Nobody listens behind the file: a peer that left. Only a
                // socket is removed; anything else there is the user's.
                let meta = self.path.symlink_metadata()?;
                if !meta.file_type().is_socket() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a socket", self.path.display()),
                    ));
                }
                let _ = std::fs::remove_file(&self.path);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.listening = self.listen()?;
        Ok(None)
    }

    /// Binds under a temporary name and links it to the path; `None` if the
    /// path appeared meanwhile (the peer is listening: connect next time).
    fn listen(&self) -> io::Result<Option<Listening>> {
        // Unique among the binds of every process (socket paths are short:
        // keep the suffix so).
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(format!(".{}-{n}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)?;
        listener.set_nonblocking(true)?;
        let linked = std::fs::hard_link(&tmp, &self.path);
        let meta = tmp.symlink_metadata();
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                let meta = meta?;
                log::info!(target: "mlx5_sim::wire", "unix wire {}: listening for the peer", self.path.display());
                Ok(Some(Listening {
                    listener,
                    dev: meta.dev(),
                    ino: meta.ino(),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        if let Some(l) = &self.listening
            && l.owns(&self.path)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Sends our hello and checks the peer's (within [`HANDSHAKE`]).
fn handshake(s: &UnixStream) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_write_timeout(Some(HANDSHAKE))?;
    s.set_read_timeout(Some(HANDSHAKE))?;
    (&*s).write_all(&HELLO)?;
    let mut got = [0u8; 8];
    (&*s).read_exact(&mut got)?;
    if got != HELLO {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("hello {got:02x?} is not a cxos wire's"),
        ));
    }
    s.set_read_timeout(Some(TICK))?;
    Ok(())
}

/// Writes one frame (length and bytes) with one write, through `buf`.
pub fn write_frame_with(mut w: impl Write, buf: &mut Vec<u8>, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    buf.clear();
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(frame);
    w.write_all(buf)
}

/// Writes a carrier record: the sender's cable is `up` or not.
pub fn write_carrier(mut w: impl Write, up: bool) -> io::Result<()> {
    w.write_all(&(CARRIER | u32::from(up)).to_be_bytes())
}

/// Writes one frame (length and bytes).
pub fn write_frame(w: impl Write, frame: &[u8]) -> io::Result<()> {
    write_frame_with(w, &mut Vec::new(), frame)
}

/// Reassembles frames from a stream read with timeouts (a frame may arrive
/// in pieces across several reads).
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    have: usize,
    /// Bit 31 of a word marks a carrier record (this wire's protocol);
    /// without, it is part of the length (QEMU's stream netdev).
    carrier_records: bool,
}

/// What one [`FrameReader::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read1 {
    /// A whole frame of this length is in [`FrameReader::frame`].
    Frame(usize),
    /// The peer's cable went up (true) or down.
    Carrier(bool),
    /// Nothing complete yet (the read timed out).
    Pending,
    /// The peer closed the connection.
    Closed,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            buf: vec![0; 4 + FRAME_MAX],
            have: 0,
            carrier_records: true,
        }
    }
}

impl FrameReader {
    /// A reader of length-prefixed frames only (QEMU's stream netdev:
    /// `super::qemu`), where no word is a carrier record.
    pub fn without_carrier() -> FrameReader {
        FrameReader {
            carrier_records: false,
            ..FrameReader::default()
        }
    }

    /// Reads until a frame is whole, the read times out, or the peer closes;
    /// a bad length is an `InvalidData` error.
    pub fn read(&mut self, mut r: impl Read) -> io::Result<Read1> {
        loop {
            let need = if self.have < 4 {
                4
            } else {
                let word = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if self.carrier_records && word & CARRIER != 0 {
                    if word & !CARRIER > 1 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("record word {word:#x}"),
                        ));
                    }
                    self.have = 0;
                    return Ok(Read1::Carrier(word & 1 == 1));
                }
                let len = word as usize;
                if len == 0 || len > FRAME_MAX {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("frame length {len} (1..={FRAME_MAX})"),
                    ));
                }
                4 + len
            };
            if self.have == need && need > 4 {
                self.have = 0;
                return Ok(Read1::Frame(need - 4));
            }
            match r.read(&mut self.buf[self.have..need]) {
                Ok(0) => return Ok(Read1::Closed),
                Ok(n) => self.have += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Read1::Pending);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The frame the last `Read1::Frame(len)` announced.
    pub fn frame(&self, len: usize) -> &[u8] {
        &self.buf[4..4 + len]
    }

    /// Forget a partial frame (a new connection starts clean).
    pub fn reset(&mut self) {
        self.have = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `chunk` bytes a call, then times out once.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
        timeout_next: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.timeout_next {
                self.timeout_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.timeout_next = true;
            let n = buf.len().min(self.chunk).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn frames_survive_reads_in_pieces_and_timeouts() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &[1, 2, 3]).unwrap();
        write_carrier(&mut wire, false).unwrap();
        write_frame(&mut wire, &[9; 1500]).unwrap();
        write_carrier(&mut wire, true).unwrap();
        let mut src = Trickle {
            data: &wire,
            chunk: 3,
            timeout_next: false,
        };
        let mut r = FrameReader::default();
        let mut frames = Vec::new();
        loop {
            match r.read(&mut src).unwrap() {
                Read1::Frame(n) => frames.push(r.frame(n).to_vec()),
                Read1::Carrier(up) => frames.push(vec![u8::from(up); 1 + usize::from(up)]),
                Read1::Pending => {}
                Read1::Closed => break,
            }
        }
        // Carrier records show here as [0] (down) and [1, 1] (up).
        assert_eq!(
            frames,
            vec![vec![1, 2, 3], vec![0], vec![9; 1500], vec![1, 1]]
        );
    }

    #[test]
    fn bad_lengths_are_refused() {
        for len in [0u32, FRAME_MAX as u32 + 1, u32::MAX, CARRIER | 2] {
            let bytes = len.to_be_bytes();
            let mut r = FrameReader::default();
            let e = r.read(&bytes[..]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mlx5-sim-uw-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn two_ends_meet_whoever_starts_first_and_meet_again() {
        let d = dir("meet");
        let wire = UnixWire {
            path: d.join("w.sock"),
        };
        let stop = AtomicBool::new(false);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                let mut c = Connector::new(&wire);
                let st = c.connect(&stop).unwrap();
                (c, st)
            });
            let b = s.spawn(|| {
                let mut c = Connector::new(&wire);
                let st = c.connect(&stop).unwrap();
                (c, st)
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        let ((mut ca, sa), (mut cb, sb)) = (a, b);
        write_frame(&sa, &[7; 60]).unwrap();
        let mut r = FrameReader::default();
        assert_eq!(r.read(&sb).unwrap(), Read1::Frame(60));
        // Exactly one of them listens and owns the path.
        assert!(ca.listening.is_some() != cb.listening.is_some());
        // The connecting end leaves and comes back: they meet again.
        let (listener, mut other) = if ca.listening.is_some() {
            drop((sb, cb));
            drop(sa);
            (&mut ca, Connector::new(&wire))
        } else {
            drop((sa, ca));
            drop(sb);
            (&mut cb, Connector::new(&wire))
        };
        std::thread::scope(|s| {
            let h = s.spawn(|| listener.connect(&stop).unwrap());
            let mine = other.connect(&stop).unwrap();
            let theirs = h.join().unwrap();
            write_frame(&mine, &[1; 20]).unwrap();
            let mut r = FrameReader::default();
            assert_eq!(r.read(&theirs).unwrap(), Read1::Frame(20));
        });
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_listener_leaving_makes_the_other_end_listen() {
        let d = dir("leave");
        let wire = UnixWire {
            path: d.join("w.sock"),
        };
        let stop = AtomicBool::new(false);
        // A stale socket file from a dead listener is taken over.
        let stale = UnixListener::bind(&wire.path).unwrap();
        drop(stale);
        assert!(wire.path.exists());
        let mut a = Connector::new(&wire);
        let mut b = Connector::new(&wire);
        std::thread::scope(|s| {
            let h = s.spawn(|| a.connect(&stop).unwrap());
            let sb = b.connect(&stop).unwrap();
            let sa = h.join().unwrap();
            drop((sa, sb));
        });
        // Whoever listened leaves for good; the other starts listening, and
        // a newcomer meets it.
        let (mut stays, leaves) = if a.listening.is_some() {
            (b, a)
        } else {
            (a, b)
        };
        drop(leaves);
        let mut newcomer = Connector::new(&wire);
        std::thread::scope(|s| {
            let h = s.spawn(|| stays.connect(&stop).unwrap());
            let sn = newcomer.connect(&stop).unwrap();
            let ss = h.join().unwrap();
            write_frame(&sn, &[5; 64]).unwrap();
            let mut r = FrameReader::default();
            assert_eq!(r.read(&ss).unwrap(), Read1::Frame(64));
        });
        drop((stays, newcomer));
        // The listener removes its path when it goes.
        assert!(!wire.path.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_stranger_is_refused_and_stop_ends_the_wait() {
        let d = dir("stranger");
        let wire = UnixWire {
            path: d.join("w.sock"),
        };
        let stop = AtomicBool::new(false);
        let mut c = Connector::new(&wire);
        std::thread::scope(|s| {
            let h = s.spawn(|| c.connect(&stop));
            // Wait for the listener, then speak something else.
            while !wire.path.exists() {
                std::thread::sleep(Duration::from_millis(5));
            }
            let mut x = UnixStream::connect(&wire.path).unwrap();
            x.write_all(b"GET / HTTP/1.0\r\n").unwrap();
            let mut hello = [0u8; 8];
            x.read_exact(&mut hello).unwrap();
            assert_eq!(hello, HELLO);
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::Release);
            assert!(h.join().unwrap().is_none());
        });
        std::fs::remove_dir_all(&d).unwrap();
    }
}
