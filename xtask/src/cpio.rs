//! A writer for the "newc" cpio format (`070701`), the format Linux
//! unpacks an initramfs from (kernel docs: "ramfs, rootfs and initramfs",
//! "initramfs buffer format"). Uncompressed: the kernel takes it as is and
//! unpacking it costs nothing under TCG.
//!
//! Each entry is a 110-byte ASCII header (magic and 13 eight-digit hex
//! fields: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
//! rdevmajor, rdevminor, namesize with its NUL, check), the name and a NUL
//! padded to 4 bytes, then the data padded to 4 bytes. `TRAILER!!!` ends
//! the archive.

use std::io::{self, Write};

/// File type bits of `mode` (`S_IFDIR`, `S_IFREG`, `S_IFLNK`).
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// An archive being written.
pub struct Writer<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer {
            out,
            ino: 1,
            written: 0,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.ino += 1;
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0; 3][..n])
    }

    /// A directory (its parents must come first).
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.entry(name, S_IFDIR | 0o755, 2, &[])
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, data)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// Writes the trailer; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, 1, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One file, checked against the newc layout written out by hand.
    #[test]
    fn newc_layout() {
        let mut w = Writer::new(Vec::new());
        w.file("/init", 0o755, b"hi\n").unwrap();
        let out = w.finish().unwrap();
        let header = "070701\
             00000001\
             000081ed\
             00000000\
             00000000\
             00000001\
             00000000\
             00000003\
             00000000\
             00000000\
             00000000\
             00000000\
             00000005\
             00000000";
        assert_eq!(&out[..110], header.as_bytes());
        // Name "init\0" (5 bytes) ends at 115: padded to 116; data at 116.
        assert_eq!(&out[110..116], b"init\0\0");
        assert_eq!(&out[116..120], b"hi\n\0");
        // The trailer's header follows at a 4-byte boundary.
        assert_eq!(&out[120..126], b"070701");
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn directories_and_symlinks_carry_their_type() {
        let mut w = Writer::new(Vec::new());
        w.dir("usr").unwrap();
        w.symlink("lib", "usr/lib").unwrap();
        let out = w.finish().unwrap();
        // mode field: bytes 14..22 of each header.
        assert_eq!(&out[14..22], b"000041ed");
        let second = out
            .windows(6)
            .enumerate()
            .filter(|(_, w)| *w == b"070701")
            .nth(1)
            .unwrap()
            .0;
        assert_eq!(&out[second + 14..second + 22], b"0000a1ff");
        assert!(out.windows(7).any(|w| w == b"usr/lib"));
    }
}
