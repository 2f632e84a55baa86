//! Presigned part-upload and download URLs: HMAC-SHA256 over what the URL grants, with an
//! expiry, keyed with a secret kept in the MetaStore (so every node can verify them).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub struct UrlSigner {
    key: Vec<u8>,
}

impl UrlSigner {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self, what: &str, expires: i64) -> String {
        let mut h = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        h.update(what.as_bytes());
        h.update(b"\n");
        h.update(expires.to_string().as_bytes());
        hex::encode(h.finalize().into_bytes())
    }

    /// `?expires=..&sig=..` for `what` (e.g. `PUT <upload>/<part>`).
    pub fn query(&self, what: &str, expires: i64) -> String {
        format!("expires={expires}&sig={}", self.mac(what, expires))
    }

    /// Checks a URL's query against `what`; `Err` says why not.
    pub fn verify(&self, what: &str, query: Option<&str>, now_secs: i64) -> Result<(), &'static str> {
        let q = query.unwrap_or("");
        let get =
            |name: &str| q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v);
        let expires: i64 = get("expires").and_then(|e| e.parse().ok()).ok_or("missing expiry")?;
        let sig = get("sig").ok_or("missing signature")?;
        let want = self.mac(what, expires);
        let equal = want.len() == sig.len() && want.bytes().zip(sig.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
        if !equal {
            return Err("signature mismatch");
        }
        if now_secs > expires {
            return Err("expired");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_urls_bind_what_and_when() {
        let s = UrlSigner::new(b"k".to_vec());
        let q = s.query("PUT u/1", 1000);
        assert!(s.verify("PUT u/1", Some(&q), 999).is_ok());
        assert_eq!(s.verify("PUT u/2", Some(&q), 999), Err("signature mismatch"));
        assert_eq!(s.verify("PUT u/1", Some(&q), 1001), Err("expired"));
        assert_eq!(s.verify("PUT u/1", Some(&q.replace("1000", "9999")), 999), Err("signature mismatch"));
    }
}
