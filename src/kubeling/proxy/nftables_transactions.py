"""nft transactions from rendered Services: the fixed part of the table, a full rewrite, a diff.

Pure text, like the renderer (`nftables_rules`). Every function returns one `nft -f -`
batch, which the kernel applies atomically. `full_transaction` rebuilds everything and
deletes what a previous run left, without deleting the table, so the affinity sets keep
their state across restarts and resyncs (`replace=True` deletes the table first: the last
resort when the kernel refuses the table as it is). `diff_transaction` writes only what
changed between two renderings of some Services, ordered so that nothing is referred to
before it exists or deleted while still referred to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kubeling.proxy.nftables_rules import (
    BASE_CHAINS,
    FAMILY,
    MAPS,
    MARK_MASQ_CHAIN,
    NO_ENDPOINT_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    REJECT_CHAIN,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    TABLE,
    RuleSettings,
    ServiceRules,
    is_affinity_set,
    is_service_chain,
)


def _t(what: str, name: str = "") -> str:
    return f"{what} {FAMILY} {TABLE}" + (f" {name}" if name else "")


def base_lines(settings: RuleSettings) -> list[str]:
    """The fixed part: table, base chains, helper chains and maps (maps created, not flushed)."""
    mark = f"{settings.mark:#x}"
    lines = [f'{_t("add table")} {{ comment "rules for the kubeling service proxy"; }}']
    jumps = {
        "filter-input": ["ct state new jump endpoints-check"],
        "filter-forward": ["ct state new jump endpoints-check"],
        "filter-output": ["ct state new jump endpoints-check"],
        "nat-prerouting": ["jump services"],
        "nat-output": ["jump services"],
        "nat-postrouting": ["jump masquerading"],
    }
    for name, kind, hook, priority in BASE_CHAINS:
        lines.append(f"{_t('add chain', name)} {{ type {kind} hook {hook} priority {priority}; policy accept; }}")
    for name, (spec, comment) in MAPS.items():
        lines.append(f'{_t("add map", name)} {{ type {spec}; comment "{comment}"; }}')
    helpers = {
        "services": [f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
                     f"fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"],
        "endpoints-check": [
            f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}",
            f"fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"],
        REJECT_CHAIN: ["meta l4proto tcp reject with tcp reset", "reject"],
        MARK_MASQ_CHAIN: [f"mark set mark or {mark}"],
        "masquerading": [f"mark and {mark} == 0 return", f"mark set mark xor {mark}", "masquerade fully-random"],
    }
    for name in helpers:
        lines.append(_t("add chain", name))
    for name, rules in [*helpers.items(), *jumps.items()]:
        lines.append(_t("flush chain", name))
        lines.extend(f"{_t('add rule', name)} {rule}" for rule in rules)
    return lines


def _chain_lines(name: str, rules: tuple[str, ...]) -> list[str]:
    return [f"{_t('add rule', name)} {rule}" for rule in rules]


def full_transaction(services: Mapping[str, ServiceRules], settings: RuleSettings, *,
                     existing_chains: Iterable[str] = (), existing_sets: Iterable[str] = (),
                     replace: bool = False) -> str:
    """Everything, in one transaction: what is wanted is (re)written, what a previous run left is deleted.

    `replace=True` starts with `add table; delete table` (always accepted, whatever state the
    table is in, but affinity state is lost); otherwise existing objects are flushed and
    rewritten and the stale ones deleted, which keeps affinity sets.
    """
    lines = [_t("add table"), _t("delete table")] if replace else []
    lines += base_lines(settings)
    lines += [_t("flush map", name) for name in MAPS]
    wanted_chains: dict[str, tuple[str, ...]] = {}
    wanted_sets: dict[str, str] = {}
    for rules in services.values():
        wanted_chains.update(rules.chains)
        wanted_sets.update(rules.sets)
    existing = set(existing_chains) if not replace else set()
    stale_chains = sorted(c for c in existing if is_service_chain(c) and c not in wanted_chains)
    stale_sets = sorted(s for s in (set(existing_sets) if not replace else ())
                        if is_affinity_set(s) and s not in wanted_sets)
    lines += [_t("flush chain", c) for c in stale_chains]
    lines += [f"{_t('add set', name)} {spec}" for name, spec in wanted_sets.items()]
    lines += [_t("add chain", name) for name in wanted_chains]
    for name, rules in wanted_chains.items():
        if name in existing:
            lines.append(_t("flush chain", name))
        lines += _chain_lines(name, rules)
    for rules in services.values():
        lines += [f"{_t('add element', m)} {{ {k} : {v} }}" for (m, k), v in rules.elements.items()]
    lines += [_t("delete chain", c) for c in stale_chains]
    lines += [_t("delete set", s) for s in stale_sets]
    return "\n".join(lines) + "\n"


def diff_transaction(old: Mapping[str, ServiceRules], new: Mapping[str, ServiceRules]) -> str:
    """Only what changed between two renderings of some Services ('' when nothing did).

    `old` and `new` hold the same keys (an empty ServiceRules for a Service that is gone or
    new). Order matters inside the one transaction: objects are created before rules refer
    to them, and deleted only after the elements and rules that referred to them.
    """
    add_sets: list[str] = []
    add_chains: list[str] = []
    del_elements: list[str] = []
    rewrite: list[str] = []
    add_elements: list[str] = []
    del_chains: list[str] = []
    del_sets: list[str] = []
    for key in sorted(new):
        before, after = old.get(key) or ServiceRules(), new[key]
        for name, spec in after.sets.items():
            if before.sets.get(name) != spec:
                add_sets.append(f"{_t('add set', name)} {spec}")
        del_sets += [_t("delete set", s) for s in before.sets if s not in after.sets]
        for name, rules in after.chains.items():
            previous = before.chains.get(name)
            if previous == rules:
                continue
            if previous is None:
                add_chains.append(_t("add chain", name))
            else:
                rewrite.append(_t("flush chain", name))
            rewrite += _chain_lines(name, rules)
        del_chains += [c for c in before.chains if c not in after.chains]
        for (m, k), verdict in before.elements.items():
            if after.elements.get((m, k)) != verdict:
                del_elements.append(f"{_t('delete element', m)} {{ {k} }}")
        for (m, k), verdict in after.elements.items():
            if before.elements.get((m, k)) != verdict:
                add_elements.append(f"{_t('add element', m)} {{ {k} : {verdict} }}")
    # A chain that goes away is flushed first: it may refer to another one that goes too.
    lines = [*add_sets, *add_chains, *del_elements, *rewrite, *add_elements,
             *[_t("flush chain", c) for c in del_chains], *[_t("delete chain", c) for c in del_chains],
             *del_sets]
    return "\n".join(lines) + "\n" if lines else ""


def cleanup_transaction() -> str:
    """Delete the whole table (uninstall); accepted whether or not it exists."""
    return f"{_t('add table')}\n{_t('delete table')}\n"
