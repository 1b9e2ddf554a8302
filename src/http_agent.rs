//! The HTTP agent the worker and the command line talk to a megatron with:
//! made once and kept (its pool keeps connections open between calls), with
//! a resolver that starts no thread.
//!
//! ureq's own resolver looks the host up on a new thread for every call
//! that has a timeout (so that the lookup itself can time out), even when
//! the call then takes a pooled connection: a thread a call, about a dozen
//! per build on a worker. A megatron is nearly always reached at an IP
//! literal (loopback, a LAN address) or at one stable name, so an IP literal
//! is parsed and never looked up, and a name is looked up through ureq's
//! resolver, with its timeout, at most once a minute.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// How long a name's addresses are kept.
const KEEP_NAMES: Duration = Duration::from_secs(60);

/// An agent with `config` and the resolver below.
pub fn agent(config: Config) -> ureq::Agent {
    ureq::Agent::with_parts(config, DefaultConnector::new(), KeptResolver::default())
}

/// Parses IP literals, keeps names' addresses for [`KEEP_NAMES`].
#[derive(Debug, Default)]
pub struct KeptResolver {
    names: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for KeptResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some(authority) = uri.authority() else {
            return DefaultResolver::default().resolve(uri, config, timeout);
        };
        let port = authority
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let host = authority.host();
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            let mut addresses = self.empty();
            addresses.push(SocketAddr::new(ip, port));
            return Ok(addresses);
        }
        let key = format!("{host}:{port}");
        let now = Instant::now();
        if let Some((at, addresses)) = crate::sync::lock(&self.names).get(&key) {
            if now.duration_since(*at) < KEEP_NAMES {
                return Ok(addresses.clone());
            }
        }
        let addresses = DefaultResolver::default().resolve(uri, config, timeout)?;
        crate::sync::lock(&self.names).insert(key, (now, addresses.clone()));
        Ok(addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().unwrap();
        let config = Config::default();
        KeptResolver::default()
            .resolve(&uri, &config, NextTimeout::default())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn ip_literals_are_parsed_not_looked_up() {
        assert_eq!(
            resolve("http://127.0.0.1:9120/api"),
            ["127.0.0.1:9120".parse().unwrap()]
        );
        assert_eq!(resolve("http://[::1]/"), ["[::1]:80".parse().unwrap()]);
        assert_eq!(
            resolve("https://10.0.0.7/"),
            ["10.0.0.7:443".parse().unwrap()]
        );
    }

    #[test]
    fn names_are_looked_up_and_kept() {
        let resolver = KeptResolver::default();
        let uri: Uri = "http://localhost:9120/".parse().unwrap();
        let found = resolver
            .resolve(&uri, &Config::default(), NextTimeout::default())
            .unwrap();
        assert!(found
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 9120));
        assert!(crate::sync::lock(&resolver.names).contains_key("localhost:9120"));
    }
}
