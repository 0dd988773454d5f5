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
use aws_smithy_runtime_api::client::result::SdkError;
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
    let region = resolve_region(args).await.ok_or_else(|| {
        Error::usage("no AWS region is configured")
            .with_hint("pass --region, set AWS_REGION, or set `region` in your AWS profile")
    })?;
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
    // Credentials are resolved once here, before any call: a missing or broken one is then
    // said in one sentence naming its cause, rather than surfacing from the first request as
    // the SDK's nested dispatch failure (with a network hint that sends people the wrong way).
    if let Some(provider) = config.credentials_provider()
        && let Err(e) = provider.provide_credentials().await
    {
        return Err(credentials_error(e, args));
    }
    Ok(config)
}

/// Where the default chain looks for credentials, in its order (said when it found none).
const CREDENTIAL_SOURCES: &str = "the environment (AWS_ACCESS_KEY_ID), the profile's keys in \
    ~/.aws/credentials and ~/.aws/config (static, SSO, credential_process, assumed role), web \
    identity (AWS_WEB_IDENTITY_TOKEN_FILE), the container endpoint and instance metadata";

/// A credentials failure as one line naming the cause and the fix (exit 2: it is the user's
/// configuration to change), the SDK's error kept as the source.
fn credentials_error(e: CredentialsError, args: &AwsArgs) -> Error {
    let text = DisplayErrorContext(&e).to_string();
    let named = args
        .profile
        .clone()
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()));
    let profile = named.clone().unwrap_or_else(|| "default".to_owned());
    let error = if named.is_some()
        && (text.contains("was not defined")
            || text.contains("ProfileNotDefined")
            || text.contains("No profiles were defined"))
    {
        Error::usage(format!(
            "profile `{profile}` is not in ~/.aws/config or ~/.aws/credentials"
        ))
        .with_hint(format!(
            "list the profiles with `aws configure list-profiles`, or create it with `aws configure --profile {profile}`"
        ))
    } else if text.to_ascii_lowercase().contains("sso")
        && (text.contains("expired") || text.contains("refresh"))
    {
        Error::usage(format!(
            "the SSO session of profile `{profile}` has expired"
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

/// The first line of a long message, which is the part that names the cause.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// The region a loaded configuration uses (always set by [`load`]).
pub fn region_of(config: &SdkConfig) -> String {
    config.region().map(|r| r.to_string()).unwrap_or_default()
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

/// Map an SDK error to an ampkit error, prefixed with what was being done.
pub fn sdk_error<E, R>(err: SdkError<E, R>, doing: impl Display) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let error = match &err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("Unknown");
            let message = inner.message().unwrap_or("no message");
            let kind = if NOT_FOUND_CODES.contains(&code) {
                ErrorKind::NotFound
            } else if INPUT_CODES.contains(&code) {
                ErrorKind::Input
            } else {
                ErrorKind::Remote
            };
            let mut error = Error::new(kind, format!("{doing}: {code}: {message}"));
            if code.contains("AccessDenied") || code.contains("Unrecognized") {
                error = error.with_hint(
                    "check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and their IAM permissions",
                );
            }
            error
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Error::remote(format!(
            "{doing}: could not reach the service: {}",
            DisplayErrorContext(&err)
        ))
        .with_hint(
            "check the network and the endpoint (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>)",
        ),
        SdkError::ConstructionFailure(_) => Error::usage(format!(
            "{doing}: the request could not be built: {}",
            DisplayErrorContext(&err)
        ))
        .with_hint("check the credentials are configured (AWS_PROFILE, AWS_ACCESS_KEY_ID)"),
        _ => Error::remote(format!("{doing}: {}", DisplayErrorContext(&err))),
    };
    // The SDK's error stays reachable (`source()`), for whoever wants its whole chain.
    error.with_source(err)
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
