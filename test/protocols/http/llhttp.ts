// llhttp, the parser of Node and undici, as a test oracle. undici 8.13.1 ships it compiled to WASM; these are
// internal paths of that pinned version. The WASM imports one callback per parser event; we record them.
import { createRequire } from 'node:module';
import type { HttpHeader } from '../../../protocols/http/index.js';

// The WebAssembly global, typed for what is used here (the project's TS lib has no WebAssembly types).
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const require = createRequire(import.meta.url);
const wasmModule = new wasm.Module(require('undici/lib/llhttp/llhttp-wasm.js') as Buffer);
const constants = require('undici/lib/llhttp/constants.js') as {
  ERROR: Record<string, number>;
  TYPE: { REQUEST: number; RESPONSE: number };
  METHODS: Record<string, number>;
};
const ERROR_NAMES = new Map(Object.entries(constants.ERROR).map(([name, code]) => [code, name]));
const METHOD_NAMES = new Map(Object.entries(constants.METHODS).map(([name, code]) => [code, name]));

/** The methods llhttp knows; it refuses every other token. */
export const LLHTTP_METHODS: ReadonlySet<string> = new Set(Object.keys(constants.METHODS));

export interface LlhttpMessage {
  method: string;
  target: string;
  headers: HttpHeader[];
  body: Buffer;
  trailers: HttpHeader[];
}

export interface LlhttpResult {
  /** Messages llhttp completed, in order. */
  messages: LlhttpMessage[];
  /** llhttp's error name (e.g. `INVALID_HEADER_TOKEN`) and reason, or null. */
  error: { code: string; reason: string } | null;
  /** llhttp stopped parsing HTTP after a CONNECT or upgrade request. */
  upgraded: boolean;
}

interface LlhttpExports {
  memory: { buffer: ArrayBuffer };
  malloc(size: number): number;
  free(pointer: number): void;
  llhttp_alloc(type: number): number;
  llhttp_free(parser: number): void;
  llhttp_execute(parser: number, data: number, length: number): number;
  llhttp_get_method(parser: number): number;
  llhttp_get_error_reason(parser: number): number;
}

/** The message being assembled from callbacks. */
class Recorder {
  readonly messages: LlhttpMessage[] = [];
  private target: Buffer[] = [];
  private fields: { name: Buffer[]; value: Buffer[] }[] = [];
  private lastWasValue = true;
  private body: Buffer[] = [];
  private head: Omit<LlhttpMessage, 'body' | 'trailers'> | null = null;

  begin(): void {
    this.target = [];
    this.fields = [];
    this.lastWasValue = true;
    this.body = [];
    this.head = null;
  }
  url(data: Buffer): void {
    this.target.push(data);
  }
  field(data: Buffer): void {
    if (this.lastWasValue) this.fields.push({ name: [], value: [] });
    this.fields.at(-1)?.name.push(data);
    this.lastWasValue = false;
  }
  value(data: Buffer): void {
    this.fields.at(-1)?.value.push(data);
    this.lastWasValue = true;
  }
  headersComplete(method: string): void {
    this.head = { method, target: Buffer.concat(this.target).toString('latin1'), headers: this.takeFields() };
  }
  data(data: Buffer): void {
    this.body.push(data);
  }
  complete(): void {
    if (this.head === null) return;
    this.messages.push({ ...this.head, body: Buffer.concat(this.body), trailers: this.takeFields() });
  }
  private takeFields(): HttpHeader[] {
    const headers = this.fields.map(({ name, value }) => ({
      name: Buffer.concat(name).toString('latin1'),
      value: Buffer.concat(value)
        .toString('latin1')
        .replace(/^[\t ]+|[\t ]+$/g, ''),
    }));
    this.fields = [];
    this.lastWasValue = true;
    return headers;
  }
}

let recorder = new Recorder();
let llhttp: LlhttpExports;

function bytes(at: number, length: number): Buffer {
  return Buffer.from(new Uint8Array(llhttp.memory.buffer, at, length));
}

const instance = new wasm.Instance(wasmModule, {
  env: {
    wasm_on_message_begin: () => {
      recorder.begin();
      return 0;
    },
    wasm_on_url: (_parser: number, at: number, length: number) => {
      recorder.url(bytes(at, length));
      return 0;
    },
    wasm_on_status: () => 0,
    wasm_on_header_field: (_parser: number, at: number, length: number) => {
      recorder.field(bytes(at, length));
      return 0;
    },
    wasm_on_header_value: (_parser: number, at: number, length: number) => {
      recorder.value(bytes(at, length));
      return 0;
    },
    wasm_on_headers_complete: (parser: number) => {
      recorder.headersComplete(METHOD_NAMES.get(llhttp.llhttp_get_method(parser)) ?? '?');
      return 0;
    },
    wasm_on_body: (_parser: number, at: number, length: number) => {
      recorder.data(bytes(at, length));
      return 0;
    },
    wasm_on_message_complete: () => {
      recorder.complete();
      return 0;
    },
  },
});
llhttp = instance.exports as unknown as LlhttpExports;

/** Parses a request stream fed in the given chunks with llhttp's default (strict) settings. */
export function llhttpParseRequests(chunks: readonly Buffer[]): LlhttpResult {
  recorder = new Recorder();
  const parser = llhttp.llhttp_alloc(constants.TYPE.REQUEST);
  let error: LlhttpResult['error'] = null;
  let upgraded = false;
  try {
    for (const chunk of chunks) {
      if (chunk.length === 0) continue;
      const pointer = llhttp.malloc(chunk.length);
      new Uint8Array(llhttp.memory.buffer, pointer, chunk.length).set(chunk);
      const code = llhttp.llhttp_execute(parser, pointer, chunk.length);
      llhttp.free(pointer);
      if (code === constants.ERROR.PAUSED_UPGRADE) {
        upgraded = true;
        break;
      }
      if (code !== constants.ERROR.OK) {
        error = {
          code: ERROR_NAMES.get(code) ?? String(code),
          reason: cString(llhttp.llhttp_get_error_reason(parser)),
        };
        break;
      }
    }
  } finally {
    llhttp.llhttp_free(parser);
  }
  return { messages: recorder.messages, error, upgraded };
}

function cString(pointer: number): string {
  if (pointer === 0) return '';
  const memory = new Uint8Array(llhttp.memory.buffer);
  const end = memory.indexOf(0, pointer);
  return Buffer.from(memory.subarray(pointer, end)).toString('latin1');
}
