"""The official `openai` Python SDK, unmodified, against a running porten.

Env: PORTEN_BASE_URL, PORTEN_API_KEY, PORTEN_CHAT_MODEL, PORTEN_EMBED_MODEL.
"""
import os

import openai
import pytest

BASE_URL = os.environ["PORTEN_BASE_URL"]
CHAT = os.environ["PORTEN_CHAT_MODEL"]
EMBED = os.environ["PORTEN_EMBED_MODEL"]
ASK = [{"role": "user", "content": "Name the planet we live on."}]


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key=os.environ["PORTEN_API_KEY"], max_retries=0)


def test_chat(client):
    r = client.chat.completions.create(model=CHAT, messages=ASK, temperature=0, max_tokens=20)
    assert r.object == "chat.completion"
    assert "earth" in r.choices[0].message.content.lower()
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model=CHAT, messages=ASK, temperature=0, max_tokens=20, stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, roles = "", None, None, []
    for chunk in stream:
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
            if c.delta.role:
                roles.append(c.delta.role)
        usage = chunk.usage or usage
    assert "earth" in text.lower()
    assert roles == ["assistant"]
    assert finish in ("stop", "length")
    assert usage.completion_tokens > 0


def test_completions(client):
    r = client.completions.create(model=CHAT, prompt="The capital of France is", max_tokens=5, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text


def test_embeddings_default_base64_and_float(client):
    # The SDK asks for base64 by default and decodes it itself.
    r = client.embeddings.create(model=EMBED, input=["hello", "world"])
    floats = client.embeddings.create(model=EMBED, input=["hello", "world"], encoding_format="float")
    assert [d.index for d in r.data] == [0, 1]
    assert len(r.data[0].embedding) == len(floats.data[0].embedding) > 0
    assert r.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-5)
    assert r.usage.prompt_tokens > 0


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert CHAT in ids and EMBED in ids
    assert client.models.retrieve(CHAT).id == CHAT


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=ASK)
    assert e.value.code == "model_not_found"


def test_invalid_field_is_bad_request_naming_it(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=CHAT, messages=ASK, temperature=9)
    assert e.value.param == "temperature"


def test_embedding_model_refuses_chat(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=EMBED, messages=ASK)


def test_wrong_key_is_authentication_error():
    wrong = openai.OpenAI(base_url=BASE_URL, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
