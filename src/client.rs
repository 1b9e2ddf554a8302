//! The command line's side of the API. Blocking HTTP (ureq); every error
//! names what was asked and what the megatron said.
//!
//! Calls act as the person whose token is in `CONSTRUCTICON_USER_TOKEN`, or
//! else the one `constructicon login` kept for this megatron (in
//! `$XDG_CONFIG_HOME/constructicon/credentials.json`, mode 0600).

use anyhow::{bail, Context as _};
use serde_json::Value;
use std::time::Duration;

pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// For answers read as they come (followed logs): no overall time
    /// limit. Made once, so a followed build reuses one connection.
    stream_agent: ureq::Agent,
    /// The person's token sent with every call that names no other.
    user_token: Option<String>,
}

/// The environment variable that holds a personal token.
pub const USER_TOKEN_ENV: &str = "CONSTRUCTICON_USER_TOKEN";

/// A response: status and parsed JSON body (`Null` when there was none).
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Client {
    /// A client acting as the person whose token the environment or the
    /// credentials file holds (anonymous when neither does).
    pub fn new(megatron: &str) -> Client {
        let mut client = Client::anonymous(megatron);
        client.user_token = std::env::var(USER_TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().to_string())
            .or_else(|| saved_token(&client.base).ok().flatten());
        client
    }

    /// A client that sends no personal token.
    pub fn anonymous(megatron: &str) -> Client {
        let agent = crate::http_agent::agent(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(300)))
                .build(),
        );
        let stream_agent = crate::http_agent::agent(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(10)))
                .build(),
        );
        Client {
            base: megatron.trim_end_matches('/').to_string(),
            agent,
            stream_agent,
            user_token: None,
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

    /// The megatron's address, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The authorization header for a call: `bearer` when given, else the
    /// person's token.
    fn authorization(&self, bearer: Option<&str>) -> Option<String> {
        bearer
            .or(self.user_token.as_deref())
            .map(|token| format!("Bearer {token}"))
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Reply> {
        let mut request = self.agent.get(&self.url(path));
        if let Some(authorization) = self.authorization(None) {
            request = request.header("authorization", &authorization);
        }
        self.reply(&format!("GET {path}"), request.call())
    }

    pub fn post(&self, path: &str, body: &Value, bearer: Option<&str>) -> anyhow::Result<Reply> {
        let mut request = self.agent.post(&self.url(path));
        if let Some(authorization) = self.authorization(bearer) {
            request = request.header("authorization", &authorization);
        }
        self.reply(&format!("POST {path}"), request.send_json(body))
    }

    /// A GET with this bearer token rather than the person's.
    pub fn get_as(&self, path: &str, bearer: &str) -> anyhow::Result<Reply> {
        let request = self
            .agent
            .get(&self.url(path))
            .header("authorization", &format!("Bearer {bearer}"));
        self.reply(&format!("GET {path}"), request.call())
    }

    /// A GET whose body is read as it comes (a followed log): no overall
    /// time limit, since it lasts as long as the step does.
    pub fn get_stream(&self, path: &str) -> anyhow::Result<(u16, Box<dyn std::io::Read + Send>)> {
        let mut request = self.stream_agent.get(&self.url(path));
        if let Some(authorization) = self.authorization(None) {
            request = request.header("authorization", &authorization);
        }
        let response = request
            .call()
            .with_context(|| format!("GET {path}: cannot reach the megatron at {}", self.base))?;
        let status = response.status().as_u16();
        Ok((status, Box::new(response.into_body().into_reader())))
    }

    pub fn delete(&self, path: &str, bearer: Option<&str>) -> anyhow::Result<Reply> {
        let mut request = self.agent.delete(&self.url(path));
        if let Some(authorization) = self.authorization(bearer) {
            request = request.header("authorization", &authorization);
        }
        self.reply(&format!("DELETE {path}"), request.call())
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

/// Where `constructicon login` keeps tokens: megatron URL → token.
pub fn credentials_path() -> anyhow::Result<std::path::PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(
            std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?,
        )
        .join(".config"),
    };
    Ok(base.join("constructicon").join("credentials.json"))
}

fn read_credentials() -> anyhow::Result<serde_json::Map<String, Value>> {
    let path = credentials_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(serde_json::from_str(&text)
                .with_context(|| format!("reading {}", path.display()))?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::Map::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_credentials(credentials: &serde_json::Map<String, Value>) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let path = credentials_path()?;
    let dir = path
        .parent()
        .context("the credentials file has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temp = dir.join(".credentials.json.new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("writing {}", temp.display()))?;
    // An existing file keeps its mode through open(): set it explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(serde_json::to_string_pretty(credentials)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The token kept for `megatron`, if any.
pub fn saved_token(megatron: &str) -> anyhow::Result<Option<String>> {
    let key = megatron.trim_end_matches('/');
    Ok(read_credentials()?
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// Keeps `token` for `megatron`.
pub fn save_token(megatron: &str, token: &str) -> anyhow::Result<std::path::PathBuf> {
    let mut credentials = read_credentials()?;
    credentials.insert(
        megatron.trim_end_matches('/').to_string(),
        Value::String(token.to_string()),
    );
    write_credentials(&credentials)?;
    credentials_path()
}

/// Forgets the token kept for `megatron`; returns whether there was one.
pub fn forget_token(megatron: &str) -> anyhow::Result<bool> {
    let mut credentials = read_credentials()?;
    let had = credentials.remove(megatron.trim_end_matches('/')).is_some();
    if had {
        write_credentials(&credentials)?;
    }
    Ok(had)
}
