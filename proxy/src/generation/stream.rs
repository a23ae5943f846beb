//! One answer, read from the engine as a stream of events in no dialect: text, tool calls, and
//! an ending with its reason and token counts. The Responses and Anthropic dialects render
//! these as their own events, or gather them into one answer; both always stream from the
//! engine, so a stop sequence or a finished grammar can end the answer as soon as it is seen.
//!
//! Dropping a [`Generation`] drops the engine's channel, and mistral.rs cancels the sequence at
//! its next token: a client that leaves costs at most one more token.

use std::collections::VecDeque;

use mistralrs::Response;
use tokio::sync::mpsc;

use super::context::Fitted;
use super::stop::{Matched, StopMatcher};
use crate::engine::{engine_failure, SampledTokens};
use crate::{Error, Result};

/// A call the model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalledTool {
    /// The engine's id for the call; dialects give calls ids of their own shape.
    pub id: String,
    /// The tool called.
    pub name: String,
    /// Its arguments, a JSON object as text.
    pub arguments: String,
}

/// Why an answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its turn (or its grammar was complete).
    Stop,
    /// The output limit (the request's, or the room left in the context) was reached.
    Length,
    /// The model called tools and waits for their results.
    ToolCalls,
    /// One of porten's own stop sequences appeared (it is not part of the text).
    StopSequence(String),
}

/// The end of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// Why it ended.
    pub finish: Finish,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// What the answer did next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// More text.
    Text(String),
    /// Complete tool calls (mistral.rs reports a call once it is whole).
    ToolCalls(Vec<CalledTool>),
    /// The answer is over; nothing follows.
    End(Ending),
}

/// An answer being generated.
pub struct Generation {
    answers: Option<mpsc::Receiver<Response>>,
    /// The engine's count of tokens sampled, where the job was counted.
    sampled: SampledTokens,
    stops: StopMatcher,
    fitted: Fitted,
    /// Chunks with text or calls: one token each, the count when the engine gives none.
    tokens_seen: usize,
    called_tools: bool,
    pending: VecDeque<Event>,
}

impl Generation {
    /// Reads the engine's streamed answer to a job whose prompt `fitted` measured. `own_stops`
    /// are matched here (the job must not also pass them to the engine).
    /// `sampled` is the job's count of sampled tokens.
    pub fn new(
        answers: mpsc::Receiver<Response>,
        fitted: Fitted,
        own_stops: Vec<String>,
        sampled: SampledTokens,
    ) -> Self {
        Self {
            answers: Some(answers),
            sampled,
            stops: StopMatcher::new(own_stops),
            fitted,
            tokens_seen: 0,
            called_tools: false,
            pending: VecDeque::new(),
        }
    }

    /// Tokens in the prompt, as counted before the engine took it.
    pub fn prompt_tokens(&self) -> usize {
        self.fitted.prompt_tokens
    }

    /// The next event; `Ok(None)` after the ending. An engine failure is an error, and the
    /// answer is over with it.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let Some(answers) = self.answers.as_mut() else {
                return Ok(None);
            };
            match answers.recv().await {
                Some(Response::Chunk(chunk)) => self.take_chunk(chunk),
                Some(Response::CompletionChunk(chunk)) => self.take_text_chunk(chunk),
                // mistral.rs skips a token whose bytes end inside a UTF-8 character; when that
                // is the last one, the channel closes without a finish (and without usage):
                // close the answer here, by the engine's count of tokens sampled where there
                // is one (chunks undercount: one can carry the tokens skipped before it).
                None => {
                    let sampled = self.sampled.count();
                    let tokens = sampled.unwrap_or(self.tokens_seen + 1);
                    let finish = if tokens >= self.fitted.max_tokens {
                        Finish::Length
                    } else {
                        Finish::Stop
                    };
                    let usage = sampled.map(|n| (self.fitted.prompt_tokens, n));
                    self.end(finish, usage);
                }
                Some(other) => {
                    self.answers = None;
                    return Err(engine_failure(other));
                }
            }
        }
    }

    /// Reads the whole answer: its text, its calls and its ending.
    pub async fn collect(mut self) -> Result<(String, Vec<CalledTool>, Ending)> {
        let (mut text, mut calls) = (String::new(), Vec::new());
        while let Some(event) = self.next().await? {
            match event {
                Event::Text(t) => text.push_str(&t),
                Event::ToolCalls(c) => calls.extend(c),
                Event::End(ending) => return Ok((text, calls, ending)),
            }
        }
        Err(Error::Engine("the answer ended without an ending".into()))
    }

    fn take_chunk(&mut self, chunk: mistralrs::ChatCompletionChunkResponse) {
        let usage = chunk.usage;
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        let mut counted = false;
        if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
            counted = true;
            match self.stops.push(&text) {
                Matched::Text(t) => self.text(t),
                Matched::Stop { before, sequence } => {
                    self.tokens_seen += 1;
                    self.text(before);
                    self.end(Finish::StopSequence(sequence), None);
                    return;
                }
            }
        }
        if let Some(calls) = choice.delta.tool_calls.filter(|c| !c.is_empty()) {
            counted = true;
            self.called_tools = true;
            self.pending.push_back(Event::ToolCalls(
                calls
                    .into_iter()
                    .map(|c| CalledTool {
                        id: c.id,
                        name: c.function.name,
                        arguments: c.function.arguments,
                    })
                    .collect(),
            ));
        }
        self.tokens_seen += usize::from(counted);
        if let Some(reason) = choice.finish_reason {
            let finish = match reason.as_str() {
                "length" => Finish::Length,
                "tool_calls" => Finish::ToolCalls,
                _ if self.called_tools => Finish::ToolCalls,
                _ => Finish::Stop,
            };
            self.end(
                finish,
                usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            );
        }
    }

    /// A chunk of a raw-text job (no chat template): text and a finish, no calls, no usage.
    fn take_text_chunk(&mut self, chunk: mistralrs::core::CompletionChunkResponse) {
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        if !choice.text.is_empty() {
            match self.stops.push(&choice.text) {
                Matched::Text(t) => self.text(t),
                Matched::Stop { before, sequence } => {
                    self.tokens_seen += 1;
                    self.text(before);
                    self.end(Finish::StopSequence(sequence), None);
                    return;
                }
            }
            self.tokens_seen += 1;
        }
        if let Some(reason) = choice.finish_reason {
            let finish = match reason.as_str() {
                "length" => Finish::Length,
                _ => Finish::Stop,
            };
            self.end(finish, None);
        }
    }

    fn text(&mut self, text: String) {
        if !text.is_empty() {
            self.pending.push_back(Event::Text(text));
        }
    }

    /// Ends the answer: releases held-back text, stops reading (which cancels the sequence if
    /// the engine is still at it) and queues the ending.
    fn end(&mut self, finish: Finish, usage: Option<(usize, usize)>) {
        let held = self.stops.finish();
        self.text(held);
        self.answers = None;
        let (prompt_tokens, completion_tokens) =
            usage.unwrap_or((self.fitted.prompt_tokens, self.tokens_seen));
        self.pending.push_back(Event::End(Ending {
            finish,
            prompt_tokens,
            completion_tokens,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str, finish: Option<&str>, usage: Option<(usize, usize)>) -> Response {
        Response::Chunk(mistralrs::ChatCompletionChunkResponse {
            id: "c".into(),
            choices: vec![mistralrs::ChunkChoice {
                finish_reason: finish.map(str::to_string),
                index: 0,
                delta: mistralrs::Delta {
                    content: Some(text.into()),
                    role: "assistant".into(),
                    tool_calls: None,
                    reasoning_content: None,
                },
                logprobs: None,
            }],
            created: 0,
            model: "m".into(),
            system_fingerprint: String::new(),
            object: "chat.completion.chunk".into(),
            usage: usage.map(|(prompt_tokens, completion_tokens)| mistralrs::Usage {
                completion_tokens,
                prompt_tokens,
                total_tokens: prompt_tokens + completion_tokens,
                avg_tok_per_sec: 0.0,
                avg_prompt_tok_per_sec: 0.0,
                avg_compl_tok_per_sec: 0.0,
                total_time_sec: 0.0,
                total_prompt_time_sec: 0.0,
                total_completion_time_sec: 0.0,
            }),
        })
    }

    async fn run(answers: Vec<Response>, max_tokens: usize, stops: &[&str]) -> (String, Ending) {
        run_counted(answers, max_tokens, stops, SampledTokens::default()).await
    }

    async fn run_counted(
        answers: Vec<Response>,
        max_tokens: usize,
        stops: &[&str],
        sampled: SampledTokens,
    ) -> (String, Ending) {
        let (tx, rx) = mpsc::channel(answers.len().max(1));
        for answer in answers {
            tx.send(answer).await.unwrap();
        }
        drop(tx);
        let fitted = Fitted {
            prompt_tokens: 7,
            max_tokens,
        };
        let stops = stops.iter().map(|s| s.to_string()).collect();
        let (text, calls, ending) = Generation::new(rx, fitted, stops, sampled)
            .collect()
            .await
            .unwrap();
        assert!(calls.is_empty());
        (text, ending)
    }

    #[tokio::test]
    async fn the_engine_s_finish_and_usage_end_the_answer() {
        let (text, ending) = run(
            vec![
                chunk("Hel", None, None),
                chunk("lo", Some("stop"), Some((9, 2))),
            ],
            16,
            &[],
        )
        .await;
        assert_eq!(text, "Hello");
        assert_eq!(
            ending,
            Ending {
                finish: Finish::Stop,
                prompt_tokens: 9,
                completion_tokens: 2
            }
        );
    }

    #[tokio::test]
    async fn an_own_stop_sequence_ends_the_answer_and_is_not_sent() {
        let (text, ending) = run(
            vec![chunk("one ##", None, None), chunk("# two", None, None)],
            16,
            &["###"],
        )
        .await;
        assert_eq!(text, "one ");
        assert_eq!(ending.finish, Finish::StopSequence("###".into()));
        assert_eq!((ending.prompt_tokens, ending.completion_tokens), (7, 2));
    }

    #[tokio::test]
    async fn a_stream_that_closes_without_a_finish_is_closed_by_its_limit() {
        let (_, ending) = run(vec![chunk("a", None, None), chunk("b", None, None)], 3, &[]).await;
        assert_eq!(ending.finish, Finish::Length);
        let (_, ending) = run(vec![chunk("a", None, None)], 30, &[]).await;
        assert_eq!(ending.finish, Finish::Stop);
    }

    /// A count of `n` sampled tokens, as the engine's processor would leave it.
    fn sampled(n: usize) -> SampledTokens {
        let sampled = SampledTokens::default();
        let processor = sampled.processor();
        let logits = mistralrs::Tensor::new(&[0f32], &mistralrs::Device::Cpu).unwrap();
        for _ in 0..n {
            processor.apply(&logits, &[]).unwrap();
        }
        sampled
    }

    #[tokio::test]
    async fn a_stream_closed_without_a_finish_ends_by_the_engine_s_count_of_tokens() {
        // Two chunks carried all five tokens (three were withheld inside characters).
        let chunks = || vec![chunk("ab", None, None), chunk("c", None, None)];
        let (_, ending) = run_counted(chunks(), 5, &[], sampled(5)).await;
        assert_eq!(ending.finish, Finish::Length);
        assert_eq!((ending.prompt_tokens, ending.completion_tokens), (7, 5));
        let (_, ending) = run_counted(chunks(), 30, &[], sampled(5)).await;
        assert_eq!(ending.finish, Finish::Stop);
        assert_eq!(ending.completion_tokens, 5);
    }
}
