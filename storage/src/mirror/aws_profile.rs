//! AWS shared profiles (`~/.aws/credentials`, `~/.aws/config`, `AWS_PROFILE`), which
//! `object_store` does not read itself. Environment variables still win: a profile only fills in
//! what they leave unset.

use std::path::PathBuf;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

/// Fills `builder` from the selected profile, where the environment has not set the value.
pub(crate) fn apply(mut builder: AmazonS3Builder) -> AmazonS3Builder {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = env("HOME").map(PathBuf::from);
    let file = |var: &str, name: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let credentials = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config = file("AWS_CONFIG_FILE", "config");
    for (key, value) in profile_values(&credentials, &config, &profile) {
        if builder.get_config_value(&key).is_none() {
            builder = builder.with_config(key, value);
        }
    }
    builder
}

/// What a profile sets: keys from the credentials file, region and endpoint from the config
/// file (whose sections are `[profile NAME]`, except `[default]`).
fn profile_values(
    credentials: &str,
    config: &str,
    profile: &str,
) -> Vec<(AmazonS3ConfigKey, String)> {
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let mut out = Vec::new();
    for (name, value) in section(credentials, profile) {
        let key = match name.as_str() {
            "aws_access_key_id" => AmazonS3ConfigKey::AccessKeyId,
            "aws_secret_access_key" => AmazonS3ConfigKey::SecretAccessKey,
            "aws_session_token" => AmazonS3ConfigKey::Token,
            _ => continue,
        };
        out.push((key, value));
    }
    for (name, value) in section(config, &config_section) {
        let key = match name.as_str() {
            "region" => AmazonS3ConfigKey::Region,
            "endpoint_url" => AmazonS3ConfigKey::Endpoint,
            _ => continue,
        };
        out.push((key, value));
    }
    out
}

/// The `key = value` lines of one `[section]` of an INI file.
fn section(text: &str, wanted: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == wanted;
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_profile_gives_its_keys_region_and_endpoint() {
        let credentials = "[default]\naws_access_key_id = D\n\n[team]\naws_access_key_id = AK\n\
                           aws_secret_access_key = SK\n# comment\naws_session_token=T\n";
        let config = "[default]\nregion = us-east-1\n[profile team]\nregion = eu-west-3\n\
                      endpoint_url = http://127.0.0.1:9000\n";
        let values = profile_values(credentials, config, "team");
        let get = |k: AmazonS3ConfigKey| {
            values
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get(AmazonS3ConfigKey::AccessKeyId), Some("AK"));
        assert_eq!(get(AmazonS3ConfigKey::SecretAccessKey), Some("SK"));
        assert_eq!(get(AmazonS3ConfigKey::Token), Some("T"));
        assert_eq!(get(AmazonS3ConfigKey::Region), Some("eu-west-3"));
        assert_eq!(
            get(AmazonS3ConfigKey::Endpoint),
            Some("http://127.0.0.1:9000")
        );
        let default = profile_values(credentials, config, "default");
        assert_eq!(
            default,
            vec![
                (AmazonS3ConfigKey::AccessKeyId, "D".into()),
                (AmazonS3ConfigKey::Region, "us-east-1".into())
            ]
        );
        assert!(profile_values(credentials, config, "absent").is_empty());
    }
}
