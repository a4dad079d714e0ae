//! What the queue-faults and fault-function-reset system tests share to
//! show that a lost command's wait is cooperative: stock `ping -D` from
//! the namespace runs while cxos waits, and the replies it got during
//! the wait are counted from ping's own timestamps.

use std::process::Output;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::netns::PeerNetwork;
use crate::systests_attach::Shell;

/// Stock ping's requests (every 200 ms) while a shell command waits on a
/// lost command: 10 s, inside the command timeout (15 s).
const LOST_PINGS: u32 = 50;
/// Replies counted only this far inside the wait (the command goes out
/// after the shell read the line; a blocked kernel answers its backlog
/// just before the shell's answer).
const WAIT_MARGIN: Duration = Duration::from_secs(2);
/// Replies the wait must let through: a kernel blocked on the command
/// answers none.
pub(crate) const MIN_REPLIES_DURING_WAIT: usize = 5;

/// Stock `ping -n -D -i 0.2 -c <count> <addr>` from the namespace, on a
/// thread of its own.
pub(crate) struct TimedPings(JoinHandle<std::io::Result<Output>>);

impl TimedPings {
    pub(crate) fn start(net: &PeerNetwork, count: u32, addr: &str) -> Self {
        let mut ping = net.netns().command("ping");
        ping.args(["-n", "-D", "-i", "0.2", "-c", &count.to_string(), addr]);
        Self(std::thread::spawn(move || ping.output()))
    }

    /// Ping's standard output, once it ended.
    pub(crate) fn finish(self) -> Result<String, String> {
        let out = self
            .0
            .join()
            .map_err(|_| "the ping thread panicked".to_string())?
            .map_err(|e| format!("stock ping: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Replies in stock `ping -D` output (`[<epoch s>.<us>] 64 bytes from
/// ...`) received between `from` and `to`.
pub(crate) fn replies_between(out: &str, from: SystemTime, to: SystemTime) -> usize {
    let secs = |t: SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let (from, to) = (secs(from), secs(to));
    out.lines()
        .filter(|l| l.contains(" bytes from "))
        .filter_map(|l| l.strip_prefix('[')?.split_once(']')?.0.parse::<f64>().ok())
        .filter(|t| (from..=to).contains(t))
        .count()
}

/// A shell command that waited on a lost command while stock ping ran.
pub(crate) struct PingedWait {
    pub answer: String,
    pub waited: Duration,
    /// Ping replies inside the wait.
    pub during: usize,
}

/// Asks `command` (which waits on a command the model drops) while stock
/// ping sends to `addr`; at least [`MIN_REPLIES_DURING_WAIT`] replies
/// inside the wait, or an error with ping's output.
pub(crate) fn ask_while_pinging(
    net: &PeerNetwork,
    shell: &mut Shell,
    command: &str,
    addr: &str,
) -> Result<PingedWait, String> {
    let pings = TimedPings::start(net, LOST_PINGS, addr);
    let asked = SystemTime::now();
    let t = Instant::now();
    let answer = shell.ask(command)?;
    let waited = t.elapsed();
    let answered = SystemTime::now();
    let out = pings.finish()?;
    let during = replies_between(&out, asked + WAIT_MARGIN, answered - WAIT_MARGIN);
    if during < MIN_REPLIES_DURING_WAIT {
        return Err(format!(
            "{during} ping replies while `{command}` waited {waited:?} on a lost command (want >= {MIN_REPLIES_DURING_WAIT}):\n{out}"
        ));
    }
    Ok(PingedWait {
        answer,
        waited,
        during,
    })
}
