"""Read what an offline W&B run recorded (its ``run-<id>.wandb`` file), for tests: no network.

The file is a LevelDB-style log (32 KiB blocks of records with a 7-byte header: CRC, length, type)
of ``wandb_internal_pb2.Record`` messages after a 7-byte ``:W&B`` file header.
"""

import json
import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, buf = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:  # zero padding up to the end of the block
            pos += left
            continue
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        buf = chunk if kind in (FULL, FIRST) else buf + chunk
        if kind in (FULL, LAST):
            yield buf
            buf = b""


def records(run_dir) -> list:
    """The protobuf records of the offline run folder ``run_dir`` (``offline-run-*``)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = Path(run_dir).glob("run-*.wandb")
    out = []
    for payload in _payloads(path.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(payload)
        out.append(rec)
    return out


def _items(items) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def recorded(run_dir) -> dict:
    """``{"run": Run record, "config": {...}, "summary": {...}, "artifacts": [(name, type, [paths])]}``,
    later updates winning, as W&B would show the run."""
    out = {"run": None, "config": {}, "summary": {}, "artifacts": []}
    for rec in records(run_dir):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["run"] = rec.run
        elif kind == "config":
            out["config"].update(_items(rec.config.update))
        elif kind == "summary":
            out["summary"].update(_items(rec.summary.update))
        elif kind == "artifact":
            out["artifacts"].append((rec.artifact.name, rec.artifact.type,
                                     [m.path for m in rec.artifact.manifest.contents]))
    return out
