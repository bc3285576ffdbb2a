"""``safelight store init|put|get|near|list|rm|stats`` (the store's part of the command line).

Image files are uploaded with near-duplicate tags (an EfficientNet-Lite0 embedding computed
here, keyed LSH tags, the embedding encrypted for the owner); other files without.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SafelightError


def add_parser(sub) -> None:
    p = sub.add_parser("store", help="the encrypted image store (convergent encryption, dedup)")
    ssub = p.add_subparsers(dest="store_command", required=True)

    q = ssub.add_parser("init", help="certificates, store.toml and owner keys for a new store")
    q.add_argument("directory")
    q.add_argument("--owner", action="append", required=True, help="an owner (repeatable)")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=7500, help="storage server port (the key server uses port+1)")
    q.set_defaults(func=cmd_init)

    def client_args(q) -> None:
        q.add_argument("--config", required=True, help="store.toml")
        q.add_argument("--owner", required=True)
        q.add_argument("--key", help="the owner key file (default: <owner>.key next to store.toml)")

    q = ssub.add_parser("put", help="encrypt and upload files (equal files are stored once)")
    q.add_argument("files", nargs="+")
    client_args(q)
    q.add_argument("--plain", action="store_true",
                   help="classic convergent keys from the file alone (no key server; guessable files can be "
                        "confirmed by whoever holds the ciphertext)")
    q.set_defaults(func=cmd_put)

    q = ssub.add_parser("get", help="download and decrypt one entry")
    q.add_argument("entry")
    q.add_argument("output")
    client_args(q)
    q.set_defaults(func=cmd_get)

    q = ssub.add_parser("near", help="stored images that look like IMAGE (near duplicates)")
    q.add_argument("image")
    client_args(q)
    q.add_argument("--threshold", type=float, default=None, help="cosine similarity (default: the calibrated one)")
    q.set_defaults(func=cmd_near)

    q = ssub.add_parser("list", help="the owner's entries")
    client_args(q)
    q.set_defaults(func=cmd_list)

    q = ssub.add_parser("rm", help="delete an entry (its blob goes with the last reference)")
    q.add_argument("entry")
    client_args(q)
    q.set_defaults(func=cmd_rm)

    q = ssub.add_parser("stats", help="entries, blobs and the space deduplication saved")
    client_args(q)
    q.set_defaults(func=cmd_stats)


def cmd_init(args: argparse.Namespace) -> int:
    from ..runtime.certs import create_cluster_certs
    from .client import create_owner_key
    from .service import KEYSERVER_NAME, STORE_NAME, StoreConfig

    root = Path(args.directory)
    if (root / "store.toml").exists():
        raise SafelightError(f"{root / 'store.toml'} exists: this directory already holds a store")
    root.mkdir(parents=True, exist_ok=True)
    create_cluster_certs(root / "certs", 1, clients=tuple(args.owner), extra_names=(STORE_NAME, KEYSERVER_NAME))
    StoreConfig(Path("certs"), args.host, args.port, Path("store-data"), args.host, args.port + 1,
                Path("keyserver.key")).save(root / "store.toml")
    for owner in args.owner:
        create_owner_key(root / f"{owner}.key")
    print(f"store in {root}: start 'safelight serve --role store --config {root / 'store.toml'}' and "
          f"'safelight serve --role keyserver --config {root / 'store.toml'}'; owner keys: "
          + ", ".join(f"{o}.key" for o in args.owner))
    return 0


def _client(args: argparse.Namespace, plain: bool = False):
    from .client import StoreClient
    from .service import StoreConfig

    config = StoreConfig.load(args.config)
    key = args.key or Path(args.config).parent / f"{args.owner}.key"
    return StoreClient(config, args.owner, key, plain=plain)


def cmd_put(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    paths = [Path(f) for f in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SafelightError(f"not a file: {', '.join(missing)}")
    new = dup = 0
    with _client(args, plain=args.plain) as client, Progress(console=console, transient=True) as progress:
        task = progress.add_task("encrypting and uploading", total=len(paths))
        for lo in range(0, len(paths), 64):  # one key-server request per batch of 64
            batch = paths[lo:lo + 64]
            files = [(p.name, p.read_bytes()) for p in batch]
            images = all(_is_image(data) for _, data in files)
            for stored in (client.put_images(files) if images else client.put(files)):
                print(f"{stored.entry}  {stored.name}  {'new' if stored.new_blob else 'deduplicated'}")
                new += stored.new_blob
                dup += not stored.new_blob
            progress.advance(task, len(batch))
        stats = client.stats()
    console.print(f"{len(paths)} files: {new} new blobs, {dup} deduplicated; the store now saves "
                  f"{stats['saved_bytes']} of {stats['logical_bytes']} bytes")
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
    for entry, name, similarity in hits:
        print(f"{entry}  {name}  similarity {similarity:.3f}")
    if not hits:
        print("no stored image looks like this one")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        name, data = client.get(args.entry)
    Path(args.output).write_bytes(data)
    print(f"{name} -> {args.output} ({len(data)} bytes)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for entry, name in client.list():
            print(f"{entry}  {name}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with _client(args) as client:
        gone = client.remove(args.entry)
    print("removed" + (" (and its blob)" if gone else " (its blob is still used by another entry)"))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for k, v in client.stats().items():
            print(f"{k}: {v}")
    return 0
