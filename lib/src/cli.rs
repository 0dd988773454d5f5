//! The frame every tool runs in: flags, logging, the document in and out, exit codes.
//!
//! A tool's `main` is one call to [`run`]. The frame guarantees the state-document contract (docs/design.md):
//! the document is written on stdout whether the tool succeeds or fails (so the ledger is
//! never lost), errors go to stderr as one JSON line plus one human line, a broken pipe is
//! not an error, and a panic becomes an `internal` error instead of a Rust backtrace.

use std::io::{ErrorKind as IoErrorKind, IsTerminal, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;

use crate::doc::StateDoc;
use crate::error::{self, Error, Result};
use crate::preflight::{self, Preflight, PreflightArgs};

/// Verbosity flags of every tool, added by the frame to each tool's own flags (a tool does not
/// declare them). Logs go to stderr; stdout is the document's.
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

static LOG_ARGS: OnceLock<LogArgs> = OnceLock::new();

/// Whether this run may draw live progress on stderr (a terminal, not `--quiet`).
pub fn progress() -> bool {
    LOG_ARGS.get().is_some_and(LogArgs::progress)
}

/// Whether this run was asked for `--quiet`: only errors on stderr, no summary lines.
pub fn quiet() -> bool {
    LOG_ARGS.get().is_some_and(|args| args.quiet)
}

/// What the frame needs to know of a tool besides its flags.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The program's name, as in the ledger and in error lines.
    pub name: &'static str,
    pub runtime: Runtime,
    /// Two or three command lines to copy, shown at the end of `--help`.
    pub examples: &'static [&'static str],
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

/// Tell the frame that the tool writes stdout itself, so it must not write the document: for
/// output that is on purpose not the document (`promql --raw`, `render-agent-config
/// --stdout`) and for a document the tool streams out itself (a million-sample result is
/// never copied into a tree). [`write_stdout`] calls it.
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

/// The AWS SDK's crates, whose warnings (a credential source tried and skipped, a config
/// file named but missing) repeat with Debug text what the tool's one error line says.
const SDK_TARGETS: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_sdk_sts",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
];

fn init_logging(args: &LogArgs) {
    use tracing_subscriber::layer::SubscriberExt;
    let level = args.level();
    // The SDK speaks from -v on; before that only the tool's own lines reach stderr.
    let sdk_level = if args.verbose == 0 {
        LevelFilter::ERROR
    } else {
        level
    };
    let targets = SDK_TARGETS
        .iter()
        .fold(Targets::new().with_default(level), |t, target| {
            t.with_target(*target, sdk_level)
        });
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .finish()
        .with(targets);
    let _ = tracing::subscriber::set_global_default(subscriber);
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

/// The flag every tool has: `--completions SHELL` prints the completion script and exits.
const COMPLETIONS: &str = "completions";

/// The flag every tool has: `--man [SUBCOMMAND]` prints the tool's (or a subcommand's) manual
/// page in roff and exits, as `rg --generate man` does, so that `make install` (scripts/install)
/// writes the pages from the same clap definitions as `--help`.
const MAN: &str = "man";

/// `C`'s command with what every tool has: its name and version, the examples at the end of
/// `--help`, `-v`/`-q`, `--completions` and `--man` (exclusive, so only ever given alone).
fn command<C: clap::Parser>(tool: &Tool, preflight: bool) -> clap::Command {
    let examples: String = tool
        .examples
        .iter()
        .map(|line| format!("\n  {line}"))
        .collect();
    // In the template's literal text rather than `after_help`, which clap wraps at the
    // terminal's width: an example is copied as one line.
    let template = format!(
        "{{before-help}}{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{{all-args}}{{after-help}}\n\nExamples:{examples}"
    );
    let cmd = C::command()
        .name(tool.name)
        .version(env!("CARGO_PKG_VERSION"))
        .help_template(template);
    // Augmenting with a documented `Args` struct sets the command's about to that struct's doc
    // comment; the tool's own description is put back after.
    let about = cmd.get_about().cloned();
    let long_about = cmd.get_long_about().cloned();
    let cmd = <LogArgs as clap::Args>::augment_args(cmd);
    let cmd = if preflight {
        <PreflightArgs as clap::Args>::augment_args(cmd)
    } else {
        cmd
    };
    let cmd = match about {
        Some(about) => cmd.about(about),
        None => cmd.about(None::<&str>),
    };
    let cmd = match long_about {
        Some(long_about) => cmd.long_about(long_about),
        None => cmd.long_about(None::<&str>),
    };
    // Read before `help` is added (at build time): the subcommands that have a page of their own.
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| sub.get_name().to_owned())
        .collect();
    let man = clap::Arg::new(MAN).long(MAN).exclusive(true);
    let man = if subcommands.is_empty() {
        man.action(clap::ArgAction::SetTrue)
            .help("Print the manual page (roff: `man -l -` shows it) and exit")
    } else {
        // An optional value: `--man` alone is the tool's page, `--man ensure` that of
        // `<tool>-ensure(1)`, the name the tool's page gives it (as git's pages are split).
        // A parser of its own rather than clap's possible values, which must be `'static`.
        let one_of = subcommands.join(", ");
        man.num_args(0..=1)
            .value_name("SUBCOMMAND")
            .value_parser(move |name: &str| {
                if subcommands.iter().any(|sub| sub == name) {
                    Ok(name.to_owned())
                } else {
                    Err(format!("not a subcommand: one of {one_of}"))
                }
            })
            .help("Print the manual page, or SUBCOMMAND's (roff: `man -l -` shows it), and exit")
    };
    cmd.arg(
        clap::Arg::new(COMPLETIONS)
            .long(COMPLETIONS)
            .value_name("SHELL")
            .value_parser(clap::value_parser!(clap_complete::Shell))
            .exclusive(true)
            .help("Print the shell completion script (bash, zsh, fish, ...) and exit"),
    )
    .arg(man)
}

/// What a command line of one generator flag alone asks for: not a run of the tool but text
/// generated from its clap definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Generate {
    Completions(clap_complete::Shell),
    /// The tool's manual page, or (with a name) that of one subcommand.
    Man(Option<String>),
}

/// `--completions SHELL` or `--man [SUBCOMMAND]` alone on the command line: what to generate.
/// The check parses with the tool's own command, relaxed only in that a subcommand is not
/// required and no flag takes its value from the environment, so `amp-workspace --completions
/// bash` works although `amp-workspace` alone is an error.
fn generate_wanted(cmd: &clap::Command) -> Option<Generate> {
    let matches = cmd
        .clone()
        .subcommand_required(false)
        .arg_required_else_help(false)
        // A value from the environment (amp-local's AWS_REGION) must not count as "given with
        // --completions".
        .mut_args(|arg| arg.env(None::<&'static str>))
        .try_get_matches()
        .ok()?;
    if let Some(shell) = matches.get_one::<clap_complete::Shell>(COMPLETIONS) {
        return Some(Generate::Completions(*shell));
    }
    // `--man` is a plain switch for a tool without subcommands and takes an optional name
    // otherwise: given or not is asked of the source, the name only where there can be one.
    (matches.value_source(MAN) == Some(clap::parser::ValueSource::CommandLine))
        .then(|| Generate::Man(matches.try_get_one::<String>(MAN).ok().flatten().cloned()))
}

/// The manual page of `cmd` (the tool's command as `--help` shows it), or of one of its
/// subcommands: clap_mangen's sections, then the tool's examples, its exit codes (part of the
/// interface, docs/design.md) and, on a subcommand's page, a pointer back to the tool's.
fn man_page(cmd: clap::Command, tool: &Tool, sub: Option<&str>) -> std::io::Result<Vec<u8>> {
    use clap_mangen::roff::{Roff, bold, roman};
    // `help` is a subcommand of `--help`'s, not one with a page; built, so that a subcommand
    // knows its full name (`amp-workspace ensure`) and has the global `-v`/`-q`.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let page = match sub {
        None => cmd,
        Some(name) => cmd.find_subcommand(name).cloned().ok_or_else(|| {
            std::io::Error::other(format!("{} has no subcommand `{name}`", tool.name))
        })?,
    };
    let examples: Vec<&str> = tool
        .examples
        .iter()
        .copied()
        .filter(|line| sub.is_none_or(|sub| example_uses(line, tool.name, sub)))
        .collect();
    // A subcommand's page shows the version too (clap gives it only to the top command).
    let page = page.version(env!("CARGO_PKG_VERSION"));
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .manual("ampkit")
        .source(format!("ampkit {}", env!("CARGO_PKG_VERSION")))
        .render(&mut out)?;
    let mut roff = Roff::default();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        ("0", "success"),
        (
            "1",
            "a service failed (or an internal error); the state document is still written",
        ),
        (
            "2",
            "bad usage or bad input: something the caller must change",
        ),
        ("3", "not found"),
    ] {
        roff.control("TP", [])
            .text([bold(code)])
            .text([roman(meaning)]);
    }
    roff.control("PP", []).text([roman(
        "Errors are one JSON line on stderr, {\"error\":{\"tool\",\"kind\",\"message\",\"hint\"}}, then one line for people.",
    )]);
    if !examples.is_empty() {
        roff.control("SH", ["EXAMPLES"]);
        for line in examples {
            // No fill: an example is copied as one line, as in `--help`.
            roff.control("PP", []).control("nf", []);
            roff.text([roman(line)]);
            roff.control("fi", []);
        }
    }
    if sub.is_some() {
        roff.control("SH", ["SEE ALSO"]);
        roff.text([bold(tool.name), roman("(1)")]);
    }
    // Its own roff (clap_mangen's is private), so its preamble is repeated: harmless.
    roff.to_writer(&mut out)?;
    Ok(out)
}

/// Whether an example command line runs `tool sub`: `sub` is a word of the part of the line
/// that is `tool`'s command (up to the next `|`), as `promql --workspace-id ws range ...` is.
fn example_uses(line: &str, tool: &str, sub: &str) -> bool {
    line.split('|').any(|command| {
        let mut words = command.split_whitespace();
        words.next() == Some(tool) && words.any(|word| word == sub)
    })
}

/// clap's error as one line naming the flag, built from the error's context rather than its
/// rendered text, which spans several lines and may be coloured.
fn clap_message(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ErrorKind as ClapKind};
    let context = |kind: ContextKind| err.get(kind).map(ToString::to_string);
    let arg = context(ContextKind::InvalidArg).unwrap_or_else(|| "an argument".to_owned());
    let value = context(ContextKind::InvalidValue).unwrap_or_default();
    let reason = std::error::Error::source(err)
        .map(|e| format!(": {e}"))
        .or_else(|| context(ContextKind::ValidValue).map(|v| format!(" (possible values: {v})")))
        .unwrap_or_default();
    let suggestion = context(ContextKind::SuggestedArg)
        .or_else(|| context(ContextKind::SuggestedSubcommand))
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    match err.kind() {
        ClapKind::MissingRequiredArgument => {
            format!("the following required arguments were not provided: {arg}")
        }
        ClapKind::InvalidValue | ClapKind::ValueValidation => {
            format!("invalid value `{value}` for `{arg}`{reason}")
        }
        ClapKind::UnknownArgument => format!("unexpected argument `{arg}`{suggestion}"),
        ClapKind::InvalidSubcommand => format!(
            "unknown subcommand `{}`{suggestion}",
            context(ContextKind::InvalidSubcommand).unwrap_or_default()
        ),
        ClapKind::MissingSubcommand => format!(
            "a subcommand is required: one of {}",
            context(ContextKind::ValidSubcommand).unwrap_or_default()
        ),
        ClapKind::ArgumentConflict => format!(
            "`{arg}` cannot be used with `{}`",
            context(ContextKind::PriorArg).unwrap_or_default()
        ),
        ClapKind::NoEquals => format!("`{arg}` takes its value after `=`"),
        ClapKind::TooManyValues | ClapKind::TooFewValues | ClapKind::WrongNumberOfValues => {
            format!("wrong number of values for `{arg}`")
        }
        ClapKind::InvalidUtf8 => "an argument is not valid UTF-8".to_owned(),
        other => format!("invalid arguments ({other})"),
    }
}

/// Parse flags the clap way, but report errors the ampkit way (JSON line, exit 2).
/// With `pass_doc_on`, a refused command line still passes the document on unchanged.
fn parse_args<C: clap::Parser>(
    tool: &Tool,
    pass_doc_on: bool,
    preflight: bool,
) -> std::result::Result<(C, LogArgs, PreflightArgs), ExitCode> {
    use clap::error::ErrorKind as ClapKind;
    let cmd = command::<C>(tool, preflight);
    if let Some(what) = generate_wanted(&cmd) {
        let generated = match what {
            Generate::Completions(shell) => {
                let mut cmd = cmd;
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut cmd, tool.name, &mut script);
                Ok(script)
            }
            Generate::Man(sub) => man_page(cmd, tool, sub.as_deref())
                .map_err(|e| Error::internal(format!("could not render the manual page: {e}"))),
        };
        let code = match generated.and_then(|text| write_stdout(&[&text])) {
            Ok(()) => 0,
            Err(err) => {
                error::report(tool.name, &err);
                err.exit_code()
            }
        };
        return Err(ExitCode::from(code));
    }
    let err = match cmd.try_get_matches().and_then(|mut matches| {
        let log = <LogArgs as clap::FromArgMatches>::from_arg_matches(&matches)?;
        let checks = if preflight {
            <PreflightArgs as clap::FromArgMatches>::from_arg_matches(&matches)?
        } else {
            PreflightArgs::default()
        };
        Ok((C::from_arg_matches_mut(&mut matches)?, log, checks))
    }) {
        Ok(parsed) => return Ok(parsed),
        Err(err) => err,
    };
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
    let usage = command::<C>(tool, preflight).render_usage().to_string();
    let err = Error::usage(clap_message(&err))
        .with_hint(format!("{usage}; run `{} --help` for all flags", tool.name));
    error::report(tool.name, &err);
    // Nothing was done, and nothing may be lost: pass the document on unchanged.
    if pass_doc_on && let Ok(doc) = StateDoc::read_stdin() {
        let _ = write_document(&doc);
    }
    Err(ExitCode::from(err.exit_code()))
}

/// Write `pieces` to stdout, flushed: the one way every tool writes stdout. A closed pipe is
/// not an error (`amp-workspace list | head -1` must not complain), and once this was called
/// the frame does not write the document too.
pub fn write_stdout(pieces: &[&[u8]]) -> Result<()> {
    stdout_written();
    let mut out = std::io::stdout().lock();
    let written = pieces
        .iter()
        .try_for_each(|piece| out.write_all(piece))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != IoErrorKind::BrokenPipe => {
            Err(Error::internal(format!("could not write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// The document on stdout: pretty on a terminal, one compact line in a pipe.
pub fn write_document(doc: &StateDoc) -> Result<()> {
    let text = doc.render(std::io::stdout().is_terminal());
    write_stdout(&[text.as_bytes(), b"\n"])
}

/// What every run does first: name the tool, install the panic hook, parse the flags and
/// start logging. `Err` is the exit code of a run that ends here (help, completions, bad flags).
fn start<C: clap::Parser>(
    tool: &Tool,
    pass_doc_on: bool,
    preflight: bool,
) -> std::result::Result<(C, PreflightArgs), ExitCode> {
    let _ = TOOL_NAME.set(tool.name);
    // Before parsing: a flag definition clap rejects panics inside `try_parse`.
    install_panic_hook();
    match panic::catch_unwind(|| parse_args::<C>(tool, pass_doc_on, preflight)) {
        Ok(Ok((args, log, checks))) => {
            init_logging(&log);
            let _ = LOG_ARGS.set(log);
            Ok((args, checks))
        }
        Ok(Err(code)) => Err(code),
        Err(_) => Err(ExitCode::from(Error::internal("panic").exit_code())),
    }
}

/// Run `work` on the tool's runtime. A panic is an internal error that the hook has already
/// reported (so the result says whether one happened).
fn execute(tool: &Tool, work: impl Future<Output = Result<()>>) -> (Result<()>, bool) {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| match build_runtime(tool.runtime) {
        Ok(rt) => rt.block_on(work),
        Err(e) => Err(Error::internal(format!(
            "could not start the async runtime: {e}"
        ))),
    }));
    match outcome {
        Ok(result) => (result, false),
        Err(_) => (Err(Error::internal("panic")), true),
    }
}

/// The exit code of a run, its error reported unless the panic hook already did.
fn finish(tool: &Tool, (result, panicked): (Result<()>, bool)) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !panicked {
                error::report(tool.name, &err);
            }
            ExitCode::from(err.exit_code())
        }
    }
}

/// Run a tool: parse `C`, read the document, run `body` on it, write it, map the result to
/// an exit code. This is the whole of a tool's `main`.
pub fn run<C, F>(tool: &Tool, body: F) -> ExitCode
where
    C: clap::Parser,
    F: AsyncFnOnce(C, &mut StateDoc) -> Result<()>,
{
    let (args, _) = match start::<C>(tool, true, false) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let mut doc = match StateDoc::read_stdin() {
        Ok(doc) => doc,
        Err(err) => return finish(tool, (Err(err), false)),
    };
    let outcome = execute(tool, body(args, &mut doc));
    write_and_finish(tool, &doc, outcome)
}

/// Run a tool that calls AWS: as [`run`], plus `--print-policy` and `--check`
/// (crate::preflight), which run instead of the body, from what the tool's [`Preflight`]
/// declares of its parsed flags. In the frame rather than each tool's Cli, so that a tool
/// only declares its needs and its `main` stays this one call.
pub fn run_aws<C, F>(tool: &Tool, body: F) -> ExitCode
where
    C: clap::Parser + Preflight,
    F: AsyncFnOnce(C, &mut StateDoc) -> Result<()>,
{
    let (args, checks) = match start::<C>(tool, true, true) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let mut doc = match StateDoc::read_stdin() {
        Ok(doc) => doc,
        Err(err) => return finish(tool, (Err(err), false)),
    };
    let outcome = if checks.print_policy {
        execute(tool, preflight::print_policy(tool.name, &args, &mut doc))
    } else if checks.check {
        execute(tool, preflight::check(tool.name, &args, &doc))
    } else {
        execute(tool, body(args, &mut doc))
    };
    write_and_finish(tool, &doc, outcome)
}

/// The end of every document run: the document out (it carries the ledger), then the result.
fn write_and_finish(tool: &Tool, doc: &StateDoc, outcome: (Result<()>, bool)) -> ExitCode {
    // The document goes out in every case: it carries the ledger of what was created.
    if !STDOUT_WRITTEN.load(Ordering::SeqCst)
        && let Err(err) = write_document(doc)
    {
        return finish(tool, (Err(err), false));
    }
    finish(tool, outcome)
}

/// Run a program that is not a pipeline stage (a server such as amp-local): the same flags,
/// logging, panic and error conventions, but no state document on stdin or stdout.
pub fn run_without_doc<C, F>(tool: &Tool, body: F) -> ExitCode
where
    C: clap::Parser,
    F: AsyncFnOnce(C) -> Result<()>,
{
    match start::<C>(tool, false, false) {
        Ok((args, _)) => finish(tool, execute(tool, body(args))),
        Err(code) => code,
    }
}
