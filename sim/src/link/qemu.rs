//! A wire any QEMU guest can join: the model listens on a unix socket and
//! a stock QEMU NIC connects with
//! `-netdev stream,id=n0,server=off,addr.type=unix,addr.path=PATH`
//! (add `reconnect-ms=...` to have QEMU come back after the model
//! restarts).
//!
//! QEMU's stream netdev (net/stream.c, reading with net_fill_rstate in
//! net/net.c) carries each Ethernet frame as a big-endian u32 length and
//! the frame's bytes, with no virtio-net header and no handshake. Frames
//! here are 1..=[`FRAME_MAX`] bytes (QEMU itself refuses more than
//! 69632): a longer or empty one means the peer does not speak the
//! protocol, and the connection is closed. One peer at a time; when it
//! leaves (its QEMU exits or reconnects) the next connection is accepted.
//! The protocol has no carrier: the model's `link down` cannot drop a
//! virtio-net's carrier in the other VM (QEMU's monitor `set_link` does).
#![deny(unsafe_code)]

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use super::unix::FRAME_MAX;

/// How often blocking waits look at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// The socket path QEMU connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuWire {
    pub path: PathBuf,
}

/// The listening socket, and the identity of its file (removed on drop
/// only if it is still ours).
#[derive(Debug)]
pub struct QemuListener {
    listener: UnixListener,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl QemuListener {
    /// Listens on the wire's path. A socket file nobody listens on (a
    /// model that died) is replaced; a live listener or any other file is
    /// an error.
    pub fn bind(wire: &QemuWire) -> io::Result<QemuListener> {
        let path = &wire.path;
        if let Ok(meta) = path.symlink_metadata() {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{}: another process listens there", path.display()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path)?;
                }
                Err(e) => return Err(e),
            }
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let meta = path.symlink_metadata()?;
        Ok(QemuListener {
            listener,
            path: path.clone(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn owns(&self, path: &Path) -> bool {
        path.symlink_metadata()
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    /// The next peer, ready for [`super::unix::FrameReader`] (reads time
    /// out every tick); `None` once `stop` is set.
    pub fn accept(&self, stop: &AtomicBool) -> Option<UnixStream> {
        while !stop.load(Ordering::Acquire) {
            match self.listener.accept() {
                Ok((s, _)) => match prepare(&s) {
                    Ok(()) => return Some(s),
                    Err(e) => {
                        log::warn!(target: "mlx5_sim::wire", "qemu wire {}: {e}", self.path.display())
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(TICK),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!(target: "mlx5_sim::wire", "qemu wire {}: accept: {e}", self.path.display());
                    std::thread::sleep(TICK * 4);
                }
            }
        }
        None
    }
}

fn prepare(s: &UnixStream) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(TICK))?;
    // A peer that stops reading must not stall the writer for ever.
    s.set_write_timeout(Some(Duration::from_secs(1)))
}

impl Drop for QemuListener {
    fn drop(&mut self) {
        if self.owns(&self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::unix::{FrameReader, Read1, write_frame};
    use super::*;
    use std::io::{Read, Write};

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mlx5-sim-qw-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// QEMU's framing, written by hand: a 60-byte frame is 00 00 00 3c
    /// and the frame.
    #[test]
    fn frames_are_a_big_endian_length_and_the_bytes() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &[0x5a; 60]).unwrap();
        assert_eq!(&wire[..4], &[0x00, 0x00, 0x00, 0x3c]);
        assert_eq!(&wire[4..], &[0x5a; 60][..]);
        let mut r = FrameReader::without_carrier();
        assert_eq!(r.read(&wire[..]).unwrap(), Read1::Frame(60));
        // No carrier records in QEMU's protocol: bit 31 is a (bad) length.
        let mut r = FrameReader::without_carrier();
        let e = r.read(&0x8000_0001u32.to_be_bytes()[..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let d = dir("bind");
        let wire = QemuWire {
            path: d.join("q.sock"),
        };
        drop(UnixListener::bind(&wire.path).unwrap());
        let l = QemuListener::bind(&wire).unwrap();
        let e = QemuListener::bind(&wire).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(l);
        assert!(!wire.path.exists());
        std::fs::write(&wire.path, b"x").unwrap();
        assert_eq!(
            QemuListener::bind(&wire).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn accept_returns_peers_in_turn_and_stops() {
        let d = dir("accept");
        let wire = QemuWire {
            path: d.join("q.sock"),
        };
        let l = QemuListener::bind(&wire).unwrap();
        let stop = AtomicBool::new(false);
        for round in 0..2u8 {
            let mut peer = UnixStream::connect(&wire.path).unwrap();
            let ours = l.accept(&stop).unwrap();
            peer.write_all(&[0, 0, 0, 2, round, 9]).unwrap();
            let mut r = FrameReader::without_carrier();
            assert_eq!(r.read(&ours).unwrap(), Read1::Frame(2));
            assert_eq!(r.frame(2), &[round, 9]);
            write_frame(&ours, &[7; 3]).unwrap();
            let mut got = [0u8; 7];
            peer.read_exact(&mut got).unwrap();
            assert_eq!(got, [0, 0, 0, 3, 7, 7, 7]);
        }
        stop.store(true, Ordering::Release);
        assert!(l.accept(&stop).is_none());
        drop(l);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
