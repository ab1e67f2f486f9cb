// rest: HTTP/1.1 between a consumer and the provider's socket, with the link's identity on every request
// (`X-PV-Client: <consumer>`, `X-PV-Role: <role>`), the role's access policy checked on every request when the
// provider narrows it, and nothing invalid passed on (docs/rest.md). The provider is dialled as root or, when the
// service asks for it, as the role (role-credentials.ts).
import { type HttpHeader, serializeRequestHead } from '../protocols/http/index.js';
import { dialProviderFor } from './dial.js';
import { relay } from './relay.js';
import { CLIENT_FIELD, RestConnection, ROLE_FIELD } from './rest-connection.js';
import { type RestPolicy, restPolicyOf } from './rest-policy.js';
import { dialCredentials } from './role-credentials.js';
import { type Credentials, type LinkContext, type Mediator, TerminalLinkError } from './types.js';

export interface RestLinkState {
  /** The identity fields every request gets, in this order. */
  identity: HttpHeader[];
  /** What the role may request; null: anything. */
  policy: RestPolicy | null;
  /** Who the provider is dialled as; undefined: the daemon itself. */
  credentials: Credentials | undefined;
}

/** The link's identity as header fields; a consumer or role that cannot be a field value fails the link. */
export function identityOf(link: Pick<LinkContext, 'spec'>): HttpHeader[] {
  const identity = [
    { name: CLIENT_FIELD, value: link.spec.consumer },
    { name: ROLE_FIELD, value: link.spec.role },
  ];
  try {
    serializeRequestHead({ method: 'GET', target: '/', version: '1.1', headers: identity });
  } catch (error) {
    throw new TerminalLinkError(`the link's identity cannot be sent in HTTP: ${(error as Error).message}`);
  }
  return identity;
}

export const restMediator: Mediator<RestLinkState> = {
  type: 'rest',
  async add(link) {
    return {
      identity: identityOf(link),
      policy: restPolicyOf(link.spec.role, link.narrowings),
      credentials: await dialCredentials(link),
    };
  },
  onConnection(consumer, link, state) {
    dialProviderFor(
      consumer,
      link,
      (provider) => {
        const options = { counters: link.counters, limits: link.relayLimits, log: link.log };
        // The connection's state lives as long as the relay holds its filters.
        new RestConnection(
          { identity: state.identity, policy: state.policy, log: link.log, refused: link.refused },
          (filters) => relay(consumer, provider, { ...options, ...filters }),
        );
      },
      state.credentials,
    );
  },
};
