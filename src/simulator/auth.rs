//! HTTP Basic: reading the caller's credentials and checking the configured ones.

use axum::http::{header, HeaderMap};
use base64::Engine;

use super::settings::SimulatorSettings;

/// The Basic credentials in `headers`, if any are readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub username: String,
    pub password: String,
}

pub(crate) fn credentials(headers: &HeaderMap) -> Option<Credentials> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// Whether `given` passes: anything passes when no credentials are configured.
///
/// A plain comparison: this is a test double, and its password is in its config in clear.
pub(crate) fn permits(settings: &SimulatorSettings, given: Option<&Credentials>) -> bool {
    match (&settings.username, &settings.password) {
        (None, None) => true,
        (user, password) => given.is_some_and(|c| {
            user.as_deref().is_none_or(|u| u == c.username)
                && password.as_deref().is_none_or(|p| p == c.password)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn basic_credentials_are_decoded() {
        // "qrhub:s3:cret" — a colon in the password is kept.
        let c = credentials(&headers("Basic cXJodWI6czM6Y3JldA=="));
        assert_eq!(
            c,
            Some(Credentials {
                username: "qrhub".into(),
                password: "s3:cret".into()
            })
        );
        assert_eq!(credentials(&headers("Bearer abc")), None);
        assert_eq!(credentials(&headers("Basic !!!")), None);
        assert_eq!(credentials(&HeaderMap::new()), None);
    }

    #[test]
    fn configured_credentials_are_required() {
        let open = SimulatorSettings::default();
        assert!(permits(&open, None));
        let closed = SimulatorSettings {
            username: Some("qrhub".into()),
            password: Some("pw".into()),
            ..SimulatorSettings::default()
        };
        let good = Credentials {
            username: "qrhub".into(),
            password: "pw".into(),
        };
        let bad = Credentials {
            password: "nope".into(),
            ..good.clone()
        };
        assert!(permits(&closed, Some(&good)));
        assert!(!permits(&closed, Some(&bad)));
        assert!(!permits(&closed, None));
    }
}
