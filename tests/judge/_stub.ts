/**
 * An OpenAI-compatible chat-completions stub on 127.0.0.1 (ephemeral port) for the judge's
 * tests: each request is recorded and answered by a scripted function of its index.
 */

/** A request the stub received. */
export interface StubRequest {
  path: string;
  authorization: string | null;
  body: { model: string; messages: { role: string; content: string }[]; temperature: number };
}

/** What the stub answers: a reply text (finish_reason "stop"), or a full response. */
export type StubAnswer = string | { content: string; finishReason: string | null } | Response;

/** A chat-completions body as OpenAI writes it. */
export function completion(content: string, finishReason: string | null = "stop"): Response {
  return Response.json({
    id: "chatcmpl-stub",
    object: "chat.completion",
    created: 0,
    model: "stub",
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: finishReason }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });
}

/** Starts the stub; `answer(i, request)` scripts the i-th reply (0-based). */
export function startStub(
  answer: (i: number, request: StubRequest) => StubAnswer | Promise<StubAnswer>,
): {
  baseUrl: string;
  requests: StubRequest[];
  close: () => Promise<void>;
} {
  const requests: StubRequest[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const request: StubRequest = {
        path: new URL(req.url).pathname,
        authorization: req.headers.get("authorization"),
        body: await req.json(),
      };
      const i = requests.length;
      requests.push(request);
      const a = await answer(i, request);
      if (a instanceof Response) return a;
      if (typeof a === "string") return completion(a);
      return completion(a.content, a.finishReason);
    },
  );
  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}/v1`,
    requests,
    close: () => server.shutdown(),
  };
}
