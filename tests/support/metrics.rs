//! `/metrics` as a test reads it.

use super::http::get;
use super::server::Porten;

/// `/metrics`, parsed by a Prometheus parser.
pub struct Scrape(Vec<prometheus_parse::Sample>);

impl Scrape {
    pub fn of(server: &Porten) -> Self {
        let answer = get(server.addr, "/metrics");
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let lines = answer
            .text()
            .lines()
            .map(|l| Ok(l.to_string()))
            .collect::<Vec<_>>();
        Self(
            prometheus_parse::Scrape::parse(lines.into_iter())
                .expect("/metrics parses as Prometheus text")
                .samples,
        )
    }

    /// The sum over the samples of `metric` carrying `labels` (a histogram counts its
    /// observations); 0 when there are none.
    pub fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(buckets) => buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(0.0, |b| b.count),
                prometheus_parse::Value::Summary(_) => panic!("no summaries expected"),
            })
            .sum()
    }
}
