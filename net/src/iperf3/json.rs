//! A small JSON reader and writer for iperf3's control messages.
//!
//! iperf3 exchanges one JSON object per message (parameters, results). The
//! peer is untrusted, so parsing is bounded: input size is limited by the
//! caller, nesting depth here, and every error is a typed [`JsonError`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// Deepest nesting accepted; iperf3's own messages nest three levels.
pub const MAX_DEPTH: usize = 16;

/// A parsed JSON value. Objects keep their members in input order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

/// Why a JSON text was rejected, with the byte offset where it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonError {
    UnexpectedEnd,
    UnexpectedByte { at: usize, byte: u8 },
    BadNumber { at: usize },
    BadEscape { at: usize },
    BadUtf8 { at: usize },
    TooDeep { at: usize },
    TrailingData { at: usize },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::UnexpectedEnd => write!(f, "JSON ends early"),
            JsonError::UnexpectedByte { at, byte } => {
                write!(f, "unexpected byte 0x{byte:02x} in JSON at offset {at}")
            }
            JsonError::BadNumber { at } => write!(f, "bad JSON number at offset {at}"),
            JsonError::BadEscape { at } => write!(f, "bad JSON string escape at offset {at}"),
            JsonError::BadUtf8 { at } => write!(f, "invalid UTF-8 in JSON at offset {at}"),
            JsonError::TooDeep { at } => {
                write!(f, "JSON nested deeper than {MAX_DEPTH} at offset {at}")
            }
            JsonError::TrailingData { at } => write!(f, "data after the JSON value at offset {at}"),
        }
    }
}

impl Value {
    /// Parses one complete JSON text (surrounding whitespace allowed).
    pub fn parse(text: &[u8]) -> Result<Value, JsonError> {
        let mut p = Parser { s: text, i: 0 };
        p.skip_ws();
        let v = p.value(0)?;
        p.skip_ws();
        if p.i != text.len() {
            return Err(JsonError::TrailingData { at: p.i });
        }
        Ok(v)
    }

    /// Member `key` of an object (the first one if repeated).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// An integral number in i64 range.
    pub fn as_i64(&self) -> Option<i64> {
        let n = self.as_f64()?;
        // Exactly representable integers only: beyond 2^53 f64 loses units.
        if n.is_finite() && n == (n as i64) as f64 && (-9.0e15..=9.0e15).contains(&n) {
            Some(n as i64)
        } else {
            None
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        self.as_i64().and_then(|n| u64::try_from(n).ok())
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Result<u8, JsonError> {
        self.s.get(self.i).copied().ok_or(JsonError::UnexpectedEnd)
    }

    fn expect(&mut self, b: u8) -> Result<(), JsonError> {
        let got = self.peek()?;
        if got != b {
            return Err(JsonError::UnexpectedByte {
                at: self.i,
                byte: got,
            });
        }
        self.i += 1;
        Ok(())
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, JsonError> {
        for &b in word {
            self.expect(b)?;
        }
        Ok(v)
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep { at: self.i });
        }
        match self.peek()? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => Ok(Value::String(self.string()?)),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            byte => Err(JsonError::UnexpectedByte { at: self.i, byte }),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.expect(b'{')?;
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let v = self.value(depth + 1)?;
            members.push((key, v));
            self.skip_ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(Value::Object(members));
                }
                byte => return Err(JsonError::UnexpectedByte { at: self.i, byte }),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                byte => return Err(JsonError::UnexpectedByte { at: self.i, byte }),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let start = self.i;
        let digits = self
            .s
            .get(start..start + 4)
            .ok_or(JsonError::UnexpectedEnd)?;
        let mut v = 0u32;
        for &d in digits {
            let n = (d as char)
                .to_digit(16)
                .ok_or(JsonError::BadEscape { at: start })?;
            v = v * 16 + n;
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let at = self.i;
            let b = self.peek()?;
            match b {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.i += 1;
                    let e = self.peek()?;
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                // A surrogate pair: the low half must follow.
                                self.expect(b'\\')
                                    .map_err(|_| JsonError::BadEscape { at })?;
                                self.expect(b'u').map_err(|_| JsonError::BadEscape { at })?;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(JsonError::BadEscape { at });
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or(JsonError::BadEscape { at })?
                        }
                        _ => return Err(JsonError::BadEscape { at }),
                    };
                    out.push(c);
                }
                0..=0x1f => return Err(JsonError::UnexpectedByte { at, byte: b }),
                _ => {
                    // Copy a run of plain bytes, validating it as UTF-8.
                    let mut end = self.i;
                    while end < self.s.len() && !matches!(self.s[end], b'"' | b'\\' | 0..=0x1f) {
                        end += 1;
                    }
                    let run = core::str::from_utf8(&self.s[self.i..end]).map_err(|e| {
                        JsonError::BadUtf8 {
                            at: self.i + e.valid_up_to(),
                        }
                    })?;
                    out.push_str(run);
                    self.i = end;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.i;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.s.get(self.i) {
            self.i += 1;
        }
        let text = core::str::from_utf8(&self.s[start..self.i])
            .map_err(|_| JsonError::BadNumber { at: start })?;
        // JSON forbids what Rust's parser would accept: a leading '+', ".5", "5.".
        let digits = text.strip_prefix('-').unwrap_or(text);
        let bytes = digits.as_bytes();
        let starts_with_digit = bytes.first().is_some_and(u8::is_ascii_digit);
        let leading_zero =
            bytes.first() == Some(&b'0') && bytes.get(1).is_some_and(u8::is_ascii_digit);
        let empty_fraction =
            digits.contains(".e") || digits.contains(".E") || digits.ends_with('.');
        if !starts_with_digit || leading_zero || empty_fraction {
            return Err(JsonError::BadNumber { at: start });
        }
        let n: f64 = text
            .parse()
            .map_err(|_| JsonError::BadNumber { at: start })?;
        if !n.is_finite() {
            return Err(JsonError::BadNumber { at: start });
        }
        Ok(Value::Number(n))
    }
}

/// Writes a JSON object member by member, without building a tree.
#[derive(Debug)]
pub struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_string(self.out, key);
        self.out.push(':');
    }

    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.key(key);
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    pub fn int(&mut self, key: &str, v: i64) -> &mut Self {
        self.key(key);
        let _ = write!(self.out, "{v}");
        self
    }

    /// A float; non-finite values (never produced on purpose) become 0.
    pub fn float(&mut self, key: &str, v: f64) -> &mut Self {
        self.key(key);
        write_float(self.out, v);
        self
    }

    /// A float with `decimals` digits after the point (no exponent, no noise digits).
    pub fn fixed(&mut self, key: &str, v: f64, decimals: usize) -> &mut Self {
        self.key(key);
        if v.is_finite() {
            let _ = write!(self.out, "{v:.decimals$}");
        } else {
            self.out.push('0');
        }
        self
    }

    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key);
        write_string(self.out, v);
        self
    }

    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.out.push_str("null");
        self
    }

    /// A member whose value is already-serialized JSON.
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.out.push_str(json);
        self
    }

    pub fn finish(&mut self) {
        self.out.push('}');
    }
}

pub fn write_float(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
        // `{}` prints integral floats as "3"; keep them recognisably JSON numbers either way.
    } else {
        out.push('0');
    }
}

pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn parses_iperf3_client_parameters() {
        // The parameter object iperf3 3.12 sends for `iperf3 -c host -R -t 3`.
        let text = br#"{"tcp":true,"omit":0,"time":3,"num":0,"blockcount":0,"parallel":1,"reverse":true,"len":131072,"pacing_timer":1000,"client_version":"3.12"}"#;
        let v = Value::parse(text).unwrap();
        assert_eq!(v.get("tcp"), Some(&Value::Bool(true)));
        assert_eq!(v.get("time").and_then(Value::as_u64), Some(3));
        assert_eq!(v.get("len").and_then(Value::as_u64), Some(131072));
        assert_eq!(
            v.get("client_version").and_then(Value::as_str),
            Some("3.12")
        );
        assert_eq!(v.get("udp"), None);
    }

    #[test]
    fn parses_cjson_style_numbers_and_nesting() {
        let text = br#" { "a" : [ 1.5e-05 , -2, 0, 0.25, {"b": null} ], "s": "x\"\\\u00e9\ud83d\ude00" } "#;
        let v = Value::parse(text).unwrap();
        let a = v.get("a").and_then(Value::as_array).unwrap();
        assert_eq!(a[0].as_f64(), Some(1.5e-05));
        assert_eq!(a[1].as_i64(), Some(-2));
        assert_eq!(a[1].as_u64(), None);
        assert_eq!(a[3].as_i64(), None);
        assert_eq!(a[4].get("b"), Some(&Value::Null));
        assert_eq!(
            v.get("s").and_then(Value::as_str),
            Some("x\"\\\u{e9}\u{1F600}")
        );
    }

    #[test]
    fn rejects_malformed_text_with_typed_errors() {
        assert_eq!(Value::parse(b""), Err(JsonError::UnexpectedEnd));
        assert_eq!(Value::parse(b"{\"a\":1"), Err(JsonError::UnexpectedEnd));
        assert_eq!(
            Value::parse(b"{\"a\":1}x"),
            Err(JsonError::TrailingData { at: 7 })
        );
        assert_eq!(
            Value::parse(b"{a:1}"),
            Err(JsonError::UnexpectedByte { at: 1, byte: b'a' })
        );
        assert_eq!(Value::parse(b"[01]"), Err(JsonError::BadNumber { at: 1 }));
        assert_eq!(
            Value::parse(b"[+1]"),
            Err(JsonError::UnexpectedByte { at: 1, byte: b'+' })
        );
        assert_eq!(Value::parse(b"[1.]"), Err(JsonError::BadNumber { at: 1 }));
        assert_eq!(
            Value::parse(b"[1e999]"),
            Err(JsonError::BadNumber { at: 1 })
        );
        assert_eq!(
            Value::parse(b"\"\\q\""),
            Err(JsonError::BadEscape { at: 1 })
        );
        assert_eq!(Value::parse(b"\"\xff\""), Err(JsonError::BadUtf8 { at: 1 }));
        assert_eq!(
            Value::parse(b"\"a\nb\""),
            Err(JsonError::UnexpectedByte { at: 2, byte: b'\n' })
        );
        assert_eq!(Value::parse(b"tru"), Err(JsonError::UnexpectedEnd));
        let deep = vec![b'['; MAX_DEPTH + 2];
        assert_eq!(
            Value::parse(&deep),
            Err(JsonError::TooDeep { at: MAX_DEPTH + 1 })
        );
    }

    #[test]
    fn writer_output_is_exact_and_parses_back() {
        let mut s = String::new();
        ObjectWriter::new(&mut s)
            .bool("tcp", true)
            .int("time", 3)
            .float("jitter", 0.5)
            .str("t", "a\"b\n\u{1}")
            .null("e")
            .raw("streams", "[]")
            .finish();
        assert_eq!(
            s,
            r#"{"tcp":true,"time":3,"jitter":0.5,"t":"a\"b\n\u0001","e":null,"streams":[]}"#
        );
        let v = Value::parse(s.as_bytes()).unwrap();
        assert_eq!(v.get("t").and_then(Value::as_str), Some("a\"b\n\u{1}"));
        assert_eq!(f64::NAN.to_string(), "NaN");
        let mut n = String::new();
        write_float(&mut n, f64::NAN);
        assert_eq!(n, "0");
    }
}
