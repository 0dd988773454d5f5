//! The frame every tool runs in: flags, logging, the document in and out, exit codes.
//!
//! A tool's `main` is one call to [`run`]. The frame guarantees the contract of DESIGN.md:
//! the document is written on stdout whether the tool succeeds or fails (so the ledger is
//! never lost), errors go to stderr as one JSON line plus one human line, a broken pipe is
//! not an error, and a panic becomes an `internal` error instead of a Rust backtrace.

use std::io::{ErrorKind as IoErrorKind, IsTerminal};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::level_filters::LevelFilter;

use crate::doc::StateDoc;
use crate::error::{self, Error, Result};

/// Verbosity flags shared by every tool. Logs go to stderr; stdout is the document's.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// More logging on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr; no progress display
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl LogArgs {
    fn level(&self) -> LevelFilter {
        if self.quiet {
            return LevelFilter::ERROR;
        }
        match self.verbose {
            0 => LevelFilter::WARN,
            1 => LevelFilter::INFO,
            2 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        }
    }

    /// Whether live progress may be drawn: stderr is a terminal and not `--quiet`.
    pub fn progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

/// What a tool's flag struct provides to the frame.
pub trait ToolArgs: clap::Parser {
    fn log_args(&self) -> &LogArgs;
}

/// Which tokio runtime the tool needs: a single thread starts fastest (a `promql` call is a
/// few milliseconds), several threads are for load generation and servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    CurrentThread,
    MultiThread,
}

static TOOL_NAME: OnceLock<&'static str> = OnceLock::new();

static STDOUT_WRITTEN: AtomicBool = AtomicBool::new(false);

/// Tell the frame that the tool wrote stdout itself, so it must not write the document: for
/// output that is on purpose not the document (`promql --raw`, `--format table`) and for a
/// document the tool streams out itself (a million-sample result is never copied into a tree).
pub fn stdout_written() {
    STDOUT_WRITTEN.store(true, Ordering::SeqCst);
}

fn tool_name() -> &'static str {
    TOOL_NAME.get().copied().unwrap_or("ampkit")
}

/// Turn a panic into the documented JSON error (exit 1 is decided by the caller).
fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let err = Error::internal(format!("internal error: {what}{location}"))
            .with_hint("this is a bug in ampkit; please report it with the command that caused it");
        error::report(tool_name(), &err);
    }));
}

fn init_logging(args: &LogArgs) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(args.level())
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn build_runtime(runtime: Runtime) -> std::io::Result<tokio::runtime::Runtime> {
    match runtime {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}

/// clap's error paragraph as one line: "the following required arguments were not provided:
/// --out <DIR>" spans several lines there, and the JSON error line must name the flag.
fn clap_message(rendered: &str) -> String {
    let message = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty() && !line.starts_with("Usage:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.trim_start_matches("error: ");
    if message.is_empty() {
        "invalid arguments".to_owned()
    } else {
        message.to_owned()
    }
}

/// Parse flags the clap way, but report errors the ampkit way (JSON line, exit 2).
/// With `pass_doc_on`, a refused command line still passes the document on unchanged.
fn parse_args<C: clap::Parser>(tool: &str, pass_doc_on: bool) -> std::result::Result<C, ExitCode> {
    match C::try_parse() {
        Ok(args) => Ok(args),
        Err(err) => {
            use clap::error::ErrorKind as ClapKind;
            if matches!(
                err.kind(),
                ClapKind::DisplayHelp
                    | ClapKind::DisplayVersion
                    | ClapKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = err.print();
                let code = if err.kind() == ClapKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    2
                } else {
                    0
                };
                return Err(ExitCode::from(code));
            }
            let rendered = err.render().to_string();
            let first = clap_message(&rendered);
            let usage = rendered
                .lines()
                .find(|l| l.starts_with("Usage:"))
                .map(|l| format!("{l}; "))
                .unwrap_or_default();
            let err =
                Error::usage(first).with_hint(format!("{usage}run `{tool} --help` for all flags"));
            error::report(tool, &err);
            // Nothing was done, and nothing may be lost: pass the document on unchanged.
            if pass_doc_on && let Ok(doc) = StateDoc::read_stdin() {
                let _ = doc.write_stdout();
            }
            Err(ExitCode::from(err.exit_code()))
        }
    }
}

/// Run a tool: parse `C`, read the document, run `body` on it, write it, map the result to
/// an exit code. This is the whole of a tool's `main`.
pub fn run<C, F>(tool: &'static str, runtime: Runtime, body: F) -> ExitCode
where
    C: ToolArgs,
    F: AsyncFnOnce(C, &mut StateDoc) -> Result<()>,
{
    let _ = TOOL_NAME.set(tool);
    // Before parsing: a flag definition clap rejects panics inside `try_parse`.
    install_panic_hook();
    let args = match panic::catch_unwind(|| parse_args::<C>(tool, true)) {
        Ok(Ok(args)) => args,
        Ok(Err(code)) => return code,
        Err(_) => return ExitCode::from(Error::internal("panic").exit_code()),
    };
    init_logging(args.log_args());

    let mut doc = match StateDoc::read_stdin() {
        Ok(doc) => doc,
        Err(err) => {
            error::report(tool, &err);
            return ExitCode::from(err.exit_code());
        }
    };

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| match build_runtime(runtime) {
        Ok(rt) => rt.block_on(body(args, &mut doc)),
        Err(e) => Err(Error::internal(format!(
            "could not start the async runtime: {e}"
        ))),
    }));

    let (result, panicked) = match outcome {
        Ok(result) => (result, false),
        // The hook already reported the panic.
        Err(_) => (Err(Error::internal("panic")), true),
    };

    // The document goes out in every case: it carries the ledger of what was created.
    if !STDOUT_WRITTEN.load(Ordering::SeqCst)
        && let Err(e) = doc.write_stdout()
        && e.kind() != IoErrorKind::BrokenPipe
    {
        let err = Error::internal(format!("could not write the state document to stdout: {e}"));
        error::report(tool, &err);
        return ExitCode::from(err.exit_code());
    }

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !panicked {
                error::report(tool, &err);
            }
            ExitCode::from(err.exit_code())
        }
    }
}

/// Run a program that is not a pipeline stage (a server such as amp-local): the same flags,
/// logging, panic and error conventions, but no state document on stdin or stdout.
pub fn run_without_doc<C, F>(tool: &'static str, runtime: Runtime, body: F) -> ExitCode
where
    C: ToolArgs,
    F: AsyncFnOnce(C) -> Result<()>,
{
    let _ = TOOL_NAME.set(tool);
    install_panic_hook();
    let args = match panic::catch_unwind(|| parse_args::<C>(tool, false)) {
        Ok(Ok(args)) => args,
        Ok(Err(code)) => return code,
        Err(_) => return ExitCode::from(Error::internal("panic").exit_code()),
    };
    init_logging(args.log_args());
    let result = match build_runtime(runtime) {
        Ok(rt) => match panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(body(args)))) {
            Ok(result) => result,
            // The hook already reported the panic.
            Err(_) => return ExitCode::from(Error::internal("panic").exit_code()),
        },
        Err(e) => Err(Error::internal(format!(
            "could not start the async runtime: {e}"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error::report(tool, &err);
            ExitCode::from(err.exit_code())
        }
    }
}
