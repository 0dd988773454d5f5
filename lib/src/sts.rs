//! Who the caller is (STS GetCallerIdentity) and what an ARN says about where an object lives.
//!
//! teardown treats "not found" as "already gone" only when it asked the right account and
//! region: a NotFound from the wrong account looks exactly like a NotFound for a deleted
//! object (aws-nuke refuses to run without an account check for the same reason). The caller's
//! account comes from STS, the object's from the ARN the ledger recorded.

use crate::aws::sdk_error;
use crate::error::{Error, Result};

/// The identity the configured credentials resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
    /// `arn:aws:iam::ACCOUNT:user/NAME` or `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
}

impl Caller {
    /// The IAM role the caller is running as, if it assumed one.
    pub fn role_name(&self) -> Option<&str> {
        let resource = arn_part(&self.arn, 5)?;
        let rest = resource
            .strip_prefix("assumed-role/")
            .or_else(|| resource.strip_prefix("role/"))?;
        rest.split('/').next()
    }
}

/// STS GetCallerIdentity.
pub async fn caller(config: &aws_config::SdkConfig) -> Result<Caller> {
    let out = crate::aws_client!(aws_sdk_sts, config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| sdk_error(e, "asking STS who the caller is"))?;
    match (out.account(), out.arn()) {
        (Some(account), Some(arn)) => Ok(Caller {
            account: account.to_owned(),
            arn: arn.to_owned(),
        }),
        _ => Err(Error::remote(
            "STS GetCallerIdentity answered without an account",
        )),
    }
}

/// Part `index` of `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` (0-based), when not empty.
fn arn_part(arn: &str, index: usize) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return None;
    }
    Some(parts[index]).filter(|p| !p.is_empty())
}

/// The account of an ARN (`None` for a malformed one).
pub fn arn_account(arn: &str) -> Option<&str> {
    arn_part(arn, 4)
}

/// The region of an ARN (`None` for global services such as IAM, and for a malformed one).
pub fn arn_region(arn: &str) -> Option<&str> {
    arn_part(arn, 3)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arns_give_their_account_and_region() {
        let ws = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1";
        assert_eq!(arn_account(ws), Some("123456789012"));
        assert_eq!(arn_region(ws), Some("eu-west-1"));
        let role = "arn:aws:iam::123456789012:role/ampkit-x";
        assert_eq!(arn_account(role), Some("123456789012"));
        assert_eq!(arn_region(role), None);
        assert_eq!(arn_account("ws-1"), None);
        assert_eq!(arn_account("arn:aws:iam::role/x"), None);
    }

    #[test]
    fn an_assumed_role_names_its_role() {
        let caller = |arn: &str| Caller {
            account: "1".into(),
            arn: arn.into(),
        };
        assert_eq!(
            caller("arn:aws:sts::123456789012:assumed-role/ci-deployer/run-7").role_name(),
            Some("ci-deployer")
        );
        assert_eq!(
            caller("arn:aws:iam::123456789012:user/alice").role_name(),
            None
        );
    }
}
