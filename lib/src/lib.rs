//! ampkit: the shared crate of the ampkit tools.
//!
//! Every tool is a small binary that parses its flags, reads the state document, calls into
//! this crate, and writes the document back. Everything a second tool would otherwise
//! re-implement lives here, one module per concern.

pub mod agent_config;
pub mod amp_local;
pub mod aws;
pub mod cli;
pub mod doc;
pub mod error;
pub mod irsa;
pub mod promql;
pub mod sigv4_http;
pub mod traffic;
pub mod workspace;

pub use doc::{Resource, StateDoc};
pub use error::{Error, ErrorKind, Result};
