"""TensorBoard event files of a run (`--logger tensorboard`), beside its JSONL files.

The JSONL files stay the record (reports, resumes and tests read them); this mirrors them so that
`tensorboard --logdir runs/` compares runs: training metrics as `train/<name>` and validation
metrics as `validation/<name>` at their update, the run's configuration as hyperparameters. A
resumed run first drops the events after its checkpoint (`purge_step`), as it drops those JSONL
rows. A sweep writes one such folder per member. Written with tensorboardX (no TensorFlow).
"""
from __future__ import annotations

from pathlib import Path


class TensorBoardLog:
    def __init__(self, folder, config: dict, resume_from: int | None = None):
        from tensorboardX import SummaryWriter

        # one event file per start (named by the update it starts after), so a resume within the
        # same second as the kill cannot overwrite the earlier file
        self.writer = SummaryWriter(str(Path(folder)), purge_step=None if resume_from is None else resume_from + 1,
                                    filename_suffix=f".from{resume_from or 0}")
        self.config = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.items()}
        if resume_from is None:
            self.writer.add_text("config", "\n".join(f"    {k} = {v}" for k, v in self.config.items()), 0)

    def training(self, update: int, metrics: dict) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"train/{name}", float(value), update)

    def validation(self, update: int, metrics: dict) -> None:
        for name, value in metrics.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"validation/{name}", float(value), update)

    def close(self, final: dict | None = None) -> None:
        """Hyperparameters beside the final metrics (TensorBoard's HPARAMS tab), then flush."""
        if final:
            self.writer.add_hparams(self.config, {f"hparam/{k}": float(v) for k, v in final.items()
                                                  if isinstance(v, (int, float))}, name=".")
        self.writer.close()
