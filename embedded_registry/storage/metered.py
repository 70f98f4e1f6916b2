"""A storage driver that counts and times every operation asked of the driver it wraps
(``http.debug.prometheus``; :func:`embedded_registry.storage.factory` wraps the driver only then,
so a registry without metrics pays nothing).

The wrapper is built from the wrapped driver's class, not from a list of methods: every public
coroutine method (``stat``, ``get_content``, ``move``, ``list_files``, ``multipart_uploads``...)
is timed, every public async generator (``reader``, ``walk``, ``list_files``) is timed from its
first step to its end, and everything else (``local_path``, ``name``, a driver's own
attributes) is handed through. A driver that gains or loses a method is wrapped as it
is, and ``isinstance`` with a Protocol of ``driver.capabilities`` answers what the wrapped one has.
The writers a driver returns are wrapped the same way (``writer.write``, ``writer.commit``...).

Operations are what the stores and GC ask of the driver; what a driver does inside one (the
default ``walk`` listing and stating) is not counted again.

Metrics (labels ``driver``: the driver's ``name``, ``action``: the method):

- ``registry_storage_action_seconds`` (histogram): Distribution's name for the same timer;
- ``regtui_storage_actions_total`` (counter), with ``outcome``: ``ok``, ``not_found``
  (:class:`PathNotFoundError`), ``error`` (any other exception), ``cancelled``.

They are kept by :class:`HistogramSet` and :class:`CounterSet`: plain numbers updated by the
event loop's thread and turned into ``prometheus_client`` families when scraped. An operation
then costs a ``bisect`` and three additions (``prometheus_client``'s own ``Histogram`` takes a
lock and walks its buckets: several microseconds, which a HEAD request of 300 µs notices).
"""

from __future__ import annotations

import functools
import inspect
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from embedded_registry.storage.driver.base import FileWriter, PathNotFoundError, StorageDriver

STORAGE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
OK, NOT_FOUND, ERROR, CANCELLED = "ok", "not_found", "error", "cancelled"
WRITER_PREFIX = "writer."

_clock = time.perf_counter


class Cell:
    """One counter series: ``value`` grows."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0


class CounterSet(Collector):
    """A labelled counter kept in plain numbers (the event loop's thread only)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.series: dict[tuple[str, ...], Cell] = {}

    def cell(self, *labels: str) -> Cell:
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = Cell()
        return found

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, cell in list(self.series.items()):
            family.add_metric(labels, cell.value)
        return [family]

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]


class Series:
    """One histogram series: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:  # inlined in DriverMetrics.ok
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class HistogramSet(Collector):
    """A labelled histogram kept in plain numbers (the event loop's thread only)."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self._les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        self.series: dict[tuple[str, ...], Series] = {}

    def child(self, *labels: str) -> Series:
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = Series(self.bounds)
        return found

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, series in list(self.series.items()):
            total, buckets = 0, []
            for le, count in zip(self._les, series.counts, strict=True):
                total += count
                buckets.append((le, float(total)))
            family.add_metric(labels, buckets, series.sum)
        return [family]

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]


class DriverMetrics:
    """The collectors of one metered driver (registered by the application's metrics)."""

    def __init__(self, driver: str) -> None:
        self.driver = driver
        self.seconds = HistogramSet(
            "registry_storage_action_seconds",
            "Time a storage driver operation took, by driver and action.",
            ["driver", "action"],
            STORAGE_BUCKETS,
        )
        self.actions = CounterSet(
            "regtui_storage_actions",
            "Storage driver operations, by driver, action and outcome.",
            ["driver", "action", "outcome"],
        )
        self._children: dict[tuple[str, str], tuple[Series, Cell]] = {}
        self._ok: dict[str, tuple[Series, Cell]] = {}

    @property
    def collectors(self) -> tuple[HistogramSet, CounterSet]:
        return self.seconds, self.actions

    def ok_series(self, action: str) -> tuple[Series, Cell]:
        """The histogram series and the ``ok`` counter of ``action``."""
        children = self._ok.get(action)
        if children is None:
            children = self._ok[action] = (
                self.seconds.child(self.driver, action),
                self.actions.cell(self.driver, action, OK),
            )
        return children

    def ok(self, action: str, started: float) -> None:
        """:meth:`done` with ``ok``: the common case, with a cheaper lookup."""
        took = _clock() - started
        series, cell = self.ok_series(action)
        series.counts[bisect_left(series.bounds, took)] += 1
        series.sum += took
        cell.value += 1

    def done(self, action: str, started: float, outcome: str) -> None:
        """Count one operation that began at ``started`` (``perf_counter``)."""
        took = _clock() - started
        children = self._children.get((action, outcome))
        if children is None:
            children = self._children[(action, outcome)] = (
                self.seconds.child(self.driver, action),
                self.actions.cell(self.driver, action, outcome),
            )
        children[0].observe(took)
        children[1].value += 1


def _outcome(error: BaseException) -> str:
    if isinstance(error, PathNotFoundError):
        return NOT_FOUND
    return ERROR if isinstance(error, Exception) else CANCELLED


class _Proxy:
    """What every metered class shares: the wrapped object, the metrics, and the hand-through
    of attributes its class does not name (a driver's own instance attributes)."""

    _inner: Any
    _metrics: DriverMetrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"<metered {self._inner!r}>"


_WRITERS: dict[type, bool] = {}
"""Per result type, whether it is a :class:`FileWriter` (an ABC's ``isinstance`` is slow)."""


def _wrap_result(result: Any, metrics: DriverMetrics) -> Any:
    kind = type(result)
    writer = _WRITERS.get(kind)
    if writer is None:
        writer = _WRITERS[kind] = issubclass(kind, FileWriter)
    return metered_writer(result, metrics) if writer else result


def _timed(name: str, action: str) -> Callable[..., Any]:
    """The class's method (for a caller that looks it up on the class); an instance answers
    with its own :func:`_timed_call`, made once per proxy."""

    async def method(self: _Proxy, *args: Any, **kwargs: Any) -> Any:
        return await self.__dict__[name](*args, **kwargs)

    method.__name__ = name
    return method


def _timed_stream(name: str, action: str) -> Callable[..., AsyncIterator[Any]]:
    async def method(self: _Proxy, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for item in self.__dict__[name](*args, **kwargs):
            yield item

    method.__name__ = name
    return method


def _timed_call(
    call: Callable[..., Any], action: str, metrics: DriverMetrics
) -> Callable[..., Any]:
    """``call`` (a bound coroutine method of the wrapped object) counted and timed.

    Made per proxy and kept in its ``__dict__``, where attribute lookup finds it before the
    class's method: a call costs a closure's loads, two clock reads, a ``bisect`` and three
    additions (no lookup by name, no dictionary of children, no second method call)."""
    ok: tuple[Series, Cell] | None = None

    async def method(*args: Any, **kwargs: Any) -> Any:
        nonlocal ok
        started = _clock()
        try:
            result = await call(*args, **kwargs)
        except BaseException as error:
            metrics.done(action, started, _outcome(error))
            raise
        took = _clock() - started
        if ok is None:
            ok = metrics.ok_series(action)
        series, cell = ok
        series.counts[bisect_left(series.bounds, took)] += 1
        series.sum += took
        cell.value += 1
        writer = _WRITERS.get(type(result))
        if writer is False:
            return result
        return _wrap_result(result, metrics)

    method.__name__ = action
    return method


def _timed_stream_call(
    call: Callable[..., AsyncIterator[Any]], action: str, metrics: DriverMetrics
) -> Callable[..., AsyncIterator[Any]]:
    """``call`` (a bound async generator method) timed from its first step to its end."""

    async def method(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        started = _clock()
        outcome = OK
        try:
            async for item in call(*args, **kwargs):
                yield item
        except GeneratorExit:  # the consumer stopped early: what it read went well
            raise
        except BaseException as error:
            outcome = _outcome(error)
            raise
        finally:
            if outcome is OK:
                metrics.ok(action, started)
            else:
                metrics.done(action, started, outcome)

    method.__name__ = action
    return method


def _handed(name: str) -> Any:
    return property(lambda self: getattr(self._inner, name))


_COPIED = "_copied"
_TIMED = "_timed"
"""Per metered class: ``(name, action, is a stream)`` of each method timed per instance."""
_SYNC = "_sync"
"""Per metered class: the plain methods, handed through as the wrapped object's own."""


def _sync(name: str) -> Callable[..., Any]:
    def method(self: _Proxy, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._inner, name)(*args, **kwargs)

    method.__name__ = name
    return method


@functools.cache
def _metered_class(cls: type, base: type, prefix: str) -> type:
    """A subclass of ``base`` that times each public async method of ``cls`` and hands the
    rest through (every abstract method of ``base`` is overridden: instances can be made)."""
    namespace: dict[str, Any] = {}
    copied: list[str] = []
    timed: list[tuple[str, str, bool]] = []
    plain: list[str] = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, staticmethod | classmethod):
            attr = attr.__func__
        if inspect.isasyncgenfunction(attr):
            namespace[name] = _timed_stream(name, prefix + name)
            timed.append((name, prefix + name, True))
        elif inspect.iscoroutinefunction(attr):
            namespace[name] = _timed(name, prefix + name)
            timed.append((name, prefix + name, False))
        elif inspect.isfunction(attr):
            namespace[name] = _sync(name)
            plain.append(name)
        elif isinstance(attr, property):  # read from the wrapped object each time
            namespace[name] = _handed(name)
        else:  # a flag, a name: copied from the wrapped object into the proxy's own
            copied.append(name)
    namespace[_COPIED] = tuple(copied)
    namespace[_TIMED] = tuple(timed)
    namespace[_SYNC] = tuple(plain)
    return type(f"Metered{cls.__name__}", (_Proxy, base), namespace)


def _make(cls: type, inner: Any, metrics: DriverMetrics) -> Any:
    proxy: Any = object.__new__(cls)
    object.__setattr__(proxy, "_inner", inner)
    object.__setattr__(proxy, "_metrics", metrics)
    for name in getattr(cls, _COPIED):
        object.__setattr__(proxy, name, getattr(inner, name))
    # Each method the proxy's own, found before the class's: no lookup by name per call.
    own = proxy.__dict__
    for name in getattr(cls, _SYNC):
        own[name] = getattr(inner, name)
    for name, action, stream in getattr(cls, _TIMED):
        make = _timed_stream_call if stream else _timed_call
        own[name] = make(getattr(inner, name), action, metrics)
    return proxy


def metered_writer(writer: FileWriter, metrics: DriverMetrics) -> FileWriter:
    cls = _metered_class(type(writer), FileWriter, WRITER_PREFIX)
    metered: FileWriter = _make(cls, writer, metrics)
    return metered


def metered_driver(driver: StorageDriver, metrics: DriverMetrics | None = None) -> StorageDriver:
    """``driver`` with every operation counted and timed into ``metrics`` (new ones, labelled
    with the driver's name, by default; :func:`driver_metrics` finds them again)."""
    cls = _metered_class(type(driver), StorageDriver, "")
    metered: StorageDriver = _make(cls, driver, metrics or DriverMetrics(driver.name))
    return metered


def driver_metrics(driver: object) -> DriverMetrics | None:
    """The metrics of a driver :func:`metered_driver` made, else ``None``."""
    if isinstance(driver, _Proxy):
        return driver._metrics
    return None


def unwrapped(driver: StorageDriver) -> StorageDriver:
    """The driver a metered one wraps (itself when it is not metered)."""
    inner: StorageDriver = driver._inner if isinstance(driver, _Proxy) else driver
    return inner
