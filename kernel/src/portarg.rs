//! Port settings as the shell (`led`, `speed`) and the command line
//! (`net.<i>=...,led=,speed=`) both spell them; its own module so neither
//! parser imports the other.

/// The identification LED as `led` asks for it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LedArg {
    Off,
    On,
    Beacon(u16),
}

/// What `speed` asks for: every speed, or one (Mb/s).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SpeedArg {
    Auto,
    Mbps(u32),
}

/// The `led` beacon's default duration (seconds), as `dlled` blinks.
pub const BEACON_DEFAULT_S: u16 = 15;

/// A rate: `25G`, `100M`, `1g`, or a plain number of Mb/s.
pub fn parse_rate(s: &str) -> Option<u32> {
    let (num, mul) = match s.as_bytes().last()? {
        b'G' | b'g' => (&s[..s.len() - 1], 1000),
        b'M' | b'm' => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    num.parse::<u32>().ok()?.checked_mul(mul).filter(|v| *v > 0)
}
