//! The command line's side of the API: `repo add`, `force [--wait]`,
//! `token`. Blocking HTTP (ureq); every error names what was asked and what
//! the megatron said.

use anyhow::{bail, Context as _};
use serde_json::Value;
use std::time::Duration;

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

/// A response: status and parsed JSON body (`Null` when there was none).
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Client {
    pub fn new(megatron: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Client {
            base: megatron.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn reply(
        &self,
        what: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Reply> {
        let mut response = response
            .with_context(|| format!("{what}: cannot reach the megatron at {}", self.base))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{what}: reading the megatron's answer"))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply { status, body })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.reply(
            &format!("GET {path}"),
            self.agent.get(&self.url(path)).call(),
        )
    }

    pub fn post(&self, path: &str, body: &Value, bearer: Option<&str>) -> anyhow::Result<Reply> {
        let mut request = self.agent.post(&self.url(path));
        if let Some(token) = bearer {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        self.reply(&format!("POST {path}"), request.send_json(body))
    }

    /// The body of a 2xx reply, or the megatron's `{error}` as an error.
    pub fn ok(reply: Reply, what: &str) -> anyhow::Result<Value> {
        if (200..300).contains(&reply.status) {
            return Ok(reply.body);
        }
        let message = reply.body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| reply.body.to_string());
        bail!("{what}: {message} (HTTP {})", reply.status)
    }
}

/// Splits `NAME=VALUE` arguments.
pub fn parse_pairs(pairs: &[String], flag: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut map = serde_json::Map::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("{flag} {pair:?}: expected NAME=VALUE");
        };
        if name.is_empty() {
            bail!("{flag} {pair:?}: the name is empty");
        }
        map.insert(name.to_string(), Value::String(value.to_string()));
    }
    Ok(map)
}
