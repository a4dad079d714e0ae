//! iperf3 command arguments from a string, as the shell and `test=` pass them:
//! `-s [-p port] [-B addr] [-1]` or
//! `-c addr [-p port] [-B addr] [-R] [-P n] [-t s] [-u] [-b rate] [-l len]`,
//! options in any order; `-t 0` runs until stopped, as iperf3.

use alloc::string::{String, ToString};
use core::fmt;
use core::str::FromStr;

use smoltcp::wire::IpAddress;

use super::proto::{
    DEFAULT_PORT, MAX_BLOCKSIZE, MAX_STREAMS, MAX_TIME, MAX_UDP_BLOCKSIZE, MIN_UDP_BLOCKSIZE,
    Protocol,
};

/// Client settings (`iperf3 -c`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    pub server: IpAddress,
    pub port: u16,
    /// `-B`: the local address the connections start from (default:
    /// the interface's, by route).
    pub bind: Option<IpAddress>,
    pub protocol: Protocol,
    pub reverse: bool,
    pub parallel: u32,
    /// Test length in seconds; 0 runs until stopped (iperf3's `-t 0`).
    pub time: u32,
    /// Target bits per second per stream; 0 = unlimited (default for TCP;
    /// UDP defaults to 1 Mbit/s like iperf3).
    pub bandwidth: u64,
    /// Block / datagram size (default 128 KiB for TCP, 1448 for UDP).
    pub len: u32,
}

impl ClientConfig {
    /// Defaults of `iperf3 -c server`.
    pub fn new(server: IpAddress) -> ClientConfig {
        ClientConfig {
            server,
            port: DEFAULT_PORT,
            bind: None,
            protocol: Protocol::Tcp,
            reverse: false,
            parallel: 1,
            time: 10,
            bandwidth: 0,
            len: 128 * 1024,
        }
    }
}

/// Server settings (`iperf3 -s`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub port: u16,
    /// `-B`: accept tests only on this local address (default: any of
    /// the interface's).
    pub bind: Option<IpAddress>,
    /// `-1`: serve one test, then stop.
    pub one_off: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: DEFAULT_PORT,
            bind: None,
            one_off: false,
        }
    }
}

/// A parsed iperf3 command line.
#[derive(Clone, Debug, PartialEq)]
pub enum Iperf3Args {
    Server(ServerConfig),
    Client(ClientConfig),
}

/// Why an argument string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgsError {
    NoRole,
    BothRoles,
    MissingValue(String),
    BadValue { option: String, value: String },
    UnknownOption(String),
    ClientOnly(String),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::NoRole => write!(
                f,
                "iperf3: parameter error - must either be a client (-c) or server (-s)"
            ),
            ArgsError::BothRoles => write!(
                f,
                "iperf3: parameter error - cannot be both server and client"
            ),
            ArgsError::MissingValue(o) => write!(f, "iperf3: option {o} requires an argument"),
            ArgsError::BadValue { option, value } => {
                write!(
                    f,
                    "iperf3: parameter error - bad value '{value}' for {option}"
                )
            }
            ArgsError::UnknownOption(o) => write!(f, "iperf3: unrecognized option '{o}'"),
            ArgsError::ClientOnly(o) => {
                write!(f, "iperf3: parameter error - {o} is a client-only option")
            }
        }
    }
}

/// "10", "10K", "1.5M", "2G": K/M/G multiply by `base` (1000 for rates, 1024 for sizes).
fn scaled(value: &str, base: u64) -> Option<u64> {
    let (num, mult) = match value.as_bytes().last()? {
        b'k' | b'K' => (&value[..value.len() - 1], base),
        b'm' | b'M' => (&value[..value.len() - 1], base * base),
        b'g' | b'G' => (&value[..value.len() - 1], base * base * base),
        _ => (value, 1),
    };
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let v = n * mult as f64;
    if v > 1e18 { None } else { Some(v as u64) }
}

impl FromStr for Iperf3Args {
    type Err = ArgsError;

    fn from_str(s: &str) -> Result<Self, ArgsError> {
        let mut words = s.split_whitespace();
        let mut server = false;
        let mut client: Option<IpAddress> = None;
        let mut port = DEFAULT_PORT;
        let mut bind: Option<IpAddress> = None;
        let mut one_off = false;
        let mut reverse = false;
        let mut udp = false;
        let mut parallel = 1u32;
        let mut time = 10u32;
        let mut bandwidth: Option<u64> = None;
        let mut len: Option<u32> = None;
        let mut client_only: Option<&str> = None;
        while let Some(w) = words.next() {
            let mut value = |opt: &str| -> Result<&str, ArgsError> {
                words
                    .next()
                    .ok_or_else(|| ArgsError::MissingValue(opt.to_string()))
            };
            let bad = |opt: &str, v: &str| ArgsError::BadValue {
                option: opt.to_string(),
                value: v.to_string(),
            };
            match w {
                "-s" | "--server" => server = true,
                "-1" | "--one-off" => one_off = true,
                "-c" | "--client" => {
                    let v = value(w)?;
                    client = Some(v.parse().map_err(|_| bad(w, v))?);
                }
                "-p" | "--port" => {
                    let v = value(w)?;
                    port = v
                        .parse()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| bad(w, v))?;
                }
                "-B" | "--bind" => {
                    let v = value(w)?;
                    bind = Some(v.parse().map_err(|_| bad(w, v))?);
                }
                "-R" | "--reverse" => {
                    reverse = true;
                    client_only = Some(w);
                }
                "-u" | "--udp" => {
                    udp = true;
                    client_only = Some(w);
                }
                "-P" | "--parallel" => {
                    let v = value(w)?;
                    parallel = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_STREAMS).contains(n))
                        .ok_or_else(|| bad(w, v))?;
                    client_only = Some(w);
                }
                "-t" | "--time" => {
                    let v = value(w)?;
                    time = v
                        .parse()
                        .ok()
                        .filter(|n| *n <= MAX_TIME)
                        .ok_or_else(|| bad(w, v))?;
                    client_only = Some(w);
                }
                "-b" | "--bitrate" | "--bandwidth" => {
                    let v = value(w)?;
                    bandwidth = Some(scaled(v, 1000).ok_or_else(|| bad(w, v))?);
                    client_only = Some(w);
                }
                "-l" | "--length" => {
                    let v = value(w)?;
                    let n = scaled(v, 1024).filter(|&n| n > 0 && n <= u64::from(MAX_BLOCKSIZE));
                    len = Some(n.ok_or_else(|| bad(w, v))? as u32);
                    client_only = Some(w);
                }
                other => return Err(ArgsError::UnknownOption(other.to_string())),
            }
        }
        match (server, client) {
            (true, Some(_)) => Err(ArgsError::BothRoles),
            (false, None) => Err(ArgsError::NoRole),
            (true, None) => match client_only {
                Some(o) => Err(ArgsError::ClientOnly(o.to_string())),
                None => Ok(Iperf3Args::Server(ServerConfig {
                    port,
                    bind,
                    one_off,
                })),
            },
            (false, Some(addr)) => {
                let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
                let len = len.unwrap_or(if udp { 1448 } else { 128 * 1024 });
                if udp && !(MIN_UDP_BLOCKSIZE..=MAX_UDP_BLOCKSIZE).contains(&len) {
                    return Err(ArgsError::BadValue {
                        option: "-l".to_string(),
                        value: len.to_string(),
                    });
                }
                Ok(Iperf3Args::Client(ClientConfig {
                    server: addr,
                    port,
                    bind,
                    protocol,
                    reverse,
                    parallel,
                    time,
                    bandwidth: bandwidth.unwrap_or(if udp { 1_000_000 } else { 0 }),
                    len,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    #[test]
    fn client_command_lines() {
        let a: Iperf3Args = "-c 10.0.0.1 -R -t 3".parse().unwrap();
        let mut want = ClientConfig::new(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1)));
        want.reverse = true;
        want.time = 3;
        assert_eq!(a, Iperf3Args::Client(want.clone()));
        let a: Iperf3Args = "-c 10.0.0.1 -u -b 2.5M -P 2 -l 1K -p 5202".parse().unwrap();
        want.reverse = false;
        want.time = 10;
        want.protocol = Protocol::Udp;
        want.bandwidth = 2_500_000;
        want.parallel = 2;
        want.len = 1024;
        want.port = 5202;
        assert_eq!(a, Iperf3Args::Client(want.clone()));
        let a: Iperf3Args = "-B 10.0.0.2 -u -l 1K -P 2 -p 5202 -b 2.5M -c 10.0.0.1"
            .parse()
            .unwrap();
        want.bind = Some(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2)));
        assert_eq!(a, Iperf3Args::Client(want));
        let Iperf3Args::Client(c) = "-c fd00::1 -u".parse().unwrap() else {
            panic!()
        };
        assert_eq!((c.bandwidth, c.len), (1_000_000, 1448));
        // -t 0: until stopped, as iperf3; beyond a day refused, as iperf3.
        let Iperf3Args::Client(c) = "-t 0 -c 10.0.0.1".parse().unwrap() else {
            panic!()
        };
        assert_eq!(c.time, 0);
        assert!("-c 10.0.0.1 -t 86401".parse::<Iperf3Args>().is_err());
    }

    #[test]
    fn server_and_errors() {
        assert_eq!(
            "-s".parse(),
            Ok(Iperf3Args::Server(ServerConfig::default()))
        );
        assert_eq!(
            "-s -p 6000 -1".parse(),
            Ok(Iperf3Args::Server(ServerConfig {
                port: 6000,
                bind: None,
                one_off: true
            }))
        );
        // Options in any order; -B binds the server to one address.
        assert_eq!(
            "-B fd00::2 -1 -s".parse(),
            Ok(Iperf3Args::Server(ServerConfig {
                port: DEFAULT_PORT,
                bind: Some("fd00::2".parse().unwrap()),
                one_off: true
            }))
        );
        assert_eq!(
            "-s -B host".parse::<Iperf3Args>(),
            Err(ArgsError::BadValue {
                option: "-B".into(),
                value: "host".into()
            })
        );
        assert_eq!("".parse::<Iperf3Args>(), Err(ArgsError::NoRole));
        assert_eq!(
            "-s -c 1.2.3.4".parse::<Iperf3Args>(),
            Err(ArgsError::BothRoles)
        );
        assert_eq!(
            "-s -R".parse::<Iperf3Args>(),
            Err(ArgsError::ClientOnly("-R".into()))
        );
        assert_eq!(
            "-c".parse::<Iperf3Args>(),
            Err(ArgsError::MissingValue("-c".into()))
        );
        assert_eq!(
            "-c 1.2.3.4 -x".parse::<Iperf3Args>(),
            Err(ArgsError::UnknownOption("-x".into()))
        );
        assert_eq!(
            "-c host".parse::<Iperf3Args>(),
            Err(ArgsError::BadValue {
                option: "-c".into(),
                value: "host".into()
            })
        );
        assert!(matches!(
            "-c 1.2.3.4 -P 0".parse::<Iperf3Args>(),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            "-c 1.2.3.4 -P 17".parse::<Iperf3Args>(),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            "-c 1.2.3.4 -u -l 100K".parse::<Iperf3Args>(),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            "-c 1.2.3.4 -b fast".parse::<Iperf3Args>(),
            Err(ArgsError::BadValue { .. })
        ));
    }
}
