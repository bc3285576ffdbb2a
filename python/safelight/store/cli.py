"""``safelight store init|put|get|near|list|rm|stats`` (the store's part of the command line).

By default a command works on the local store directory ``~/.safelight/store`` (or
``--store-dir``): it starts the storage server and the key server on loopback, runs, and
stops them (:mod:`.local`); ``put`` creates the directory on first use. ``--config
store.toml`` talks to servers already running elsewhere instead.

Image files are uploaded with near-duplicate tags (an EfficientNet-Lite0 embedding computed
here, keyed LSH tags, the embedding encrypted for the owner); other files without.

``get`` and ``rm`` take an entry as its full id, a unique prefix of it (4 hex digits or
more) or the file name it was stored under; a name or prefix that fits several entries is an
error listing them. ``get`` checks its output path before contacting the store and writes
the file whole (a temporary file renamed into place) or not at all.

Exit codes: 0 done; 2 bad input or an error (one line ``safelight: error: ...`` on stderr);
``list`` exits 1 when it listed only some entries: each entry whose metadata does not open
with the owner key (damaged, or another owner's key) gets a ``safelight: warning:`` line on
stderr, and the others are listed on stdout as usual (if none opens, it is an error, exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError, InputError, SafelightError
from .backends.base import DEFAULT_SCHEMA


def add_parser(sub) -> None:
    p = sub.add_parser("store", help="the encrypted image store (convergent encryption, dedup)")
    ssub = p.add_subparsers(dest="store_command", required=True)

    q = ssub.add_parser("init", help="certificates, store.toml and owner keys for a new store")
    q.add_argument("directory", nargs="?", help="where (default: --store-dir, or ~/.safelight/store)")
    q.add_argument("--store-dir", help="the same as DIRECTORY")
    q.add_argument("--owner", action="append", help="an owner (repeatable; default 'owner')")
    q.add_argument("--host", default="127.0.0.1", help="address for serving it to other machines")
    q.add_argument(
        "--port",
        type=int,
        default=7500,
        help="storage server port (the key server uses port+1); 0: each server binds a free port "
        "when it starts and prints it (READY store|keyserver PORT)",
    )
    q.add_argument(
        "--index",
        metavar="URL",
        help="keep the index in PostgreSQL (postgresql://user@host/db; needs safelight[postgres]) "
        "instead of an SQLite file in the store directory",
    )
    q.add_argument(
        "--index-schema",
        default=DEFAULT_SCHEMA,
        help=f"the store's schema in that database, one per store (default {DEFAULT_SCHEMA})",
    )
    q.set_defaults(func=cmd_init)

    def client_args(q) -> None:
        where = q.add_mutually_exclusive_group()
        where.add_argument(
            "--store-dir",
            help="a local store: its servers run on loopback for this command (default ~/.safelight/store)",
        )
        where.add_argument("--config", help="store.toml of servers already running (remote store)")
        q.add_argument("--owner", help="default: the store's owner, when it has one")
        q.add_argument("--key", help="the owner key file (default: <owner>.key next to store.toml)")
        q.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of text lines")

    q = ssub.add_parser("put", help="encrypt and upload files (equal files are stored once)")
    q.add_argument("files", nargs="+", help="image or other files to upload")
    client_args(q)
    q.add_argument(
        "--plain",
        action="store_true",
        help="classic convergent keys from the file alone (no key server; guessable files can be "
        "confirmed by whoever holds the ciphertext)",
    )
    q.set_defaults(func=cmd_put)

    q = ssub.add_parser("get", help="download and decrypt one entry")
    q.add_argument("entry", help="the entry: its id, a unique id prefix (4+ hex digits) or its file name")
    q.add_argument("output", help="the file to write (its folder must exist)")
    client_args(q)
    q.set_defaults(func=cmd_get)

    q = ssub.add_parser("near", help="stored images that look like IMAGE (near duplicates)")
    q.add_argument("image", help="the image to compare with the stored ones (it is not uploaded)")
    client_args(q)
    q.add_argument("--threshold", type=float, default=None, help="cosine similarity (default: the calibrated one)")
    q.set_defaults(func=cmd_near)

    q = ssub.add_parser("list", help="the owner's entries (exit 1 if some could not be opened: see stderr)")
    client_args(q)
    q.set_defaults(func=cmd_list)

    q = ssub.add_parser("rm", help="delete an entry (its blob goes with the last reference)")
    q.add_argument("entry", help="the entry: its id, a unique id prefix (4+ hex digits) or its file name")
    client_args(q)
    q.set_defaults(func=cmd_rm)

    q = ssub.add_parser("stats", help="entries, blobs and the space deduplication saved")
    client_args(q)
    q.set_defaults(func=cmd_stats)


def _store_dir(args: argparse.Namespace) -> Path:
    from .local import default_store_dir

    return Path(getattr(args, "directory", None) or args.store_dir or default_store_dir())


def cmd_init(args: argparse.Namespace) -> int:
    from .local import DEFAULT_OWNER, default_store_dir, init_store

    if args.directory and args.store_dir and Path(args.directory) != Path(args.store_dir):
        raise SafelightError("give the directory once (as DIRECTORY or --store-dir)")
    root = _store_dir(args)
    owners = args.owner or [DEFAULT_OWNER]
    config = init_store(root, owners, args.host, args.port, args.index, args.index_schema)
    where = "" if root.absolute() == default_store_dir().absolute() else f" --store-dir {root}"
    print(
        f"store in {root} (owners: {', '.join(owners)}; their keys and certificates are kept there)\n"
        f"commands start its servers on loopback by themselves: safelight store put FILES{where}\n"
        f"to serve it to other machines instead: safelight serve --role store --config {config} and "
        f"safelight serve --role keyserver --config {config}; clients then give --config"
    )
    return 0


def _owner(args: argparse.Namespace, config, where: Path) -> str:
    if args.owner:
        return args.owner
    if len(config.owners) == 1:
        return config.owners[0]
    raise ConfigError(f"give --owner ({where} has owners {', '.join(config.owners) or 'not recorded'})")


@contextmanager
def _client(args: argparse.Namespace, plain: bool = False, create: bool = False) -> Iterator[object]:
    """A connected StoreClient: to the servers of ``--config``, or to a local store's
    servers started for this command (the directory is created first when ``create``)."""
    from .client import StoreClient
    from .local import CONFIG_NAME, DEFAULT_OWNER, init_store, local_store
    from .service import StoreConfig

    if args.config:
        config = StoreConfig.load(args.config)
        owner = _owner(args, config, Path(args.config))
        with StoreClient(config, owner, args.key or Path(args.config).parent / f"{owner}.key", plain=plain) as c:
            yield c
        return
    root = _store_dir(args)
    if create and not (root / CONFIG_NAME).exists():
        init_store(root, [args.owner or DEFAULT_OWNER])
        print(f"safelight: created a store in {root} (owner '{args.owner or DEFAULT_OWNER}')", file=sys.stderr)
    if (root / CONFIG_NAME).exists():  # fail fast on a wrong owner, before starting servers
        saved = StoreConfig.load(root / CONFIG_NAME)
        owner = _owner(args, saved, root)
        if not (saved.certs / f"{owner}.pem").is_file():
            raise ConfigError(
                f"'{owner}' is not an owner of the store in {root}"
                + (f" (owners: {', '.join(saved.owners)})" if saved.owners else "")
            )
    with local_store(root) as config:
        owner = _owner(args, config, root)
        with StoreClient(config, owner, args.key or root / f"{owner}.key", plain=plain) as c:
            yield c


def _emit(args: argparse.Namespace, result: dict, lines: list[str]) -> None:
    """The command's result on stdout: one JSON object with ``--json``, else text lines."""
    if args.json:
        print(json.dumps(result))
    else:
        for line in lines:
            print(line)


def cmd_put(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    paths = [Path(f) for f in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SafelightError(f"not a file: {', '.join(missing)}")
    uploaded = []
    with _client(args, plain=args.plain, create=True) as client, Progress(console=console, transient=True) as progress:
        task = progress.add_task("encrypting and uploading", total=len(paths))
        for lo in range(0, len(paths), 64):  # one key-server request per batch of 64
            batch = paths[lo : lo + 64]
            files = [(p.name, p.read_bytes()) for p in batch]
            images = all(_is_image(data) for _, data in files)
            for stored in client.put_images(files) if images else client.put(files):
                if not args.json:
                    print(f"{stored.entry}  {stored.name}  {'new' if stored.new_blob else 'deduplicated'}")
                uploaded.append({"entry": stored.entry, "name": stored.name, "new_blob": bool(stored.new_blob)})
            progress.advance(task, len(batch))
        stats = client.stats()
    new = sum(u["new_blob"] for u in uploaded)
    summary = (
        f"{len(paths)} files: {new} new blobs, {len(uploaded) - new} deduplicated; the store now saves "
        f"{stats['saved_bytes']} of {stats['logical_bytes']} bytes"
    )
    _emit(args, {"files": uploaded, "new_blobs": new, "deduplicated": len(uploaded) - new, "stats": stats}, [summary])
    return 0


def _is_image(data: bytes) -> bool:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
        return True
    except (UnidentifiedImageError, OSError, SyntaxError):
        return False


def cmd_near(args: argparse.Namespace) -> int:
    path = Path(args.image)
    if not path.is_file():
        raise SafelightError(f"not a file: {path}")
    with _client(args) as client:
        hits = client.near(path.read_bytes(), args.threshold)
    _emit(
        args,
        {"matches": [{"entry": e, "name": n, "similarity": s} for e, n, s in hits]},
        [f"{e}  {n}  similarity {s:.3f}" for e, n, s in hits] or ["no stored image looks like this one"],
    )
    return 0


def _output_file(text: str) -> Path:
    """``get``'s output: a file path whose folder exists (checked before any download)."""
    out = Path(text)
    if text.endswith(("/", os.sep)) or out.is_dir():
        raise InputError(f"{text} names a folder: give the file to write, e.g. {out / 'photo.png'}")
    if not out.parent.is_dir():
        raise InputError(f"cannot write {text}: the folder {out.parent} does not exist")
    return out


def _write_whole(out: Path, data: bytes) -> None:
    """Write ``out`` through a temporary file in its folder, renamed into place: a failure
    or an interrupt leaves no partial file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cmd_get(args: argparse.Namespace) -> int:
    out = _output_file(args.output)
    with _client(args) as client:
        name, data = client.get(client.resolve(args.entry))
    _write_whole(out, data)
    _emit(args, {"name": name, "output": str(out), "bytes": len(data)}, [f"{name} -> {out} ({len(data)} bytes)"])
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        listing = client.list()
    if listing.unreadable and not listing.entries:
        raise InputError(
            f"none of the owner's {len(listing.unreadable)} entries opens with the owner key "
            f"{client.owner_key_path}: wrong --owner or --key? (with the right key, they are damaged)"
        )
    _emit(
        args,
        {
            "entries": [{"entry": e, "name": n} for e, n in listing.entries],
            "unreadable": [{"entry": e, "why": why} for e, why in listing.unreadable],
        },
        [f"{entry}  {name}" for entry, name in listing.entries],
    )
    for entry, why in listing.unreadable:
        print(
            f"safelight: warning: entry {entry}: {why}; not listed (remove it with: safelight store rm {entry[:16]})",
            file=sys.stderr,
        )
    if listing.unreadable:
        print(
            f"safelight: {len(listing.unreadable)} of {len(listing.entries) + len(listing.unreadable)} entries "
            "not listed",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with _client(args) as client:
        entry = client.resolve(args.entry)
        gone = client.remove(entry)
    _emit(
        args,
        {"removed": entry, "blob_removed": bool(gone)},
        [f"removed {entry}" + (" (and its blob)" if gone else " (its blob is still used by another entry)")],
    )
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _client(args) as client:
        stats = client.stats()
    _emit(args, stats, [f"{k}: {v}" for k, v in stats.items()])
    return 0
