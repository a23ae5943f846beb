//! The Responses and Anthropic Messages APIs end to end through the real binary, on the tiny
//! random models: their event streams in order, stored responses and continuations, forced
//! tool calls in each API's own items, and the context-length check and output clamp that
//! every endpoint shares.

mod support;

use std::io::BufReader;

use serde_json::{json, Value};
use support::http::{self, get, post_json, send};

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

fn weather_tool_schema() -> Value {
    json!({"type": "object",
           "properties": {"city": {"type": "string", "enum": ["Oslo", "Lima"]}},
           "required": ["city"], "additionalProperties": false})
}

#[test]
fn a_streamed_response_follows_the_responses_event_order() {
    let t = support::tiny_server(&[]);
    let answer = post_json(
        t.server.addr,
        "/v1/responses",
        &json!({"model": "tiny", "input": "hi", "max_output_tokens": 6, "stream": true}),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    assert!(!answer.text().contains("[DONE]"), "no [DONE] line");
    let events = answer.named_events();
    let names = names(&events);
    assert_eq!(
        names[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    let terminal = *names.last().unwrap();
    assert!(
        ["response.completed", "response.incomplete"].contains(&terminal),
        "{names:?}"
    );
    assert_eq!(
        names[names.len() - 4..names.len() - 1],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done"
        ]
    );
    for (i, (_, event)) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], i, "{event}");
    }
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, e)| e["delta"].as_str().unwrap())
        .collect();
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], deltas.as_str());
    assert_eq!(done["usage"]["input_tokens"], 21);
    // A random model's bytes are often not UTF-8, which mistral.rs holds back: the text may be
    // empty, but the limit holds and the stream still ends.
    let output = done["usage"]["output_tokens"].as_u64().unwrap();
    assert!(output <= 6, "{}", done["usage"]);
    if terminal == "response.incomplete" {
        assert_eq!(done["incomplete_details"]["reason"], "max_output_tokens");
    }
}

#[test]
fn stored_responses_continue_and_are_retrieved_listed_and_deleted() {
    let t = support::tiny_server(&[]);
    let addr = t.server.addr;
    let first = post_json(
        addr,
        "/v1/responses",
        &json!({"model": "tiny", "input": "hi", "max_output_tokens": 4, "instructions": "be terse"}),
        &[],
    );
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json();
    let id = first["id"].as_str().unwrap();
    assert!(id.starts_with("resp_"));
    let got = get(addr, &format!("/v1/responses/{id}")).json();
    assert_eq!(got["id"], id);
    assert_eq!(got["output"], first["output"]);
    let items = get(addr, &format!("/v1/responses/{id}/input_items")).json();
    assert_eq!(items["data"][0]["content"][0]["text"], "hi");

    let next = post_json(
        addr,
        "/v1/responses",
        &json!({"model": "tiny", "input": "more", "previous_response_id": id, "max_output_tokens": 4}),
        &[],
    )
    .json();
    assert_eq!(next["previous_response_id"], id);
    // Alone, "more" is 23 tokens to the tiny model (one byte a token, and the template's
    // markers); after the first exchange (its "hi" turn, 10, and the answer's turn, 13 and up)
    // it is 46 or more. The first request's instructions are not carried over.
    let now = next["usage"]["input_tokens"].as_u64().unwrap();
    assert!(now >= 46, "the continuation read {now} tokens: {next}");

    let deleted = send(addr, "DELETE", &format!("/v1/responses/{id}"), &[], b"");
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["deleted"], true);
    assert_eq!(get(addr, &format!("/v1/responses/{id}")).status, 404);
    let orphan = post_json(
        addr,
        "/v1/responses",
        &json!({"model": "tiny", "input": "x", "previous_response_id": id}),
        &[],
    );
    assert_eq!(orphan.status, 404);
    assert_eq!(orphan.json()["error"]["code"], "response_not_found");

    let unstored = post_json(
        addr,
        "/v1/responses",
        &json!({"model": "tiny", "input": "hi", "max_output_tokens": 2, "store": false}),
        &[],
    )
    .json();
    assert_eq!(unstored["store"], false);
    let unstored_id = unstored["id"].as_str().unwrap();
    assert_eq!(
        get(addr, &format!("/v1/responses/{unstored_id}")).status,
        404
    );
}

#[test]
fn forced_tool_calls_come_back_in_each_api_s_own_items() {
    let t = support::tiny_server(&[]);
    let addr = t.server.addr;
    // Even a random model calls the tool when the call is a grammar.
    let called = post_json(
        addr,
        "/v1/responses",
        &json!({"model": "tiny", "input": "weather?", "max_output_tokens": 600,
                "tools": [{"type": "function", "name": "get_weather", "parameters": weather_tool_schema()},
                          {"type": "custom", "name": "apply_patch", "description": "edits files"},
                          {"type": "web_search"}, {"type": "local_shell"}],
                "tool_choice": {"type": "function", "name": "get_weather"}}),
        &[],
    );
    assert_eq!(called.status, 200, "{}", called.text());
    let called = called.json();
    let call = &called["output"][0];
    assert_eq!(call["type"], "function_call", "{called}");
    assert_eq!(call["name"], "get_weather");
    assert!(call["call_id"].as_str().unwrap().starts_with("call_"));
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(
        ["Oslo", "Lima"].contains(&arguments["city"].as_str().unwrap()),
        "{arguments}"
    );

    let answered = post_json(
        addr,
        "/v1/responses",
        &json!({"model": "tiny", "previous_response_id": called["id"], "max_output_tokens": 4,
                "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]}),
        &[],
    );
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert_eq!(answered.json()["output"][0]["type"], "message");

    let message = post_json(
        addr,
        "/v1/messages",
        &json!({"model": "tiny", "max_tokens": 600,
                "messages": [{"role": "user", "content": "weather?"}],
                "tools": [{"name": "get_weather", "input_schema": weather_tool_schema()}],
                "tool_choice": {"type": "any"}}),
        &[],
    );
    assert_eq!(message.status, 200, "{}", message.text());
    let message = message.json();
    assert_eq!(message["stop_reason"], "tool_use", "{message}");
    let tool_use = message["content"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(tool_use["type"], "tool_use");
    assert_eq!(tool_use["name"], "get_weather");
    assert!(["Oslo", "Lima"].contains(&tool_use["input"]["city"].as_str().unwrap()));
    let result = post_json(
        addr,
        "/v1/messages",
        &json!({"model": "tiny", "max_tokens": 4, "tools": [{"name": "get_weather", "input_schema": weather_tool_schema()}],
                "messages": [{"role": "user", "content": "weather?"},
                             {"role": "assistant", "content": [tool_use]},
                             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": "sunny"}]}]}),
        &[],
    );
    assert_eq!(result.status, 200, "{}", result.text());
}

#[test]
fn a_streamed_message_follows_anthropic_s_event_order() {
    let t = support::tiny_server(&[]);
    let answer = post_json(
        t.server.addr,
        "/v1/messages",
        &json!({"model": "tiny", "max_tokens": 5, "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
        &[("anthropic-version", "2023-06-01")],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let events: Vec<(String, Value)> = answer
        .named_events()
        .into_iter()
        .filter(|(n, _)| n != "ping")
        .collect();
    let names = names(&events);
    assert_eq!(names[0], "message_start");
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 21);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    let stop = &events[events.len() - 2].1;
    assert!(["end_turn", "max_tokens"].contains(&stop["delta"]["stop_reason"].as_str().unwrap()));
    let output = stop["usage"]["output_tokens"].as_u64().unwrap();
    assert!(output <= 5, "{stop}");
    if names.contains(&"content_block_delta") {
        assert_eq!(names[1], "content_block_start");
        assert_eq!(names[names.len() - 3], "content_block_stop");
        assert!(events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .all(|(_, e)| e["index"] == 0 && e["delta"]["type"] == "text_delta"));
    }
}

#[test]
fn every_endpoint_refuses_a_prompt_too_long_in_its_own_way_and_clamps_long_answers() {
    let t = support::tiny_server(&[]);
    let addr = t.server.addr;
    let long = "ab".repeat(1500);
    // Responses, streamed: the stream carries the failure, with OpenAI's code.
    let streamed = post_json(
        addr,
        "/v1/responses",
        &json!({"model": "tiny", "input": long, "stream": true}),
        &[],
    );
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    let events = streamed.named_events();
    assert_eq!(names(&events).first(), Some(&"response.created"));
    let (name, failed) = events.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(
        failed["response"]["error"]["code"],
        "context_length_exceeded"
    );
    // Anthropic, streamed: an HTTP 400 before the stream, in Anthropic's words.
    let refused = post_json(
        addr,
        "/v1/messages",
        &json!({"model": "tiny", "max_tokens": 32000, "stream": true,
                "messages": [{"role": "user", "content": long}]}),
        &[],
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("prompt is too long"));

    // An output limit past the context ends where the context does: 2,048 tokens in all.
    let prompt = "ab".repeat(995);
    let clamped = post_json(
        addr,
        "/v1/chat/completions",
        &json!({"model": "tiny", "max_tokens": 32000, "logit_bias": {"258": -100},
                "messages": [{"role": "user", "content": prompt}]}),
        &[],
    );
    assert_eq!(clamped.status, 200, "{}", clamped.text());
    let clamped = clamped.json();
    assert_eq!(clamped["choices"][0]["finish_reason"], "length");
    let usage = &clamped["usage"];
    assert_eq!(
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap(),
        2048,
        "{usage}"
    );
    let message = post_json(
        addr,
        "/v1/messages",
        &json!({"model": "tiny", "max_tokens": 32000, "messages": [{"role": "user", "content": prompt}]}),
        &[],
    )
    .json();
    let used = message["usage"]["input_tokens"].as_u64().unwrap()
        + message["usage"]["output_tokens"].as_u64().unwrap();
    assert!(used <= 2048, "{message}");
    if message["stop_reason"] == "max_tokens" {
        assert_eq!(used, 2048, "{message}");
    }
    assert_eq!(get(addr, "/health").status, 200, "the server keeps serving");
}

#[test]
fn count_tokens_counts_what_the_message_reads_and_a_leaving_client_cancels() {
    let t = support::tiny_server(&[]);
    let addr = t.server.addr;
    let body = json!({"model": "tiny", "max_tokens": 3, "system": "be terse",
                      "messages": [{"role": "user", "content": "hello there"}]});
    let counted = post_json(addr, "/v1/messages/count_tokens", &body, &[]).json();
    let answered = post_json(addr, "/v1/messages", &body, &[]).json();
    assert_eq!(counted["input_tokens"], answered["usage"]["input_tokens"]);

    let stream_body = json!({"model": "tiny", "input": "hi", "stream": true,
                             "max_output_tokens": 1900, "temperature": 1.0});
    // The random model can end its answer at its first token, before the client has left
    // (the Responses API takes no logit_bias to forbid that): a few tries.
    let needle = "client disconnected; generation cancelled";
    let mut left_id = None;
    for _ in 0..4 {
        let cancelled_before = t.server.log().matches(needle).count();
        let mut stream = http::open(
            addr,
            "POST",
            "/v1/responses",
            &[],
            stream_body.to_string().as_bytes(),
        );
        let id = {
            let mut reader = BufReader::new(&mut stream);
            let (status, _) = http::read_head(&mut reader);
            assert_eq!(status, 200);
            let first = http::read_chunk(&mut reader).expect("a first event");
            assert!(first.starts_with(b"event: response.created"));
            let first = String::from_utf8_lossy(&first).into_owned();
            let at = first.find("\"id\":\"resp_").expect("the response's id") + 6;
            first[at..at + first[at..].find('"').unwrap()].to_string()
        };
        drop(stream);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline
            && t.server.log().matches(needle).count() == cancelled_before
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if t.server.log().matches(needle).count() > cancelled_before {
            left_id = Some(id);
            break;
        }
    }
    let left_id = left_id.unwrap_or_else(|| panic!("no cancellation logged:\n{}", t.server.log()));
    // Half an answer is not stored: a continuation would take it for whole.
    assert_eq!(get(addr, &format!("/v1/responses/{left_id}")).status, 404);
    let after = post_json(addr, "/v1/messages", &body, &[]);
    assert_eq!(after.status, 200, "the server keeps serving");
}

#[test]
fn anthropic_clients_authenticate_with_x_api_key() {
    let t = support::tiny_server(&["--api-key", "k1"]);
    let addr = t.server.addr;
    let body =
        json!({"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]});
    let ok = post_json(addr, "/v1/messages", &body, &[("x-api-key", "k1")]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let wrong = post_json(addr, "/v1/messages", &body, &[("x-api-key", "k2")]);
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["type"], "authentication_error");
    let responses = post_json(
        addr,
        "/v1/responses",
        &json!({"model": "tiny", "input": "hi"}),
        &[],
    );
    assert_eq!(responses.status, 401);
    assert_eq!(responses.json()["error"]["code"], "invalid_api_key");
}
