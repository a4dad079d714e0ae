//! The iperf3 wire protocol: control-channel state bytes, the cookie, the
//! length-prefixed JSON messages (parameters, results), the UDP stream
//! handshake and the UDP data header.
//!
//! Facts from iperf3's public source (esnet/iperf: src/iperf.h, iperf_api.h,
//! iperf_api.c send/get_parameters, send/get_results, JSON_read/JSON_write,
//! iperf_udp.c).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::json::{JsonError, ObjectWriter, Value};

/// Cookie length on the wire: 36 characters and a NUL (iperf.h COOKIE_SIZE).
pub const COOKIE_SIZE: usize = 37;
/// The characters iperf3 draws its cookie from (iperf_util.c make_cookie).
pub const COOKIE_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// iperf3's default port.
pub const DEFAULT_PORT: u16 = 5201;
/// Largest parameter object accepted (iperf3 caps its own at 8 KiB).
pub const MAX_PARAMS_JSON: usize = 8 * 1024;
/// Largest results object accepted (per-stream entries plus optional server output).
pub const MAX_RESULTS_JSON: usize = 64 * 1024;
/// The UDP stream "connect" datagram and its reply (iperf.h UDP_CONNECT_MSG /
/// UDP_CONNECT_REPLY, "6789" / "9876"), written by iperf3 as a native int:
/// little-endian on every host it runs on here.
pub const UDP_CONNECT_MSG: u32 = 0x3637_3839;
pub const UDP_CONNECT_REPLY: u32 = 0x3938_3736;
/// Values used by iperf3 before 3.8 (iperf.h LEGACY_UDP_CONNECT_*).
pub const LEGACY_UDP_CONNECT_MSG: u32 = 123_456_789;
pub const LEGACY_UDP_CONNECT_REPLY: u32 = 987_654_321;
/// iperf3 error numbers sent after SERVER_ERROR (iperf_api.h enum).
pub const IE_NUM_STREAMS: i32 = 6;
pub const IE_BLOCK_SIZE: i32 = 7;
pub const IE_UNIMP: i32 = 13;
pub const IE_RECV_PARAMS: i32 = 114;
pub const IE_STREAM_ID: i32 = 208;

/// One-byte control-channel states (iperf_api.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    TestStart,
    TestRunning,
    TestEnd,
    ParamExchange,
    CreateStreams,
    ServerTerminate,
    ClientTerminate,
    ExchangeResults,
    DisplayResults,
    IperfStart,
    IperfDone,
    AccessDenied,
    ServerError,
}

impl State {
    pub fn byte(self) -> u8 {
        let v: i8 = match self {
            State::TestStart => 1,
            State::TestRunning => 2,
            State::TestEnd => 4,
            State::ParamExchange => 9,
            State::CreateStreams => 10,
            State::ServerTerminate => 11,
            State::ClientTerminate => 12,
            State::ExchangeResults => 13,
            State::DisplayResults => 14,
            State::IperfStart => 15,
            State::IperfDone => 16,
            State::AccessDenied => -1,
            State::ServerError => -2,
        };
        v as u8
    }

    pub fn from_byte(b: u8) -> Option<State> {
        Some(match b as i8 {
            1 => State::TestStart,
            2 => State::TestRunning,
            4 => State::TestEnd,
            9 => State::ParamExchange,
            10 => State::CreateStreams,
            11 => State::ServerTerminate,
            12 => State::ClientTerminate,
            13 => State::ExchangeResults,
            14 => State::DisplayResults,
            15 => State::IperfStart,
            16 => State::IperfDone,
            -1 => State::AccessDenied,
            -2 => State::ServerError,
            _ => return None,
        })
    }
}

/// A test cookie: 36 characters of [`COOKIE_ALPHABET`] and a NUL.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cookie(pub [u8; COOKIE_SIZE]);

impl Cookie {
    /// A cookie from a seed (the caller's entropy: a clock, a counter, an RNG).
    pub fn from_seed(seed: u64) -> Cookie {
        let mut rng = XorShift::new(seed);
        let mut c = [0u8; COOKIE_SIZE];
        for b in c.iter_mut().take(COOKIE_SIZE - 1) {
            *b = COOKIE_ALPHABET[(rng.next() % 32) as usize];
        }
        Cookie(c)
    }

    /// The printable part.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0[..COOKIE_SIZE - 1]).unwrap_or("?")
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cookie({})", self.as_str())
    }
}

/// A tiny PRNG for cookies and ephemeral ports; not for anything secret.
#[derive(Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // splitmix64 spreads nearby seeds apart; xorshift needs a non-zero state.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Transport of the data streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// The test parameters the client sends after PARAM_EXCHANGE.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub protocol: Protocol,
    /// Seconds; the client ends the test.
    pub time: u32,
    pub parallel: u32,
    pub reverse: bool,
    /// Block (TCP write) or datagram (UDP) size in bytes.
    pub len: u32,
    /// Target rate in bits per second; 0 = unlimited.
    pub bandwidth: u64,
    /// UDP packet counters are 64-bit.
    pub udp_counters_64bit: bool,
}

/// Why a parameter object was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamsError {
    Json(JsonError),
    NotAnObject,
    BadField(&'static str),
    Unsupported(&'static str),
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamsError::Json(e) => write!(f, "parameters are not JSON: {e}"),
            ParamsError::NotAnObject => write!(f, "parameters are not a JSON object"),
            ParamsError::BadField(k) => write!(f, "parameter \"{k}\" has a bad value"),
            ParamsError::Unsupported(k) => write!(f, "parameter \"{k}\" is not supported"),
        }
    }
}

/// Upper bounds the server accepts (iperf3: MAX_STREAMS 128, MAX_BLOCKSIZE 1 MiB;
/// cxos keeps fewer streams because each holds socket buffers).
pub const MAX_STREAMS: u32 = 16;
pub const MAX_BLOCKSIZE: u32 = 1024 * 1024;
pub const MAX_UDP_BLOCKSIZE: u32 = 65_507;
/// Smallest UDP datagram: the 12-byte header (16 with 64-bit counters).
pub const MIN_UDP_BLOCKSIZE: u32 = 16;
pub const MAX_TIME: u32 = 86_400;

impl Params {
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        let mut w = ObjectWriter::new(&mut s);
        match self.protocol {
            Protocol::Tcp => w.bool("tcp", true),
            Protocol::Udp => w.bool("udp", true),
        };
        w.int("omit", 0)
            .int("time", i64::from(self.time))
            .int("num", 0)
            .int("blockcount", 0)
            .int("parallel", i64::from(self.parallel));
        if self.reverse {
            w.bool("reverse", true);
        }
        w.int("len", i64::from(self.len));
        if self.bandwidth != 0 {
            w.int("bandwidth", self.bandwidth.min(i64::MAX as u64) as i64);
        }
        if self.udp_counters_64bit {
            w.bool("udp_counters_64bit", true);
        }
        w.int("pacing_timer", 1000)
            .str("client_version", "cxos-3.12")
            .finish();
        s
    }

    /// Reads a parameter object as iperf3's get_parameters does: unknown
    /// members are ignored, known ones are range-checked, options cxos does
    /// not implement are refused.
    pub fn from_json(text: &[u8]) -> Result<Params, ParamsError> {
        let v = Value::parse(text).map_err(ParamsError::Json)?;
        if !v.is_object() {
            return Err(ParamsError::NotAnObject);
        }
        let flag = |k: &'static str| -> Result<bool, ParamsError> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                // cJSON clients may send 0/1.
                Some(n) => n.as_i64().map(|n| n != 0).ok_or(ParamsError::BadField(k)),
            }
        };
        let uint = |k: &'static str, max: u64| -> Result<Option<u64>, ParamsError> {
            match v.get(k) {
                None => Ok(None),
                Some(n) => match n.as_u64() {
                    Some(n) if n <= max => Ok(Some(n)),
                    _ => Err(ParamsError::BadField(k)),
                },
            }
        };
        let protocol = match (flag("tcp")?, flag("udp")?) {
            (_, false) => Protocol::Tcp,
            (false, true) => Protocol::Udp,
            (true, true) => return Err(ParamsError::BadField("udp")),
        };
        if flag("sctp")? {
            return Err(ParamsError::Unsupported("sctp"));
        }
        if flag("bidirectional")? {
            return Err(ParamsError::Unsupported("bidirectional"));
        }
        // -n / -k end a test by volume. The client watches its own sending,
        // so the server has nothing to do unless it is the sender (-R).
        let reverse = flag("reverse")?;
        for k in ["num", "blockcount"] {
            if uint(k, u64::MAX >> 12)?.unwrap_or(0) != 0 && reverse {
                return Err(ParamsError::Unsupported(k));
            }
        }
        let time = uint("time", u64::from(MAX_TIME))?.unwrap_or(10) as u32;
        let parallel = uint("parallel", u64::from(MAX_STREAMS))?.unwrap_or(1) as u32;
        if parallel == 0 {
            return Err(ParamsError::BadField("parallel"));
        }
        let default_len = match protocol {
            Protocol::Tcp => 128 * 1024,
            Protocol::Udp => 1448,
        };
        let len = uint("len", u64::from(MAX_BLOCKSIZE))?.unwrap_or(default_len) as u32;
        let udp_counters_64bit = flag("udp_counters_64bit")?;
        let len_ok = match protocol {
            Protocol::Tcp => len > 0,
            Protocol::Udp => (MIN_UDP_BLOCKSIZE..=MAX_UDP_BLOCKSIZE).contains(&len),
        };
        if !len_ok {
            return Err(ParamsError::BadField("len"));
        }
        let bandwidth = uint("bandwidth", u64::MAX >> 12)?.unwrap_or(0);
        Ok(Params {
            protocol,
            time,
            parallel,
            reverse,
            len,
            bandwidth,
            udp_counters_64bit,
        })
    }
}

/// One stream's entry in the results object.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamResult {
    pub id: u32,
    pub bytes: u64,
    /// -1 when unknown (smoltcp does not expose a retransmit count).
    pub retransmits: i64,
    /// Seconds.
    pub jitter: f64,
    pub errors: i64,
    pub packets: i64,
    pub start_time: f64,
    pub end_time: f64,
}

/// The results object exchanged after TEST_END.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    pub sender_has_retransmits: i64,
    pub streams: Vec<StreamResult>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ResultsError {
    Json(JsonError),
    Missing(&'static str),
    BadField(&'static str),
}

impl fmt::Display for ResultsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResultsError::Json(e) => write!(f, "results are not JSON: {e}"),
            ResultsError::Missing(k) => write!(f, "results lack \"{k}\""),
            ResultsError::BadField(k) => write!(f, "results member \"{k}\" has a bad value"),
        }
    }
}

impl Results {
    pub fn to_json(&self) -> String {
        let mut streams = String::from("[");
        for (i, st) in self.streams.iter().enumerate() {
            if i > 0 {
                streams.push(',');
            }
            ObjectWriter::new(&mut streams)
                .int("id", i64::from(st.id))
                .int("bytes", st.bytes.min(i64::MAX as u64) as i64)
                .int("retransmits", st.retransmits)
                .float("jitter", st.jitter)
                .int("errors", st.errors)
                .int("omitted_errors", 0)
                .int("packets", st.packets)
                .int("omitted_packets", 0)
                .float("start_time", st.start_time)
                .float("end_time", st.end_time)
                .finish();
        }
        streams.push(']');
        let mut s = String::new();
        ObjectWriter::new(&mut s)
            .int("cpu_util_total", 0)
            .int("cpu_util_user", 0)
            .int("cpu_util_system", 0)
            .int("sender_has_retransmits", self.sender_has_retransmits)
            .str("congestion_used", "reno")
            .raw("streams", &streams)
            .finish();
        s
    }

    /// Reads a results object with the members iperf3's get_results requires.
    pub fn from_json(text: &[u8]) -> Result<Results, ResultsError> {
        let v = Value::parse(text).map_err(ResultsError::Json)?;
        for k in ["cpu_util_total", "cpu_util_user", "cpu_util_system"] {
            match v.get(k) {
                Some(Value::Number(_)) => {}
                Some(_) => return Err(ResultsError::BadField("cpu_util")),
                None => return Err(ResultsError::Missing("cpu_util")),
            }
        }
        let sender_has_retransmits = signed(
            v.get("sender_has_retransmits")
                .ok_or(ResultsError::Missing("sender_has_retransmits"))?,
        )
        .ok_or(ResultsError::BadField("sender_has_retransmits"))?;
        let list = v
            .get("streams")
            .ok_or(ResultsError::Missing("streams"))?
            .as_array()
            .ok_or(ResultsError::BadField("streams"))?;
        if list.len() > MAX_STREAMS as usize {
            return Err(ResultsError::BadField("streams"));
        }
        let mut streams = Vec::with_capacity(list.len());
        for st in list {
            let int = |k: &'static str| -> Result<i64, ResultsError> {
                st.get(k)
                    .ok_or(ResultsError::Missing(k))?
                    .as_i64()
                    .ok_or(ResultsError::BadField(k))
            };
            let float = |k: &'static str| -> Result<Option<f64>, ResultsError> {
                match st.get(k) {
                    None => Ok(None),
                    Some(x) => x.as_f64().map(Some).ok_or(ResultsError::BadField(k)),
                }
            };
            let id = u32::try_from(int("id")?).map_err(|_| ResultsError::BadField("id"))?;
            let bytes =
                u64::try_from(int("bytes")?).map_err(|_| ResultsError::BadField("bytes"))?;
            let jitter = float("jitter")?.ok_or(ResultsError::Missing("jitter"))?;
            let retransmits = signed(
                st.get("retransmits")
                    .ok_or(ResultsError::Missing("retransmits"))?,
            )
            .ok_or(ResultsError::BadField("retransmits"))?;
            streams.push(StreamResult {
                id,
                bytes,
                retransmits,
                jitter,
                errors: int("errors")?,
                packets: int("packets")?,
                start_time: float("start_time")?.unwrap_or(0.0),
                end_time: float("end_time")?.unwrap_or(0.0),
            });
        }
        Ok(Results {
            sender_has_retransmits,
            streams,
        })
    }
}

/// A count that may be -1 ("unknown"). iperf3 3.12 prints its -1 as the
/// unsigned 18446744073709551615 (a cJSON 64-bit quirk): values beyond
/// i64 read as -1.
fn signed(v: &Value) -> Option<i64> {
    let n = v.as_f64()?;
    if n >= 9.2e18 {
        return Some(-1);
    }
    v.as_i64()
}

/// iperf3 numbers streams 1, 3, 4, 5, ... (iperf_api.c iperf_add_stream):
/// both ends use this to match result entries to streams.
pub fn stream_id(index: usize) -> u32 {
    if index == 0 { 1 } else { index as u32 + 2 }
}

/// Frames a JSON message: 4-byte big-endian length, then the text.
pub fn frame_json(json: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json.as_bytes());
}

/// Is `msg` a UDP stream "connect" datagram (current or legacy, either byte order)?
/// The current values are taken little-endian only: read big-endian, the
/// message would be the reply and vice versa.
pub fn is_udp_connect(msg: &[u8]) -> bool {
    msg == UDP_CONNECT_MSG.to_le_bytes() || is_legacy(msg, LEGACY_UDP_CONNECT_MSG)
}

pub fn is_udp_connect_reply(msg: &[u8]) -> bool {
    msg == UDP_CONNECT_REPLY.to_le_bytes() || is_legacy(msg, LEGACY_UDP_CONNECT_REPLY)
}

fn is_legacy(msg: &[u8], magic: u32) -> bool {
    msg == magic.to_le_bytes() || msg == magic.to_be_bytes()
}

/// The UDP data header (iperf_udp.c): seconds and microseconds of the send
/// time and the packet number, all big-endian; the number is 32 or 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    pub sec: u32,
    pub usec: u32,
    pub count: u64,
}

impl UdpHeader {
    pub fn len(counters_64bit: bool) -> usize {
        if counters_64bit { 16 } else { 12 }
    }

    pub fn write(&self, counters_64bit: bool, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&self.sec.to_be_bytes());
        buf[4..8].copy_from_slice(&self.usec.to_be_bytes());
        if counters_64bit {
            buf[8..16].copy_from_slice(&self.count.to_be_bytes());
        } else {
            buf[8..12].copy_from_slice(&(self.count as u32).to_be_bytes());
        }
    }

    pub fn read(counters_64bit: bool, buf: &[u8]) -> Option<UdpHeader> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?))
        };
        let count = if counters_64bit {
            u64::from_be_bytes(buf.get(8..16)?.try_into().ok()?)
        } else {
            u64::from(word(8)?)
        };
        Some(UdpHeader {
            sec: word(0)?,
            usec: word(4)?,
            count,
        })
    }
}

/// What the control channel delivered next.
#[derive(Clone, Debug, PartialEq)]
pub enum ControlItem {
    State(State),
    /// SERVER_ERROR with iperf3's error number and errno.
    ServerError {
        ierrno: i32,
        errno: i32,
    },
    Json(Vec<u8>),
}

/// Why the control channel's byte stream is unacceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    UnknownState(u8),
    JsonTooLong { len: u32, max: usize },
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::UnknownState(b) => write!(f, "unknown control state byte {}", *b as i8),
            ControlError::JsonTooLong { len, max } => {
                write!(
                    f,
                    "control message of {len} bytes exceeds the {max}-byte limit"
                )
            }
        }
    }
}

/// Incremental decoder for the control channel. The caller says what it
/// expects next (a state byte or a JSON message), feeds received bytes and
/// takes complete items; partial input stays buffered.
#[derive(Debug, Default)]
pub struct ControlReader {
    buf: Vec<u8>,
}

/// What the reader should decode next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    State,
    Json { max: usize },
}

impl ControlReader {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How many more bytes the reader wants before `next(expect)` can
    /// complete (a bound for how much to pull from the socket).
    pub fn wanted(&self, expect: Expect) -> usize {
        match expect {
            Expect::State => {
                if self.buf.first().map(|&b| State::from_byte(b)) == Some(Some(State::ServerError))
                {
                    9usize.saturating_sub(self.buf.len())
                } else {
                    1usize.saturating_sub(self.buf.len())
                }
            }
            Expect::Json { .. } => match self.buf.get(..4) {
                Some(l) => {
                    let len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                    (4 + len).saturating_sub(self.buf.len())
                }
                None => 4 - self.buf.len(),
            },
        }
    }

    /// The next complete item, `Ok(None)` if more bytes are needed.
    pub fn next(&mut self, expect: Expect) -> Result<Option<ControlItem>, ControlError> {
        match expect {
            Expect::State => {
                let Some(&b) = self.buf.first() else {
                    return Ok(None);
                };
                let state = State::from_byte(b).ok_or(ControlError::UnknownState(b))?;
                if state == State::ServerError {
                    if self.buf.len() < 9 {
                        return Ok(None);
                    }
                    let w = |at: usize| {
                        i32::from_be_bytes([
                            self.buf[at],
                            self.buf[at + 1],
                            self.buf[at + 2],
                            self.buf[at + 3],
                        ])
                    };
                    let item = ControlItem::ServerError {
                        ierrno: w(1),
                        errno: w(5),
                    };
                    self.buf.drain(..9);
                    return Ok(Some(item));
                }
                self.buf.remove(0);
                Ok(Some(ControlItem::State(state)))
            }
            Expect::Json { max } => {
                let Some(l) = self.buf.get(..4) else {
                    return Ok(None);
                };
                let len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]);
                if len as usize > max {
                    return Err(ControlError::JsonTooLong { len, max });
                }
                let end = 4 + len as usize;
                if self.buf.len() < end {
                    return Ok(None);
                }
                let json = self.buf[4..end].to_vec();
                self.buf.drain(..end);
                Ok(Some(ControlItem::Json(json)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_bytes_match_iperf_api_h() {
        // iperf_api.h: TEST_START 1, TEST_RUNNING 2, TEST_END 4, PARAM_EXCHANGE 9,
        // CREATE_STREAMS 10, SERVER_TERMINATE 11, CLIENT_TERMINATE 12,
        // EXCHANGE_RESULTS 13, DISPLAY_RESULTS 14, IPERF_START 15, IPERF_DONE 16,
        // ACCESS_DENIED -1, SERVER_ERROR -2.
        let table = [
            (State::TestStart, 0x01),
            (State::TestRunning, 0x02),
            (State::TestEnd, 0x04),
            (State::ParamExchange, 0x09),
            (State::CreateStreams, 0x0a),
            (State::ServerTerminate, 0x0b),
            (State::ClientTerminate, 0x0c),
            (State::ExchangeResults, 0x0d),
            (State::DisplayResults, 0x0e),
            (State::IperfStart, 0x0f),
            (State::IperfDone, 0x10),
            (State::AccessDenied, 0xff),
            (State::ServerError, 0xfe),
        ];
        for (s, b) in table {
            assert_eq!(s.byte(), b);
            assert_eq!(State::from_byte(b), Some(s));
        }
        for b in [0u8, 3, 5, 8, 17, 0x7f, 0x80, 0xfd] {
            assert_eq!(State::from_byte(b), None);
        }
    }

    #[test]
    fn cookie_is_36_alphabet_chars_and_nul() {
        let c = Cookie::from_seed(42);
        assert_eq!(c.0[36], 0);
        assert!(c.0[..36].iter().all(|b| COOKIE_ALPHABET.contains(b)));
        assert_ne!(Cookie::from_seed(42), Cookie::from_seed(43));
    }

    #[test]
    fn udp_connect_magic_bytes() {
        // "6789" as a little-endian int is the bytes '9','8','7','6'.
        assert_eq!(UDP_CONNECT_MSG.to_le_bytes(), *b"9876");
        assert_eq!(UDP_CONNECT_REPLY.to_le_bytes(), *b"6789");
        assert!(is_udp_connect(b"9876"));
        assert!(!is_udp_connect(b"6789"));
        assert!(is_udp_connect(&[0x15, 0xcd, 0x5b, 0x07])); // 123456789 LE
        assert!(is_udp_connect_reply(b"6789"));
        assert!(is_udp_connect_reply(&[0xb1, 0x68, 0xde, 0x3a])); // 987654321 LE
        assert!(is_udp_connect_reply(&[0x3a, 0xde, 0x68, 0xb1])); // 987654321 BE
        assert!(!is_udp_connect(b"98765"));
        assert!(!is_udp_connect_reply(b"9876"));
    }

    #[test]
    fn udp_header_layout() {
        let h = UdpHeader {
            sec: 0x0102_0304,
            usec: 0x0005_0607,
            count: 9,
        };
        let mut b = [0u8; 16];
        h.write(false, &mut b);
        assert_eq!(b[..12], [1, 2, 3, 4, 0, 5, 6, 7, 0, 0, 0, 9]);
        assert_eq!(UdpHeader::read(false, &b[..12]), Some(h));
        h.write(true, &mut b);
        assert_eq!(b, [1, 2, 3, 4, 0, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(UdpHeader::read(true, &b), Some(h));
        assert_eq!(UdpHeader::read(true, &b[..12]), None);
        assert_eq!(UdpHeader::read(false, &b[..11]), None);
    }

    #[test]
    fn stream_ids_follow_iperf_add_stream() {
        assert_eq!([0, 1, 2, 3].map(stream_id), [1, 3, 4, 5]);
    }

    #[test]
    fn params_from_stock_client_udp() {
        // iperf3 3.12 `-c host -u -b 2M -P 2 -t 2`.
        let p = Params::from_json(br#"{"udp":true,"omit":0,"time":2,"num":0,"blockcount":0,"parallel":2,"len":1448,"bandwidth":2000000,"pacing_timer":1000,"client_version":"3.12"}"#).unwrap();
        assert_eq!(
            p,
            Params {
                protocol: Protocol::Udp,
                time: 2,
                parallel: 2,
                reverse: false,
                len: 1448,
                bandwidth: 2_000_000,
                udp_counters_64bit: false
            }
        );
        assert_eq!(Params::from_json(p.to_json().as_bytes()).unwrap(), p);
    }

    #[test]
    fn params_refusals() {
        assert_eq!(Params::from_json(b"[1]"), Err(ParamsError::NotAnObject));
        assert!(matches!(
            Params::from_json(b"{\"tcp\":true"),
            Err(ParamsError::Json(_))
        ));
        assert_eq!(
            Params::from_json(br#"{"tcp":true,"parallel":17}"#),
            Err(ParamsError::BadField("parallel"))
        );
        assert_eq!(
            Params::from_json(br#"{"tcp":true,"time":"ten"}"#),
            Err(ParamsError::BadField("time"))
        );
        assert_eq!(
            Params::from_json(br#"{"udp":true,"len":8}"#),
            Err(ParamsError::BadField("len"))
        );
        assert_eq!(
            Params::from_json(br#"{"tcp":true,"bidirectional":true}"#),
            Err(ParamsError::Unsupported("bidirectional"))
        );
        assert_eq!(
            Params::from_json(br#"{"tcp":true,"num":1000,"reverse":true}"#),
            Err(ParamsError::Unsupported("num"))
        );
        assert!(Params::from_json(br#"{"tcp":true,"num":1000}"#).is_ok());
    }

    #[test]
    fn results_golden_from_stock_iperf3() {
        // A results object as iperf3 3.12's send_results writes it (cJSON, unformatted).
        let text = br#"{"cpu_util_total":1.2537,"cpu_util_user":0.0811,"cpu_util_system":1.1726,"sender_has_retransmits":1,"congestion_used":"cubic","streams":[{"id":1,"bytes":1048576000,"retransmits":3,"jitter":0,"errors":0,"omitted_errors":0,"packets":0,"omitted_packets":0,"start_time":0,"end_time":3.000123}]}"#;
        let r = Results::from_json(text).unwrap();
        assert_eq!(r.sender_has_retransmits, 1);
        assert_eq!(
            r.streams,
            [StreamResult {
                id: 1,
                bytes: 1_048_576_000,
                retransmits: 3,
                jitter: 0.0,
                errors: 0,
                packets: 0,
                start_time: 0.0,
                end_time: 3.000123
            }]
        );
        assert_eq!(Results::from_json(r.to_json().as_bytes()).unwrap(), r);
        // Captured from Debian's iperf3 3.12 as a receiver (-R): its -1 is
        // printed unsigned.
        let text = br#"{"cpu_util_total":6.9654242122769352,"cpu_util_user":0.576919720441529,"cpu_util_system":6.38845462410955,"sender_has_retransmits":18446744073709551615,"congestion_used":"bbr","streams":[{"id":1,"bytes":120381600,"retransmits":18446744073709551615,"jitter":0,"errors":0,"packets":0,"start_time":0,"end_time":2.000496}]}"#;
        let r = Results::from_json(text).unwrap();
        assert_eq!(r.sender_has_retransmits, -1);
        assert_eq!(
            (r.streams[0].bytes, r.streams[0].retransmits),
            (120_381_600, -1)
        );
        assert_eq!(r.streams[0].end_time, 2.000496);
        assert_eq!(
            Results::from_json(
                br#"{"cpu_util_total":0,"cpu_util_user":0,"cpu_util_system":0,"streams":[]}"#
            ),
            Err(ResultsError::Missing("sender_has_retransmits"))
        );
        assert_eq!(
            Results::from_json(br#"{"cpu_util_total":0,"cpu_util_user":0,"cpu_util_system":0,"sender_has_retransmits":0,"streams":[{"id":1,"bytes":-5,"retransmits":0,"jitter":0,"errors":0,"packets":0}]}"#),
            Err(ResultsError::BadField("bytes"))
        );
    }

    #[test]
    fn control_reader_frames_states_json_and_errors() {
        let mut r = ControlReader::default();
        assert_eq!(r.next(Expect::State), Ok(None));
        r.push(&[9, 0, 0]);
        assert_eq!(
            r.next(Expect::State),
            Ok(Some(ControlItem::State(State::ParamExchange)))
        );
        assert_eq!(r.wanted(Expect::Json { max: 100 }), 2);
        r.push(&[0, 2, b'{']);
        assert_eq!(r.next(Expect::Json { max: 100 }), Ok(None));
        assert_eq!(r.wanted(Expect::Json { max: 100 }), 1);
        r.push(b"}");
        assert_eq!(
            r.next(Expect::Json { max: 100 }),
            Ok(Some(ControlItem::Json(b"{}".to_vec())))
        );
        // SERVER_ERROR carries i_errno and errno, big-endian.
        r.push(&[0xfe, 0, 0, 0, 13, 0, 0]);
        assert_eq!(r.next(Expect::State), Ok(None));
        assert_eq!(r.wanted(Expect::State), 2);
        r.push(&[0, 0]);
        assert_eq!(
            r.next(Expect::State),
            Ok(Some(ControlItem::ServerError {
                ierrno: 13,
                errno: 0
            }))
        );
        r.push(&[0, 1, 0, 1]);
        assert_eq!(
            r.next(Expect::Json { max: 65536 }),
            Err(ControlError::JsonTooLong {
                len: 65537,
                max: 65536
            })
        );
        let mut r = ControlReader::default();
        r.push(&[3]);
        assert_eq!(r.next(Expect::State), Err(ControlError::UnknownState(3)));
        let mut framed = Vec::new();
        frame_json("{}", &mut framed);
        assert_eq!(framed, [0, 0, 0, 2, b'{', b'}']);
    }
}
