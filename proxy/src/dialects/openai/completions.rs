//! `POST /v1/completions`: continue raw text, with no chat template.

use futures::future::try_join_all;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mistralrs::{Constraint, RequestMessage, Response as EngineResponse};
use tokio::sync::mpsc;

use tracing::Instrument;

use super::output;
use super::scored::{parse_logprobs, scored_completions, ScoredPrompt, Scoring};
use super::stream::{next_chunk, send_chunk, Next};
use super::wire::{Completion, CompletionChoice, CompletionRequest, Prompt, Usage};
use crate::engine::{self, EngineJob, ModelKind, SampledTokens, SamplingRequest};
use crate::generation::{admit, fit_context, fresh_id, require_kind, unix_now};
use crate::http::respond::{json, Body};
use crate::http::{read_json, sse, ServerState};
use crate::models::Admitted;
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// Most prompts one request may carry.
const MAX_PROMPTS: usize = 64;

/// Serves one text completion request.
pub async fn completions(
    state: &ServerState,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let request: CompletionRequest = read_json(req, &state.config).await?;
    if request.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::invalid("suffix", "`suffix` is not supported"));
    }
    let top_logprobs = parse_logprobs(request.logprobs.as_ref())?;
    if request.best_of.is_some_and(|b| b != request.n.unwrap_or(1)) {
        return Err(Error::invalid(
            "best_of",
            "`best_of` must equal `n` when set",
        ));
    }
    let echo = request.echo.unwrap_or(false);
    let prompts: Vec<RequestMessage> = match request.prompt.clone() {
        Prompt::Text(t) => vec![text_prompt(t, echo)],
        Prompt::Texts(ts) => ts.into_iter().map(|t| text_prompt(t, echo)).collect(),
        Prompt::Tokens(ids) => vec![RequestMessage::CompletionTokens(ids)],
        Prompt::TokenLists(lists) => lists
            .into_iter()
            .map(RequestMessage::CompletionTokens)
            .collect(),
    };
    if prompts.is_empty() || prompts.len() > MAX_PROMPTS {
        return Err(Error::invalid(
            "prompt",
            format!("`prompt` must hold 1 to {MAX_PROMPTS} prompts"),
        ));
    }
    if prompts
        .iter()
        .any(|p| matches!(p, RequestMessage::CompletionTokens(ids) if ids.is_empty()))
    {
        return Err(Error::invalid("prompt", "a token prompt must not be empty"));
    }
    let streaming = request.stream.unwrap_or(false);
    if streaming && prompts.len() > 1 {
        return Err(Error::invalid(
            "prompt",
            "streaming takes one prompt per request",
        ));
    }
    if let Some(top) = top_logprobs {
        return with_logprobs(state, request, prompts, top, exchange).await;
    }
    let model_id = request.model.clone();
    let model = admit(
        &state.models,
        exchange,
        "text_completion",
        &model_id,
        request.keep_alive,
    )
    .await?;
    require_kind(&model, ModelKind::Chat, &model_id)?;
    let sampling = completion_sampling(&request).into_params(model.generation_defaults.as_ref())?;
    let n = sampling.n_choices;
    let head = completion_head(model_id);
    let job = |message| text_job(message, &sampling, false, streaming);
    if streaming {
        let prompt = prompts.into_iter().next().expect("one prompt");
        let mut job = job(prompt);
        fit_context(&model, &mut job, model.context_length, exchange).await?;
        let limits = TextLimits {
            choices: n,
            max_tokens: job.sampling.max_len,
            sampled: job.sampled.clone(),
        };
        let answers = model.submit(job).await?;
        let (events, response) = sse::channel();
        let span = exchange.span().clone();
        let stream = stream_text(answers, events, head, limits, model, exchange.clone());
        tokio::spawn(stream.instrument(span));
        return Ok(response);
    }
    let runs = prompts
        .into_iter()
        .map(|prompt| run_one(&model, job(prompt), model.context_length, exchange));
    let results = try_join_all(runs).await?;
    let mut completion = head;
    let mut usage = Usage::default();
    for (p, (choices, prompt_usage)) in results.into_iter().enumerate() {
        usage += prompt_usage;
        for mut choice in choices {
            choice.index += p * n;
            completion.choices.push(choice);
        }
    }
    exchange.usage(Some(usage.prompt_tokens), usage.completion_tokens);
    completion.usage = Some(usage);
    Ok(json(StatusCode::OK, &completion))
}

/// A completion request with `logprobs`: one choice per prompt, not streamed; the model is held
/// alone while a prompt's logits are read (`echo`).
async fn with_logprobs(
    state: &ServerState,
    request: CompletionRequest,
    prompts: Vec<RequestMessage>,
    top: usize,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    if request.stream.unwrap_or(false) {
        return Err(Error::invalid(
            "stream",
            "`logprobs` on text completions is served without streaming; leave out `stream`",
        ));
    }
    if request.n.is_some_and(|n| n != 1) {
        return Err(Error::invalid(
            "n",
            "`logprobs` takes one choice per prompt (`n` = 1)",
        ));
    }
    let echo = request.echo.unwrap_or(false);
    let max_tokens = request.max_tokens.unwrap_or(16);
    let model_id = request.model.clone();
    state.models.get(&model_id)?;
    exchange.operation("text_completion", &model_id);
    let model = if echo {
        state
            .models
            .admit_alone(&model_id, request.keep_alive)
            .await?
    } else {
        state.models.admit(&model_id, request.keep_alive).await?
    };
    exchange.admitted();
    require_kind(&model, ModelKind::Chat, &model_id)?;
    let mut sampling_request = completion_sampling(&request);
    sampling_request.max_tokens = Some((max_tokens.max(1), "max_tokens"));
    sampling_request.top_logprobs = Some(top as u32);
    let sampling = sampling_request.into_params(model.generation_defaults.as_ref())?;
    let scored: Vec<ScoredPrompt> = prompts
        .into_iter()
        .map(|message| {
            let text = match &message {
                RequestMessage::Completion { text, .. } => Some(text.clone()),
                _ => None,
            };
            let message = match message {
                RequestMessage::Completion { text, .. } => text_prompt(text, false),
                other => other,
            };
            ScoredPrompt { message, text }
        })
        .collect();
    let job = |message| text_job(message, &sampling, true, false);
    let head = completion_head(model_id);
    let scoring = Scoring {
        max_tokens,
        top,
        echo,
    };
    scored_completions(&model, scored, job, scoring, head, exchange).await
}

/// The answer's envelope; its choices and usage come after.
fn completion_head(model: String) -> Completion {
    Completion {
        id: fresh_id("cmpl", '-'),
        object: "text_completion",
        created: unix_now(),
        model,
        system_fingerprint: crate::SYSTEM_FINGERPRINT.into(),
        choices: Vec::new(),
        usage: None,
    }
}

/// A job continuing raw text: no grammar, no tools.
fn text_job(
    message: RequestMessage,
    sampling: &mistralrs::SamplingParams,
    logprobs: bool,
    streaming: bool,
) -> EngineJob {
    EngineJob {
        message,
        sampling: sampling.clone(),
        constraint: Constraint::None,
        tools: None,
        tool_choice: None,
        logprobs,
        streaming,
        prompt_tokens: 0,
        sampled: Default::default(),
    }
}

fn text_prompt(text: String, echo_prompt: bool) -> RequestMessage {
    RequestMessage::Completion {
        text,
        echo_prompt,
        best_of: None,
    }
}

async fn run_one(
    model: &Admitted,
    mut job: EngineJob,
    context: u64,
    exchange: &Exchange,
) -> Result<(Vec<CompletionChoice>, Usage)> {
    fit_context(model, &mut job, context, exchange).await?;
    let mut answers = model.submit(job).await?;
    match answers.recv().await {
        Some(EngineResponse::CompletionDone(done)) => {
            let choices = done
                .choices
                .into_iter()
                .map(|c| CompletionChoice {
                    index: c.index,
                    text: c.text,
                    logprobs: None,
                    finish_reason: Some(output::finish_reason(&c.finish_reason)),
                })
                .collect();
            let usage = Usage::new(done.usage.prompt_tokens, done.usage.completion_tokens);
            Ok((choices, usage))
        }
        Some(other) => Err(engine::engine_failure(other)),
        None => Err(Error::Engine("the engine dropped the request".into())),
    }
}

/// What a text stream needs to know about its request.
struct TextLimits {
    choices: usize,
    max_tokens: Option<usize>,
    /// The engine's count of tokens sampled (counted for one choice only).
    sampled: SampledTokens,
}

async fn stream_text(
    mut answers: mpsc::Receiver<EngineResponse>,
    events: sse::EventSender,
    head: Completion,
    limits: TextLimits,
    _admitted: Admitted,
    exchange: Exchange,
) {
    let TextLimits {
        choices,
        max_tokens,
        sampled,
    } = limits;
    let mut finished = 0;
    // mistral.rs's completion chunks carry no usage: one chunk is one token.
    let mut tokens = 0;
    let mut finished_index = Vec::new();
    while finished < choices {
        let chunk = match next_chunk(&mut answers, &events, &exchange, |answer| match answer {
            EngineResponse::CompletionChunk(chunk) => Ok(chunk),
            other => Err(Box::new(other)),
        })
        .await
        {
            Next::Chunk(chunk) => chunk,
            Next::Closed => break,
            Next::Over => return,
        };
        let mut event = head.clone();
        for (index, text, finish_reason) in output::completion_chunk_text(chunk) {
            tokens += usize::from(!text.is_empty());
            if finish_reason.is_some() {
                finished += 1;
                finished_index.push(index);
            }
            event.choices.push(CompletionChoice {
                index,
                text,
                logprobs: None,
                finish_reason,
            });
        }
        if !send_chunk(&events, &event, &exchange).await {
            return;
        }
    }
    // The engine's count, where it kept one: chunks undercount when some were withheld.
    let tokens = sampled.count().unwrap_or(tokens);
    exchange.usage(None, tokens);
    if finished < choices {
        // See the chat stream: mistral.rs can end a stream without its finish chunk.
        let ran_out = sampled
            .count()
            .zip(max_tokens)
            .is_some_and(|(sampled, max)| sampled >= max);
        let finish = if ran_out { "length" } else { "stop" };
        let mut event = head;
        event.choices = (0..choices)
            .filter(|i| !finished_index.contains(i))
            .map(|index| CompletionChoice {
                index,
                text: String::new(),
                logprobs: None,
                finish_reason: Some(finish.into()),
            })
            .collect();
        if events.send_json(&event).await.is_err() {
            return;
        }
    }
    let _ = events.send_done().await;
}

/// The sampling fields of a text completion request (OpenAI's default limit there: 16 tokens).
fn completion_sampling(req: &CompletionRequest) -> SamplingRequest {
    SamplingRequest {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        min_p: None,
        max_tokens: Some((req.max_tokens.unwrap_or(16), "max_tokens")),
        stop: req.stop.clone().map(|s| (s.into_vec(), "stop")),
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        repetition_penalty: None,
        logit_bias: req.logit_bias.clone(),
        n: req.n,
        top_logprobs: None,
    }
}
