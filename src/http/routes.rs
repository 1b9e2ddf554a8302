//! Every route is registered with what it needs from its caller, so no
//! route can exist without an access rule: the router and the table of
//! rules ([`RouteInfo`]) come from the same calls, and the tests walk the
//! table.

use super::guard::{guard, Face, Need, RouteInfo};
use crate::megatron::state::State;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use std::sync::Arc;

/// A router under construction and the rules of its routes.
pub struct Routes {
    state: Arc<State>,
    face: Face,
    router: Router<Arc<State>>,
    table: Vec<RouteInfo>,
}

impl Routes {
    pub fn new(state: Arc<State>, face: Face) -> Routes {
        Routes {
            state,
            face,
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Adds `method path`, guarded by `need`.
    pub fn at<H, T>(mut self, method: Method, path: &'static str, need: Need, handler: H) -> Routes
    where
        H: Handler<T, Arc<State>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        let state = self.state.clone();
        let face = self.face;
        let method_router = on(filter, handler).route_layer(axum::middleware::from_fn_with_state(
            state,
            move |state, params, request, next| guard(need, face, state, params, request, next),
        ));
        self.router = self.router.route(path, method_router);
        self.table.push(RouteInfo { method, path, need });
        self
    }

    /// Adds `method path` with a method router of its own (to layer it).
    pub fn at_router(
        mut self,
        method: Method,
        path: &'static str,
        need: Need,
        method_router: MethodRouter<Arc<State>>,
    ) -> Routes {
        let state = self.state.clone();
        let face = self.face;
        let method_router = method_router.route_layer(axum::middleware::from_fn_with_state(
            state,
            move |state, params, request, next| guard(need, face, state, params, request, next),
        ));
        self.router = self.router.route(path, method_router);
        self.table.push(RouteInfo { method, path, need });
        self
    }

    /// The router (still wanting its state) and the table of rules.
    pub fn finish(self) -> (Router<Arc<State>>, Vec<RouteInfo>) {
        (self.router, self.table)
    }
}
