//! SigV4 verification of requests as AMP verifies them.
//!
//! The point of amp-local is that a signing bug shows up here rather than in a user's AWS
//! account, so every request is checked the way AWS checks it: the canonical request is
//! rebuilt from what was received (method, raw path, query, exactly the headers the client
//! says it signed, the payload hash) and signed again with the secret we know for the access
//! key. The arithmetic is `aws-sigv4`'s; this module only decides what goes into it and turns
//! each way of failing into AMP's 403 answer and message.
//!
//! Signers differ in small ways that AWS tolerates, and so do we: the SDKs (Rust, Go) encode
//! the path twice, some tools (curl) once, so a path with `%` in it is tried both ways; a
//! signed `x-amz-content-sha256` must equal the hash of the body received; a signed
//! `x-amz-security-token` is accepted (sessions are not checked against STS here).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

/// The signing name of AMP (its service id in the SDK is `amp`, but it signs as `aps`).
pub const SIGNING_NAME: &str = "aps";

/// How far the client's clock may be from ours, as AWS allows.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Why a request was refused; each maps to AMP's error type and message (all 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No Authorization header at all.
    Missing,
    /// An Authorization header that is not a complete SigV4 one.
    Incomplete(String),
    /// The access key is not one we know.
    UnknownAccessKey,
    /// Scoped to another service than `aps`.
    WrongService(String),
    /// Scoped to another region than ours.
    WrongRegion(String),
    /// X-Amz-Date too far from now.
    Expired(String),
    /// The signature does not match.
    Mismatch,
}

impl Rejection {
    /// The value of `x-amzn-errortype`, as AWS sends it for this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Rejection::Missing => "MissingAuthenticationTokenException",
            Rejection::Incomplete(_) => "IncompleteSignatureException",
            Rejection::UnknownAccessKey => "UnrecognizedClientException",
            Rejection::WrongService(_)
            | Rejection::WrongRegion(_)
            | Rejection::Expired(_)
            | Rejection::Mismatch => "InvalidSignatureException",
        }
    }

    /// AWS's message for this failure.
    pub fn message(&self) -> String {
        match self {
            Rejection::Missing => "Missing Authentication Token".to_owned(),
            Rejection::Incomplete(why) => why.clone(),
            Rejection::UnknownAccessKey => {
                "The security token included in the request is invalid.".to_owned()
            }
            Rejection::WrongService(got) => format!(
                "Credential should be scoped to correct service: '{SIGNING_NAME}'. (got '{got}')"
            ),
            Rejection::WrongRegion(got) => {
                format!("Credential should be scoped to a valid region, not '{got}'. ")
            }
            Rejection::Expired(why) => why.clone(),
            Rejection::Mismatch => "The request signature we calculated does not match the \
                signature you provided. Check your AWS Secret Access Key and signing method. \
                Consult the service documentation for details."
                .to_owned(),
        }
    }
}

/// A request as it arrived, before anything was decoded.
pub struct Received<'a> {
    pub method: &'a str,
    /// The raw path and query, exactly as on the request line.
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Checks signatures against a fixed set of access keys, for one region.
#[derive(Clone)]
pub struct Verifier {
    secrets: BTreeMap<String, String>,
    region: String,
}

/// The parsed `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug, PartialEq, Eq)]
struct AuthHeader<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<AuthHeader<'_>, Rejection> {
    let incomplete = |what: &str| {
        Rejection::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={value}"
        ))
    };
    let (algorithm, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if algorithm != ALGORITHM {
        return Err(Rejection::Incomplete(format!(
            "Unsupported signing algorithm '{algorithm}': only {ALGORITHM} is accepted"
        )));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((key, val)) = part.trim().split_once('=') else {
            continue;
        };
        match key.trim() {
            "Credential" => credential = Some(val.trim()),
            "SignedHeaders" => signed = Some(val.trim()),
            "Signature" => signature = Some(val.trim()),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = scope[..] else {
        return Err(Rejection::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if terminator != "aws4_request" {
        return Err(Rejection::Incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    Ok(AuthHeader {
        access_key,
        date,
        region,
        service,
        signed_headers: signed.split(';').map(str::trim).collect(),
        signature,
    })
}

fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, format)
        .ok()
        .map(|t| t.assume_utc())
}

fn format_amz_date(t: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(format).unwrap_or_default()
}

fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal without an early exit, so the comparison time says nothing about the signature.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Verifier {
    pub fn new(secrets: BTreeMap<String, String>, region: impl Into<String>) -> Self {
        Verifier {
            secrets,
            region: region.into(),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Verify `req` at time `now` with the fixed keys; `Ok` gives the access key that signed it.
    pub fn verify(&self, req: &Received<'_>, now: SystemTime) -> Result<String, Rejection> {
        self.verify_with(req, now, |key| self.secrets.get(key).cloned())
    }

    /// The access key a request names in its Authorization header, if it has a readable one
    /// (what is wrong with it otherwise is [`Verifier::verify_with`]'s to say).
    pub fn access_key(headers: &HeaderMap) -> Option<String> {
        let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        parse_authorization(auth)
            .ok()
            .map(|a| a.access_key.to_owned())
    }

    /// Verify `req` at time `now`, with the secret `secret_for` gives for its access key (none:
    /// the key is unknown); `Ok` gives the access key that signed it.
    pub fn verify_with(
        &self,
        req: &Received<'_>,
        now: SystemTime,
        secret_for: impl FnOnce(&str) -> Option<String>,
    ) -> Result<String, Rejection> {
        let Some(auth) = req.headers.get(http::header::AUTHORIZATION) else {
            return Err(Rejection::Missing);
        };
        let auth = auth
            .to_str()
            .map_err(|_| Rejection::Incomplete("Authorization header is not ASCII".to_owned()))?;
        let auth = parse_authorization(auth)?;

        if auth.service != SIGNING_NAME {
            return Err(Rejection::WrongService(auth.service.to_owned()));
        }
        if auth.region != self.region {
            return Err(Rejection::WrongRegion(auth.region.to_owned()));
        }
        let secret = secret_for(auth.access_key).ok_or(Rejection::UnknownAccessKey)?;

        if !auth.signed_headers.contains(&"x-amz-date") {
            return Err(Rejection::Incomplete(
                "Authorization header requires existence of a signed 'X-Amz-Date' header."
                    .to_owned(),
            ));
        }
        if !auth.signed_headers.contains(&"host") {
            return Err(Rejection::Incomplete(
                "'Host' must be a signed header.".to_owned(),
            ));
        }
        let date_header = req
            .headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let signed_at = parse_amz_date(date_header).ok_or_else(|| {
            Rejection::Incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{date_header}'. \
                 See http://en.wikipedia.org/wiki/ISO_8601"
            ))
        })?;
        if !date_header.starts_with(auth.date) || auth.date.len() != 8 {
            return Err(Rejection::Incomplete(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of \
                 date from HTTP: '{}' != '{}', from '{date_header}'.",
                auth.date,
                &date_header[..date_header.len().min(8)]
            )));
        }
        let now_odt = OffsetDateTime::from(now);
        let skew = time::Duration::try_from(MAX_SKEW).unwrap_or(time::Duration::minutes(5));
        if signed_at < now_odt - skew {
            return Err(Rejection::Expired(format!(
                "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                format_amz_date(signed_at),
                format_amz_date(now_odt - skew),
                format_amz_date(now_odt)
            )));
        }
        if signed_at > now_odt + skew {
            return Err(Rejection::Expired(format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                format_amz_date(signed_at),
                format_amz_date(now_odt + skew),
                format_amz_date(now_odt)
            )));
        }

        // Exactly the headers the client says it signed; x-amz-date is added by aws-sigv4
        // itself from the signing time.
        let mut headers: Vec<(&str, &str)> = Vec::new();
        for name in &auth.signed_headers {
            if *name == "x-amz-date" {
                continue;
            }
            let mut found = false;
            for value in req.headers.get_all(*name) {
                let value = value.to_str().map_err(|_| Rejection::Mismatch)?;
                headers.push((name, value));
                found = true;
            }
            if !found {
                return Err(Rejection::Mismatch);
            }
        }
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .ok_or(Rejection::Mismatch)?;

        let body_hash = sha256_hex(req.body);
        if let Some(claimed) = req.headers.get("x-amz-content-sha256")
            && auth.signed_headers.contains(&"x-amz-content-sha256")
            && claimed.as_bytes() != body_hash.as_bytes()
        {
            // The signature covers the claimed hash, but the body is not the one signed.
            return Err(Rejection::Mismatch);
        }

        let identity: Identity =
            Credentials::new(auth.access_key, secret.as_str(), None, None, "amp-local").into();
        let uri = format!("http://{host}{}", req.path_and_query);
        let modes: &[PercentEncodingMode] = if req.path_and_query.contains('%') {
            &[PercentEncodingMode::Double, PercentEncodingMode::Single]
        } else {
            &[PercentEncodingMode::Double]
        };
        for mode in modes {
            let mut settings = SigningSettings::default();
            settings.percent_encoding_mode = *mode;
            // Sign exactly what the client listed, including e.g. user-agent if it did.
            settings.excluded_headers = Some(Vec::new());
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region(&self.region)
                .name(SIGNING_NAME)
                .time(SystemTime::from(signed_at))
                .settings(settings)
                .build()
                .map_err(|_| Rejection::Mismatch)?
                .into();
            let signable = SignableRequest::new(
                req.method,
                uri.as_str(),
                headers.iter().copied(),
                SignableBody::Precomputed(body_hash.clone()),
            )
            .map_err(|_| Rejection::Mismatch)?;
            let output = sign(signable, &params).map_err(|_| Rejection::Mismatch)?;
            if constant_time_eq(output.signature(), auth.signature) {
                return Ok(auth.access_key.to_owned());
            }
        }
        Err(Rejection::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::SignableBody;

    fn verifier() -> Verifier {
        Verifier::new(
            BTreeMap::from([("AKIDTEST".to_owned(), "secret".to_owned())]),
            "eu-west-1",
        )
    }

    /// Sign a request the way the SDK does, with aws-sigv4's signer (independent of the
    /// verification path above only in which settings it uses, which is the point).
    fn signed(
        method: &str,
        path: &str,
        body: &[u8],
        secret: &str,
        service: &str,
        region: &str,
        at: SystemTime,
    ) -> HeaderMap {
        let identity: Identity = Credentials::new("AKIDTEST", secret, None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let uri = format!("http://127.0.0.1:9000{path}");
        let mut request = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("host", "127.0.0.1:9000")
            .header("content-type", "application/json")
            .body(())
            .expect("request");
        let signable = SignableRequest::new(
            method,
            uri.as_str(),
            request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().expect("ascii"))),
            SignableBody::Bytes(body),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        instructions.apply_to_request_http1x(&mut request);
        request.headers().clone()
    }

    fn check(
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<String, Rejection> {
        verifier().verify(
            &Received {
                method,
                path_and_query: path,
                headers,
                body,
            },
            SystemTime::now(),
        )
    }

    #[test]
    fn accepts_a_good_signature_and_refuses_each_kind_of_bad_one() {
        let now = SystemTime::now();
        let body = br#"{"alias":"x"}"#;
        let h = signed(
            "POST",
            "/workspaces",
            body,
            "secret",
            "aps",
            "eu-west-1",
            now,
        );
        assert_eq!(
            check("POST", "/workspaces", &h, body),
            Ok("AKIDTEST".to_owned())
        );
        assert_eq!(
            check("POST", "/workspaces", &h, b"{}"),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            check("POST", "/workspaces?x=1", &h, body),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            check("PUT", "/workspaces", &h, body),
            Err(Rejection::Mismatch)
        );

        let h = signed(
            "POST",
            "/workspaces",
            body,
            "wrong",
            "aps",
            "eu-west-1",
            now,
        );
        assert_eq!(
            check("POST", "/workspaces", &h, body),
            Err(Rejection::Mismatch)
        );

        let h = signed(
            "POST",
            "/workspaces",
            body,
            "secret",
            "sns",
            "eu-west-1",
            now,
        );
        let err = check("POST", "/workspaces", &h, body).expect_err("wrong service");
        assert!(err.message().contains("scoped to correct service: 'aps'"));

        let h = signed(
            "POST",
            "/workspaces",
            body,
            "secret",
            "aps",
            "us-east-1",
            now,
        );
        assert_eq!(
            check("POST", "/workspaces", &h, body),
            Err(Rejection::WrongRegion("us-east-1".to_owned()))
        );

        let old = now - Duration::from_secs(3600);
        let h = signed(
            "POST",
            "/workspaces",
            body,
            "secret",
            "aps",
            "eu-west-1",
            old,
        );
        let err = check("POST", "/workspaces", &h, body).expect_err("stale");
        assert!(
            err.message().starts_with("Signature expired"),
            "{}",
            err.message()
        );

        assert_eq!(
            check("POST", "/workspaces", &HeaderMap::new(), body),
            Err(Rejection::Missing)
        );
    }

    #[test]
    fn a_signed_session_token_is_accepted() {
        let identity: Identity =
            Credentials::new("AKIDTEST", "secret", Some("token".into()), None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name("aps")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let uri = "http://127.0.0.1:9000/workspaces";
        let mut request = http::Request::builder()
            .uri(uri)
            .header("host", "127.0.0.1:9000")
            .body(())
            .expect("request");
        let signable = SignableRequest::new(
            "GET",
            uri,
            std::iter::once(("host", "127.0.0.1:9000")),
            SignableBody::Bytes(b""),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        instructions.apply_to_request_http1x(&mut request);
        assert!(request.headers().contains_key("x-amz-security-token"));
        assert_eq!(
            check("GET", "/workspaces", request.headers(), b""),
            Ok("AKIDTEST".to_owned())
        );
        // The token is covered by the signature: changing it breaks it.
        let mut headers = request.headers().clone();
        headers.insert(
            "x-amz-security-token",
            http::HeaderValue::from_static("other"),
        );
        assert_eq!(
            check("GET", "/workspaces", &headers, b""),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn paths_with_escapes_verify_in_both_encodings() {
        let now = SystemTime::now();
        let path = "/tags/arn%3Aaws%3Aaps%3Aeu-west-1%3A123%3Aworkspace%2Fws-1";
        let h = signed("GET", path, b"", "secret", "aps", "eu-west-1", now);
        assert_eq!(check("GET", path, &h, b""), Ok("AKIDTEST".to_owned()));
    }

    #[test]
    fn parses_the_authorization_header() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AK/20240101/eu-west-1/aps/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .expect("parses");
        assert_eq!(a.access_key, "AK");
        assert_eq!(a.signed_headers, vec!["host", "x-amz-date"]);
        assert_eq!(a.signature, "abc");
        assert!(matches!(
            parse_authorization("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=abc"),
            Err(Rejection::Incomplete(_))
        ));
    }
}
