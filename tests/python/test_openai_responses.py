"""The official `openai` Python SDK's Responses API, unmodified, against a running porten.

Env: PORTEN_BASE_URL, PORTEN_API_KEY, PORTEN_CHAT_MODEL (SmolLM2).
"""
import json
import os

import openai
import pytest

BASE_URL = os.environ["PORTEN_BASE_URL"]
CHAT = os.environ["PORTEN_CHAT_MODEL"]
ASK = "Name the planet we live on."
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key=os.environ["PORTEN_API_KEY"], max_retries=0)


def test_create(client):
    r = client.responses.create(model=CHAT, input=ASK, temperature=0, max_output_tokens=30)
    assert r.object == "response"
    assert r.status == "completed"
    assert "earth" in r.output_text.lower()
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


def test_stream_events_in_order(client):
    stream = client.responses.create(
        model=CHAT, input=ASK, instructions="Answer in one sentence.", temperature=0,
        max_output_tokens=30, stream=True,
    )
    kinds, text, numbers, final = [], "", [], None
    for event in stream:
        kinds.append(event.type)
        numbers.append(event.sequence_number)
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type in ("response.completed", "response.incomplete"):
            final = event.response
    assert kinds[:4] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
    ]
    assert kinds[-4:-1] == [
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
    ]
    assert kinds[-1] == "response.completed"
    assert numbers == list(range(len(numbers)))
    assert "earth" in text.lower()
    assert final.output_text == text


def test_stream_helper_accumulates(client):
    with client.responses.stream(model=CHAT, input=ASK, temperature=0, max_output_tokens=30) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert "earth" in final.output_text.lower()


def test_function_tool_round_trip(client):
    first = client.responses.create(
        model=CHAT, input="What is the weather in Paris?", tools=[WEATHER],
        tool_choice="required", temperature=0, max_output_tokens=60,
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    second = client.responses.create(
        model=CHAT, previous_response_id=first.id, tools=[WEATHER], temperature=0,
        max_output_tokens=40,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "Sunny and 21 degrees."}],
    )
    assert second.status in ("completed", "incomplete")
    assert second.previous_response_id == first.id
    assert second.output_text


def test_json_schema_format_stops_when_complete(client):
    r = client.responses.create(
        model=CHAT, input="Give the name of the planet we live on as JSON.", temperature=0,
        max_output_tokens=200,
        text={"format": {"type": "json_schema", "name": "planet", "strict": True, "schema": {
            "type": "object", "properties": {"name": {"type": "string", "maxLength": 40}},
            "required": ["name"], "additionalProperties": False}}},
    )
    assert r.status == "completed", r.incomplete_details
    assert isinstance(json.loads(r.output_text)["name"], str)
    assert r.usage.output_tokens < 200


def test_retrieve_and_delete(client):
    created = client.responses.create(model=CHAT, input=ASK, temperature=0, max_output_tokens=10)
    got = client.responses.retrieve(created.id)
    assert got.id == created.id and got.output_text == created.output_text
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_unknown_id_is_not_found(client):
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_does_not_exist")
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=CHAT, input="hi", previous_response_id="resp_gone")


def test_a_custom_tool_call_comes_back_as_a_custom_tool_call(client):
    r = client.responses.create(
        model=CHAT, input="Shout the word hello.", temperature=0, max_output_tokens=300,
        tools=[{"type": "custom", "name": "shout", "description": "Says a short text loudly."}],
        tool_choice={"type": "custom", "name": "shout"},
    )
    calls = [item for item in r.output if item.type == "custom_tool_call"]
    assert calls, r.output
    assert calls[0].name == "shout" and isinstance(calls[0].input, str)
