"""What is fixed when a sandbox starts: its lab, its ports, its shared fault table."""

from __future__ import annotations

import importlib
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .faults import ServiceTable
from .spec import LabSpec


@dataclass
class SandboxPlan:
    """Everything fixed when a sandbox starts: its lab, ports and shared fault table."""

    sandbox_id: str
    lab: LabSpec
    ports: dict[str, list[int]]  # service name -> port of each replica (empty for amqp)
    table: ServiceTable
    amqp_url: str
    redis_url: str
    workdir: Path
    # Pool name -> ports of the lab's own listeners (LabSpec.extra_ports).
    extra_ports: dict[str, list[int]] = field(default_factory=dict)
    # One bound socket per port above, held for the sandbox's life (see reserve_port).
    reservations: list[socket.socket] = field(default_factory=list, repr=False)

    def release_ports(self) -> None:
        """Close the port reservations; call once every listener of the sandbox has ended."""
        for sock in self.reservations:
            sock.close()
        self.reservations = []

    @property
    def prefix(self) -> str:
        """Return the prefix of every RabbitMQ name of this sandbox."""
        return f"lab.{self.sandbox_id}."

    def address(self, service: str) -> str:
        """Return "127.0.0.1:PORT" of replica 0 of a service."""
        ports = self.ports[service]
        if not ports:
            raise LookupError(f"service {service!r} listens on no port")
        return f"127.0.0.1:{ports[0]}"

    def addresses(self, service: str) -> list[str]:
        """Return the addresses of the running replicas of a service."""
        ports = self.ports[service]
        return [
            f"127.0.0.1:{ports[replica]}"
            for replica in self.table.running(service)
            if replica < len(ports)
        ]

    def service_of_port(self) -> dict[int, str]:
        """Return port -> service name for every replica of every service (and the lab's own ports)."""
        names = {port: name for name, ports in self.ports.items() for port in ports}
        if self.lab.port_names:
            module_name, _, attribute = self.lab.port_names.partition(":")
            names.update(getattr(importlib.import_module(module_name), attribute)(self))
        return names


# Packages of sandbox_services/ that are plumbing, not lessons. Every other
# subpackage is one lesson: ``sandbox_services/<slug with underscores>/``, with
# its LabSpec as ``LAB`` in ``__init__.py``. A shared package never imports a
# lesson (tests/test_layout.py checks it).
SHARED_PACKAGES = frozenset({"runtime", "broker", "proxy", "protos_gen"})


def lesson_module(slug: str) -> str:
    """Return the dotted name of the package that holds a lesson's sandbox."""
    name = slug.replace("-", "_")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", slug) or name in SHARED_PACKAGES:
        raise LookupError(f"{slug!r} is not a lesson slug")
    return f"sandbox_services.{name}"


def lesson_packages() -> list[str]:
    """Return the dotted names of every lesson package under sandbox_services/."""
    root = Path(__file__).resolve().parent.parent
    return sorted(
        f"sandbox_services.{path.parent.name}"
        for path in root.glob("*/__init__.py")
        if path.parent.name not in SHARED_PACKAGES
    )


def load_lab(slug: str) -> LabSpec:
    """Import the lesson's package and return its LAB."""
    name = lesson_module(slug)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise LookupError(f"no lesson package {name}") from None
    lab = getattr(module, "LAB", None)
    if not isinstance(lab, LabSpec):
        raise LookupError(f"{name} defines no LAB")
    return lab


def reserve_port() -> socket.socket:
    """Bind a fresh 127.0.0.1 port with SO_REUSEPORT and return the bound, never listening, socket.

    Held for the sandbox's life, it keeps the port from everyone else: the
    kernel never gives an explicitly bound port to an outgoing connection nor
    to another bind to port 0, and a plain bind of it fails. The sandbox's own
    listeners bind it beside the reservation with SO_REUSEPORT as well (the
    serve helpers, gRPC and HAProxy all set it), as often as a service
    restarts; a socket that is bound but not listening takes no connections.
    Choosing a port by binding port 0 and closing it, as this did before, let
    an outgoing connection take the port in between ("address already in use",
    about one start in 60 when a class started at once).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def allocate_ports(lab: LabSpec) -> tuple[dict[str, list[int]], list[socket.socket]]:
    """Reserve a port for every possible replica of every listening service; return both."""
    reservations: list[socket.socket] = []
    ports: dict[str, list[int]] = {}
    for spec in lab.services:
        ports[spec.name] = []
        if spec.protocol == "amqp":
            continue
        for _ in range(spec.max_replicas):
            reservations.append(reserve_port())
            ports[spec.name].append(reservations[-1].getsockname()[1])
    return ports, reservations


def allocate_extra_ports(lab: LabSpec) -> tuple[dict[str, list[int]], list[socket.socket]]:
    """Reserve the lab's extra port pools (its own listeners); return them and the sockets."""
    reservations: list[socket.socket] = []
    pools: dict[str, list[int]] = {}
    for name, count in lab.extra_ports.items():
        pools[name] = []
        for _ in range(count):
            reservations.append(reserve_port())
            pools[name].append(reservations[-1].getsockname()[1])
    return pools, reservations


def run_preflight(lab: LabSpec) -> None:
    """Run the lab's preflight check, if it has one; it raises naming what is missing."""
    if lab.preflight:
        module_name, _, attribute = lab.preflight.partition(":")
        getattr(importlib.import_module(module_name), attribute)()


def make_plan(
    *, sandbox_id: str, lesson: str, amqp_url: str, redis_url: str, workdir: Path
) -> SandboxPlan:
    """Load the lesson's lab and reserve its ports; create the sandbox's private directory."""
    lab = load_lab(lesson)
    run_preflight(lab)
    workdir.mkdir(parents=True, exist_ok=True)
    ports, reservations = allocate_ports(lab)
    extra_ports, extra_reservations = allocate_extra_ports(lab)
    return SandboxPlan(
        sandbox_id=sandbox_id,
        lab=lab,
        ports=ports,
        table=ServiceTable(spec.name for spec in lab.services),
        amqp_url=amqp_url,
        redis_url=redis_url,
        workdir=workdir,
        extra_ports=extra_ports,
        reservations=reservations + extra_reservations,
    )
