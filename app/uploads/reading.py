"""An uploaded file's bytes, within the size limit, and its text."""

from typing import IO

CHUNK = 1024 * 1024


class UploadTooLarge(ValueError):
    pass


def read_limited(data: bytes | IO[bytes], limit: int) -> bytes:
    """The file's bytes, refusing (without reading on) as soon as it passes ``limit``."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > limit:
            raise UploadTooLarge(_too_large(limit))
        return raw
    buffer = bytearray()
    while chunk := data.read(min(CHUNK, limit + 1 - len(buffer))):
        buffer += chunk
        if len(buffer) > limit:
            raise UploadTooLarge(_too_large(limit))
    return bytes(buffer)


def _too_large(limit: int) -> str:
    return f"The file is larger than the upload limit of {_size(limit)}."


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} bytes"


def decode(raw: bytes) -> str:
    """UTF-8 with or without a BOM; anything else is refused with the offending position."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError("The file is UTF-16 encoded; save it as UTF-8 and upload it again.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"The file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}); "
            "save it as UTF-8 and upload it again."
        ) from exc
    if "\x00" in text:
        raise ValueError("The file contains NUL bytes; it does not look like a text file.")
    return text
