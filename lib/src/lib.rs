//! ampkit: the shared crate of the ampkit tools.
//!
//! Every tool is a small binary that parses its flags, reads the state document, calls its
//! own logic, and writes the document back. What two or more tools need lives here once:
//! the plumbing (the frame, the document and its ledger, errors, AWS configuration, signed
//! HTTP, one time and duration grammar, one bounded poll with progress, Kubernetes helpers)
//! and one module per service, each knowing how to create, find and delete its objects.

pub mod aws;
pub mod cli;
pub mod doc;
pub mod eks;
pub mod error;
pub mod http;
pub mod kube;
pub mod ledger;
pub mod mesh;
pub mod poll;
pub mod preflight;
pub mod timespec;

pub mod amp;
pub mod grafana;
pub mod iam;
pub mod prom;
pub mod sns;
pub mod sts;

pub use doc::{Resource, ResourceKind, StateDoc};
pub use error::{Error, ErrorKind, Result};
