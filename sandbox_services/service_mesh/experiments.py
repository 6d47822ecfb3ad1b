"""The lesson's experiments, as the runtime calls them: ``async def f(ctx, params) -> dict``.

Each one drives the sandbox (``drive_mesh``, ``drive_traffic``: measured
figures, nothing written up) and hands the figures to ``reports`` (headline,
summary, charts, table, notes). Parameters arrive validated against
``knobs.PARAMETERS``. Every experiment leaves the sandbox as it found it
(default policy, one backend replica, mesh on), even when it fails.
"""

from __future__ import annotations

from . import drive_mesh, drive_traffic, reports


async def live_policy(ctx, params: dict) -> dict:
    return reports.live_policy(await drive_mesh.drive_live_policy(ctx, params))


async def overhead(ctx, params: dict) -> dict:
    return reports.overhead(await drive_mesh.drive_overhead(ctx, params))


async def mtls(ctx, params: dict) -> dict:
    return reports.mtls(await drive_mesh.drive_mtls(ctx, params))


async def load_balancing(ctx, params: dict) -> dict:
    return reports.load_balancing(await drive_traffic.drive_load_balancing(ctx, params))


async def outlier_detection(ctx, params: dict) -> dict:
    return reports.outlier_detection(await drive_traffic.drive_outlier_detection(ctx, params))


async def connection_pool(ctx, params: dict) -> dict:
    return reports.connection_pool(await drive_traffic.drive_connection_pool(ctx, params))


async def retries(ctx, params: dict) -> dict:
    return reports.retries(await drive_traffic.drive_retries(ctx, params))


async def fault_injection(ctx, params: dict) -> dict:
    return reports.fault_injection(await drive_traffic.drive_fault_injection(ctx, params))


async def trace_propagation(ctx, params: dict) -> dict:
    return reports.trace_propagation(await drive_mesh.drive_trace_propagation(ctx, params))
