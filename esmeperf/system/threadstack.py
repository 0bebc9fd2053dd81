"""What a thread keeps of its stacks: the C stack's resident pages, and the interpreter's
frame stack (CPython's "data stack"), whose pages a deep call leaves touched.

A participant's thread signs up, asks for help and opens its WebSocket (requests, urllib3,
http.client, websocket-client: Python calls thirty frames deep), then chats for the rest of the
run a few frames from the bottom. CPython 3.11 keeps a thread's Python frames in a 16 KiB chunk
of its own (mmap'd, kept for the thread's life); the arrival's calls touch all four pages of it,
the conversation one, and thousands of participants would keep 8-12 KiB each for nothing (on
2,000 participants held, 15.9 MB of such chunks against 1.3 MB when the conversation ran on a
thread of its own). `shed()` hands the pages above the thread's current frames back to the
kernel (madvise MADV_DONTNEED): the next call that goes that deep gets zeroed pages, on demand,
as a new thread would.

Finding the chunk reads two CPython 3.11 internals through ctypes, each checked before use: a
frame object's pointer to its interpreter frame (which must point back at the frame object and
its code), and the root chunk's header (no previous chunk, a size of whole pages, the outermost
frame just past the header on the chunk's first page). Any other interpreter, version or layout,
or no Linux libc, and nothing is done. The C stack needs no such care: a thread's calls from
the conversation reach as deep as the arrival's did (three pages either way, measured with
pthread_getattr_np and mincore when this was written).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import sys
from types import FrameType
from typing import Any, NamedTuple

from .syscalls import libc_function

#: Bytes kept past the interpreter frame that calls shed(): that frame itself (a few hundred
#: bytes); the ctypes calls it makes push no Python frame.
FRAME_MARGIN = 1024
# CPython 3.11's layouts (Include/internal/pycore_frame.h, Include/cpython/frameobject.h,
# Python/pystate.c): PyFrameObject.f_frame; _PyInterpreterFrame's f_code and frame_obj; the
# data stack's chunk size, and where a thread's first frame sits in its root chunk (past the
# header's three words and one skipped slot).
_F_FRAME, _F_CODE, _FRAME_OBJ = 24, 32, 40
_CHUNK_SIZE = 16 * 1024
_ROOT_OFFSET = 32
_MADV_DONTNEED = 4  # <sys/mman.h>, the same on every Linux architecture


class _Libc(NamedTuple):
    madvise: Any  # ctypes' function pointers have no public type
    mincore: Any


@functools.cache
def _libc() -> _Libc | None:
    if not sys.platform.startswith("linux"):
        return None
    # Neither blocks: the GIL stays held.
    madvise = libc_function("madvise", (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int),
                            ctypes.c_int)
    mincore = libc_function("mincore", (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p),
                            ctypes.c_int)
    return None if madvise is None or mincore is None else _Libc(madvise, mincore)


def _resident(libc: _Libc, low: int, high: int) -> int | None:
    vector = (ctypes.c_ubyte * ((high - low) // mmap.PAGESIZE))()
    if libc.mincore(low, high - low, vector) != 0:
        return None
    return sum(byte & 1 for byte in vector) * mmap.PAGESIZE


def _interpreter_frame(frame: FrameType) -> int | None:
    """The address of `frame`'s interpreter frame (CPython 3.11's PyFrameObject.f_frame), or
    None unless that frame's f_code and frame_obj fields point back at the code and the frame
    object as they must."""
    address = ctypes.c_void_p.from_address(id(frame) + _F_FRAME).value
    if not address:
        return None
    code = ctypes.c_void_p.from_address(address + _F_CODE).value
    owner = ctypes.c_void_p.from_address(address + _FRAME_OBJ).value
    return address if code == id(frame.f_code) and owner == id(frame) else None


def _frame_chunk() -> tuple[int, int] | None:
    """This thread's root chunk of interpreter frames as (start, end), checked, or None."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        return None
    outermost = sys._getframe()
    while outermost.f_back is not None:
        outermost = outermost.f_back
    first = _interpreter_frame(outermost)
    if first is None:
        return None
    start = first & ~(mmap.PAGESIZE - 1)
    previous = ctypes.c_void_p.from_address(start).value
    size = ctypes.c_size_t.from_address(start + 8).value
    if previous or first - start != _ROOT_OFFSET or size < _CHUNK_SIZE or size % mmap.PAGESIZE:
        return None
    return start, start + size


def frames_resident_bytes() -> int | None:
    """How much of this thread's root chunk of interpreter frames is resident (mincore)."""
    libc, chunk = _libc(), _frame_chunk()
    if libc is None or chunk is None:
        return None
    return _resident(libc, *chunk)


def shed() -> int:
    """Give back the pages of this thread's interpreter frame chunk above its current frames;
    returns the bytes advised (0: nothing could be done, or nothing to give back)."""
    libc, chunk = _libc(), _frame_chunk()
    if libc is None or chunk is None:
        return 0
    start, end = chunk
    here = _interpreter_frame(sys._getframe())
    if here is None or not start < here < end:
        return 0  # deeper than the root chunk: leave it all alone
    # Past this frame (a few hundred bytes) and the calls below, which push no Python frame.
    first_free = (here + FRAME_MARGIN + mmap.PAGESIZE - 1) & ~(mmap.PAGESIZE - 1)
    if first_free >= end or libc.madvise(first_free, end - first_free, _MADV_DONTNEED) != 0:
        return 0
    return end - first_free
