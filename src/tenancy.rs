//! Which AWS identity an object acts with, and whether it may adopt a job: the cluster
//! administrator's operator configuration (flags, set through the Helm chart), never anything a
//! namespace's own users can write. Pure.

use std::{collections::BTreeMap, fmt, str::FromStr};

use thiserror::Error;

/// How objects in namespaces without a role act.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Unmapped {
    /// With the operator's own identity (a single-tenant install).
    #[default]
    OperatorIdentity,
    /// Not at all: the object stalls with reason `NoAwsIdentity`.
    Refuse,
}

/// Where `spec.adoptBatchEvaluationId` is honoured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Adoption {
    /// In every namespace.
    #[default]
    Allowed,
    /// Only in namespaces mapped to a role, where only that role's account can be reached.
    MappedOnly,
    /// Nowhere.
    Denied,
}

/// `NAMESPACE=ROLE_ARN`, as given to `--namespace-role`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceRole {
    pub namespace: String,
    pub role_arn: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NamespaceRoleError {
    #[error("--namespace-role expects NAMESPACE=ROLE_ARN, got {0:?}")]
    Shape(String),
    #[error(
        "--namespace-role {namespace}: {arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
    )]
    Arn { namespace: String, arn: String },
}

impl FromStr for NamespaceRole {
    type Err = NamespaceRoleError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (namespace, arn) = value
            .split_once('=')
            .filter(|(ns, arn)| !ns.is_empty() && !arn.is_empty())
            .ok_or_else(|| NamespaceRoleError::Shape(value.to_owned()))?;
        if account_of(arn).is_none() {
            return Err(NamespaceRoleError::Arn {
                namespace: namespace.to_owned(),
                arn: arn.to_owned(),
            });
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            role_arn: arn.to_owned(),
        })
    }
}

/// The account of an IAM role ARN (`arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`), if it is one.
#[must_use]
pub fn account_of(role_arn: &str) -> Option<&str> {
    let mut parts = role_arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let valid = partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource
            .strip_prefix("role/")
            .is_some_and(|name| !name.is_empty());
    valid.then_some(account)
}

/// The identity an object acts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The operator's own credentials.
    Operator,
    /// STS AssumeRole from the operator's credentials into this role.
    Role(String),
    /// None: the namespace is not mapped and unmapped namespaces are refused.
    Refused,
}

impl Identity {
    /// The role to assume, if any.
    #[must_use]
    pub fn role_arn(&self) -> Option<&str> {
        match self {
            Self::Role(arn) => Some(arn),
            Self::Operator | Self::Refused => None,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operator => f.write_str("the operator's own identity"),
            Self::Role(arn) => write!(f, "role {arn}"),
            Self::Refused => f.write_str("no identity"),
        }
    }
}

/// The administrator's tenancy settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tenancy {
    roles: BTreeMap<String, String>,
    unmapped: Unmapped,
    adoption: Adoption,
}

impl Tenancy {
    /// # Errors
    /// A namespace given two different roles.
    pub fn new(
        roles: impl IntoIterator<Item = NamespaceRole>,
        unmapped: Unmapped,
        adoption: Adoption,
    ) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for NamespaceRole {
            namespace,
            role_arn,
        } in roles
        {
            if let Some(other) = map.insert(namespace.clone(), role_arn.clone())
                && other != role_arn
            {
                return Err(format!(
                    "--namespace-role {namespace}: mapped to both {other} and {role_arn}"
                ));
            }
        }
        Ok(Self {
            roles: map,
            unmapped,
            adoption,
        })
    }

    /// The identity a new object in `namespace` gets (an object that already called AWS keeps
    /// the one recorded in its status).
    #[must_use]
    pub fn identity_for(&self, namespace: &str) -> Identity {
        match (self.roles.get(namespace), self.unmapped) {
            (Some(role), _) => Identity::Role(role.clone()),
            (None, Unmapped::OperatorIdentity) => Identity::Operator,
            (None, Unmapped::Refuse) => Identity::Refused,
        }
    }

    /// Whether objects in `namespace` may adopt an existing job.
    #[must_use]
    pub fn may_adopt(&self, namespace: &str) -> bool {
        match self.adoption {
            Adoption::Allowed => true,
            Adoption::MappedOnly => self.roles.contains_key(namespace),
            Adoption::Denied => false,
        }
    }
}

/// The STS session name for `namespace`: it tells in CloudTrail which namespace acted. At most 64
/// characters of `[\w+=,.@-]`.
#[must_use]
pub fn session_name(namespace: &str) -> String {
    let mut name = format!("agentcore-operator.{namespace}");
    name.truncate(64);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "arn:aws:iam::111111111111:role/tenant-a";
    const B: &str = "arn:aws:iam::222222222222:role/team/tenant-b";

    fn tenancy(unmapped: Unmapped, adoption: Adoption) -> Tenancy {
        let roles = [format!("tenant-a={A}"), format!("tenant-b={B}")]
            .iter()
            .map(|r| r.parse().expect("valid"))
            .collect::<Vec<NamespaceRole>>();
        Tenancy::new(roles, unmapped, adoption).expect("consistent")
    }

    #[test]
    fn namespaces_map_to_roles_and_the_rest_follows_the_setting() {
        let t = tenancy(Unmapped::OperatorIdentity, Adoption::Allowed);
        assert_eq!(t.identity_for("tenant-a"), Identity::Role(A.into()));
        assert_eq!(t.identity_for("tenant-b"), Identity::Role(B.into()));
        assert_eq!(t.identity_for("shared"), Identity::Operator);
        let strict = tenancy(Unmapped::Refuse, Adoption::Allowed);
        assert_eq!(strict.identity_for("shared"), Identity::Refused);
    }

    #[test]
    fn adoption_follows_the_setting() {
        for (adoption, mapped, unmapped) in [
            (Adoption::Allowed, true, true),
            (Adoption::MappedOnly, true, false),
            (Adoption::Denied, false, false),
        ] {
            let t = tenancy(Unmapped::OperatorIdentity, adoption);
            assert_eq!(
                (t.may_adopt("tenant-a"), t.may_adopt("shared")),
                (mapped, unmapped),
                "{adoption:?}"
            );
        }
    }

    #[test]
    fn bad_mappings_name_the_flag_and_the_value() {
        let err = |v: &str| v.parse::<NamespaceRole>().unwrap_err().to_string();
        assert!(err("tenant-a").contains("NAMESPACE=ROLE_ARN"));
        assert!(err("=arn").contains("NAMESPACE=ROLE_ARN"));
        assert!(err("tenant-a=arn:aws:iam::1111:role/x").contains("tenant-a"));
        assert!(err("tenant-a=arn:aws:s3:::bucket").contains("not an IAM role ARN"));
        assert!(err("tenant-a=arn:aws:iam::111111111111:user/alice").contains("not an IAM role"));
        let twice = Tenancy::new(
            [
                format!("x={A}").parse().expect("valid"),
                format!("x={B}").parse().expect("valid"),
            ],
            Unmapped::OperatorIdentity,
            Adoption::Allowed,
        );
        assert!(twice.is_err());
    }

    #[test]
    fn accounts_and_session_names() {
        assert_eq!(account_of(A), Some("111111111111"));
        assert_eq!(account_of(B), Some("222222222222"));
        assert_eq!(
            account_of("arn:aws-cn:iam::333333333333:role/x"),
            Some("333333333333")
        );
        assert_eq!(account_of("arn:aws:iam::333333333333:role/"), None);
        assert_eq!(session_name("tenant-a"), "agentcore-operator.tenant-a");
        assert_eq!(session_name(&"n".repeat(63)).len(), 64);
    }
}
