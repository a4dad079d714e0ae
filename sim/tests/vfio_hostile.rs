//! The `mlx5-sim` binary against hostile vfio-user clients: raw sockets
//! sending truncated, oversized, lying-size and out-of-order messages get
//! an error reply (and, when the stream cannot be trusted any more, a
//! closed connection); the model keeps serving, and the next client — the
//! mlx5 driver over a vfio-user client — attaches and detaches cleanly. A
//! DMA_MAP of a file shorter than the range is refused (mapping it would
//! raise SIGBUS at the first access past its end).
//!
//! Message layouts: sim/src/vfio/protocol.rs (header: msg_id u16 at 0,
//! command u16 at 2, message_size u32 at 4, flags u32 at 8, error u32 at
//! 12, little-endian).
#![cfg(feature = "vfio")]

mod wires;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mlx5::Adapter;
use mlx5_sim::vfio::client::VfioPlatform;
use wires::*;

const VERSION: u16 = 1;
const DMA_MAP: u16 = 2;
const GET_INFO: u16 = 4;
const REGION_READ: u16 = 9;
const REGION_WRITE: u16 = 10;
const REPLY: u32 = 1;
const ERROR: u32 = 1 << 5;
const EINVAL: u32 = 22;
const E2BIG: u32 = 7;
const ENOTSUP: u32 = 95;
const EPROTO: u32 = 71;

struct Model {
    child: Child,
    socket: PathBuf,
    control: PathBuf,
}

impl Model {
    fn start(dir: &Path, tag: &str) -> Model {
        let socket = dir.join(format!("{tag}.sock"));
        let control = dir.join(format!("{tag}.ctl"));
        let child = Command::new(env!("CARGO_BIN_EXE_mlx5-sim"))
            .arg("--socket")
            .arg(&socket)
            .args(["--personality", "cx5"])
            .arg("--control")
            .arg(&control)
            .env("MLX5_SIM_LOG", "info")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{tag}.log"))).unwrap())
            .spawn()
            .unwrap();
        let mut m = Model {
            child,
            socket,
            control,
        };
        eventually("the model's socket", || {
            assert!(m.child.try_wait().unwrap().is_none(), "mlx5-sim exited");
            m.socket.exists()
        });
        m
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The numbers of the `stats` line starting with `prefix`.
    fn stat(&self, prefix: &str) -> Vec<u64> {
        let mut s = UnixStream::connect(&self.control).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(b"stats\n").unwrap();
        for line in BufReader::new(s).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
            }
            assert!(
                !line.starts_with("ok") && !line.starts_with("error"),
                "{line}"
            );
        }
        panic!("no {prefix:?} line");
    }

    /// `stats`' `vfio-clients <n> refused <n>`.
    fn clients(&self) -> (u64, u64) {
        let w = self.stat("vfio-clients ");
        (w[0], w[1])
    }

    fn expect_clean_exit(mut self) {
        let mut status = None;
        eventually("the model to exit", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(status.unwrap().success(), "{status:?}");
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A message whose header claims `size` bytes.
fn raw(id: u16, command: u16, size: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&command.to_le_bytes());
    m.extend_from_slice(&size.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(payload);
    m
}

/// A message whose size is what it carries.
fn msg(id: u16, command: u16, payload: &[u8]) -> Vec<u8> {
    raw(id, command, 16 + payload.len() as u32, payload)
}

fn version() -> Vec<u8> {
    let mut p = vec![0, 0, 1, 0];
    p.extend_from_slice(b"{\"capabilities\":{}}\0");
    msg(1, VERSION, &p)
}

#[derive(Debug, PartialEq, Eq)]
struct Reply {
    id: u16,
    command: u16,
    flags: u32,
    error: u32,
    payload: Vec<u8>,
}

/// The next reply, or None when the model closed the connection.
fn reply(s: &mut UnixStream) -> Option<Reply> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).ok()?;
    let le = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    let mut payload = vec![0u8; le(4) as usize - 16];
    s.read_exact(&mut payload).ok()?;
    Some(Reply {
        id: u16::from_le_bytes([h[0], h[1]]),
        command: u16::from_le_bytes([h[2], h[3]]),
        flags: le(8),
        error: le(12),
        payload,
    })
}

fn connect(m: &Model) -> UnixStream {
    let s = UnixStream::connect(&m.socket).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// An error reply to message `id`, then the connection closed.
fn refused_and_closed(s: &mut UnixStream, id: u16, errno: u32) {
    let r = reply(s).expect("an error reply");
    assert_eq!(
        (r.id, r.flags, r.error),
        (id, REPLY | ERROR, errno),
        "{r:?}"
    );
    // Closed: end of stream, or a reset when the model left bytes of the
    // message unread (it does not read what it will not believe).
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("connection still open: {other:?}"),
    }
}

/// An error reply to message `id`; the connection stays.
fn refused(s: &mut UnixStream, id: u16, errno: u32) {
    let r = reply(s).expect("an error reply");
    assert_eq!(
        (r.id, r.flags, r.error),
        (id, REPLY | ERROR, errno),
        "{r:?}"
    );
}

#[test]
fn hostile_clients_are_refused_and_the_next_client_is_served() {
    let dir = temp_dir("vfio-hostile");
    let mut m = Model::start(&dir, "m");

    // 1. The first message a VERSION whose size is smaller than its
    //    header (vfio_user 0.1.7 exited the process on it).
    let mut s = connect(&m);
    s.write_all(&raw(5, VERSION, 8, &[0, 0, 1, 0])).unwrap();
    refused_and_closed(&mut s, 5, EINVAL);
    assert!(m.alive());

    // 2. Oversized: a 4 GiB message is never allocated.
    let mut s = connect(&m);
    s.write_all(&raw(6, REGION_WRITE, u32::MAX, &[0; 16]))
        .unwrap();
    refused_and_closed(&mut s, 6, EINVAL);

    // 3. Truncated: the header promises a DMA_MAP, the client sends 4
    //    bytes of it and closes its side.
    let mut s = connect(&m);
    let mut short = raw(7, DMA_MAP, 48, &[0; 32]);
    short.truncate(20);
    s.write_all(&short).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    refused_and_closed(&mut s, 7, EINVAL);

    // 4. Half a header, then nothing: closed without a reply.
    let mut s = connect(&m);
    s.write_all(&[1, 0, 4]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let r = reply(&mut s);
    assert!(r.as_ref().is_none_or(|r| r.flags & ERROR != 0), "{r:?}");

    // 5. Out of order, lying sizes, absurd counts on one connection:
    //    each refused with a reply, the connection still in step.
    let mut s = connect(&m);
    s.write_all(&msg(10, GET_INFO, &[0; 16])).unwrap();
    refused(&mut s, 10, EPROTO);
    s.write_all(&version()).unwrap();
    let r = reply(&mut s).unwrap();
    assert_eq!((r.id, r.command, r.flags), (1, VERSION, REPLY));
    assert!(r.payload.ends_with(b"}\0"), "{r:?}");
    s.write_all(&version()).unwrap();
    refused(&mut s, 1, EPROTO);
    // A REGION_READ that carries 8 bytes more than its layout.
    let mut rd = [0u8; 24];
    rd[12..16].copy_from_slice(&4u32.to_le_bytes());
    s.write_all(&msg(11, REGION_READ, &rd)).unwrap();
    refused(&mut s, 11, EINVAL);
    // A REGION_WRITE whose count says more data than the message holds.
    let mut wr = [0u8; 20];
    wr[12..16].copy_from_slice(&64u32.to_le_bytes());
    s.write_all(&msg(12, REGION_WRITE, &wr)).unwrap();
    refused(&mut s, 12, EINVAL);
    // A REGION_READ of 4 GiB - 1: refused before any allocation.
    rd[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    s.write_all(&msg(13, REGION_READ, &rd[..16])).unwrap();
    refused(&mut s, 13, E2BIG);
    // BAR0 beyond its end; a command that does not exist.
    let mut far = [0u8; 16];
    far[0..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    far[12..16].copy_from_slice(&4u32.to_le_bytes());
    s.write_all(&msg(14, REGION_READ, &far)).unwrap();
    refused(&mut s, 14, EINVAL);
    s.write_all(&msg(15, 0x7777, &[])).unwrap();
    refused(&mut s, 15, ENOTSUP);
    // Still in step: a good question gets its answer.
    s.write_all(&msg(16, GET_INFO, &[0; 16])).unwrap();
    let r = reply(&mut s).unwrap();
    assert_eq!(
        (r.id, r.command, r.flags, r.payload.len()),
        (16, GET_INFO, REPLY, 16)
    );
    // A message that stops half-way, the client silent: closed after
    // the model's patience for one message.
    s.write_all(&raw(17, GET_INFO, 32, &[0; 4])).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    refused_and_closed(&mut s, 17, EINVAL);
    assert!(m.alive());
    // The model counts a refused client after it has closed the
    // connection: the close just seen may come before its count.
    assert_eq!(
        settled(|| m.clients(), |c| *c == (5, 5)),
        (5, 5),
        "five clients, each refused"
    );

    // The next client is the driver: it attaches and detaches cleanly.
    let p = VfioPlatform::connect(&m.socket, &dir.join("ram")).unwrap();
    let a = Adapter::attach(p, mlx5::Config::default())
        .unwrap_or_else(|f| panic!("attach after hostile clients: {}", f.error));
    let (p, r) = a.detach();
    assert_eq!((r.errors, r.pages_lost), (0, 0), "{r:?}");
    drop(p);
    m.expect_clean_exit();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_dma_map_of_a_short_file_is_refused() {
    let dir = temp_dir("vfio-short-map");
    let mut m = Model::start(&dir, "m");
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("short"))
        .unwrap();
    file.set_len(0x1000).unwrap();
    let mut c = vfio_user::Client::new(&m.socket).unwrap();
    // 1 MiB of a 4 KiB file: refused (the crate's client does not look
    // at the error flag: the model's own counters tell), the model alive.
    let _ = c.dma_map(0, 0x1_0000_0000, 0x10_0000, file.as_raw_fd());
    assert!(m.alive());
    // `dma maps <n> unmaps <n> live <n> bytes <n>`
    assert_eq!(m.stat("dma maps ")[..3], [0, 0, 0]);
    // What the file holds is mapped, and the model still answers.
    c.dma_map(0, 0x1_0000_0000, 0x1000, file.as_raw_fd())
        .unwrap();
    assert_eq!(m.stat("dma maps ")[..3], [1, 0, 1]);
    let mut id = [0u8; 4];
    c.region_read(
        vfio_bindings::bindings::vfio::VFIO_PCI_CONFIG_REGION_INDEX,
        0,
        &mut id,
    )
    .unwrap();
    assert_eq!(u32::from_le_bytes(id) & 0xffff, 0x15b3);
    drop(c);
    m.expect_clean_exit();
    std::fs::remove_dir_all(&dir).unwrap();
}
