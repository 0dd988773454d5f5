//! HTTP with AWS SigV4: a reqwest client that signs each request it sends.
//!
//! The AWS SDK signs only its own operations; AMP's data plane (PromQL, remote write) and any
//! other raw AWS HTTP API need a plain HTTP client whose requests carry a SigV4 signature made
//! with the same credentials the SDK would use. This module is that client, shared by every
//! tool that talks to such an API.
//!
//! It is built for short-lived processes (`promql` runs once per shell call): credentials come
//! from the environment variables first, and only when those are absent (or `--profile` names a
//! profile) is the SDK's full default chain built, which reads profile files and may probe
//! metadata services. Nothing of an `SdkConfig` is loaded.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::Region;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::header::{HeaderName, HeaderValue};

use crate::aws::{AwsArgs, resolve_region};
use crate::error::{Error, Result};

/// How long connecting may take before an endpoint counts as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Credentials this close to expiry are fetched again before signing.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// What signs: credentials (cached), region and the signing name of the service.
struct Signer {
    region: String,
    service: String,
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<Credentials>>,
}

/// A reqwest client that signs every request it sends (or none, for self-hosted endpoints).
pub struct SignedClient {
    http: reqwest::Client,
    signer: Option<Signer>,
}

/// Build the plain reqwest client for `endpoint`, connect timeout set.
///
/// Loading the system's root certificates costs several milliseconds (hundreds of files are
/// parsed), more than the rest of a `promql` run; a plain-http endpoint (amp-local, a
/// self-hosted Prometheus) gets a client that never loads them.
pub fn http_client(endpoint: &str) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
    if endpoint.trim_start().starts_with("http://") {
        builder = builder.tls_certs_only(Vec::new());
    }
    builder
        .build()
        .map_err(|e| Error::internal(format!("could not build the HTTP client: {e}")))
}

impl SignedClient {
    /// A client that signs for `service` (e.g. `aps`) with the region and credentials the AWS
    /// CLI would use for these flags.
    pub async fn new(args: &AwsArgs, service: &str) -> Result<Self> {
        Self::for_endpoint(args, service, "https:").await
    }

    /// [`SignedClient::new`] for one endpoint: a plain-http one skips loading TLS roots.
    pub async fn for_endpoint(args: &AwsArgs, service: &str, endpoint: &str) -> Result<Self> {
        let region = resolve_region(args).await.ok_or_else(|| {
            Error::usage("no AWS region is configured (needed to sign requests)")
                .with_hint("pass --region, set AWS_REGION, or set `region` in your AWS profile")
        })?;
        let provider = credentials_provider(args, &region).await;
        Ok(SignedClient {
            http: http_client(endpoint)?,
            signer: Some(Signer {
                region: region.to_string(),
                service: service.to_owned(),
                provider,
                cached: Mutex::new(None),
            }),
        })
    }

    /// A client that sends requests as they are (a self-hosted, unauthenticated endpoint).
    pub fn unsigned() -> Result<Self> {
        Self::unsigned_for("https:")
    }

    /// [`SignedClient::unsigned`] for one endpoint: a plain-http one skips loading TLS roots.
    pub fn unsigned_for(endpoint: &str) -> Result<Self> {
        Ok(SignedClient {
            http: http_client(endpoint)?,
            signer: None,
        })
    }

    /// A client from explicit parts: for tests and for callers that already hold credentials.
    pub fn with_credentials(
        http: reqwest::Client,
        credentials: Credentials,
        region: &str,
        service: &str,
    ) -> Self {
        SignedClient {
            http,
            signer: Some(Signer {
                region: region.to_owned(),
                service: service.to_owned(),
                provider: SharedCredentialsProvider::new(credentials),
                cached: Mutex::new(None),
            }),
        }
    }

    /// The underlying client, to build requests with (`client.http().post(url)...`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The region requests are signed for; `None` when the client does not sign.
    pub fn region(&self) -> Option<&str> {
        self.signer.as_ref().map(|s| s.region.as_str())
    }

    /// Sign `request` in place (adds `authorization`, `x-amz-date`, and the session token
    /// when there is one). A no-op for an unsigned client.
    pub async fn sign(&self, request: &mut reqwest::Request) -> Result<()> {
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        let credentials = signer.credentials().await?;
        sign_request(
            request,
            credentials,
            &signer.region,
            &signer.service,
            SystemTime::now(),
        )
    }

    /// Sign and send. Transport failures become remote errors that name the URL.
    pub async fn execute(&self, mut request: reqwest::Request) -> Result<reqwest::Response> {
        self.sign(&mut request).await?;
        let url = request.url().clone();
        self.http
            .execute(request)
            .await
            .map_err(|e| transport_error(&e, url.as_str()))
    }
}

impl Signer {
    async fn credentials(&self) -> Result<Credentials> {
        if let Ok(cached) = self.cached.lock()
            && let Some(credentials) = cached.as_ref()
            && fresh(credentials)
        {
            return Ok(credentials.clone());
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(credentials_error)?;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some(credentials.clone());
        }
        Ok(credentials)
    }
}

fn fresh(credentials: &Credentials) -> bool {
    credentials
        .expiry()
        .is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
}

/// Environment credentials when present (cheap: no files, no network), else the SDK chain.
/// An explicit `--profile` goes straight to the chain, as the AWS CLI lets it win over the
/// environment's keys.
async fn credentials_provider(args: &AwsArgs, region: &Region) -> SharedCredentialsProvider {
    if args.profile.is_none()
        && let Ok(credentials) = EnvironmentVariableCredentialsProvider::new()
            .provide_credentials()
            .await
    {
        return SharedCredentialsProvider::new(credentials);
    }
    let mut chain = DefaultCredentialsChain::builder().region(region.clone());
    if let Some(profile) = &args.profile {
        chain = chain.profile_name(profile);
    }
    SharedCredentialsProvider::new(chain.build().await)
}

fn credentials_error(err: CredentialsError) -> Error {
    match err {
        CredentialsError::CredentialsNotLoaded(_) => {
            Error::usage("no AWS credentials were found to sign the request").with_hint(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, pass --profile, or use --no-sign for an endpoint without authentication",
            )
        }
        other => Error::remote(format!(
            "could not load AWS credentials: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&other)
        ))
        .with_hint("check AWS_PROFILE and the credential settings of that profile"),
    }
}

/// SigV4-sign a reqwest request with explicit credentials and time (tests pin the time).
pub fn sign_request(
    request: &mut reqwest::Request,
    credentials: Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<()> {
    let body = match request.body() {
        Some(body) => match body.as_bytes() {
            Some(bytes) => SignableBody::Bytes(bytes),
            // A streamed body cannot be hashed up front.
            None => SignableBody::UnsignedPayload,
        },
        None => SignableBody::Bytes(&[]),
    };
    let headers = request
        .headers()
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)));
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.url().as_str(),
        headers,
        body,
    )
    .map_err(|e| Error::internal(format!("could not prepare the request for signing: {e}")))?;
    let identity: Identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::internal(format!("could not build the signing parameters: {e}")))?
        .into();
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| Error::internal(format!("could not sign the request: {e}")))?
        .into_parts();
    let (headers, _query_params) = instructions.into_parts();
    for header in headers {
        let mut value = HeaderValue::from_str(header.value()).map_err(|e| {
            Error::internal(format!(
                "the signature header {} is not valid: {e}",
                header.name()
            ))
        })?;
        value.set_sensitive(header.sensitive());
        request
            .headers_mut()
            .insert(HeaderName::from_static(header.name()), value);
    }
    Ok(())
}

/// A reqwest transport error as a remote error that says what could not be reached and why.
pub fn transport_error(err: &reqwest::Error, url: &str) -> Error {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let detail = if cause.is_empty() {
        err.to_string()
    } else {
        cause
    };
    Error::remote(format!("{url}: {what}: {detail}"))
        .with_hint("check that the endpoint is up and the URL is right (--url, --workspace-id, AWS_ENDPOINT_URL_AMP)")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        )
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn post(url: &str, body: &[(&str, &str)]) -> reqwest::Request {
        reqwest::Client::new()
            .post(url)
            .form(body)
            .build()
            .expect("request builds")
    }

    fn header<'a>(request: &'a reqwest::Request, name: &str) -> &'a str {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[test]
    fn signature_covers_host_date_and_content_type_with_scope() {
        let mut req = post(
            "http://127.0.0.1:19201/workspaces/ws-1/api/v1/query",
            &[("query", "up")],
        );
        sign_request(&mut req, creds(), "eu-west-1", "aps", at(1_700_000_000)).unwrap();
        let auth = header(&req, "authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/aps/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date"),
            "{auth}"
        );
        assert_eq!(header(&req, "x-amz-date"), "20231114T221320Z");
        assert!(req.headers().get("x-amz-security-token").is_none());
    }

    #[test]
    fn the_body_is_part_of_the_signature() {
        let sig = |expr: &str| {
            let mut req = post(
                "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/query",
                &[("query", expr)],
            );
            sign_request(&mut req, creds(), "eu-west-1", "aps", at(1_700_000_000)).unwrap();
            header(&req, "authorization").to_owned()
        };
        assert_eq!(sig("up"), sig("up"));
        assert_ne!(sig("up"), sig("up == 1"));
    }

    #[test]
    fn session_tokens_are_sent() {
        let creds = Credentials::new("AKID", "SECRET", Some("TOKEN".into()), None, "test");
        let mut req = post("http://localhost/x", &[("a", "b")]);
        sign_request(&mut req, creds, "us-east-1", "aps", at(1_700_000_000)).unwrap();
        assert_eq!(header(&req, "x-amz-security-token"), "TOKEN");
        assert!(header(&req, "authorization").contains("x-amz-security-token"));
    }

    /// The signature of the AWS SigV4 test suite's `post-x-www-form-urlencoded` case, so the
    /// canonicalization is checked against AWS's own expected value, not against itself.
    #[test]
    fn matches_the_aws_test_suite_form_post() {
        let mut req = reqwest::Client::new()
            .post("https://example.amazonaws.com/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("Param1=value1")
            .build()
            .unwrap();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        sign_request(&mut req, creds(), "us-east-1", "service", time).unwrap();
        assert_eq!(
            header(&req, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[tokio::test]
    async fn an_unsigned_client_adds_nothing() {
        let client = SignedClient::unsigned_for("http://localhost/").unwrap();
        let mut req = post("http://localhost/x", &[("a", "b")]);
        client.sign(&mut req).await.unwrap();
        assert!(req.headers().get("authorization").is_none());
        assert_eq!(client.region(), None);
    }
}
