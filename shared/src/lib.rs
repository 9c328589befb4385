//! Practice Hub: the domain, the API handlers, and the storage and queue
//! adapters. Everything that is not a `main` lives here.

pub mod api;
pub mod audit;
pub mod auth;
pub mod aws;
pub mod dashboard;
pub mod deploy;
pub mod docs;
pub mod domain;
pub mod error;
pub mod ids;
pub mod lambda;
pub mod log;
pub mod org;
pub mod query;
pub mod queue;
pub mod resources;
pub mod sandbox;
pub mod schema;
pub mod serve;
pub mod smoke;
pub mod store;
pub mod time;
pub mod tls;
pub mod webhooks;
pub mod widget;
