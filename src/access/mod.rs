//! People and what they may do: the caller of a request resolved from its
//! credentials ([`caller`]), personal tokens, sessions and login links
//! ([`people`]), and login through a forge's OAuth2 ([`oauth`]). Roles and
//! grants themselves are declared in cybertron (`config::access`).

pub mod caller;
pub mod oauth;
pub mod people;
