//! The one error type of ampkit and its mapping to exit codes.
//!
//! Tools chain in shell pipelines, so the exit code is part of the interface: scripts branch
//! on "bad input" (2) versus "the service failed" (1) versus "it is not there" (3). Every error
//! carries a kind (which fixes the exit code), a message saying what was wrong, and a hint
//! saying what to do next.

use std::fmt;
use std::sync::Arc;

/// What went wrong, coarsely; the kind decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad flags or arguments.
    Usage,
    /// Bad input: the state document, a file, a value in a field.
    Input,
    /// A remote service failed or could not be reached.
    Remote,
    /// The thing asked for does not exist.
    NotFound,
    /// The caller's identity lacks a permission: the user (or their admin) must change it.
    Denied,
    /// A bug in ampkit (a panic turned into an error, an invariant broken).
    Internal,
}

impl ErrorKind {
    /// The process exit code for this kind: 0 ok, 1 remote/service failure,
    /// 2 bad usage, bad input or a permission the caller lacks, 3 not found.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Usage | ErrorKind::Input | ErrorKind::Denied => 2,
            ErrorKind::Remote | ErrorKind::Internal => 1,
            ErrorKind::NotFound => 3,
        }
    }

    /// The name written in the JSON error line.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Input => "input",
            ErrorKind::Remote => "remote",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Denied => "access-denied",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error a user sees: kind, message (what was wrong) and hint (how to fix it). An error
/// given context keeps the one it was made from as its [`source`](std::error::Error::source),
/// as anyhow and ripgrep do, so that what it was (its kind, its own message and hint) is not
/// lost in the text.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    cause: Option<Cause>,
}

/// What an error was made from: one of ours given context, or a library's error (an SDK
/// error, say) whose chain a user may want with `-vv`. Shared, because errors are cloned
/// (a connection opened once fails every entry that needs it).
#[derive(Debug, Clone)]
enum Cause {
    Ours(Box<Error>),
    Foreign(Arc<dyn std::error::Error + Send + Sync>),
}

/// Equal when what a user sees is equal: kind, message, hint, and the causes' (a foreign
/// cause by its text).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        let cause_eq = match (&self.cause, &other.cause) {
            (None, None) => true,
            (Some(Cause::Ours(a)), Some(Cause::Ours(b))) => a == b,
            (Some(Cause::Foreign(a)), Some(Cause::Foreign(b))) => a.to_string() == b.to_string(),
            _ => false,
        };
        self.kind == other.kind
            && self.message == other.message
            && self.hint == other.hint
            && cause_eq
    }
}

impl Eq for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            cause: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, message)
    }

    pub fn remote(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Remote, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Attach a hint: what the user can do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Say what was being done ("creating workspace: ..."): the message reads as the chain,
    /// and the error it was made from stays reachable as the source, with its kind and hint.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
            hint: self.hint.clone(),
            cause: Some(Cause::Ours(Box::new(self))),
        }
    }

    /// Keep the library error this one was made from (an SDK error: its chain of causes says
    /// what the one-line message leaves out) as the source.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Cause::Foreign(Arc::new(source)));
        self
    }

    /// The error of ours this one was made from by [`Error::context`], if any.
    pub fn cause(&self) -> Option<&Error> {
        match &self.cause {
            Some(Cause::Ours(cause)) => Some(cause),
            _ => None,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }

    /// The machine-readable line: `{"error":{"tool","kind","message","hint"}}`.
    pub fn to_json(&self, tool: &str) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "tool": tool,
                "kind": self.kind.as_str(),
                "message": self.message,
                "hint": self.hint,
            }
        })
    }

    /// The short human line that follows the JSON line on stderr.
    pub fn human_line(&self, tool: &str) -> String {
        match &self.hint {
            Some(hint) => format!("{tool}: error: {} (hint: {hint})", self.message),
            None => format!("{tool}: error: {}", self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Some(Cause::Ours(cause)) => Some(cause.as_ref()),
            Some(Cause::Foreign(cause)) => Some(cause.as_ref()),
            None => None,
        }
    }
}

/// Write an error to stderr: one JSON line, then one human line.
pub fn report(tool: &str, err: &Error) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    // Nothing useful can be done if stderr itself is gone.
    let _ = writeln!(stderr, "{}", err.to_json(tool));
    let _ = writeln!(stderr, "{}", err.human_line(tool));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_documented_exit_codes() {
        assert_eq!(Error::usage("x").exit_code(), 2);
        assert_eq!(Error::input("x").exit_code(), 2);
        assert_eq!(Error::remote("x").exit_code(), 1);
        assert_eq!(Error::internal("x").exit_code(), 1);
        assert_eq!(Error::not_found("x").exit_code(), 3);
    }

    #[test]
    fn json_line_has_the_four_fields() {
        let err = Error::input("bad --rate").with_hint("give a positive number");
        let json = err.to_json("envoy-traffic");
        assert_eq!(json["error"]["tool"], "envoy-traffic");
        assert_eq!(json["error"]["kind"], "input");
        assert_eq!(json["error"]["message"], "bad --rate");
        assert_eq!(json["error"]["hint"], "give a positive number");
        // One line: no newline may appear in the serialized form.
        assert!(!json.to_string().contains('\n'));
    }

    #[test]
    fn context_prefixes_the_message() {
        let err = Error::remote("timed out").context("describing workspace ws-1");
        assert_eq!(err.message, "describing workspace ws-1: timed out");
    }

    #[test]
    fn context_keeps_the_cause_as_the_source() {
        let cause = Error::not_found("no workspace ws-1").with_hint("check --workspace-id");
        let err = cause
            .clone()
            .context("deleting")
            .context("teardown of entry 3");
        assert_eq!(
            err.message,
            "teardown of entry 3: deleting: no workspace ws-1"
        );
        assert_eq!(
            (err.kind, err.hint.as_deref()),
            (ErrorKind::NotFound, Some("check --workspace-id"))
        );
        // The chain, as std::error::Error walks it, ends at the original error.
        let mut chain = vec![err.to_string()];
        let mut next = std::error::Error::source(&err);
        while let Some(e) = next {
            chain.push(e.to_string());
            next = e.source();
        }
        assert_eq!(chain.len(), 3);
        assert_eq!(err.cause().and_then(Error::cause), Some(&cause));
    }
}
