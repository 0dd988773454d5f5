//! What every handler of teardown asks of an entry before it deletes anything: the details it
//! must have, and what it says when an object's tags no longer say it is ours (the tag check
//! itself is lib's `doc::tagged_ours`). Apart from the handlers (`entry` dispatches to
//! `alerting`), so that neither imports the other for these.

use serde_json::Value;

use ampkit::doc::Resource;

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

pub const NOT_TAGGED: &str =
    "it no longer carries the tag managed-by=ampkit, so it may not be ours";
