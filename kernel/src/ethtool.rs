//! The shell's `ethtool` and the same settings as `net.<i>=` items: the
//! fast path's techniques per interface, in ethtool's words.
//!
//! - `ethtool -c <if>` (`--show-coalesce`): the coalescing parameters;
//!   `ethtool -C <if> [rx-usecs N] [rx-frames N] [tx-usecs N] [tx-frames N]`
//!   (`--coalesce`, in any order): receive and transmit CQ event
//!   moderation, as Linux's mlx5 means them (an event after N µs or N
//!   completions; both 0: an event per completion);
//! - the selective completion interval (a transmit CQE requested every N
//!   WQEs and at every doorbell) is cxos's own technique with no stock
//!   ethtool word: a private flag is on/off only and no `-C` parameter
//!   means "which WQEs write a CQE", so it is the item `tx-cqe-every=N`
//!   (below; also at run time through `ifconfig <if> ...,tx-cqe-every=N`),
//!   and `ethtool -c` shows it on a last line of its own, `tx-cqe-every:`;
//! - `ethtool --show-priv-flags <if>`, `ethtool --set-priv-flags <if>
//!   <flag> on|off ...`: Linux mlx5's private flags `rx_cqe_compress`
//!   (CQE compression on the receive CQs) and `skb_tx_mpwqe` (enhanced
//!   multi-packet send WQEs; on ConnectX-4 Lx, where Linux refuses the
//!   flag, the legacy MPW sessions), spelled as Linux spells them, and cxos's own
//!   `tx_blueflame` (BlueFlame doorbells for small batches; Linux has no
//!   such switch).
//!
//! On the command line the same words are `net.<i>=` items after the
//! address: `net.0=dhcp,rx-usecs=8,rx-frames=32,tx-frames=16,tx-cqe-every=16,rx_cqe_compress=on,skb_tx_mpwqe=off`
//! ([`crate::cmdline::port_items`] takes them out), applied when the
//! port opens (to every VNIC opened on it too).

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

/// Settings to change; `None` keeps the current one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tune {
    /// `rx-usecs`: receive CQ moderation period (µs).
    pub rx_usecs: Option<u16>,
    /// `rx-frames`: receive CQ moderation count.
    pub rx_frames: Option<u16>,
    /// `tx-usecs`: transmit CQ moderation period (µs).
    pub tx_usecs: Option<u16>,
    /// `tx-frames`: transmit CQ moderation count.
    pub tx_frames: Option<u16>,
    /// `tx-cqe-every` (an item only): a transmit completion every this
    /// many WQEs (1..).
    pub tx_cqe_every: Option<u16>,
    /// Private flag `rx_cqe_compress`.
    pub rx_cqe_compress: Option<bool>,
    /// Private flag `skb_tx_mpwqe`.
    pub skb_tx_mpwqe: Option<bool>,
    /// Private flag `tx_blueflame` (cxos's own: Linux's mlx5 has no
    /// switch for BlueFlame doorbells).
    pub tx_blueflame: Option<bool>,
}

/// The private flags, in `--show-priv-flags` order.
pub const PRIV_FLAGS: [&str; 3] = ["rx_cqe_compress", "skb_tx_mpwqe", "tx_blueflame"];

/// The coalescing parameters `-C` takes.
const COALESCE: [&str; 4] = ["rx-usecs", "rx-frames", "tx-usecs", "tx-frames"];

/// Settings that are `net.<i>=` items only (no stock ethtool word).
const ITEMS_ONLY: [&str; 1] = ["tx-cqe-every"];

impl Tune {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `other`'s settings over these.
    pub fn merge(&mut self, other: &Tune) {
        self.rx_usecs = other.rx_usecs.or(self.rx_usecs);
        self.rx_frames = other.rx_frames.or(self.rx_frames);
        self.tx_usecs = other.tx_usecs.or(self.tx_usecs);
        self.tx_frames = other.tx_frames.or(self.tx_frames);
        self.tx_cqe_every = other.tx_cqe_every.or(self.tx_cqe_every);
        self.rx_cqe_compress = other.rx_cqe_compress.or(self.rx_cqe_compress);
        self.skb_tx_mpwqe = other.skb_tx_mpwqe.or(self.skb_tx_mpwqe);
        self.tx_blueflame = other.tx_blueflame.or(self.tx_blueflame);
    }

    /// Whether `key` is one of the settings (a coalescing parameter or a
    /// private flag).
    pub fn is_key(key: &str) -> bool {
        COALESCE.contains(&key) || PRIV_FLAGS.contains(&key) || ITEMS_ONLY.contains(&key)
    }

    /// Set `key` to `value` (`on`/`off` for a flag, a number for a
    /// coalescing parameter); `Err` says why not.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let flag = || match value {
            "on" => Ok(Some(true)),
            "off" => Ok(Some(false)),
            _ => Err(format!("{key}: '{value}' is not on or off")),
        };
        let number = |min: u16| match value.parse::<u16>() {
            Ok(n) if n >= min => Ok(Some(n)),
            _ => Err(format!(
                "{key}: '{value}' is not a number from {min} to 65535"
            )),
        };
        match key {
            "rx-usecs" => self.rx_usecs = number(0)?,
            "rx-frames" => self.rx_frames = number(0)?,
            "tx-usecs" => self.tx_usecs = number(0)?,
            "tx-frames" => self.tx_frames = number(0)?,
            "tx-cqe-every" => self.tx_cqe_every = number(1)?,
            "rx_cqe_compress" => self.rx_cqe_compress = flag()?,
            "skb_tx_mpwqe" => self.skb_tx_mpwqe = flag()?,
            "tx_blueflame" => self.tx_blueflame = flag()?,
            _ => return Err(format!("unknown setting '{key}'")),
        }
        Ok(())
    }
}

/// One `ethtool` command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ethtool<'a> {
    /// `-c <if>`.
    ShowCoalesce(&'a str),
    /// `-C <if> ...`.
    Coalesce(&'a str, Tune),
    /// `--show-priv-flags <if>`.
    ShowPrivFlags(&'a str),
    /// `--set-priv-flags <if> ...`.
    SetPrivFlags(&'a str, Tune),
}

impl<'a> Ethtool<'a> {
    /// The interface it is about.
    pub fn interface(&self) -> &'a str {
        match *self {
            Self::ShowCoalesce(i)
            | Self::Coalesce(i, _)
            | Self::ShowPrivFlags(i)
            | Self::SetPrivFlags(i, _) => i,
        }
    }
}

pub const USAGE: &str = "usage: ethtool -c|--show-priv-flags <if> | ethtool -C <if> [rx-usecs N] [rx-frames N] [tx-usecs N] [tx-frames N] | ethtool --set-priv-flags <if> rx_cqe_compress|skb_tx_mpwqe|tx_blueflame on|off ...";

/// Parse `ethtool`'s arguments (`is_if` tells an interface name).
pub fn parse<'a>(arg: &'a str, is_if: impl Fn(&str) -> bool) -> Result<Ethtool<'a>, String> {
    let mut words = arg.split_whitespace();
    let (Some(op), Some(name)) = (words.next(), words.next()) else {
        return Err(USAGE.into());
    };
    if !is_if(name) {
        return Err(format!("ethtool: bad interface '{name}'"));
    }
    let rest: alloc::vec::Vec<&str> = words.collect();
    let pairs = |allowed: &[&str]| -> Result<Tune, String> {
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(USAGE.into());
        }
        let mut t = Tune::default();
        for p in rest.chunks(2) {
            if !allowed.contains(&p[0]) {
                return Err(format!(
                    "ethtool: unknown {} '{}' ({})",
                    if allowed == PRIV_FLAGS {
                        "private flag"
                    } else {
                        "parameter"
                    },
                    p[0],
                    allowed.join(", ")
                ));
            }
            t.set(p[0], p[1]).map_err(|e| format!("ethtool: {e}"))?;
        }
        Ok(t)
    };
    match op {
        "-c" | "--show-coalesce" if rest.is_empty() => Ok(Ethtool::ShowCoalesce(name)),
        "--show-priv-flags" if rest.is_empty() => Ok(Ethtool::ShowPrivFlags(name)),
        "-C" | "--coalesce" => Ok(Ethtool::Coalesce(name, pairs(&COALESCE)?)),
        "--set-priv-flags" => Ok(Ethtool::SetPrivFlags(name, pairs(&PRIV_FLAGS)?)),
        _ => Err(USAGE.into()),
    }
}

/// What an interface has in force, for the reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shown {
    pub rx_usecs: u16,
    pub rx_frames: u16,
    pub tx_usecs: u16,
    pub tx_frames: u16,
    /// The selective completion interval.
    pub tx_cqe_every: u16,
    /// `rx_cqe_compress`, `skb_tx_mpwqe`, `tx_blueflame` ([`PRIV_FLAGS`]
    /// order).
    pub flags: [bool; 3],
}

/// `ethtool -c`'s answer (the lines stock ethtool prints for the
/// parameters cxos has; `n/a` for the adaptive modes it has not), then
/// cxos's own `tx-cqe-every:` line.
pub fn coalesce_text(name: &str, s: &Shown) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "Coalesce parameters for {name}:");
    let _ = writeln!(t, "Adaptive RX: n/a  TX: n/a");
    let _ = writeln!(t, "rx-usecs: {}", s.rx_usecs);
    let _ = writeln!(t, "rx-frames: {}", s.rx_frames);
    let _ = writeln!(t, "tx-usecs: {}", s.tx_usecs);
    let _ = writeln!(t, "tx-frames: {}", s.tx_frames);
    let _ = writeln!(t, "tx-cqe-every: {}", s.tx_cqe_every);
    t
}

/// `ethtool --show-priv-flags`'s answer.
pub fn priv_flags_text(name: &str, s: &Shown) -> String {
    let width = PRIV_FLAGS.iter().map(|f| f.len()).max().unwrap_or(0);
    let mut t = String::new();
    let _ = writeln!(t, "Private flags for {name}:");
    for (f, on) in PRIV_FLAGS.iter().zip(s.flags) {
        let _ = writeln!(t, "{f:<width$}: {}", if on { "on" } else { "off" });
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_if(n: &str) -> bool {
        n.starts_with("net") || n.starts_with("vnic")
    }

    #[test]
    fn parses_like_ethtool() {
        assert_eq!(parse("-c net0", is_if), Ok(Ethtool::ShowCoalesce("net0")));
        assert_eq!(
            parse("--show-coalesce vnic2", is_if),
            Ok(Ethtool::ShowCoalesce("vnic2"))
        );
        assert_eq!(
            parse("--show-priv-flags net1", is_if),
            Ok(Ethtool::ShowPrivFlags("net1"))
        );
        let want = Tune {
            rx_usecs: Some(8),
            rx_frames: Some(32),
            ..Tune::default()
        };
        assert_eq!(
            parse("-C net0 rx-usecs 8 rx-frames 32", is_if),
            Ok(Ethtool::Coalesce("net0", want))
        );
        assert_eq!(
            parse("-C net0 rx-frames 32 rx-usecs 8", is_if),
            Ok(Ethtool::Coalesce("net0", want))
        );
        assert_eq!(
            parse(
                "--set-priv-flags net0 rx_cqe_compress on skb_tx_mpwqe off",
                is_if
            ),
            Ok(Ethtool::SetPrivFlags(
                "net0",
                Tune {
                    rx_cqe_compress: Some(true),
                    skb_tx_mpwqe: Some(false),
                    ..Tune::default()
                }
            ))
        );
        assert_eq!(parse("-c", is_if), Err(USAGE.into()));
        assert_eq!(
            parse("-c eth0", is_if),
            Err("ethtool: bad interface 'eth0'".into())
        );
        assert_eq!(parse("-C net0", is_if), Err(USAGE.into()));
        assert_eq!(parse("-C net0 rx-usecs", is_if), Err(USAGE.into()));
        // Transmit moderation, in any order, 0 allowed (an event per CQE).
        assert_eq!(
            parse("-C net0 tx-frames 0 rx-usecs 4 tx-usecs 16", is_if),
            Ok(Ethtool::Coalesce(
                "net0",
                Tune {
                    rx_usecs: Some(4),
                    tx_usecs: Some(16),
                    tx_frames: Some(0),
                    ..Tune::default()
                }
            ))
        );
        // The selective completion interval is no ethtool parameter.
        assert_eq!(
            parse("-C net0 tx-cqe-every 8", is_if),
            Err(
                "ethtool: unknown parameter 'tx-cqe-every' (rx-usecs, rx-frames, tx-usecs, tx-frames)"
                    .into()
            )
        );
        assert_eq!(
            parse("-C net0 tx-usecs x", is_if),
            Err("ethtool: tx-usecs: 'x' is not a number from 0 to 65535".into())
        );
        assert_eq!(
            parse("--set-priv-flags net0 rx_striding_rq on", is_if),
            Err("ethtool: unknown private flag 'rx_striding_rq' (rx_cqe_compress, skb_tx_mpwqe, tx_blueflame)".into())
        );
        assert_eq!(
            parse("--set-priv-flags net0 skb_tx_mpwqe yes", is_if),
            Err("ethtool: skb_tx_mpwqe: 'yes' is not on or off".into())
        );
        assert_eq!(parse("-k net0", is_if), Err(USAGE.into()));
    }

    #[test]
    fn reports_in_ethtools_layout() {
        let s = Shown {
            rx_usecs: 8,
            rx_frames: 32,
            tx_usecs: 16,
            tx_frames: 4,
            tx_cqe_every: 32,
            flags: [true, false, true],
        };
        assert_eq!(
            coalesce_text("net0", &s),
            "Coalesce parameters for net0:\nAdaptive RX: n/a  TX: n/a\nrx-usecs: 8\nrx-frames: 32\ntx-usecs: 16\ntx-frames: 4\ntx-cqe-every: 32\n"
        );
        assert_eq!(
            priv_flags_text("net0", &s),
            "Private flags for net0:\nrx_cqe_compress: on\nskb_tx_mpwqe   : off\ntx_blueflame   : on\n"
        );
    }

    #[test]
    fn merge_and_set() {
        let mut a = Tune::default();
        assert!(a.is_empty());
        a.set("rx-usecs", "16").unwrap();
        let mut b = Tune::default();
        b.set("skb_tx_mpwqe", "off").unwrap();
        a.merge(&b);
        assert_eq!(a.rx_usecs, Some(16));
        assert_eq!(a.skb_tx_mpwqe, Some(false));
        assert!(Tune::is_key("rx_cqe_compress") && !Tune::is_key("mtu"));
        assert!(Tune::is_key("tx-cqe-every") && Tune::is_key("tx-usecs"));
        assert!(a.set("mtu", "1").is_err());
        assert!(a.set("tx-cqe-every", "0").is_err());
        a.set("tx-cqe-every", "8").unwrap();
        a.set("tx-frames", "0").unwrap();
        assert_eq!((a.tx_cqe_every, a.tx_frames), (Some(8), Some(0)));
    }
}
