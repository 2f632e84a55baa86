//! Virtual-host bucket addressing for the S3 dialect.

use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;

/// `<bucket>.<domain>[:port]` names a bucket for each configured base domain; any other
/// host (an IP address, `localhost`, an unknown name) means path-style addressing. Unlike
/// s3s's `SingleDomain`, an unknown host is never taken for a bucket name.
pub struct BaseDomains(pub Vec<String>);

impl S3Host for BaseDomains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        for domain in &self.0 {
            if let Some(bucket) = name.strip_suffix(domain.as_str()).and_then(|b| b.strip_suffix('.')) {
                if !bucket.is_empty() {
                    return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
                }
            }
        }
        Ok(VirtualHost::new(name))
    }
}
