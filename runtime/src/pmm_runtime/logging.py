"""Logging: one JSON object per line on stderr (a console renderer on a TTY).

Our own lines (structlog) and the standard library's (uvicorn, aiokafka, FastStream,
PyMongo) go through the same ``structlog.stdlib.ProcessorFormatter`` on one root handler,
so every line has the same shape: ``timestamp``, ``level``, ``logger``, ``event`` and, while
a span is current, ``trace_id`` and ``span_id`` (W3C hex). Libraries that install their own
handlers (FastStream's colour formatter, uvicorn's default config) are made to propagate to
the root handler instead; colours only when stderr is a TTY and JSON is not asked for.

Every line written while an event is handled carries ``event_id`` and ``subject``
(bound with ``structlog.contextvars``); never log personal data.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

# Libraries whose INFO lines are noise in production (group rebalances, metadata updates).
QUIET_LIBRARIES = ("aiokafka", "kafka", "pymongo", "httpx", "httpcore")
# Loggers that libraries give their own handler and ``propagate = False``.
SELF_HANDLED = ("faststream", "uvicorn", "uvicorn.error", "uvicorn.access")
_HANDLER_NAME = "pmm-json"


def add_trace_context(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """``trace_id`` and ``span_id`` of the current OpenTelemetry span, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _drop_colour_fields(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # uvicorn passes ``color_message`` (ANSI codes) as an extra on some lines; ``message``
    # is the record's text again once another handler (pytest's) formatted it.
    event_dict.pop("color_message", None)
    event_dict.pop("message", None)
    return event_dict


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """Route structlog and the standard library through one formatter on stderr.

    Idempotent: a second call (every ``Platform`` of a test process) replaces the handler.
    """
    if json is None:
        json = not sys.stderr.isatty()
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_colour_fields,
        add_trace_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    final: list[structlog.types.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
    ]
    if json:
        final.append(structlog.processors.format_exc_info)
    final.append(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in SELF_HANDLED:
        library = logging.getLogger(name)
        for old in list(library.handlers):
            if isinstance(old, logging.StreamHandler):
                library.removeHandler(old)
        library.propagate = True
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def library_logger(name: str) -> logging.Logger:
    """A standard library logger for a library that takes one (FastStream's broker): it has
    no handler of its own, so its lines reach the JSON handler on the root."""
    logger = logging.getLogger(f"pmm.{name}")
    logger.propagate = True
    return logger
