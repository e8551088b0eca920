#!/usr/bin/env python3
"""Shares of a CPU profile by where the time goes, from collapsed stacks on stdin.

Input: `inferno-collapse-perf` (or `stackcollapse-perf.pl`) output, one `frame;frame;... count`
line per stack. Each sample goes to the first group, in the order below, that one of its frames
matches: a sample inside an AWS call counts as the AWS SDK's even when its leaf is TLS or the
kernel. Kernel frames (`[k]`, or names inferno marks with `_[k]`) are also counted apart, so that
user and system time can be told apart whatever group they fall in.

    perf script -i op.data | inferno-collapse-perf --all | python3 bench/profile-groups.py 1000

With a number of lifecycles as the argument, each group also gets its CPU seconds per 1,000
lifecycles: perf's software clock (what it samples where there are no hardware counters, as in
these VMs) weighs each sample in nanoseconds, so the counts add up to CPU time.
"""

import re
import sys

# (group, pattern over one frame), the first matching group wins.
GROUPS = [
    ("AWS SDK calls (orchestrator, interceptors, SigV4, (de)serialization)",
     r"^<?(aws_smithy_|aws_sdk_|aws_sigv4|aws_runtime|aws_credential_types|aws_config)"),
    ("publishing Events", r"^<?kube_runtime::events|reconciler::publish"),
    ("Kubernetes requests (kube client)", r"^<?kube_client::"),
    ("the watch (decoding, reflector)", r"^<?kube_runtime::(watcher|reflector|utils)"),
    ("kube-runtime's controller (scheduler, runner)", r"^<?kube_runtime::"),
    ("logging (tracing spans and JSON lines)", r"^<?(tracing_subscriber|tracing_core|tracing::span)"),
    ("metrics", r"^<?prometheus_client|^agentcore_operator::metrics"),
    # The operator's own code, below the roots every task runs under (`main`, the controllers'
    # `run`, which hold the runtime and kube-runtime frames).
    ("the reconcile's own logic (snapshot, decide, status, outcome, patches)",
     r"^<?agentcore_operator::(batch_evaluation::(?!controller::run)|schedule::(?!controller::run)"
     r"|aws|remote|tenancy|api)"),
    ("network I/O outside those: hyper, TLS, kernel TCP",
     r"^<?(hyper|rustls|aws_lc|tokio_rustls|hyper_util|h2::|http_body)|tcp_|sock_|__sys_(send|recv)"),
    ("the async runtime parking and waking", r"^<?tokio::|epoll|futex|schedule"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in GROUPS]
KERNEL = re.compile(r"_\[k\]$|^\[k\]")
# Leaf functions counted across the groups: where the allocator and copies are, whichever code
# called them (every stack is below a task of the runtime, so a group of its own never gets them).
LEAVES = [
    ("of which glibc malloc and free (leaf frames, across the groups)",
     re.compile(r"malloc|free|tcache|unlink_chunk|_int_|realloc|consolidate|sysmalloc")),
    ("of which memcpy and memmove", re.compile(r"memcpy|memmove|memset")),
]


def main() -> None:
    lifecycles = int(sys.argv[1]) if len(sys.argv) > 1 else None
    totals = {name: 0 for name, _ in GROUPS}
    leaves = {name: 0 for name, _ in LEAVES}
    other = kernel = samples = 0
    for line in sys.stdin:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        samples += n
        if KERNEL.search(frames[-1]):
            kernel += n
        for name, pattern in LEAVES:
            if pattern.search(frames[-1]):
                leaves[name] += n
                break
        for name, pattern in COMPILED:
            if any(pattern.search(f) for f in frames):
                totals[name] += n
                break
        else:
            other += n
    if samples == 0:
        sys.exit("no samples on stdin")
    def row(name: str, n: int) -> str:
        share = f"{100 * n / samples:.1f} %"
        if lifecycles is None:
            return f"| {name} | {share} |"
        return f"| {name} | {share} | {n / 1e9 / lifecycles * 1000:.2f} |"

    if lifecycles is None:
        print("| where | share of the operator's CPU |\n|---|---:|")
    else:
        print("| where | share of the operator's CPU | CPU s per 1,000 lifecycles |\n|---|---:|---:|")
    for name, _ in GROUPS:
        print(row(name, totals[name]))
    print(row("other", other))
    print(row("all", samples))
    for name, _ in LEAVES:
        print(row(name, leaves[name]))
    print(f"\nleaf in the kernel: {100 * kernel / samples:.1f} % of the samples")

if __name__ == "__main__":
    main()
