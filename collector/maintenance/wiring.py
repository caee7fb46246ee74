"""Builds the maintenance parts from the collector's config, so collector/service.py only
asks for them (None when `maintenance:` is not configured)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.config import CollectorFile
from collector.maintenance.alertmanager import Alertmanager
from collector.maintenance.api import make_api
from collector.maintenance.manager import Maintenance, MaintenanceMetrics, Writer


@dataclass(frozen=True, slots=True)
class MaintenanceParts:
    maintenance: Maintenance
    api: Any  # the WSGI app of /api/maintenance


def build(
    cfg: CollectorFile, writer: Writer, metrics: MaintenanceMetrics
) -> MaintenanceParts | None:
    """The windows (their store loaded: StoreError refuses the start) and their HTTP API."""
    mcfg = cfg.maintenance
    if mcfg is None:
        return None
    am = (
        Alertmanager(str(mcfg.alertmanager_url), mcfg.alertmanager_token)
        if mcfg.alertmanager_url is not None
        else None
    )
    maintenance = Maintenance(
        mcfg.file,
        alertmanager=am,
        writer=writer,
        metrics=metrics,
        inventory=cfg.loaded_inventory,
        max_days=mcfg.max_days,
        retry_min=mcfg.retry_min,
        retry_max=mcfg.retry_max,
    )
    return MaintenanceParts(maintenance, make_api(maintenance, mcfg.api_token))
