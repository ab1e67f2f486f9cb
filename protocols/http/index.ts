export { type HttpErrorCode, HttpParseError } from './errors.js';
export { fieldNameKey, headerValues, stripFields } from './headers.js';
export { RequestParser } from './request-parser.js';
export { ResponseParser } from './response-parser.js';
export {
  frameBodyEvent,
  type RequestLineParts,
  type StatusLineParts,
  serializeChunk,
  serializeFieldLines,
  serializeLastChunk,
  serializeParsedRequestHead,
  serializeRequestHead,
  serializeResponseHead,
} from './serializer.js';
export { type NormalizedTarget, normalizePath, normalizeTarget } from './target.js';
export {
  type AnsweredRequest,
  type BodyFraming,
  DEFAULT_LIMITS,
  type HttpEvent,
  type HttpHeader,
  type HttpLimits,
  type HttpVersion,
  type RequestEvent,
  type RequestHead,
  type ResponseEvent,
  type ResponseHead,
} from './types.js';
