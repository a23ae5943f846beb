//! The in-process mistral.rs engine: loading a model from local files, handing it jobs and
//! counting a prompt's tokens. What a job says comes from the dialects, through
//! `crate::generation`; the engine knows no wire format.

pub mod gguf;
mod load;
pub mod logprobs;
pub mod prefix_cache;
mod processors;
mod sampling;

use std::sync::Arc;

use either::Either;
use mistralrs::core::TokenizationRequest;
use mistralrs::{
    Constraint, NormalRequest, Request, RequestMessage, Response, SamplingParams, StopTokens,
};
use tokio::sync::mpsc;

pub use load::{expected_source, load_model, resolve_source, ModelSource, PrefixCacheSettings};
pub use processors::SampledTokens;
pub use sampling::SamplingRequest;

use crate::{Error, Result};

/// What a loaded model can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Chat and text completions.
    Chat,
    /// Embeddings.
    Embedding,
}

impl ModelKind {
    /// The name shown in `/v1/models`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Chat => "chat",
            ModelKind::Embedding => "embedding",
        }
    }
}

/// A model mistral.rs has loaded, ready to take requests.
pub struct LoadedModel {
    /// What it serves.
    pub kind: ModelKind,
    /// Sampling defaults from the model's `generation_config.json`, if any.
    pub generation_defaults: Option<mistralrs::ModelGenerationDefaults>,
    /// The end-of-text tokens a grammar may end on, as stop strings: see [`grammar_stops`].
    grammar_stops: Vec<String>,
    /// The model's end-of-text token, when it has one of the usual ones: see [`Self::embed`].
    end_of_text: Option<u32>,
    /// The books of the engine's prefix cache, when it has one.
    prefix_cache: Option<Arc<prefix_cache::PrefixCache>>,
    model: Arc<mistralrs::Model>,
}

/// One generation handed to the engine.
pub struct EngineJob {
    /// The prompt.
    pub message: RequestMessage,
    /// How to sample.
    pub sampling: SamplingParams,
    /// Constrained decoding (JSON schema).
    pub constraint: Constraint,
    /// Tools offered to the model.
    pub tools: Option<Vec<mistralrs::Tool>>,
    /// How the model may use them.
    pub tool_choice: Option<mistralrs::ToolChoice>,
    /// Return log probabilities.
    pub logprobs: bool,
    /// Stream token by token.
    pub streaming: bool,
    /// Tokens in the prompt, once the context check has counted them (0 before): what the
    /// prefix cache's books start the sequence at.
    pub prompt_tokens: usize,
    /// Counts the tokens the engine samples for it (one sequence only).
    pub sampled: SampledTokens,
}

impl EngineJob {
    /// A job answered greedily, without a grammar, tools, log-probabilities or streaming.
    pub fn deterministic(message: RequestMessage) -> Self {
        Self {
            message,
            sampling: SamplingParams::deterministic(),
            constraint: Constraint::None,
            tools: None,
            tool_choice: None,
            logprobs: false,
            streaming: false,
            prompt_tokens: 0,
            sampled: SampledTokens::default(),
        }
    }

    /// The engine's request for this job, answered on `response`; with `raw_logits`, the
    /// prompt's logits come back instead of an answer.
    fn into_request(mut self, response: mpsc::Sender<Response>, raw_logits: bool) -> Request {
        // Taken out of the sampling parameters, which mistral.rs would ignore it in.
        let mut processors = Vec::new();
        if let Some(bias) = self.sampling.logits_bias.take() {
            processors.push(processors::LogitBias::processor(bias));
        }
        if self.sampling.n_choices == 1 {
            processors.push(self.sampled.processor());
        }
        Request::Normal(Box::new(NormalRequest {
            messages: self.message,
            sampling_params: self.sampling,
            response,
            return_logprobs: self.logprobs,
            is_streaming: self.streaming,
            id: 0,
            constraint: self.constraint,
            suffix: None,
            tools: self.tools,
            tool_choice: self.tool_choice,
            logits_processors: Some(processors).filter(|p| !p.is_empty()),
            return_raw_logits: raw_logits,
            web_search_options: None,
            model_id: None,
            truncate_sequence: false,
        }))
    }
}

impl LoadedModel {
    /// Hands a job to the engine; its answers arrive on the returned channel. Dropping the
    /// receiver cancels the generation: the engine stops the sequence at its next failed send.
    pub async fn submit(&self, mut job: EngineJob) -> Result<mpsc::Receiver<Response>> {
        let (tx, rx) = mpsc::channel(64);
        let prompt_tokens = job.prompt_tokens;
        if !matches!(job.constraint, Constraint::None) {
            stop_also_on(&mut job.sampling, &self.grammar_stops);
        }
        self.send(job.into_request(tx, false)).await?;
        let Some(cache) = &self.prefix_cache else {
            return Ok(rx);
        };
        // The books learn what the finished sequence left in the cache.
        let (out, watched) = mpsc::channel(64);
        tokio::spawn(prefix_cache::watch(cache.clone(), prompt_tokens, rx, out));
        Ok(watched)
    }

    /// The number of tokens `message` is to the model, after its chat template (with `tools`),
    /// as the engine will see it.
    pub async fn count_tokens(
        &self,
        message: &RequestMessage,
        tools: Option<&[mistralrs::Tool]>,
    ) -> Result<usize> {
        let text = match message {
            RequestMessage::Chat { messages, .. } => Either::Left(messages.clone()),
            RequestMessage::Completion { text, .. } => Either::Right(text.clone()),
            RequestMessage::CompletionTokens(ids) => return Ok(ids.len()),
            RequestMessage::Embedding { prompt } => Either::Right(prompt.clone()),
            RequestMessage::EmbeddingTokens { prompt } => return Ok(prompt.len()),
            _ => {
                return Err(Error::Engine(
                    "cannot count the tokens of this request".into(),
                ))
            }
        };
        let enable_thinking = match message {
            RequestMessage::Chat {
                enable_thinking, ..
            } => *enable_thinking,
            _ => None,
        };
        self.tokenize(text, tools.map(<[_]>::to_vec), enable_thinking)
            .await
            .map(|ids| ids.len())
    }

    async fn tokenize(
        &self,
        text: Either<Vec<TemplateMessage>, String>,
        tools: Option<Vec<mistralrs::Tool>>,
        enable_thinking: Option<bool>,
    ) -> Result<Vec<u32>> {
        let (tx, mut rx) = mpsc::channel(1);
        let request = Request::Tokenize(TokenizationRequest {
            text,
            tools,
            // As the engine itself renders a chat prompt: generation prompt and specials on.
            add_generation_prompt: true,
            add_special_tokens: true,
            enable_thinking,
            reasoning_effort: None,
            response: tx,
        });
        let sender = self
            .model
            .inner()
            .get_sender(None)
            .map_err(|e| Error::Engine(e.to_string()))?;
        // mistral.rs panics its engine thread when the answer to a tokenization finds its
        // receiver gone, so the wait must outlive a client that leaves: it runs in a task of
        // its own, which this request only joins.
        let exchange = tokio::spawn(async move {
            sender
                .send(request)
                .await
                .map_err(|_| Error::Engine("the engine has stopped".into()))?;
            match rx.recv().await {
                Some(Ok(ids)) => Ok(ids),
                Some(Err(e)) => Err(Error::InvalidRequest {
                    message: format!("the prompt cannot be rendered for this model: {e}"),
                    param: None,
                }),
                None => Err(Error::Engine("the engine dropped the request".into())),
            }
        });
        exchange
            .await
            .map_err(|e| Error::Engine(format!("tokenizing failed: {e}")))?
    }

    /// The tokens of `text` under the model's tokenizer, with no chat template.
    pub async fn tokenize_text(&self, text: String, add_special_tokens: bool) -> Result<Vec<u32>> {
        let model = self.model.clone();
        // In a task of its own: see `tokenize`.
        tokio::spawn(async move {
            model
                .tokenize(Either::Right(text), None, add_special_tokens, false, None)
                .await
        })
        .await
        .map_err(|e| Error::Engine(format!("tokenizing failed: {e}")))?
        .map_err(|e| Error::Engine(format!("tokenizing failed: {e}")))
    }

    /// The text of `tokens` (special tokens included).
    pub async fn detokenize(&self, tokens: Vec<u32>) -> Result<String> {
        let model = self.model.clone();
        tokio::spawn(async move { model.detokenize(tokens, false).await })
            .await
            .map_err(|e| Error::Engine(format!("detokenizing failed: {e}")))?
            .map_err(|e| Error::invalid("tokens", format!("cannot detokenize: {e}")))
    }

    async fn at_least_two_tokens(&self, message: RequestMessage) -> Result<RequestMessage> {
        let ids = match message {
            RequestMessage::Embedding { ref prompt } => {
                let ids = self.tokenize_text(prompt.clone(), true).await?;
                if ids.len() != 1 {
                    return Ok(message);
                }
                ids
            }
            RequestMessage::EmbeddingTokens { ref prompt } if prompt.len() == 1 => prompt.clone(),
            other => return Ok(other),
        };
        let Some(end) = self.end_of_text else {
            return Err(Error::invalid(
                "input",
                "this model cannot embed a one-token input; give it at least two tokens",
            ));
        };
        Ok(RequestMessage::EmbeddingTokens {
            prompt: vec![ids[0], end],
        })
    }

    /// Puts `request` in the engine's queue.
    async fn send(&self, request: Request) -> Result<()> {
        self.model
            .inner()
            .get_sender(None)
            .map_err(|e| Error::Engine(e.to_string()))?
            .send(request)
            .await
            .map_err(|_| Error::Engine("the engine has stopped".into()))
    }

    /// Embeds one input (text or tokens) and returns the vector and its token count.
    ///
    /// mistral.rs 0.8.1's Qwen3 embedding model panics its engine thread on a one-token input
    /// (its causal mask is `None` for one position, which it declares unreachable). Such an
    /// input is embedded followed by the model's end-of-text token: the form Qwen3-Embedding's
    /// own tokenizer gives every input for its last-token pooling.
    pub async fn embed(&self, message: RequestMessage) -> Result<(Vec<f32>, usize)> {
        let message = self.at_least_two_tokens(message).await?;
        let mut rx = self.submit(EngineJob::deterministic(message)).await?;
        match rx.recv().await {
            Some(Response::Embeddings {
                embeddings,
                prompt_tokens,
                ..
            }) => Ok((embeddings, prompt_tokens)),
            Some(other) => Err(engine_failure(other)),
            None => Err(Error::Engine("the engine dropped the request".into())),
        }
    }
}

/// One message as chat templates read it: `role`, `content`, and `tool_calls` and friends.
pub type TemplateMessage = indexmap::IndexMap<String, mistralrs::MessageContent>;

/// Special tokens that end a text, as llguidance names them. A grammar that is complete allows
/// only its end-of-text token, which is not always the model's own end of turn (SmolLM2: the
/// grammar's `<|endoftext|>`, the chat's `<|im_end|>`); mistral.rs 0.8 then keeps sampling the
/// grammar's token, which prints as nothing, until `max_tokens`. Stopping on these as well ends
/// a constrained answer when its grammar is done.
const GRAMMAR_EOS_CANDIDATES: [&str; 5] = [
    "<|endoftext|>",
    "</s>",
    "<|end_of_text|>",
    "<eos>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
];

/// The [`GRAMMAR_EOS_CANDIDATES`] that `model` has as a single token (the only form mistral.rs
/// stops on without printing them).
pub(crate) async fn grammar_stops(model: &mistralrs::Model) -> Vec<String> {
    let mut stops = Vec::new();
    for candidate in GRAMMAR_EOS_CANDIDATES {
        if let Ok(ids) = model
            .tokenize(
                Either::Right(candidate.to_string()),
                None,
                true,
                false,
                None,
            )
            .await
        {
            if ids.len() == 1 {
                stops.push(candidate.to_string());
            }
        }
    }
    stops
}

/// The id of the first of [`GRAMMAR_EOS_CANDIDATES`] that `model` has as a single token.
pub(crate) async fn end_of_text(model: &mistralrs::Model) -> Option<u32> {
    for candidate in GRAMMAR_EOS_CANDIDATES {
        let ids = model
            .tokenize(
                Either::Right(candidate.to_string()),
                None,
                false,
                false,
                None,
            )
            .await
            .ok()?;
        if let [id] = ids[..] {
            return Some(id);
        }
    }
    None
}

fn stop_also_on(sampling: &mut SamplingParams, extra: &[String]) {
    if extra.is_empty() {
        return;
    }
    match &mut sampling.stop_toks {
        None => sampling.stop_toks = Some(StopTokens::Seqs(extra.to_vec())),
        Some(StopTokens::Seqs(seqs)) => seqs.extend(extra.iter().cloned()),
        // Token-id stops come from no dialect; leave them alone.
        Some(StopTokens::Ids(_)) => {}
    }
}

/// The error carried by an engine answer that is not the one expected.
pub fn engine_failure(response: Response) -> Error {
    match response {
        Response::ValidationError(e) => Error::InvalidRequest {
            message: e.to_string(),
            param: None,
        },
        Response::InternalError(e) => Error::Engine(e.to_string()),
        Response::ModelError(msg, _) | Response::CompletionModelError(msg, _) => Error::Engine(msg),
        _ => Error::Engine("the engine answered with an unexpected response type".into()),
    }
}
