//! A Linux TAP device: the kernel's end of a virtual Ethernet cable. Frames
//! the kernel sends out of the interface are read here; frames written here
//! arrive at the interface as if from a wire.
//!
//! Opened with TUNSETIFF (`IFF_TAP | IFF_NO_PI`: Ethernet frames with no
//! packet-information prefix) on `/dev/net/tun` in the network namespace
//! the process runs in. A name that exists (a persistent TAP made by `ip
//! tuntap add`) is attached to; otherwise a TAP is created that disappears
//! when this handle is dropped. Needs CAP_NET_ADMIN.
//!
//! This module and [`poll_in`] are the only `unsafe` of the links.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// Longest interface name (IFNAMSIZ less the NUL).
pub const NAME_MAX: usize = 15;

/// An open TAP device.
#[derive(Debug)]
pub struct TapDevice {
    file: File,
    name: String,
}

/// Checks an interface name the way the kernel would take it.
pub fn check_name(name: &str) -> io::Result<()> {
    let bad = name.is_empty()
        || name.len() > NAME_MAX
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b == b':' || b.is_ascii_whitespace());
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "'{name}' is not an interface name (1-{NAME_MAX} bytes, no '/', ':' or blanks)"
            ),
        ));
    }
    Ok(())
}

impl TapDevice {
    /// Opens the TAP `name`, creating it if it does not exist.
    pub fn open(name: &str) -> io::Result<TapDevice> {
        check_name(name)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|e| with_context(e, "open /dev/net/tun"))?;
        // SAFETY: ifreq is plain old data (arrays, integers, a union of
        // them and raw pointers); all zeroes is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one struct ifreq, which `req`
        // is and which lives across the call; fd is an open tun fd.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(with_context(
                io::Error::last_os_error(),
                &format!("TUNSETIFF {name}"),
            ));
        }
        // The kernel writes back the name it used (the same, as we gave one).
        let used: Vec<u8> = req
            .ifr_name
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        Ok(TapDevice {
            file,
            name: String::from_utf8_lossy(&used).into_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Carrier on or off (TUNSETCARRIER): the interface shows NO-CARRIER
    /// while off, as with a cable pulled.
    pub fn set_carrier(&self, up: bool) -> io::Result<()> {
        let on: libc::c_int = up.into();
        // SAFETY: TUNSETCARRIER reads one int through the pointer, which
        // points at `on`, alive across the call; the fd is an attached TAP.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), libc::TUNSETCARRIER, &on) };
        if rc < 0 {
            return Err(with_context(io::Error::last_os_error(), "TUNSETCARRIER"));
        }
        Ok(())
    }

    /// Reads one frame (blocks until one arrives); its length.
    pub fn read_frame(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one frame whole (a TAP takes a frame per write).
    pub fn write_frame(&self, frame: &[u8]) -> io::Result<()> {
        let n = (&self.file).write(frame)?;
        if n != frame.len() {
            return Err(io::Error::other(format!(
                "TAP took {n} of {} bytes",
                frame.len()
            )));
        }
        Ok(())
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn with_context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Waits until `a` or `b` is readable (or hung up); which of them.
pub fn poll_in(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> io::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is an array of two initialized pollfd that outlives
        // the call; both fds are open (borrowed for the call).
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc >= 0 {
            let ready = |p: &libc::pollfd| p.revents != 0;
            return Ok((ready(&fds[0]), ready(&fds[1])));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn names_are_checked_before_the_kernel_sees_them() {
        for good in ["tap0", "cx-5.a_b", "a23456789012345"] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            "a234567890123456",
            "a/b",
            "a b",
            "a:1",
            ".",
            "..",
            "x\0",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
            assert_eq!(
                TapDevice::open(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn poll_reports_the_readable_side() {
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, _b_peer) = UnixStream::pair().unwrap();
        a_peer.write_all(b"x").unwrap();
        assert_eq!(poll_in(a.as_fd(), b.as_fd()).unwrap(), (true, false));
    }
}
