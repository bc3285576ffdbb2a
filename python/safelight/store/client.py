"""The owner's side of the store: derive content keys, seal, upload, fetch, delete.

Per entry the store keeps the sealed file (deduplicated by ciphertext) and ``meta``: the
file's name and content key, encrypted under the owner's own 32-byte key (AES-GCM, bound
to the entry id), so only the owner can list names or open files.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import InputError, ProtocolError
from ..net.certs import Identity
from ..net.transport import MsgType, connect
from . import convergent, oprf
from .service import KEYSERVER_NAME, NO_JOB, STORE_NAME, StoreConfig

OWNER_KEY_BYTES = 32
UNREADABLE = "its metadata does not open with this owner key (another owner's key, or damaged)"
FULL_ID = re.compile(r"[0-9a-f]{64}")
HEX = re.compile(r"[0-9a-fA-F]+")
ID_PREFIX_MIN = 4  # hex digits of an entry id that ``resolve`` accepts as a prefix
# cosine similarity: no unrelated pair of the near-duplicate benchmark above it (benchmarks/near_duplicates.py)
NEAR_THRESHOLD = 0.65


def _decode_image(data: bytes) -> np.ndarray:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"not an image: {exc}") from None


def create_owner_key(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(OWNER_KEY_BYTES))
    return path


@dataclass
class Listing:
    """An owner's entries, oldest first: (entry id, file name) of those whose metadata opens
    with the owner key, and (entry id, why) of those whose metadata does not. Iterating
    gives the readable ones."""

    entries: list[tuple[str, str]]
    unreadable: list[tuple[str, str]]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


@dataclass
class Stored:
    entry: str
    blob: str
    new_blob: bool
    name: str


class StoreClient:
    def __init__(
        self,
        config: StoreConfig,
        owner: str,
        owner_key: str | os.PathLike,
        plain: bool = False,
        embed: Callable[[bytes], np.ndarray] | None = None,
    ) -> None:
        """``embed`` maps an image file's bytes to its embedding (default: EfficientNet-Lite0,
        on first use) for near-duplicate lookup."""
        self.config, self.owner, self.plain = config, owner, plain
        self.owner_key_path = Path(owner_key)
        key = Path(owner_key).read_bytes() if Path(owner_key).exists() else b""
        if len(key) != OWNER_KEY_BYTES:
            raise InputError(f"{owner_key} is not an owner key (run: safelight store init)")
        self.meta_cipher = AESGCM(key)
        self._owner_key, self._embed, self._sketcher = key, embed, None
        self.identity = Identity.from_dir(config.certs, owner)
        self.store = connect(config.store_host, config.store_port, self.identity, STORE_NAME, config.timeout)
        self.keys = None  # the key server's link, opened on first need

    def close(self) -> None:
        self.store.close()
        if self.keys is not None:
            self.keys.close()

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- keys ----------------------------------------------------------------------
    def content_keys(self, files: list[bytes]) -> list[bytes]:
        """One content key per file: through the key server's OPRF (one request for the
        batch), or from the digest alone with ``plain=True``."""
        digests = [convergent.digest(data) for data in files]
        if self.plain:
            return [convergent.content_key(d) for d in digests]
        blinded = [oprf.blind(d) for d in digests]
        if self.keys is None:
            self.keys = connect(
                self.config.key_host, self.config.key_port, self.identity, KEYSERVER_NAME, self.config.timeout
            )
        self.keys.send_json(MsgType.KEY_REQ, NO_JOB, {"points": [b.hex() for _, b in blinded]})
        answer = self.keys.expect(MsgType.RESULT).json.get("points", [])
        if len(answer) != len(files):
            raise ProtocolError("the key server answered a different number of points")
        return [
            convergent.content_key(oprf.finalize(d, r, bytes.fromhex(z)))
            for d, (r, _), z in zip(digests, blinded, answer)
        ]

    # ---- requests -------------------------------------------------------------------
    def _request(self, op: str, **fields):
        self.store.send_json(MsgType.STORE_REQ, NO_JOB, {"op": op, **fields})
        return self.store.expect(MsgType.RESULT).json

    def _meta(self, entry: str, name: str, key: bytes, extra: dict | None = None) -> str:
        nonce = secrets.token_bytes(12)
        body = json.dumps({"name": name, "key": key.hex(), **(extra or {})}).encode()
        return (nonce + self.meta_cipher.encrypt(nonce, body, bytes.fromhex(entry))).hex()

    def _open_meta(self, entry: str, meta_hex: str) -> dict | None:
        """An entry's metadata, or None when it does not open (another owner key, damage)."""
        try:
            raw = bytes.fromhex(meta_hex)
            meta = json.loads(self.meta_cipher.decrypt(raw[:12], raw[12:], bytes.fromhex(entry)))
        except (InvalidTag, ValueError, TypeError):
            return None
        ok = isinstance(meta, dict) and isinstance(meta.get("name"), str) and isinstance(meta.get("key"), str)
        return meta if ok else None

    def read_meta(self, entry: str, meta_hex: str) -> dict:
        meta = self._open_meta(entry, meta_hex)
        if meta is None:
            raise InputError(f"entry {entry[:12]}...: {UNREADABLE}")
        return meta

    def put(
        self,
        files: list[tuple[str, bytes]],
        tags: list[list[tuple[int, bytes]]] | None = None,
        extra: list[dict] | None = None,
    ) -> list[Stored]:
        """Upload files (name, bytes); equal files are stored once."""
        keys = self.content_keys([data for _, data in files])
        sealed = [convergent.seal(data, key) for (_, data), key in zip(files, keys)]
        have = self._request("has", blobs=[s.blob_id for s in sealed])["has"]
        out = []
        sent: set[str] = set()
        for i, ((name, _), s) in enumerate(zip(files, sealed)):
            entry = secrets.token_hex(32)
            with_blob = not have[i] and s.blob_id not in sent
            self.store.send_json(
                MsgType.STORE_REQ,
                NO_JOB,
                {
                    "op": "put",
                    "entry": entry,
                    "blob": s.blob_id,
                    "with_blob": with_blob,
                    "meta": self._meta(entry, name, s.key, extra[i] if extra else None),
                    "tags": [[b, t.hex()] for b, t in (tags[i] if tags else [])],
                },
            )
            if with_blob:
                self.store.send_tensor(NO_JOB, "blob", np.frombuffer(s.ciphertext, dtype=np.uint8))
                sent.add(s.blob_id)
            reply = self.store.expect(MsgType.RESULT).json
            out.append(Stored(entry, s.blob_id, bool(reply["new_blob"]), name))
        return out

    # ---- near duplicates -----------------------------------------------------------
    def embedding(self, image: bytes) -> np.ndarray:
        if self._embed is None:
            from ..models.embedding import Embedder

            embedder = Embedder()
            self._embed = lambda data: embedder.embed([_decode_image(data)])[0]
        e = np.asarray(self._embed(image), dtype=np.float32).reshape(-1)
        return e / max(float(np.linalg.norm(e)), 1e-12)

    def sketcher(self, dim: int):
        from .sketch import Sketcher

        if self._sketcher is None or self._sketcher.dim != dim:
            self._sketcher = Sketcher(self._owner_key, dim)
        return self._sketcher

    def put_images(self, images: list[tuple[str, bytes]]) -> list[Stored]:
        """Upload image files with keyed LSH tags and their encrypted embeddings."""
        embeddings = [self.embedding(data) for _, data in images]
        tags = [self.sketcher(e.size).tags(e) for e in embeddings]
        extra = [{"embedding": e.astype(np.float16).tobytes().hex()} for e in embeddings]
        return self.put(images, tags, extra)

    def near(self, image: bytes, threshold: float | None = None) -> list[tuple[str, str, float]]:
        """The owner's stored images that look like ``image``: (entry, name, cosine similarity),
        most similar first. The server returns candidates whose tags match in some band; the
        owner decrypts their embeddings and keeps those above ``threshold``."""
        threshold = NEAR_THRESHOLD if threshold is None else threshold
        query = self.embedding(image)
        hits = self._request("near", tags=[[b, t.hex()] for b, t in self.sketcher(query.size).tags(query)])["hits"]
        out = []
        for entry, _, meta_hex in hits:
            meta = self.read_meta(entry, meta_hex)
            if "embedding" not in meta:
                continue
            e = np.frombuffer(bytes.fromhex(meta["embedding"]), dtype=np.float16).astype(np.float32)
            similarity = float(e @ query / max(float(np.linalg.norm(e)), 1e-12))
            if similarity >= threshold:
                out.append((entry, meta["name"], similarity))
        return sorted(out, key=lambda r: -r[2])

    def get(self, entry: str) -> tuple[str, bytes]:
        """(name, file bytes) of an entry, authenticated."""
        self.store.send_json(MsgType.STORE_REQ, NO_JOB, {"op": "get", "entry": entry})
        blob = self.store.expect(MsgType.TENSOR).array
        meta = self.read_meta(entry, self.store.expect(MsgType.RESULT).json["meta"])
        data = convergent.open_sealed(blob.tobytes(), bytes.fromhex(meta["key"]))
        return meta["name"], data

    def list(self) -> Listing:
        """The owner's entries, oldest first. An entry whose metadata does not open is set
        aside in ``unreadable`` instead of failing the whole listing."""
        listing = Listing([], [])
        for e, _, m in self._request("list")["entries"]:
            meta = self._open_meta(e, m)
            if meta is None:
                listing.unreadable.append((e, UNREADABLE))
            else:
                listing.entries.append((e, meta["name"]))
        return listing

    def resolve(self, ref: str) -> str:
        """The id of the entry ``ref`` names: a full id (64 lowercase hex digits, taken as
        given), the file name an entry was stored under, or a prefix of at least
        ``ID_PREFIX_MIN`` hex digits of one entry's id. A name or prefix that fits several
        entries is an :class:`InputError` listing them; nothing is chosen for the caller.
        Anything but a full id lists the owner's entries (names are only in their
        encrypted metadata)."""
        if FULL_ID.fullmatch(ref):
            return ref
        listing = self.list()
        names = dict(listing.entries)
        ids = [e for e, _ in listing.entries] + [e for e, _ in listing.unreadable]
        prefix = ref.lower() if len(ref) >= ID_PREFIX_MIN and HEX.fullmatch(ref) else None
        found = [e for e in ids if names.get(e) == ref or (prefix is not None and e.startswith(prefix))]
        if len(found) == 1:
            return found[0]
        if not found:
            short = (
                f" (an id prefix needs {ID_PREFIX_MIN} hex digits or more)" if HEX.fullmatch(ref) and not prefix else ""
            )
            raise InputError(
                f"no entry is named {ref!r} or has an id starting with it{short}; safelight store list shows them"
            )
        ordered = sorted(found)  # as many digits as it takes to tell the candidates apart
        width = max([12] + [1 + len(os.path.commonprefix(pair)) for pair in zip(ordered, ordered[1:])])
        shown = ", ".join(f"{e[:width]} ({names.get(e, 'unreadable metadata')})" for e in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        raise InputError(f"{ref!r} fits {len(found)} entries: {shown}{more}; give more digits of the id")

    def remove(self, entry: str) -> bool:
        return bool(self._request("rm", entry=entry)["blob_removed"])

    def stats(self) -> dict:
        return self._request("stats")
