//! restJson1 wire details shared by every operation: the error envelope, request ids,
//! timestamps and the SigV4 region.

use std::fmt;

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use jiff::{Timestamp, Unit};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Header carrying the request id on every response.
pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-amzn-requestid");
/// Header carrying the error code on error responses (restJson1).
pub(crate) const ERROR_TYPE_HEADER: HeaderName = HeaderName::from_static("x-amzn-errortype");

/// The error codes the service model declares for the batch-evaluation operations, and the
/// two authentication errors every AWS service answers outside its model (so clients get them
/// as unmodeled errors with these codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    ValidationException,
    UnauthorizedException,
    ServiceQuotaExceededException,
    AccessDeniedException,
    ResourceNotFoundException,
    ConflictException,
    ThrottlingException,
    InternalServerException,
    /// Temporary credentials past their expiration (403).
    ExpiredTokenException,
    /// A session token the service does not know (403).
    UnrecognizedClientException,
}

impl ErrorCode {
    /// Every error code, for parsers and documentation.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::ValidationException,
        ErrorCode::UnauthorizedException,
        ErrorCode::ServiceQuotaExceededException,
        ErrorCode::AccessDeniedException,
        ErrorCode::ResourceNotFoundException,
        ErrorCode::ConflictException,
        ErrorCode::ThrottlingException,
        ErrorCode::InternalServerException,
        ErrorCode::ExpiredTokenException,
        ErrorCode::UnrecognizedClientException,
    ];

    /// The code as it appears in `x-amzn-errortype` and `__type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationException => "ValidationException",
            ErrorCode::UnauthorizedException => "UnauthorizedException",
            ErrorCode::ServiceQuotaExceededException => "ServiceQuotaExceededException",
            ErrorCode::AccessDeniedException => "AccessDeniedException",
            ErrorCode::ResourceNotFoundException => "ResourceNotFoundException",
            ErrorCode::ConflictException => "ConflictException",
            ErrorCode::ThrottlingException => "ThrottlingException",
            ErrorCode::InternalServerException => "InternalServerException",
            ErrorCode::ExpiredTokenException => "ExpiredTokenException",
            ErrorCode::UnrecognizedClientException => "UnrecognizedClientException",
        }
    }

    /// The HTTP status the service model assigns to the error.
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::ValidationException => StatusCode::BAD_REQUEST,
            ErrorCode::UnauthorizedException => StatusCode::UNAUTHORIZED,
            ErrorCode::ServiceQuotaExceededException => StatusCode::PAYMENT_REQUIRED,
            ErrorCode::AccessDeniedException => StatusCode::FORBIDDEN,
            ErrorCode::ResourceNotFoundException => StatusCode::NOT_FOUND,
            ErrorCode::ConflictException => StatusCode::CONFLICT,
            ErrorCode::ThrottlingException => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalServerException => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ExpiredTokenException | ErrorCode::UnrecognizedClientException => {
                StatusCode::FORBIDDEN
            }
        }
    }

    /// A message in the style of the real service, used for injected faults.
    pub(crate) fn default_message(self) -> &'static str {
        match self {
            ErrorCode::ValidationException => "The request failed validation (injected fault)",
            ErrorCode::UnauthorizedException => "The request is not authorized (injected fault)",
            ErrorCode::ServiceQuotaExceededException => {
                "Service quota exceeded for batch evaluations (injected fault)"
            }
            ErrorCode::AccessDeniedException => {
                "User is not authorized to perform this action (injected fault)"
            }
            ErrorCode::ResourceNotFoundException => {
                "The batch evaluation was not found (injected fault)"
            }
            ErrorCode::ConflictException => {
                "The request conflicts with the job's state (injected fault)"
            }
            ErrorCode::ThrottlingException => "Rate exceeded (injected fault)",
            ErrorCode::InternalServerException => "Internal server error (injected fault)",
            ErrorCode::ExpiredTokenException => {
                "The security token included in the request is expired (injected fault)"
            }
            ErrorCode::UnrecognizedClientException => {
                "The security token included in the request is invalid (injected fault)"
            }
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that names no [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownErrorCode(pub String);

impl std::str::FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

/// `ValidationExceptionReason` values the emulator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValidationReason {
    CannotParse,
    FieldValidationFailed,
    IdempotentParameterMismatch,
}

impl ValidationReason {
    fn as_str(self) -> &'static str {
        match self {
            ValidationReason::CannotParse => "CannotParse",
            ValidationReason::FieldValidationFailed => "FieldValidationFailed",
            ValidationReason::IdempotentParameterMismatch => "IdempotentParameterMismatchException",
        }
    }
}

/// One entry of a ValidationException's `fieldList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// JSON path of the member, e.g. `dataSourceConfig.cloudWatchLogs.serviceNames`.
    pub name: String,
    pub message: String,
}

/// An error response in the service's restJson1 envelope.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    validation: Option<(ValidationReason, Vec<FieldError>)>,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            validation: None,
        }
    }

    pub(crate) fn validation(
        reason: ValidationReason,
        message: impl Into<String>,
        fields: Vec<FieldError>,
    ) -> Self {
        ApiError {
            code: ErrorCode::ValidationException,
            message: message.into(),
            validation: Some((reason, fields)),
        }
    }

    /// A FieldValidationFailed error whose message lists every violation, as AWS does.
    pub(crate) fn invalid_fields(reason: ValidationReason, fields: Vec<FieldError>) -> Self {
        let count = fields.len();
        let detail = fields
            .iter()
            .map(|f| f.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let plural = if count == 1 { "" } else { "s" };
        let message = format!("{count} validation error{plural} detected: {detail}");
        ApiError::validation(reason, message, fields)
    }

    pub(crate) fn not_found(id: &str) -> Self {
        ApiError::new(
            ErrorCode::ResourceNotFoundException,
            format!("Batch evaluation {id} was not found"),
        )
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::ConflictException, message)
    }

    /// 402: the account has as many active jobs as its quota allows.
    pub(crate) fn quota_exceeded(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::ServiceQuotaExceededException, message)
    }

    #[cfg(test)]
    pub(crate) fn reason(&self) -> Option<&'static str> {
        self.validation.as_ref().map(|(reason, _)| reason.as_str())
    }

    #[cfg(test)]
    pub(crate) fn field_names(&self) -> Vec<&str> {
        self.validation
            .as_ref()
            .map(|(_, fields)| fields.iter().map(|f| f.name.as_str()).collect())
            .unwrap_or_default()
    }

    /// The JSON body: `__type`, `message`, and for validation errors `reason` and `fieldList`.
    pub(crate) fn body(&self) -> Value {
        let mut body = json!({ "__type": self.code.as_str(), "message": self.message });
        if let (Some((reason, fields)), Some(map)) = (&self.validation, body.as_object_mut()) {
            map.insert("reason".into(), reason.as_str().into());
            let list: Vec<Value> = fields
                .iter()
                .map(|f| json!({ "name": f.name, "message": f.message }))
                .collect();
            map.insert("fieldList".into(), list.into());
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.code.http_status(), &self.body());
        if let Ok(value) = HeaderValue::from_str(self.code.as_str()) {
            response.headers_mut().insert(ERROR_TYPE_HEADER, value);
        }
        response
    }
}

/// A JSON response with the given status.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    bytes_response(status, body.to_string().into_bytes())
}

/// A response with a JSON content type and an arbitrary (possibly deliberately broken) body.
pub(crate) fn bytes_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A fresh request id in the UUID form AWS uses.
pub(crate) fn new_request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Sets `x-amzn-RequestId` unless the response already has one.
pub(crate) fn ensure_request_id(response: &mut Response, request_id: &str) {
    if !response.headers().contains_key(REQUEST_ID_HEADER)
        && let Ok(value) = HeaderValue::from_str(request_id)
    {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
}

/// Field `n` of a SigV4 `Authorization` header's credential scope
/// (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`), if there is one.
fn credential_field(headers: &HeaderMap, n: usize) -> Option<&str> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let scope_start = auth.find("Credential=")? + "Credential=".len();
    let scope = auth[scope_start..].split([',', ' ']).next()?;
    scope.split('/').nth(n)
}

/// The access key id of a SigV4-signed request.
pub(crate) fn access_key_id(headers: &HeaderMap) -> Option<&str> {
    credential_field(headers, 0).filter(|key| !key.is_empty())
}

/// The AWS partition of a region.
pub(crate) fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The region of a SigV4-signed request's credential scope.
pub(crate) fn region_from_headers(headers: &HeaderMap) -> Option<&str> {
    let region = credential_field(headers, 2)?;
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then_some(region)
}

/// Formats a timestamp the way the service does: ISO-8601, UTC, `Z`, at most millisecond
/// precision. The Rust SDK rejects offsets other than `Z`, so never emit one.
pub(crate) fn format_timestamp(ts: Timestamp) -> String {
    ts.round(Unit::Millisecond).unwrap_or(ts).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_is_read_from_the_credential_scope() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-west-2/bedrock-agentcore/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
            ),
        );
        assert_eq!(region_from_headers(&headers), Some("us-west-2"));
        assert_eq!(access_key_id(&headers), Some("AKIDEXAMPLE"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(region_from_headers(&headers), None);
        assert_eq!(access_key_id(&headers), None);
        assert_eq!(region_from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn timestamps_are_utc_with_z_and_millisecond_precision() {
        let ts: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(format_timestamp(ts), "2026-01-02T03:04:05Z");
        let ts: Timestamp = "2026-01-02T03:04:05.123456789+02:00".parse().unwrap();
        assert_eq!(format_timestamp(ts), "2026-01-02T01:04:05.123Z");
    }

    #[test]
    fn validation_error_body_has_reason_and_field_list() {
        let err = ApiError::invalid_fields(
            ValidationReason::FieldValidationFailed,
            vec![FieldError {
                name: "a.b".into(),
                message: "Value at 'a.b' is bad".into(),
            }],
        );
        let body = err.body();
        assert_eq!(body["__type"], "ValidationException");
        assert_eq!(body["reason"], "FieldValidationFailed");
        assert_eq!(body["fieldList"][0]["name"], "a.b");
        assert_eq!(
            body["message"],
            "1 validation error detected: Value at 'a.b' is bad"
        );
        assert_eq!(
            err.clone().into_response().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn plain_errors_have_no_reason() {
        let body = ApiError::not_found("x-0123456789").body();
        assert_eq!(body["__type"], "ResourceNotFoundException");
        assert!(body.get("reason").is_none());
        assert!(body.get("fieldList").is_none());
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }
}
