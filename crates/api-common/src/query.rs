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

/// One query parameter, percent-decoded with `+` kept literal (as signature values need).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    Query::parse(query, Plus::Literal).get(name).map(str::to_owned)
}

/// Decoded `name=value` pairs, in order (a name without `=` has an empty value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>, plus: Plus) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (decode(k, plus), decode(v, plus))
            })
            .collect();
        Self(pairs)
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
}
