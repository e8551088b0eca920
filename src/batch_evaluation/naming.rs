//! Names derived from the object: the remote job name and the Start client token.

use crate::error::Error;

/// Longest batch evaluation name the service accepts (`[a-zA-Z][a-zA-Z0-9_]{0,47}`).
const MAX_NAME_LEN: usize = 48;
/// Characters of the UID kept in a derived name: enough to keep names unique when several
/// clusters (with their own namespaces and names) share one AWS account.
const UID_FRAGMENT_LEN: usize = 8;

/// The default remote name: `<namespace>_<name>_<uid fragment>`, sanitized and truncated so it
/// always matches the service's pattern. Deterministic, so a restarted operator finds the job
/// it may have started before a crash.
///
/// # Errors
/// [`Error::InvalidObject`] when the UID is not a Kubernetes UID.
pub fn derived_name(namespace: &str, name: &str, uid: &str) -> Result<String, Error> {
    let fragment: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(UID_FRAGMENT_LEN)
        .collect();
    if fragment.len() < UID_FRAGMENT_LEN {
        return Err(Error::InvalidObject(format!(
            "metadata.uid {uid:?} is not a UID"
        )));
    }
    let mut base = sanitize(&format!("{namespace}_{name}"));
    if !base.starts_with(|c: char| c.is_ascii_alphabetic()) {
        base.insert(0, 'k');
    }
    base.truncate(MAX_NAME_LEN - UID_FRAGMENT_LEN - 1);
    Ok(format!("{base}_{fragment}"))
}

/// The Start client token: the service returns the original job for a repeated token, so a
/// Start retried after a crash or a timeout can never create a second job for this object.
///
/// # Errors
/// [`Error::InvalidObject`] when the UID would not fit the token pattern.
pub fn client_token(uid: &str) -> Result<String, Error> {
    let token = format!("agentcore-operator-{uid}");
    let valid = (33..=256).contains(&token.len())
        && token.starts_with(|c: char| c.is_ascii_alphanumeric())
        && token.ends_with(|c: char| c.is_ascii_alphanumeric())
        && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(token)
    } else {
        Err(Error::InvalidObject(format!(
            "metadata.uid {uid:?} cannot form a client token"
        )))
    }
}

fn sanitize(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0d5e1c9a-4f2b-4c1e-9a7d-3b2f1e0c9d8a";

    fn name_pattern_ok(name: &str) -> bool {
        name.len() <= MAX_NAME_LEN
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    #[test]
    fn derived_names_match_the_service_pattern() {
        let long = "a".repeat(253);
        for (ns, name) in [
            ("default", "demo"),
            ("team-a", "nightly.eval-2026"),
            ("1ns", "x"),
            (long.as_str(), long.as_str()),
        ] {
            let derived = derived_name(ns, name, UID).unwrap();
            assert!(name_pattern_ok(&derived), "{derived}");
            assert!(derived.ends_with("_0d5e1c9a"), "{derived}");
        }
        assert_eq!(
            derived_name("default", "demo", UID).unwrap(),
            "default_demo_0d5e1c9a"
        );
    }

    #[test]
    fn derived_names_are_deterministic_and_differ_by_uid() {
        let other = "ffffffff-4f2b-4c1e-9a7d-3b2f1e0c9d8a";
        assert_eq!(
            derived_name("a", "b", UID).unwrap(),
            derived_name("a", "b", UID).unwrap()
        );
        assert_ne!(
            derived_name("a", "b", UID).unwrap(),
            derived_name("a", "b", other).unwrap()
        );
    }

    #[test]
    fn client_token_matches_the_model() {
        let token = client_token(UID).unwrap();
        assert!((33..=256).contains(&token.len()));
        assert_eq!(token, format!("agentcore-operator-{UID}"));
        assert!(client_token("bad uid!").is_err());
        assert!(derived_name("a", "b", "short").is_err());
    }
}
