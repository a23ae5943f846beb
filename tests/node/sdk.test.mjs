// The official `openai` npm SDK, unmodified, against a running porten.
// Env: PORTEN_BASE_URL, PORTEN_API_KEY, PORTEN_CHAT_MODEL, PORTEN_EMBED_MODEL.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set`);
  return value;
};
const client = new OpenAI({ baseURL: env("PORTEN_BASE_URL"), apiKey: env("PORTEN_API_KEY"), maxRetries: 0 });
const chatModel = env("PORTEN_CHAT_MODEL");
const embedModel = env("PORTEN_EMBED_MODEL");
const ask = [{ role: "user", content: "Name the planet we live on." }];

test("chat completion", async () => {
  const r = await client.chat.completions.create({ model: chatModel, messages: ask, temperature: 0, max_tokens: 20 });
  assert.equal(r.object, "chat.completion");
  assert.match(r.choices[0].message.content.toLowerCase(), /earth/);
  assert.ok(r.usage.completion_tokens > 0);
});

test("streaming chat with usage", async () => {
  const stream = await client.chat.completions.create({
    model: chatModel, messages: ask, temperature: 0, max_tokens: 20, stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.delta.content ?? "";
      finish = c.finish_reason ?? finish;
    }
    usage = chunk.usage ?? usage;
  }
  assert.match(text.toLowerCase(), /earth/);
  assert.ok(["stop", "length"].includes(finish));
  assert.ok(usage.completion_tokens > 0);
});

test("completions", async () => {
  const r = await client.completions.create({ model: chatModel, prompt: "The capital of France is", max_tokens: 5, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.ok(r.choices[0].text.length > 0);
});

test("embeddings", async () => {
  const r = await client.embeddings.create({ model: embedModel, input: ["hello", "world"] });
  assert.equal(r.data.length, 2);
  assert.ok(r.data[0].embedding.length > 0);
  assert.notDeepEqual(r.data[0].embedding, r.data[1].embedding);
});

test("models", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes(chatModel) && ids.includes(embedModel));
  const one = await client.models.retrieve(chatModel);
  assert.equal(one.id, chatModel);
});

test("unknown model is a NotFoundError", async () => {
  await assert.rejects(client.chat.completions.create({ model: "no-such-model", messages: ask }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, e.constructor.name);
    assert.equal(e.code, "model_not_found");
    return true;
  });
});

test("invalid field is a BadRequestError naming the param", async () => {
  await assert.rejects(client.chat.completions.create({ model: chatModel, messages: ask, temperature: 9 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, e.constructor.name);
    assert.equal(e.param, "temperature");
    return true;
  });
});

test("wrong key is an AuthenticationError", async () => {
  const wrong = new OpenAI({ baseURL: env("PORTEN_BASE_URL"), apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
});
