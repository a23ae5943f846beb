//! Where the mirror is and how to talk to it: a URL, the `object_store` options for its kind of
//! store, and the transfer knobs. Credentials come from each store's standard chain (`AWS_*`,
//! `GOOGLE_*`, `AZURE_*` variables, instance metadata), plus AWS profiles, read here.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreScheme, RetryConfig};

use super::aws_profile;
use crate::{Error, Result};

/// How to reach the mirror and move bytes to and from it.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorSettings {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`, `file:///path`, or
    /// `https://host/path` (read-only).
    pub url: String,
    /// `object_store` options for the URL's kind of store, by their names there: `endpoint`,
    /// `region`, `allow_http`, `access_key_id`, `virtual_hosted_style_request`, ...
    pub options: Vec<(String, String)>,
    /// Parts transferred at once, per blob.
    pub concurrency: usize,
    /// Bytes per range request and per multipart upload part (at least 5 MiB for uploads,
    /// which S3 requires).
    pub part_size: u64,
    /// Attempts after the first for a request that failed in a way retrying can cure (5xx,
    /// connection reset, a body cut short).
    pub retries: usize,
    /// How long one request keeps being retried.
    pub retry_timeout: Duration,
}

impl MirrorSettings {
    /// The defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            options: Vec::new(),
            concurrency: 8,
            part_size: 16 << 20,
            retries: 10,
            retry_timeout: Duration::from_secs(60),
        }
    }

    /// The backoff between attempts: 100 ms, doubling, at most 5 s.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6)))
            .min(Duration::from_secs(5))
    }
}

/// An opened object store and where the mirror is in it.
pub(crate) struct Opened {
    pub objects: Arc<dyn ObjectStore>,
    /// The mirror's root inside the store.
    pub prefix: Path,
    /// Plain HTTP(S) servers are read-only mirrors.
    pub read_only: bool,
}

/// Builds the object store the settings describe.
pub(crate) fn open_store(settings: &MirrorSettings) -> Result<Opened> {
    let bad = |reason: String| Error::MirrorConfig(reason);
    let url = url::Url::parse(&settings.url)
        .map_err(|e| bad(format!("`{}` is not a URL: {e}", settings.url)))?;
    let (scheme, prefix) = ObjectStoreScheme::parse(&url).map_err(|_| {
        bad(format!(
            "`{}`: expected s3://, gs://, az://, file:// or http(s)://",
            settings.url
        ))
    })?;
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: settings.retries,
        retry_timeout: settings.retry_timeout,
    };
    let unknown = |key: &str| bad(format!("unknown option `{key}` for {}", settings.url));
    let failed = |e: object_store::Error| bad(format!("{}: {e}", settings.url));
    let read_only = scheme == ObjectStoreScheme::Http;
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => {
            let mut builder = aws_profile::apply(AmazonS3Builder::from_env())
                .with_url(settings.url.as_str())
                .with_retry(retry);
            for (key, value) in &settings.options {
                let key: AmazonS3ConfigKey = key.parse().map_err(|_| unknown(key))?;
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(failed)?)
        }
        ObjectStoreScheme::GoogleCloudStorage => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_url(settings.url.as_str())
                .with_retry(retry);
            for (key, value) in &settings.options {
                let key: GoogleConfigKey = key.parse().map_err(|_| unknown(key))?;
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(failed)?)
        }
        ObjectStoreScheme::MicrosoftAzure => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_url(settings.url.as_str())
                .with_retry(retry);
            for (key, value) in &settings.options {
                let key: AzureConfigKey = key.parse().map_err(|_| unknown(key))?;
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(failed)?)
        }
        ObjectStoreScheme::Http => {
            // The path is the mirror's prefix; the store is the server.
            let base = &url[..url::Position::BeforePath];
            let mut builder = HttpBuilder::new().with_url(base).with_retry(retry);
            for (key, value) in &settings.options {
                let key: ClientConfigKey = key.parse().map_err(|_| unknown(key))?;
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(failed)?)
        }
        ObjectStoreScheme::Local => {
            if let Some((key, _)) = settings.options.first() {
                return Err(unknown(key));
            }
            Arc::new(LocalFileSystem::new())
        }
        other => {
            return Err(bad(format!(
                "{other:?} stores are not supported as mirrors"
            )))
        }
    };
    Ok(Opened {
        objects: store,
        prefix,
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_every_kind_open_and_their_path_is_the_prefix() {
        let open = |url: &str, options: &[(&str, &str)]| {
            let mut settings = MirrorSettings::new(url);
            settings.options = options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            open_store(&settings).map(|opened| (opened.prefix.to_string(), opened.read_only))
        };
        let s3 = [
            ("endpoint", "http://127.0.0.1:9"),
            ("allow_http", "true"),
            ("region", "x"),
        ];
        let s3_url = "s3://bucket/team/models";
        assert_eq!(open(s3_url, &s3).unwrap(), ("team/models".into(), false));
        assert_eq!(
            open("file:///srv/mirror", &[]).unwrap(),
            ("srv/mirror".into(), false)
        );
        let https = open("https://models.example/porten", &[]).unwrap();
        assert_eq!(https, ("porten".into(), true), "plain HTTP(S) is read-only");
        let error = open("s3://bucket/p", &[("endpiont", "http://x")]).unwrap_err();
        assert!(
            error.to_string().contains("unknown option `endpiont`"),
            "{error}"
        );
        let error = open("ftp://host/x", &[]).unwrap_err();
        assert!(error.to_string().contains("expected s3://"), "{error}");
        assert!(open("not a url", &[]).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        let s = MirrorSettings::new("file:///m");
        assert_eq!(s.backoff(0), Duration::from_millis(100));
        assert_eq!(s.backoff(1), Duration::from_millis(200));
        assert_eq!(s.backoff(30), Duration::from_secs(5));
    }
}
