/**
 * A chat-completions client for OpenAI and OpenAI-compatible servers (vLLM, llama.cpp's server,
 * Ollama, gateways) that survives real services, with the retry semantics of microsoft/BST's
 * `GPTJudge.retry_openai_func`:
 *
 * - `POST {baseUrl}/chat/completions` with `Authorization: Bearer {apiKey}`, the model, the
 *   messages and `temperature: 0`; every request has a timeout.
 * - Rate limits (429), timeouts (408 and the client's own), conflicts (409), server errors (5xx),
 *   network failures and malformed bodies are retried. A hint in the answer sets the wait:
 *   the `retry-after-ms` or `Retry-After` header, or "retry after N" ("Please retry after N
 *   seconds", as Azure OpenAI writes) or "try again in N s/ms" in the error message; otherwise
 *   the wait doubles from `backoffBaseMs` up to `backoffMaxMs`. Other HTTP errors (a wrong key,
 *   a wrong model or URL) fail at once: retrying cannot fix them.
 * - An answer whose `finish_reason` is neither `stop` nor `length` is retried, as the reference
 *   does; `length` is accepted with the reference's warning.
 * - After `maxAttempts` failed attempts (10,000 by default, as the reference) the call throws.
 *
 * Requires `--allow-net` for the server's host.
 *
 * @module
 */

import type { ChatMessage } from "./prompts.ts";

/** OpenAI's API, the default `baseUrl`. */
export const OPENAI_BASE_URL = "https://api.openai.com/v1";

/** Options of {@linkcode ChatClient}. */
export interface ChatClientOptions {
  /** The API root; requests go to `{baseUrl}/chat/completions`. Default {@linkcode OPENAI_BASE_URL}. */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer {apiKey}`. */
  apiKey: string;
  /** The model (the reference's `deployment_name`). */
  model: string;
  /** Per-request timeout in ms (default 120,000). */
  timeoutMs?: number;
  /** Attempts before giving up, failures counted (default 10,000, as the reference). */
  maxAttempts?: number;
  /** First wait between attempts without a hint, in ms (default 1,000); doubles each time. */
  backoffBaseMs?: number;
  /** Longest wait without a hint, in ms (default 60,000). */
  backoffMaxMs?: number;
  /** Longest wait a server's hint may ask for, in ms (default 600,000). */
  retryAfterMaxMs?: number;
  /** Aborts the call (Ctrl-C): the pending request or wait stops and the call throws. */
  signal?: AbortSignal;
  /** Waits `ms` (tests inject a fast clock). Default: a timer that `signal` cancels. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Receives one line per retry and warning (default: stderr). */
  log?: (line: string) => void;
}

/** What one successful call returns. */
export interface ChatAnswer {
  /** `choices[0].message.content`, stripped of surrounding whitespace. */
  content: string;
  /** `choices[0].finish_reason`: `stop` or `length`. */
  finishReason: string;
  /** Attempts this call took (1 when the first one succeeded). */
  attempts: number;
}

/** A failure that retrying cannot fix, or the last one once attempts ran out. */
export class ChatError extends Error {
  override name = "ChatError";
}

/** One failed attempt: why, and the wait the server asked for, if it did. */
interface Failure {
  reason: string;
  hintMs: number | null;
  retry: boolean;
}

const RETRY_STATUS = new Set([408, 409, 429]);

/**
 * The wait a server asks for, in ms: the `retry-after-ms` header, the `Retry-After` header
 * (seconds or an HTTP date), or "retry after N" / "try again in N s|ms" in `message`.
 *
 * @param headers The response headers, if there was a response.
 * @param message The error message (body text or the network error).
 * @param now The current time in ms since the epoch (for an HTTP date).
 * @returns The wait in ms, or `null` without a hint.
 *
 * @example
 * ```ts
 * import { retryHintMs } from "./client.ts";
 * console.log(retryHintMs(null, "Rate limit exceeded. Please retry after 7 seconds.")); // 7000
 * console.log(retryHintMs(new Headers({ "retry-after": "2" }), "")); // 2000
 * console.log(retryHintMs(null, "Rate limit reached. Please try again in 850ms.")); // 850
 * ```
 */
export function retryHintMs(
  headers: Headers | null,
  message: string,
  now: number = Date.now(),
): number | null {
  const ms = headers?.get("retry-after-ms");
  if (ms && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const after = headers?.get("retry-after");
  if (after) {
    if (/^\s*\d+(\.\d+)?\s*$/.test(after)) return Number(after) * 1000;
    const date = Date.parse(after);
    if (Number.isFinite(date)) return Math.max(0, date - now);
  }
  const m = /retry after\s+(\d+)/i.exec(message);
  if (m) return Number(m[1]) * 1000;
  const t = /try again in\s+(\d+(?:\.\d+)?)\s*(ms|s)\b/i.exec(message);
  if (t) return Number(t[1]) * (t[2].toLowerCase() === "ms" ? 1 : 1000);
  return null;
}

/**
 * The wait before attempt `failures + 1`: the server's hint (capped at `hintMaxMs`), else
 * `baseMs · 2^(failures−1)` capped at `maxMs`.
 *
 * @example
 * ```ts
 * import { retryDelayMs } from "./client.ts";
 * console.log([1, 2, 3, 10].map((f) => retryDelayMs(f, null, 1000, 5000, 60000))); // [1000, 2000, 4000, 5000]
 * console.log(retryDelayMs(1, 30000, 1000, 5000, 60000)); // 30000
 * ```
 */
export function retryDelayMs(
  failures: number,
  hintMs: number | null,
  baseMs: number,
  maxMs: number,
  hintMaxMs: number,
): number {
  if (hintMs !== null) return Math.min(hintMs, hintMaxMs);
  return Math.min(baseMs * 2 ** Math.min(failures - 1, 52), maxMs);
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Python's whitespace (`str.isspace`), which `str.strip()` removes. */
const PY_SPACE =
  "[\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const PY_STRIP = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, "g");

/**
 * Python's `str.strip()`: JavaScript's `trim()` differs on U+001C–U+001F, U+0085 and U+FEFF.
 *
 * @example
 * ```ts
 * import { pythonStrip } from "./client.ts";
 * console.log(JSON.stringify(pythonStrip("\ufeff Winner: None\x85 "))); // "\ufeff Winner: None"
 * ```
 */
export function pythonStrip(text: string): string {
  return text.replace(PY_STRIP, "");
}

/** One line, at most `n` characters: server messages can be long HTML pages. */
function oneLine(text: string, n = 200): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > n ? `${line.slice(0, n - 1)}…` : line;
}

/** The error message of an OpenAI-style error body, else the body itself. */
function errorMessage(body: string): string {
  try {
    const json = JSON.parse(body);
    const message = json?.error?.message ?? json?.message ?? json?.error;
    if (typeof message === "string") return message;
  } catch {
    // not JSON: the text itself
  }
  return body;
}

/**
 * Chat completions with timeouts and the reference's retries.
 *
 * @example Against a local OpenAI-compatible server
 * ```ts ignore
 * import { ChatClient } from "./client.ts";
 * const client = new ChatClient({
 *   baseUrl: "http://127.0.0.1:8000/v1", apiKey: "none", model: "my-judge",
 * });
 * const answer = await client.complete([{ role: "user", content: "Say hi" }]);
 * console.log(answer.content, answer.finishReason);
 * ```
 */
export class ChatClient {
  readonly url: string;
  readonly model: string;
  readonly #o: Required<Omit<ChatClientOptions, "signal" | "baseUrl" | "model">> & {
    signal?: AbortSignal;
  };

  /** A client; nothing is sent until {@linkcode ChatClient.complete}. */
  constructor(options: ChatClientOptions) {
    this.url = `${(options.baseUrl ?? OPENAI_BASE_URL).replace(/\/+$/, "")}/chat/completions`;
    this.model = options.model;
    this.#o = {
      apiKey: options.apiKey,
      timeoutMs: options.timeoutMs ?? 120_000,
      maxAttempts: options.maxAttempts ?? 10_000,
      backoffBaseMs: options.backoffBaseMs ?? 1_000,
      backoffMaxMs: options.backoffMaxMs ?? 60_000,
      retryAfterMaxMs: options.retryAfterMaxMs ?? 600_000,
      sleep: options.sleep ?? abortableSleep,
      log: options.log ?? ((line) => console.error(line)),
      signal: options.signal,
    };
    if (!(Number.isInteger(this.#o.maxAttempts) && this.#o.maxAttempts >= 1)) {
      throw new Error(`maxAttempts must be a positive integer, got ${this.#o.maxAttempts}`);
    }
  }

  /**
   * Sends `messages` at temperature 0 until an answer finishes with `stop` or `length`.
   *
   * @param messages The chat.
   * @returns The stripped content and finish reason.
   * @throws {ChatError} On an HTTP error retrying cannot fix, or when attempts run out.
   * @throws The abort reason of `signal` when it aborts.
   */
  async complete(messages: ChatMessage[]): Promise<ChatAnswer> {
    const o = this.#o;
    const body = JSON.stringify({ model: this.model, messages, temperature: 0 });
    for (let attempt = 1;; attempt++) {
      const outcome = await this.#attempt(body);
      if ("content" in outcome) return { ...outcome, attempts: attempt };
      if (!outcome.retry) throw new ChatError(outcome.reason);
      if (attempt >= o.maxAttempts) {
        throw new ChatError(`The judge gave up after ${attempt} attempts: ${outcome.reason}`);
      }
      const wait = retryDelayMs(
        attempt,
        outcome.hintMs,
        o.backoffBaseMs,
        o.backoffMaxMs,
        o.retryAfterMaxMs,
      );
      o.log(`judge: attempt ${attempt} failed (${outcome.reason}); retrying in ${wait / 1000} s`);
      await o.sleep(wait, o.signal);
    }
  }

  async #attempt(body: string): Promise<{ content: string; finishReason: string } | Failure> {
    const o = this.#o;
    o.signal?.throwIfAborted();
    const timeout = AbortSignal.timeout(o.timeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${o.apiKey}` },
        body,
        signal,
      });
      text = await response.text();
    } catch (e) {
      o.signal?.throwIfAborted();
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
        return {
          reason: `${(e as Error).message} (run with --allow-net=HOST)`,
          hintMs: null,
          retry: false,
        };
      }
      const reason = timeout.aborted
        ? `no answer within ${o.timeoutMs / 1000} s`
        : `network error: ${oneLine((e as Error).message)}`;
      return { reason, hintMs: retryHintMs(null, (e as Error).message), retry: true };
    }
    if (!response.ok) {
      const message = errorMessage(text);
      const reason = `HTTP ${response.status} from ${this.url}: ${
        oneLine(message) || "no message"
      }`;
      return {
        reason,
        hintMs: retryHintMs(response.headers, message),
        retry: RETRY_STATUS.has(response.status) || response.status >= 500,
      };
    }
    let choice;
    try {
      choice = JSON.parse(text)?.choices?.[0];
    } catch {
      // handled below
    }
    const content = choice?.message?.content;
    if (typeof content !== "string") {
      return {
        reason: `malformed answer (no choices[0].message.content): ${oneLine(text, 120)}`,
        hintMs: null,
        retry: true,
      };
    }
    const finishReason = choice.finish_reason;
    if (finishReason !== "stop" && finishReason !== "length") {
      return {
        reason: `finish_reason is ${JSON.stringify(finishReason)}, not "stop" or "length"`,
        hintMs: null,
        retry: true,
      };
    }
    if (finishReason === "length") {
      o.log("judge: reached max tokens - consider increasing max_tokens (finish_reason: length)");
    }
    return { content: pythonStrip(content), finishReason };
  }
}
