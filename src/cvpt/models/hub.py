"""Backbones by Hugging Face hub id: ``org/name`` or ``hf-hub:org/name[@revision]``.

A hub id resolves to the snapshot folder of the local Hugging Face cache (``HF_HUB_CACHE``,
default ``~/.cache/huggingface/hub``), which :func:`cvpt.load_backbone` then reads like any
Hugging Face folder. ``huggingface_hub`` (the optional extra ``cvpt[hub]``) does the resolving,
so its rules hold: a cached model loads without the network, ``HF_HUB_OFFLINE=1`` never
touches it, and a model that is not cached is downloaded when the hub is reachable. Nothing
here runs for a path that exists on disk: a local folder named ``org/name`` wins.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

from cvpt.errors import CheckpointError, CvptError, require

PREFIX = "hf-hub:"
# owner/name[@revision]: hub names are letters, digits, "-", "_", "." (no leading "." or "-")
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>[\w./-]+))?$")
# the weights a VideoMAE folder may hold, in the order load_backbone prefers them
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# or the index of a sharded model (cvpt.models.backbone_weights reads the shards it lists)
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
# a bare `dir/file.pth` that does not exist is a mistyped path, not a hub id
_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".pkl")


def parse_hub_id(spec: str | Path) -> tuple[str, str | None] | None:
    """``(repo id, revision or None)`` when ``spec`` names a hub model, else ``None``.

    ``hf-hub:org/name@rev`` always does; a bare ``org/name[@rev]`` does only when no such path
    exists on disk (relative paths such as ``checkpoints/vit.pth`` stay paths)."""
    text = str(spec)
    explicit = text.startswith(PREFIX)
    if explicit:
        text = text[len(PREFIX) :]
    elif (
        Path(text).exists()
        or text.startswith((".", "/", "~"))
        or text.split("@")[0].lower().endswith(_FILE_SUFFIXES)
    ):
        return None
    m = _HUB_ID.match(text)
    if m is None:
        if explicit:
            raise CheckpointError(spec, "not a hub id: expected hf-hub:org/name[@revision]")
        return None
    return m.group("repo"), m.group("rev")


def hub_id_hint(spec: str | Path) -> str:
    """For a path that does not exist: ``'; it looks like a hub id: ...'`` when it is one
    but for a trailing slash or a leading ``./`` (``acme/model/``), else ``''``."""
    text = str(spec).rstrip("/").removeprefix("./")
    if (
        Path(spec).exists()
        or text.startswith(PREFIX)
        or text.split("@")[0].lower().endswith(_FILE_SUFFIXES)
        or _HUB_ID.match(text) is None
    ):
        return ""
    return f"; it looks like a hub id: write it as {text} or hf-hub:{text}"


def resolve_checkpoint(spec: str | Path) -> str | Path:
    """``spec`` itself when it is a path; for a hub id, the cached snapshot folder holding its
    ``config.json`` and weights (fetched when not cached and the hub is reachable).

    Raises :class:`cvpt.errors.MissingDependencyError` without ``huggingface_hub`` and
    :class:`cvpt.CheckpointError` when the model is neither cached nor reachable (offline, no
    network, unknown repository or revision), naming the id and the cache searched."""
    parsed = parse_hub_id(spec)
    if parsed is None:
        return spec
    repo, revision = parsed
    hub = require("huggingface_hub", extra="hub", feature=f"the hub id {str(spec)!r}")
    errors = require("huggingface_hub.errors", extra="hub", feature="hub ids")
    from huggingface_hub import constants

    where = (
        f"looked in the cache {constants.HF_HUB_CACHE}"
        + (" with HF_HUB_OFFLINE=1" if constants.HF_HUB_OFFLINE else "")
        + f" for {repo}"
        + (f" at revision {revision}" if revision else "")
        + ("" if str(spec).startswith(PREFIX) else "; no local path of that name either")
    )
    partly = (
        f"cached only partly ({where}): download the model once online (hf download {repo}), "
        "or copy its whole cache folder here"
    )
    uncached: list[str] = []  # weight files this cache lacks and the hub was not asked about

    def fetch(name: str) -> Path | None:
        """The cached ``name``; None when the repository has no such file, or when the cache
        lacks it and the hub cannot be asked (then listed in ``uncached``). huggingface_hub's
        LocalEntryNotFoundError subclasses EntryNotFoundError: it is caught first."""
        try:
            return Path(hub.hf_hub_download(repo, name, revision=revision))
        except errors.LocalEntryNotFoundError:
            uncached.append(name)
        except errors.EntryNotFoundError:
            pass
        return None

    try:
        config = Path(hub.hf_hub_download(repo, "config.json", revision=revision))
        if any(fetch(name) for name in WEIGHT_FILES):
            return config.parent
        for index in SHARD_INDEXES:  # a sharded model: its index, then every shard it lists
            file = fetch(index)
            if file is None:
                continue
            for shard in sorted(set(json.loads(file.read_text()).get("weight_map", {}).values())):
                try:
                    hub.hf_hub_download(repo, shard, revision=revision)
                except errors.LocalEntryNotFoundError as e:
                    raise CheckpointError(
                        spec, f"the shard {shard} that {index} lists is not in the cache: {partly}"
                    ) from e
                except errors.EntryNotFoundError as e:
                    raise CheckpointError(
                        spec, f"{index} lists the shard {shard}, which the hub model has not"
                    ) from e
            return config.parent
        if uncached:
            raise CheckpointError(
                spec,
                f"config.json is in the cache but none of {', '.join(uncached)} (its weights): "
                f"{partly}",
            )
        raise CheckpointError(
            spec, f"the hub model has none of {', '.join(WEIGHT_FILES + SHARD_INDEXES)}"
        )
    except errors.LocalEntryNotFoundError as e:
        raise CheckpointError(
            spec,
            f"not in the local Hugging Face cache and the hub cannot be reached ({where}); "
            "download it once online, or copy its cache folder here",
        ) from e
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as e:
        raise CheckpointError(spec, f"no such model or revision on the hub ({where})") from e
    except errors.EntryNotFoundError as e:
        raise CheckpointError(spec, "the hub model has no config.json: not a VideoMAE") from e
    except OSError as e:  # network errors other than the above
        raise CheckpointError(spec, f"cannot fetch it from the hub ({where}): {e}") from e


def locate_checkpoint(spec: str | Path) -> tuple[str | Path, str]:
    """``(what to read, how to record it)`` for a backbone checkpoint: a hub id reads its
    cached snapshot and is recorded as ``hf-hub:org/name@<commit>`` (the revision resolved:
    the snapshot folder of huggingface_hub's cache is named by its commit), so that a model
    tuned on it loads on any machine from the same weights; a path is recorded absolute."""
    parsed = parse_hub_id(spec)
    if parsed is None:
        return spec, str(Path(spec).resolve())
    folder = Path(resolve_checkpoint(spec))
    return folder, f"{PREFIX}{parsed[0]}@{folder.name}"


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload a cvpt tuned model",
) -> str:
    """Upload every file of ``folder`` to the hub model repository ``repo_id`` (``org/name``,
    or ``hf-hub:org/name[@revision]`` as :func:`cvpt.load_model` takes it; created when
    missing) in one commit; returns the commit's URL. Needs ``huggingface_hub``
    (``cvpt[hub]``) and a token with write access (``token`` or ``hf auth login``).

    Raises :class:`cvpt.errors.CvptError` naming the repository and the hub's address when
    the hub cannot be reached or refuses (no commit is made then), and for an id that is not
    ``org/name``."""
    hub = require("huggingface_hub", extra="hub", feature="push_to_hub")
    m = _HUB_ID.match(repo_id.removeprefix(PREFIX))
    if m is None:
        raise CvptError(f"{repo_id}: not a hub repository id (expected org/name)")
    repo, revision = m.group("repo"), revision or m.group("rev")
    api = hub.HfApi(token=token)
    try:
        api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo,
            folder_path=str(folder),
            repo_type="model",
            revision=revision,
            commit_message=commit_message,
        )
    except _network_errors() as e:
        raise CvptError(
            f"{repo}: cannot push to the hub at {api.endpoint} ({type(e).__name__}: {e}); no "
            "commit was made: check the network, HF_ENDPOINT and the token, then push again"
        ) from e
    return str(getattr(info, "commit_url", None) or info)


def _network_errors() -> tuple[type[BaseException], ...]:
    """What the hub client raises when the hub is unreachable or refuses: OSError (its HTTP
    errors, offline mode) and the transport errors of the HTTP library it was built on
    (httpx, or its fork httpx2, in huggingface_hub 1.x and later; requests before), which
    are not OSErrors."""
    found: list[type[BaseException]] = [OSError]
    pairs = (("httpx", "HTTPError"), ("httpx2", "HTTPError"), ("requests", "RequestException"))
    for module, name in pairs:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)
