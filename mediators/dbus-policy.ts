// The provider's access policy on a dbus link (docs/dbus.md, "Access policy"): which method calls a consumer may
// send, judged on the consumer → bus stream before anything reaches the bus.
//
// Only method calls are judged; signals, replies and errors pass. A call to the bus driver is judged by the driver
// rules below (read-only calls allowed, RequestName only for names in some entry's `own`, AddMatch only for
// well-formed rules without eavesdrop=true, anything that changes bus state or widens visibility refused); any
// other call is allowed when one of the role's entries matches its interface, member and path. Destinations are
// not part of a rule, so no unique ↔ well-known name tracking is needed: a call to a unique name is judged like a
// call to the name it owns. A refused call is answered by the mediator with an AccessDenied error (unless it
// expects no reply) and reported once per distinct refusal by the daemon.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../native/package-root.js';
import {
  type DBusMessage,
  MessageFlag,
  MessageType,
  marshal,
  type RoutingFields,
  readRoutingFields,
  unmarshal,
} from '../protocols/dbus/index.js';
import type { MatchRuleParser } from '../protocols/dbus/match-rule.js';
import { matchesAny, type Narrowing, PatternSet } from '../protocols/graph/allow.js';
import type { MessageInspector } from './dbus-messages.js';
import { type FilterSink, RelayRejection } from './relay.js';
import type { Refusal } from './types.js';

const DRIVER = 'org.freedesktop.DBus';
const ACCESS_DENIED = 'org.freedesktop.DBus.Error.AccessDenied';
const MATCH_RULE_INVALID = 'org.freedesktop.DBus.Error.MatchRuleInvalid';

/**
 * The bus driver's calls a narrowed role may make, by interface: those that only read (the bus's names, ids and
 * the credentials it already shows every peer), plus its own connection's names and matches. RequestName and
 * AddMatch are further checked on their argument. Everything else the driver offers is refused: activation
 * (StartServiceByName, UpdateActivationEnvironment), ReloadConfig, Properties.Set, monitoring (BecomeMonitor),
 * the Debug.Stats and Verbose interfaces (other connections' match rules and statistics), the Containers1
 * interface, and any method a future bus adds.
 */
const DRIVER_CALLS: Readonly<Record<string, readonly string[]>> = {
  [DRIVER]: [
    'Hello',
    'RequestName',
    'ReleaseName',
    'AddMatch',
    'RemoveMatch',
    'GetNameOwner',
    'NameHasOwner',
    'ListNames',
    'ListActivatableNames',
    'ListQueuedOwners',
    'GetId',
    'GetConnectionUnixUser',
    'GetConnectionUnixProcessID',
    'GetConnectionCredentials',
    'GetAdtAuditSessionData',
    'GetConnectionSELinuxSecurityContext',
  ],
  'org.freedesktop.DBus.Peer': ['Ping', 'GetMachineId'],
  'org.freedesktop.DBus.Introspectable': ['Introspect'],
  'org.freedesktop.DBus.Properties': ['Get', 'GetAll'],
};
/** A driver call without INTERFACE is dispatched by member name; no allowed member shares its name with a refused one. */
const DRIVER_MEMBERS = new Set(Object.values(DRIVER_CALLS).flat());

/** Refusals held while the consumer's unique name is not known yet (a client that pipelines after Hello). */
const MAX_HELD_REFUSALS = 256;

/** A refused call: what the consumer is answered and what the daemon is told. */
interface Verdict extends Refusal {
  errorName: string;
  /** The error's text for the consumer. */
  text: string;
}

let matchRuleParser: Promise<MatchRuleParser> | undefined;

/**
 * The match-rule parser, built once from the grammar shipped with the daemon, on the first link with a narrowed
 * role: a daemon without such links never loads it. The device bundle ships match-rule.js (with the ebnf package)
 * as a file of its own at this same relative path, so that its source is not held by an idle daemon either.
 */
export function loadMatchRuleParser(): Promise<MatchRuleParser> {
  matchRuleParser ??= (async () => {
    const { MATCH_RULE_GRAMMAR_FILES, MatchRuleParser } = await import('../protocols/dbus/match-rule.js');
    const texts = await Promise.all(
      MATCH_RULE_GRAMMAR_FILES.map((file) => readFile(join(PACKAGE_ROOT, file), 'utf8')),
    );
    return new MatchRuleParser(texts.join('\n'));
  })().catch((error: Error) => {
    matchRuleParser = undefined;
    throw new Error(`the D-Bus match-rule grammar cannot be loaded: ${error.message}`);
  });
  return matchRuleParser;
}

/** One entry of the role, compiled for a check per message; null: the entry does not narrow that field. */
interface CallEntry {
  interfaces: PatternSet | null;
  members: PatternSet | null;
  paths: PatternSet | null;
}

const compiled = (patterns: readonly string[] | undefined) =>
  patterns === undefined ? null : new PatternSet(patterns);

/** A role's narrowings on one dbus link, judging calls. */
export class DBusCallPolicy {
  private readonly entries: readonly CallEntry[];

  constructor(
    private readonly role: string,
    private readonly narrowings: readonly Narrowing[],
    private readonly matchRules: MatchRuleParser,
  ) {
    this.entries = narrowings.map((entry) => ({
      interfaces: compiled(entry.interfaces),
      members: compiled(entry.members),
      paths: compiled(entry.paths),
    }));
  }

  /** Null when the message may go to the bus; else why not. `message` is one whole message, `fields` its fields. */
  judge(fields: RoutingFields, message: Buffer): Verdict | null {
    if (fields.type !== MessageType.METHOD_CALL) return null;
    if (fields.destination === DRIVER) return this.judgeDriverCall(fields, message);
    const { interface: iface, member = '', path = '' } = fields;
    for (const entry of this.entries) if (failedField(entry, iface, member, path) === null) return null;
    const failed = new Set(this.entries.map((entry) => failedField(entry, iface, member, path)));
    const call = `${iface === undefined ? '' : `${iface}.`}${member} on ${path}`;
    return this.denied([...failed].join(', '), `call ${call} to ${fields.destination ?? '(no destination)'}`);
  }

  private judgeDriverCall(fields: RoutingFields, message: Buffer): Verdict | null {
    const member = fields.member ?? '';
    const known =
      fields.interface === undefined
        ? DRIVER_MEMBERS.has(member)
        : (DRIVER_CALLS[fields.interface]?.includes(member) ?? false);
    const name = `${fields.interface ?? DRIVER}.${member}`;
    if (!known) return this.denied('bus driver', `call ${name} to ${DRIVER}`);
    if (member === 'RequestName') {
      const wanted = firstString(message);
      if (wanted !== undefined && this.narrowings.some((entry) => matchesAny(entry.own ?? [], wanted))) {
        return null;
      }
      return this.denied('own', `RequestName ${wanted ?? '(no name)'}`);
    }
    if (member === 'AddMatch') {
      const rule = firstString(message);
      const problem = rule === undefined ? 'no rule' : this.matchRules.problem(rule);
      if (problem !== null) {
        return {
          rule: `${this.role}: match rule`,
          what: `AddMatch with a malformed rule (${problem})`,
          errorName: MATCH_RULE_INVALID,
          text: `pv-xconnect: malformed match rule: ${problem}`,
        };
      }
      if (this.matchRules.parse(rule as string).get('eavesdrop') === 'true') {
        return this.denied('eavesdrop', 'AddMatch with eavesdrop=true');
      }
    }
    return null;
  }

  private denied(axis: string, what: string): Verdict {
    return {
      rule: `${this.role}: ${axis}`,
      what,
      errorName: ACCESS_DENIED,
      text: `pv-xconnect: the provider's policy does not let role '${this.role}' ${what}`,
    };
  }
}

/** The first field of `entry` that does not let the call through; null when the entry allows it. */
function failedField(
  entry: CallEntry,
  iface: string | undefined,
  member: string,
  path: string,
): string | null {
  if (entry.interfaces !== null && (iface === undefined || !entry.interfaces.has(iface))) return 'interfaces';
  if (entry.members !== null && !entry.members.has(member)) return 'members';
  if (entry.paths !== null && !entry.paths.has(path)) return 'paths';
  return null;
}

/** The first argument of a driver call when it is a string (RequestName's name, AddMatch's rule). */
function firstString(message: Buffer): string | undefined {
  let decoded: DBusMessage;
  try {
    decoded = unmarshal(message);
  } catch {
    return undefined;
  }
  const first = decoded.body[0];
  return decoded.signature.startsWith('s') && typeof first === 'string' ? first : undefined;
}

/**
 * One consumer connection under a policy: judges what the consumer sends, answers refused calls, and learns the
 * consumer's unique name from the bus's reply to Hello (the DESTINATION of every answer; answers due before it
 * wait for it, and go right after the Hello reply).
 */
export class DBusPolicySession {
  private helloSerial: number | undefined;
  private uniqueName: string | undefined;
  private held: { serial: number; verdict: Verdict }[] = [];
  private replySerial = 0;

  constructor(
    private readonly policy: DBusCallPolicy,
    private readonly refused: (refusal: Refusal) => void,
  ) {}

  /** For the consumer → bus direction. */
  readonly fromConsumer: MessageInspector = {
    admit: (message, sink) => {
      const fields = readRoutingFields(message);
      if (
        fields.type === MessageType.METHOD_CALL &&
        fields.destination === DRIVER &&
        fields.member === 'Hello'
      ) {
        this.helloSerial ??= fields.serial;
      }
      const verdict = this.policy.judge(fields, message);
      if (verdict === null) return true;
      this.refused({ rule: verdict.rule, what: verdict.what });
      if ((fields.flags & MessageFlag.NO_REPLY_EXPECTED) === 0) this.answer(fields.serial, verdict, sink);
      return false;
    },
  };

  /** For the bus → consumer direction: only until the reply to Hello went by. */
  readonly fromBus: MessageInspector = {
    admit: (message) => {
      if (this.uniqueName !== undefined || this.helloSerial === undefined) return true;
      const fields = readRoutingFields(message);
      if (fields.type === MessageType.METHOD_RETURN && fields.replySerial === this.helloSerial) {
        const name = firstString(message);
        if (name === undefined) throw new RelayRejection('the bus answered Hello without a unique name');
        this.uniqueName = name;
      }
      return true;
    },
    afterMessages: (sink) => {
      const destination = this.uniqueName;
      if (destination === undefined || this.held.length === 0) return;
      for (const { serial, verdict } of this.held.splice(0)) {
        sink.forward(this.errorReply(serial, verdict, destination));
      }
    },
  };

  private answer(serial: number, verdict: Verdict, sink: FilterSink): void {
    if (this.uniqueName !== undefined) {
      sink.reply(this.errorReply(serial, verdict, this.uniqueName));
      return;
    }
    if (this.held.length >= MAX_HELD_REFUSALS) {
      throw new RelayRejection(`more than ${MAX_HELD_REFUSALS} refused calls before the bus answered Hello`);
    }
    this.held.push({ serial, verdict });
  }

  private errorReply(serial: number, verdict: Verdict, destination: string): Buffer {
    return marshal({
      type: MessageType.ERROR,
      flags: MessageFlag.NO_REPLY_EXPECTED,
      serial: this.nextSerial(),
      errorName: verdict.errorName,
      replySerial: serial,
      // As a refusal by the bus's own policy: from the driver, which every client library takes an error from.
      sender: DRIVER,
      destination,
      signature: 's',
      body: [verdict.text],
    });
  }

  /** Serials of the mediator's own answers: any non-zero number will do (clients match REPLY_SERIAL only). */
  private nextSerial(): number {
    this.replySerial = (this.replySerial % 0xffffffff) + 1;
    return this.replySerial;
  }
}
