//! Query strings and `application/x-www-form-urlencoded` bodies, decoded once, the same way
//! for every protocol: `%XX` decoded exactly once (byte-wise, so a `%` before a multi-byte
//! character is kept, never a panic), names and values as UTF-8 (invalid sequences replaced),
//! and `+` read as a space or kept literal as the caller's protocol says.

/// How a `+` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plus {
    /// A space (HTML forms, and SDKs that quote with `quote_plus`).
    Space,
    /// A plus sign (signature values in base64, RFC 3986 query components).
    Literal,
}

/// How one protocol's clients encode what they put in request targets, forms and name-carrying
/// headers. Every dialect has exactly one (`WIRE` in its crate root) and every endpoint of it
/// decodes through that one, so one endpoint cannot read a name differently from the next.
/// Whatever the rule, `%XX` is decoded exactly once and the bytes read as UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct Wire {
    /// How `+` reads in query strings and `application/x-www-form-urlencoded` bodies.
    pub plus: Plus,
    /// Query parameters that clients send unencoded, whose `+` is always literal (base64
    /// signatures placed in URLs as they are).
    pub raw_params: &'static [&'static str],
}

impl Wire {
    pub const fn new(plus: Plus, raw_params: &'static [&'static str]) -> Self {
        Self { plus, raw_params }
    }

    /// A query string's pairs, each decoded once by this protocol's rule.
    pub fn query(&self, raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let name = decode(k, self.plus);
                let plus = if self.raw_params.contains(&name.as_str()) { Plus::Literal } else { self.plus };
                let value = decode(v, plus);
                (name, value)
            })
            .collect();
        Query(pairs)
    }

    /// An `application/x-www-form-urlencoded` body's pairs (the query rule applies).
    pub fn form(&self, body: &[u8]) -> Query {
        self.query(Some(&String::from_utf8_lossy(body)))
    }

    /// A path segment or path as sent in the request target: `%XX` decoded once, `+` literal
    /// (RFC 3986 §3.3: a `+` in a path is a plus sign for every protocol).
    pub fn path(&self, raw: &str) -> String {
        decode(raw, Plus::Literal)
    }

    /// A header that carries a name (a copy or move source): its bytes as UTF-8 (clients that
    /// send names unescaped send UTF-8), then `%XX` decoded once; `None` when not UTF-8.
    pub fn header_name(&self, value: &http::HeaderValue) -> Option<String> {
        std::str::from_utf8(value.as_bytes()).ok().map(|s| decode(s.trim(), Plus::Literal))
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
pub fn percent_decode(s: &str) -> String {
    decode(s, Plus::Literal)
}

/// Decodes one query or form component.
pub fn decode(s: &str, plus: Plus) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus == Plus::Space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `name=value&...` with every name and value [`percent_encode`]d: a query string or an
/// `application/x-www-form-urlencoded` body (what [`Wire::form`] reads back).
pub fn urlencode<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k.as_ref()), percent_encode(v.as_ref())))
        .collect::<Vec<_>>()
        .join("&")
}

/// One query parameter, percent-decoded with `+` kept literal (as signature values need).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    Query::parse(query, Plus::Literal).get(name).map(str::to_owned)
}

/// Decoded `name=value` pairs, in order (a name without `=` has an empty value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Every pair decoded by one `+` rule (a dialect decodes through its [`Wire`] instead).
    pub fn parse(raw: Option<&str>, plus: Plus) -> Self {
        Wire::new(plus, &[]).query(raw)
    }

    /// An `application/x-www-form-urlencoded` body (`+` is a space).
    pub fn parse_form(body: &[u8]) -> Self {
        Self::parse(Some(&String::from_utf8_lossy(body)), Plus::Space)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Adds the pairs of another query (a form body after the URL's query).
    pub fn extend(&mut self, other: Query) {
        self.0.extend(other.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once_and_never_panics() {
        assert_eq!(percent_decode("a%2Fb+c%3d"), "a/b+c=");
        assert_eq!(decode("a%2Fb+c%3d", Plus::Space), "a/b c=");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%252F"), "%2F", "decoded exactly once");
        assert_eq!(percent_decode("%aé"), "%aé", "a % before a multi-byte character stays");
        assert_eq!(percent_decode("%é"), "%é");
        assert_eq!(percent_decode("%e4%b8%ad%E6%96%87"), "中文");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        assert_eq!(query_param(Some("x=1&sig=a+b%2B"), "sig").as_deref(), Some("a+b+"));
        let q = Query::parse(Some("prefix=a+b&flag&k=%26"), Plus::Space);
        assert_eq!((q.get("prefix"), q.get("flag"), q.get("k")), (Some("a b"), Some(""), Some("&")));
        assert!(q.has("flag") && !q.has("nope"));
        assert_eq!(percent_encode("a b/c+d~"), "a%20b%2Fc%2Bd~");
    }

    #[test]
    fn one_wire_rule_per_protocol() {
        const W: Wire = Wire::new(Plus::Space, &["sign"]);
        let q = W.query(Some("context=0%3Ap%2Fa+b.txt&sign=ab+c/d=&dest=%2Fa%2520b+%E4%B8%AD"));
        assert_eq!(q.get("context"), Some("0:p/a b.txt"), "+ is a space where the SDKs quote_plus");
        assert_eq!(q.get("sign"), Some("ab+c/d="), "raw base64 keeps its +");
        assert_eq!(q.get("dest"), Some("/a%20b 中"), "decoded exactly once");
        assert_eq!(W.form(b"a=x+y&b=%2B").get("a"), Some("x y"));
        let encoded = urlencode([("ext-param", "id 1/2"), ("url", "/中+")]);
        assert_eq!(encoded, "ext-param=id%201%2F2&url=%2F%E4%B8%AD%2B");
        assert_eq!(W.form(encoded.as_bytes()).get("url"), Some("/中+"));
        assert_eq!(W.path("/a+b%20c%2B%25"), "/a+b c+%", "a + in a path is a plus");
        let h = http::HeaderValue::from_bytes("/b/中 a%2520".as_bytes()).unwrap();
        assert_eq!(W.header_name(&h).as_deref(), Some("/b/中 a%20"));
        const S3: Wire = Wire::new(Plus::Literal, &[]);
        assert_eq!(S3.query(Some("prefix=a+b%20c")).get("prefix"), Some("a+b c"));
    }
}
