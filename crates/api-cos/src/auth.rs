//! COS signatures (identical in v3 and v4):
//! `sign = Base64(HMAC-SHA1(SecretKey, plain) || plain)` with
//! `plain = "a=<appid>&k=<SecretID>&e=<expires>&t=<now>&r=<rand>&f=<fileid>&b=<bucket>"`
//! (fields in any order). `e > 0` makes a multi-use signature valid until `e` (at most 90 days
//! after `t`); `e = 0` a once signature, bound to its `fileid` and accepted a single time.
//! `fileid` is `/<appid>/<bucket><url-quoted path>` for the API and the quoted path alone for
//! downloads; a multi-use signature may leave it empty (any path) or end it with `*` (a prefix).

use base64::Engine as _;

use crate::error::{CosError, CosResult};

/// Longest validity of a multi-use signature (the spec's 7,776,000 s).
pub const MAX_VALIDITY_SECS: i64 = 90 * 24 * 3600;
/// How far a once signature's `t` may be from the server's clock: once signatures carry no
/// expiry, so this bounds how long the server must remember that one was used.
pub const ONCE_WINDOW_SECS: i64 = 15 * 60;

#[derive(Debug, Clone)]
pub struct Signature {
    pub appid: String,
    pub secret_id: String,
    pub expires: i64,
    pub time: i64,
    pub fileid: String,
    pub bucket: String,
    plain: Vec<u8>,
    mac: Vec<u8>,
}

impl Signature {
    pub fn parse(sign: &str) -> CosResult<Self> {
        let malformed = || CosError::auth_failed("ERROR_PROXY_AUTH_FAILED: the signature cannot be decoded");
        let raw = base64::engine::general_purpose::STANDARD.decode(sign.trim()).map_err(|_| malformed())?;
        if raw.len() <= 20 {
            return Err(malformed());
        }
        let (mac, plain) = raw.split_at(20);
        let text = std::str::from_utf8(plain).map_err(|_| malformed())?;
        let mut s = Signature {
            appid: String::new(),
            secret_id: String::new(),
            expires: -1,
            time: -1,
            fileid: String::new(),
            bucket: String::new(),
            plain: plain.to_vec(),
            mac: mac.to_vec(),
        };
        for pair in text.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "a" => s.appid = v.to_owned(),
                "k" => s.secret_id = v.to_owned(),
                "e" => s.expires = v.parse().map_err(|_| malformed())?,
                "t" => s.time = v.parse().map_err(|_| malformed())?,
                "f" => s.fileid = v.to_owned(),
                "b" => s.bucket = v.to_owned(),
                _ => {}
            }
        }
        if s.appid.is_empty() || s.secret_id.is_empty() || s.expires < 0 || s.time < 0 {
            return Err(malformed());
        }
        Ok(s)
    }

    pub fn is_once(&self) -> bool {
        self.expires == 0
    }

    /// Checks the MAC against the secret of `k`.
    pub fn verify(&self, secret: &str) -> CosResult<()> {
        let want = chuan_api_common::sign::hmac_sha1(secret.as_bytes(), &self.plain);
        if chuan_core::constant_time_eq(&want, &self.mac) {
            Ok(())
        } else {
            Err(CosError::auth_failed("ERROR_PROXY_AUTH_FAILED: signature mismatch"))
        }
    }

    /// Whether the signed `fileid` covers `path` (both compared percent-decoded).
    pub fn covers(&self, path: &str) -> bool {
        let f = crate::WIRE.path(&self.fileid);
        match f.strip_suffix('*') {
            Some(prefix) if !self.is_once() => path.starts_with(prefix),
            _ => f == path,
        }
    }

    /// Time checks: a multi-use signature until `e` (at most 90 days after `t`); a once
    /// signature within [`ONCE_WINDOW_SECS`] of `t`. `relative_small_e`: downloads signed by
    /// `qcloud_cos_v4` 0.0.9 carry the validity (300) where the expiry belongs; an `e` before
    /// `t` is read as seconds after `t`.
    pub fn check_time(&self, now: i64, relative_small_e: bool) -> CosResult<()> {
        let expired = || CosError::new(-96, "ERROR_PROXY_AUTH_EXPIRED: the signature has expired; sign again");
        if self.is_once() {
            if (now - self.time).abs() > ONCE_WINDOW_SECS {
                return Err(expired());
            }
            return Ok(());
        }
        let expires = if relative_small_e && self.expires < self.time {
            self.time.saturating_add(self.expires)
        } else {
            self.expires
        };
        if expires - self.time > MAX_VALIDITY_SECS {
            return Err(CosError::auth_failed("ERROR_PROXY_AUTH_FAILED: a signature may be valid for 90 days at most"));
        }
        if expires <= now {
            return Err(expired());
        }
        Ok(())
    }

    /// The id under which the use of a once signature is remembered.
    pub fn once_id(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest([self.mac.as_slice(), &self.plain].concat()))
    }
}

/// Signs `plain` (what the SDKs do; used by tests and by Chuan's own download URLs).
pub fn sign(secret: &str, plain: &str) -> String {
    let mut raw = chuan_api_common::sign::hmac_sha1(secret.as_bytes(), plain.as_bytes()).to_vec();
    raw.extend_from_slice(plain.as_bytes());
    chuan_api_common::sign::base64(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples_from_the_sdk() {
        // client-sdks.md §3.3.
        let plain = "a=1250000000&k=AKIDexample&e=1700000300&t=1700000000&r=123456789&f=/1250000000/mybucket/dir/hello.txt&b=mybucket";
        let s = sign("secretKEY", plain);
        assert_eq!(s, "bZTQ7KifeX4HKi6myFpbdJQ2y6BhPTEyNTAwMDAwMDAmaz1BS0lEZXhhbXBsZSZlPTE3MDAwMDAzMDAmdD0xNzAwMDAwMDAwJnI9MTIzNDU2Nzg5JmY9LzEyNTAwMDAwMDAvbXlidWNrZXQvZGlyL2hlbGxvLnR4dCZiPW15YnVja2V0");
        let once = sign("secretKEY", &plain.replace("e=1700000300", "e=0"));
        assert_eq!(once, "QETRr28f+I37R0LVPxweVUfC7dxhPTEyNTAwMDAwMDAmaz1BS0lEZXhhbXBsZSZlPTAmdD0xNzAwMDAwMDAwJnI9MTIzNDU2Nzg5JmY9LzEyNTAwMDAwMDAvbXlidWNrZXQvZGlyL2hlbGxvLnR4dCZiPW15YnVja2V0");
        let parsed = Signature::parse(&s).unwrap();
        assert_eq!((parsed.appid.as_str(), parsed.bucket.as_str()), ("1250000000", "mybucket"));
        assert!(parsed.verify("secretKEY").is_ok());
        assert!(parsed.verify("wrong").is_err());
        assert!(parsed.covers("/1250000000/mybucket/dir/hello.txt"));
        assert!(!parsed.covers("/1250000000/mybucket/dir/other.txt"));
        assert!(parsed.check_time(1_700_000_100, false).is_ok());
        assert_eq!(parsed.check_time(1_700_000_300, false).unwrap_err().code, -96);
        let once = Signature::parse(&once).unwrap();
        assert!(once.is_once());
        assert!(once.check_time(1_700_000_000 + ONCE_WINDOW_SECS, false).is_ok());
        assert_eq!(once.check_time(1_700_000_001 + ONCE_WINDOW_SECS, false).unwrap_err().code, -96);
        // The v4 0.0.9 download bug: e = 300 means 300 s after t.
        let dl = Signature::parse(&sign("k", "a=1&k=x&e=300&t=1700000000&r=1&f=/a&b=b")).unwrap();
        assert!(dl.check_time(1_700_000_200, true).is_ok());
        assert!(dl.check_time(1_700_000_200, false).is_err());
    }
}
