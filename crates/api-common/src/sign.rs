//! The HMACs the protocols sign with, and their encodings.

use base64::Engine as _;
use hmac::{Hmac, Mac};

/// HMAC-SHA1 of `msg` keyed with `key` (UFile, UpYun, COS signatures).
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut h = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    h.update(msg);
    h.finalize().into_bytes().into()
}

/// HMAC-SHA256 of `msg` keyed with `key` (IoT device requests).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut h = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    h.update(msg);
    h.finalize().into_bytes().into()
}

/// Standard base64 (with padding).
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `Base64(HMAC-SHA1(key, msg))`, the signature shape of UFile and UpYun.
pub fn hmac_sha1_base64(key: &str, msg: &str) -> String {
    base64(&hmac_sha1(key.as_bytes(), msg.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2202_and_4231_vectors() {
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
