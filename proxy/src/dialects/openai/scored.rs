//! `/v1/completions` with `logprobs`: OpenAI's legacy log-probability object (`tokens`,
//! `token_logprobs`, `top_logprobs`, `text_offset`) for the generated tokens and, with `echo`,
//! for every prompt token before them. The prompt's values are the model's own log-softmax at
//! each position, computed from the raw logits mistral.rs returns for a whole prompt
//! (`return_raw_logits`); the generated tokens' come from the sampler. This is what
//! lm-evaluation-harness's `local-completions` sums to score multiple-choice answers.

use http::{Response, StatusCode};
use mistralrs::{Constraint, RequestMessage, Response as EngineResponse};
use serde_json::{json, Map, Value};

use super::output;
use super::wire::{Completion, CompletionChoice, Usage};
use crate::engine::logprobs::{score, Scored};
use crate::engine::{engine_failure, EngineJob, LoadedModel};
use crate::generation::fit_context;
use crate::http::respond::{json, Body};
use crate::models::Admitted;
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// OpenAI's most top log-probabilities per position.
pub const MAX_LOGPROBS: u64 = 5;

/// Bytes of logits one echoed prompt may make the engine return (rows x vocabulary x 4):
/// beyond this a prompt is refused rather than risk the memory budget.
const MAX_LOGIT_BYTES: usize = 512 << 20;

/// `logprobs` as a count of top tokens, or `None` when not asked for.
pub fn parse_logprobs(value: Option<&Value>) -> Result<Option<usize>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= MAX_LOGPROBS) => {
            Ok(n.as_u64().map(|n| n as usize))
        }
        Some(_) => Err(Error::invalid(
            "logprobs",
            format!("`logprobs` must be an integer from 0 to {MAX_LOGPROBS}"),
        )),
    }
}

/// One prompt to score and continue.
pub struct ScoredPrompt {
    /// The prompt as the engine takes it.
    pub message: RequestMessage,
    /// Its text, for `echo` (a token prompt's is detokenized).
    pub text: Option<String>,
}

/// The legacy `logprobs` object under construction.
#[derive(Default)]
struct Legacy {
    tokens: Vec<String>,
    token_logprobs: Vec<Option<f32>>,
    top_logprobs: Vec<Option<Map<String, Value>>>,
    text_offset: Vec<usize>,
    chars: usize,
}

impl Legacy {
    fn push(&mut self, text: String, logprob: Option<f32>, top: Option<Map<String, Value>>) {
        self.text_offset.push(self.chars);
        self.chars += text.chars().count();
        self.tokens.push(text);
        self.token_logprobs.push(logprob);
        self.top_logprobs.push(top);
    }

    fn into_value(self) -> Value {
        json!({
            "tokens": self.tokens,
            "token_logprobs": self.token_logprobs,
            "top_logprobs": self.top_logprobs,
            "text_offset": self.text_offset,
        })
    }
}

/// What a scored completion asks for.
#[derive(Debug, Clone, Copy)]
pub struct Scoring {
    /// Tokens to generate after the prompt (0: none).
    pub max_tokens: u64,
    /// Most likely tokens to list at each position.
    pub top: usize,
    /// Score the prompt's tokens too.
    pub echo: bool,
}

/// Answers each prompt in turn with its log-probabilities: the prompt's when `echo` (then
/// `model` must be held alone), then the generated ones.
pub async fn scored_completions(
    model: &Admitted,
    prompts: Vec<ScoredPrompt>,
    job: impl Fn(RequestMessage) -> EngineJob,
    scoring: Scoring,
    mut head: Completion,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let Scoring {
        max_tokens,
        top,
        echo,
    } = scoring;
    let mut usage = Usage::default();
    for (index, prompt) in prompts.into_iter().enumerate() {
        let mut legacy = Legacy::default();
        let mut text = String::new();
        let mut prompt_tokens = None;
        if echo {
            let (tokens, rows) = prompt_scores(model, prompt.message.clone(), top).await?;
            text = match prompt.text {
                Some(t) => t,
                None => model.detokenize(tokens.clone()).await?,
            };
            for (&token, scored) in tokens.iter().zip(rows) {
                let piece = model.detokenize(vec![token]).await?;
                let (logprob, top) = match scored {
                    Some(Scored { logprob, top: best }) => {
                        (Some(logprob), Some(top_map(model, &best).await?))
                    }
                    None => (None, None),
                };
                legacy.push(piece, logprob, top);
            }
            prompt_tokens = Some(tokens.len());
        }
        let (finish, completion_tokens, counted_prompt) = if max_tokens == 0 {
            let counted = match prompt_tokens {
                Some(n) => n,
                None => model.count_tokens(&prompt.message, None).await?,
            };
            ("length".to_string(), 0, counted)
        } else {
            let generated = generate(model, job(prompt.message), &mut legacy, exchange).await?;
            text.push_str(&generated.text);
            (generated.finish, generated.tokens, generated.prompt_tokens)
        };
        usage += Usage::new(prompt_tokens.unwrap_or(counted_prompt), completion_tokens);
        head.choices.push(CompletionChoice {
            index,
            text,
            logprobs: Some(legacy.into_value()),
            finish_reason: Some(finish),
        });
    }
    exchange.usage(Some(usage.prompt_tokens), usage.completion_tokens);
    head.usage = Some(usage);
    Ok(json(StatusCode::OK, &head))
}

/// The prompt's tokens and each one's score given those before it.
async fn prompt_scores(
    model: &LoadedModel,
    message: RequestMessage,
    top: usize,
) -> Result<(Vec<u32>, Vec<Option<Scored>>)> {
    let (tokens, rows) = model.prompt_logits(message).await?;
    let bytes = rows.len() * rows.first().map_or(0, Vec::len) * 4;
    if bytes > MAX_LOGIT_BYTES {
        return Err(Error::invalid(
            "prompt",
            format!(
                "an echoed prompt of {} tokens makes {} MiB of logits, over the limit of {} MiB; \
                 score shorter prompts",
                tokens.len(),
                bytes >> 20,
                MAX_LOGIT_BYTES >> 20
            ),
        ));
    }
    let scored = score(&rows, &tokens, top)?;
    Ok((tokens, scored))
}

async fn top_map(model: &LoadedModel, best: &[(u32, f32)]) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for &(token, logprob) in best {
        let text = model.detokenize(vec![token]).await?;
        map.entry(text).or_insert(json!(logprob));
    }
    Ok(map)
}

struct Generated {
    text: String,
    finish: String,
    tokens: usize,
    prompt_tokens: usize,
}

/// Generates an answer with the sampler's log-probabilities, adding its tokens to `legacy`.
async fn generate(
    model: &Admitted,
    mut job: EngineJob,
    legacy: &mut Legacy,
    exchange: &Exchange,
) -> Result<Generated> {
    job.logprobs = true;
    job.streaming = false;
    job.constraint = Constraint::None;
    fit_context(model, &mut job, model.context_length, exchange).await?;
    let mut answers = model.submit(job).await?;
    let done = match answers.recv().await {
        Some(EngineResponse::CompletionDone(done)) => done,
        Some(other) => return Err(engine_failure(other)),
        None => return Err(Error::Engine("the engine dropped the request".into())),
    };
    let choice = done
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| Error::Engine("the engine answered with no choice".into()))?;
    for step in choice.logprobs.and_then(|l| l.content).unwrap_or_default() {
        let mut top = Map::new();
        for candidate in &step.top_logprobs {
            let text = match &candidate.bytes {
                Some(text) => text.clone(),
                None => model.detokenize(vec![candidate.token]).await?,
            };
            top.entry(text).or_insert(json!(candidate.logprob));
        }
        legacy.push(step.token, Some(step.logprob), Some(top));
    }
    Ok(Generated {
        text: choice.text,
        finish: output::finish_reason(&choice.finish_reason),
        tokens: done.usage.completion_tokens,
        prompt_tokens: done.usage.prompt_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_is_a_small_integer() {
        assert_eq!(parse_logprobs(None).unwrap(), None);
        assert_eq!(parse_logprobs(Some(&json!(1))).unwrap(), Some(1));
        assert_eq!(parse_logprobs(Some(&json!(0))).unwrap(), Some(0));
        for bad in [json!(6), json!(-1), json!("1"), json!(true)] {
            assert!(parse_logprobs(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_offsets_count_characters_of_the_tokens_before() {
        let mut legacy = Legacy::default();
        legacy.push("é".into(), None, None);
        legacy.push(" b".into(), Some(-1.0), Some(Map::new()));
        let value = legacy.into_value();
        assert_eq!(value["text_offset"], json!([0, 1]));
        assert_eq!(value["token_logprobs"], json!([null, -1.0]));
        assert_eq!(value["top_logprobs"][0], Value::Null);
    }
}
