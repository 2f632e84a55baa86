//! Cross-origin resource sharing: a bucket's rules, and the decision for each browser
//! request (the preflight `OPTIONS` and the actual request), as S3 documents it.
//!
//! Rules are checked in order and the first that matches the origin, the method and every
//! requested header decides. Origins and allowed headers may hold one `*` wildcard each;
//! header names compare without regard to case. The decision needs no credential (browsers
//! send preflights without one), and says nothing beyond what the bucket's rules allow: a
//! bucket without rules and a missing bucket are refused alike.

use chuan_store::CorsRule;

use crate::access::Principal;
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};

/// Methods a CORS rule may allow (S3's list).
pub const CORS_METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// Most rules one bucket may hold (S3's limit).
pub const MAX_CORS_RULES: usize = 100;

/// What a matching rule lets the browser see and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsAnswer {
    /// `Access-Control-Allow-Origin`: `*` when the rule allows every origin, else the origin.
    pub allow_origin: String,
    /// The rule's methods (`Access-Control-Allow-Methods`).
    pub allow_methods: Vec<String>,
    /// The requested headers the rule allows (`Access-Control-Allow-Headers`).
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_secs: Option<u32>,
    /// Whether `Access-Control-Allow-Credentials: true` goes with it (not for `*`).
    pub allow_credentials: bool,
}

/// `pattern` with at most one `*` matched against `value` (ASCII case-insensitive when
/// `fold`).
fn wildcard_match(pattern: &str, value: &str, fold: bool) -> bool {
    let eq = |a: &str, b: &str| if fold { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.is_char_boundary(head.len())
                && value.is_char_boundary(value.len() - tail.len())
                && eq(&value[..head.len()], head)
                && eq(&value[value.len() - tail.len()..], tail)
        }
    }
}

/// Whether rule `r` allows `origin` to use `method` with `headers` (the names of
/// `Access-Control-Request-Headers`, for a preflight).
pub fn rule_allows(r: &CorsRule, origin: &str, method: &str, headers: &[String]) -> bool {
    r.allowed_origins.iter().any(|o| wildcard_match(o, origin, false))
        && r.allowed_methods.iter().any(|m| m == method)
        && headers.iter().all(|h| r.allowed_headers.iter().any(|a| wildcard_match(a, h, true)))
}

fn answer(r: &CorsRule, origin: &str, headers: &[String]) -> CorsAnswer {
    let any_origin = r.allowed_origins.iter().any(|o| o == "*");
    CorsAnswer {
        allow_origin: if any_origin { "*".into() } else { origin.to_owned() },
        allow_methods: r.allowed_methods.clone(),
        allow_headers: headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
        expose_headers: r.expose_headers.clone(),
        max_age_secs: r.max_age_secs,
        allow_credentials: !any_origin,
    }
}

/// Checks rules before they are stored: known methods, at most one `*` in each origin and
/// allowed header, at least one origin and method per rule.
pub fn validate_cors(rules: &[CorsRule]) -> CoreResult<()> {
    if rules.is_empty() || rules.len() > MAX_CORS_RULES {
        return Err(CoreError::InvalidArgument(format!(
            "a CORS configuration holds between 1 and {MAX_CORS_RULES} rules"
        )));
    }
    for r in rules {
        if let Some(m) = r.allowed_methods.iter().find(|m| !CORS_METHODS.contains(&m.as_str())) {
            return Err(CoreError::InvalidRequest(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
            )));
        }
        if r.allowed_methods.is_empty() || r.allowed_origins.is_empty() {
            return Err(CoreError::InvalidArgument("a CORS rule needs an allowed origin and method".into()));
        }
        if let Some(o) = r.allowed_origins.iter().find(|o| o.matches('*').count() > 1) {
            return Err(CoreError::InvalidArgument(format!(
                "AllowedOrigin \"{o}\" can not have more than one wildcard."
            )));
        }
        if let Some(h) = r.allowed_headers.iter().find(|h| h.matches('*').count() > 1) {
            return Err(CoreError::InvalidArgument(format!(
                "AllowedHeader \"{h}\" can not have more than one wildcard."
            )));
        }
    }
    Ok(())
}

impl Engine {
    /// A bucket's CORS rules (`NoSuchCORSConfiguration`-style `Ok(None)` when none); its
    /// owner only.
    pub async fn bucket_cors(&self, p: &Principal, bucket: &str) -> CoreResult<Option<Vec<CorsRule>>> {
        let b = self.admit_owner(p, bucket).await?;
        self.charge_request(p, &b).await?;
        Ok(b.config.cors.clone())
    }

    /// Replaces a bucket's CORS rules (checked by [`validate_cors`]); its owner only.
    pub async fn put_bucket_cors(&self, p: &Principal, bucket: &str, rules: Vec<CorsRule>) -> CoreResult<()> {
        let b = self.admit_owner(p, bucket).await?;
        self.charge_request(p, &b).await?;
        validate_cors(&rules)?;
        let mut config = b.config.clone();
        config.cors = Some(rules);
        self.store_bucket_config(bucket, &config).await
    }

    /// Removes a bucket's CORS rules; its owner only.
    pub async fn delete_bucket_cors(&self, p: &Principal, bucket: &str) -> CoreResult<()> {
        let b = self.admit_owner(p, bucket).await?;
        self.charge_request(p, &b).await?;
        let mut config = b.config.clone();
        config.cors = None;
        self.store_bucket_config(bucket, &config).await
    }

    /// The cross-origin decision for a browser request to `bucket` from `origin` with
    /// `method` (and, for a preflight, the requested `headers`): the first matching rule's
    /// answer, or `None` (no such bucket, no rules, no match). Needs no credential and
    /// charges nothing (a preflight is answered before any request is made).
    pub async fn cors_decision(
        &self,
        bucket: &str,
        origin: &str,
        method: &str,
        headers: &[String],
    ) -> CoreResult<Option<CorsAnswer>> {
        let Some(b) = self.bucket_record(bucket).await? else { return Ok(None) };
        let rules = b.config.cors.as_deref().unwrap_or_default();
        Ok(rules.iter().find(|r| rule_allows(r, origin, method, headers)).map(|r| answer(r, origin, headers)))
    }

    /// The cross-origin decision for Chuan's own upload endpoints (tus, the IETF resumable
    /// uploads, the native instant-upload API), which belong to no bucket: the origins the
    /// operator configured ([`EngineConfig::upload_origins`](crate::EngineConfig::upload_origins),
    /// patterns with one `*` each), any method those endpoints serve and any request header,
    /// never with credentials (they authenticate by header);
    /// `expose` names the response headers the browser may read. `None` for any other origin.
    pub fn upload_cors(&self, origin: &str, method: &str, headers: &[String], expose: &[&str]) -> Option<CorsAnswer> {
        if self.config.upload_origins.is_empty() {
            return None;
        }
        let rule = CorsRule {
            allowed_origins: self.config.upload_origins.clone(),
            allowed_methods: UPLOAD_METHODS.iter().map(|m| m.to_string()).collect(),
            allowed_headers: vec!["*".into()],
            expose_headers: expose.iter().map(|h| h.to_string()).collect(),
            max_age_secs: Some(600),
            ..CorsRule::default()
        };
        // These endpoints authenticate by header, never by cookies or a browser's remembered
        // login: no credentialed cross-origin requests.
        rule_allows(&rule, origin, method, headers)
            .then(|| CorsAnswer { allow_credentials: false, ..answer(&rule, origin, headers) })
    }
}

/// The methods of Chuan's upload endpoints (tus uses `PATCH`, which S3 rules cannot name).
const UPLOAD_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn origins_match_with_one_wildcard() {
        let r = rule(&["*suffix", "start*end", "prefix*"], &["GET"], &[]);
        for ok in ["foo.suffix", "suffix", "start.end", "startend", "prefix", "prefix.x"] {
            assert!(rule_allows(&r, ok, "GET", &[]), "{ok}");
        }
        for no in ["foo.bla", "start.en", "xprefix", "foo.suffi"] {
            assert!(!rule_allows(&r, no, "GET", &[]), "{no}");
        }
        assert!(!rule_allows(&r, "foo.suffix", "PUT", &[]), "methods must match");
    }

    #[test]
    fn requested_headers_must_all_be_allowed() {
        let r = rule(&["*"], &["PUT"], &["x-amz-*", "Content-Type"]);
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(rule_allows(&r, "o", "PUT", &h(&["x-amz-date", "content-type"])));
        assert!(!rule_allows(&r, "o", "PUT", &h(&["x-amz-date", "authorization"])));
        let a = answer(&r, "o", &h(&["X-Amz-Date"]));
        assert_eq!(a.allow_origin, "*");
        assert!(!a.allow_credentials);
        assert_eq!(a.allow_headers, ["x-amz-date"]);
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(validate_cors(&[rule(&["*"], &["GET"], &[])]).is_ok());
        assert!(matches!(validate_cors(&[rule(&["*"], &["PATCH"], &[])]), Err(CoreError::InvalidRequest(_))));
        assert!(validate_cors(&[rule(&["a*b*"], &["GET"], &[])]).is_err());
        assert!(validate_cors(&[rule(&["*"], &["GET"], &["x-*-*"])]).is_err());
        assert!(validate_cors(&[]).is_err());
    }
}
