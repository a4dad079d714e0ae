//! Receiving the file descriptors a vfio-user client passes along with a
//! message (SCM_RIGHTS ancillary data: DMA_MAP's memfd, SET_IRQS's
//! eventfds). The one `unsafe` of this file is `recvmsg` and the walk
//! over the control buffer it fills.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// What one [`recv_with_fds`] got.
#[derive(Debug)]
pub struct Received {
    /// Bytes read into the buffer (0: the client closed the connection).
    pub bytes: usize,
    /// Every descriptor that arrived, owned (closed when dropped).
    pub fds: Vec<OwnedFd>,
    /// More descriptors were sent than `max_fds` (the kernel closed the
    /// rest): a client breaking the protocol's limit.
    pub truncated: bool,
}

/// `recvmsg` into `buf` with room for `max_fds` descriptors (close-on-exec).
pub fn recv_with_fds(stream: &UnixStream, buf: &mut [u8], max_fds: usize) -> io::Result<Received> {
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE((max_fds * size_of::<RawFd>()) as u32) } as usize;
    // u64 elements: the control buffer must be aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at `iov` (which covers exactly `buf`) and at
        // `control` (`space` bytes), all alive and exclusively borrowed
        // for the call.
        let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the CMSG_* walk stays inside the control buffer the kernel
    // filled (msg_controllen as it returned it); each SCM_RIGHTS payload
    // is an array of descriptors the kernel just installed in this
    // process, which nothing else owns: each is owned exactly once here.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let len = (*c).cmsg_len as usize - (data as usize - c as usize);
                for i in 0..len / size_of::<RawFd>() {
                    let fd = data
                        .add(i * size_of::<RawFd>())
                        .cast::<RawFd>()
                        .read_unaligned();
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Received {
        bytes: n,
        fds,
        truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
    })
}
