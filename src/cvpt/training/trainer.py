"""``cvpt train``: the paper's recipe, on one CPU, one GPU or many (torchrun).

Effective batch = batch_size × processes × accumulation steps (accumulation chosen to reach
``effective_batch``; the real value is written into the run's config). Only rank 0 writes.
A run folder holds ``config.yaml`` (every key that ran, the derived values and the backbone's
identity), ``metrics.jsonl`` / ``metrics.csv``, ``curves.png``, ``checkpoints/`` (each one a
:func:`cvpt.load_model` folder plus the optimiser state) and ``summary.json`` (with every video
that failed to decode).

Checkpoints are written at every epoch end, every ``checkpoint_every_steps`` optimiser steps
and after ``checkpoint_every_minutes``, and at the next step boundary after SIGTERM / SIGINT
(or between evaluation batches), after which every rank stops; ``--resume`` continues
bit-exactly from any of them. The data position is a count of the epoch's global samples, and
global step s reads samples [s·E, (s+1)·E) of the epoch's permutation whatever the number of
processes P (E = effective batch = batch_size × P × accumulation): a run resumes on any P that
gives the same E with the same batches (bit-exact on the same P, to float rounding on another:
sums in another order), and is refused, naming both, on one that does not. A resume never
rewrites ``config.yaml``: it is refused when a key that changes the run differs, and what it ran
with is written to ``config.resume-step-<n>.yaml``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from cvpt.data.dataset import CompressedVideoDataset, EpochSampler, collate, worker_init
from cvpt.data.splits import open_splits
from cvpt.data.transforms import INPUT_KEYS, MODALITIES, normalize_inputs
from cvpt.errors import RunError, RunExistsError
from cvpt.formats import Format
from cvpt.io import atomic_output, write_json
from cvpt.loading import load_model
from cvpt.models.factory import create_model
from cvpt.models.methods import full_options
from cvpt.progress import tqdm
from cvpt.training import dist
from cvpt.training.checkpoint import (
    last_checkpoint,
    load_checkpoint,
    model_identity,
    save_checkpoint,
)
from cvpt.training.config import (
    TrainConfig,
    input_spec,
    load_run_config,
    read_run_config,
    save_config,
)
from cvpt.training.evaluate import EVAL_METRICS, metrics, predict_batch
from cvpt.training.plots import plot_confusion, plot_curves
from cvpt.training.preempt import StopRequest, signals_held
from cvpt.training.schedule import make_optimizer, scaled_lr
from cvpt.training.step import (
    TrainStep,
    classification_loss,
    flush_denormals,
    prepare_precision,
)
from cvpt.training.trackers import Trackers, check_installed, parse_loggers

log = logging.getLogger("cvpt.train")

RUN_SUMMARY = Format("cvpt-run-summary", 1)  # RUN/summary.json

# keys a resume may change: where things are, how fast, what is logged or evaluated; each
# resume's values are recorded in config.resume-step-<n>.yaml (any other key: a new run)
RESUME_MAY_CHANGE = (
    "root",
    "annotations",
    "backbone_checkpoint",  # the same weights moved: the fingerprint is checked
    "batch_size",  # per process: the effective batch is checked
    "workers",
    "compact_inputs",
    "device",
    "grad_checkpointing",
    "eval_every",
    "eval_views",
    "eval_crops",
    "checkpoint_every_steps",
    "checkpoint_every_minutes",
    "logger",
)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def setup_device(cfg: TrainConfig) -> tuple[torch.device, dist.DistInfo]:
    """This process's device (one GPU per process: torchrun's LOCAL_RANK) and its place among
    the processes, denormals flushed as ``cfg`` says."""
    device = pick_device(cfg.device)
    # first, so that torch's CPU worker threads (started by the first parallel op) inherit it
    flush_denormals(device, cfg.flush_denormal)
    info = dist.setup(device)
    if device.type == "cuda":
        device = torch.device("cuda", dist.cuda_index(info))
        torch.cuda.set_device(device)
    return device, info


def build_data(cfg: TrainConfig, subset: str, train: bool, info: dist.DistInfo):
    splits = open_splits(cfg.dataset, cfg.annotations, cfg.split)
    flip = cfg.flip if cfg.flip is not None else getattr(splits, "flips", True)
    ds = CompressedVideoDataset(
        cfg.root,
        splits.samples(subset),
        train=train,
        size=cfg.size,
        short_side=cfg.short_side,
        flip=flip,
        views=1 if train else cfg.eval_views,
        crops=1 if train else cfg.eval_crops,
        seed=cfg.seed,
        clip=cfg.clip,
        mv_clip=cfg.mv_clip,
        compact=cfg.compact_inputs,
    )
    sampler = EpochSampler(len(ds), shuffle=train, seed=cfg.seed, rank=info.rank, world=info.world)
    return splits, ds, sampler


def build_model(cfg: TrainConfig, num_classes: int, device: torch.device):
    """The run's model. Seeded first: a randomly initialised frozen backbone is rebuilt exactly
    by eval and predict, which load only the tuned tensors."""
    torch.manual_seed(cfg.seed)
    model = create_model(
        cfg.method,
        backbone=cfg.backbone,
        num_classes=num_classes,
        backbone_checkpoint=cfg.backbone_checkpoint,
        backbone_options=cfg.backbone_options,
        clip=cfg.clip,  # the model is built for, and saves, the run's clip geometry
        **cfg.model_options,
    )
    model.origin["seed"] = cfg.seed  # a random backbone is this seed's (cvpt.load_model)
    model.set_grad_checkpointing(cfg.grad_checkpointing)
    return model.to(device)


def make_loader(cfg, ds, sampler, batch_size: int) -> DataLoader:
    # spawn, not fork: a forked worker inherits locked thread pools (OpenMP, OpenCV, FFmpeg)
    # from a parent that has already used them, and hung here with 2 workers
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        multiprocessing_context="spawn" if cfg.workers > 0 else None,
        collate_fn=collate,
        worker_init_fn=worker_init,
        persistent_workers=cfg.workers > 0,
        drop_last=False,
        pin_memory=False,
    )


class Run:
    """Everything one training run holds; ``Run(cfg, out).train()``."""

    def __init__(
        self,
        cfg: TrainConfig,
        out: str | Path,
        resume: bool = False,
        *,
        allow_other_backbone: bool = False,
    ):
        self.cfg, self.out, self.resume = cfg, Path(out), resume
        check_installed(cfg.logger)  # an unknown or missing tracker fails before any work
        self.allow_other_backbone = allow_other_backbone
        if not resume and ((self.out / "checkpoints").exists() or self._has_config()):
            raise RunExistsError(
                f"{self.out} holds a run already: add --resume to continue it, or choose "
                "another --out"
            )
        self.device, self.info = setup_device(cfg)
        torch.manual_seed(cfg.seed)
        self.splits, self.train_ds, self.train_sampler = build_data(
            cfg, cfg.train_subset, True, self.info
        )
        _, self.eval_ds, self.eval_sampler = build_data(cfg, cfg.eval_subset, False, self.info)
        self.classes = list(self.splits.classes)
        self.model = build_model(cfg, len(self.classes), self.device)
        # the fingerprint of the frozen weights as loaded, before any bf16 cast
        self.identity = model_identity(cfg, self.model, len(self.classes))
        self.amp = prepare_precision(
            self.model, self.device, amp=cfg.amp, frozen_bf16=cfg.frozen_bf16
        )
        per_step = cfg.batch_size * self.info.world
        self.accum = max(1, math.ceil(cfg.effective_batch / per_step))
        self.effective_batch = per_step * self.accum
        self.lr = scaled_lr(cfg.base_lr, self.effective_batch)
        # global: step s reads samples [s·E, (s+1)·E) of the epoch's order on any number of
        # processes, never the padding that evens out the ranks' shares
        self.steps_per_epoch = max(1, len(self.train_ds) // self.effective_batch)
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        warmup = min(self.total_steps, round(cfg.warmup_epochs * self.steps_per_epoch))
        self.opt, self.sched = make_optimizer(
            self.model, self.lr, cfg.weight_decay, self.total_steps, max(1, warmup), cfg.min_lr
        )
        self.ddp = self.model
        if self.info.enabled:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.step = TrainStep(
            self.model,
            self.opt,
            self.sched,
            loss_fn=self._loss,
            accum=self.accum,
            grad_clip=cfg.grad_clip,
            amp=self.amp,
            ddp=self.ddp if self.info.enabled else None,
        )
        self.progress = {"epoch": 0, "batch_in_epoch": 0, "samples_in_epoch": 0, "global_step": 0}
        self._saved_at = time.monotonic()  # of the last checkpoint (checkpoint_every_minutes)
        self.failed: list[tuple[str, str]] = []
        self.rows: list[dict] = []

    # ------------------------------------------------------------------ bookkeeping

    def _start(self) -> None:
        saved = self._saved_config() if self.resume else None
        if self.resume and (ckpt := last_checkpoint(self.out)) is not None:
            self.progress = load_checkpoint(
                ckpt,
                self.model,
                self.opt,
                self.sched,
                self.identity,
                allow_other_backbone=self.allow_other_backbone,
                run_config=saved or {},
                world=self.info.world,
            )
            self.failed = [tuple(f) for f in self.progress.pop("failed", [])]
            self._check_same_run(saved)
            self._place(self.progress, ckpt)
            log.info("resumed from %s at step %d", ckpt, self.progress["global_step"])
            self._trim_metrics()
        elif saved is not None:
            self._check_same_run(saved)
        if self.info.main:
            fresh = last_checkpoint(self.out) is None  # nothing to keep if the start fails
            made = not self.out.exists()
            self.out.mkdir(parents=True, exist_ok=True)
            resolved = self._resolved()
            # a run's config.yaml says how it started; a resume's values go beside it
            name = "config.yaml"
            if saved is not None:
                name = f"config.resume-step-{self.progress['global_step']:07d}.yaml"
            save_config(self.cfg, self.out / name, resolved=resolved, identity=self.identity)
            write_json(self.out / "classes.json", self.classes)
            # the `logger` key: each tracker imported only when chosen (optional extras)
            try:
                self.trackers = Trackers(
                    parse_loggers(self.cfg.logger),
                    self.out,
                    {**self.cfg.to_dict(), "resolved": resolved},
                )
            except BaseException:
                if fresh:  # a tracker that cannot start (no login...) must not block a retry
                    self._undo_start(made)
                raise

    def _undo_start(self, made: bool) -> None:
        """Remove what :meth:`_start` wrote for a run that never started: the folder itself
        when it made it, else the files that mark a run (``config.yaml``, ``classes.json``,
        ``trackers.json``)."""
        if made:
            shutil.rmtree(self.out, ignore_errors=True)
            return
        for name in ("config.yaml", "classes.json", "trackers.json"):
            (self.out / name).unlink(missing_ok=True)

    def _resolved(self) -> dict:
        return {
            "effective_batch": self.effective_batch,
            "accumulation": self.accum,
            "processes": self.info.world,
            "lr": self.lr,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "num_classes": len(self.classes),
            **self.model.param_counts(),
            # every option the model ran with, defaults included
            "model_options": self.model.options.to_dict(),
            "backbone_config": self.model.backbone.cfg.to_dict(),
        }

    def _saved_config(self) -> dict | None:
        """The run's ``config.yaml`` (keys and ``resolved``), None when it has none."""
        if not self._has_config():
            return None
        data = read_run_config(self.out)
        keys = load_run_config(self.out).to_dict()  # with the defaults of the run's time
        return {**keys, "resolved": data.get("resolved") or {}}

    def _check_same_run(self, saved: dict | None) -> None:
        """Refuse a resume whose keys would make another run (RunError naming each key)."""
        if saved is None:
            return
        here = self.cfg.to_dict()
        # an option given at its default is the run's own value, as one left out
        here["model_options"] = full_options(here["method"], here["model_options"])
        saved = {
            **saved,
            "model_options": full_options(saved.get("method"), saved.get("model_options")),
        }
        diff = [
            k for k in here if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != here[k]
        ]
        if diff:
            detail = "; ".join(f"{k}: run {saved[k]!r}, here {here[k]!r}" for k in diff)
            raise RunError(
                f"{self.out / 'config.yaml'}: --resume continues that run, but these keys "
                f"differ ({detail}); resume with the run's own values (drop them from --set / "
                f"--config), or start a new --out. A resume may change: "
                f"{', '.join(RESUME_MAY_CHANGE)}"
            )

    def _place(self, progress: dict, ckpt: Path) -> None:
        """Where the resumed run stands in its epoch, in global samples, checked against this
        number of processes (RunError naming both when the effective batch would differ)."""
        # recorded by every checkpoint (filled in for older ones by checkpoint.upgrade)
        world_then = progress["processes"]
        batch_then = progress["effective_batch"] or self.effective_batch
        if batch_then != self.effective_batch:
            fits = [
                p
                for p in range(1, 1 + batch_then // self.cfg.batch_size)
                if batch_then % (self.cfg.batch_size * p) == 0
            ]
            world, bs = self.info.world, self.cfg.batch_size
            ways = [f"on {' or '.join(map(str, fits))} process(es) at batch_size {bs}"] * bool(fits)
            if batch_then % world == 0:
                ways.append(f"on {world} at a batch_size that divides {batch_then // world}")
            raise RunError(
                f"{ckpt}: the run was trained by {world_then} process(es) at effective batch "
                f"{batch_then}; {world} process(es) of batch_size {bs} give "
                f"{self.effective_batch} (batch_size × processes × accumulation), another run. "
                f"Resume it {', or '.join(ways) or 'with the settings it was trained with'}"
            )
        if world_then != self.info.world:
            log.info(
                "resuming on %d process(es) a run trained on %d: the same global batches",
                self.info.world,
                world_then,
            )

    def _trim_metrics(self) -> None:
        metrics_file = self.out / "metrics.jsonl"
        if metrics_file.exists():
            rows = [json.loads(ln) for ln in metrics_file.read_text().splitlines()]
            # rows logged after the checkpoint will be logged again: drop them from the file,
            # and the evaluation it owes if one was logged before a kill
            step, owed = self.progress["global_step"], self.progress.get("eval_pending")
            self.rows = [
                r
                for r in rows
                if r["step"] < step or (r["step"] == step and not (owed and r["kind"] == "eval"))
            ]
            if self.info.main and len(self.rows) < len(rows):
                with atomic_output(metrics_file) as tmp:
                    tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    def _log(self, row: dict) -> None:
        self.rows.append(row)
        if not self.info.main:
            return
        if getattr(self, "trackers", None) is not None:
            self.trackers.log(row)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def _write_tables(self) -> None:
        if not self.info.main:
            return
        keys = sorted({k for r in self.rows for k in r if not isinstance(r[k], list)})
        with atomic_output(self.out / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            w.writerows(self.rows)
        plot_curves(self.rows, self.out / "curves.png")

    def _has_config(self) -> bool:
        return (self.out / "config.yaml").exists()

    def _checkpoint(self) -> Path | None:
        self._saved_at = time.monotonic()
        if not self.info.main:
            return None
        return save_checkpoint(
            self.out,
            self.model,
            self.opt,
            self.sched,
            {
                **self.progress,
                "failed": self.failed,
                # what the position means: resumable on any number of processes with this E
                "processes": self.info.world,
                "effective_batch": self.effective_batch,
            },
            self.identity,
            class_names=self.classes,
            input_spec=input_spec(self.cfg),
        )

    def _checkpoint_due(self) -> bool:
        every, minutes = self.cfg.checkpoint_every_steps, self.cfg.checkpoint_every_minutes
        if every and self.progress["global_step"] % every == 0:
            return True
        return bool(minutes) and time.monotonic() - self._saved_at >= 60 * minutes

    def _interrupted(self, stop: StopRequest) -> dict:
        """Checkpoint where the run stands (mid-epoch), wait for every rank, and say so."""
        path = self._checkpoint()
        self._write_tables()
        dist.barrier(self.info)  # no rank leaves before rank 0 has written
        return {
            "interrupted": stop.name,
            "signum": stop.signum,
            "steps": self.progress["global_step"],
            "epoch": self.progress["epoch"],
            "batch_in_epoch": self.progress["batch_in_epoch"],
            "checkpoint": str(path) if path else None,
        }

    # ------------------------------------------------------------------ loops

    def train(self, stop_at: int | None = None) -> dict:
        """Train to ``total_steps`` (or stop after optimiser step ``stop_at``, checkpointed,
        as an interruption would; ``--resume`` continues bit-exactly). On SIGTERM / SIGINT:
        a checkpoint at the next step boundary, then a summary with ``interrupted`` set."""
        self._start()
        with StopRequest() as stop:
            return self._train(stop_at, stop)

    def _train(self, stop_at: int | None, stop: StopRequest) -> dict:
        end = min(self.total_steps, stop_at or self.total_steps)
        cfg = self.cfg
        if self.progress.get("eval_pending") and not self._run_eval(stop):
            return self._interrupted(stop)  # stopped again during the evaluation owed
        loader = make_loader(cfg, self.train_ds, self.train_sampler, cfg.batch_size)
        while self.progress["global_step"] < end:
            epoch = self.progress["epoch"]
            samples = self.progress["samples_in_epoch"]  # of the epoch, by all processes
            steps_done = samples // self.effective_batch
            # a resumed epoch skips the samples already seen, without reading them; global
            # position p is process p mod P's (p div P)-th sample
            self.train_sampler.set_epoch(epoch, samples // self.info.world)
            self.progress["batch_in_epoch"] = samples // (self.info.world * cfg.batch_size)
            self.ddp.train()
            bar = tqdm(
                total=self.steps_per_epoch,
                initial=steps_done,
                desc=f"epoch {epoch}",
                disable=not self.info.main,
                unit="step",
            )
            with signals_held():  # workers start here: a SIGTERM now must not kill one
                batches = self._counted(iter(loader))
            while steps_done < self.steps_per_epoch:
                if self.progress["global_step"] >= end:
                    break
                t0 = time.perf_counter()
                loss = self.step(batches)
                if loss is None:  # the epoch's data ran out
                    steps_done = self.steps_per_epoch
                    break
                loss = dist.all_reduce_mean(loss, self.info)
                steps_done += 1
                self.progress["global_step"] += 1
                self.progress["samples_in_epoch"] = steps_done * self.effective_batch
                self._log(
                    {
                        "kind": "step",
                        "step": self.progress["global_step"],
                        "epoch": epoch,
                        "loss": loss,
                        "lr": self.sched.get_last_lr()[0],
                        "seconds": time.perf_counter() - t0,
                    }
                )
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                if dist.any_true(stop.signum is not None, self.info):
                    bar.close()
                    return self._interrupted(stop)
                if steps_done < self.steps_per_epoch and self._checkpoint_due():
                    self._checkpoint()
            bar.close()
            if steps_done >= self.steps_per_epoch:  # the epoch is complete
                self.progress.update(epoch=epoch + 1, batch_in_epoch=0, samples_in_epoch=0)
                last = self.progress["global_step"] >= self.total_steps
                if (epoch + 1) % cfg.eval_every == 0 or last:
                    self.progress["eval_pending"] = True  # owed by a resume if stopped in it
                    if not self._run_eval(stop):
                        return self._interrupted(stop)
            self._checkpoint()
            self._write_tables()
            if dist.any_true(stop.signum is not None, self.info):  # came during the evaluation
                return self._interrupted(stop)
        if self.progress["global_step"] >= self.total_steps and not self._evaluated():
            # the last step ended mid-epoch (max_steps): the final evaluation still runs
            self.progress["eval_pending"] = True
            if not self._run_eval(stop):
                return self._interrupted(stop)
            self._checkpoint()
        summary = self.finish()
        if self.progress["global_step"] < self.total_steps:  # stop_at: resumable, as a signal's
            summary["stopped"] = {
                "epoch": self.progress["epoch"],
                "batch_in_epoch": self.progress["batch_in_epoch"],
                "checkpoint": str(last_checkpoint(self.out)),
            }
        return summary

    def _evaluated(self) -> bool:
        """Whether an evaluation was logged at the current step."""
        step = self.progress["global_step"]
        return any(r["kind"] == "eval" and r["step"] == step for r in self.rows)

    def _run_eval(self, stop: StopRequest) -> bool:
        """Evaluate and log it; False when a stop request came first (``eval_pending`` stays
        set, and the resumed run evaluates before it trains on)."""
        summary = self._eval_summary(stop)
        if summary is None:
            return False
        self.progress.pop("eval_pending", None)
        self._log(
            {
                "kind": "eval",
                "step": self.progress["global_step"],
                "epoch": self.progress["epoch"],
                **summary,
            }
        )
        self._write_tables()
        return True

    def _loss(self, net, batch) -> torch.Tensor:
        x = normalize_inputs({k: batch[k].to(self.device) for k in INPUT_KEYS if k in batch})
        logits = net(*(x[k] for k in MODALITIES))
        return classification_loss(logits, batch["label"].to(self.device), self.cfg.label_smoothing)

    def _counted(self, batches):
        """The epoch's batches, each counted (resume position) and its failures kept."""
        for batch in batches:
            self.failed += batch["failed"]
            self.progress["batch_in_epoch"] += 1
            yield batch

    def evaluate(self, stop: StopRequest | None = None) -> dict | None:
        """Multi-view evaluation on the eval subset (:func:`evaluate_views`)."""
        loader = make_loader(self.cfg, self.eval_ds, self.eval_sampler, self.cfg.batch_size)
        return evaluate_views(
            self.model, loader, self.device, self.cfg.amp, self.info, self.failed, stop
        )

    def _eval_summary(self, stop: StopRequest | None = None) -> dict | None:
        m = self.evaluate(stop)
        if m is None:
            return None
        if self.info.main:
            write_json(self.out / "eval.json", EVAL_METRICS.stamp(m))
            plot_confusion(m["confusion"], self.classes, self.out / "confusion.png")
        return {k: m[k] for k in ("top1", "top5", "mean_class_accuracy", "videos")}

    def finish(self) -> dict:
        failed = sorted(
            {f for part in dist.all_gather_objects(self.failed, self.info) for f in part}
        )
        evals = [r for r in self.rows if r["kind"] == "eval"]
        summary = {
            "steps": self.progress["global_step"],
            "epochs": self.progress["epoch"],
            "effective_batch": self.effective_batch,
            "last_eval": evals[-1] if evals else None,
            "skipped_videos": len(failed),
            "skipped": [{"path": p, "reason": r} for p, r in failed],
        }
        if self.info.main:
            write_json(self.out / "summary.json", RUN_SUMMARY.stamp(summary))
            if getattr(self, "trackers", None) is not None:
                self.trackers.close()
            if failed:
                log.warning("%d video(s) failed to decode and were replaced:", len(failed))
                for p, r in failed:
                    log.warning("  %s: %s", p, r)
        return summary


def evaluate_views(model, loader, device, amp: bool, info, failed: list, stop=None) -> dict | None:
    """Multi-view evaluation of ``model`` over ``loader`` (all ranks; gathered on every rank):
    :func:`~cvpt.training.evaluate.metrics` of the softmax averaged over each video's views.
    Videos that failed to decode are appended to ``failed``. With ``stop``: None as soon as
    any rank has a stop request (checked between batches: every rank has as many, the sampler
    pads them)."""
    model.eval()
    probs, labels, index = [], [], []
    with signals_held():  # workers start here: a SIGTERM now must not kill one
        batches = iter(loader)
    bar = tqdm(batches, total=len(loader), desc="eval", disable=not info.main, unit="batch")
    for batch in bar:
        if stop is not None and dist.any_true(stop.signum is not None, info):
            bar.close()
            return None
        failed += batch["failed"]
        probs.append(predict_batch(model, batch, device, amp).cpu())
        labels.append(batch["label"])
        index.append(batch["index"])
    local = (torch.cat(probs).numpy(), torch.cat(labels).numpy(), torch.cat(index).numpy())
    parts = dist.all_gather_objects(local, info)
    p = np.concatenate([x[0] for x in parts])
    y = np.concatenate([x[1] for x in parts])
    idx = np.concatenate([x[2] for x in parts])
    _, first = np.unique(idx, return_index=True)  # the sampler pads ranks with repeats
    return metrics(p[first], y[first], model.backbone.cfg.num_classes)


# what makes the model: cvpt eval reads it from the checkpoint, never from an override
MODEL_KEYS = ("method", "backbone", "backbone_options", "model_options", "clip")


def _model_key(cfg: TrainConfig, key: str):
    """``cfg``'s value of ``key`` as it makes the model: the model options with the method's
    defaults filled in (one given at its default is the same model as one left out)."""
    value = getattr(cfg, key)
    return full_options(cfg.method, value) if key == "model_options" else value


def evaluate_run(
    run: Path,
    cfg: TrainConfig,
    *,
    backbone_checkpoint: str | None = None,
    allow_other_backbone: bool = False,
) -> tuple[dict, list[str], dist.DistInfo, Path]:
    """``cvpt eval``: the run's last checkpoint (:func:`cvpt.load_model`) evaluated on the eval
    subset of ``cfg`` (the run's config with the command's overrides: views, crops, data) at
    its precision. Returns ``(metrics, class names, this process's place, checkpoint)``.
    Raises :class:`~cvpt.errors.RunError` for a run without checkpoints, a ``cfg`` that
    changes what makes the model (:data:`MODEL_KEYS`), or data of other classes than the
    model's."""
    if last_checkpoint(run) is None:
        raise RunError(f"{run}: no checkpoint (was the run started with cvpt train?)")
    own = load_run_config(run)
    changed = [k for k in MODEL_KEYS if _model_key(cfg, k) != _model_key(own, k)]
    if changed:  # the model is the checkpoint's own: another one is another run's
        raise RunError(
            f"{run}: cvpt eval evaluates the run's own model; --set may not change "
            f"{', '.join(changed)} (train a run with them instead)"
        )
    device, info = setup_device(cfg)
    model = load_model(
        run,
        backbone_checkpoint=backbone_checkpoint,
        allow_other_backbone=allow_other_backbone,
        device=device,
    )
    # the precision the run evaluated at (a bf16 frozen backbone gives other numbers)
    prepare_precision(model, device, amp=cfg.amp, frozen_bf16=cfg.frozen_bf16)
    splits, ds, sampler = build_data(cfg, cfg.eval_subset, False, info)
    if list(splits.classes) != list(model.class_names):
        raise RunError(
            f"{model.loaded_from}: the model's {len(model.class_names)} classes are not the "
            f"data's {len(splits.classes)} ({cfg.annotations})"
        )
    loader = make_loader(cfg, ds, sampler, cfg.batch_size)
    m = evaluate_views(model, loader, device, cfg.amp, info, [])
    return m, list(model.class_names), info, model.loaded_from
