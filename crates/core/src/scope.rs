//! Scoped credentials: what a token (UFile tokens, IoT devices) may do, checked by the engine
//! for every operation whatever the dialect, so no dialect can forget a check.

use serde::{Deserialize, Serialize};

/// Operation classes a scope grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Read,
    Write,
    Delete,
    List,
}

/// Restrictions of a credential; `None` in a field means "no restriction on this axis".
/// Expiry is the credential's own `expires_ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<Op>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<Vec<String>>,
}

impl Scope {
    pub fn allows_bucket(&self, bucket: &str) -> bool {
        self.buckets.as_ref().is_none_or(|b| b.iter().any(|x| x == bucket))
    }

    /// Whether `op` on `key` (a key, or a listing prefix for `List`) in `bucket` is granted.
    pub fn allows(&self, op: Op, bucket: &str, key: &str) -> bool {
        self.ops.as_ref().is_none_or(|ops| ops.contains(&op))
            && self.allows_bucket(bucket)
            && self.prefixes.as_ref().is_none_or(|ps| ps.iter().any(|p| key.starts_with(p.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_axis_restricts() {
        let s =
            Scope { ops: Some(vec![Op::Write]), buckets: Some(vec!["b".into()]), prefixes: Some(vec!["P/D/".into()]) };
        assert!(s.allows(Op::Write, "b", "P/D/f.txt"));
        assert!(!s.allows(Op::Read, "b", "P/D/f.txt"));
        assert!(!s.allows(Op::Write, "c", "P/D/f.txt"));
        assert!(!s.allows(Op::Write, "b", "P/E/f.txt"));
        assert!(Scope::default().allows(Op::Delete, "any", "thing"));
    }
}
