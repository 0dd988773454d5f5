//! What every handler of teardown asks of an entry before it deletes anything: the details it
//! must have, and whether an object's tags still say it is ours. Apart from the handlers
//! (`entry` dispatches to `alerting`), so that neither imports the other for these.

use serde_json::Value;

use ampkit::doc::{MANAGED_BY, Resource};

use crate::Verdict;

/// A string detail the entry must have.
pub fn detail<'a>(r: &'a Resource, key: &str) -> std::result::Result<&'a str, Verdict> {
    r.details
        .get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Verdict::Failed(format!(
                "the entry has no `details.{key}`: kept, never guessed at"
            ))
        })
}

pub fn tagged_ours<'a>(mut tags: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    tags.any(|(k, v)| k == MANAGED_BY.0 && v == MANAGED_BY.1)
}

pub const NOT_TAGGED: &str =
    "it no longer carries the tag managed-by=ampkit, so it may not be ours";
