//! The store's instruments, through the OpenTelemetry API: no-ops until the binary installs a
//! meter provider, which it does before it opens the store.

use std::sync::LazyLock;

use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;

pub(crate) struct Instruments {
    /// `porten.store.evictions`: models evicted to make room in the disk budget.
    evictions: Counter<u64>,
    /// `porten.store.pulls`: pulls from the mirror, by outcome.
    pulls: Counter<u64>,
    /// `porten.store.pull.bytes`: bytes downloaded from the mirror.
    pull_bytes: Counter<u64>,
    /// `porten.policy.decisions`: shared with the proxy's placement decisions (same name, unit
    /// and description, so the SDK keeps one stream).
    policy_decisions: Counter<u64>,
}

pub(crate) fn instruments() -> &'static Instruments {
    static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| {
        let meter = opentelemetry::global::meter("porten");
        Instruments {
            evictions: meter
                .u64_counter("porten.store.evictions")
                .with_unit("{model}")
                .with_description("Models evicted from the weight store to stay in its disk budget")
                .build(),
            pulls: meter
                .u64_counter("porten.store.pulls")
                .with_unit("{pull}")
                .with_description("Model pulls from the mirror, by outcome (ok, up_to_date, error)")
                .build(),
            pull_bytes: meter
                .u64_counter("porten.store.pull.bytes")
                .with_unit("By")
                .with_description("Bytes downloaded from the mirror")
                .build(),
            policy_decisions: meter
                .u64_counter("porten.policy.decisions")
                .with_unit("{decision}")
                .with_description("Placement and eviction policy decisions, by outcome")
                .build(),
        }
    });
    &INSTRUMENTS
}

impl Instruments {
    /// Counts `count` models evicted for the disk budget.
    pub fn evicted(&self, count: u64) {
        self.evictions.add(count, &[]);
    }

    /// Counts one pull that ended with `outcome`, having downloaded `bytes`.
    pub fn pulled(&self, outcome: &'static str, bytes: u64) {
        self.pulls
            .add(1, &[KeyValue::new("porten.pull.outcome", outcome)]);
        self.pull_bytes.add(bytes, &[]);
    }

    /// Counts one eviction decision of `policy`; `fallback` says why its answer was refused.
    pub fn eviction_decision(&self, policy: &str, fallback: Option<&'static str>) {
        self.policy_decisions.add(
            1,
            &[
                KeyValue::new("porten.policy.kind", "eviction"),
                KeyValue::new("porten.policy.name", policy.to_string()),
                KeyValue::new(
                    "porten.policy.outcome",
                    if fallback.is_some() {
                        "fallback"
                    } else {
                        "accepted"
                    },
                ),
                KeyValue::new("porten.policy.fallback_cause", fallback.unwrap_or("none")),
            ],
        );
    }
}
