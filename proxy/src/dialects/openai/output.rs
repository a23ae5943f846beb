//! mistral.rs answers turned into OpenAI's shapes: ids, finish reasons, tool calls, log probs.

use serde_json::{json, Value};

use super::wire::{
    AssistantMessage, ChatChoice, ChatCompletion, ChunkChoice, Delta, FunctionCall, ToolCall,
    ToolCallDelta, Usage,
};

/// OpenAI's finish reasons; mistral.rs says `canceled` where OpenAI would say `stop`.
pub fn finish_reason(reason: &str) -> String {
    match reason {
        "length" => "length",
        "tool_calls" => "tool_calls",
        _ => "stop",
    }
    .to_string()
}

fn tool_calls(calls: Option<Vec<mistralrs::ToolCallResponse>>) -> Option<Vec<ToolCall>> {
    calls.filter(|c| !c.is_empty()).map(|calls| {
        calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                kind: "function".into(),
                function: FunctionCall {
                    name: c.function.name,
                    arguments: c.function.arguments,
                },
            })
            .collect()
    })
}

/// OpenAI's `logprobs` object from mistral.rs's, with every token as text.
pub fn logprobs_json(lp: &mistralrs::core::ResponseLogprob) -> Value {
    let top: Vec<Value> = lp
        .top_logprobs
        .iter()
        .map(|t| {
            let token = t.bytes.clone().unwrap_or_else(|| t.token.to_string());
            json!({"token": token, "logprob": t.logprob, "bytes": token.as_bytes()})
        })
        .collect();
    json!({"token": lp.token, "logprob": lp.logprob, "bytes": lp.token.as_bytes(), "top_logprobs": top})
}

/// A complete chat answer, under the id and model name the client sees.
pub fn chat_completion(
    response: mistralrs::ChatCompletionResponse,
    id: String,
    model: String,
    created: u64,
) -> ChatCompletion {
    let choices = response
        .choices
        .into_iter()
        .map(|c| {
            let calls = tool_calls(c.message.tool_calls);
            let logprobs = c.logprobs.and_then(|l| l.content).map(
                |content| json!({"content": content.iter().map(logprobs_json).collect::<Vec<_>>()}),
            );
            ChatChoice {
                index: c.index,
                finish_reason: if calls.is_some() {
                    "tool_calls".into()
                } else {
                    finish_reason(&c.finish_reason)
                },
                message: AssistantMessage {
                    role: "assistant",
                    content: c.message.content,
                    tool_calls: calls,
                    refusal: None,
                },
                logprobs,
            }
        })
        .collect();
    ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model,
        system_fingerprint: crate::SYSTEM_FINGERPRINT.into(),
        choices,
        usage: Usage::new(
            response.usage.prompt_tokens,
            response.usage.completion_tokens,
        ),
    }
}

/// The OpenAI deltas of one mistral.rs streaming chunk. `first_delta[index]` tracks which
/// choices still owe their `role: assistant`.
pub fn chat_chunk(
    chunk: mistralrs::ChatCompletionChunkResponse,
    role_sent: &mut Vec<bool>,
) -> (Vec<ChunkChoice>, Option<Usage>) {
    let usage = chunk
        .usage
        .as_ref()
        .map(|u| Usage::new(u.prompt_tokens, u.completion_tokens));
    let choices = chunk
        .choices
        .into_iter()
        .map(|c| {
            if role_sent.len() <= c.index {
                role_sent.resize(c.index + 1, false);
            }
            let role = (!role_sent[c.index]).then_some("assistant");
            role_sent[c.index] = true;
            let calls = tool_calls(c.delta.tool_calls).map(|calls| {
                calls
                    .into_iter()
                    .enumerate()
                    .map(|(index, call)| ToolCallDelta {
                        index,
                        id: call.id,
                        kind: call.kind,
                        function: call.function,
                    })
                    .collect::<Vec<_>>()
            });
            let finish = c.finish_reason.as_deref().map(|r| {
                if calls.is_some() {
                    "tool_calls".to_string()
                } else {
                    finish_reason(r)
                }
            });
            ChunkChoice {
                index: c.index,
                delta: Delta {
                    role,
                    content: c.delta.content.filter(|t| !t.is_empty() || role.is_some()),
                    tool_calls: calls,
                },
                finish_reason: finish,
                logprobs: c
                    .logprobs
                    .as_ref()
                    .map(|lp| json!({"content": [logprobs_json(lp)]})),
            }
        })
        .collect();
    (choices, usage)
}

/// The new text and finish reason of each choice in a completion chunk.
pub fn completion_chunk_text(
    chunk: mistralrs::core::CompletionChunkResponse,
) -> Vec<(usize, String, Option<String>)> {
    chunk
        .choices
        .into_iter()
        .map(|c| {
            (
                c.index,
                c.text,
                c.finish_reason.as_deref().map(finish_reason),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canceled_and_unknown_reasons_read_as_stop() {
        assert_eq!(finish_reason("canceled"), "stop");
        assert_eq!(finish_reason("length"), "length");
        assert_eq!(finish_reason("tool_calls"), "tool_calls");
    }
}
