// What the role of a rest link may request when the provider's `allow` narrows it (docs/rest.md, "Access policy"):
// `methods` match the request method exactly; `paths` match the request-target's path after normalization
// (protocols/http/target.ts), which is then what the provider is sent. A request is allowed when any one of the
// role's entries allows both its method and its path.
import { type Narrowing, PatternSet } from '../protocols/graph/allow.js';
import { normalizePath, normalizeTarget } from '../protocols/http/index.js';
import { TerminalLinkError } from './types.js';

export type RestVerdict =
  | {
      allowed: true;
      /** The target to forward: normalized when the role's paths are checked, else as it came. */
      target: string;
    }
  | {
      allowed: false;
      /** 403 for a request the policy does not allow, 400 for a path that cannot be checked soundly. */
      status: 400 | 403;
      /** The rule that refused it, in the policy's terms: `<role>: methods` or `<role>: paths`. */
      rule: string;
      /** Method and path (without the query), as the policy would have to name them. */
      request: string;
      /** Why a path cannot be checked (400 only). */
      reason: string | null;
    };

/** One entry of the role, compiled for a check per request: sets for exact names, a list of prefixes. */
interface Entry {
  /** null: the entry does not narrow methods. */
  methods: ReadonlySet<string> | null;
  /** null: the entry does not narrow paths. Patterns with their fixed part normalized as request paths are. */
  paths: PatternSet | null;
}

export class RestPolicy {
  private readonly entries: readonly Entry[];
  /** Some entry narrows paths: targets are normalized (and forwarded normalized). */
  private readonly checksPaths: boolean;

  /** A path pattern that no normalized path can match is a TerminalLinkError (the link fails). */
  constructor(
    private readonly role: string,
    narrowings: readonly Narrowing[],
  ) {
    this.entries = narrowings.map((narrowing) => ({
      methods: narrowing.methods === undefined ? null : new Set(narrowing.methods),
      paths: narrowing.paths === undefined ? null : compilePaths(narrowing.paths, role),
    }));
    this.checksPaths = this.entries.some((entry) => entry.paths !== null);
  }

  check(method: string, target: string): RestVerdict {
    let path: string | null = null;
    let forwarded = target;
    if (this.checksPaths) {
      const normalized = normalizeTarget(target);
      if (!normalized.ok) return this.refusal(400, 'paths', method, target, normalized.reason);
      path = normalized.path;
      forwarded = normalized.target;
    }
    let methodListed = false;
    for (const entry of this.entries) {
      if (entry.methods !== null && !entry.methods.has(method)) continue;
      methodListed = true;
      // A target without a path (`*`, CONNECT's host:port) matches no path pattern.
      if (entry.paths === null || (path !== null && entry.paths.has(path))) {
        return { allowed: true, target: forwarded };
      }
    }
    return this.refusal(403, methodListed ? 'paths' : 'methods', method, path ?? target, null);
  }

  private refusal(
    status: 400 | 403,
    axis: 'methods' | 'paths',
    method: string,
    target: string,
    reason: string | null,
  ): RestVerdict {
    const queryAt = target.indexOf('?');
    const shown = queryAt === -1 ? target : target.slice(0, queryAt);
    return { allowed: false, status, rule: `${this.role}: ${axis}`, request: `${method} ${shown}`, reason };
  }
}

/** The policy of a link whose role is narrowed; null when it is not (every request goes on as it came). */
export function restPolicyOf(role: string, narrowings: readonly Narrowing[] | null): RestPolicy | null {
  return narrowings === null ? null : new RestPolicy(role, narrowings);
}

/** Path patterns with their fixed part normalized as request paths are. */
function compilePaths(patterns: readonly string[], role: string): PatternSet {
  return new PatternSet(patterns, (fixed, pattern) => {
    const normalized = normalizePath(fixed);
    if (typeof normalized !== 'string') {
      throw new TerminalLinkError(
        `policy error: the path pattern '${pattern}' of role '${role}' can never match a request (${normalized.reason})`,
      );
    }
    return normalized;
  });
}
