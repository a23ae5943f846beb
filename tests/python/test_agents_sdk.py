"""The OpenAI Agents SDK (`openai-agents`) with its default model class, which speaks the
Responses API, unmodified, against a running porten.

Env: PORTEN_BASE_URL, PORTEN_API_KEY, PORTEN_CHAT_MODEL (SmolLM2), PORTEN_TINY_MODEL (a tiny
random model: it calls the tool because the call is forced, and answers whatever it answers).
"""
import asyncio
import os

from agents import (Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool,
                    set_tracing_disabled)
from openai import AsyncOpenAI

set_tracing_disabled(True)

CALLS = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CALLS.append(city)
    return f"Sunny in {city}."


def model(name):
    # A client per agent: an async client belongs to the event loop it first ran on, and each
    # run below has a loop of its own.
    client = AsyncOpenAI(base_url=os.environ["PORTEN_BASE_URL"],
                         api_key=os.environ["PORTEN_API_KEY"], max_retries=0)
    return OpenAIResponsesModel(model=name, openai_client=client)


def test_an_agent_answers_on_smollm2():
    agent = Agent(name="planets", instructions="You are a helpful assistant. Answer in one short sentence.",
                  model=model(os.environ["PORTEN_CHAT_MODEL"]),
                  model_settings=ModelSettings(temperature=0, max_tokens=30))
    result = Runner.run_sync(agent, "Name the planet we live on.")
    assert "earth" in result.final_output.lower()


def test_an_agent_calls_a_function_tool_and_answers_on_the_tiny_model():
    CALLS.clear()
    agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather],
                  model=model(os.environ["PORTEN_TINY_MODEL"]),
                  model_settings=ModelSettings(tool_choice="get_weather", max_tokens=400))
    result = Runner.run_sync(agent, "What is the weather?", max_turns=4)
    assert len(CALLS) >= 1 and isinstance(CALLS[0], str)
    kinds = [item.type for item in result.new_items]
    assert "tool_call_item" in kinds and "tool_call_output_item" in kinds
    assert isinstance(result.final_output, str)


def test_a_streamed_agent_run():
    agent = Agent(name="planets", instructions="You are a helpful assistant. Answer in one short sentence.",
                  model=model(os.environ["PORTEN_CHAT_MODEL"]),
                  model_settings=ModelSettings(temperature=0, max_tokens=30))

    async def run():
        streamed = Runner.run_streamed(agent, "Name the planet we live on.")
        deltas = []
        async for event in streamed.stream_events():
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                deltas.append(event.data.delta)
        return streamed.final_output, "".join(deltas)

    final, text = asyncio.run(run())
    assert "earth" in text.lower()
    assert final == text
