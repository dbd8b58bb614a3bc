"""The writer: one background thread per run that turns queued items into event lines on disk.

The caller's thread only appends tuples to :attr:`Writer.queue` (see ``Run``); everything slow
happens here: numbering events, materialising tensors and media, encoding, writing, fsyncing,
heartbeats and system metrics. It promises:

- ``seq`` is gap-free from the run's first event, continuing across resume; the caller's events
  get theirs in the order they were queued, and the writer's own (system metrics, heartbeats)
  in between, whenever they are taken;
- it never waits for a device: a queued value still being computed there (a CUDA tensor, see
  ``Deferred.ready``) holds back only itself and the caller's events queued after it, which are
  written, in order, on the first pass after it is ready; system metrics and heartbeats keep
  being written meanwhile, so a live run looks alive;
- nothing on the caller's side of the queue takes a lock (see waddle/wakeup.py): a
  KeyboardInterrupt at any moment, or a signal handler, cannot leave the writer or the caller
  waiting forever;
- while items arrive, a batch reaches the OS (``write()``) at least every ``flush_interval``
  seconds, so a kill -9 of the training process loses at most that much; an fsync follows at
  least every ``fsync_interval`` seconds, on ``flush()`` and at finish;
- a closed line is never rewritten; a segment is rotated at a line boundary once it passes
  ``segment_bytes``; a resumed run first ends a torn last line so every later line is whole;
- with ``scalar_copies`` on, a closed segment of at least ``min(COPY_MIN_BYTES, segment_bytes)``
  whose every log event this thread wrote gets its scalar copy (waddle/scalar_copy.py), made from the values as they
  are encoded, never by reading the JSON back;
- the line of each event is written whatever its bookkeeping does: a failure in run.summary's
  tracking of a key, in the scalar copies or in the system sampler is said once, that piece is
  repaired or turned off (the key's summary unknown, the copies given up so that readers parse
  the JSON, the sampler stopped), and writing goes on; whatever else fails for one queued item
  costs that item alone, counted in the finish event's ``lost_values``;
- an I/O failure never reaches the training code: the writer shows one notice, keeps what it
  could not write (up to MAX_PENDING_BYTES, counting what it had to drop) and retries every
  second, so a full disk that is cleared loses nothing that fit in the buffer.
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from waddle import event as event_format
from waddle import scalar_copy, segment
from waddle.event import FORMAT_VERSION
from waddle.notice import Notices
from waddle.summary import Logged
from waddle.values import DEFERRED, PLAIN, Deferred, writable_text
from waddle.wakeup import Wakeup

# Queue item kinds: the first element of each queued tuple (plain tuples: log()'s hot path
# builds one per call, and a named tuple costs a third of the call).
LOG = 0  # (LOG, t, step, values, kind of values: values.PLAIN, CHECKED or DEFERRED)
EVENT = 1  # (EVENT, t, type, fields)
CONSOLE = 2  # (CONSOLE, t, stream, text)
FLUSH = 3  # (FLUSH, number): write and fsync everything queued before it, then count it flushed
FINISH = 4  # (FINISH, t, fields)
# A log event whose step is its keys' own (docs/format.md, "Keyed steps"): TensorBoard's
# per-tag global_step, with the caller's wall time. It never moves the run's step. ``open``:
# for values stamped at log time, a one-item list the writer sets to True as it takes the
# item; until then the caller may add values of the same step to it (Run._log_keyed).
KEYED = 5  # (KEYED, t, step, values, kind of values, open or None)

# A queued log item's step and values.
_STEP = operator.itemgetter(2)
_VALUES = operator.itemgetter(3)

MAX_PENDING_BYTES = 256 * 1024 * 1024
# Also fsync once this much is written, so that finish() never has much left to sync.
FSYNC_BYTES = 8 << 20
# A drain hands its lines to the OS in pieces of about this size.
WRITE_CHUNK = 1 << 20
RETRY_INTERVAL = 1.0
# A smaller segment gets no scalar copy: parsing it costs a reader milliseconds, and a short
# run's finish() need not import numpy to write one.
COPY_MIN_BYTES = 4 << 20
# Console output longer than this many characters is split over several events, so that each
# line of the log stays far below segment.MAX_LINE_BYTES (a character takes at most 6 bytes).
CONSOLE_PIECE = 1 << 20


class Writer:
    def __init__(
        self,
        run_dir: Path,
        first_seq: int,
        start_fields: dict[str, Any],
        start_time: float,
        last_step: int | None,
        settings: Any,
        notices: Notices,
    ) -> None:
        self.run_dir = run_dir
        self.queue: deque[tuple] = deque()
        self.wake = Wakeup()  # set by the caller to ask for an early drain
        self.progress = Wakeup()  # set after a drain while a caller waits (room, a flush)
        self.waiting = False  # a caller waits on progress: set it after the next drain
        self.flushed = 0  # the number of the newest FLUSH done
        self.lost_events = 0  # events that could not be kept while the disk failed
        self.lost_values = 0  # values whose materialisation failed
        self.logged = Logged(self._summary_failed)  # what run.summary shows of logged values
        self._last_step: int | None = last_step  # of the newest log event written
        self._keyed_steps: dict[str, int] = {}  # per keyed key, its highest step written
        self._keyed_top = -1  # the highest of them
        self._seq = first_seq
        self._start_fields = start_fields
        self._start_time = start_time
        self._settings = settings
        self._notices = notices
        self._fd: int | None = None
        self._segment: Path | None = None
        self._segment_size = 0
        # None unless asked for (settings.scalar_copies): the copies cost the training side.
        self._copies = scalar_copy.Collector(first_seq) if settings.scalar_copies else None
        self._pending = bytearray()  # encoded lines not yet accepted by the OS
        self._pending_lines = 0
        self._at_line_start = True  # the segment's last written byte ends a line
        self._last_attempt = 0.0
        self._unsynced = 0  # bytes written since the last fsync
        self._last_event_time = time.time()
        self._finished = False
        self.thread = threading.Thread(target=self._main, name="waddle-writer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # ---- the thread --------------------------------------------------------------------

    def _main(self) -> None:
        settings = self._settings
        interval = settings.system_metrics_interval
        last_fsync = time.monotonic()
        try:
            # Block first, so the GIL goes back to init() at once instead of after this
            # thread's slow start (imports, git); events queue meanwhile.
            self.wake.wait(settings.flush_interval)
            self._emit_start()
            # Every run, however short, gets a sample at its start; then one every interval.
            sampler = _make_sampler(self._notices) if interval > 0 else None
            next_sample = time.monotonic()
            while not self._finished:
                now = time.monotonic()
                batch = _Batch()
                # The writer's own events are written at once, never behind the caller's
                # events that wait for a device.
                if sampler and now >= next_sample:
                    try:
                        sample = sampler.sample()
                    except Exception as error:
                        sampler = None
                        self._notices.show(
                            "system-metrics", f"system metrics are off: {_described(error)}"
                        )
                    else:
                        self._encode(batch, time.time(), "system", {"data": sample})
                    next_sample = now + interval
                if time.time() - self._last_event_time >= settings.heartbeat_interval:
                    self._encode(batch, time.time(), "heartbeat", {})
                self._drain(batch)
                if self._unsynced and (
                    now - last_fsync >= settings.fsync_interval or self._unsynced >= FSYNC_BYTES
                ):
                    self._fsync()
                    last_fsync = now
                if not self._finished:
                    self.wake.wait(settings.flush_interval)
        except BaseException:  # a bug here must not pass silently, nor kill the training
            if self._copies is not None:  # a batch may be lost with the exception
                self._copies.spoil(self._seq)
            self._notices.show(
                "writer",
                "the writer thread failed; events are no longer written:\n"
                + traceback.format_exc(),
            )
            self._finished = True
        finally:
            self._close()
            self.progress.set()

    def _emit_start(self) -> None:
        from waddle.context import slow_context

        fields = self._start_fields
        try:
            fields["context"].update(slow_context(fields["context"]["cwd"]))
        except Exception as error:
            self._notices.show("context", f"could not collect the run context: {error}")
        batch = _Batch()
        self._encode(batch, self._start_time, "run_start", fields)
        self._write_batch(batch)

    def _drain(self, batch: _Batch) -> None:
        """Encode the queued items that are ready, in order, and write them with ``batch``.

        Only the items queued when the drain starts are taken, so that a caller logging
        faster than this thread encodes cannot keep it here forever.
        """
        queue = self.queue
        # Lines go straight into one growing buffer: holding each line as its own bytes object
        # until a join costs several times the encoding itself (fresh memory for every line).
        flushed = None  # the newest FLUSH taken
        console: list[Any] | None = None  # [t, stream, [texts]] being coalesced
        # Per item, how many are left after it. A for loop over a range: a while loop counting
        # down cost about a sixth of the drain of run.log()'s items (measured).
        lefts = iter(range(len(queue) - 1, -1, -1))
        for left in lefts:
            item = queue[0]
            kind = item[0]
            if (kind in (LOG, KEYED)) and item[4] == DEFERRED and not _ready(item[3]):
                break  # still on its device: it and everything after it wait
            queue.popleft()
            if kind == CONSOLE:
                if console is not None and console[1] == item[2]:
                    console[2].append(item[3])
                    continue
                if console is not None:
                    self._encode_console(batch, console)
                console = [item[1], item[2], [item[3]]]
                continue
            if console is not None:
                self._encode_console(batch, console)
                console = None
            try:  # free unless it raises (Python 3.11's exceptions cost nothing until then)
                if kind == LOG:
                    _, t, step, values, value_kind = item
                    if value_kind == DEFERRED:
                        values = self._materialize(values)
                    try:  # inline: _summarize()'s call would cost the hot path
                        self.logged.update(values)
                    except Exception:
                        self.logged.update_each(values)
                    self._last_step = step
                    self._encode(
                        batch, t, "log", {"step": step, "data": values}, finite=value_kind == PLAIN
                    )
                elif kind == KEYED and item[4] == PLAIN:  # add_scalar's: many in a row, together
                    taken = self._encode_keyed_plain(batch, item, left)
                    if taken:  # those after it, taken with it: skip their turns
                        next(itertools.islice(lefts, taken - 1, None), None)
                elif kind == KEYED:
                    self._encode_keyed(batch, item)
                elif kind == EVENT:
                    fields = item[3]
                    if item[2] == "define_metric":
                        self._define(fields)
                    self._encode(batch, item[1], item[2], fields)
                elif kind == FLUSH:
                    flushed = item[1]
                else:  # FINISH
                    fields = dict(item[2])
                    fields["last_step"] = self._last_step
                    fields["lost_events"] = self.lost_events
                    fields["lost_values"] = self.lost_values + fields.get("lost_values", 0)
                    self._encode(batch, item[1], "finish", fields)
                    self._finished = True
                    break
            except Exception as error:
                self._item_failed(item, error)
                if kind == FINISH:
                    self._finished = True
                else:  # the items after it wait for the next drain, at once: the count of
                    self.wake.set()  # those left may be off after a failure mid-way
                break
            if len(batch.data) >= WRITE_CHUNK:
                self._write_batch(batch)
                batch = _Batch()
        if console is not None:
            self._encode_console(batch, console)
        self._write_batch(batch, flush=flushed is not None)
        if self._copies is not None:
            try:
                self._copies.settle(self._seq)
            except Exception as error:
                self._copies_failed(error)
        if flushed is not None:
            self.flushed = flushed
        if self.waiting:
            self.waiting = False
            self.progress.set()

    def _encode_keyed_plain(self, batch: _Batch, item: Any, limit: int) -> int:
        """Encode ``item``, a PLAIN keyed item taken from the queue, and those after it at
        the head of the queue (at most ``limit`` more, until ``batch`` holds WRITE_CHUNK
        bytes); how many more it took.

        add_scalar's items, one per step of a training loop: so one loop of few Python steps
        each, the summary of the items updated once at the end rather than item by item.
        Finite floats and ints of checked keys, at most KEYED_MERGE of them (values.py): each
        always encodes, within a line's size.
        """
        queue = self.queue
        popleft, encode = queue.popleft, event_format.encode
        data = batch.data
        seq = self._seq
        top = self._keyed_top
        every_value = self.logged.keeps_every_value
        copies = self._copies
        later: list[Any] = []  # items for the summary, none of whose steps went back
        keep = later.append
        taken = 0
        try:  # the lines in data are counted whatever happens
            while True:
                if item[5] is False:
                    # Open until now: values of its step join it no more (Run._joins); one that
                    # joins after this line is sent again. The encoding below reads the dict once,
                    # in one C call; a value it misses is in a later item.
                    item[5] = True
                _, t, step, values, _, _ = item
                if step >= top and not every_value:
                    top = step
                    keep(item)
                else:  # a step gone back, or summaries that take every value: item by item
                    self._keyed_summaries(later)
                    later.clear()
                    self._keyed_summary(step, dict.fromkeys(values, step), values)
                    top = self._keyed_top
                event = {
                    "v": FORMAT_VERSION,
                    "seq": seq,
                    "t": t,
                    "type": "log",
                    "step": step,
                    "keyed": True,
                    "data": values,
                }
                data += encode(event, True)
                if copies is not None:
                    try:
                        copies.add(seq, t, step, values)
                    except Exception as error:
                        copies = None
                        self._copies_failed(error, step)
                seq += 1
                if taken == limit or len(data) >= WRITE_CHUNK:
                    break
                item = queue[0]
                if item[0] != KEYED or item[4] != PLAIN:
                    break
                popleft()
                taken += 1
        finally:
            batch.lines += seq - self._seq
            self._seq = seq
            self._last_event_time = t
        self._keyed_summaries(later)
        return taken

    def _keyed_summaries(self, items: list[Any]) -> None:
        """``_keyed_summary`` of keyed ``items`` (in order, none of whose steps went back), as
        of the last: per key, its value and step in the last item that has it; in C loops."""
        if not items:
            return
        values = list(map(_VALUES, items))
        newest = functools.reduce(operator.ior, values, {})
        top = items[-1][2]
        if newest.keys() == values[-1].keys():  # the common case: the last item has every key
            steps = dict.fromkeys(newest, top)
        else:
            steps = functools.reduce(operator.ior, map(dict.fromkeys, values, map(_STEP, items)))
        self._keyed_summary(top, steps, newest)

    def _keyed_summary(self, step: int, steps: dict[str, int], values: dict[str, Any]) -> None:
        """Show in run.summary ``values`` of keyed events, the highest of whose ``steps`` is
        ``step``: per key, its value at its highest step."""
        if step >= self._keyed_top:
            self._keyed_top = step
            self._keyed_steps.update(steps)
            self._summarize(values)
            return
        known = self._keyed_steps
        newest = {}
        for key, value in values.items():
            at = steps[key]
            if known.get(key, -1) <= at:
                known[key] = at
                newest[key] = value
        self._summarize(newest)

    def _summarize(self, values: dict[str, Any]) -> None:
        """Show ``values`` in run.summary; when that fails, key by key: a key whose update
        fails alone is unknown there from now on (``_summary_failed``)."""
        try:
            self.logged.update(values)
        except Exception:
            self.logged.update_each(values)

    def _summary_failed(self, key: str, error: Exception) -> None:
        self._notices.show(
            f"summary-{key}",
            f"run.summary[{key!r}] is unknown from now on: keeping it raised "
            f"{_described(error)}. Its values are still written (a server's summary has it).",
        )

    def _define(self, fields: dict[str, Any]) -> None:
        """Apply a define_metric event's summary to run.summary; its line is written anyway."""
        try:
            self.logged.define(fields["name"], fields.get("summary"))
        except Exception as error:
            self._notices.show(
                f"define-{fields.get('name')}",
                f"run.summary may not follow define_metric({fields.get('name')!r}, "
                f"summary={fields.get('summary')!r}): {_described(error)}",
            )

    def _copies_failed(self, error: Exception, step: int | None = None) -> None:
        """Give up the scalar copies: a copy is a cache, and readers parse a segment that has
        none (a copy already written is of a closed segment, checked against its bytes)."""
        self._copies = None
        at = "" if step is None else f" at the log event of step {step}"
        self._notices.show(
            "copies",
            f"scalar copies are off for the rest of this run: keeping them failed{at}: "
            f"{_described(error)}. Every event is still written; reads parse the log instead.",
        )

    def _item_failed(self, item: tuple, error: Exception) -> None:
        """What is left when an item fails outside its bookkeeping (a bug): the item is
        counted lost, said, and the writer goes on."""
        kind = item[0]
        names = {LOG: "log", KEYED: "log", CONSOLE: "console", FLUSH: "flush", FINISH: "finish"}
        name = item[2] if kind == EVENT else names[kind]
        self.lost_values += len(item[3]) if kind in (LOG, KEYED) else 1
        self._notices.show(
            f"item-{name}",
            f"a {name} event could not be written: {_described(error)}; it is counted in the "
            "finish event's lost_values and the writer goes on",
        )

    def _encode_keyed(self, batch: _Batch, item: tuple) -> None:
        _, t, step, values, value_kind, _ = item
        if value_kind == DEFERRED:
            values = self._materialize(values)
        self._keyed_summary(step, dict.fromkeys(values, step), values)
        self._encode(batch, t, "log", {"step": step, "keyed": True, "data": values})

    def _encode_console(self, batch: _Batch, console: list[Any]) -> None:
        try:
            for piece in console_pieces("".join(console[2])):
                self._encode(batch, console[0], "console", {"stream": console[1], "text": piece})
        except Exception as error:
            self._item_failed((CONSOLE, console[0], console[1], console[2]), error)

    def _encode(
        self, batch: _Batch, t: float, kind: str, fields: dict[str, Any], finite: bool = False
    ) -> None:
        """Number one event and append its line to ``batch``.

        What cannot be encoded, or would make a line longer than a reader takes, is left out
        and counted in ``lost_values``: the values of a log event one by one (the others are
        kept), any other event whole.
        """
        event = {"v": event_format.FORMAT_VERSION, "seq": self._seq, "t": t, "type": kind}
        event.update(fields)
        line, problem = _line(event, finite)
        if problem is not None and kind == "log":
            data = event["data"]
            kept = {key: value for key, value in data.items() if _line({key: value})[1] is None}
            self.lost_values += len(data) - len(kept)
            event["data"] = kept
            line = _line(event)[0] if kept else None
            if line is None:
                self.lost_values += len(kept)
        elif problem is not None:
            self.lost_values += 1
        if problem is not None:
            self._notices.show(
                f"encode-{kind}", f"could not write a value of a {kind} event: {problem}", limit=3
            )
        if line is not None:
            if kind == "log" and self._copies is not None:
                try:
                    self._copies.add(self._seq, t, event["step"], event["data"])
                except Exception as error:
                    self._copies_failed(error, event["step"])
            self._append(batch, line, t)

    def _append(self, batch: _Batch, line: bytes, t: float) -> None:
        """Add the encoded line of the event numbered ``self._seq`` to ``batch``."""
        batch.data += line
        batch.lines += 1
        self._seq += 1
        self._last_event_time = t

    def _materialize(self, values: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in values.items():
            if isinstance(value, Deferred):
                try:
                    value = value.materialize(self.run_dir)
                except Exception as error:
                    self.lost_values += 1
                    self._notices.show(
                        f"materialize-{key}", f"could not record {key!r}: {error}", limit=3
                    )
                    continue
            out[key] = value
        return out

    # ---- the file ----------------------------------------------------------------------

    def _write_batch(self, batch: _Batch, flush: bool = False) -> None:
        """Hand ``batch`` to the OS (keeping it in memory while that fails); ``flush``: write
        even while failing, and fsync."""
        if batch.lines:
            if not self._pending:
                self._pending = batch.data
                self._pending_lines = batch.lines
            elif len(self._pending) + len(batch.data) > MAX_PENDING_BYTES:
                # The newest lines are dropped whole and their seqs handed back, so seq
                # stays gap-free in the file.
                self._seq -= batch.lines
                self.lost_events += batch.lines
                if self._copies is not None:
                    self._copies.spoil(self._seq)
            else:
                self._pending += batch.data
                self._pending_lines += batch.lines
        if self._pending:
            self._try_write(force=flush or self._finished)
        if flush:
            self._fsync()

    def _try_write(self, force: bool) -> None:
        now = time.monotonic()
        if self._last_attempt and not force and now - self._last_attempt < RETRY_INTERVAL:
            return  # failing: retry once a second, not on every drain
        written = 0
        try:
            if self._fd is None or (
                self._segment_size >= self._settings.segment_bytes and self._at_line_start
            ):
                self._open_segment()
            with memoryview(self._pending) as view:
                while written < len(view):
                    written += os.write(self._fd, view[written:])
        except OSError as error:
            self._last_attempt = now
            self._notices.show(
                "io",
                f"cannot write the event log in {self.run_dir}: {error.strerror or error}. "
                "Training goes on; events are kept in memory and written when the folder is "
                "writable again (the finish event counts any that were lost).",
            )
            return
        finally:
            if written:
                self._at_line_start = self._pending[written - 1] == 0x0A
                self._segment_size += written
                self._unsynced += written
                del self._pending[:written]
                self._pending_lines = self._pending.count(b"\n") if self._pending else 0
        if self._last_attempt:
            self._notices.show("io-recovered", f"the event log in {self.run_dir} is writable again")
        self._last_attempt = 0.0

    def _open_segment(self) -> None:
        first = self._seq - self._pending_lines  # of the next line written
        if self._fd is not None:
            self._fsync()
            self._write_copy(first)
            os.close(self._fd)
            self._fd = None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        existing = segment.list_segments(self.run_dir)
        path = self.run_dir / segment.segment_name(first)
        if existing and self._segment_size == 0:  # a resumed run: its newest segment
            last = existing[-1]
            _end_torn_line(last)
            if last.stat().st_size < self._settings.segment_bytes:
                path = last
                # It grows: its copy goes stale, and this writer did not see its start.
                scalar_copy.copy_path(last).unlink(missing_ok=True)
            scalar_copy.remove_partial(self.run_dir)  # what a killed writer left half written
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fd = fd
        self._segment = path
        self._segment_size = os.fstat(fd).st_size
        fsync_dir(self.run_dir)

    def _fsync(self) -> None:
        if self._fd is not None and self._unsynced:
            try:
                os.fsync(self._fd)
                self._unsynced = 0
            except OSError as error:
                self._notices.show("fsync", f"fsync of the event log failed: {error}")

    def _close(self) -> None:
        if self._pending:
            self._try_write(force=True)
        if self._pending:
            self.lost_events += self._pending_lines
            self._notices.show(
                "lost",
                f"{self._pending_lines} events could not be written to {self.run_dir} and are lost",
            )
        if self._fd is not None:
            self._fsync()
            if not self._pending:
                self._write_copy(self._seq)
            os.close(self._fd)
            self._fd = None

    def _write_copy(self, end_seq: int) -> None:
        """Hand the collected events before ``end_seq`` to the closing segment's copy."""
        if self._copies is None:
            return
        big = self._segment_size >= min(COPY_MIN_BYTES, self._settings.segment_bytes)
        try:
            if big and self._segment is not None:
                self._copies.write(self._segment, end_seq, self._segment_size)
            else:
                self._copies.drop(end_seq)
        except Exception as error:
            self._copies_failed(error)


def _end_torn_line(path: Path) -> None:
    """End a line a dead writer left unfinished, so every later line starts whole.

    Readers then report the torn line as malformed and skip it.
    """
    with open(path, "rb+") as file:
        size = file.seek(0, os.SEEK_END)
        if size:
            file.seek(size - 1)
            if file.read(1) != b"\n":
                file.write(b"\n")


def console_pieces(text: str) -> Iterator[str]:
    """Console ``text`` as the texts of console events: each fits a line of the log (at most
    CONSOLE_PIECE characters, cut after a newline where there is one), lone surrogates kept as
    escapes."""
    text = writable_text(text)
    while text:
        cut = len(text) if len(text) <= CONSOLE_PIECE else text.rfind("\n", 0, CONSOLE_PIECE) + 1
        piece, text = text[: cut or CONSOLE_PIECE], text[cut or CONSOLE_PIECE :]
        yield piece


def _ready(values: dict[str, Any]) -> bool:
    """True when every deferred value among ``values`` can be read without waiting (or when
    asking fails: reading it then fails too, and counts the value lost)."""
    try:
        return all(value.ready() for value in values.values() if isinstance(value, Deferred))
    except Exception:
        return True


def _described(error: BaseException) -> str:
    """An exception as a notice says it: its type, its message and where it was raised."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def _line(event: dict[str, Any], finite: bool = False) -> tuple[bytes | None, str | None]:
    """The encoded line of ``event`` and None, or None and why it cannot be written."""
    try:
        line = event_format.encode(event, finite=finite)
    except TypeError as error:
        return None, str(error)
    if len(line) > segment.MAX_LINE_BYTES:
        return None, f"a line of {len(line)} bytes is over the limit of {segment.MAX_LINE_BYTES}"
    return line, None


class _Batch:
    """Encoded lines waiting to be written, and how many there are."""

    __slots__ = ("data", "lines")

    def __init__(self) -> None:
        self.data = bytearray()
        self.lines = 0


def fsync_dir(path: Path) -> None:
    """Make a new name in ``path`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _make_sampler(notices: Notices) -> Any:
    from waddle.system_metrics import SystemSampler

    try:
        return SystemSampler()
    except Exception as error:
        notices.show("system-metrics", f"system metrics are off: {error}")
        return None
