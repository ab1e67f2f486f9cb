/** Why a message was refused. Stable strings: the mediator and the tests match on them. */
export type HttpErrorCode =
  | 'bare-lf'
  | 'bare-cr'
  | 'obs-fold'
  | 'line-too-long'
  | 'headers-too-large'
  | 'too-many-headers'
  | 'invalid-request-line'
  | 'invalid-method'
  | 'invalid-target'
  | 'invalid-version'
  | 'unsupported-version'
  | 'invalid-status-line'
  | 'invalid-header-name'
  | 'space-before-colon'
  | 'invalid-header-value'
  | 'missing-host'
  | 'duplicate-host'
  | 'invalid-host'
  | 'invalid-content-length'
  | 'duplicate-content-length'
  | 'content-length-with-transfer-encoding'
  | 'invalid-transfer-encoding'
  | 'transfer-encoding-in-http10'
  | 'invalid-connection'
  | 'invalid-connect'
  | 'invalid-chunk-size'
  | 'invalid-chunk-extension'
  | 'invalid-chunk-terminator'
  | 'forbidden-trailer'
  | 'data-after-close'
  | 'incomplete-message'
  | 'unexpected-response'
  | 'unexpected-switch';

/** A message the codec refuses. A request parser's error maps to `400 Bad Request` + `Connection: close`. */
export class HttpParseError extends Error {
  override readonly name = 'HttpParseError';

  constructor(
    readonly code: HttpErrorCode,
    message: string,
  ) {
    super(message);
  }
}
