//! Extractors: who is calling (HTTP Basic) and the checked JSON body.

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, HeaderName, StatusCode};
use base64::Engine;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::credentials::{Role, Verdict};
use crate::model::schema::{self, Schema};
use crate::model::{ErrorDetail, ErrorType};

/// The Basic-auth user, verified, and whether it is a POS client or a partner. Which role an
/// operation needs is checked by the handler's extractor ([`PosClient`], [`PartnerCaller`]).
#[derive(Debug, Clone)]
struct Caller {
    user: String,
    role: Role,
}

/// Authenticates the caller, then takes one request from its rate-limit budget (so limits are
/// per identity; a held `pay` counts once, here, at arrival).
async fn caller(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized(request_id(&parts.headers)))?;
    let (user, password) =
        decode_basic(header).ok_or_else(|| ApiError::unauthorized(request_id(&parts.headers)))?;
    let role = match state.credentials.cached(&user, &password) {
        Some(role) => role,
        None => verify(parts, state, &user, &password).await?,
    };
    state
        .limits
        .check(&user)
        .map_err(|wait| ApiError::rate_limited(request_id(&parts.headers), wait))?;
    Ok(Caller { user, role })
}

/// The slow path: a password not verified before. The caller's address must be under its
/// failed-login budget, and an argon2 slot free (or soon free).
async fn verify(
    parts: &Parts,
    state: &AppState,
    user: &str,
    password: &str,
) -> Result<Role, ApiError> {
    let ip = parts
        .extensions
        .get::<super::ClientAddr>()
        .map(|addr| addr.0.ip());
    if let Some(ip) = ip {
        state.logins.check(ip).map_err(|wait| {
            metrics::counter!(crate::metrics::name::FAILED_LOGINS, "reason" => "throttled")
                .increment(1);
            ApiError::login_throttled(request_id(&parts.headers), wait)
        })?;
    }
    match state.credentials.check(user, password).await {
        Verdict::Valid(role) => Ok(role),
        Verdict::Invalid => {
            if let Some(ip) = ip {
                state.logins.failed(ip);
            }
            metrics::counter!(crate::metrics::name::FAILED_LOGINS, "reason" => "invalid")
                .increment(1);
            // The user as sent (bounded), never the password.
            let shown: String = user.chars().take(64).collect();
            tracing::warn!(user = %shown.escape_debug(), client = ?ip, "failed login");
            Err(ApiError::unauthorized(request_id(&parts.headers)))
        }
        Verdict::Busy => {
            // A refusal counts against the address too: a flood from one address is
            // throttled, cheaper still, instead of taking queue places from the others.
            if let Some(ip) = ip {
                state.logins.failed(ip);
            }
            metrics::counter!(crate::metrics::name::FAILED_LOGINS, "reason" => "busy").increment(1);
            Err(ApiError::logins_busy(request_id(&parts.headers)))
        }
    }
}

fn decode_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The header that carries a request's id: set by the hub when the caller sent none,
/// echoed on the answer, and on every log line of the request.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id an error answer carries before the body was read: the request's `x-request-id`.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The verified user if its role is `wanted`. Valid credentials of another role get the same
/// 401 as wrong ones: an operation is not reachable with credentials not meant for it.
async fn authenticated<S>(parts: &Parts, state: &S, wanted: Role) -> Result<String, ApiError>
where
    AppState: FromRef<S>,
{
    let state = AppState::from_ref(state);
    let caller = caller(parts, &state).await?;
    if caller.role == wanted {
        Ok(caller.user)
    } else {
        Err(ApiError::unauthorized(request_id(&parts.headers)))
    }
}

macro_rules! identity {
    ($(#[$doc:meta])* $name:ident => $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub(crate) struct $name(pub(crate) String);

        impl<S> FromRequestParts<S> for $name
        where
            S: Send + Sync,
            AppState: FromRef<S>,
        {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
                authenticated(parts, state, $role).await.map(Self)
            }
        }
    };
}

identity!(
    /// A POS client, authenticated.
    PosClient => Role::Pos
);
identity!(
    /// A partner, authenticated.
    PartnerCaller => Role::Partner
);
identity!(
    /// A back-office operator, authenticated (`/admin/v1`).
    Operator => Role::Operator
);

/// Which spec model a body must be.
pub(crate) trait Checked: DeserializeOwned {
    const SCHEMA: &'static Schema;
}

macro_rules! checked {
    ($($ty:ident => $schema:ident),* $(,)?) => {
        $(impl Checked for crate::model::$ty {
            const SCHEMA: &'static Schema = &schema::$schema;
        })*
    };
}

/// A boxed body is checked as what it boxes.
impl<T: Checked> Checked for Box<T> {
    const SCHEMA: &'static Schema = T::SCHEMA;
}

checked! {
    CreateQrCodeRequest => CREATE_QR_CODE_REQUEST,
    PaymentRequest => PAYMENT_REQUEST,
    ScanNotification => SCAN_NOTIFICATION,
    PaymentConfirmation => PAYMENT_CONFIRMATION,
    PaymentReversal => PAYMENT_REVERSAL,
}

/// A JSON body checked against its spec model, every problem reported at once as
/// `FORMAT_ERROR`; also the raw JSON, for echoes and for what is stored.
#[derive(Debug)]
pub(crate) struct Body<T> {
    pub value: T,
    pub raw: serde_json::Value,
}

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: Checked,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let id = request_id(&parts.headers);
        let is_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorDetail::new(id, ErrorType::FormatError, "Content-Type must be JSON"),
            ));
        }
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "Request body too large"
                } else {
                    "Request body could not be read"
                };
                ApiError::new(
                    status,
                    ErrorDetail::new(&id, ErrorType::FormatError, message),
                )
            })?;
        let mut raw: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::format_field(&id, "body", &format!("malformed JSON: {e}"), "")
        })?;
        // No full card number goes further than this: not into an error's echo, the store,
        // the timeline or a log.
        crate::model::pan::mask_card_numbers(&mut raw);
        let message_id = raw
            .get("id")
            .and_then(|v| v.as_str())
            .filter(|id| !id.contains('\0'))
            .map(str::to_owned)
            .unwrap_or(id);
        // JSON allows "\u0000" in a string; PostgreSQL's text cannot hold it, so a message
        // carrying one would fail where it is stored (and take its batch of events with it).
        if let Some(field) = first_nul(&raw, "") {
            return Err(ApiError::format_field(
                &message_id,
                &field,
                "must not contain the NUL character (\\u0000)",
                "",
            ));
        }
        let errors = schema::check(&raw, T::SCHEMA);
        if !errors.is_empty() {
            return Err(ApiError::format(message_id, &errors));
        }
        // The schema check passed, so this only fails on a disagreement between the schema
        // and the types; it is still answered as a format error, never a 500.
        let value = T::deserialize(&raw)
            .map_err(|e| ApiError::format_field(&message_id, "body", &e.to_string(), ""))?;
        Ok(Self { value, raw })
    }
}

/// The dotted path of the first string (or object key) holding a NUL character.
fn first_nul(value: &serde_json::Value, path: &str) -> Option<String> {
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
            "body".into()
        } else {
            path.to_owned()
        }),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "")))
            } else {
                first_nul(v, &join(k))
            }
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_nul(v, &format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        // "pos-1:pa:ss" — the password may itself contain a colon.
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("pos-1:pa:ss")
        );
        assert_eq!(
            decode_basic(&header),
            Some(("pos-1".into(), "pa:ss".into()))
        );
        assert_eq!(decode_basic("Bearer abc"), None);
        assert_eq!(decode_basic("Basic !!!"), None);
    }
}
