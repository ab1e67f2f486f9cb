// Containers ("platforms") as Pantavisor's state machine sees them: groups and their defaults, status and status
// goal, restart policy, roles, and what a lifecycle action from pv-ctrl does in each status. Pure: no I/O; the
// simulator carries the decisions out with Docker.

/** Upstream's platform statuses, in its enum order (a group's status is the lowest of its unsettled members). */
export const PLATFORM_STATUSES = [
  'NONE',
  'INSTALLED',
  'MOUNTED',
  'BLOCKED',
  'STARTING',
  'STARTED',
  'READY',
  'RECOVERING',
  'STOPPING',
  'STOPPED',
] as const;
export type PlatformStatus = (typeof PLATFORM_STATUSES)[number];

export type RestartPolicy = 'system' | 'container';

export interface GroupDefaults {
  statusGoal: PlatformStatus;
  restartPolicy: RestartPolicy;
}

/** The groups of a stock device.json, in its order: a container's group gives its goal and restart policy. */
export const GROUPS: Readonly<Record<string, GroupDefaults>> = {
  data: { statusGoal: 'MOUNTED', restartPolicy: 'system' },
  root: { statusGoal: 'STARTED', restartPolicy: 'system' },
  platform: { statusGoal: 'STARTED', restartPolicy: 'system' },
  app: { statusGoal: 'STARTED', restartPolicy: 'container' },
};

/** What run.json says about a container's place in the state (every field optional). */
export interface PlatformDeclaration {
  name: string;
  group: string | null;
  statusGoal: string | null;
  restartPolicy: string | null;
  roles: readonly string[];
}

export interface PlatformSettings {
  group: string;
  statusGoal: PlatformStatus;
  restartPolicy: RestartPolicy;
  roles: string[];
  mgmt: boolean;
}

/**
 * Upstream's defaults for containers without a group: when no container is in `root`, the first unconfigured one
 * (in name order) goes there; every other unconfigured one goes to `platform`. Both have restart policy `system`,
 * so only containers in `app`, or with `restart_policy: container`, can be stopped and started through pv-ctrl.
 */
export function settleGroups(declarations: readonly PlatformDeclaration[]): Map<string, PlatformSettings> {
  const sorted = [...declarations].sort((a, b) => a.name.localeCompare(b.name));
  const rootTaken = sorted.some((platform) => platform.group === 'root');
  const firstUnconfigured = rootTaken ? undefined : sorted.find((platform) => platform.group === null);
  const settings = new Map<string, PlatformSettings>();
  for (const platform of sorted) {
    const group = platform.group ?? (platform === firstUnconfigured ? 'root' : 'platform');
    const defaults = GROUPS[group] ?? (GROUPS.platform as GroupDefaults);
    settings.set(platform.name, {
      group,
      statusGoal: (platform.statusGoal as PlatformStatus | null) ?? defaults.statusGoal,
      restartPolicy: (platform.restartPolicy as RestartPolicy | null) ?? defaults.restartPolicy,
      roles: [...platform.roles],
      mgmt: platform.roles.includes('mgmt'),
    });
  }
  return settings;
}

export type ContainerAction = 'start' | 'stop' | 'restart';

/** What an accepted action does to the container (its status is updated by whoever carries it out). */
export type ActionPlan =
  /** Nothing to do (already running, or already stopped by the user). */
  | 'none'
  /** Stopped already: only remember that the user wants it so. */
  | 'mark-user-stopped'
  | 'stop'
  | 'start'
  | 'restart';

/** Upstream's answers to an action refused in the container's current status. */
export const START_REFUSED = 'Container must be in STOPPED, STOPPING, or RECOVERING state to start';
export const RESTART_REFUSED = 'Container state does not allow restart';

/**
 * Upstream's decision table for `PUT /containers/{name}` (ctrl_containers_ep.c): an ActionPlan, or the message of a
 * 400 answer. A stop while starting or running stops it; a start or restart while stopping restarts it after.
 */
export function planAction(
  status: PlatformStatus,
  userStopped: boolean,
  action: ContainerAction,
): ActionPlan | { refused: string } {
  const running = status === 'STARTED' || status === 'STARTING' || status === 'READY';
  const stopped = status === 'STOPPED' || status === 'RECOVERING';
  switch (action) {
    case 'stop':
      if (stopped) return userStopped ? 'none' : 'mark-user-stopped';
      return 'stop';
    case 'start':
      if (running) return 'none';
      if (stopped) return 'start';
      if (status === 'STOPPING') return 'restart';
      return { refused: START_REFUSED };
    case 'restart':
      if (stopped) return 'start';
      if (running || status === 'STOPPING') return 'restart';
      return { refused: RESTART_REFUSED };
  }
}

/** A group's status: READY when every member reached its goal, else the lowest status of those that did not. */
export function groupStatus(
  members: ReadonlyArray<{ status: PlatformStatus; statusGoal: PlatformStatus }>,
): PlatformStatus {
  let status: PlatformStatus = 'READY';
  for (const member of members) {
    if (goalReached(member.status, member.statusGoal)) continue;
    if (PLATFORM_STATUSES.indexOf(member.status) < PLATFORM_STATUSES.indexOf(status)) status = member.status;
  }
  return status;
}

/** STARTED satisfies a STARTED goal, READY satisfies STARTED and READY, MOUNTED only MOUNTED. */
export function goalReached(status: PlatformStatus, goal: PlatformStatus): boolean {
  if (goal === 'STARTED') return status === 'STARTED' || status === 'READY';
  return status === goal;
}
