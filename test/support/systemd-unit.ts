/**
 * Runs a command under a systemd unit's sandbox as systemd 252 (Debian 12) builds it, without
 * systemd: the unit's own lines are read, the seccomp filters are computed with systemd's rules
 * and syscall groups (`systemd-analyze syscall-filter`), and test/support/seccomp-exec.py
 * (Debian's python3-seccomp, i.e. libseccomp, which systemd uses too) applies them with the
 * user, umask, limits and environment, then execs the service's ExecStart=.
 *
 * Every [Service] setting is either applied here or listed in NOT_APPLIED with the reason; a
 * setting in neither list fails the test, so a new line in the unit cannot go untested.
 *
 * systemd's rules (src/core/load-fragment.c config_parse_syscall_filter, src/shared/seccomp-util.c):
 * - SystemCallFilter=: the first non-empty assignment decides the kind. Without "~" it is an
 *   allow list and starts with @default; with "~" a deny list. Later assignments with the same
 *   kind add, of the other kind remove; an empty assignment resets. Groups expand recursively.
 * - Allow list: anything else gets SystemCallErrorNumber= (an errno) or, unset, kills the
 *   process (SECCOMP_RET_KILL_PROCESS). Deny list: the listed calls get that action.
 * - Other settings install their own filters; the kernel runs all and the strictest result
 *   wins (seccomp(2)), so one filter per setting is equivalent.
 */
import { spawnSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';

export type Assignments = ReadonlyMap<string, readonly string[]>;
export interface Unit {
  readonly sections: ReadonlyMap<string, Assignments>;
}

/** Parses unit-file syntax: sections, Key=Value, comments (# ;), backslash continuations. */
export function parseUnit(text: string): Unit {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | null = null;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section !== null) {
      current = new Map();
      sections.set(section[1] ?? '', current);
      continue;
    }
    const eq = line.indexOf('=');
    if (current === null || eq <= 0) throw new Error(`unit: cannot parse line ${JSON.stringify(raw)}`);
    const key = line.slice(0, eq).trim();
    const list = current.get(key) ?? [];
    list.push(line.slice(eq + 1).trim());
    current.set(key, list);
  }
  return { sections };
}

/** The assignments of one key in order (several lines accumulate; systemd's meaning per key). */
export function assignments(unit: Unit, section: string, key: string): readonly string[] {
  return unit.sections.get(section)?.get(key) ?? [];
}

/** The value of a single-valued key: the last assignment wins. */
export function single(unit: Unit, section: string, key: string): string | undefined {
  return assignments(unit, section, key).at(-1);
}

export function boolSetting(unit: Unit, key: string): boolean {
  const v = single(unit, 'Service', key);
  return v !== undefined && /^(yes|true|on|1)$/i.test(v);
}

/** `systemd-analyze syscall-filter`: group name → members (system calls and nested @groups). */
export function syscallGroups(): Map<string, string[]> {
  const r = spawnSync('systemd-analyze', ['syscall-filter', '--no-pager'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`systemd-analyze syscall-filter failed: ${r.stderr}`);
  const groups = new Map<string, string[]>();
  let members: string[] | null = null;
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('@')) {
      members = [];
      groups.set(line.trim(), members);
    } else if (members !== null && /^\s+[@a-z0-9_-]+$/.test(line)) {
      members.push(line.trim());
    }
  }
  if (!groups.has('@default') || !groups.has('@system-service')) throw new Error('systemd-analyze syscall-filter: no @default / @system-service group');
  return groups;
}

export function expand(name: string, groups: ReadonlyMap<string, readonly string[]>, out = new Set<string>()): Set<string> {
  if (!name.startsWith('@')) {
    out.add(name);
    return out;
  }
  const members = groups.get(name);
  if (members === undefined) throw new Error(`unknown syscall group ${name}`);
  for (const m of members) expand(m, groups, out);
  return out;
}

/** A seccomp action: allow, kill the process, or fail with an errno. */
export type Action = 'allow' | 'kill' | `errno:${number}`;
/** Argument comparison [index, op, value(, mask value)], as libseccomp's Arg. */
export type ArgCmp = readonly [number, 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'masked_eq', number, number?];
export interface Rule {
  readonly syscall: string;
  readonly action: Action;
  readonly args?: readonly ArgCmp[];
}
export interface Filter {
  /** Which unit setting it implements. */
  readonly setting: string;
  readonly default: Action;
  readonly rules: readonly Rule[];
}

const errno = (name: keyof typeof osConstants.errno): Action => `errno:${osConstants.errno[name]}`;

/** Parses "EPERM" / "1" / "kill" (SystemCallErrorNumber=). */
function errnoAction(v: string): Action {
  if (v === 'kill') return 'kill';
  if (/^\d+$/.test(v)) return `errno:${Number(v)}`;
  const n = (osConstants.errno as Record<string, number | undefined>)[v];
  if (n === undefined) throw new Error(`unknown errno ${v}`);
  return `errno:${n}`;
}

/** SystemCallFilter= + SystemCallErrorNumber=: systemd 252 semantics (see the file comment). */
export function systemCallFilter(unit: Unit, groups: ReadonlyMap<string, readonly string[]>): { filter: Filter; allowList: boolean; calls: ReadonlyMap<string, Action | null> } | null {
  let calls: Map<string, Action | null> | null = null;
  let allowList = false;
  const apply = (name: string, action: Action | null, invert: boolean): void => {
    for (const call of expand(name, groups)) {
      if (calls === null) return;
      if (!invert === allowList) calls.set(call, action);
      else calls.delete(call);
    }
  };
  for (let value of assignments(unit, 'Service', 'SystemCallFilter')) {
    if (value === '') {
      calls = null;
      allowList = false;
      continue;
    }
    const invert = value.startsWith('~');
    if (invert) value = value.slice(1);
    if (calls === null) {
      calls = new Map();
      allowList = !invert;
      if (allowList) apply('@default', null, false);
    }
    for (const word of value.split(/\s+/).filter((w) => w !== '')) {
      const [name = '', err] = word.split(':');
      apply(name, err === undefined ? null : errnoAction(err), invert);
    }
  }
  if (calls === null) return null;
  const errnoSetting = single(unit, 'Service', 'SystemCallErrorNumber');
  const otherwise: Action = errnoSetting === undefined || errnoSetting === '' ? 'kill' : errnoAction(errnoSetting);
  const final: ReadonlyMap<string, Action | null> = calls;
  const rules = [...final].map(([syscall, a]): Rule => ({ syscall, action: allowList ? 'allow' : (a ?? otherwise) }));
  return { filter: { setting: 'SystemCallFilter', default: allowList ? otherwise : 'allow', rules }, allowList, calls: final };
}

/** Address families by name (linux/socket.h): the ones a unit is likely to name. */
const AF: Readonly<Record<string, number>> = { AF_UNIX: 1, AF_LOCAL: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16, AF_PACKET: 17 };
const AF_MAX = 46;

/** RestrictAddressFamilies= (allow list): socket(2) with any other family fails with EAFNOSUPPORT. */
function restrictAddressFamilies(value: string): Filter {
  if (value.startsWith('~')) throw new Error('RestrictAddressFamilies=~ (deny list) is not implemented by this harness');
  const allowed = new Set(value.split(/\s+/).map((n) => {
    const af = AF[n];
    if (af === undefined) throw new Error(`unknown address family ${n}`);
    return af;
  }));
  const rules: Rule[] = [];
  for (let af = 0; af <= AF_MAX; af++) if (!allowed.has(af)) rules.push({ syscall: 'socket', action: errno('EAFNOSUPPORT'), args: [[0, 'eq', af]] });
  rules.push({ syscall: 'socket', action: errno('EAFNOSUPPORT'), args: [[0, 'gt', AF_MAX]] });
  return { setting: 'RestrictAddressFamilies', default: 'allow', rules };
}

/** RestrictNamespaces=yes: no namespace of any kind (seccomp_restrict_namespaces with nothing retained). */
function restrictNamespaces(): Filter {
  // CLONE_NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (linux/sched.h).
  const flags = [0x80, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000];
  const rules: Rule[] = [
    // clone3's flags live in memory where seccomp cannot look: ENOSYS makes glibc fall back to clone.
    { syscall: 'clone3', action: errno('ENOSYS') },
    { syscall: 'setns', action: errno('EPERM') },
  ];
  for (const f of flags) {
    rules.push({ syscall: 'unshare', action: errno('EPERM'), args: [[0, 'masked_eq', f, f]] });
    rules.push({ syscall: 'clone', action: errno('EPERM'), args: [[0, 'masked_eq', f, f]] });
  }
  return { setting: 'RestrictNamespaces', default: 'allow', rules };
}

/** RestrictRealtime=yes: sched_setscheduler with a policy other than OTHER (0), BATCH (3), IDLE (5). */
function restrictRealtime(): Filter {
  const rules: Rule[] = [1, 2, 4].map((p) => ({ syscall: 'sched_setscheduler', action: errno('EPERM'), args: [[1, 'eq', p]] }));
  rules.push({ syscall: 'sched_setscheduler', action: errno('EPERM'), args: [[1, 'gt', 5]] });
  return { setting: 'RestrictRealtime', default: 'allow', rules };
}

/** RestrictSUIDSGID=yes: no set-user/group-ID bit on chmod or file creation. */
function restrictSuidSgid(): Filter {
  const rules: Rule[] = [];
  const O_CREAT = 0o100;
  for (const bit of [0o4000, 0o2000]) {
    rules.push({ syscall: 'chmod', action: errno('EPERM'), args: [[1, 'masked_eq', bit, bit]] });
    rules.push({ syscall: 'fchmod', action: errno('EPERM'), args: [[1, 'masked_eq', bit, bit]] });
    rules.push({ syscall: 'fchmodat', action: errno('EPERM'), args: [[2, 'masked_eq', bit, bit]] });
    rules.push({ syscall: 'creat', action: errno('EPERM'), args: [[1, 'masked_eq', bit, bit]] });
    rules.push({ syscall: 'open', action: errno('EPERM'), args: [[1, 'masked_eq', O_CREAT, O_CREAT], [2, 'masked_eq', bit, bit]] });
    rules.push({ syscall: 'openat', action: errno('EPERM'), args: [[2, 'masked_eq', O_CREAT, O_CREAT], [3, 'masked_eq', bit, bit]] });
  }
  return { setting: 'RestrictSUIDSGID', default: 'allow', rules };
}

/** A setting that refuses a syscall group with EPERM (ProtectClock=, ProtectKernelModules=, …). */
function denyGroup(setting: string, names: readonly string[], groups: ReadonlyMap<string, readonly string[]>): Filter {
  const calls = new Set<string>();
  for (const n of names) expand(n, groups, calls);
  return { setting, default: 'allow', rules: [...calls].map((syscall) => ({ syscall, action: errno('EPERM') })) };
}

/**
 * [Service] settings the harness does not apply, and why. Everything here is either the
 * service manager's own behaviour or a mount/namespace setting whose only effect on the probe
 * would be a failing file access outside the state directory, which the tests on the data
 * directory cover; none of them changes which system calls the probe may make.
 */
export const NOT_APPLIED: ReadonlyMap<string, string> = new Map([
  ['Restart', 'service manager behaviour'],
  ['RestartSec', 'service manager behaviour'],
  ['TimeoutStartSec', 'service manager behaviour'],
  ['TimeoutStopSec', 'service manager behaviour'],
  ['KillSignal', 'the test sends SIGTERM itself'],
  ['ExecReload', 'the test sends SIGHUP itself'],
  ['NotifyAccess', 'only the main process notifies'],
  ['ProtectSystem', 'mount namespace'],
  ['ProtectHome', 'mount namespace'],
  ['PrivateTmp', 'mount namespace'],
  ['ProtectKernelTunables', 'mount namespace (read-only /proc/sys, /sys)'],
  ['ProtectControlGroups', 'mount namespace (read-only cgroupfs)'],
  ['PrivateMounts', 'mount namespace (the service cannot mount anyway: no capability, no @mount)'],
  ['RestartPreventExitStatus', 'service manager behaviour'],
  ['StateDirectoryMode', 'applied with StateDirectory='],
]);

export interface SandboxPaths {
  /** Replaces absolute path prefixes in ExecStart= and Environment= (e.g. /opt/sealflow → the checkout). */
  readonly prefixes: ReadonlyMap<string, string>;
  /** The service's credentials directory (%d, $CREDENTIALS_DIRECTORY). */
  readonly credentialsDir: string;
  /** The state directory (/var/lib/<StateDirectory>, $STATE_DIRECTORY). */
  readonly stateDir: string;
  /** $NOTIFY_SOCKET for Type=notify. */
  readonly notifySocket: string | null;
}

export interface SandboxPlan {
  readonly uid: number | null;
  readonly gid: number | null;
  /** Mount options of a new /proc in a mount namespace of the service (ProtectProc=, ProcSubset=), or null. */
  readonly procOptions: string | null;
  readonly umask: number;
  readonly rlimits: Readonly<Record<string, readonly [number, number]>>;
  readonly noNewPrivileges: boolean;
  readonly filters: readonly Filter[];
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

const APPLIED = new Set([
  'Type', 'ExecStart', 'Environment', 'DynamicUser', 'StateDirectory', 'LoadCredential', 'LoadCredentialEncrypted', 'NoNewPrivileges',
  'SystemCallFilter', 'SystemCallErrorNumber', 'SystemCallArchitectures', 'RestrictAddressFamilies', 'RestrictNamespaces', 'RestrictRealtime',
  'RestrictSUIDSGID', 'LockPersonality', 'ProtectClock', 'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectHostname', 'PrivateDevices',
  'MemoryDenyWriteExecute', 'UMask', 'CapabilityBoundingSet', 'AmbientCapabilities', 'LimitCORE', 'ProtectProc', 'ProcSubset',
]);

/** [Service] keys that neither APPLIED nor NOT_APPLIED lists (must be empty for the test to mean anything). */
export function unhandledSettings(unit: Unit): string[] {
  return [...(unit.sections.get('Service')?.keys() ?? [])].filter((k) => !APPLIED.has(k) && !NOT_APPLIED.has(k));
}

/** systemd's DynamicUser= range starts here (61184–65519); the first one is what a fresh host picks. */
export const DYNAMIC_UID = 61184;

function substitute(value: string, paths: SandboxPaths): string {
  let v = value.replace(/%d/g, paths.credentialsDir).replace(/%%/g, '%');
  if (/%[a-zA-Z]/.test(v)) throw new Error(`unit specifier not supported by the harness in ${JSON.stringify(value)}`);
  for (const [from, to] of paths.prefixes) v = v.split(from).join(to);
  return v;
}

/** Splits Environment= values: space-separated assignments, double quotes group. */
function environmentAssignments(value: string): string[] {
  return [...value.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}

/** Computes everything seccomp-exec.py needs to start ExecStart= under the unit's sandbox. */
export function sandboxPlan(unit: Unit, groups: ReadonlyMap<string, readonly string[]>, paths: SandboxPaths, execPathOf: (argv0: string) => string): SandboxPlan {
  const unhandled = unhandledSettings(unit);
  if (unhandled.length > 0) throw new Error(`the harness does not know how to apply ${unhandled.join(', ')}`);
  const svc = (k: string): string | undefined => single(unit, 'Service', k);
  if (boolSetting(unit, 'MemoryDenyWriteExecute')) throw new Error('MemoryDenyWriteExecute=yes is not implemented by the harness (and Node.js JIT needs W+X memory)');
  for (const k of ['CapabilityBoundingSet', 'AmbientCapabilities']) {
    if ((svc(k) ?? '') !== '') throw new Error(`${k}= with capabilities is not implemented by the harness (the service would run without any)`);
  }
  if ((svc('SystemCallArchitectures') ?? 'native') !== 'native') throw new Error('SystemCallArchitectures= other than native is not implemented');

  const filters: Filter[] = [];
  const families = svc('RestrictAddressFamilies');
  if (families !== undefined && families !== '') filters.push(restrictAddressFamilies(families));
  if (boolSetting(unit, 'RestrictNamespaces')) filters.push(restrictNamespaces());
  if (boolSetting(unit, 'RestrictRealtime')) filters.push(restrictRealtime());
  // DynamicUser=yes implies RestrictSUIDSGID=yes (systemd.exec(5)).
  if (boolSetting(unit, 'RestrictSUIDSGID') || boolSetting(unit, 'DynamicUser')) filters.push(restrictSuidSgid());
  if (boolSetting(unit, 'LockPersonality')) filters.push({ setting: 'LockPersonality', default: 'allow', rules: [{ syscall: 'personality', action: errno('EPERM'), args: [[0, 'ne', 0]] }] });
  if (boolSetting(unit, 'ProtectClock')) filters.push(denyGroup('ProtectClock', ['@clock'], groups));
  if (boolSetting(unit, 'ProtectKernelModules')) filters.push(denyGroup('ProtectKernelModules', ['@module'], groups));
  if (boolSetting(unit, 'ProtectKernelLogs')) filters.push(denyGroup('ProtectKernelLogs', ['syslog'], groups));
  if (boolSetting(unit, 'ProtectHostname')) filters.push(denyGroup('ProtectHostname', ['sethostname', 'setdomainname'], groups));
  if (boolSetting(unit, 'PrivateDevices')) filters.push(denyGroup('PrivateDevices', ['@raw-io'], groups));
  // The filter that kills goes last: the python helper needs the calls it makes before exec.
  const scf = systemCallFilter(unit, groups);
  if (scf !== null) filters.push(scf.filter);

  const execStart = svc('ExecStart');
  if (execStart === undefined) throw new Error('no ExecStart=');
  const argv = execStart.split(/\s+/).map((w) => substitute(w, paths));
  argv[0] = execPathOf(argv[0] ?? '');

  const dynamic = boolSetting(unit, 'DynamicUser');
  const uid = dynamic ? DYNAMIC_UID : null;
  const hidepid = svc('ProtectProc') ?? 'default';
  const subset = svc('ProcSubset') ?? 'all';
  const procOptions = [...(hidepid === 'default' ? [] : [`hidepid=${hidepid}`]), ...(subset === 'all' ? [] : [`subset=${subset}`])].join(',') || null;
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin',
    LANG: 'C.UTF-8',
    ...(dynamic ? { USER: 'sealflow', LOGNAME: 'sealflow', HOME: '/', SHELL: '/usr/sbin/nologin' } : {}),
    CREDENTIALS_DIRECTORY: paths.credentialsDir,
    STATE_DIRECTORY: paths.stateDir,
    ...(svc('Type') === 'notify' && paths.notifySocket !== null ? { NOTIFY_SOCKET: paths.notifySocket } : {}),
  };
  for (const value of assignments(unit, 'Service', 'Environment')) {
    for (const a of environmentAssignments(value)) {
      const eq = a.indexOf('=');
      if (eq > 0) env[a.slice(0, eq)] = substitute(a.slice(eq + 1), paths);
    }
  }
  const core = svc('LimitCORE');
  const rlimits: Record<string, readonly [number, number]> = core === undefined ? {} : { core: [Number(core), Number(core)] };
  if (Object.values(rlimits).some(([s]) => !Number.isInteger(s))) throw new Error(`LimitCORE=${core ?? ''} is not a number`);
  return {
    uid,
    gid: uid,
    procOptions,
    umask: Number.parseInt(svc('UMask') ?? '0022', 8),
    rlimits,
    noNewPrivileges: boolSetting(unit, 'NoNewPrivileges') || scf !== null,
    filters,
    argv,
    env,
  };
}

/** `name:path` credentials of LoadCredential= and LoadCredentialEncrypted= (the latter decrypted by systemd before the start). */
export function credentials(unit: Unit): { name: string; source: string; encrypted: boolean }[] {
  const out: { name: string; source: string; encrypted: boolean }[] = [];
  for (const [key, encrypted] of [['LoadCredential', false], ['LoadCredentialEncrypted', true]] as const) {
    for (const v of assignments(unit, 'Service', key)) {
      const colon = v.indexOf(':');
      out.push({ name: colon < 0 ? v : v.slice(0, colon), source: colon < 0 ? '' : v.slice(colon + 1), encrypted });
    }
  }
  return out;
}
