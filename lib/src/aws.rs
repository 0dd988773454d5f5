//! AWS configuration, built the way the AWS CLI builds it, and SDK errors mapped to ours.
//!
//! Region: `--region`, else `AWS_REGION` / `AWS_DEFAULT_REGION`, else the profile's `region`.
//! Unlike the SDK's default chain we never ask instance metadata for a region: off EC2 that
//! probe only adds seconds before the same "no region" failure. Endpoints come from
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`, which the SDK reads itself; that is
//! the only difference between a local run and a real one.

use std::fmt::{Debug, Display};
use std::time::Duration;

/// The AWS configuration every client is made from (re-exported, so that a tool need not
/// depend on aws-config to pass one on).
pub use aws_config::SdkConfig;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::{Error, ErrorKind, Result};

/// The flags every AWS-calling tool takes, named as the AWS CLI names them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AwsArgs {
    /// AWS region [default: AWS_REGION, AWS_DEFAULT_REGION, or the profile's region]
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Named profile from ~/.aws/config and ~/.aws/credentials [default: AWS_PROFILE]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
}

/// Resolve the region without instance-metadata probes; `None` when nothing names one.
pub async fn resolve_region(args: &AwsArgs) -> Option<Region> {
    if let Some(region) = args.region.as_deref().filter(|r| !r.is_empty()) {
        return Some(Region::new(region.to_owned()));
    }
    let profile = match &args.profile {
        Some(name) => ProfileFileRegionProvider::builder()
            .profile_name(name)
            .build(),
        None => ProfileFileRegionProvider::new(),
    };
    RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(profile)
        .region()
        .await
}

/// Load the SDK configuration; fails fast (exit 2) when no region is configured.
pub async fn load(args: &AwsArgs) -> Result<SdkConfig> {
    let Some(region) = resolve_region(args).await else {
        // A profile that does not exist has no region either: that is the cause to name.
        if let Some(profile) = named_profile(args)
            && !profile_exists(&profile).await
        {
            return Err(missing_profile(&profile));
        }
        return Err(Error::usage("no AWS region is configured")
            .with_hint("pass --region, set AWS_REGION, or set `region` in your AWS profile"));
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        // A dead endpoint must fail in seconds, not hang a pipeline.
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    let config = loader.load().await;
    let _ = CONFIGURED_REGION.set(region_of(&config));
    // Credentials are resolved once here, before any call: a missing or broken one is then
    // said in one sentence naming its cause, rather than surfacing from the first request as
    // the SDK's nested dispatch failure (with a network hint that sends people the wrong way).
    if let Some(provider) = config.credentials_provider()
        && let Err(e) = provider.provide_credentials().await
    {
        return Err(credentials_error(e, args).await);
    }
    Ok(config)
}

/// Where the default chain looks for credentials, in its order (said when it found none).
const CREDENTIAL_SOURCES: &str = "the environment (AWS_ACCESS_KEY_ID), the profile's keys in \
    ~/.aws/credentials and ~/.aws/config (static, SSO, credential_process, assumed role), web \
    identity (AWS_WEB_IDENTITY_TOKEN_FILE), the container endpoint and instance metadata";

/// A credentials failure as one line naming the cause and the fix (exit 2: it is the user's
/// configuration to change), the SDK's error kept as the source.
async fn credentials_error(e: CredentialsError, args: &AwsArgs) -> Error {
    let text = DisplayErrorContext(&e).to_string();
    let named = named_profile(args);
    let profile = named.clone().unwrap_or_else(|| "default".to_owned());
    let error = if let Some(failed) = failed_assume_role(&e) {
        assume_role_error(failed, &profile).await
    } else if named.is_some()
        && (text.contains("was not defined")
            || text.contains("ProfileNotDefined")
            || text.contains("No profiles were defined"))
    {
        missing_profile(&profile)
    } else if text.to_ascii_lowercase().contains("sso")
        && (text.contains("expired") || text.contains("refresh"))
    {
        Error::usage(format!(
            "the SSO session of profile `{profile}` has expired"
        ))
        .with_hint(format!("run `aws sso login --profile {profile}`"))
    } else if text.contains("UnauthorizedException") && is_sso_profile(&profile).await {
        // The portal's GetRoleCredentials refused the cached token (signed out, revoked, or an
        // expired one of a profile without `sso_session`, which the SDK sends unchecked). Its
        // error type is the SSO crate's, which lib does not link: the code is read as text.
        Error::usage(format!(
            "the SSO session of profile `{profile}` is no longer valid: the SSO portal refused its token"
        ))
        .with_hint(format!("run `aws sso login --profile {profile}`"))
    } else if text.contains("AssumeRole") || text.contains("assume role") {
        Error::usage(format!(
            "the role of profile `{profile}` could not be assumed: {}",
            first_line(&text)
        ))
        .with_hint("check the profile's role_arn and source_profile, and that the role trusts the source identity")
    } else if matches!(e, CredentialsError::CredentialsNotLoaded(_)) {
        Error::usage(format!(
            "no AWS credentials found: looked in {CREDENTIAL_SOURCES}"
        ))
        .with_hint(
            "run `aws configure` (or `aws sso login`), set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or pass --profile",
        )
    } else {
        Error::remote(format!(
            "loading AWS credentials (profile `{profile}`) failed: {}",
            first_line(&text)
        ))
        .with_hint("run again with -vv to see the whole chain of causes")
    };
    error.with_source(e)
}

/// The AssumeRole call that failed under a profile's `role_arn`, if that is what the chain
/// of causes holds (the SDK nests it in two provider errors, and its text alone does not name
/// the code when the body is in a shape the SDK could not parse).
fn failed_assume_role(
    e: &CredentialsError,
) -> Option<&SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError, HttpResponse>> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

/// A setting of a profile in the AWS config and credentials files, read as the SDK reads them
/// (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, `~/.aws`): the SDK's error does not say
/// which role it was assuming.
/// The profile the run names: `--profile`, else AWS_PROFILE.
fn named_profile(args: &AwsArgs) -> Option<String> {
    args.profile
        .clone()
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
}

fn missing_profile(profile: &str) -> Error {
    Error::usage(format!(
        "profile `{profile}` is not in ~/.aws/config or ~/.aws/credentials"
    ))
    .with_hint(format!(
        "list the profiles with `aws configure list-profiles`, or create it with `aws configure --profile {profile}`"
    ))
}

/// The profile files as the SDK finds them: the real file system, the process's environment
/// and the two files (`None` when they cannot be read).
async fn profile_files() -> Option<aws_config::profile::ProfileSet> {
    aws_config::profile::load(
        &Default::default(),
        &Default::default(),
        &Default::default(),
        None,
    )
    .await
    .ok()
}

/// Whether the profile files define `profile`.
async fn profile_exists(profile: &str) -> bool {
    profile_files()
        .await
        .is_some_and(|profiles| profiles.get_profile(profile).is_some())
}

async fn profile_setting(profile: &str, key: &str) -> Option<String> {
    profile_files()
        .await?
        .get_profile(profile)?
        .get(key)
        .map(str::to_owned)
        .filter(|v| !v.is_empty())
}

/// Whether a profile takes its credentials from IAM Identity Center (`sso_session`, or the
/// older `sso_start_url` form).
async fn is_sso_profile(profile: &str) -> bool {
    profile_setting(profile, "sso_session").await.is_some()
        || profile_setting(profile, "sso_start_url").await.is_some()
}

/// A profile's role that could not be assumed: the role, and STS's answer said as every AWS
/// answer is (access denied naming the caller, refused source credentials, an endpoint that
/// is not STS, one that does not answer), with the fix for a role assumption.
async fn assume_role_error(
    failed: &SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError, HttpResponse>,
    profile: &str,
) -> Error {
    let role = profile_setting(profile, "role_arn").await;
    let source = profile_setting(profile, "source_profile").await;
    let doing = match &role {
        Some(role) => format!("assuming role {role} of profile `{profile}`"),
        None => format!("assuming the role of profile `{profile}`"),
    };
    let error = described(failed, &doing);
    let role = role.unwrap_or_else(|| "the role".to_owned());
    let source = source
        .map(|s| format!("source_profile `{s}`"))
        .unwrap_or_else(|| "the source credentials".to_owned());
    match error.kind {
        // IAM's "How to use trust policies with IAM roles": both the role's trust policy and
        // the caller's own policies must allow sts:AssumeRole.
        ErrorKind::Denied => {
            let who = match failed {
                SdkError::ServiceError(service) => Denial::parse(&answer_of(service).2).principal,
                _ => None,
            }
            .unwrap_or_else(|| format!("the identity of {source}"));
            let hint = format!(
                "the trust policy of {role} must allow {who} to sts:AssumeRole, and {who}'s own policies must allow sts:AssumeRole on it; or fix the profile's role_arn and source_profile"
            );
            error.with_hint(hint)
        }
        ErrorKind::Usage => {
            let hint = format!(
                "{} (these are the credentials of {source})",
                error.hint.as_deref().unwrap_or("check the credentials")
            );
            error.with_hint(hint)
        }
        _ => error,
    }
}

/// The first line of a long message, which is the part that names the cause.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// The region a loaded configuration uses (always set by [`load`]).
pub fn region_of(config: &SdkConfig) -> String {
    config.region().map(|r| r.to_string()).unwrap_or_default()
}

/// An object a run is about to act on, placed in a region and an account by an ARN (or an
/// endpoint) that the document or a flag gives. AWS answers "not found" for an object of
/// another region or account exactly as for a deleted one, which sends a user looking for the
/// wrong cause; so each tool checks, before any call that would create or change something,
/// that the object lives where the run acts, and says both places and the fix in one line.
#[derive(Debug, Clone)]
pub struct Placed<'a> {
    /// The object as the user knows it: "the document's workspace ws-1", "the topic t that
    /// --topic-arn names".
    pub what: String,
    /// Its kind, for the fix: "workspace", "topic", "role".
    pub noun: &'a str,
    /// The flag that names another one instead.
    pub flag: &'a str,
}

impl Placed<'_> {
    /// `placed` (the object's region, `None` when nothing says) must be the run's `region`.
    pub fn in_region(&self, placed: Option<&str>, region: &str) -> Result<()> {
        let Some(placed) = placed.filter(|p| !p.is_empty() && *p != region) else {
            return Ok(());
        };
        Err(Error::usage(format!(
            "{} is in region {placed}, but this run uses region {region}",
            self.what
        ))
        .with_hint(format!(
            "pass --region {placed} (or set AWS_REGION={placed}), or give a {} of {region} with {}",
            self.noun, self.flag
        )))
    }

    /// `account` (the object's, `None` when nothing says) must be the caller's.
    pub fn of_account(&self, account: Option<&str>, caller: &crate::sts::Caller) -> Result<()> {
        let Some(account) = account.filter(|a| !a.is_empty() && *a != caller.account) else {
            return Ok(());
        };
        Err(Error::usage(format!(
            "{} is in account {account}, but the credentials are of account {} ({})",
            self.what, caller.account, caller.arn
        ))
        .with_hint(format!(
            "use credentials of account {account} (--profile, AWS_PROFILE), or give a {} of account {} with {}",
            self.noun, caller.account, self.flag
        )))
    }

    /// Both, from the object's ARN: its region (IAM's ARNs have none: IAM is global) against
    /// the run's, then its account against the caller's (one STS call, made only when the
    /// region matched and the ARN names an account).
    pub async fn check_arn(&self, arn: &str, config: &SdkConfig) -> Result<()> {
        self.in_region(crate::sts::arn_region(arn), &region_of(config))?;
        let Some(account) = crate::sts::arn_account(arn) else {
            return Ok(());
        };
        self.of_account(Some(account), &crate::sts::caller(config).await?)
    }
}

/// The one table of service error codes, for the exit code of an error nobody handled: code
/// says which kind (and so which exit code) it is. Decisions ("exists", "already gone") never
/// read it: they match the SDK's generated error variants (`is_*()`) where they are made.
///
/// Service error codes that mean "it does not exist".
const NOT_FOUND_CODES: &[&str] = &[
    "ResourceNotFoundException",
    "NoSuchEntity",
    "NotFound",
    "NotFoundException",
];

/// Service error codes caused by what the caller sent.
const INPUT_CODES: &[&str] = &[
    "ValidationException",
    "ValidationError",
    "InvalidParameterException",
    "InvalidParameterValue",
    "InvalidInput",
    "MalformedPolicyDocument",
];

/// Service error codes for a caller whose identity lacks a permission.
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "UnauthorizedOperation",
];

/// Service error codes for credentials the service refused (unknown key, wrong secret,
/// expired session), with what to do about each.
const REFUSED_CREDENTIALS: &[(&str, &str)] = &[
    (
        "InvalidClientTokenId",
        "the access key is not known to this account's partition: check AWS_ACCESS_KEY_ID or the profile's keys, and the endpoint",
    ),
    (
        "UnrecognizedClientException",
        "the access key is not known to this account's partition: check AWS_ACCESS_KEY_ID or the profile's keys, and the endpoint",
    ),
    (
        "SignatureDoesNotMatch",
        "the secret key does not belong to the access key: check AWS_SECRET_ACCESS_KEY or the profile's keys",
    ),
    (
        "InvalidSignatureException",
        "the secret key does not belong to the access key: check AWS_SECRET_ACCESS_KEY or the profile's keys",
    ),
    (
        "ExpiredToken",
        "the session has expired: refresh the credentials (`aws sso login`, or assume the role again)",
    ),
    (
        "ExpiredTokenException",
        "the session has expired: refresh the credentials (`aws sso login`, or assume the role again)",
    ),
];

/// Service error codes for throttling (the SDK has retried them already when one surfaces).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// The region [`load`] configured, for messages that must say where a tool looked.
static CONFIGURED_REGION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// " in region R" when a region was configured, else nothing.
fn in_region() -> String {
    CONFIGURED_REGION
        .get()
        .map(|r| format!(" (looked in region {r})"))
        .unwrap_or_default()
}

/// What an access-denied answer names. AWS's messages read "User: ARN is not authorized to
/// perform: ACTION on resource: RESOURCE because ..."; moto's and some services' stop after
/// the action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denial {
    pub principal: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
}

impl Denial {
    pub fn parse(message: &str) -> Denial {
        let word_after = |marker: &str| {
            let start = message.find(marker)? + marker.len();
            let word: String = message[start..]
                .trim_start()
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            let word = word.trim_end_matches(['.', ',', ';']);
            Some(word.to_owned()).filter(|w| !w.is_empty())
        };
        Denial {
            principal: word_after("User:"),
            action: word_after("to perform:"),
            resource: word_after("on resource:"),
        }
    }

    /// The error a user sees: the step, what AWS named, and what to grant.
    pub fn error(&self, doing: impl Display, raw: &str) -> Error {
        let Some(action) = &self.action else {
            return Error::new(
                ErrorKind::Denied,
                format!("{doing}: access denied: {raw}"),
            )
            .with_hint("the caller's IAM policies do not allow this step; `--print-policy` prints what the tool needs");
        };
        let on = self
            .resource
            .as_deref()
            .map(|r| format!(" on `{r}`"))
            .unwrap_or_default();
        let who = self
            .principal
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        Error::new(
            ErrorKind::Denied,
            format!("{doing}: access denied: the caller{who} may not `{action}`{on}"),
        )
        .with_hint(format!(
            "grant `{action}`{on} to the caller, or use a profile that has it; `--print-policy` prints every permission the tool needs, `--check` finds what is missing before anything is made"
        ))
    }
}

/// Map an SDK error to an ampkit error, prefixed with what was being done (the step, which a
/// user needs to know as much as the cause).
pub fn sdk_error<E>(err: SdkError<E, HttpResponse>, doing: impl Display) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // The SDK's error stays reachable (`source()`), for whoever wants its whole chain.
    described(&err, &doing).with_source(err)
}

/// The status, AWS error code and message of a service's answer. What the SDK could not
/// parse may still be an AWS error in another protocol's shape (moto answers REST-JSON
/// services' auth errors in XML, and its query-protocol errors wrapped in `<Errors>`; so do
/// some proxies), so the body is read when the SDK found no code.
fn answer_of<E: ProvideErrorMetadata>(
    service: &aws_smithy_runtime_api::client::result::ServiceError<E, HttpResponse>,
) -> (u16, Option<String>, String) {
    let inner = service.err();
    let raw = service.raw();
    let status = raw.status().as_u16();
    let from_body = || raw.body().bytes().and_then(error_in);
    let (code, message) = match (inner.code(), inner.message()) {
        (Some(code), message) => (
            Some(code.to_owned()),
            message.unwrap_or("no message").to_owned(),
        ),
        (None, message) => match from_body() {
            Some((code, text)) => (Some(code), text),
            None => (None, message.unwrap_or("no message").to_owned()),
        },
    };
    (status, code, message)
}

/// [`sdk_error`] without taking the error: for an SDK error found inside another one (the
/// AssumeRole call under a profile's credentials).
fn described<E>(err: &SdkError<E, HttpResponse>, doing: &dyn Display) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let (status, code, message) = answer_of(service);
            classify(doing, status, code.as_deref(), &message)
        }
        SdkError::ResponseError(response) => Error::remote(format!(
            "{doing}: the endpoint answered HTTP {} with something that is not an AWS answer",
            response.raw().status().as_u16()
        ))
        .with_hint("check that the endpoint is the service's (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>) and the region"),
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Error::remote(format!(
            "{doing}: could not reach the service: {}",
            DisplayErrorContext(err)
        ))
        .with_hint(
            "nothing answered: check the network and the endpoint (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>)",
        ),
        SdkError::ConstructionFailure(_) => Error::usage(format!(
            "{doing}: the request could not be built: {}",
            DisplayErrorContext(err)
        ))
        .with_hint("check the credentials are configured (AWS_PROFILE, AWS_ACCESS_KEY_ID)"),
        _ => Error::remote(format!("{doing}: {}", DisplayErrorContext(err))),
    }
}

/// The error for a service's answer: its code decides the kind, the message stays AWS's.
fn classify(doing: &dyn Display, status: u16, code: Option<&str>, message: &str) -> Error {
    let Some(code) = code else {
        // An answer that is no AWS error at all: something else listens there.
        return Error::remote(format!(
            "{doing}: the endpoint answered HTTP {status}, but not as an AWS service does"
        ))
        .with_hint("check that the endpoint is the service's (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>) and the region");
    };
    if DENIED_CODES.contains(&code) {
        return Denial::parse(message).error(doing, message);
    }
    if THROTTLING_CODES.contains(&code) {
        return Error::remote(format!(
            "{doing}: AWS throttled the calls ({code}) and the SDK's retries ran out"
        ))
        .with_hint("run again later; AWS_MAX_ATTEMPTS and AWS_RETRY_MODE=adaptive make the SDK retry for longer");
    }
    if let Some((_, fix)) = REFUSED_CREDENTIALS.iter().find(|(c, _)| *c == code) {
        return Error::usage(format!(
            "{doing}: AWS refused the credentials ({code}): {message}"
        ))
        .with_hint(*fix);
    }
    if NOT_FOUND_CODES.contains(&code) {
        return Error::not_found(format!("{doing}: {code}: {message}{}", in_region()))
            .with_hint("check the id or name, and that the region (--region, AWS_REGION) and account are those it was made in");
    }
    let kind = if INPUT_CODES.contains(&code) {
        ErrorKind::Input
    } else {
        ErrorKind::Remote
    };
    Error::new(kind, format!("{doing}: {code}: {message}"))
}

/// A service client from the shared configuration, with ampkit's interceptors (a retry is
/// said on stderr). Every service module makes its client through this.
#[macro_export]
macro_rules! aws_client {
    ($sdk:ident, $config:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from($config)
                .interceptor($crate::aws::RetryNotice)
                .build(),
        )
    };
}

/// Says on stderr when the SDK retries a call, and why: a tool that sits silent through
/// three throttled attempts looks hung, and a user cannot tell a slow service from a
/// throttled one.
#[derive(Debug, Clone, Copy)]
pub struct RetryNotice;

/// Why the last attempt failed, kept between attempts in the call's configuration bag.
#[derive(Debug, Clone)]
struct LastFailure(String);

impl aws_smithy_types::config_bag::Storable for LastFailure {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl Intercept for RetryNotice {
    fn name(&self) -> &'static str {
        "RetryNotice"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let failure = match (context.response(), context.output_or_error()) {
            (_, Some(Ok(_))) | (_, None) => return Ok(()),
            (Some(response), _) => {
                let status = response.status().as_u16();
                let code = response
                    .headers()
                    .get("x-amzn-errortype")
                    .map(|v| v.split(':').next().unwrap_or(v).to_owned())
                    .or_else(|| {
                        response
                            .body()
                            .bytes()
                            .and_then(error_in)
                            .map(|(code, _)| code)
                    });
                match code {
                    Some(code) => format!("HTTP {status} {code}"),
                    None => format!("HTTP {status}"),
                }
            }
            (None, Some(Err(e))) => match e.as_connector_error() {
                Some(c) if c.is_timeout() => "a timeout".to_owned(),
                Some(_) => "a connection error".to_owned(),
                None => "an error".to_owned(),
            },
        };
        cfg.interceptor_state().store_put(LastFailure(failure));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let attempt = cfg.load::<RequestAttempts>().map_or(0, |a| a.attempts());
        if attempt > 1 {
            let operation = cfg
                .load::<Metadata>()
                .map(|m| format!("{}.{}", m.service(), m.name()))
                .unwrap_or_else(|| "a call".to_owned());
            // An attempt that timed out never reaches `read_after_attempt`: no failure kept
            // (or one already said) means the last one timed out.
            let why = match cfg.load::<LastFailure>() {
                Some(LastFailure(f)) if !f.is_empty() => format!(" after {f}"),
                _ => " after the attempt timed out".to_owned(),
            };
            cfg.interceptor_state()
                .store_put(LastFailure(String::new()));
            eprintln!(
                "{}: retrying {operation} (attempt {attempt}){why}",
                program()
            );
        }
        Ok(())
    }
}

/// This program's name, as the tools prefix their stderr lines.
fn program() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "ampkit".to_owned())
}

/// The error code and message in an AWS error body: XML `<Code>`/`<Message>`, or JSON
/// `__type`/`code` and `message`.
fn error_in(body: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let rest = &text[start..];
        Some(rest[..rest.find('<')?].to_owned())
    };
    if let Some(code) = element("Code") {
        return Some((code, element("Message").unwrap_or_default()));
    }
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    let code = json.get("__type").or_else(|| json.get("code"))?.as_str()?;
    let message = json
        .get("message")
        .or_else(|| json.get("Message"))
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    // `__type` may be `namespace#Code`.
    let code = code.rsplit('#').next().unwrap_or(code);
    Some((code.to_owned(), message.to_owned()))
}

/// What a service's delete found: it deleted the object now, or the service answered that it
/// was gone already (for some services also the answer for a wrong region or account: the
/// caller decides what that means). Shared by the services whose delete is one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Now,
    AlreadyGone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_region_flag_wins() {
        let args = AwsArgs {
            region: Some("ap-south-2".into()),
            profile: None,
        };
        assert_eq!(resolve_region(&args).await, Some(Region::new("ap-south-2")));
    }

    #[test]
    fn a_denial_names_the_caller_the_action_and_the_resource() {
        // AWS's shape (IAM's documentation, "Troubleshoot access denied error messages").
        let aws = Denial::parse(
            "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: \
             iam:CreateRole on resource: arn:aws:iam::123456789012:role/x because no \
             identity-based policy allows the iam:CreateRole action",
        );
        assert_eq!(
            aws,
            Denial {
                principal: Some("arn:aws:iam::123456789012:user/ci".into()),
                action: Some("iam:CreateRole".into()),
                resource: Some("arn:aws:iam::123456789012:role/x".into()),
            }
        );
        // moto's, which stops after the action.
        let moto = Denial::parse(
            "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: iam:DeleteRole",
        );
        assert_eq!(moto.action.as_deref(), Some("iam:DeleteRole"));
        assert_eq!(moto.resource, None);
        let error = aws.error("creating role x", "");
        assert_eq!(error.kind, ErrorKind::Denied);
        assert_eq!(error.exit_code(), 2);
        assert_eq!(
            error.message,
            "creating role x: access denied: the caller (arn:aws:iam::123456789012:user/ci) may \
             not `iam:CreateRole` on `arn:aws:iam::123456789012:role/x`"
        );
    }

    #[test]
    fn an_object_elsewhere_is_named_with_both_places_and_the_fix() {
        let placed = Placed {
            what: "the document's topic t".into(),
            noun: "topic",
            flag: "--topic-arn",
        };
        assert!(placed.in_region(Some("eu-west-1"), "eu-west-1").is_ok());
        assert!(placed.in_region(None, "eu-west-1").is_ok());
        let error = placed
            .in_region(Some("us-east-2"), "eu-west-1")
            .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert_eq!(
            error.message,
            "the document's topic t is in region us-east-2, but this run uses region eu-west-1"
        );
        assert_eq!(
            error.hint.as_deref(),
            Some(
                "pass --region us-east-2 (or set AWS_REGION=us-east-2), or give a topic of eu-west-1 with --topic-arn"
            )
        );
        let caller = crate::sts::Caller {
            account: "123456789012".into(),
            arn: "arn:aws:iam::123456789012:user/ci".into(),
        };
        assert!(placed.of_account(Some("123456789012"), &caller).is_ok());
        let error = placed
            .of_account(Some("111122223333"), &caller)
            .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert_eq!(
            error.message,
            "the document's topic t is in account 111122223333, but the credentials are of \
             account 123456789012 (arn:aws:iam::123456789012:user/ci)"
        );
    }

    #[test]
    fn error_codes_are_read_from_either_protocols_body() {
        assert_eq!(
            error_in(b"<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>"),
            Some(("AccessDenied".into(), "no".into()))
        );
        assert_eq!(
            error_in(br#"{"__type":"com.amazon.aps#ThrottlingException","message":"slow down"}"#),
            Some(("ThrottlingException".into(), "slow down".into()))
        );
        assert_eq!(error_in(b"<html>not found</html>"), None);
    }

    #[test]
    fn an_sdk_error_stays_reachable_as_the_source() {
        use aws_sdk_amp::operation::describe_workspace::DescribeWorkspaceError;
        use aws_smithy_runtime_api::http::Response;
        let sdk: SdkError<DescribeWorkspaceError, Response> =
            SdkError::construction_failure(std::io::Error::other("no credentials in the chain"));
        let error = sdk_error(sdk, "describing workspace ws-1");
        assert_eq!(error.kind, ErrorKind::Usage);
        let mut chain = String::new();
        let mut next = std::error::Error::source(&error);
        while let Some(e) = next {
            chain.push_str(&format!("{e} / "));
            next = e.source();
        }
        assert!(chain.contains("no credentials in the chain"), "{chain}");
    }
}
