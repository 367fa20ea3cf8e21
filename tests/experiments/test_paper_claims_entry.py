"""The study's steps' shared entry code: the done file each step writes last."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.paper_claims.entry import write_summary


def test_a_done_file_appears_whole_by_a_rename(tmp_path, monkeypatch, capsys):
    # The scheduler counts a step done once its file exists, and the next steps read it.
    path = tmp_path / "probe.json"
    renames = []
    rename = Path.replace

    def recording_replace(self, target):
        renames.append((Path(target).exists(), json.loads(self.read_text())))
        return rename(self, target)

    monkeypatch.setattr(Path, "replace", recording_replace)
    assert write_summary(path, {"vrpo_ol_n_t": 1}) == {"vrpo_ol_n_t": 1}
    assert renames == [(False, {"vrpo_ol_n_t": 1})]  # complete before the done file exists
    assert json.loads(path.read_text()) == {"vrpo_ol_n_t": 1}
    assert list(tmp_path.iterdir()) == [path]  # no partial file left behind
    assert json.loads(capsys.readouterr().out) == {"vrpo_ol_n_t": 1}
