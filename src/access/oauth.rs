//! Login through a forge's OAuth2: the authorization-code flow with PKCE
//! (the `oauth2` crate), then the forge's API for who logged in and their
//! organisations (GitLab: groups), which cybertron's `access` maps to roles.
//!
//! [`begin`] makes the forge URL to send the browser to and keeps the PKCE
//! verifier under the request's `state`; [`finish`] takes the forge's answer,
//! spends that state (once), exchanges the code and reads the user. Both do
//! blocking HTTP and store work: call them on a blocking thread.

use crate::config::access::{LoginForge, LoginSpec};
use crate::forge::{read_secret, Secret};
use crate::megatron::error::{Error, Result};
use crate::megatron::state::State;
use crate::store::{now_ms, PendingLogin};
use crate::token::secret_hash;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde_json::Value;
use std::time::Duration;

/// How long a person has to approve at the forge.
const PENDING_MINUTES: u64 = 10;

/// Who the forge says logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeUser {
    pub login: String,
    pub orgs: Vec<String>,
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn endpoints(login: &LoginSpec) -> (String, String) {
    match login.forge {
        LoginForge::GitLab => (
            format!("{}/oauth/authorize", login.url),
            format!("{}/oauth/token", login.url),
        ),
        LoginForge::GitHub | LoginForge::Gitea | LoginForge::Forgejo => (
            format!("{}/login/oauth/authorize", login.url),
            format!("{}/login/oauth/access_token", login.url),
        ),
    }
}

fn scopes(login: &LoginSpec) -> Vec<&'static str> {
    let orgs = !login.orgs.is_empty();
    match login.forge {
        LoginForge::GitHub if orgs => vec!["read:org"],
        LoginForge::GitHub => vec![],
        LoginForge::GitLab if orgs => vec!["read_user", "read_api"],
        LoginForge::GitLab => vec!["read_user"],
        LoginForge::Gitea | LoginForge::Forgejo if orgs => {
            vec!["read:user", "read:organization"]
        }
        LoginForge::Gitea | LoginForge::Forgejo => vec!["read:user"],
    }
}

fn client(login: &LoginSpec, secret: &Secret, redirect: &str) -> Result<Client> {
    let (auth, token) = endpoints(login);
    let bad = |what: &str, e: oauth2::url::ParseError| {
        Error::Internal(format!("forge login: the {what} is not a URL: {e}"))
    };
    Ok(BasicClient::new(ClientId::new(login.client_id.clone()))
        .set_client_secret(ClientSecret::new(secret.expose().to_string()))
        .set_auth_uri(AuthUrl::new(auth).map_err(|e| bad("authorize URL", e))?)
        .set_token_uri(TokenUrl::new(token).map_err(|e| bad("token URL", e))?)
        .set_redirect_uri(
            RedirectUrl::new(redirect.to_string()).map_err(|e| bad("redirect URL", e))?,
        ))
}

fn client_secret(login: &LoginSpec) -> Result<Secret> {
    read_secret(&login.client_secret)
        .map_err(|e| Error::Internal(format!("forge login: client_secret: {e}")))
}

/// The HTTP agent for the forge: no redirects followed (a token endpoint
/// that redirects is refused, not chased), bounded in time.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into()
}

/// The forge's URL to send the browser to, and the `state` it will come
/// back with (the caller binds it to the browser with a cookie).
pub fn begin(state: &State, login: &LoginSpec, redirect: &str) -> Result<(String, String)> {
    let secret = client_secret(login)?;
    let client = client(login, &secret, redirect)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in scopes(login) {
        request = request.add_scope(Scope::new(scope.to_string()));
    }
    let (url, csrf) = request.url();
    state.store.put_pending_login(
        &secret_hash(csrf.secret()),
        &PendingLogin {
            verifier: verifier.secret().clone(),
            expires: now_ms() + PENDING_MINUTES * 60_000,
        },
    )?;
    state.store.flush()?;
    Ok((url.to_string(), csrf.secret().clone()))
}

/// Completes a login: the `state` must be one [`begin`] made, unspent and
/// in time; the code is exchanged for a token, with which the user and
/// their organisations are read.
pub fn finish(
    state: &State,
    login: &LoginSpec,
    redirect: &str,
    code: &str,
    oauth_state: &str,
) -> Result<ForgeUser> {
    let pending = state
        .store
        .take_pending_login(&secret_hash(oauth_state))?
        .filter(|p| p.expires > now_ms())
        .ok_or_else(|| {
            Error::BadRequest(
                "this login was not started here, was already used, or took too long: log in again"
                    .into(),
            )
        })?;
    state.store.flush()?;
    let secret = client_secret(login)?;
    let client = client(login, &secret, redirect)?;
    let agent = agent();
    let http =
        |request: oauth2::HttpRequest| -> std::result::Result<oauth2::HttpResponse, ureq::Error> {
            let mut response = agent.run(request)?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response.body_mut().read_to_vec()?;
            builder
                .body(body)
                .map_err(|e| ureq::Error::BadUri(e.to_string()))
        };
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
        .request(&http)
        .map_err(|e| Error::BadRequest(format!("{} refused the login: {e}", login.forge.name())))?;
    let access = token.access_token().secret();
    read_user(login, &agent, access)
}

fn get_json(agent: &ureq::Agent, url: &str, token: &str, forge: LoginForge) -> Result<Value> {
    let failed =
        |e: String| Error::BadRequest(format!("reading the user from {}: {e}", forge.name()));
    let mut response = agent
        .get(url)
        .header("authorization", &format!("Bearer {token}"))
        .header("accept", "application/json")
        .header("user-agent", "constructicon")
        .call()
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("{url} answered {}", response.status())));
    }
    let text = response
        .body_mut()
        .with_config()
        .limit(4 << 20)
        .read_to_string()
        .map_err(|e| failed(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| failed(format!("{url}: {e}")))
}

fn read_user(login: &LoginSpec, agent: &ureq::Agent, token: &str) -> Result<ForgeUser> {
    let api = &login.api_url;
    let user = get_json(agent, &format!("{api}/user"), token, login.forge)?;
    let name_key = match login.forge {
        LoginForge::GitLab => "username",
        _ => "login",
    };
    let name = user[name_key]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "{} gave no {name_key} for the user",
                login.forge.name()
            ))
        })?
        .to_string();
    let mut orgs = Vec::new();
    if !login.orgs.is_empty() {
        let (path, key) = match login.forge {
            LoginForge::GitHub => ("/user/orgs?per_page=100", "login"),
            LoginForge::GitLab => ("/groups?min_access_level=10&per_page=100", "full_path"),
            LoginForge::Gitea | LoginForge::Forgejo => ("/user/orgs?limit=50", "username"),
        };
        let list = get_json(agent, &format!("{api}{path}"), token, login.forge)?;
        for org in list.as_array().into_iter().flatten() {
            if let Some(org) = org[key].as_str() {
                orgs.push(org.to_string());
            }
        }
    }
    if crate::model::check_name(&name).is_some() {
        return Err(Error::BadRequest(format!(
            "{} user name {name:?} cannot be used here",
            login.forge.name()
        )));
    }
    Ok(ForgeUser { login: name, orgs })
}
