//! Accounts and STS. A request acts in the account of its caller, read from the access key id
//! in the SigV4 credential scope: credentials this emulator issued through `AssumeRole` act in
//! the account of the assumed role's ARN, every other key in the default account. `AssumeRole`
//! and `GetCallerIdentity` speak the real Query protocol (form-encoded POST to `/`, XML answer),
//! so the SDKs' assume-role providers work against the emulator by endpoint override alone.
//!
//! Only what tests need is kept: no secret access key and no session token is stored (signatures
//! and tokens are not verified, as for base credentials), and none is ever logged.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use jiff::Timestamp;
use rand::{Rng, distr::Alphanumeric};
use serde::{Deserialize, Serialize};

use crate::{
    operation::Operation,
    server::AppState,
    store::{Clock, Scope},
    wire::{self, ApiError, ErrorCode, format_timestamp},
};

/// The STS API version every Query request names.
const VERSION: &str = "2011-06-15";
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// Header carrying the session token of temporary credentials.
const SECURITY_TOKEN_HEADER: &str = "x-amz-security-token";
/// STS's bounds on `DurationSeconds` (the role's `MaxSessionDuration` is taken as the maximum).
const MIN_DURATION_SECONDS: i64 = 900;
const MAX_DURATION_SECONDS: i64 = 43_200;
/// A role assumed with role credentials (role chaining) lasts at most an hour.
const CHAINED_MAX_SECONDS: i64 = 3_600;
const DEFAULT_DURATION_SECONDS: i64 = 3_600;

/// STS settings that can change at run time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StsSettings {
    /// Caps the lifetime of issued credentials (whatever `DurationSeconds` asks), e.g. `"15s"`
    /// to make clients refresh during a test. `None`: `DurationSeconds` (default one hour).
    #[serde(default, with = "crate::faults::opt_duration")]
    pub max_session_lifetime: Option<Duration>,
    /// Role ARNs that may be assumed; any other answers `AccessDenied`. `None`: every role.
    #[serde(default)]
    pub assumable_roles: Option<BTreeSet<String>>,
}

/// One set of credentials issued by `AssumeRole`, as `/_emulator/sts` reports it (no secret,
/// no token, no access key id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The account of the role: where calls with these credentials act.
    pub account: String,
    pub role_arn: String,
    pub role_session_name: String,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`, as in `AssumedRoleUser.Arn`.
    pub assumed_role_arn: String,
    /// The ARN of the identity that called `AssumeRole`.
    pub caller_arn: String,
    pub issued_at: String,
    pub expiration: String,
    /// Batch-evaluation calls made with these credentials, by operation (expired ones too).
    pub calls: BTreeMap<Operation, u64>,
    /// Calls refused with `ExpiredTokenException`.
    pub expired_calls: u64,
}

/// Who a request comes from and where it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub scope: Scope,
    /// The assumed role of emulator-issued credentials; `None` for base credentials.
    pub principal: Option<Principal>,
}

/// An assumed-role session, as `AssumedRoleUser` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// `AROA...:SESSION`.
    pub id: String,
}

/// Why the credentials of a request are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Emulator-issued credentials past their expiration.
    Expired,
    /// A session token with an access key id this emulator never issued.
    Unrecognized,
}

impl Refusal {
    /// The restJson1 error of the batch-evaluation API.
    pub(crate) fn api_error(self) -> ApiError {
        match self {
            Refusal::Expired => ApiError::new(
                ErrorCode::ExpiredTokenException,
                "The security token included in the request is expired",
            ),
            Refusal::Unrecognized => ApiError::new(
                ErrorCode::UnrecognizedClientException,
                "The security token included in the request is invalid",
            ),
        }
    }

    /// The Query error of STS.
    fn query_error(self) -> QueryError {
        match self {
            Refusal::Expired => QueryError::sender(
                StatusCode::BAD_REQUEST,
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ),
            Refusal::Unrecognized => QueryError::sender(
                StatusCode::FORBIDDEN,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ),
        }
    }
}

struct Session {
    account: String,
    role_arn: String,
    role_session_name: String,
    assumed_role_arn: String,
    assumed_role_id: String,
    caller_arn: String,
    issued_at: Timestamp,
    expiration: Timestamp,
    calls: BTreeMap<Operation, u64>,
    expired_calls: u64,
}

struct Registry {
    /// Access key id → session. Kept across reset: clients keep their cached credentials.
    sessions: HashMap<String, Session>,
    /// Access key ids in issue order.
    order: Vec<String>,
    /// Role ARN → the role's unique id (`AROA...`), stable like a real role's.
    role_ids: HashMap<String, String>,
    settings: StsSettings,
}

/// The identities behind requests and the credentials issued by `AssumeRole`.
pub(crate) struct Sts {
    clock: Clock,
    default_account: String,
    initial: StsSettings,
    registry: Mutex<Registry>,
}

/// An STS error answered as the Query protocol's `ErrorResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
}

impl QueryError {
    fn sender(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        QueryError {
            status,
            kind: "Sender",
            code,
            message: message.into(),
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        QueryError::sender(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    /// `1 validation error detected: Value V at 'member' failed to satisfy constraint: C`.
    fn constraint(value: Option<&str>, member: &str, constraint: &str) -> Self {
        let value = value.map_or_else(|| "null".to_owned(), |v| format!("'{v}'"));
        QueryError::validation(format!(
            "1 validation error detected: Value {value} at '{member}' failed to satisfy constraint: {constraint}"
        ))
    }

    fn into_response(self, request_id: &str) -> Response {
        let body = format!(
            "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
            self.kind,
            self.code,
            xml_escape(&self.message)
        );
        xml_response(self.status, body)
    }
}

/// What a successful `AssumeRole` hands out. The secret and the token leave the emulator in
/// the response and are not kept.
struct Issued {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: Timestamp,
    assumed_role_arn: String,
    assumed_role_id: String,
}

impl Sts {
    pub(crate) fn new(clock: Clock, default_account: String, settings: StsSettings) -> Self {
        Sts {
            clock,
            default_account,
            initial: settings.clone(),
            registry: Mutex::new(Registry {
                sessions: HashMap::new(),
                order: Vec::new(),
                role_ids: HashMap::new(),
                settings,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Every critical section is a few map operations that cannot panic half-way.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Timestamp {
        self.clock.timestamp(self.clock.now())
    }

    /// The caller of a request signed (or not) as `headers` say, acting in `region`. A call of
    /// `op` with emulator-issued credentials is counted against them, refused or not.
    pub(crate) fn caller(
        &self,
        headers: &HeaderMap,
        region: String,
        op: Option<Operation>,
    ) -> Result<Caller, Refusal> {
        let base = |account: &str| Caller {
            scope: Scope {
                account: account.to_owned(),
                region: region.clone(),
            },
            principal: None,
        };
        let Some(key) = wire::access_key_id(headers) else {
            return Ok(base(&self.default_account));
        };
        let now = self.now();
        let mut registry = self.lock();
        let Some(session) = registry.sessions.get_mut(key) else {
            return if headers.contains_key(SECURITY_TOKEN_HEADER) {
                Err(Refusal::Unrecognized)
            } else {
                Ok(base(&self.default_account))
            };
        };
        if let Some(op) = op {
            *session.calls.entry(op).or_default() += 1;
        }
        if now >= session.expiration {
            session.expired_calls += 1;
            return Err(Refusal::Expired);
        }
        Ok(Caller {
            principal: Some(Principal {
                arn: session.assumed_role_arn.clone(),
                id: session.assumed_role_id.clone(),
            }),
            ..base(&session.account)
        })
    }

    /// The ARN of `caller` as STS reports it.
    fn caller_arn(&self, caller: &Caller) -> String {
        caller.principal.as_ref().map_or_else(
            || {
                format!(
                    "arn:{}:iam::{}:root",
                    wire::partition(&caller.scope.region),
                    caller.scope.account
                )
            },
            |p| p.arn.clone(),
        )
    }

    fn assume_role(&self, caller: &Caller, form: &Form) -> Result<Issued, QueryError> {
        let role_arn = form.get("RoleArn");
        let session_name = form.get("RoleSessionName");
        let role_arn = role_arn
            .ok_or_else(|| QueryError::constraint(None, "roleArn", "Member must not be null"))?;
        if !(20..=2048).contains(&role_arn.len()) {
            return Err(QueryError::constraint(
                Some(role_arn),
                "roleArn",
                if role_arn.len() < 20 {
                    "Member must have length greater than or equal to 20"
                } else {
                    "Member must have length less than or equal to 2048"
                },
            ));
        }
        let role = RoleArn::parse(role_arn)
            .ok_or_else(|| QueryError::validation(format!("{role_arn} is invalid")))?;
        let session_name = session_name.ok_or_else(|| {
            QueryError::constraint(None, "roleSessionName", "Member must not be null")
        })?;
        let name_ok = session_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
        if !(2..=64).contains(&session_name.len()) || !name_ok {
            let constraint = if name_ok {
                "Member must have length between 2 and 64"
            } else {
                "Member must satisfy regular expression pattern: [\\w+=,.@-]*"
            };
            return Err(QueryError::constraint(
                Some(session_name),
                "roleSessionName",
                constraint,
            ));
        }
        let duration = match form.get("DurationSeconds") {
            None => DEFAULT_DURATION_SECONDS,
            Some(text) => text.parse::<i64>().map_err(|_| {
                QueryError::constraint(Some(text), "durationSeconds", "Member must be a number")
            })?,
        };
        if duration < MIN_DURATION_SECONDS {
            return Err(QueryError::constraint(
                Some(&duration.to_string()),
                "durationSeconds",
                "Member must have value greater than or equal to 900",
            ));
        }
        if duration > MAX_DURATION_SECONDS {
            return Err(QueryError::validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        if caller.principal.is_some() && duration > CHAINED_MAX_SECONDS {
            return Err(QueryError::validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            ));
        }

        let caller_arn = self.caller_arn(caller);
        let now = self.now();
        let mut registry = self.lock();
        if let Some(allowed) = &registry.settings.assumable_roles
            && !allowed.contains(role_arn)
        {
            return Err(QueryError::sender(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                format!(
                    "User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
                ),
            ));
        }
        let mut lifetime = Duration::from_secs(duration.unsigned_abs());
        if let Some(cap) = registry.settings.max_session_lifetime {
            lifetime = lifetime.min(cap);
        }
        // STS reports whole seconds; the credentials expire at the instant reported.
        let expiration = now
            .saturating_add(lifetime)
            .ok()
            .and_then(|t| Timestamp::from_second(t.as_second()).ok())
            .unwrap_or(Timestamp::MAX);
        let role_id = registry
            .role_ids
            .entry(role_arn.to_owned())
            .or_insert_with(|| format!("AROA{}", random_upper(17)))
            .clone();
        let access_key_id = loop {
            let candidate = format!("ASIA{}", random_upper(16));
            if !registry.sessions.contains_key(&candidate) {
                break candidate;
            }
        };
        let assumed_role_arn = format!(
            "arn:{}:sts::{}:assumed-role/{}/{session_name}",
            role.partition, role.account, role.name
        );
        let assumed_role_id = format!("{role_id}:{session_name}");
        registry.sessions.insert(
            access_key_id.clone(),
            Session {
                account: role.account.to_owned(),
                role_arn: role_arn.to_owned(),
                role_session_name: session_name.to_owned(),
                assumed_role_arn: assumed_role_arn.clone(),
                assumed_role_id: assumed_role_id.clone(),
                caller_arn,
                issued_at: now,
                expiration,
                calls: BTreeMap::new(),
                expired_calls: 0,
            },
        );
        registry.order.push(access_key_id.clone());
        Ok(Issued {
            access_key_id,
            secret_access_key: random_text(40),
            session_token: random_text(356),
            expiration,
            assumed_role_arn,
            assumed_role_id,
        })
    }

    /// Every credential issued, oldest first.
    pub(crate) fn sessions(&self) -> Vec<SessionInfo> {
        let registry = self.lock();
        registry
            .order
            .iter()
            .filter_map(|key| registry.sessions.get(key))
            .map(|s| SessionInfo {
                account: s.account.clone(),
                role_arn: s.role_arn.clone(),
                role_session_name: s.role_session_name.clone(),
                assumed_role_arn: s.assumed_role_arn.clone(),
                caller_arn: s.caller_arn.clone(),
                issued_at: format_timestamp(s.issued_at),
                expiration: format_timestamp(s.expiration),
                calls: s.calls.clone(),
                expired_calls: s.expired_calls,
            })
            .collect()
    }

    pub(crate) fn settings(&self) -> StsSettings {
        self.lock().settings.clone()
    }

    pub(crate) fn set_settings(&self, settings: StsSettings) {
        self.lock().settings = settings;
    }

    /// Restores the start-up settings and zeroes the call counters. Issued credentials stay
    /// valid until they expire, as they would at AWS.
    pub(crate) fn reset(&self) {
        let mut registry = self.lock();
        registry.settings = self.initial.clone();
        for session in registry.sessions.values_mut() {
            session.calls.clear();
            session.expired_calls = 0;
        }
    }
}

/// The parts of `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME` STS needs.
struct RoleArn<'a> {
    partition: &'a str,
    account: &'a str,
    name: &'a str,
}

impl<'a> RoleArn<'a> {
    fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (prefix, partition, service, region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let path = resource.strip_prefix("role/")?;
        let name = path.rsplit('/').next()?;
        let name_ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
        let valid = prefix == "arn"
            && matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
            && service == "iam"
            && region.is_empty()
            && account_ok
            && name_ok;
        valid.then_some(RoleArn {
            partition,
            account,
            name,
        })
    }
}

/// A Query request's parameters.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `POST /`: an STS Query request (`Action=...` in a form body), else an unknown operation.
pub(crate) async fn query(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) {
        Ok(pairs) => Form(pairs),
        Err(_) => return crate::api::unknown_operation().await,
    };
    let Some(action) = form.get("Action").map(str::to_owned) else {
        return crate::api::unknown_operation().await;
    };
    let request_id = wire::new_request_id();
    let region = wire::region_from_headers(&headers)
        .unwrap_or(&app.default_region)
        .to_owned();
    let result = match app.sts.caller(&headers, region, None) {
        Err(refusal) => Err(refusal.query_error()),
        Ok(caller) => answer(&app.sts, &caller, &action, &form),
    };
    let outcome = match &result {
        Ok(_) => "200",
        Err(e) => e.code,
    };
    tracing::debug!(action, request_id, outcome, "sts request");
    let mut response = match result {
        Ok(body) => xml_response(StatusCode::OK, wrap(&action, &body, &request_id)),
        Err(error) => error.into_response(&request_id),
    };
    wire::ensure_request_id(&mut response, &request_id);
    response
}

/// The `...Result` element of a successful `action`.
fn answer(sts: &Sts, caller: &Caller, action: &str, form: &Form) -> Result<String, QueryError> {
    if form.get("Version").is_some_and(|v| v != VERSION) {
        return Err(QueryError::sender(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!(
                "Could not find operation {action} for version {}",
                form.get("Version").unwrap_or_default()
            ),
        ));
    }
    match action {
        "AssumeRole" => {
            let issued = sts.assume_role(caller, form)?;
            Ok(format!(
                "    <AssumedRoleUser>\n      <AssumedRoleId>{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n",
                xml_escape(&issued.assumed_role_id),
                xml_escape(&issued.assumed_role_arn),
                issued.access_key_id,
                issued.secret_access_key,
                issued.session_token,
                format_timestamp(issued.expiration),
            ))
        }
        "GetCallerIdentity" => {
            let arn = sts.caller_arn(caller);
            let user_id = caller
                .principal
                .as_ref()
                .map_or_else(|| caller.scope.account.clone(), |p| p.id.clone());
            Ok(format!(
                "    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n",
                xml_escape(&arn),
                xml_escape(&user_id),
                caller.scope.account
            ))
        }
        _ => Err(QueryError::sender(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("Could not find operation {action} for version {VERSION}"),
        )),
    }
}

/// `<{Action}Response><{Action}Result>...</{Action}Result><ResponseMetadata>...`
fn wrap(action: &str, result: &str, request_id: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{XMLNS}\">\n  <{action}Result>\n{result}  </{action}Result>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n"
    )
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Upper-case letters and digits, as in AWS key and role ids.
fn random_upper(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(|b| char::from(b).to_ascii_uppercase())
        .collect()
}

fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const ROLE: &str = "arn:aws:iam::111111111111:role/team/tenant-a";

    fn sts(settings: StsSettings) -> Sts {
        Sts::new(Clock::start(), "123456789012".into(), settings)
    }

    fn form(pairs: &[(&str, &str)]) -> Form {
        Form(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn signed(key: &str, token: bool) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={key}/20260102/us-west-2/bedrock-agentcore/aws4_request, SignedHeaders=host, Signature=abc"
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&auth).unwrap());
        if token {
            headers.insert(SECURITY_TOKEN_HEADER, HeaderValue::from_static("tok"));
        }
        headers
    }

    fn base(sts: &Sts) -> Caller {
        sts.caller(&HeaderMap::new(), "us-west-2".into(), None)
            .unwrap()
    }

    #[test]
    fn role_arns_are_parsed_strictly() {
        let role = RoleArn::parse(ROLE).unwrap();
        assert_eq!(
            (role.partition, role.account, role.name),
            ("aws", "111111111111", "tenant-a")
        );
        for bad in [
            "arn:aws:iam::11111111111:role/x",
            "arn:aws:iam:us-east-1:111111111111:role/x",
            "arn:aws:s3::111111111111:role/x",
            "arn:aws:iam::111111111111:user/x",
            "arn:aws:iam::111111111111:role/",
            "arn:aws:iam::111111111111:role/a b",
        ] {
            assert!(RoleArn::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn assumed_credentials_act_in_the_role_account_until_they_expire() {
        let sts = sts(StsSettings::default());
        let caller = base(&sts);
        assert_eq!(caller.scope.account, "123456789012");
        let issued = sts
            .assume_role(
                &caller,
                &form(&[("RoleArn", ROLE), ("RoleSessionName", "ns-a")]),
            )
            .unwrap();
        assert!(issued.access_key_id.starts_with("ASIA") && issued.access_key_id.len() == 20);
        assert_eq!(
            issued.assumed_role_arn,
            "arn:aws:sts::111111111111:assumed-role/tenant-a/ns-a"
        );
        assert!(issued.assumed_role_id.ends_with(":ns-a"));
        let lifetime = issued.expiration.as_second() - sts.now().as_second();
        assert!((3599..=3600).contains(&lifetime), "{lifetime}");

        let op = Some(Operation::GetBatchEvaluation);
        let who = sts
            .caller(&signed(&issued.access_key_id, true), "eu-west-1".into(), op)
            .unwrap();
        assert_eq!(who.scope.account, "111111111111");
        assert_eq!(who.scope.region, "eu-west-1");
        assert_eq!(who.principal.unwrap().arn, issued.assumed_role_arn);
        // Unknown keys: base credentials without a token, refused with one.
        let plain = sts
            .caller(&signed("AKIDPLAIN", false), "us-west-2".into(), op)
            .unwrap();
        assert_eq!(
            (plain.scope.account.as_str(), plain.principal),
            ("123456789012", None)
        );
        assert_eq!(
            sts.caller(&signed("ASIAUNKNOWN", true), "us-west-2".into(), op),
            Err(Refusal::Unrecognized)
        );

        // Expired: force the expiration into the past.
        {
            let mut registry = sts.lock();
            let session = registry.sessions.get_mut(&issued.access_key_id).unwrap();
            session.expiration = Timestamp::UNIX_EPOCH;
        }
        assert_eq!(
            sts.caller(&signed(&issued.access_key_id, true), "us-west-2".into(), op),
            Err(Refusal::Expired)
        );
        let error = Refusal::Expired.api_error();
        assert_eq!(error.code.as_str(), "ExpiredTokenException");
        assert_eq!(error.code.http_status(), StatusCode::FORBIDDEN);
        let info = &sts.sessions()[0];
        assert_eq!(info.calls.get(&Operation::GetBatchEvaluation), Some(&2));
        assert_eq!(info.expired_calls, 1);
        assert_eq!(info.caller_arn, "arn:aws:iam::123456789012:root");
    }

    #[test]
    fn the_lifetime_cap_shortens_credentials() {
        let sts = sts(StsSettings {
            max_session_lifetime: Some(Duration::from_secs(15)),
            assumable_roles: None,
        });
        let issued = sts
            .assume_role(
                &base(&sts),
                &form(&[
                    ("RoleArn", ROLE),
                    ("RoleSessionName", "ns-a"),
                    ("DurationSeconds", "900"),
                ]),
            )
            .unwrap();
        let lifetime = issued.expiration.as_second() - sts.now().as_second();
        assert!((14..=15).contains(&lifetime), "{lifetime}");
    }

    #[test]
    fn bad_input_gets_validation_error_and_unlisted_roles_access_denied() {
        let sts = sts(StsSettings {
            max_session_lifetime: None,
            assumable_roles: Some([ROLE.to_owned()].into()),
        });
        let caller = base(&sts);
        // (parameters, error code, part of the message)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: [Case; 7] = [
            (
                &[("RoleSessionName", "s1")],
                "ValidationError",
                "Value null at 'roleArn'",
            ),
            (
                &[("RoleArn", "arn:aws:iam::1:r/x"), ("RoleSessionName", "s1")],
                "ValidationError",
                "length greater than or equal to 20",
            ),
            (
                &[
                    ("RoleArn", "arn:aws:iam::111111111111:user/someone"),
                    ("RoleSessionName", "s1"),
                ],
                "ValidationError",
                "is invalid",
            ),
            (
                &[("RoleArn", ROLE), ("RoleSessionName", "has space")],
                "ValidationError",
                "regular expression",
            ),
            (
                &[
                    ("RoleArn", ROLE),
                    ("RoleSessionName", "s1"),
                    ("DurationSeconds", "60"),
                ],
                "ValidationError",
                "greater than or equal to 900",
            ),
            (
                &[
                    ("RoleArn", ROLE),
                    ("RoleSessionName", "s1"),
                    ("DurationSeconds", "50000"),
                ],
                "ValidationError",
                "MaxSessionDuration",
            ),
            (
                &[
                    ("RoleArn", "arn:aws:iam::222222222222:role/other"),
                    ("RoleSessionName", "s1"),
                ],
                "AccessDenied",
                "is not authorized to perform: sts:AssumeRole",
            ),
        ];
        for (pairs, code, message) in cases {
            let Err(error) = sts.assume_role(&caller, &form(pairs)) else {
                panic!("{pairs:?} was accepted");
            };
            assert_eq!(error.code, code, "{pairs:?}");
            assert!(
                error.message.contains(message),
                "{pairs:?}: {}",
                error.message
            );
            let expected = if code == "AccessDenied" { 403 } else { 400 };
            assert_eq!(error.status.as_u16(), expected);
        }
        assert!(sts.sessions().is_empty());
    }

    #[test]
    fn errors_and_results_are_query_xml() {
        let error = QueryError::validation("a < b").into_response("req-1");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let body = wrap("AssumeRole", "    <X>1</X>\n", "req-2");
        assert!(body.starts_with(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        ));
        assert!(body.contains("<AssumeRoleResult>\n    <X>1</X>\n  </AssumeRoleResult>"));
        assert!(body.contains("<ResponseMetadata>\n    <RequestId>req-2</RequestId>"));
        assert_eq!(xml_escape("a<b&'c'"), "a&lt;b&amp;&apos;c&apos;");
    }
}
