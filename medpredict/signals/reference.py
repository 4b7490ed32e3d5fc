"""What a ``signal`` column holds: a text reference to one window of a recorded signal.

A study table carries one reference per row::

    <file>[#<option>=<value>&<option>=<value>...]

``<file>``
    a WFDB record (its path, bare or with ``.hea``/``.dat``) or a ``.npy`` array of shape
    ``(samples,)`` or ``(leads, samples)``. Relative paths resolve from the loader's
    ``root`` (by default the working directory).
``start``, ``stop``
    the window ``[start, stop)``: both in samples (``start=2000&stop=8000``) or both in
    seconds (``start=10s&stop=40s``). Without them the reference is the whole file.
``lead``
    one lead, by name (a WFDB ``sig_name`` such as ``II``) or 0-based index; without it
    every lead is read.
``fs``
    the sampling rate in Hz. Required for ``.npy`` files, which do not store one; for a
    WFDB record the header declares the rate and ``fs``, when given, must match it.

Examples
--------
>>> ref = parse_reference("ecg/data_8_2#start=2000&stop=8000&fs=200&lead=II")
>>> ref.path.name, ref.window(fs=200, n_samples=43092), ref.lead, ref.fs
('data_8_2', (2000, 8000), 'II', 200.0)
>>> parse_reference("ecg/data_8_2#start=10s&stop=40s").window(fs=200, n_samples=43092)
(2000, 8000)
>>> format_reference("ecg/data_8_2", 2000, 8000, fs=200, lead="II")
'ecg/data_8_2#start=2000&stop=8000&fs=200&lead=II'
>>> parse_reference("ecg/data_8_2#start=0&end=6000")
Traceback (most recent call last):
...
ValueError: unknown option 'end'; a signal reference takes start, stop, lead, fs
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

OPTIONS = ("start", "stop", "lead", "fs")
WFDB_SUFFIXES = ("", ".hea", ".dat")
ARRAY_SUFFIX = ".npy"
_POSITION = re.compile(r"^(\d+(?:\.\d+)?)(s?)$")


@dataclass(frozen=True)
class SignalReference:
    """One parsed reference; ``start``/``stop`` are in seconds when ``seconds`` is set."""

    path: Path
    start: float | None = None
    stop: float | None = None
    seconds: bool = False
    lead: str | None = None
    fs: float | None = None

    @property
    def is_array(self) -> bool:
        """Whether the file is a ``.npy`` array (else a WFDB record)."""
        return self.path.suffix.lower() == ARRAY_SUFFIX

    def window(self, fs: float, n_samples: int) -> tuple[int, int]:
        """``(start, stop)`` in samples of a file sampled at ``fs`` with ``n_samples``.

        Raises
        ------
        ValueError
            When the window does not lie inside the file.
        """
        if self.start is None or self.stop is None:
            return 0, n_samples
        scale = fs if self.seconds else 1.0
        start = round(self.start * scale)
        stop = start + round((self.stop - self.start) * scale)
        if stop > n_samples:
            shown = f"{self.start:g}s-{self.stop:g}s" if self.seconds else f"{start}-{stop}"
            raise ValueError(
                f"window {shown} ends after the end of the signal ({n_samples} samples, "
                f"{n_samples / fs:.1f} s at {fs:g} Hz)"
            )
        return start, stop


def _position(name: str, text: str) -> tuple[float, bool]:
    match = _POSITION.match(text)
    if not match:
        raise ValueError(
            f"{name}={text!r} is not a position; expected samples (2000) or seconds (10s)"
        )
    value, unit = float(match.group(1)), match.group(2) == "s"
    if not unit and not value.is_integer():
        raise ValueError(f"{name}={text!r}: a position in samples must be a whole number")
    return value, unit


def _options(fragment: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in fragment.split("&"):
        key, equals, value = part.partition("=")
        if not equals or not value:
            raise ValueError(f"option {part!r} is not of the form name=value")
        if key not in OPTIONS:
            raise ValueError(
                f"unknown option {key!r}; a signal reference takes {', '.join(OPTIONS)}"
            )
        if key in options:
            raise ValueError(f"option {key!r} is given twice")
        options[key] = value
    return options


def parse_reference(text: str) -> SignalReference:
    """Parse one reference (see the module docstring).

    Raises
    ------
    ValueError
        Saying what is wrong: an unknown or repeated option, a malformed position, a
        window with only one end or ``stop`` not after ``start``, a non-positive ``fs``,
        an unknown file type or a ``.npy`` file without ``fs``.
    """
    file_part, hashed, fragment = text.strip().partition("#")
    if not file_part:
        raise ValueError("the reference names no file")
    options = _options(fragment) if hashed else {}
    path = Path(file_part)
    if path.suffix.lower() not in (*WFDB_SUFFIXES, ARRAY_SUFFIX):
        raise ValueError(
            f"unknown signal file type {path.suffix!r}; expected a WFDB record (bare path, "
            f".hea or .dat) or a {ARRAY_SUFFIX} array"
        )
    start = stop = None
    seconds = False
    if ("start" in options) != ("stop" in options):
        raise ValueError("give both start and stop of the window, or neither")
    if "start" in options:
        start, start_seconds = _position("start", options["start"])
        stop, seconds = _position("stop", options["stop"])
        if start_seconds != seconds:
            raise ValueError("start and stop must use the same unit (both samples or both s)")
        if stop <= start:
            raise ValueError(f"stop ({options['stop']}) must come after start ({options['start']})")
    fs = None
    if "fs" in options:
        try:
            fs = float(options["fs"])
        except ValueError:
            fs = float("nan")
        if not fs > 0:
            raise ValueError(f"fs={options['fs']!r} is not a sampling rate in Hz")
    reference = SignalReference(path, start, stop, seconds, options.get("lead"), fs)
    if reference.is_array and fs is None:
        raise ValueError(f"a {ARRAY_SUFFIX} signal stores no sampling rate; add fs=<Hz>")
    return reference


def format_reference(
    path: str | Path,
    start: int | None = None,
    stop: int | None = None,
    fs: float | None = None,
    lead: str | None = None,
) -> str:
    """The reference text for a window ``[start, stop)`` in samples of ``path``."""
    options = []
    if start is not None and stop is not None:
        options += [f"start={int(start)}", f"stop={int(stop)}"]
    if fs is not None:
        options.append(f"fs={fs:g}")
    if lead is not None:
        options.append(f"lead={lead}")
    return f"{path}#{'&'.join(options)}" if options else str(path)
