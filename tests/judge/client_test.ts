import assert from "node:assert/strict";
import { ChatClient, type ChatClientOptions, ChatError } from "../../src/judge/client.ts";
import { startStub, type StubAnswer } from "./_stub.ts";

const CHAT = [{ role: "user" as const, content: "Which story?" }];

/** A client against a scripted stub; waits are recorded, not slept. */
function setup(
  answer: (i: number) => StubAnswer | Promise<StubAnswer>,
  o: Partial<ChatClientOptions> = {},
) {
  const stub = startStub(answer);
  const waits: number[] = [];
  const logs: string[] = [];
  const client = new ChatClient({
    baseUrl: stub.baseUrl,
    apiKey: "sk-test",
    model: "judge-model",
    sleep: (ms) => {
      waits.push(ms);
      return Promise.resolve();
    },
    log: (line) => logs.push(line),
    ...o,
  });
  return { stub, client, waits, logs };
}

Deno.test("ChatClient.complete() posts the model, the chat and temperature 0 with the Bearer key", async () => {
  const { stub, client, waits } = setup(() => "  Winner: Story 1\n");
  const answer = await client.complete(CHAT);
  assert.deepEqual(answer, { content: "Winner: Story 1", finishReason: "stop", attempts: 1 });
  assert.equal(stub.requests.length, 1);
  assert.equal(stub.requests[0].path, "/v1/chat/completions");
  assert.equal(stub.requests[0].authorization, "Bearer sk-test");
  assert.deepEqual(stub.requests[0].body, { model: "judge-model", messages: CHAT, temperature: 0 });
  assert.deepEqual(waits, []);
  await stub.close();
});

Deno.test("ChatClient.complete() waits as a 429's Retry-After header or 'retry after N' message asks", async () => {
  const { stub, client, waits, logs } = setup((i) => {
    if (i === 0) {
      return Response.json({ error: { message: "Slow down" } }, {
        status: 429,
        headers: { "retry-after": "3" },
      });
    }
    if (i === 1) {
      return Response.json({
        error: { message: "Rate limit is exceeded. Please retry after 7 seconds." },
      }, { status: 429 });
    }
    if (i === 2) return new Response("Too many requests: retry after 11", { status: 429 });
    return "Winner: None";
  });
  const answer = await client.complete(CHAT);
  assert.equal(answer.content, "Winner: None");
  assert.equal(answer.attempts, 4);
  assert.deepEqual(waits, [3000, 7000, 11000]);
  assert.match(
    logs[1],
    /^judge: attempt 2 failed \(HTTP 429 from .*Please retry after 7 seconds\.\); retrying in 7 s$/,
  );
  await stub.close();
});

Deno.test("ChatClient.complete() retries a 500 with exponential backoff capped at backoffMaxMs", async () => {
  const { stub, client, waits } = setup(
    (i) => (i < 4 ? new Response("upstream failed", { status: 500 + i }) : "Winner: Story 2"),
    { backoffBaseMs: 10, backoffMaxMs: 50 },
  );
  const answer = await client.complete(CHAT);
  assert.equal(answer.content, "Winner: Story 2");
  assert.deepEqual(waits, [10, 20, 40, 50]);
  assert.equal(stub.requests.length, 5);
  await stub.close();
});

Deno.test("ChatClient.complete() accepts finish_reason length with a warning and retries other reasons", async () => {
  const { stub, client, waits, logs } = setup((i) =>
    i === 0
      ? { content: "Winner: Story", finishReason: "content_filter" }
      : i === 1
      ? { content: "x", finishReason: null }
      : { content: "Winner: Story 1 is cut", finishReason: "length" }
  );
  const answer = await client.complete(CHAT);
  assert.deepEqual(answer, {
    content: "Winner: Story 1 is cut",
    finishReason: "length",
    attempts: 3,
  });
  assert.equal(waits.length, 2);
  assert.match(logs[0], /finish_reason is "content_filter", not "stop" or "length"/);
  assert.match(logs[1], /finish_reason is null/);
  assert.match(logs[2], /reached max tokens/);
  await stub.close();
});

Deno.test("ChatClient.complete() fails at once on a 401 and names the server's message", async () => {
  const { stub, client, waits } = setup(() =>
    Response.json({ error: { message: "Incorrect API key provided" } }, { status: 401 })
  );
  await assert.rejects(
    client.complete(CHAT),
    (e: Error) =>
      e instanceof ChatError &&
      /^HTTP 401 from http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions: Incorrect API key provided$/
        .test(e.message),
  );
  assert.equal(stub.requests.length, 1);
  assert.deepEqual(waits, []);
  await stub.close();
});

Deno.test("ChatClient.complete() gives up after maxAttempts failures", async () => {
  const { stub, client, waits } = setup(
    () => new Response("<html>bad gateway</html>", { status: 502 }),
    {
      maxAttempts: 3,
    },
  );
  await assert.rejects(
    client.complete(CHAT),
    /^ChatError: The judge gave up after 3 attempts: HTTP 502 from .*: <html>bad gateway<\/html>$/,
  );
  assert.equal(stub.requests.length, 3);
  assert.equal(waits.length, 2);
  await stub.close();
});

Deno.test("ChatClient.complete() retries a malformed body, a timeout and a refused connection", async () => {
  let release = () => {};
  const { stub, client, logs } = setup((i) => {
    if (i === 0) return new Response("not json", { status: 200 });
    if (i === 1) return new Promise<StubAnswer>((r) => (release = () => r("late")));
    return "Winner: Story 2";
  }, { timeoutMs: 200 });
  assert.equal((await client.complete(CHAT)).content, "Winner: Story 2");
  assert.match(logs[0], /malformed answer/);
  assert.match(logs[1], /no answer within 0\.2 s/);
  release();
  await stub.close();

  // Nothing listens on the port any more: a network error, retried until attempts run out.
  const waits: number[] = [];
  const closed = new ChatClient({
    baseUrl: stub.baseUrl,
    apiKey: "k",
    model: "m",
    maxAttempts: 2,
    sleep: (ms) => (waits.push(ms), Promise.resolve()),
    log: () => {},
  });
  await assert.rejects(closed.complete(CHAT), /gave up after 2 attempts: network error/);
  assert.equal(waits.length, 1);
});

Deno.test("ChatClient.complete() stops waiting when its signal aborts", async () => {
  const stub = startStub(() => new Response("busy", { status: 503 }));
  const controller = new AbortController();
  const client = new ChatClient({
    baseUrl: stub.baseUrl,
    apiKey: "k",
    model: "m",
    backoffBaseMs: 60_000,
    signal: controller.signal,
    log: () => controller.abort(new Error("Interrupted by SIGINT")),
  });
  await assert.rejects(client.complete(CHAT), /^Error: Interrupted by SIGINT$/);
  assert.equal(stub.requests.length, 1);
  await stub.close();
});

Deno.test("ChatClient.complete() fails at once without network permission for the host", async () => {
  const waits: number[] = [];
  const client = new ChatClient({
    baseUrl: "http://192.0.2.1:8000/v1", // not in the test permissions (127.0.0.1 only)
    apiKey: "k",
    model: "m",
    sleep: (ms) => (waits.push(ms), Promise.resolve()),
    log: () => {},
  });
  await assert.rejects(
    client.complete(CHAT),
    (e: Error) =>
      e instanceof ChatError && /192\.0\.2\.1:8000.*\(run with --allow-net=HOST\)$/.test(e.message),
  );
  assert.deepEqual(waits, []);
});
