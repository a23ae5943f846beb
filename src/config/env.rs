//! Reading `PORTEN_*` variables: each section's overrides go through these helpers, so every
//! bad value names its variable.

use anyhow::Context;

/// Reads a `PORTEN_*` variable; the binary passes `std::env::var`, tests a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The variable's value when it is set and not empty.
pub fn non_empty(env: EnvLookup<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

/// The variable parsed as `T`, when set; `what` says what it should have been.
pub fn parsed<T: std::str::FromStr>(
    env: EnvLookup<'_>,
    name: &str,
    what: &str,
) -> anyhow::Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    non_empty(env, name)
        .map(|v| {
            v.parse::<T>()
                .with_context(|| format!("{name}=`{v}` is not {what}"))
        })
        .transpose()
}

/// A map-backed lookup for tests.
#[cfg(test)]
pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}
