"""Command-line conventions (issue 12, points 10, 12, 14, 16, 17): results on stdout and
progress on stderr, ``--json`` on every task command, ``--version``, help on every
argument, ``bench NAME`` running that benchmark alone, one line and exit 2 for a busy
port, the HE filter's kernel sizes, the offline phase's progress, and the README's
cluster.toml example."""

import argparse
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import safelight
from safelight import cli
from safelight.tasks import filter as plain_filter

README = Path(__file__).resolve().parent.parent / "README.md"


def run_cli(*args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "safelight", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "camera.png"
    Image.fromarray(data.camera()[100:164, 150:230]).save(path)
    return path


# ---- point 16: help, version, stdout / stderr, --json -------------------------------------


def _parsers(parser, path=("safelight",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name)) if helps.get(name) else [((*path, name), None)]


def test_every_argument_and_command_has_help():
    missing = []
    for path, parser in _parsers(cli.build_parser()):
        if parser is None:
            missing.append(" ".join(path) + " (command)")
            continue
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if action.help is argparse.SUPPRESS:
                continue
            if not (action.help or "").strip():
                missing.append(f"{' '.join(path)} {action.option_strings or action.dest}")
    assert not missing, f"arguments without help: {missing}"


def test_version():
    proc = run_cli("--version", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"safelight {safelight.__version__}"


def test_every_task_command_takes_json():
    parser = cli.build_parser()
    for argv in (
        ["filter", "a.png", "b.png", "--kernel", "box:3"],
        ["denoise", "a.png", "b.png", "--sigma", "25"],
        ["demo"],
        ["filter-demo"],
        ["model", "upload", "--cluster", "c.toml"],
    ):
        assert parser.parse_args([*argv, "--json"]).json is True, argv


def test_summary_on_stdout_and_progress_on_stderr(photo, tmp_path):
    proc = run_cli("filter", str(photo), str(tmp_path / "out.png"), "--kernel", "box:3")
    assert proc.returncode == 0, proc.stderr
    assert "party-0" in proc.stdout and "wall time" in proc.stdout and "output" in proc.stdout
    assert "wall time" not in proc.stderr and "job summary" not in proc.stderr


def _only_json(stdout):
    """stdout holds exactly one JSON object and nothing else."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def _check_job_record(record, output):
    assert record["output"] == str(output)
    for key in ("wall_seconds", "online_seconds", "offline_seconds", "rounds", "upload_bytes", "download_bytes"):
        assert isinstance(record[key], (int, float)), key
    assert record["parties"] and all(
        isinstance(p["bytes_sent"], int) and p["bytes_sent"] > 0 for p in record["parties"]
    )


@pytest.mark.parametrize("extra", [[], ["--scheme", "he"]])
def test_filter_json_is_the_only_thing_on_stdout(photo, tmp_path, extra):
    out = tmp_path / "out.png"
    proc = run_cli("filter", str(photo), str(out), "--kernel", "sobel-x", "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    record = _only_json(proc.stdout)
    _check_job_record(record, out)
    assert len(record["parties"]) == (1 if extra else 2)
    assert out.exists()


def test_denoise_and_model_upload_json(tmp_path):
    from safelight.tasks import denoise

    noisy = np.round(np.clip(denoise.add_noise(data.coffee()[:16, :16], 25, seed=4), 0, 1) * 255).astype(np.uint8)
    src, out = tmp_path / "noisy.png", tmp_path / "clean.png"
    Image.fromarray(noisy).save(src)
    with safelight.Cluster.local(2, dealer=True) as cluster:
        config = str(cluster.workdir / "cluster.toml")
        proc = run_cli("model", "upload", "--cluster", config, "--json")
        assert proc.returncode == 0, proc.stderr
        record = _only_json(proc.stdout)
        assert record["model"] == "ffdnet_color" and record["tensors"] == 24 and record["servers"] == 2
        proc = run_cli("denoise", str(src), str(out), "--sigma", "25", "--cluster", config, "--json")
        assert proc.returncode == 0, proc.stderr
    record = _only_json(proc.stdout)
    _check_job_record(record, out)
    assert "online / offline" in record["details"] and record["triples"] == "dealer"


def test_demo_json(tmp_path):
    out = tmp_path / "demo.png"
    proc = run_cli("demo", "--size", "16", "--output", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    record = _only_json(proc.stdout)
    _check_job_record(record, out)
    assert "PSNR gap private vs plaintext" in record["details"]
    assert "private denoising demo" in proc.stderr  # the introduction is a note, not a result


def test_filter_demo_json(tmp_path):
    out = tmp_path / "fd.png"
    proc = run_cli("filter-demo", "--kernel", "box:3", "--output", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    _check_job_record(_only_json(proc.stdout), out)


def test_bench_ring_add_runs_only_ring_add(capsys):
    from safelight import bench

    assert [b.name for b in bench.resolve(["ring_add"])] == ["ring_add"]
    assert cli.main(["bench", "ring_add", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["ring_add"]


# ---- point 10: a busy port is one line and exit 2 --------------------------------------------


@pytest.mark.parametrize("role", ["party", "dealer"])
def test_serve_on_a_port_in_use_is_one_line_and_exit_2(tmp_path, role):
    from safelight.net.certs import create_cluster_certs
    from safelight.net.config import ClusterConfig, PartyAddress

    create_cluster_certs(tmp_path / "certs", 2, extra_names=("dealer",))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        busy = PartyAddress("127.0.0.1", port)
        free = PartyAddress("127.0.0.1", 1)
        cfg = ClusterConfig(
            (busy, free) if role == "party" else (free, free),
            tmp_path / "certs",
            2.0,
            dealer=busy if role == "dealer" else None,
        )
        path = cfg.save(tmp_path / "cluster.toml")
        args = ["--party", "0"] if role == "party" else ["--role", "dealer"]
        proc = run_cli("serve", "--config", str(path), *args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("safelight: error:")]
    assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{port}" in errors[0]
    assert "already in use" in errors[0].lower()


# ---- point 12: the HE filter takes large kernels -----------------------------------------------


@pytest.mark.parametrize("kernel", ["gaussian:2", "box:31"])
def test_he_filter_cli_takes_17x17_and_31x31_kernels(photo, tmp_path, kernel):
    out = tmp_path / "out.png"
    proc = run_cli("filter", str(photo), str(out), "--kernel", kernel, "--scheme", "he")
    assert proc.returncode == 0, proc.stderr
    image = np.asarray(Image.open(photo))
    want = plain_filter.to_image(plain_filter.plaintext(image, kernel), kernel)
    assert np.abs(np.asarray(Image.open(out)).astype(int) - want.astype(int)).max() <= 1


@pytest.fixture(scope="module")
def he_server():
    with safelight.Cluster.local(1) as cluster:
        yield cluster


@pytest.mark.parametrize(
    "kernel",
    [
        "gaussian:2",
        np.random.default_rng(5).normal(size=(31, 31)) / 40,  # signed weights, 31 x 31
        "gaussian:7.5",  # 61 x 61: a larger ring
        "gaussian:20",  # 161 x 161, the largest the command takes
    ],
)
@pytest.mark.parametrize("encrypted_kernel", [False, True])
def test_he_filter_large_kernels_match_plaintext(he_server, kernel, encrypted_kernel):
    from safelight.tasks import he_filter

    image = data.camera()[100:164, 150:230]
    result = he_filter.run(image, kernel, he_server, encrypted_kernel=encrypted_kernel)
    assert np.abs(result.values - plain_filter.plaintext(image, kernel)).max() * 255 < 1.0


def test_he_filter_ring_degree_grows_only_for_large_kernels():
    from safelight.tasks import he_filter

    assert he_filter.ring_degree(258, 258, 3, 3)[0] == 8192
    assert he_filter.ring_degree(272, 272, 17, 17)[0] == 8192
    n, packing = he_filter.ring_degree(416, 416, 161, 161)
    assert n == 32768 and packing.ht * packing.wt <= n


# ---- point 14: the offline phase reports progress ----------------------------------------------


def test_offline_progress_frames_reach_the_callback_without_a_dealer():
    """A dealer-free job (triples="he") tells the client each offline step; a callback
    without a ``phase`` parameter still gets the online steps only, as before."""
    from safelight import encode
    from safelight.program.program import Program

    prog = Program(parties=2, truncation="local")
    x, w = prog.input("x", (1, 2, 6, 6)), prog.input("w", (2, 2, 3, 3))
    prog.output(prog.conv2d(x, w, padding=1), "y")
    rng = np.random.default_rng(0)
    frames, old_style = [], []

    def on_progress(party, step, of, op, phase="online"):
        frames.append((party, phase, step, of, op))

    with safelight.Cluster.local(2) as cluster:
        inputs = {"x": encode(rng.normal(size=(1, 2, 6, 6)), 2), "w": encode(rng.normal(size=(2, 2, 3, 3)), 2)}
        cluster.run(prog, inputs, on_progress, triples="he")
        cluster.run(prog, inputs, lambda *a: old_style.append(a), triples="he")
    n = len(prog.steps)
    for party in (0, 1):
        mine = [f[1:] for f in frames if f[0] == party]
        offline = [f for f in mine if f[0] == "offline"]
        assert [f[1] for f in offline] == list(range(1, n + 1)) and all(f[2] == n for f in offline)
        assert offline[0][3] == "conv2d"
        assert mine.index(offline[-1]) < mine.index(next(f for f in mine if f[0] == "online"))
    assert sorted(a[1] for a in old_style) == sorted(list(range(1, n + 1)) * 2)
    assert all(len(a) == 4 for a in old_style)


def test_cli_progress_has_an_eta_and_a_bar_per_phase():
    from rich.progress import TimeRemainingColumn

    progress = cli._progress()
    assert any(isinstance(c, TimeRemainingColumn) for c in progress.columns)
    callback = cli._layer_progress(progress)
    callback(0, 1, 3, "conv2d", phase="offline")
    callback(0, 1, 3, "conv2d")
    assert [t.description for t in progress.tasks] == [
        "party-0 offline step 1/3 conv2d",
        "party-0 online step 1/3 conv2d",
    ]


# ---- point 17: the README's cluster.toml and filter output ----------------------------------------


def test_readme_cluster_toml_example_loads(tmp_path):
    from safelight.net.config import ClusterConfig

    text = README.read_text()
    assert "python/safelight/net/config.py" in text
    block = re.search(r"#### A remote cluster.*?```toml\n(.*?)```", text, re.DOTALL)
    assert block, "the README shows a cluster.toml example"
    (tmp_path / "cluster.toml").write_text(block.group(1))
    cfg = ClusterConfig.load(tmp_path / "cluster.toml")
    assert [(p.host, p.port) for p in cfg.parties] == [("10.0.0.5", 7400), ("10.0.0.6", 7400)]
    assert cfg.dealer is not None and cfg.certs == tmp_path / "certs" and cfg.store == tmp_path / "models"
    assert cfg.records == "sealed" and cfg.limits.max_jobs == 4


def test_readme_says_how_negative_filter_outputs_are_written_and_what_denoising_costs():
    text = README.read_text()
    assert "|response|" in text and "clipped to [0, 1]" in text
    table = text[text.index("#### What private denoising costs") :]
    for size in ("64×64", "128×128", "256×256", "512×512"):
        assert size in table
    assert "21.2 GB" in table and "5.4 GB" in table
    # what the README says matches the code
    values = np.array([[-0.5, 0.25, 1.5]])
    assert plain_filter.to_image(values, "sobel-x").tolist() == [[128, 64, 255]]
    assert plain_filter.to_image(values, "sharpen").tolist() == [[0, 64, 255]]
