#!/usr/bin/python3
"""Applies a sandbox plan (test/support/systemd-unit.ts sandboxPlan) and execs the service.

Usage: /usr/bin/python3 seccomp-exec.py PLAN.json

Order, as systemd's exec_child(): a mount namespace with a new /proc (ProtectProc=,
ProcSubset=), umask, resource limits, user and group (no supplementary groups), no_new_privs,
the seccomp filters (libseccomp, through Debian's python3-seccomp;
the filter that kills by default last, since this script's own calls must pass it), execve.
A system call the filters kill ends the service with SIGSYS, as under systemd.
"""
import ctypes
import json
import os
import resource
import sys

import seccomp

OPS = {'eq': seccomp.EQ, 'ne': seccomp.NE, 'gt': seccomp.GT, 'ge': seccomp.GE, 'lt': seccomp.LT, 'masked_eq': seccomp.MASKED_EQ}
RLIMITS = {'core': resource.RLIMIT_CORE}


def action(text):
    if text == 'allow':
        return seccomp.ALLOW
    if text == 'kill':
        return seccomp.KILL_PROCESS
    if text.startswith('errno:'):
        return seccomp.ERRNO(int(text[len('errno:'):]))
    raise SystemExit('seccomp-exec: unknown action %r' % text)


def known(name):
    # systemd skips calls this architecture does not have: names libseccomp does not know, and
    # those it maps to a negative pseudo number (seccomp_load_syscall_filter_set_raw ignores them).
    try:
        return seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) >= 0
    except ValueError:
        return False


def build(spec):
    f = seccomp.SyscallFilter(defaction=action(spec['default']))
    f.set_attr(seccomp.Attr.CTL_NNP, 0)
    for rule in spec['rules']:
        # libseccomp refuses a rule that repeats the default action (EACCES); it changes nothing.
        if not known(rule['syscall']) or rule['action'] == spec['default']:
            continue
        args = [seccomp.Arg(a[0], OPS[a[1]], *a[2:]) for a in rule.get('args', [])]
        f.add_rule(action(rule['action']), rule['syscall'], *args)
    return f


CLONE_NEWNS = 0x20000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
PR_SET_NO_NEW_PRIVS = 38
libc = ctypes.CDLL(None, use_errno=True)


def check(result, what):
    if result != 0:
        raise SystemExit('seccomp-exec: %s failed: %s' % (what, os.strerror(ctypes.get_errno())))


def mount_proc(options):
    check(libc.unshare(CLONE_NEWNS), 'unshare(CLONE_NEWNS)')
    check(libc.mount(None, b'/', None, MS_REC | MS_PRIVATE, None), 'making / private')
    check(libc.mount(b'proc', b'/proc', b'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC, options.encode()), 'mount /proc ' + options)


def main():
    with open(sys.argv[1]) as fh:
        plan = json.load(fh)
    filters = [build(spec) for spec in plan['filters']]
    if plan['procOptions'] is not None:
        mount_proc(plan['procOptions'])
    os.umask(plan['umask'])
    for name, (soft, hard) in plan['rlimits'].items():
        resource.setrlimit(RLIMITS[name], (soft, hard))
    if plan['gid'] is not None:
        os.setgroups([])
        os.setresgid(plan['gid'], plan['gid'], plan['gid'])
    if plan['uid'] is not None:
        os.setresuid(plan['uid'], plan['uid'], plan['uid'])
    if plan['noNewPrivileges']:
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 'prctl(PR_SET_NO_NEW_PRIVS)')
    for f in filters:
        f.load()
    os.execve(plan['argv'][0], plan['argv'], plan['env'])


main()
