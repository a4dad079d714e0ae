//! A running QEMU whose serial console we read and type into.
//!
//! Everything has one hard deadline: a session that passes it is killed and
//! the waiting call fails, so a hung kernel fails its test instead of hanging
//! the run. Serial output is appended to a log file as it arrives, so the log
//! of a killed run is complete up to the kill.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::{Result, XtaskError};

#[derive(Debug)]
enum Chunk {
    Serial(Vec<u8>),
    Stderr(Vec<u8>),
    Closed,
}

/// A QEMU child with its serial console on pipes.
#[derive(Debug)]
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: Receiver<Chunk>,
    open_streams: usize,
    serial: String,
    stderr: String,
    log: File,
    log_path: PathBuf,
    /// Bytes written to `log`; past `log_cap` it is rotated.
    log_written: u64,
    log_cap: u64,
    deadline: Instant,
    timeout: Duration,
    status: Option<ExitStatus>,
}

/// Why a wait ended without what it waited for.
pub type Failure = String;

impl Session {
    /// Starts `command` with piped stdio; everything must be over within `timeout`.
    pub fn spawn(mut command: Command, log_path: &Path, timeout: Duration) -> Result<Self> {
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut log = File::create(log_path)
            .map_err(|e| XtaskError::msg(format!("cannot create {}: {e}", log_path.display())))?;
        writeln!(log, "$ {}", describe(&command))?;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| XtaskError::msg(format!("cannot start {}: {e}", describe(&command))))?;
        let (tx, chunks) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        forward(stdout, tx.clone(), Chunk::Serial);
        forward(stderr, tx, Chunk::Stderr);
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            chunks,
            open_streams: 2,
            serial: String::new(),
            stderr: String::new(),
            log,
            log_path: log_path.to_path_buf(),
            log_written: 0,
            log_cap: u64::MAX,
            deadline: Instant::now() + timeout,
            timeout,
            status: None,
        })
    }

    /// QEMU's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The serial output so far, with carriage returns removed.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Caps the log file: past `bytes` it is renamed `<log>.1` (replacing
    /// the previous one) and a new log started, so at most twice `bytes`
    /// stay on disk however long QEMU runs.
    pub fn cap_log(&mut self, bytes: u64) {
        self.log_cap = bytes;
    }

    fn write_log(&mut self, bytes: &[u8]) {
        if self.log_written >= self.log_cap {
            let mut old = self.log_path.clone().into_os_string();
            old.push(".1");
            if std::fs::rename(&self.log_path, &old).is_ok()
                && let Ok(log) = File::create(&self.log_path)
            {
                self.log = log;
                self.log_written = 0;
            }
        }
        let _ = self.log.write_all(bytes);
        let _ = self.log.flush();
        self.log_written += bytes.len() as u64;
    }

    /// Forgets the serial output before byte `offset` (it stays in the log
    /// file); offsets taken earlier shift down by `offset`. For runs long
    /// enough that keeping every line in memory would grow without bound.
    pub fn discard_before(&mut self, offset: usize) {
        let mut at = offset.min(self.serial.len());
        while !self.serial.is_char_boundary(at) {
            at -= 1;
        }
        self.serial.drain(..at);
    }

    /// Waits until the serial output from byte `from` on contains `needle`;
    /// returns the offset just past the match.
    pub fn expect_from(
        &mut self,
        from: usize,
        needle: &str,
    ) -> std::result::Result<usize, Failure> {
        loop {
            if let Some(at) = self.serial.get(from..).and_then(|s| s.find(needle)) {
                return Ok(from + at + needle.len());
            }
            if !self.pump() {
                return Err(self.why_stopped(&format!("waiting for {needle:?}")));
            }
        }
    }

    /// Like [`Self::expect_from`] from the start of the output.
    pub fn expect(&mut self, needle: &str) -> std::result::Result<usize, Failure> {
        self.expect_from(0, needle)
    }

    /// Types `line` and a newline on the serial console.
    pub fn send_line(&mut self, line: &str) -> std::result::Result<(), Failure> {
        let stdin = self.stdin.as_mut().ok_or("stdin already closed")?;
        let _ = writeln!(self.log, "\n[xtask typed: {line:?}]");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot type {line:?}: {e}"))
    }

    /// Waits for QEMU to exit (reading its output until then).
    pub fn wait_exit(&mut self) -> std::result::Result<ExitStatus, Failure> {
        while self.pump() {}
        if let Some(status) = self.status {
            return Ok(status);
        }
        Err(self.why_stopped("waiting for QEMU to exit"))
    }

    /// Takes one chunk of output. False when nothing more will come: QEMU
    /// exited and its pipes are drained, or the deadline passed (QEMU is
    /// then killed).
    fn pump(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        if self.open_streams == 0 {
            return self.reap();
        }
        let now = Instant::now();
        if now >= self.deadline {
            self.kill();
            return false;
        }
        match self.chunks.recv_timeout(self.deadline - now) {
            Ok(Chunk::Serial(bytes)) => {
                self.write_log(&bytes);
                self.serial
                    .push_str(&String::from_utf8_lossy(&bytes).replace('\r', ""));
                true
            }
            Ok(Chunk::Stderr(bytes)) => {
                self.stderr.push_str(&String::from_utf8_lossy(&bytes));
                true
            }
            Ok(Chunk::Closed) => {
                self.open_streams -= 1;
                true
            }
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                false
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.open_streams = 0;
                true
            }
        }
    }

    /// Both pipes closed: QEMU is gone or about to be; collect its status.
    fn reap(&mut self) -> bool {
        while Instant::now() < self.deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    return false;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        self.kill();
        false
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn why_stopped(&self, what: &str) -> Failure {
        match self.status {
            Some(status) => format!("QEMU exited ({status}) while {what}"),
            None => format!(
                "timed out after {} s {what}; QEMU killed",
                self.timeout.as_secs()
            ),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill();
        if !self.stderr.is_empty() {
            let _ = write!(self.log, "\n--- qemu stderr ---\n{}", self.stderr);
        }
        let _ = match self.status {
            Some(status) => writeln!(self.log, "\n--- qemu exited: {status} ---"),
            None => writeln!(self.log, "\n--- qemu killed by xtask ---"),
        };
    }
}

/// Copies a pipe into the channel from its own thread until EOF.
fn forward(
    mut pipe: impl Read + Send + 'static,
    tx: mpsc::Sender<Chunk>,
    wrap: fn(Vec<u8>) -> Chunk,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(wrap(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Chunk::Closed);
    });
}

/// A command as a person would type it (for logs and messages).
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| {
            let s = a.to_string_lossy();
            if s.is_empty() || s.contains([' ', '"', '\'']) {
                format!("'{}'", s.replace('\'', r"'\''"))
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("xtask-session-{}-{name}.log", std::process::id()))
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn reads_output_types_input_and_collects_status() {
        let log = log_path("echo");
        let script = "printf 'hello\\r\\ncxos> '; read line; echo \"got $line\"; exit 33";
        let mut s = Session::spawn(sh(script), &log, Duration::from_secs(20)).unwrap();
        let after = s.expect("cxos> ").unwrap();
        s.send_line("lspci").unwrap();
        s.expect_from(after, "got lspci").unwrap();
        assert_eq!(s.wait_exit().unwrap().code(), Some(33));
        assert!(s.serial().starts_with("hello\ncxos> "));
        drop(s);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("got lspci"));
        assert!(text.contains("qemu exited"));
        std::fs::remove_file(log).unwrap();
    }

    #[test]
    fn a_hung_child_is_killed_at_the_deadline() {
        let log = log_path("hang");
        let mut s = Session::spawn(
            sh("echo start; exec sleep 60"),
            &log,
            Duration::from_millis(500),
        )
        .unwrap();
        let err = s.expect("never printed").unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(s.wait_exit().is_err());
        drop(s);
        std::fs::remove_file(log).unwrap();
    }

    #[test]
    fn expecting_after_exit_reports_the_exit() {
        let log = log_path("exit");
        let mut s =
            Session::spawn(sh("echo bye >&2; exit 35"), &log, Duration::from_secs(20)).unwrap();
        let err = s.expect("cxos> ").unwrap_err();
        assert!(err.contains("exited"), "{err}");
        drop(s);
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .contains("--- qemu stderr ---\nbye")
        );
        std::fs::remove_file(log).unwrap();
    }

    #[test]
    fn discarding_keeps_the_rest_of_the_output() {
        let log = log_path("discard");
        let mut s =
            Session::spawn(sh("echo aaa; echo bbb"), &log, Duration::from_secs(10)).unwrap();
        s.wait_exit().unwrap();
        s.discard_before(4);
        assert_eq!(s.serial(), "bbb\n");
        s.discard_before(100);
        assert_eq!(s.serial(), "");
    }

    #[test]
    fn a_capped_log_is_rotated() {
        let log = log_path("cap");
        let mut s = Session::spawn(
            sh("echo aaaa; sleep 0.2; echo bbbb"),
            &log,
            Duration::from_secs(10),
        )
        .unwrap();
        s.cap_log(1);
        s.wait_exit().unwrap();
        drop(s);
        let mut old = log.clone().into_os_string();
        old.push(".1");
        assert!(std::fs::read_to_string(&old).unwrap().contains("aaaa"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("bbbb") && !text.contains("aaaa"));
        std::fs::remove_file(log).unwrap();
        std::fs::remove_file(old).unwrap();
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 40), "a");
    }
}
