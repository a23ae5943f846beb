"""The official `anthropic` Python SDK, unmodified, against a running porten. Its 2.x
`messages.create` has no `temperature` argument; the API still takes one, sent as `extra_body`.

Env: PORTEN_BASE_URL (ending in /v1), PORTEN_API_KEY, PORTEN_CHAT_MODEL (SmolLM2).
"""
import os

import anthropic
import pytest

BASE_URL = os.environ["PORTEN_BASE_URL"].removesuffix("/v1")
CHAT = os.environ["PORTEN_CHAT_MODEL"]
ASK = [{"role": "user", "content": "Name the planet we live on."}]
GREEDY = {"temperature": 0}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def client():
    return anthropic.Anthropic(base_url=BASE_URL, api_key=os.environ["PORTEN_API_KEY"], max_retries=0)


def test_create(client):
    m = client.messages.create(model=CHAT, max_tokens=30, extra_body=GREEDY, messages=ASK)
    assert m.type == "message" and m.role == "assistant"
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert "earth" in m.content[0].text.lower()
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


def test_stream(client):
    with client.messages.stream(
        model=CHAT, max_tokens=30, extra_body=GREEDY, messages=ASK, system="Answer in one sentence.",
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "earth" in text.lower()
    assert final.content[0].text == text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.output_tokens > 0


def test_stop_sequence_is_reported(client):
    m = client.messages.create(
        model=CHAT, max_tokens=60, extra_body=GREEDY, stop_sequences=["5"],
        messages=[{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
    )
    assert m.stop_reason == "stop_sequence"
    assert m.stop_sequence == "5"
    assert "5" not in m.content[0].text


def test_tool_use_round_trip(client):
    first = client.messages.create(
        model=CHAT, max_tokens=60, extra_body=GREEDY, tools=[WEATHER], tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input["city"], str)
    second = client.messages.create(
        model=CHAT, max_tokens=40, extra_body=GREEDY, tools=[WEATHER],
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                          "content": "Sunny and 21 degrees."}]},
        ],
    )
    assert second.content and second.content[0].type == "text"


def test_count_tokens_matches_the_answer_s_input(client):
    counted = client.messages.count_tokens(model=CHAT, messages=ASK, system="Be brief.")
    answered = client.messages.create(model=CHAT, max_tokens=1, messages=ASK, system="Be brief.")
    assert counted.input_tokens == answered.usage.input_tokens > 0


def test_typed_errors():
    bad_key = anthropic.Anthropic(base_url=BASE_URL, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad_key.messages.create(model=CHAT, max_tokens=5, messages=ASK)
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=os.environ["PORTEN_API_KEY"], max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-nonexistent", max_tokens=5, messages=ASK)
    # The SDK requires max_tokens itself; a raw request without it is refused by porten.
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.post("/v1/messages", cast_to=object, body={"model": CHAT, "messages": ASK})
    assert "max_tokens" in str(refused.value)
    with pytest.raises(anthropic.BadRequestError) as too_long:
        client.messages.create(model=CHAT, max_tokens=5, messages=[
            {"role": "user", "content": "lorem ipsum " * 3000}])
    assert "prompt is too long" in str(too_long.value)
