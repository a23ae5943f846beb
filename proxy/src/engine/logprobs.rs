//! A prompt's log-probabilities, from the raw logits mistral.rs returns for every position of a
//! prompt (`return_raw_logits`): at each position, the log-softmax over the whole vocabulary,
//! the log-probability of the token that came next, and the most likely tokens.

use mistralrs::{RequestMessage, Response};
use tokio::sync::mpsc;

use super::{engine_failure, EngineJob, LoadedModel};
use crate::{Error, Result};

impl LoadedModel {
    /// The prompt's tokens and the logits after each of them (one row of the vocabulary's
    /// logits per position, as f32). The caller must hold the model alone (see
    /// `ModelRegistry::admit_alone`): mistral.rs cannot batch such a prompt with others.
    pub async fn prompt_logits(
        &self,
        message: RequestMessage,
    ) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
        // A prompt started from a cached prefix gets logits only for the rest of it: the cache
        // goes first (the model is held alone, as dropping it needs).
        self.drop_prefix_cache(false).await?;
        let (tx, mut rx) = mpsc::channel(1);
        self.send(EngineJob::deterministic(message).into_request(tx, true))
            .await?;
        let (chunks, tokens) = match rx.recv().await {
            Some(Response::Raw {
                logits_chunks,
                tokens,
            }) => (logits_chunks, tokens),
            Some(other) => return Err(engine_failure(other)),
            None => return Err(Error::Engine("the engine dropped the request".into())),
        };
        // The engine runs such a prompt one decode step on and caches it like any other.
        self.prefix_cache_finished(tokens.len() + 1);
        let mut rows = Vec::with_capacity(tokens.len());
        for chunk in chunks {
            let chunk = chunk
                .to_dtype(mistralrs::DType::F32)
                .and_then(|c| match c.rank() {
                    1 => c.unsqueeze(0),
                    _ => Ok(c),
                })
                .and_then(|c| c.to_vec2::<f32>())
                .map_err(|e| Error::Engine(format!("cannot read the prompt's logits: {e}")))?;
            rows.extend(chunk);
        }
        Ok((tokens, rows))
    }
}

/// What the model thought of one prompt token, given the tokens before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The token's log-probability.
    pub logprob: f32,
    /// The most likely tokens there, most likely first, with their log-probabilities.
    pub top: Vec<(u32, f32)>,
}

/// Scores `tokens[1..]` against `rows`, where row `i` holds the logits after `tokens[..=i]`.
/// The first token has no score (nothing came before it), as in OpenAI's `echo`.
pub fn score(rows: &[Vec<f32>], tokens: &[u32], top_n: usize) -> Result<Vec<Option<Scored>>> {
    if rows.len() < tokens.len().saturating_sub(1) {
        return Err(Error::Engine(format!(
            "the engine gave logits for {} positions of a {}-token prompt",
            rows.len(),
            tokens.len()
        )));
    }
    let mut scored = Vec::with_capacity(tokens.len());
    scored.push(None);
    for (row, &next) in rows.iter().zip(tokens.iter().skip(1)) {
        let log_z = log_sum_exp(row);
        let logprob_of = |id: usize| (f64::from(row[id]) - log_z) as f32;
        let next = next as usize;
        if next >= row.len() {
            return Err(Error::invalid(
                "prompt",
                format!(
                    "token id {next} is outside the model's vocabulary of {}",
                    row.len()
                ),
            ));
        }
        scored.push(Some(Scored {
            logprob: logprob_of(next),
            top: top_k(row, top_n)
                .into_iter()
                .map(|id| (id as u32, logprob_of(id)))
                .collect(),
        }));
    }
    Ok(scored)
}

/// `log(sum(exp(x)))`, computed stably in f64.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
    max + sum.ln()
}

/// The indices of the `k` largest values, largest first (ties: the lower index first).
fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    for (i, &x) in row.iter().enumerate() {
        if best.len() == k && best.last().is_some_and(|&b| row[b] >= x) {
            continue;
        }
        let at = best.partition_point(|&b| row[b] >= x);
        best.insert(at, i);
        best.truncate(k);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_log_softmax_of_the_next_token_and_the_first_has_none() {
        let rows = vec![vec![0.0, (2.0f32).ln(), 0.0], vec![1.0, 1.0, 1.0]];
        let scored = score(&rows, &[0, 1, 2], 2).unwrap();
        assert_eq!(scored[0], None);
        // softmax of [0, ln 2, 0] = [1/4, 1/2, 1/4]
        let first = scored[1].as_ref().unwrap();
        assert!((first.logprob - 0.5f32.ln()).abs() < 1e-6);
        assert_eq!(first.top[0].0, 1);
        assert_eq!(first.top.len(), 2);
        let second = scored[2].as_ref().unwrap();
        assert!((second.logprob - (1.0f32 / 3.0).ln()).abs() < 1e-6);
    }

    #[test]
    fn top_k_keeps_the_largest_in_order() {
        assert_eq!(top_k(&[0.1, 0.9, 0.5, 0.7], 3), vec![1, 3, 2]);
        assert!(top_k(&[1.0], 0).is_empty());
    }

    #[test]
    fn a_token_outside_the_vocabulary_is_a_client_error() {
        let error = score(&[vec![0.0, 0.0]], &[0, 7], 1).unwrap_err();
        assert!(matches!(error, Error::InvalidRequest { .. }), "{error:?}");
    }
}
