//! A QEMU Machine Protocol client, for tests that act on a running VM
//! from the host: today `set_link` on a NIC (the peer VM's carrier goes
//! down or up as if its cable were pulled; a model's `qemu:` wire has no
//! carrier of its own to drop).
//!
//! The VM listens on a unix socket (`-qmp unix:PATH,server=on,wait=off`,
//! [`crate::qemu::Machine::qmp`]). The protocol (QEMU's
//! docs/interop/qmp-spec.rst): one JSON object a line; the server greets
//! with `{"QMP": ...}`, the client must send `qmp_capabilities` before
//! any other command; each command is answered with `{"return": ...}` or
//! `{"error": {"class": ..., "desc": ...}}`, and asynchronous
//! `{"event": ...}` lines may come in between.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one answer may take (QEMU under load on 2 cores).
const ANSWER: Duration = Duration::from_secs(20);
/// The longest line accepted from the server.
const LINE_MAX: usize = 1 << 20;

/// A QMP connection past capability negotiation.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `path` (waiting up to `wait` for QEMU to create it),
    /// reads the greeting and enters command mode.
    pub fn connect(path: &Path, wait: Duration) -> Result<Qmp, String> {
        let until = Instant::now() + wait;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= until => {
                    return Err(format!("QMP {}: {e}", path.display()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        stream
            .set_read_timeout(Some(ANSWER))
            .and_then(|()| stream.set_write_timeout(Some(ANSWER)))
            .map_err(|e| format!("QMP {}: {e}", path.display()))?;
        let writer = stream
            .try_clone()
            .map_err(|e| format!("QMP {}: {e}", path.display()))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("QMP greeting expected, got {greeting}"));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs `command` with `arguments`; its `return` value, or the
    /// server's error as text.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        let mut request = json!({ "execute": command });
        if let Some(a) = arguments {
            request["arguments"] = a;
        }
        writeln!(self.writer, "{request}")
            .and_then(|()| self.writer.flush())
            .map_err(|e| format!("QMP {command}: {e}"))?;
        loop {
            let answer = self.read_message()?;
            if let Some(r) = answer.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = answer.get("error") {
                let desc = e.get("desc").and_then(Value::as_str).unwrap_or("?");
                return Err(format!("QMP {command}: {desc}"));
            }
            // An event: not the answer.
        }
    }

    /// `set_link`: the NIC (or netdev) `id`'s link up or down.
    pub fn set_link(&mut self, id: &str, up: bool) -> Result<(), String> {
        self.execute("set_link", Some(json!({ "name": id, "up": up })))
            .map(drop)
    }

    fn read_message(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = (&mut self.reader)
            .take(LINE_MAX as u64)
            .read_line(&mut line)
            .map_err(|e| format!("QMP read: {e}"))?;
        if n == 0 {
            return Err("QMP: the server closed the connection".into());
        }
        if !line.ends_with('\n') {
            return Err(format!("QMP: a line longer than {LINE_MAX} bytes"));
        }
        serde_json::from_str(line.trim()).map_err(|e| format!("QMP: {e}: {}", line.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A server speaking QMP as QEMU does for one client: greeting,
    /// capabilities, an event before the answer, `set_link` known for
    /// NIC `n0` only. Returns the requests it saw.
    fn fake_qemu(listener: UnixListener) -> std::thread::JoinHandle<Vec<Value>> {
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            writeln!(
                w,
                r#"{{"QMP": {{"version": {{"qemu": {{"micro": 3, "minor": 1, "major": 11}}}}, "capabilities": []}}}}"#
            )
            .unwrap();
            let mut seen = Vec::new();
            let mut line = String::new();
            while r.read_line(&mut line).unwrap() > 0 {
                let v: Value = serde_json::from_str(line.trim()).unwrap();
                line.clear();
                let answer = match v["execute"].as_str() {
                    Some("qmp_capabilities") if seen.is_empty() => json!({"return": {}}),
                    Some("set_link") if v["arguments"]["name"] == "n0" => {
                        writeln!(w, r#"{{"event": "NIC_RX_FILTER_CHANGED", "data": {{}}}}"#)
                            .unwrap();
                        json!({"return": {}})
                    }
                    Some("set_link") => json!({"error": {"class": "DeviceNotFound",
                        "desc": format!("Device '{}' not found", v["arguments"]["name"].as_str().unwrap())}}),
                    _ => json!({"error": {"class": "CommandNotFound", "desc": "no"}}),
                };
                seen.push(v);
                writeln!(w, "{answer}").unwrap();
            }
            seen
        })
    }

    #[test]
    fn set_link_speaks_qmp() {
        let path = std::env::temp_dir().join(format!("xtask-qmp-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let server = fake_qemu(UnixListener::bind(&path).unwrap());
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        qmp.set_link("n0", false).unwrap();
        qmp.set_link("n0", true).unwrap();
        let e = qmp.set_link("n9", false).unwrap_err();
        assert!(e.contains("Device 'n9' not found"), "{e}");
        drop(qmp);
        let seen = server.join().unwrap();
        assert_eq!(seen[0], json!({"execute": "qmp_capabilities"}));
        assert_eq!(
            seen[1],
            json!({"execute": "set_link", "arguments": {"name": "n0", "up": false}})
        );
        assert_eq!(seen[2]["arguments"]["up"], json!(true));
        assert_eq!(seen.len(), 4);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_server_that_is_not_qmp_is_refused() {
        let path = std::env::temp_dir().join(format!("xtask-qmp-bad-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            writeln!(s, r#"{{"hello": 1}}"#).unwrap();
        });
        let e = Qmp::connect(&path, Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("greeting"), "{e}");
        server.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }
}
