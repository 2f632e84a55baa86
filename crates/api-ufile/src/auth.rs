//! UFile signatures: `Authorization: UCloud|Inspur <public key>:<base64 HMAC-SHA1>` over
//! `METHOD\nContent-MD5\nContent-Type\nDate\n<X-UCloud headers>/bucket/key[list suffix]`, and
//! presigned downloads (`UCloudPublicKey`, `Expires`, `Signature`) over
//! `METHOD\n\n\nExpires\n/bucket/key`. Header signatures carry no time (the SDK never sends a
//! Date), so they cannot be made non-replayable; presigned ones expire.

pub fn sign(secret: &str, string_to_sign: &str) -> String {
    chuan_api_common::sign::hmac_sha1_base64(secret, string_to_sign)
}

/// `(public key, signature)` of an `Authorization: UCloud|Inspur pub:sig` header. Public keys
/// may themselves contain `:`-free text like `user@example.com123`; the signature follows the
/// last `:`.
pub fn parse_header(value: &str) -> Option<(String, String)> {
    let rest =
        chuan_api_common::auth_scheme(value, "UCloud").or_else(|| chuan_api_common::auth_scheme(value, "Inspur"))?;
    let (public, sig) = rest.rsplit_once(':')?;
    Some((public.to_owned(), sig.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples_from_the_sdk() {
        // client-sdks.md §1.2, keys TOKEN_PUBLIC_KEY / PRIVATE_KEY_123.
        let k = "PRIVATE_KEY_123";
        assert_eq!(sign(k, "PUT\n\ntext/plain\n\n/mybucket/hello.txt"), "fKSJ2e9wk/M5JFUXL+8wAIkuxv0=");
        assert_eq!(sign(k, "DELETE\n\n\n\n/mybucket/hello.txt"), "+vucBpVRWR+zMGa8/i0uB7fVSiI=");
        assert_eq!(sign(k, "GET\n\n\n\n/mybucket/"), "K+D3bxF1JFlfphJ6orQaolQ28ik=");
        assert_eq!(
            sign(k, "GET\n\n\n\n/mybucket/\nlistobjects\ndelimiter:/\nmarker:\nmax-keys:100\nprefix:a/"),
            "0af7nZctr5gB0QjUx21DVKxHsas="
        );
        assert_eq!(sign(k, "GET\n\n\n1700000000\n/mybucket/hello.txt"), "2SPZRekbQANcOqpH58xZnp9M99U=");
        assert_eq!(
            parse_header("Inspur demouser@x.cn1342:S5FVD2w6="),
            Some(("demouser@x.cn1342".into(), "S5FVD2w6=".into()))
        );
    }
}
