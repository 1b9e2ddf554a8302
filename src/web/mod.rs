//! The pages people read in a browser, apart from the JSON API (`http`).
//!
//! Pages are rendered on the server; each file is one page (or a family of
//! them). Templates will live in `src/web/templates/` and static assets
//! (CSS, the small script of our own) in `src/web/assets/`, both embedded
//! in the binary.

mod home;

use crate::megatron::state::State;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The pages, on their own router; `server` merges it with the API's.
pub fn router(state: Arc<State>) -> Router {
    Router::new().route("/", get(home::index)).with_state(state)
}
