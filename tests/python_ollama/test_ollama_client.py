"""The official `ollama` Python client, unmodified, against porten's /api routes.

Env: OLLAMA_HOST (porten's address), PORTEN_API_KEY, PORTEN_CHAT_MODEL (SmolLM2),
PORTEN_TINY_MODEL (tiny random chat model), PORTEN_EMBED_MODEL (tiny embedding model),
PORTEN_MIRROR_MODEL (a model only the team mirror has at start).
"""

import json
import os

import ollama
import pytest

CHAT = os.environ["PORTEN_CHAT_MODEL"]
TINY = os.environ["PORTEN_TINY_MODEL"]
EMBED = os.environ["PORTEN_EMBED_MODEL"]
MIRRORED = os.environ["PORTEN_MIRROR_MODEL"]


@pytest.fixture(scope="module")
def client():
    return ollama.Client(
        host=os.environ["OLLAMA_HOST"],
        headers={"Authorization": f"Bearer {os.environ['PORTEN_API_KEY']}"},
    )


def names(client):
    return [m.model for m in client.list().models]


def test_list_names_every_model_with_its_details(client):
    models = {m.model: m for m in client.list().models}
    assert f"{CHAT}:latest" in models, models
    smollm2 = models[f"{CHAT}:latest"]
    assert smollm2.details.format == "gguf"
    assert smollm2.details.family == "llama"
    assert smollm2.details.quantization_level == "Q4_1"
    assert smollm2.details.parameter_size.endswith("M")
    assert smollm2.size > 50_000_000
    assert len(smollm2.digest) == 64
    assert smollm2.modified_at is not None


def test_show_gives_model_info_capabilities_and_the_template(client):
    shown = client.show(CHAT)
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.context_length"] == 8192
    assert "completion" in shown.capabilities and "tools" in shown.capabilities
    assert "im_start" in shown.template
    assert "embedding" in client.show(EMBED).capabilities


def test_chat_answers_and_reports_its_durations(client):
    answer = client.chat(
        model=CHAT,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        options={"temperature": 0, "num_predict": 24},
        stream=False,
    )
    assert answer.message.role == "assistant"
    assert answer.message.content.strip()
    assert answer.done and answer.done_reason in ("stop", "length")
    assert answer.prompt_eval_count > 5 and 0 < answer.eval_count <= 24
    assert answer.total_duration >= answer.eval_duration > 0


def test_chat_streams_one_piece_a_line_then_the_last_line(client):
    parts = list(
        client.chat(
            model=CHAT,
            messages=[{"role": "user", "content": "Name three colours."}],
            options={"temperature": 0, "num_predict": 16},
            stream=True,
        )
    )
    assert len(parts) > 3
    assert all(not p.done for p in parts[:-1])
    last = parts[-1]
    assert last.done and last.eval_count == 16 and last.done_reason == "length"
    assert "".join(p.message.content for p in parts).strip()


def test_ps_shows_the_loaded_model_with_its_memory(client):
    client.generate(model=CHAT, prompt="Hi", options={"num_predict": 1})
    running = {m.model: m for m in client.ps().models}
    assert f"{CHAT}:latest" in running, running
    model = running[f"{CHAT}:latest"]
    assert model.size > 50_000_000
    assert model.size_vram == 0  # a CPU build
    assert model.expires_at is not None


def test_a_tool_call_comes_back_with_object_arguments(client):
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "enum": ["Oslo", "Lima"]}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
    # A random model calls a tool only when its output is held to the call's JSON.
    call = {
        "type": "object",
        "properties": {
            "name": {"const": "get_weather"},
            "arguments": tool["function"]["parameters"],
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }
    answer = client.chat(
        model=TINY,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[tool],
        format=call,
        options={"num_predict": 64},
    )
    calls = answer.message.tool_calls
    assert calls, answer
    assert calls[0].function.name == "get_weather"
    assert isinstance(calls[0].function.arguments, dict)
    assert calls[0].function.arguments["city"] in ("Oslo", "Lima")
    again = client.chat(
        model=TINY,
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            answer.message,
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        ],
        options={"num_predict": 4},
    )
    assert again.done


def test_generate_with_a_schema_answers_matching_json(client):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
    }
    answer = client.generate(
        model=TINY, prompt="Pick a number.", format=schema, options={"num_predict": 40}
    )
    value = json.loads(answer.response)
    assert isinstance(value["answer"], int)
    assert answer.done_reason == "stop"


def test_embed_gives_one_vector_per_input_even_for_one_character(client):
    result = client.embed(model=EMBED, input=["x", "a longer sentence to embed"])
    assert len(result.embeddings) == 2
    assert len(result.embeddings[0]) == len(result.embeddings[1]) > 0
    assert result.embeddings[0] != result.embeddings[1]
    legacy = client.embeddings(model=EMBED, prompt="x")
    assert len(legacy.embedding) == len(result.embeddings[0])


def test_pull_from_the_mirror_reports_progress_then_serves_the_model(client):
    assert f"{MIRRORED}:latest" in names(client)
    lines = list(client.pull(MIRRORED, stream=True))
    statuses = [line.status for line in lines]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success", statuses
    counted = [line for line in lines if line.total]
    assert counted and counted[-1].completed == counted[-1].total, lines
    answer = client.generate(model=MIRRORED, prompt="hi", options={"num_predict": 2})
    assert answer.done
    # Pulling what the store has already checks it again and succeeds.
    assert client.pull(MIRRORED).status == "success"


def test_copy_then_delete_and_a_loaded_model_is_not_deleted(client):
    client.copy(TINY, "tiny-copy")
    assert "tiny-copy:latest" in names(client)
    assert client.generate(model="tiny-copy", prompt="hi", options={"num_predict": 2}).done
    client.generate(model="tiny-copy", prompt="", keep_alive=0)
    client.delete("tiny-copy")
    assert "tiny-copy:latest" not in names(client)
    assert f"{TINY}:latest" in names(client)
    client.generate(model=CHAT, prompt="", keep_alive="5m")
    with pytest.raises(ollama.ResponseError) as refused:
        client.delete(CHAT)
    assert refused.value.status_code == 409
    assert "loaded" in refused.value.error


def test_unknown_models_and_unsupported_routes_are_response_errors(client):
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert missing.value.status_code == 404
    assert "not found" in missing.value.error
    with pytest.raises(ollama.ResponseError) as push:
        client.push(CHAT)
    assert push.value.status_code == 501
    assert "mirror" in push.value.error


def test_an_empty_prompt_loads_and_keep_alive_zero_unloads(client):
    loaded = client.generate(model=TINY, prompt="")
    assert loaded.done_reason == "load"
    assert f"{TINY}:latest" in [m.model for m in client.ps().models]
    unloaded = client.generate(model=TINY, prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert f"{TINY}:latest" not in [m.model for m in client.ps().models]
