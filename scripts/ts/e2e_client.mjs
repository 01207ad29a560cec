// End-to-end check of the openclaw-mcp bridge with the clients Claude is built on: the official
// MCP TypeScript SDK (`@modelcontextprotocol/sdk`, the one Claude Desktop and Claude Code use) and
// the MCP Inspector CLI (`@modelcontextprotocol/inspector`, which runs on the SDK's 2.x client).
//
// scripts/e2e-typescript.sh installs both (pinned in scripts/ts/package-lock.json), starts two mock
// gateways and runs this file with Node 22 from the directory it installed them in:
//
//   a  the default instance, whose gateway wants a token (--token-a)
//   b  a gateway without a token that answers chats after --b-delay-ms, so that a call to it can
//      be cancelled or its stream dropped while it runs; its GET /stats counts aborted chats
//
// The SDK checks run over each of --transports:
//
//   stdio    the bridge as Claude Desktop starts it (StdioClientTransport);
//   oauth    Streamable HTTP to a bridge with OAuth on (a configured client id and secret, a
//            loopback redirect URI): the SDK's own OAuthClientProvider flow (401, discovery,
//            authorization with PKCE, whose redirect this provider follows itself, code exchange);
//   bearer   Streamable HTTP to a bridge with a static bearer token (MCP_BEARER_TOKENS);
//   sse      the legacy HTTP+SSE transport (SSEClientTransport) of the bearer bridge;
//
// and on each: tools/list, every tool, bad arguments, progress, cancellation with an AbortSignal
// (the gateway request must be aborted), an async task to completion and a running task cancelled,
// a client that declares the tasks extension (as the Inspector does) in the initialize era, and on
// Streamable HTTP a stream dropped during a slow call that the SDK resumes with Last-Event-ID.
// `inspector` runs the Inspector CLI with --strict over stdio and over HTTP (the bearer bridge),
// each in the initialize era (--protocol-era legacy) and in 2026-07-28 (--protocol-era modern).
//
// Every check prints `PASS <check>` or `FAIL <check>: <why>`; a failed check does not stop the
// others. The last line is `e2e-typescript: N passed, M failed`; the exit status is 1 if any
// failed. Everything runs on 127.0.0.1; every bridge this file starts is stopped before it exits.

import { spawn } from 'node:child_process';
import { appendFileSync, createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

const TOOL_NAMES = [
    'openclaw_chat',
    'openclaw_status',
    'openclaw_chat_async',
    'openclaw_task_status',
    'openclaw_task_list',
    'openclaw_task_cancel',
    'openclaw_instances',
    'openclaw_agents',
    'openclaw_sessions',
    'openclaw_session_history',
];
const TASK_ID_RE = /^task_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const TRANSPORTS = ['stdio', 'oauth', 'bearer', 'sse', 'inspector'];
const LISTENING_RE = /listening address=127\.0\.0\.1:(\d+)/;
const OAUTH_CLIENT_ID = 'e2e-typescript-oauth';
const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';
const MODERN = '2026-07-28';

// ------------------------------------------------------------------------------------------------
// options

const { values: opt } = parseArgs({
    options: {
        bridge: { type: 'string' },
        'url-a': { type: 'string' },
        'token-a': { type: 'string' },
        'url-b': { type: 'string' },
        'b-delay-ms': { type: 'string', default: '2000' },
        inspector: { type: 'string' },
        work: { type: 'string' },
        transports: { type: 'string', default: TRANSPORTS.join(',') },
        'call-timeout-ms': { type: 'string', default: '15000' },
        'total-timeout-s': { type: 'string', default: '420' },
    },
});
for (const required of ['bridge', 'url-a', 'token-a', 'url-b', 'work']) {
    if (!opt[required]) usage(`--${required} is required`);
}
for (const url of [opt['url-a'], opt['url-b']]) {
    if (!/^http:\/\/127\.\d+\.\d+\.\d+:\d+$/.test(url)) usage(`not a loopback URL: ${url}`);
}
const B_DELAY_MS = Number(opt['b-delay-ms']);
const CALL_TIMEOUT_MS = Number(opt['call-timeout-ms']);
const TOTAL_TIMEOUT_S = Number(opt['total-timeout-s']);
const SELECTED = opt.transports.split(',').map((t) => t.trim()).filter(Boolean);
for (const t of SELECTED) if (!TRANSPORTS.includes(t)) usage(`unknown transport ${t}; choose from ${TRANSPORTS.join(', ')}`);
if (SELECTED.includes('inspector') && !opt.inspector) usage('--inspector is required for the inspector checks');
if (B_DELAY_MS < 1000) usage('--b-delay-ms must be at least 1000 (calls to b are cancelled and dropped while they run)');

function usage(why) {
    process.stderr.write(`e2e_client.mjs: ${why}\n`);
    process.exit(64);
}

// ------------------------------------------------------------------------------------------------
// bookkeeping

/** Values that must never be printed (replaced by <SECRET>). */
const SECRETS = [opt['token-a']];
const results = { passed: 0, failed: 0, failures: [] };

function redact(text) {
    let out = String(text);
    for (const s of [...SECRETS].filter(Boolean).sort((x, y) => y.length - x.length)) out = out.split(s).join('<SECRET>');
    return out;
}

function short(value, limit = 400) {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    return text === undefined ? String(value) : text.length <= limit ? text : `${text.slice(0, limit)}… (${text.length} chars)`;
}

class CheckFailed extends Error {}

function expect(cond, why) {
    if (!cond) throw new CheckFailed(why);
}

function expectEq(actual, expected, what) {
    const a = JSON.stringify(actual);
    const e = JSON.stringify(expected);
    if (a !== e) throw new CheckFailed(`${what}: expected ${short(e, 300)}, got ${short(a, 300)}`);
}

function describe(err) {
    if (err instanceof CheckFailed) return err.message;
    const name = err?.constructor?.name ?? typeof err;
    return `${name}: ${err?.message ?? String(err)}`;
}

/**
 * Runs one check: prints PASS or FAIL (with the end of `log`, if given, on failure). A check
 * never takes longer than `limitMs`.
 */
async function check(name, fn, { limitMs = 3 * CALL_TIMEOUT_MS, log } = {}) {
    const started = performance.now();
    let timer;
    try {
        await Promise.race([
            fn(),
            new Promise((_, reject) => {
                timer = setTimeout(() => reject(new CheckFailed(`check timed out after ${limitMs} ms`)), limitMs);
            }),
        ]);
        results.passed++;
        console.log(`PASS ${name}  (${Math.round(performance.now() - started)} ms)`);
        return true;
    } catch (err) {
        results.failed++;
        const why = redact(describe(err));
        results.failures.push(`${name}: ${why}`);
        console.log(`FAIL ${name}: ${why}  (${Math.round(performance.now() - started)} ms)`);
        if (log) printTail(log);
        return false;
    } finally {
        clearTimeout(timer);
    }
}

function printTail(logPath, lines = 6) {
    let text = '';
    try {
        text = readFileSync(logPath, 'utf8');
    } catch {
        return;
    }
    const tail = text.trimEnd().split('\n').slice(-lines);
    if (tail.length && tail[0] !== '') {
        console.log(`     ---- last lines of ${logPath.split('/').pop()} ----`);
        for (const line of tail) console.log(`     ${redact(line)}`);
    }
}

// ------------------------------------------------------------------------------------------------
// processes

const children = new Set();
process.on('exit', () => {
    for (const child of children) child.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
        console.log(`e2e_client.mjs: ${sig}, stopping`);
        process.exit(sig === 'SIGINT' ? 130 : 143);
    });
}

/** A clean environment for a bridge: no OPENCLAW_*, MCP_* or proxy settings leak in. */
function bridgeEnv(dataDir, extra) {
    const env = {};
    for (const k of ['PATH', 'LANG', 'LC_ALL', 'TMPDIR', 'RUST_LOG', 'RUST_BACKTRACE']) if (process.env[k]) env[k] = process.env[k];
    env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
    env.HOME = dataDir;
    env.XDG_STATE_HOME = dataDir;
    env.OPENCLAW_MCP_DATA_DIR = dataDir;
    env.NO_PROXY = env.no_proxy = '127.0.0.1,localhost,::1';
    return { ...env, ...extra };
}

function instancesJson() {
    return JSON.stringify([
        { name: 'a', url: opt['url-a'], token: opt['token-a'] },
        { name: 'b', url: opt['url-b'] },
    ]);
}

let dirCounter = 0;
function newDir(label) {
    const dir = join(opt.work, `${label}-${++dirCounter}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
}

/** The bridge serving HTTP on a free loopback port; its stderr goes to `log`. */
class HttpBridge {
    constructor(label, extraEnv) {
        this.label = label;
        this.dataDir = newDir(`data-${label}`);
        this.log = join(opt.work, `bridge-${label}.log`);
        this.extraEnv = extraEnv;
    }

    async start() {
        const out = createWriteStream(this.log, { flags: 'a' });
        this.proc = spawn(opt.bridge, ['--transport', 'http', '--host', '127.0.0.1', '--port', '0'], {
            env: bridgeEnv(this.dataDir, this.extraEnv),
            stdio: ['ignore', 'ignore', 'pipe'],
        });
        children.add(this.proc);
        this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => {
            children.delete(this.proc);
            resolve({ code, signal });
        }));
        this.port = await new Promise((resolve, reject) => {
            let buffered = '';
            const timer = setTimeout(() => reject(new CheckFailed(`the ${this.label} bridge did not log its listening address within 30 s`)), 30000);
            this.proc.stderr.on('data', (chunk) => {
                out.write(chunk);
                if (this.port) return;
                buffered += chunk.toString('utf8');
                const m = LISTENING_RE.exec(buffered);
                if (m) {
                    clearTimeout(timer);
                    resolve(Number(m[1]));
                }
            });
            this.proc.on('exit', (code) => {
                clearTimeout(timer);
                reject(new CheckFailed(`the ${this.label} bridge exited at start-up (status ${code})`));
            });
        });
        return this;
    }

    url(path) {
        return `http://127.0.0.1:${this.port}${path}`;
    }

    /** SIGTERM, then the exit status (SIGKILL after 20 s). */
    async stop() {
        if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
        this.proc.kill('SIGTERM');
        const timer = setTimeout(() => this.proc.kill('SIGKILL'), 20000);
        const status = await this.exited;
        clearTimeout(timer);
        return status;
    }
}

async function freeLoopbackPort() {
    return new Promise((resolve, reject) => {
        const srv = createServer();
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

async function gatewayStats(url) {
    const r = await fetch(`${url}/stats`, { signal: AbortSignal.timeout(5000) });
    expect(r.ok, `GET ${url}/stats: HTTP ${r.status}`);
    return (await r.json()).chats;
}

async function waitFor(what, predicate, limitMs) {
    const deadline = Date.now() + limitMs;
    for (;;) {
        const value = await predicate();
        if (value) return value;
        if (Date.now() >= deadline) throw new CheckFailed(`${what} (waited ${limitMs} ms)`);
        await sleep(50);
    }
}

// ------------------------------------------------------------------------------------------------
// the SDK's transports, tapped

/**
 * Wraps an SDK transport and records every JSON-RPC message both ways, in order, so that a check
 * can tell what came on the wire (a progress notification after its response, a response to a
 * cancelled request) besides what the SDK made of it.
 */
class TapTransport {
    constructor(inner) {
        this.inner = inner;
        this.wire = [];
        inner.onmessage = (message, extra) => {
            this.wire.push({ dir: 'in', at: performance.now(), message });
            this.onmessage?.(message, extra);
        };
        inner.onclose = () => this.onclose?.();
        inner.onerror = (error) => this.onerror?.(error);
        if (typeof inner.setProtocolVersion === 'function') {
            this.setProtocolVersion = (version) => inner.setProtocolVersion(version);
        }
    }

    get sessionId() {
        return this.inner.sessionId;
    }

    async start() {
        return this.inner.start();
    }

    async send(message, options) {
        this.wire.push({ dir: 'out', at: performance.now(), message });
        return this.inner.send(message, options);
    }

    async close() {
        return this.inner.close();
    }

    /** The protocol version the server answered `initialize` with. */
    negotiatedVersion() {
        const init = this.wire.find((w) => w.dir === 'in' && w.message.result?.protocolVersion);
        return init?.message.result.protocolVersion;
    }

    /** The id of the last `tools/call` sent whose arguments.message is `text`. */
    requestIdFor(text) {
        const sent = this.wire.filter((w) => w.dir === 'out' && w.message.method === 'tools/call' && w.message.params?.arguments?.message === text);
        return sent.length ? sent[sent.length - 1].message.id : undefined;
    }
}

/**
 * A fetch for the HTTP transports that records every request (method, URL, status, headers that
 * matter) and can drop one response stream: armed with a message text, it lets the POST that
 * carries that text through until the first SSE event with an `id:` has arrived, then cuts the
 * connection (the SDK sees a network error mid-stream, as on a flaky network).
 */
class WireFetch {
    constructor() {
        this.exchanges = [];
        this.drop = null;
        this.fetch = this.fetch.bind(this);
    }

    arm(text) {
        this.drop = { text, state: 'armed', eventIds: [], answerSeen: false };
        return this.drop;
    }

    async fetch(url, init = {}) {
        const headers = new Headers(init.headers);
        const body = typeof init.body === 'string' ? init.body : init.body instanceof URLSearchParams ? init.body.toString() : undefined;
        const method = (init.method ?? 'GET').toUpperCase();
        const drop = this.drop;
        const target = drop && drop.state === 'armed' && method === 'POST' && body?.includes(JSON.stringify(drop.text));
        const cut = new AbortController();
        const signal = target ? (init.signal ? AbortSignal.any([init.signal, cut.signal]) : cut.signal) : init.signal;
        const response = await fetch(url, { ...init, signal });
        this.exchanges.push({
            method,
            url: String(url),
            path: new URL(String(url)).pathname,
            status: response.status,
            authorization: headers.get('authorization'),
            lastEventId: headers.get('last-event-id'),
            wwwAuthenticate: response.headers.get('www-authenticate'),
            form: new URL(String(url)).pathname.endsWith('/token') && body ? Object.fromEntries(new URLSearchParams(body)) : undefined,
            contentType: response.headers.get('content-type'),
        });
        if (!target) return response;
        drop.state = 'sent';
        if (!(response.headers.get('content-type') ?? '').includes('text/event-stream') || !response.body) {
            drop.state = 'not-sse';
            return response;
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let seen = '';
        const stream = new ReadableStream({
            async pull(controller) {
                const { value, done } = await reader.read().catch((e) => ({ error: e }));
                if (done || value === undefined) {
                    if (drop.state === 'sent') drop.state = 'ended-before-drop';
                    controller.close();
                    return;
                }
                controller.enqueue(value);
                seen += decoder.decode(value, { stream: true });
                // Whole events only: up to the last blank line.
                const complete = seen.slice(0, seen.lastIndexOf('\n\n') + 1);
                for (const m of complete.matchAll(/^id:\s?(.*)$/gm)) if (!drop.eventIds.includes(m[1])) drop.eventIds.push(m[1]);
                if (/"result"\s*:/.test(complete)) drop.answerSeen = true;
                if (drop.eventIds.length && drop.state === 'sent') {
                    drop.state = drop.answerSeen ? 'answer-before-drop' : 'dropped';
                    cut.abort(new Error('e2e: connection dropped'));
                    controller.error(new TypeError('e2e: network connection lost'));
                }
            },
            cancel(reason) {
                reader.cancel(reason).catch(() => {});
            },
        });
        return new Response(stream, { status: response.status, statusText: response.statusText, headers: response.headers });
    }
}

// ------------------------------------------------------------------------------------------------
// tool-call helpers

/** Calls a tool; returns {isError, text, structured, raw}. */
async function call(ctx, name, args, options = {}) {
    const raw = await ctx.client.callTool({ name, arguments: args }, undefined, { timeout: CALL_TIMEOUT_MS, ...options });
    const texts = (raw.content ?? []).map((c) => c.text);
    expect(
        Array.isArray(raw.content) && raw.content.length === 1 && typeof texts[0] === 'string',
        `${name} ${short(args, 120)}: expected exactly one text content block, got ${short(raw)}`,
    );
    return { isError: raw.isError === true, text: texts[0], structured: raw.structuredContent, raw };
}

async function callOk(ctx, name, args, options) {
    const r = await call(ctx, name, args, options);
    expect(!r.isError, `${name} ${short(args, 120)}: unexpected isError result: ${short(r.text)}`);
    return r;
}

/** A successful call whose text is a JSON object equal to its structuredContent. */
async function callJson(ctx, name, args) {
    const r = await callOk(ctx, name, args);
    let value;
    try {
        value = JSON.parse(r.text);
    } catch (e) {
        throw new CheckFailed(`${name}: text is not JSON (${e.message}): ${short(r.text)}`);
    }
    expect(value && typeof value === 'object' && !Array.isArray(value), `${name}: expected a JSON object, got ${short(r.text)}`);
    expectEq(r.structured, value, `${name}: structuredContent vs the text's JSON`);
    return value;
}

async function callError(ctx, name, args, expected) {
    const r = await call(ctx, name, args);
    expect(r.isError, `${name} ${short(args, 120)}: expected an isError result, got a success: ${short(r.text)}`);
    if (expected instanceof RegExp) expect(expected.test(r.text), `${name} ${short(args, 120)}: error text ${short(r.text)} does not match ${expected}`);
    else expectEq(r.text, expected, `${name} ${short(args, 120)}: error text`);
}

async function pollTask(ctx, taskId, until, limitMs) {
    const seen = [];
    return waitFor(
        `${taskId} never reached ${until} (states seen: ${seen.join(' -> ') || 'none'})`,
        async () => {
            const status = await callJson(ctx, 'openclaw_task_status', { task_id: taskId });
            if (seen[seen.length - 1] !== status.status) seen.push(status.status);
            if (until === 'terminal' ? TERMINAL.has(status.status) : status.status === until) return status;
            if (TERMINAL.has(status.status)) throw new CheckFailed(`${taskId} ended ${status.status} while waiting for ${until}: ${short(status)}`);
            return null;
        },
        limitMs,
    );
}

// ------------------------------------------------------------------------------------------------
// the SDK checks, per transport

/**
 * Everything one connected SDK client is checked for. `ctx` = {label, client, tap, log, errors,
 * wire (HTTP only), sessionTag}.
 */
async function sdkChecks(ctx, { resumable }) {
    const L = ctx.label;
    const log = ctx.log;

    await check(`${L}: tools/list shows the ten tools in order, each with a description and an object inputSchema`, async () => {
        const listed = await ctx.client.listTools(undefined, { timeout: CALL_TIMEOUT_MS });
        expectEq(listed.tools.map((t) => t.name), TOOL_NAMES, 'tool names');
        for (const t of listed.tools) {
            expect(typeof t.description === 'string' && t.description.trim() !== '', `${t.name}: empty description`);
            expect(t.inputSchema?.type === 'object', `${t.name}: inputSchema ${short(t.inputSchema)}`);
        }
        const required = Object.fromEntries(listed.tools.map((t) => [t.name, [...(t.inputSchema.required ?? [])].sort()]));
        expectEq(required.openclaw_chat, ['message'], 'openclaw_chat required');
        expectEq(required.openclaw_task_status, ['task_id'], 'openclaw_task_status required');
        expectEq(required.openclaw_task_cancel, ['task_id'], 'openclaw_task_cancel required');
    }, { log });

    await check(`${L}: openclaw_chat answers from instance a (default, token) and b; session_id kept`, async () => {
        let r = await callOk(ctx, 'openclaw_chat', { message: '  hello  ' });
        expectEq(r.text, 'echo: hello', 'text (default instance)');
        expectEq(r.structured?.instance, 'a', 'structuredContent.instance');
        r = await callOk(ctx, 'openclaw_chat', { message: 'hello b', instance: 'b' });
        expectEq(r.text, 'echo: hello b', 'text (instance b)');
        r = await callOk(ctx, 'openclaw_chat', { message: 'hello session', session_id: `${ctx.sessionTag}-chat` });
        expectEq(r.text, 'echo: hello session', 'text (session_id)');
        expectEq(r.structured?.session_key, `${ctx.sessionTag}-chat`, 'structuredContent.session_key');
    }, { log });

    await check(`${L}: openclaw_status probes a and b (structuredContent valid against its outputSchema)`, async () => {
        for (const [args, name] of [[{}, 'a'], [{ instance: 'b' }, 'b']]) {
            const v = await callJson(ctx, 'openclaw_status', args);
            expectEq([v.status, v.instance, v.http_status], ['ok', name, 400], `openclaw_status ${JSON.stringify(args)} [status, instance, http_status]`);
        }
    }, { log });

    await check(`${L}: openclaw_instances lists a (default) and b, without tokens`, async () => {
        const v = await callJson(ctx, 'openclaw_instances', {});
        expectEq(v.total, 2, 'total');
        expectEq(v.instances.map((i) => [i.name, i.url, i.isDefault]), [['a', opt['url-a'], true], ['b', opt['url-b'], false]], 'instances [name, url, isDefault]');
        expect(!JSON.stringify(v).includes(opt['token-a']), 'a gateway token is in the answer');
    }, { log });

    await check(`${L}: openclaw_agents, openclaw_sessions and openclaw_session_history`, async () => {
        const agents = await callJson(ctx, 'openclaw_agents', {});
        expectEq(agents.agents.map((a) => a.id), ['main'], 'agents');
        const chat = await callOk(ctx, 'openclaw_chat', { message: 'remember me', new_session: true });
        const key = chat.structured?.session_key;
        expect(typeof key === 'string' && key.startsWith('mcp-'), `new_session: session_key ${short(key)}`);
        const sessions = await callJson(ctx, 'openclaw_sessions', { limit: 200 });
        expect(sessions.sessions.some((s) => s.key === `agent:main:${key}`), `agent:main:${key} not in ${short(sessions.sessions.map((s) => s.key))}`);
        const history = await callJson(ctx, 'openclaw_session_history', { session_key: `agent:main:${key}` });
        expectEq(history.messages.map((m) => [m.role, m.content]), [['user', 'remember me'], ['assistant', 'echo: remember me']], 'history messages');
        const byId = await callJson(ctx, 'openclaw_session_history', { session_id: key, limit: 1 });
        expectEq(byId.messages.map((m) => m.role), ['assistant'], 'history by session_id, limit 1');
    }, { log });

    await check(`${L}: bad arguments give isError results with 1.7.0's messages; an unknown tool a JSON-RPC error`, async () => {
        await callError(ctx, 'openclaw_chat', { message: 42 }, 'Error: message must be a string');
        await callError(ctx, 'openclaw_chat', {}, 'Error: message must be a string');
        await callError(ctx, 'openclaw_chat', { message: '   ' }, 'Error: message must not be empty');
        await callError(ctx, 'openclaw_chat', { message: 'x'.repeat(100001) }, 'Error: message exceeds maximum length of 100000 characters');
        await callError(ctx, 'openclaw_chat', { message: 'hi', instance: 'nope' }, 'Error: Unknown instance "nope". Available: a, b');
        await callError(ctx, 'openclaw_chat_async', { message: 'hi', priority: 1.5 }, 'Error: priority must be an integer');
        await callError(ctx, 'openclaw_task_status', {}, 'Error: task_id must be a string');
        await callError(ctx, 'openclaw_task_list', { status: 'done' }, 'Error: status must be one of: pending, running, completed, failed, cancelled');
        await callError(ctx, 'openclaw_sessions', { limit: 0 }, 'Error: limit must be an integer from 1 to 200');
        let rejected;
        try {
            await ctx.client.callTool({ name: 'openclaw_nope', arguments: {} }, undefined, { timeout: CALL_TIMEOUT_MS });
        } catch (e) {
            rejected = e;
        }
        expect(rejected, 'an unknown tool gave a result instead of a JSON-RPC error');
        expect(rejected.code === -32602 && /Unknown tool: openclaw_nope/.test(rejected.message), `unknown tool: ${describe(rejected)}`);
    }, { log });

    /** Calls openclaw_chat with an onprogress handler; returns what arrived before and after the answer. */
    const withProgress = async (message) => {
        const errorsBefore = ctx.errors.length;
        const before = [];
        const after = [];
        let answered = false;
        const r = await callOk(ctx, 'openclaw_chat', { message }, { onprogress: (p) => (answered ? after : before).push(p) });
        answered = true;
        await sleep(300);
        expectEq(r.text, `echo: ${message}`, 'text');
        const id = ctx.tap.requestIdFor(message);
        const wire = ctx.tap.wire.filter((w) => w.dir === 'in' && (w.message.id === id || (w.message.method === 'notifications/progress' && w.message.params?.progressToken === id)));
        const order = wire.map((w) => (w.message.method ? `progress ${w.message.params.progress}` : 'response')).join(', ') || 'nothing';
        const unknown = ctx.errors.slice(errorsBefore).filter((m) => /unknown token/i.test(m));
        return { before, after, order, unknown };
    };

    await check(`${L}: progress while the answer streams ([[drip:150]]): onprogress called before the answer, increasing, no "unknown progress token" error`, async () => {
        const p = await withProgress('progress please [[drip:150]]');
        expect(p.unknown.length === 0, `the SDK reported: ${short(p.unknown[0], 240)} (on the wire: ${p.order})`);
        expect(p.before.length >= 1, `onprogress was never called before the answer (on the wire: ${p.order})`);
        for (let i = 1; i < p.before.length; i++) expect(p.before[i].progress > p.before[i - 1].progress, `progress did not increase: ${short(p.before)}`);
    }, { log });

    await check(`${L}: progress on an answer that arrives at once: no "unknown progress token" error (a progress sent with or after the response trips the SDK)`, async () => {
        const p = await withProgress('all at once');
        expect(p.unknown.length === 0, `the SDK reported: ${short(p.unknown[0], 240)} (on the wire: ${p.order})`);
    }, { log });

    await check(`${L}: cancellation with an AbortSignal rejects the call and aborts the gateway request`, async () => {
        const text = `abort me ${ctx.sessionTag}`;
        const stats0 = await gatewayStats(opt['url-b']);
        const errorsBefore = ctx.errors.length;
        const abort = new AbortController();
        const pending = ctx.client.callTool({ name: 'openclaw_chat', arguments: { message: text, instance: 'b' } }, undefined, { timeout: CALL_TIMEOUT_MS, signal: abort.signal });
        const outcome = pending.then((v) => ({ value: v }), (e) => ({ error: e }));
        await waitFor('gateway b never received the chat', async () => (await gatewayStats(opt['url-b'])).started > stats0.started, 5000);
        const reason = 'e2e: the user pressed stop';
        abort.abort(new Error(reason));
        const settled = await outcome;
        expect(settled.error, `the call resolved after the abort: ${short(settled.value)}`);
        expect(String(settled.error.message).includes(reason), `the call rejected with ${describe(settled.error)}, not the abort reason`);
        const id = ctx.tap.requestIdFor(text);
        const sentCancel = ctx.tap.wire.some((w) => w.dir === 'out' && w.message.method === 'notifications/cancelled' && w.message.params?.requestId === id);
        expect(sentCancel, 'the SDK sent no notifications/cancelled');
        await waitFor(
            `gateway b saw no aborted request (its /stats: ${JSON.stringify(stats0)} before)`,
            async () => (await gatewayStats(opt['url-b'])).aborted > stats0.aborted,
            5000,
        );
        // Once the gateway would have answered, no answer may have come for the cancelled request.
        await sleep(B_DELAY_MS + 300);
        const late = ctx.tap.wire.filter((w) => w.dir === 'in' && w.message.id === id && !w.message.method);
        expect(late.length === 0, `a response came for the cancelled request: ${short(late[0]?.message)}`);
        const stray = ctx.errors.slice(errorsBefore).filter((m) => /unknown message ID|unknown token/i.test(m));
        expect(stray.length === 0, `the SDK reported: ${short(stray[0], 240)}`);
    }, { log, limitMs: 3 * CALL_TIMEOUT_MS + B_DELAY_MS });

    const tag = ctx.sessionTag;
    let queuedA;
    await check(`${L}: openclaw_chat_async + openclaw_task_status: a task runs to completion`, async () => {
        const queued = await callJson(ctx, 'openclaw_chat_async', { message: '  async hello  ', session_id: `${tag}-async`, priority: 5 });
        expect(TASK_ID_RE.test(queued.task_id ?? ''), `task_id is not task_<uuid4>: ${short(queued.task_id)}`);
        expectEq(queued, { task_id: queued.task_id, status: 'pending', instance: 'a', message: 'Task queued. Use openclaw_task_status to check progress.' }, 'queued answer');
        const done = await pollTask(ctx, queued.task_id, 'terminal', 10000);
        expectEq([done.status, done.instance, done.result, done.error ?? null], ['completed', 'a', 'echo: async hello', null], 'final [status, instance, result, error]');
        queuedA = queued.task_id;
    }, { log });

    let running;
    await check(`${L}: openclaw_task_cancel of a running task (instance b) cancels it and aborts its gateway request`, async () => {
        const stats0 = await gatewayStats(opt['url-b']);
        const queued = await callJson(ctx, 'openclaw_chat_async', { message: 'cancel me', instance: 'b', session_id: `${tag}-async` });
        running = queued.task_id;
        await pollTask(ctx, running, 'running', 5000);
        await waitFor('gateway b never received the task\'s chat', async () => (await gatewayStats(opt['url-b'])).started > stats0.started, 5000);
        const cancelled = await callJson(ctx, 'openclaw_task_cancel', { task_id: running });
        expectEq([cancelled.task_id, cancelled.status, cancelled.previous_status, cancelled.message], [running, 'cancelled', 'running', 'Task cancelled successfully'], 'cancel answer');
        await waitFor('gateway b saw no aborted request after the cancel', async () => (await gatewayStats(opt['url-b'])).aborted > stats0.aborted, 5000);
        const status = await callJson(ctx, 'openclaw_task_status', { task_id: running });
        expectEq([status.status, status.result ?? null], ['cancelled', null], 'task status after the cancel [status, result]');
    }, { log });

    await check(`${L}: openclaw_task_list filters by session_id and status; finished or unknown tasks cannot be cancelled`, async () => {
        expect(queuedA && running, 'the two task checks above did not both get a task id');
        const listed = await callJson(ctx, 'openclaw_task_list', { session_id: `${tag}-async` });
        expectEq(listed.tasks.map((t) => [t.task_id, t.status, t.instance, t.has_result]).sort(), [[queuedA, 'completed', 'a', true], [running, 'cancelled', 'b', false]].sort(), 'tasks [id, status, instance, has_result]');
        const completed = await callJson(ctx, 'openclaw_task_list', { session_id: `${tag}-async`, status: 'completed' });
        expectEq(completed.tasks.map((t) => t.task_id), [queuedA], 'status=completed');
        await callError(ctx, 'openclaw_task_cancel', { task_id: queuedA }, /^Error: Cannot cancel task with status/);
        await callError(ctx, 'openclaw_task_status', { task_id: 'task_nope' }, 'Error: Task not found: task_nope');
        await callError(ctx, 'openclaw_task_cancel', { task_id: 'task_nope' }, 'Error: Task not found: task_nope');
    }, { log });

    if (resumable) {
        await check(`${L}: a stream dropped during a slow call is resumed by the SDK (GET + Last-Event-ID) and the answer arrives`, async () => {
            const text = `resume me ${tag}`;
            const drop = ctx.wire.arm(text);
            const errorsBefore = ctx.errors.length;
            const mark = ctx.wire.exchanges.length;
            let outcome;
            try {
                outcome = { value: await call(ctx, 'openclaw_chat', { message: text, instance: 'b' }, { timeout: B_DELAY_MS + 10000 }) };
            } catch (e) {
                outcome = { error: e };
            }
            ctx.wire.drop = null;
            const resumes = ctx.wire.exchanges.slice(mark).filter((e) => e.method === 'GET' && e.lastEventId);
            const sdkSaid = ctx.errors.slice(errorsBefore);
            const story = `drop: ${drop.state}, event ids on the POST stream: ${short(drop.eventIds)}; GETs with Last-Event-ID: ${resumes.map((e) => `${e.lastEventId} -> ${e.status}`).join(', ') || 'none'}; SDK errors: ${short(sdkSaid, 300) || 'none'}`;
            expect(drop.state !== 'ended-before-drop' && drop.state !== 'armed', `the POST stream carried no SSE event id before it ended, so there was nothing to resume from (${story})`);
            expect(drop.state !== 'not-sse', `the POST was answered with ${short(ctx.wire.exchanges[mark]?.contentType)}, not an SSE stream: nothing to drop (${story})`);
            expect(drop.state === 'dropped', `the answer came before the stream could be dropped (${story})`);
            expect(!outcome.error, `the call failed after the drop: ${describe(outcome.error)} (${story})`);
            expectEq(outcome.value.text, `echo: ${text}`, `text after the resume (${story})`);
            const resumed = resumes.filter((e) => drop.eventIds.includes(e.lastEventId));
            expect(resumed.length >= 1, `the answer arrived but not through a GET resuming the dropped stream (${story})`);
        }, { log, limitMs: B_DELAY_MS + 20000 });
    }
}

/**
 * The client of the initialize era that declares the tasks extension in its capabilities, as the
 * Inspector's (SDK 2.x) client does: a plain tools/call (no `task` parameter) must still get the
 * tool's answer, not a task handle it never asked for.
 */
async function tasksExtensionCheck(label, connectFn, log) {
    await check(`${label}: a client declaring the tasks extension in the initialize era gets the answer of a plain tools/call`, async () => {
        const ctx = await connectFn({ extensions: { [TASKS_EXTENSION]: {} } });
        try {
            const raw = await ctx.client.callTool({ name: 'openclaw_chat', arguments: { message: 'plain call' } }, undefined, { timeout: CALL_TIMEOUT_MS });
            const text = raw.content?.[0]?.text;
            expect(text === 'echo: plain call', `expected the text "echo: plain call", got ${short(raw)}`);
        } finally {
            await ctx.client.close().catch(() => {});
        }
    }, { log });
}

function newClient(capabilities = {}) {
    const client = new Client({ name: 'openclaw-mcp-e2e-typescript', version: '1.0.0' }, { capabilities });
    const errors = [];
    client.onerror = (e) => errors.push(String(e?.message ?? e));
    return { client, errors };
}

async function connectCtx(label, innerTransport, { capabilities, log, wire } = {}) {
    const { client, errors } = newClient(capabilities);
    const tap = new TapTransport(innerTransport);
    await client.connect(tap, { timeout: CALL_TIMEOUT_MS });
    return { label, client, tap, errors, log, wire, transport: innerTransport, sessionTag: `${label}-${randomBytes(3).toString('hex')}` };
}

async function checkConnected(ctx, { http }) {
    const info = ctx.client.getServerVersion();
    expectEq(info?.name, 'openclaw-mcp', 'serverInfo.name');
    expectEq(ctx.tap.negotiatedVersion(), LATEST_PROTOCOL_VERSION, 'negotiated protocol version');
    expect(ctx.client.getServerCapabilities()?.tools, `no tools capability: ${short(ctx.client.getServerCapabilities())}`);
    if (http) expect(ctx.transport.sessionId, 'no Mcp-Session-Id after initialize');
}

// --- stdio ----------------------------------------------------------------------------------------

function stdioTransport(dataDir, log) {
    const transport = new StdioClientTransport({
        command: opt.bridge,
        args: [],
        env: bridgeEnv(dataDir, { OPENCLAW_INSTANCES: instancesJson() }),
        stderr: 'pipe',
    });
    const out = createWriteStream(log, { flags: 'a' });
    transport.stderr?.on('data', (chunk) => out.write(chunk));
    return transport;
}

async function stdioChecks() {
    const log = join(opt.work, 'bridge-stdio.log');
    let ctx;
    const ok = await check('stdio: connect (StdioClientTransport spawns the bridge; initialize, 2025-11-25)', async () => {
        ctx = await connectCtx('stdio', stdioTransport(newDir('data-stdio'), log), { log });
        await checkConnected(ctx, { http: false });
    }, { log });
    if (ok) {
        try {
            await sdkChecks(ctx, { resumable: false });
        } finally {
            await ctx.client.close().catch(() => {});
        }
    }
    await tasksExtensionCheck('stdio', (capabilities) => connectCtx('stdio-ext', stdioTransport(newDir('data-stdio'), log), { capabilities, log }), log);
}

// --- Streamable HTTP with a static bearer token, and legacy SSE on the same bridge ----------------

async function bearerBridge() {
    const token = randomBytes(24).toString('hex');
    SECRETS.push(token);
    const bridge = await new HttpBridge('bearer', { OPENCLAW_INSTANCES: instancesJson(), MCP_BEARER_TOKENS: `ts-e2e:${token}` }).start();
    bridge.token = token;
    return bridge;
}

async function bearerChecks(bridge) {
    const log = bridge.log;
    const headers = { Authorization: `Bearer ${bridge.token}` };
    await check('bearer: without the token POST /mcp gets 401', async () => {
        const r = await fetch(bridge.url('/mcp'), {
            method: 'POST',
            headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'x', version: '0' } } }),
        });
        expectEq(r.status, 401, 'status without a token');
    }, { log });
    const connect = async (capabilities) => {
        const wire = new WireFetch();
        const transport = new StreamableHTTPClientTransport(new URL(bridge.url('/mcp')), { requestInit: { headers }, fetch: wire.fetch });
        return connectCtx('bearer', transport, { capabilities, log, wire });
    };
    let ctx;
    const ok = await check('bearer: connect over Streamable HTTP with Authorization: Bearer (initialize, 2025-11-25, a session)', async () => {
        ctx = await connect();
        await checkConnected(ctx, { http: true });
        expect(ctx.wire.exchanges.every((e) => e.authorization === `Bearer ${bridge.token}`), 'a request without the bearer token');
    }, { log });
    if (ok) {
        try {
            await sdkChecks(ctx, { resumable: true });
        } finally {
            await ctx.client.close().catch(() => {});
        }
    }
    await tasksExtensionCheck('bearer', connect, log);
}

async function sseChecks(bridge) {
    const log = bridge.log;
    const headers = { Authorization: `Bearer ${bridge.token}` };
    const connect = async (capabilities) => {
        const transport = new SSEClientTransport(new URL(bridge.url('/sse')), { requestInit: { headers } });
        return connectCtx('sse', transport, { capabilities, log });
    };
    let ctx;
    const ok = await check('sse: connect over legacy HTTP+SSE (GET /sse + POST /messages, bearer token; initialize, 2025-11-25)', async () => {
        ctx = await connect();
        await checkConnected(ctx, { http: false });
    }, { log });
    if (ok) {
        try {
            await sdkChecks(ctx, { resumable: false });
        } finally {
            await ctx.client.close().catch(() => {});
        }
    }
    await tasksExtensionCheck('sse', connect, log);
}

// --- Streamable HTTP with OAuth -------------------------------------------------------------------

/**
 * The SDK's OAuthClientProvider for the pre-registered client: client id and secret in its
 * client information (so nothing is registered), tokens and PKCE verifier in memory, and a
 * redirectToAuthorization that plays the browser: it GETs the authorization URL, reads the 302
 * without following it (nothing listens on the redirect URI), checks state and iss, and keeps the
 * code for transport.finishAuth.
 */
class E2eOAuthProvider {
    constructor({ clientId, clientSecret, redirectUri, issuer }) {
        this.clientId = clientId;
        this.clientSecret = clientSecret;
        this.redirectUri = redirectUri;
        this.issuer = issuer;
        this.stored = undefined;
        this.verifier = undefined;
        this.states = [];
        this.authorizations = [];
        this.tokenHistory = [];
    }

    get redirectUrl() {
        return this.redirectUri;
    }

    get clientMetadata() {
        return {
            client_name: 'openclaw-mcp e2e (TypeScript SDK)',
            redirect_uris: [this.redirectUri],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'client_secret_basic',
        };
    }

    state() {
        const s = randomBytes(16).toString('hex');
        this.states.push(s);
        return s;
    }

    clientInformation() {
        return { client_id: this.clientId, client_secret: this.clientSecret, redirect_uris: [this.redirectUri], token_endpoint_auth_method: 'client_secret_basic' };
    }

    tokens() {
        return this.stored;
    }

    saveTokens(tokens) {
        this.stored = tokens;
        this.tokenHistory.push(tokens);
        SECRETS.push(tokens.access_token, tokens.refresh_token);
    }

    saveCodeVerifier(v) {
        this.verifier = v;
    }

    codeVerifier() {
        expect(this.verifier, 'the SDK asked for a code verifier it never saved');
        return this.verifier;
    }

    async redirectToAuthorization(url) {
        const r = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(10000) });
        const location = r.headers.get('location') ?? '';
        const query = Object.fromEntries(url.searchParams);
        const back = location.startsWith(`${this.redirectUri}?`) ? Object.fromEntries(new URL(location).searchParams) : {};
        this.authorizations.push({ url: String(url), query, status: r.status, location, back });
        if (back.code) SECRETS.push(back.code);
    }

    /** The code of the last authorization, after checking the redirect. */
    lastCode() {
        const a = this.authorizations[this.authorizations.length - 1];
        expect(a, 'the SDK never sent the user to the authorization endpoint');
        expectEq(a.status, 302, `GET /authorize status (Location ${short(redact(a.location))})`);
        expect(a.location.startsWith(`${this.redirectUri}?`), `the 302 goes to ${short(redact(a.location))}, not the redirect URI`);
        expect(!a.back.error, `/authorize answered ${a.back.error}: ${a.back.error_description}`);
        expect(a.back.code, 'no code in the redirect');
        expectEq(a.back.state, this.states[this.states.length - 1], 'state in the redirect');
        expectEq(a.back.iss, this.issuer, 'iss in the redirect (RFC 9207)');
        return a.back.code;
    }
}

async function oauthChecks() {
    const secret = randomBytes(32).toString('hex');
    SECRETS.push(secret);
    const redirectUri = `http://127.0.0.1:${await freeLoopbackPort()}/callback`;
    let bridge;
    const started = await check('oauth: start the bridge with OAuth on (AUTH_ENABLED=true, MCP_CLIENT_ID/MCP_CLIENT_SECRET, a loopback MCP_REDIRECT_URIS)', async () => {
        bridge = await new HttpBridge('oauth', {
            OPENCLAW_INSTANCES: instancesJson(),
            AUTH_ENABLED: 'true',
            MCP_CLIENT_ID: OAUTH_CLIENT_ID,
            MCP_CLIENT_SECRET: secret,
            MCP_REDIRECT_URIS: redirectUri,
        }).start();
    }, { log: join(opt.work, 'bridge-oauth.log') });
    if (!started) return;
    const log = bridge.log;
    try {
        const issuer = bridge.url('');
        const provider = new E2eOAuthProvider({ clientId: OAUTH_CLIENT_ID, clientSecret: secret, redirectUri, issuer });
        const wire = new WireFetch();
        const transportFor = () => new StreamableHTTPClientTransport(new URL(bridge.url('/mcp')), { authProvider: provider, fetch: wire.fetch });
        let ctx;
        const ok = await check('oauth: the SDK\'s OAuthClientProvider flow: 401, discovery, authorization code + PKCE (redirect followed by the provider), token, then connected', async () => {
            const first = newClient();
            const t1 = transportFor();
            let threw;
            try {
                await first.client.connect(t1, { timeout: CALL_TIMEOUT_MS });
            } catch (e) {
                threw = e;
            }
            expect(threw instanceof UnauthorizedError, `the first connect should stop for the authorization with UnauthorizedError, got ${threw ? describe(threw) : 'a connection'}`);
            const firstPost = wire.exchanges[0];
            expectEq([firstPost?.method, firstPost?.path, firstPost?.status, firstPost?.authorization], ['POST', '/mcp', 401, null], 'first request [method, path, status, authorization]');
            const metadataUrl = `${issuer}/.well-known/oauth-protected-resource/mcp`;
            expect((firstPost.wwwAuthenticate ?? '').includes(`resource_metadata="${metadataUrl}"`), `401 challenge: ${short(firstPost.wwwAuthenticate)}`);
            expect(wire.exchanges.some((e) => e.method === 'GET' && e.url === metadataUrl && e.status === 200), 'the protected-resource metadata was not fetched');
            const code = provider.lastCode();
            const q = provider.authorizations[0].query;
            expectEq(
                [q.response_type, q.client_id, q.redirect_uri, q.code_challenge_method, q.resource],
                ['code', OAUTH_CLIENT_ID, redirectUri, 'S256', `${issuer}/mcp`],
                'authorization request [response_type, client_id, redirect_uri, code_challenge_method, resource]',
            );
            expect(/^[A-Za-z0-9_-]{43}$/.test(q.code_challenge ?? ''), `code_challenge ${short(q.code_challenge)}`);
            await t1.finishAuth(code);
            const token = wire.exchanges.filter((e) => e.path === '/token');
            expectEq(token.map((e) => [e.status, e.form?.grant_type]), [[200, 'authorization_code']], 'token requests [status, grant_type]');
            expect((token[0].authorization ?? '').startsWith('Basic '), 'the code exchange did not authenticate the client with HTTP Basic');
            expect(!('client_secret' in (token[0].form ?? {})), 'the client secret went in the token request body');
            expect((token[0].form?.code_verifier ?? '').length >= 43, 'no code_verifier in the token request');
            expect(provider.stored?.access_token && provider.stored?.refresh_token, 'no access and refresh token stored');
            await first.client.close().catch(() => {});
            ctx = await connectCtx('oauth', transportFor(), { log, wire });
            await checkConnected(ctx, { http: true });
            const mcp = wire.exchanges.filter((e) => e.path === '/mcp' && e.status !== 401);
            expect(mcp.length > 0 && mcp.every((e) => e.authorization === `Bearer ${provider.stored.access_token}`), 'an MCP request after the authorization went without the access token');
            expect(!wire.exchanges.some((e) => e.path.endsWith('/register')), 'the SDK registered a client (it has a pre-registered one)');
        }, { log });
        if (ok) {
            try {
                await sdkChecks(ctx, { resumable: true });
            } finally {
                await ctx.client.close().catch(() => {});
            }
            await tasksExtensionCheck('oauth', (capabilities) => connectCtx('oauth-ext', transportFor(), { capabilities, log, wire }), log);
        }
        await check('oauth: the client secret, the codes and the tokens appear in no bridge log line', async () => {
            const text = readFileSync(log, 'utf8');
            expect(text.includes('OAuth enabled'), 'the bridge did not log "OAuth enabled" (wrong log?)');
            const values = [['client secret', secret]];
            for (const a of provider.authorizations) if (a.back.code) values.push(['authorization code', a.back.code]);
            for (const t of provider.tokenHistory) values.push(['access token', t.access_token], ['refresh token', t.refresh_token], ['access token signature', t.access_token.split('.').pop()]);
            for (const [what, v] of values) expect(v && !text.includes(v), `${what} found in the bridge's stderr`);
        }, { log });
    } finally {
        await stopBridge(bridge);
    }
}

async function stopBridge(bridge) {
    if (!bridge?.proc) return;
    await check(`${bridge.label}: the HTTP bridge exits 0 on SIGTERM`, async () => {
        const status = await bridge.stop();
        expectEq(status, { code: 0, signal: null }, 'exit status');
    }, { log: bridge.log, limitMs: 30000 });
}

// ------------------------------------------------------------------------------------------------
// the Inspector CLI

function runInspector(args, { env = {}, limitMs = 60000 } = {}) {
    const home = join(opt.work, 'inspector-home');
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const childEnv = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: home,
        XDG_CONFIG_HOME: home,
        MCP_CATALOG_PATH: join(home, 'mcp.json'),
        MCP_CLIENT_CONFIG_PATH: join(home, 'client.json'),
        NO_PROXY: '127.0.0.1,localhost,::1',
        no_proxy: '127.0.0.1,localhost,::1',
        CI: 'true',
        ...env,
    };
    return new Promise((resolve) => {
        const child = spawn(process.execPath, [opt.inspector, '--cli', ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
        children.add(child);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c) => (stdout += c));
        child.stderr.on('data', (c) => (stderr += c));
        const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
        child.on('exit', (code, signal) => {
            clearTimeout(timer);
            children.delete(child);
            resolve({ code, signal, stdout, stderr });
        });
    });
}

/** The --strict findings on stderr: `Error|Warning: tool "x"` + `Path:` lines, and the count line. */
function strictFindings(stderr) {
    const lines = stderr.split('\n');
    const findings = [];
    for (let i = 0; i < lines.length; i++) {
        const m = /^(Error|Warning): tool "([^"]+)"/.exec(lines[i]);
        if (m) findings.push(`${m[1]} ${m[2]} ${(lines[i + 1] ?? '').replace(/^\s*Path:\s*/, '')}`);
    }
    const summary = lines.find((l) => /^\d+ errors?, \d+ warnings? across/.test(l));
    return { findings, summary };
}

function parseJsonOutput(stdout) {
    try {
        return JSON.parse(stdout);
    } catch {
        return undefined;
    }
}

async function inspectorChecks(bearer) {
    const stdioLog = join(opt.work, 'inspector-stdio.log');
    const targets = [
        {
            label: 'stdio',
            args: () => [opt.bridge, '-e', `OPENCLAW_INSTANCES=${instancesJson()}`, '-e', `OPENCLAW_MCP_DATA_DIR=${newDir('data-inspector')}`, '-e', 'NO_PROXY=127.0.0.1'],
        },
        {
            label: 'http',
            args: () => [bearer.url('/mcp'), '--transport', 'http', '--header', `Authorization: Bearer ${bearer.token}`],
        },
    ];
    for (const target of targets) {
        for (const era of ['legacy', 'modern']) {
            const name = `inspector ${target.label} --protocol-era ${era}`;
            const log = target.label === 'stdio' ? stdioLog : bearer.log;
            await check(`${name}: tools/list --strict lists the ten tools and reports nothing`, async () => {
                const r = await runInspector([...target.args(), '--protocol-era', era, '--format', 'json', '--strict', '--method', 'tools/list']);
                if (target.label === 'stdio') appendFileSync(stdioLog, r.stderr);
                const out = parseJsonOutput(r.stdout);
                const { findings, summary } = strictFindings(r.stderr);
                expect(r.code === 0 || findings.length, `exit ${r.code ?? r.signal}; stderr: ${short(r.stderr.split('\n').filter((l) => !/^\d{4}-\d\d-\d\dT/.test(l)).join(' | '), 500)}`);
                expect(findings.length === 0, `--strict reported ${summary ?? `${findings.length} findings`} (exit ${r.code}): ${findings.join('; ')}`);
                expectEq(r.code, 0, 'exit status');
                const tools = (out?.result ?? out)?.tools;
                expect(Array.isArray(tools), `no tools in the output: ${short(r.stdout)}`);
                expectEq(tools.map((t) => t.name), TOOL_NAMES, 'tool names');
            }, { limitMs: 70000 });
            await check(`${name}: tools/call openclaw_chat returns the answer`, async () => {
                const message = `hello inspector ${target.label} ${era}`;
                const r = await runInspector([...target.args(), '--protocol-era', era, '--format', 'json', '--method', 'tools/call', '--tool-name', 'openclaw_chat', '--tool-args-json', JSON.stringify({ message })]);
                if (target.label === 'stdio') appendFileSync(stdioLog, r.stderr);
                expectEq(r.code, 0, `exit status (stderr: ${short(r.stderr.split('\n').filter((l) => !/^\d{4}-\d\d-\d\dT/.test(l)).join(' | '), 400)})`);
                const out = parseJsonOutput(r.stdout);
                expect(out, `stdout is not JSON: ${short(r.stdout)}`);
                const result = out.result ?? out;
                expect(result.isError !== true, `isError result: ${short(result)}`);
                expectEq(result.content?.[0]?.text, `echo: ${message}`, `the answer (result ${short(result, 300)})`);
                if (era === 'modern') expectEq(result.resultType, 'complete', `resultType (2026-07-28 results carry it; result ${short(result, 300)})`);
            }, { log, limitMs: 70000 });
        }
    }
}

// ------------------------------------------------------------------------------------------------
// main

async function main() {
    const started = performance.now();
    console.log(`e2e-typescript: @modelcontextprotocol/sdk ${sdkVersion()} on Node ${process.version}; transports ${SELECTED.join(', ')}`);
    if (SELECTED.includes('stdio')) await stdioChecks();
    if (SELECTED.includes('oauth')) await oauthChecks();
    let bearer;
    if (SELECTED.some((t) => ['bearer', 'sse', 'inspector'].includes(t))) {
        const ok = await check('bearer: start the bridge with a static bearer token (MCP_BEARER_TOKENS)', async () => {
            bearer = await bearerBridge();
        }, { log: join(opt.work, 'bridge-bearer.log') });
        if (ok) {
            try {
                if (SELECTED.includes('bearer')) await bearerChecks(bearer);
                if (SELECTED.includes('sse')) await sseChecks(bearer);
                if (SELECTED.includes('inspector')) await inspectorChecks(bearer);
            } finally {
                await stopBridge(bearer);
            }
        }
    }
    await check('the gateway token appears in no bridge log line', async () => {
        for (const name of ['bridge-stdio.log', 'bridge-oauth.log', 'bridge-bearer.log', 'inspector-stdio.log']) {
            let text = '';
            try {
                text = readFileSync(join(opt.work, name), 'utf8');
            } catch {
                continue;
            }
            expect(!text.includes(opt['token-a']), `the gateway token is in ${name}`);
        }
    });
    console.log(`e2e-typescript checks took ${((performance.now() - started) / 1000).toFixed(1)} s`);
    if (results.failed) {
        console.log('failed checks:');
        for (const f of results.failures) console.log(`  - ${short(f, 600)}`);
    }
    console.log(`e2e-typescript: ${results.passed} passed, ${results.failed} failed`);
    return results.failed ? 1 : 0;
}

function sdkVersion() {
    try {
        return JSON.parse(readFileSync(new URL('./node_modules/@modelcontextprotocol/sdk/package.json', import.meta.url), 'utf8')).version;
    } catch {
        return '?';
    }
}

const total = setTimeout(() => {
    console.log(`FAIL the whole run: not finished after ${TOTAL_TIMEOUT_S} s`);
    console.log(`e2e-typescript: ${results.passed} passed, ${results.failed + 1} failed`);
    process.exit(1);
}, TOTAL_TIMEOUT_S * 1000);
total.unref();

main().then(
    (code) => process.exit(code),
    (err) => {
        console.log(`FAIL the run itself: ${redact(describe(err))}`);
        console.log(`e2e-typescript: ${results.passed} passed, ${results.failed + 1} failed`);
        process.exit(1);
    },
);
